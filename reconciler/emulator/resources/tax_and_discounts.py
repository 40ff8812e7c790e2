"""Tax rates (``/v1/tax_rates``), coupons (``/v1/coupons``) and discounts.

Enough for subscriptions and invoices to carry Stripe's shapes: a tax rate is
a percentage, exclusive (added on top) or inclusive (already in the price); a
coupon takes ``percent_off`` (above 0, at most 100) or ``amount_off`` (a
positive integer, + ``currency``) and a ``duration`` of ``forever``, ``once`` or
``repeating`` (``duration_in_months``, required then). ``applies_to[products]``
names existing products; like ``currency_options`` it is includable (shown only
when expanded: Stripe's published example coupon has neither). ``valid`` is
derived: false once ``redeem_by`` has passed or the coupon was redeemed
``max_redemptions`` times.

Deleting a coupon frees its id: a new coupon may take it (Stripe's own
discounts and promotion codes keep pointing at the deleted coupon object, not
at the id). Each coupon object carries a private ``generation`` (never shown)
by which promotion codes (:mod:`.promotion_codes`) know whether the coupon
under their coupon id is still the one they were made for.

Applying a coupon to a subscription creates a ``discount`` object (``di_``);
subscriptions list discount ids, schedule phases ``{coupon, discount,
promotion_code}`` entries. Redeeming a promotion code on a subscription or a
phase, and redeeming a product-restricted coupon (``applies_to``) there, are
not emulated (refused): the invoices would discount every line.

Updates: a tax rate's ``active``, ``country``, ``description``,
``display_name``, ``jurisdiction``, ``metadata``, ``state`` and ``tax_type``
(never its percentage or ``inclusive``); a coupon's ``name``, ``metadata``
and ``currency_options`` (amount-off coupons; shown when expanded). Currencies
must be ones Stripe supports (:data:`.catalog.SUPPORTED_CURRENCIES`). Events:
``tax_rate.created`` / ``.updated``, ``coupon.created`` / ``.updated`` / ``.deleted``.
"""

from __future__ import annotations

import secrets
from typing import Any

from reconciler.emulator.errors import invalid, missing_param
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, paginate
from reconciler.emulator.resources._common import copy_fields, deleted, require_text
from reconciler.emulator.resources.billing import COUPON, DISCOUNT, TAX_RATE, shift
from reconciler.emulator.resources.catalog import PRODUCT, check_currency
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id
from reconciler.emulator.versions import BASIL, version_at_least

__all__ = [
    "GENERATION",
    "coupon_valid",
    "discount_applies",
    "make_discounts",
    "phase_discounts",
    "register",
    "tax_rate_objects",
]


# --- tax rates ---------------------------------------------------------------------------------
def create_tax_rate(req: Request) -> JSON:
    params = req.params
    percentage = float(params["percentage"])
    if not 0 <= percentage <= 100:
        raise invalid("percentage must be between 0 and 100.", param="percentage")
    rate: JSON = {
        "id": new_id("txr"),
        "object": "tax_rate",
        "active": params.get("active", True) is not False,
        "country": params.get("country"),
        "created": req.now(),
        "description": params.get("description"),
        "display_name": str(params["display_name"]),
        "effective_percentage": percentage,
        "flat_amount": None,
        "inclusive": bool(params["inclusive"]),
        "jurisdiction": params.get("jurisdiction"),
        "jurisdiction_level": None,
        "livemode": False,
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "percentage": percentage,
        "rate_type": "percentage",
        "state": params.get("state"),
        "tax_type": params.get("tax_type"),
    }
    req.store.put(TAX_RATE, rate)
    emit(req, "tax_rate.created", rate)
    return rate


#: What ``POST /v1/tax_rates/{id}`` changes (the SDK's ``TaxRateModifyParams``); the
#: percentage and ``inclusive`` are fixed: a different rate is a new tax rate.
TAX_RATE_UPDATABLE = ("country", "description", "jurisdiction", "state", "tax_type")


def update_tax_rate(req: Request) -> JSON:
    rate = req.store.get(TAX_RATE, req.path_params["id"])
    params = req.params
    if "display_name" in params:
        rate["display_name"] = require_text(params, "display_name", max_length=50)
    if "active" in params:
        rate["active"] = params["active"] is not False
    copy_fields(rate, params, TAX_RATE_UPDATABLE)
    if "metadata" in params:
        rate["metadata"] = apply_metadata(rate["metadata"], params["metadata"])
    req.store.put(TAX_RATE, rate)
    emit(req, "tax_rate.updated", rate)
    return rate


def retrieve_tax_rate(req: Request) -> JSON:
    return req.store.get(TAX_RATE, req.path_params["id"])


def list_tax_rates(req: Request) -> JSON:
    active = req.params.get("active")
    items = [
        rate
        for rate in req.store.newest_first(TAX_RATE)
        if active is None or rate["active"] == active
    ]
    return paginate(req, items, "/v1/tax_rates", label="tax_rate")


def tax_rate_objects(req: Request, ids: Any, param: str) -> list[JSON]:
    """The tax rates named by ``ids`` (copies, as subscriptions embed them)."""
    rates = []
    for index, rate_id in enumerate(ids or []):
        rate = req.store.get(TAX_RATE, str(rate_id), param=f"{param}[{index}]", status=400)
        if not rate["active"]:
            raise invalid(f"The tax rate {rate['id']} is inactive.", param=f"{param}[{index}]")
        rates.append(dict(rate))
    return rates


# --- coupons ---------------------------------------------------------------------------------
GENERATION = "generation"
"""The private field telling one coupon object from a later one under the same id."""
MAX_COUPON_NAME = 40


def coupon_valid(coupon: JSON, now: int) -> bool:
    """Stripe's ``valid``: not past ``redeem_by``, not redeemed ``max_redemptions`` times."""
    redeem_by = coupon.get("redeem_by")
    limit = coupon.get("max_redemptions")
    return (redeem_by is None or int(redeem_by) > now) and (
        limit is None or int(coupon["times_redeemed"]) < int(limit)
    )


def _positive(params: JSON, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if int(value) < 1:
        raise invalid(f"{name} must be a positive integer.", param=name)
    return int(value)


def _applies_to(req: Request, given: Any) -> JSON | None:
    """``{products: [...]}``, each an existing product (Stripe: ``No such product``)."""
    if given is None:
        return None
    products = []
    for index, product in enumerate(given.get("products") or []):
        where = f"applies_to[products][{index}]"
        products.append(req.store.get(PRODUCT, str(product), param=where, status=400)["id"])
    return {"products": products}


def create_coupon(req: Request) -> JSON:
    params = req.params
    percent_off = params.get("percent_off")
    amount_off = _positive(params, "amount_off")
    if (percent_off is None) == (amount_off is None):
        raise invalid(
            "You must pass exactly one of percent_off or amount_off.", param="percent_off"
        )
    if percent_off is not None and not 0 < float(percent_off) <= 100:
        raise invalid("percent_off must be greater than 0 and at most 100.", param="percent_off")
    if amount_off is not None and not params.get("currency"):
        raise missing_param("currency", "You must pass currency when passing amount_off.")
    name = params.get("name")
    if name is not None and len(str(name)) > MAX_COUPON_NAME:
        raise invalid(f"name must be at most {MAX_COUPON_NAME} characters long.", param="name")
    currency = check_currency(params["currency"], "currency") if params.get("currency") else None
    duration = params.get("duration") or "once"
    months = params.get("duration_in_months")
    if duration == "repeating" and months is None:
        raise missing_param(
            "duration_in_months", "duration_in_months is required when duration is repeating."
        )
    if duration == "repeating":
        _positive(params, "duration_in_months")
    coupon_id = str(params.get("id") or secrets.token_hex(4).upper())
    if req.store.find(COUPON, coupon_id) is not None:
        raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
    coupon: JSON = {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "applies_to": _applies_to(req, params.get("applies_to")),
        "created": req.now(),
        "currency": currency,
        "currency_options": _coupon_currency_options(
            {}, params.get("currency_options"), currency, amount_off
        ),
        "duration": duration,
        "duration_in_months": months if duration == "repeating" else None,
        "livemode": False,
        "max_redemptions": _positive(params, "max_redemptions"),
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "name": name,
        "percent_off": float(percent_off) if percent_off is not None else None,
        "redeem_by": params.get("redeem_by"),
        "times_redeemed": 0,
        "valid": True,
        GENERATION: new_id("cpngen"),
    }
    req.store.put(COUPON, coupon)
    emit(req, "coupon.created", coupon)
    return coupon


def _coupon_currency_options(
    current: JSON, given: Any, currency: str | None, amount_off: Any
) -> JSON:
    """``{currency: {amount_off}}``: amounts off in other currencies (amount-off coupons only)."""
    options = dict(current)
    if amount_off is not None and currency is not None and not options:
        options[currency] = {"amount_off": int(amount_off)}
    for code, option in (given or {}).items():
        where = f"currency_options[{code}]"
        if amount_off is None:
            raise invalid(
                "currency_options can only be set on coupons with amount_off.", param=where
            )
        key = check_currency(code, where)
        if key == currency:
            raise invalid("currency_options cannot change the coupon's own currency.", param=where)
        if int(option["amount_off"]) < 0:
            raise invalid(
                "amount_off must be a non-negative integer.", param=f"{where}[amount_off]"
            )
        options[key] = {"amount_off": int(option["amount_off"])}
    return options


def update_coupon(req: Request) -> JSON:
    """Only ``name``, ``metadata`` and ``currency_options`` change (``CouponModifyParams``)."""
    coupon = req.store.get(COUPON, req.path_params["id"])
    params = req.params
    if "name" in params:
        name = params["name"]
        if name is not None and len(str(name)) > MAX_COUPON_NAME:
            raise invalid(f"name must be at most {MAX_COUPON_NAME} characters long.", param="name")
        coupon["name"] = name
    if "metadata" in params:
        coupon["metadata"] = apply_metadata(coupon["metadata"], params["metadata"])
    if params.get("currency_options") is not None:
        coupon["currency_options"] = _coupon_currency_options(
            coupon.get("currency_options") or {},
            params["currency_options"],
            coupon["currency"],
            coupon["amount_off"],
        )
    req.store.put(COUPON, coupon)
    emit(req, "coupon.updated", coupon)
    return coupon


def retrieve_coupon(req: Request) -> JSON:
    return req.store.get(COUPON, req.path_params["id"])


def list_coupons(req: Request) -> JSON:
    return paginate(req, req.store.newest_first(COUPON), "/v1/coupons", label="coupon")


def delete_coupon(req: Request) -> JSON:
    coupon = req.store.get(COUPON, req.path_params["id"])
    emit(req, "coupon.deleted", coupon)
    req.store.delete(COUPON, coupon["id"])
    return deleted("coupon", coupon["id"])


# --- discounts ---------------------------------------------------------------------------------
def _new_discount(req: Request, coupon: JSON, customer: str, subscription: str, start: int) -> JSON:
    end = None
    if coupon["duration"] == "repeating":
        end = shift(start, "month", int(coupon["duration_in_months"]))
    coupon["times_redeemed"] = int(coupon["times_redeemed"]) + 1
    req.store.put(COUPON, coupon)
    shown = ("currency_options", "applies_to", GENERATION)
    discount: JSON = {
        "id": new_id("di"),
        "object": "discount",
        "checkout_session": None,
        "coupon": {k: v for k, v in coupon.items() if k not in shown},
        "customer": customer,
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": coupon["id"], "type": "coupon"},
        "start": start,
        "subscription": subscription,
        "subscription_item": None,
        # Emulator bookkeeping: a ``once`` coupon is spent after its first invoice.
        "used": False,
    }
    return req.store.put(DISCOUNT, discount)


def make_discounts(
    req: Request,
    entries: Any,
    *,
    customer: str,
    subscription: str,
    start: int,
    param: str,
    keep: list[str] | None = None,
) -> list[str]:
    """Discount ids for ``[{coupon}|{discount}]`` entries (new discounts for coupons)."""
    result: list[str] = []
    for index, entry in enumerate(entries or []):
        where = f"{param}[{index}]"
        if entry.get("promotion_code"):
            raise invalid(
                "Promotion codes are not supported by the emulator.",
                param=f"{where}[promotion_code]",
            )
        if entry.get("discount"):
            existing = req.store.get(
                DISCOUNT, str(entry["discount"]), param=f"{where}[discount]", status=400
            )
            if existing["subscription"] not in (None, subscription) and existing["id"] not in (
                keep or []
            ):
                raise invalid(
                    f"The discount {existing['id']} belongs to another subscription.",
                    param=f"{where}[discount]",
                )
            result.append(existing["id"])
        elif entry.get("coupon"):
            coupon = req.store.get(
                COUPON, str(entry["coupon"]), param=f"{where}[coupon]", status=400
            )
            if coupon.get("applies_to") is not None:
                raise invalid(
                    "The emulator does not apply product-restricted coupons (applies_to) to "
                    "subscriptions.",
                    param=f"{where}[coupon]",
                )
            result.append(_new_discount(req, coupon, customer, subscription, start)["id"])
        else:
            raise missing_param(f"{where}[coupon]")
    return result


def phase_discounts(entries: Any) -> list[JSON]:
    """A schedule phase's ``discounts`` as Stripe shows them."""
    return [
        {
            "coupon": entry.get("coupon"),
            "discount": entry.get("discount"),
            "promotion_code": entry.get("promotion_code"),
        }
        for entry in entries or []
    ]


def discount_applies(discount: JSON, when: int) -> bool:
    """Whether a discount still reduces an invoice issued at ``when``."""
    coupon = discount["coupon"]
    if coupon["duration"] == "once":
        return not discount.get("used")
    end = discount.get("end")
    return end is None or when < int(end)


def _coupon_transform(obj: JSON, version: str) -> None:
    obj.pop(GENERATION, None)


def _coupon_complete(req: Request, obj: JSON) -> None:
    """``valid`` as of now (``redeem_by`` passed, or redeemed ``max_redemptions`` times)."""
    if "times_redeemed" in obj:
        obj["valid"] = coupon_valid(obj, req.now())


def _discount_transform(obj: JSON, version: str) -> None:
    """Hide the bookkeeping; since basil the coupon is named under ``source`` only."""
    obj.pop("used", None)
    if version_at_least(version, BASIL):
        obj.pop("coupon", None)


def register(registry: Registry) -> None:
    registry.object_type(ObjectType("tax_rate"))
    registry.object_type(
        ObjectType(
            "coupon",
            hidden=frozenset({"currency_options", "applies_to"}),
            transform=_coupon_transform,
            complete=_coupon_complete,
        )
    )
    registry.object_type(ObjectType("discount", transform=_discount_transform))
    registry.route("POST", "/v1/tax_rates", create_tax_rate, params="TaxRateCreateParams")
    registry.route("GET", "/v1/tax_rates", list_tax_rates, params="TaxRateListParams")
    registry.route("GET", "/v1/tax_rates/{id}", retrieve_tax_rate, params="TaxRateRetrieveParams")
    registry.route("POST", "/v1/tax_rates/{id}", update_tax_rate, params="TaxRateModifyParams")
    registry.route("POST", "/v1/coupons", create_coupon, params="CouponCreateParams")
    registry.route("GET", "/v1/coupons", list_coupons, params="CouponListParams")
    registry.route("GET", "/v1/coupons/{id}", retrieve_coupon, params="CouponRetrieveParams")
    registry.route("POST", "/v1/coupons/{id}", update_coupon, params="CouponModifyParams")
    registry.route("DELETE", "/v1/coupons/{id}", delete_coupon, params="CouponDeleteParams")
