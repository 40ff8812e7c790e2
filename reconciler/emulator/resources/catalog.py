"""Building and checking product and price objects (shared by products and prices).

Kept apart from the handler modules because each side creates the other:
a price can be created with ``product_data``, a product with
``default_price_data``.
"""

from __future__ import annotations

import decimal
import re
from typing import Any

from reconciler.emulator.errors import already_exists, invalid, missing_param, no_such
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata
from reconciler.emulator.router import Request
from reconciler.emulator.store import JSON, new_id
from reconciler.emulator.versions import BASIL, has_legacy_usage_billing

__all__ = [
    "MAX_UNIT_AMOUNT",
    "PRICE",
    "PRODUCT",
    "SUPPORTED_CURRENCIES",
    "build_price",
    "check_currency",
    "check_lookup_key",
    "currency_option",
    "custom_unit_amount",
    "make_product",
    "move_lookup_key",
    "plan_of",
]

PRODUCT = "product"
PRICE = "price"
METER = "billing.meter"

#: Stripe's ceiling for price amounts, from its own error text:
#: "This value must be less than or equal to 999999999999".
MAX_UNIT_AMOUNT = 999_999_999_999
MAX_DECIMAL_PLACES = 12
MAX_LOOKUP_KEY = 200
#: Longest billing interval: three years (Stripe's ``interval_count`` limit).
MAX_INTERVAL_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}
LEGACY_AGGREGATE_USAGE = ("sum", "last_during_period", "last_ever", "max")
_CURRENCY = re.compile(r"^[a-z]{3}$")
#: The presentment currencies a US Stripe account supports (docs.stripe.com/currencies),
#: in the order Stripe lists them in its refusal.
_CURRENCY_CODES = """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bif bmd bnd bob brl bsd bwp byn
    bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd
    gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jpy kes kgs khr kmf krw kyd kzt lak lbp lkr
    lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen
    pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs
    top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw
"""
SUPPORTED_CURRENCIES = tuple(_CURRENCY_CODES.split())
_SUPPORTED = frozenset(SUPPORTED_CURRENCIES)

PRODUCT_FIELDS = (
    "description",
    "images",
    "marketing_features",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
)


def make_product(req: Request, params: JSON, product_id: str | None = None) -> JSON:
    """A new product object (not stored) from create parameters."""
    object_id = product_id or params.get("id") or new_id("prod", 14)
    if req.store.find(PRODUCT, str(object_id)) is not None:
        raise already_exists("Product already exists.", param="id")
    name = params.get("name")
    if not name:
        raise missing_param("name")
    now = req.now()
    product: JSON = {
        "id": str(object_id),
        "object": "product",
        "active": params.get("active", True) is not False,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "name": str(name),
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "tax_details": params.get("tax_details"),
        "type": params.get("type") or "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }
    for field in PRODUCT_FIELDS:
        if field in params:
            product[field] = params[field] if params[field] is not None else product[field]
    return product


def _amount(value: Any, param: str) -> int:
    amount = int(value)
    if amount < 0:
        raise invalid(
            f"This value must be greater than or equal to 0 (it currently is '{amount}').",
            param=param,
        )
    if amount > MAX_UNIT_AMOUNT:
        raise invalid(
            f"This value must be less than or equal to {MAX_UNIT_AMOUNT} (it currently is "
            f"'{amount}').",
            param=param,
        )
    return amount


def _decimal(value: Any, param: str) -> str:
    number = decimal.Decimal(str(value))
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise invalid(
            f"Invalid decimal: {value}. At most {MAX_DECIMAL_PLACES} decimal places are supported.",
            param=param,
        )
    if number < 0:
        raise invalid(f"Invalid decimal: {value}. The amount must not be negative.", param=param)
    if number > MAX_UNIT_AMOUNT:
        raise invalid(
            f"This value must be less than or equal to {MAX_UNIT_AMOUNT} (it currently is "
            f"'{value}').",
            param=param,
        )
    return str(value)


def _amount_pair(source: JSON, name: str, prefix: str) -> tuple[int | None, str | None]:
    """``unit_amount`` / ``unit_amount_decimal`` (or ``flat_amount*``): at most one given."""
    whole = source.get(name)
    fraction = source.get(f"{name}_decimal")
    if whole is not None and fraction is not None:
        raise invalid(
            f"You may only specify one of these parameters: {prefix}{name}, "
            f"{prefix}{name}_decimal.",
            param=f"{prefix}{name}",
        )
    if whole is not None:
        amount = _amount(whole, prefix + name)
        return amount, str(amount)
    if fraction is not None:
        text = _decimal(fraction, f"{prefix}{name}_decimal")
        number = decimal.Decimal(text)
        return (int(number) if number == number.to_integral_value() else None), text
    return None, None


def _bracket(path: str, name: str) -> str:
    return f"{path}[{name}]" if path else name


def _tiers(params: JSON, path: str = "") -> list[JSON]:
    tiers = params.get("tiers")
    param = _bracket(path, "tiers")
    if not tiers:
        raise missing_param(param, "Tiered prices must have at least one tier in `tiers`.")
    result: list[JSON] = []
    previous = 0
    for index, tier in enumerate(tiers):
        where = f"{param}[{index}]"
        up_to = tier.get("up_to")
        last = index == len(tiers) - 1
        if up_to == "inf":
            if not last:
                raise invalid(
                    "Only the last tier may have `up_to` set to `inf`.", param=f"{where}[up_to]"
                )
            bound = None
        else:
            if last:
                raise invalid(
                    "The last tier must have `up_to` set to `inf`.", param=f"{where}[up_to]"
                )
            bound = int(up_to)
            if bound <= previous:
                raise invalid(
                    "Tiers must be in ascending order of `up_to`, each above the previous one.",
                    param=f"{where}[up_to]",
                )
            previous = bound
        unit, unit_decimal = _amount_pair(tier, "unit_amount", f"{where}[")
        flat, flat_decimal = _amount_pair(tier, "flat_amount", f"{where}[")
        if unit_decimal is None and flat_decimal is None:
            raise missing_param(
                f"{where}[unit_amount]",
                "Each tier needs at least one of `unit_amount`, `unit_amount_decimal`, "
                "`flat_amount` or `flat_amount_decimal`.",
            )
        result.append(
            {
                "flat_amount": flat,
                "flat_amount_decimal": flat_decimal,
                "unit_amount": unit,
                "unit_amount_decimal": unit_decimal,
                "up_to": bound,
            }
        )
    return result


def _recurring(req: Request, params: JSON) -> JSON | None:
    recurring = params.get("recurring")
    if recurring is None:
        return None
    interval = str(recurring["interval"])
    count = int(recurring.get("interval_count") or 1)
    limit = MAX_INTERVAL_COUNT[interval]
    if count < 1 or count > limit:
        raise invalid(
            f"The maximum billing interval is three years ({limit} {interval}s); "
            f"interval_count must be between 1 and {limit}.",
            param="recurring[interval_count]",
        )
    usage_type = recurring.get("usage_type") or "licensed"
    meter_id = recurring.get("meter")
    aggregate_usage = recurring.get("aggregate_usage")
    if usage_type == "licensed":
        if meter_id is not None:
            raise invalid(
                "A meter can only be set on a price with `recurring[usage_type]=metered`.",
                param="recurring[meter]",
            )
        if aggregate_usage is not None:
            raise invalid(
                "`aggregate_usage` can only be set on prices with `recurring[usage_type]=metered`.",
                param="recurring[aggregate_usage]",
            )
    if usage_type == "metered":
        if meter_id is None and not req.legacy_usage_billing:
            raise missing_param(
                "recurring[meter]",
                f"Metered prices must be backed by a meter since API version {BASIL}: pass "
                "`recurring[meter]` with the id of an active billing meter.",
            )
        if meter_id is not None:
            meter = req.store.get(
                METER, str(meter_id), label="billing meter", param="recurring[meter]", status=400
            )
            if meter["status"] != "active":
                raise invalid(
                    f"The meter {meter_id} is inactive; metered prices need an active meter.",
                    param="recurring[meter]",
                )
            if aggregate_usage not in (None, "sum"):
                raise invalid(
                    "Prices backed by a meter aggregate with the meter's formula; "
                    "`aggregate_usage` must be `sum` or left out.",
                    param="recurring[aggregate_usage]",
                )
        elif aggregate_usage is None:
            aggregate_usage = "sum"
    result: JSON = {
        "interval": interval,
        "interval_count": count,
        "meter": meter_id,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": usage_type,
    }
    if usage_type == "metered" and meter_id is None:
        result["aggregate_usage"] = aggregate_usage
    return result


def check_currency(value: Any, param: str) -> str:
    """A lower-cased currency code Stripe supports, or Stripe's ``Invalid currency`` refusal."""
    currency = str(value).lower()
    if not _CURRENCY.match(currency):
        raise invalid(f"Invalid currency: {value}.", param=param)
    if currency not in _SUPPORTED:
        raise invalid(
            f"Invalid currency: {currency}. Stripe accounts in US do not support {currency}. "
            f"Your account currently supports these currencies: {', '.join(SUPPORTED_CURRENCIES)}",
            param=param,
        )
    return currency


_currency = check_currency


def plan_of(price: JSON, api_version: str) -> JSON:
    """The deprecated ``plan`` view of a recurring price (subscription and phase items)."""
    recurring = price.get("recurring") or {}
    plan: JSON = {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price.get("unit_amount"),
        "amount_decimal": price.get("unit_amount_decimal"),
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval", "month"),
        "interval_count": recurring.get("interval_count", 1),
        "livemode": False,
        "metadata": dict(price.get("metadata") or {}),
        "meter": recurring.get("meter"),
        "nickname": price.get("nickname"),
        "product": price["product"],
        "tiers_mode": price.get("tiers_mode"),
        "transform_usage": price.get("transform_quantity"),
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }
    if has_legacy_usage_billing(api_version):
        plan["aggregate_usage"] = recurring.get("aggregate_usage")
    return plan


def custom_unit_amount(value: Any, param: str) -> JSON | None:
    """Pay-what-you-want bounds as Stripe returns them (``enabled`` is only a request flag)."""
    if value is None:
        return None
    if value.get("enabled") is not True:
        raise invalid(
            f"Pass `{param}[enabled]=true` to let the customer choose the amount, or omit "
            f"`{param}`.",
            param=f"{param}[enabled]",
        )
    bounds: JSON = {
        name: None if value.get(name) is None else _amount(value[name], f"{param}[{name}]")
        for name in ("maximum", "minimum", "preset")
    }
    low, high, preset = bounds["minimum"], bounds["maximum"], bounds["preset"]
    if low is not None and high is not None and low > high:
        raise invalid(
            f"{param}[maximum] must be greater than or equal to {param}[minimum].",
            param=f"{param}[maximum]",
        )
    if preset is not None and (
        (low is not None and preset < low) or (high is not None and preset > high)
    ):
        raise invalid(
            f"{param}[preset] must be between {param}[minimum] and {param}[maximum].",
            param=f"{param}[preset]",
        )
    return bounds


def currency_option(option: JSON, code: str, main: JSON, current: JSON | None = None) -> JSON:
    """One currency option of ``main``, priced the way ``main`` is (a unit amount, tiers,
    or pay what you want). ``current``: the option it updates, whose tax behavior stays
    unless given, and once set cannot change."""
    prefix = f"currency_options[{code}]"
    custom = custom_unit_amount(option.get("custom_unit_amount"), f"{prefix}[custom_unit_amount]")
    if (custom is None) != (main["custom_unit_amount"] is None):
        raise invalid(
            f"`{prefix}[custom_unit_amount]` is required exactly when the price has "
            "`custom_unit_amount`.",
            param=f"{prefix}[custom_unit_amount]",
        )
    tax = option.get("tax_behavior")
    held = (current or {}).get("tax_behavior") or "unspecified"
    if tax is not None and held not in ("unspecified", tax):
        raise invalid(
            f"{prefix}[tax_behavior] cannot be changed once it is {held}.",
            param=f"{prefix}[tax_behavior]",
        )
    unit, unit_decimal = _amount_pair(option, "unit_amount", f"{prefix}[")
    entry: JSON = {
        "custom_unit_amount": custom,
        "tax_behavior": tax or held,
        "unit_amount": unit,
        "unit_amount_decimal": unit_decimal,
    }
    if main["billing_scheme"] == "tiered":
        if unit_decimal is not None:
            raise invalid(
                f"`{prefix}[unit_amount]` cannot be used with `billing_scheme=tiered`; give "
                f"`{prefix}[tiers]`.",
                param=f"{prefix}[unit_amount]",
            )
        entry["tiers"] = _tiers(option, prefix)
    elif option.get("tiers") is not None:
        raise invalid(
            f"`{prefix}[tiers]` requires `billing_scheme=tiered`.", param=f"{prefix}[tiers]"
        )
    elif custom is None and unit_decimal is None:
        raise missing_param(
            f"{prefix}[unit_amount]",
            f"Missing required param: {prefix}[unit_amount]. Each currency option needs an "
            "amount, like the price's own.",
        )
    elif custom is not None and unit_decimal is not None:
        raise invalid(
            f"You may only specify one of these parameters: {prefix}[custom_unit_amount], "
            f"{prefix}[unit_amount].",
            param=f"{prefix}[unit_amount]",
        )
    return entry


def _currency_options(params: JSON, currency: str, main: JSON) -> JSON:
    options: JSON = {
        currency: {
            "custom_unit_amount": main["custom_unit_amount"],
            "tax_behavior": main["tax_behavior"],
            "unit_amount": main["unit_amount"],
            "unit_amount_decimal": main["unit_amount_decimal"],
        }
    }
    if main["billing_scheme"] == "tiered":
        options[currency]["tiers"] = main["tiers"]
    for code, option in (params.get("currency_options") or {}).items():
        if option is None:
            continue
        key = _currency(code, f"currency_options[{code}]")
        if key == currency:
            raise invalid(
                "currency_options cannot repeat the price's own currency.",
                param=f"currency_options[{code}]",
            )
        options[key] = currency_option(option, str(code), main)
    return options


def active_price_with_lookup_key(req: Request, lookup_key: str, exclude: str | None) -> JSON | None:
    for price in req.store.values(PRICE):
        if price["active"] and price.get("lookup_key") == lookup_key and price["id"] != exclude:
            return price
    return None


def check_lookup_key(
    req: Request, lookup_key: str, price_id: str | None, transfer: bool
) -> JSON | None:
    """The active price that holds ``lookup_key`` and must give it up, or a 400 clash."""
    if len(lookup_key) > MAX_LOOKUP_KEY:
        raise invalid(
            f"lookup_key must be at most {MAX_LOOKUP_KEY} characters long.", param="lookup_key"
        )
    holder = active_price_with_lookup_key(req, lookup_key, price_id)
    if holder is not None and not transfer:
        raise invalid(
            f"A price ({holder['id']}) already uses the lookup key '{lookup_key}'. Pass "
            "`transfer_lookup_key=true` to move it to this price.",
            param="lookup_key",
        )
    return holder


def move_lookup_key(req: Request, holder: JSON | None) -> None:
    """Take the lookup key away from its previous active price."""
    if holder is not None:
        holder["lookup_key"] = None
        req.store.put(PRICE, holder)
        emit(req, "price.updated", holder)


def build_price(req: Request, params: JSON, product_id: str) -> tuple[JSON, JSON | None]:
    """A new price (not stored) and the price that must give up its lookup key."""
    currency = _currency(params["currency"], "currency")
    scheme = params.get("billing_scheme") or "per_unit"
    price: JSON = {
        "id": new_id("price"),
        "object": "price",
        "active": params.get("active", True) is not False,
        "billing_scheme": scheme,
        "created": req.now(),
        "currency": currency,
        "custom_unit_amount": custom_unit_amount(
            params.get("custom_unit_amount"), "custom_unit_amount"
        ),
        "livemode": False,
        "lookup_key": params.get("lookup_key"),
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "nickname": params.get("nickname"),
        "product": product_id,
        "recurring": _recurring(req, params),
        "tax_behavior": params.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if params.get("recurring") is not None else "one_time",
        "unit_amount": None,
        "unit_amount_decimal": None,
    }
    if price["custom_unit_amount"] is not None:
        if price["recurring"] is not None:
            raise invalid(
                "`custom_unit_amount` is only supported on one-time prices; it cannot be used "
                "with `recurring`.",
                param="custom_unit_amount",
            )
        if scheme == "tiered":
            raise invalid(
                "`custom_unit_amount` cannot be used with `billing_scheme=tiered`.",
                param="custom_unit_amount",
            )
        for name in ("unit_amount", "unit_amount_decimal"):
            if params.get(name) is not None:
                raise invalid(
                    f"You may only specify one of these parameters: custom_unit_amount, {name}.",
                    param=name,
                )
    if scheme == "tiered":
        for name in ("unit_amount", "unit_amount_decimal"):
            if params.get(name) is not None:
                raise invalid(
                    f"`{name}` cannot be used with `billing_scheme=tiered`; give amounts in "
                    "`tiers`.",
                    param=name,
                )
        if params.get("tiers_mode") is None:
            raise missing_param("tiers_mode", "Tiered prices need `tiers_mode`.")
        if price["recurring"] is None:
            raise invalid("Tiered prices must be recurring.", param="billing_scheme")
        if params.get("transform_quantity") is not None:
            raise invalid(
                "`transform_quantity` cannot be combined with tiers.", param="transform_quantity"
            )
        price["tiers"] = _tiers(params)
        price["tiers_mode"] = params["tiers_mode"]
    else:
        for name in ("tiers", "tiers_mode"):
            if params.get(name) is not None:
                raise invalid(f"`{name}` requires `billing_scheme=tiered`.", param=name)
        unit, unit_decimal = _amount_pair(params, "unit_amount", "")
        if unit_decimal is None and price["custom_unit_amount"] is None:
            raise missing_param(
                "unit_amount",
                "Missing required param: unit_amount. Give one of `unit_amount`, "
                "`unit_amount_decimal` or `custom_unit_amount`.",
            )
        price["unit_amount"] = unit
        price["unit_amount_decimal"] = unit_decimal
    transform = params.get("transform_quantity")
    if transform is not None:
        if int(transform["divide_by"]) < 1:
            raise invalid(
                "transform_quantity[divide_by] must be at least 1.",
                param="transform_quantity[divide_by]",
            )
        if transform["round"] not in ("up", "down"):
            raise invalid(
                "Invalid transform_quantity[round]: must be one of up or down",
                param="transform_quantity[round]",
            )
        price["transform_quantity"] = {
            "divide_by": int(transform["divide_by"]),
            "round": transform["round"],
        }
    price["currency_options"] = _currency_options(params, currency, price)
    holder = None
    if price["lookup_key"] is not None and price["active"]:
        holder = check_lookup_key(
            req, str(price["lookup_key"]), None, bool(params.get("transfer_lookup_key"))
        )
    elif price["lookup_key"] is not None:
        check_lookup_key(req, str(price["lookup_key"]), None, True)
    return price, holder


def product_for_price(req: Request, product_id: Any) -> JSON:
    return req.store.get(PRODUCT, str(product_id), param="product", status=400)


def no_such_price(price_id: str, param: str) -> Exception:
    return no_such("price", price_id, param=param, status=400)
