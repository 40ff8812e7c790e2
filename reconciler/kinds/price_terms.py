"""A price's essence (what is compared), its write parameters, and which changes only a
new price can make: the terms the price kind (:mod:`reconciler.kinds.price`) plans with.

Three fields follow Stripe's own update rules (the API reference's "Update a price"
and the stripe SDK's ``PriceUpdateParams``, which list ``tax_behavior`` and
``currency_options`` among the few parameters an update takes):

- ``tax_behavior`` changes in place while the account's is ``unspecified``; once
  ``inclusive`` or ``exclusive`` Stripe never changes it, so any other value is a
  replacement. Left out of billing.yaml it is not managed: one set in the Dashboard
  is kept (a replacement made for another reason carries it over).
- ``currency_options`` (other currencies' amounts; Stripe leaves them out of a
  response unless expanded, so prices are listed with ``expand[]=data.currency_options``):
  an update takes whole options (amount, tiers, pay-what-you-want bounds, tax
  behavior), so adding a currency and changing one's amount are made in place, each
  changed currency sent whole. All of them removed is ``currency_options=""`` in
  place (the SDK types it as emptyable). Removing one currency while others stay has
  no documented form, so it replaces the price. A currency's ``tax_behavior`` follows
  the price-level rule.
- ``custom_unit_amount`` (pay what you want) is not an update parameter: fixed at
  creation. Stripe allows it only on one-time prices (its Payment Links guide: a
  customer-chosen price "doesn't support recurring payments"), instead of an amount.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.kinds import Kind
from reconciler.kinds.base import Essence, amount, id_of, root
from reconciler.model import (
    CurrencyOption,
    CustomUnitAmount,
    Price,
    Tier,
)
from reconciler.plan import ResourceChange
from reconciler.steps import Ids

__all__ = [
    "BOUNDS",
    "OPTION_PARAM",
    "PRICE_UPDATABLE",
    "TIER_PARAM",
    "UNSPECIFIED",
    "amount_params",
    "carried",
    "changed_options",
    "compared",
    "create_params",
    "custom_from_stripe",
    "option_params",
    "price_essence",
    "price_essence_from_stripe",
    "replaces",
    "why_replaced",
]

PRICE_UPDATABLE = frozenset(
    {"nickname", "metadata", "active", "lookup_key", "tax_behavior", "currency_options"}
)
"""Fields an update can change; ``tax_behavior`` and ``currency_options`` only some ways
(see :func:`replaces`)."""
UNSPECIFIED = "unspecified"
BOUNDS = ("minimum", "maximum", "preset")
TIER_PARAM = re.compile(r"tiers\[(\d+)\]\[(\w+)\]")
OPTION_PARAM = re.compile(r"currency_options\[([a-z]{3})\](.*)")


def _tier_essence(tier: Tier) -> Essence:
    return {
        "up_to": tier.up_to,
        "unit_amount": amount(tier.unit_amount, tier.unit_amount_decimal),
        "flat_amount": amount(tier.flat_amount, tier.flat_amount_decimal),
    }


def _custom_essence(custom: CustomUnitAmount | None) -> Essence | None:
    if custom is None:
        return None
    return {"minimum": custom.minimum, "maximum": custom.maximum, "preset": custom.preset}


def _option_essence(option: CurrencyOption) -> Essence:
    """One currency option; its ``tax_behavior`` only when declared (else not managed)."""
    essence: Essence = {
        "unit_amount": amount(option.unit_amount, option.unit_amount_decimal),
        "tiers": [_tier_essence(t) for t in option.tiers] if option.tiers else None,
        "custom_unit_amount": _custom_essence(option.custom_unit_amount),
    }
    if option.tax_behavior is not None:
        essence["tax_behavior"] = option.tax_behavior
    return essence


def price_essence(price: Price) -> Essence:
    """The declared price's managed fields. ``tax_behavior``, ``currency_options`` and
    ``custom_unit_amount`` are present only when declared, so a price without them keeps
    the essence (and the plan) it always had."""
    essence = _base_essence(price)
    if price.tax_behavior is not None:
        essence["tax_behavior"] = price.tax_behavior
    if price.currency_options:
        essence["currency_options"] = {
            code: _option_essence(price.currency_options[code])
            for code in sorted(price.currency_options)
        }
    if price.custom_unit_amount is not None:
        essence["custom_unit_amount"] = _custom_essence(price.custom_unit_amount)
    return essence


def _base_essence(price: Price) -> Essence:
    recurring = price.recurring
    transform = price.transform_quantity
    return {
        "product": price.product,
        "currency": price.currency,
        "nickname": price.nickname,
        "metadata": dict(price.metadata),
        "active": price.active,
        "recurring": None
        if recurring is None
        else {
            "interval": recurring.interval,
            "interval_count": recurring.interval_count,
            "usage": recurring.usage,
            "meter": recurring.meter,
        },
        "unit_amount": amount(price.unit_amount, price.unit_amount_decimal),
        "tiers_mode": price.tiers_mode,
        "tiers": [_tier_essence(t) for t in price.tiers] if price.tiers else None,
        "transform_quantity": None
        if transform is None
        else {"divide_by": transform.divide_by, "round": transform.round},
    }


def _tiers_from_stripe(tiers: Any) -> list[Essence] | None:
    if not tiers:
        return None
    return [
        {
            "up_to": t.get("up_to"),
            "unit_amount": amount(t.get("unit_amount"), t.get("unit_amount_decimal")),
            "flat_amount": amount(t.get("flat_amount"), t.get("flat_amount_decimal")),
        }
        for t in tiers
    ]


def custom_from_stripe(obj: Mapping[str, Any], *, tiered: bool = False) -> Essence | None:
    """A price's (or currency option's) pay-what-you-want bounds; None when it has a
    fixed amount. Stripe may return the hash with every bound null on a fixed price
    (its published example does): without an amount, it is pay what you want."""
    custom = obj.get("custom_unit_amount")
    if not isinstance(custom, Mapping):
        return None
    bounds = {name: custom.get(name) for name in BOUNDS}
    fixed = tiered or obj.get("unit_amount") is not None or obj.get("unit_amount_decimal")
    if fixed and all(v is None for v in bounds.values()):
        return None
    return bounds


def _options_from_stripe(obj: Mapping[str, Any], tiered: bool) -> dict[str, Essence]:
    """Currency options (expanded) other than the price's own currency."""
    options = obj.get("currency_options")
    if not isinstance(options, Mapping):
        return {}
    own = obj.get("currency")
    found: dict[str, Essence] = {}
    for code in sorted(options):
        option = options[code]
        if code == own or not isinstance(option, Mapping):
            continue
        custom = custom_from_stripe(option, tiered=tiered)
        found[str(code)] = {
            "unit_amount": None
            if tiered or custom is not None
            else amount(option.get("unit_amount"), option.get("unit_amount_decimal")),
            "tiers": _tiers_from_stripe(option.get("tiers")) if tiered else None,
            "custom_unit_amount": custom,
            "tax_behavior": option.get("tax_behavior") or UNSPECIFIED,
        }
    return found


def price_essence_from_stripe(obj: Mapping[str, Any], meter_names: Mapping[str, str]) -> Essence:
    """``meter_names`` maps meter ids to event names (an unknown id stays an id).
    ``tax_behavior``, currency options and pay-what-you-want bounds are present only
    when the price has them (a tax behavior other than ``unspecified``), so a price
    without them reads as it always did."""
    tiered = obj.get("billing_scheme") == "tiered"
    essence = _base_essence_from_stripe(obj, meter_names)
    if obj.get("tax_behavior") not in (None, UNSPECIFIED):
        essence["tax_behavior"] = obj["tax_behavior"]
    options = _options_from_stripe(obj, tiered)
    if options:
        essence["currency_options"] = options
    custom = custom_from_stripe(obj, tiered=tiered)
    if custom is not None:
        essence["custom_unit_amount"] = custom
    return essence


def _base_essence_from_stripe(obj: Mapping[str, Any], meter_names: Mapping[str, str]) -> Essence:
    recurring = obj.get("recurring")
    transform = obj.get("transform_quantity")
    tiers = obj.get("tiers")
    tiered = obj.get("billing_scheme") == "tiered"
    return {
        "product": id_of(obj.get("product")),
        "currency": obj.get("currency"),
        "nickname": obj.get("nickname") or None,
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
        "recurring": None
        if not recurring
        else {
            "interval": recurring.get("interval"),
            "interval_count": recurring.get("interval_count", 1),
            "usage": recurring.get("usage_type", "licensed"),
            "meter": _meter_name(recurring.get("meter"), meter_names),
        },
        "unit_amount": None
        if tiered
        else amount(obj.get("unit_amount"), obj.get("unit_amount_decimal")),
        "tiers_mode": obj.get("tiers_mode") if tiered else None,
        "tiers": _tiers_from_stripe(tiers) if tiered else None,
        "transform_quantity": None
        if not transform
        else {"divide_by": transform.get("divide_by"), "round": transform.get("round")},
    }


def _meter_name(value: Any, meter_names: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("event_name") or value.get("id"))
    return meter_names.get(str(value), str(value))


def _tier_params(tiers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "up_to": "inf" if tier["up_to"] is None else tier["up_to"],
            **(
                {"unit_amount_decimal": tier["unit_amount"]}
                if tier["unit_amount"] is not None
                else {}
            ),
            **(
                {"flat_amount_decimal": tier["flat_amount"]}
                if tier["flat_amount"] is not None
                else {}
            ),
        }
        for tier in tiers
    ]


def _custom_params(custom: Mapping[str, Any]) -> dict[str, Any]:
    return {"enabled": True, **{k: custom[k] for k in BOUNDS if custom.get(k) is not None}}


def amount_params(essence: Mapping[str, Any]) -> dict[str, Any]:
    """The amount parameters of a price essence: pay-what-you-want bounds, tiers, or one
    unit amount."""
    if essence.get("custom_unit_amount") is not None:
        return {"custom_unit_amount": _custom_params(essence["custom_unit_amount"])}
    if not essence.get("tiers"):
        return {"unit_amount_decimal": essence["unit_amount"]}
    return {
        "billing_scheme": "tiered",
        "tiers_mode": essence["tiers_mode"],
        "tiers": _tier_params(essence["tiers"]),
    }


def option_params(option: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of one currency option, whole (create and update take the same)."""
    params: dict[str, Any]
    if option.get("custom_unit_amount") is not None:
        params = {"custom_unit_amount": _custom_params(option["custom_unit_amount"])}
    elif option.get("tiers"):
        params = {"tiers": _tier_params(option["tiers"])}
    else:
        params = {"unit_amount_decimal": option["unit_amount"]}
    if option.get("tax_behavior") is not None:
        params["tax_behavior"] = option["tax_behavior"]
    return params


def changed_options(change: ResourceChange) -> dict[str, Any] | str:
    """``currency_options`` of an update: each added or changed currency whole, or
    ``""`` when billing.yaml declares none any more."""
    options: Mapping[str, Any] = (change.after or {}).get("currency_options") or {}
    if not options:
        return ""
    codes: set[str] = set()
    for field_change in change.changes:
        parts = field_change.field.split(".")
        if parts[0] == "currency_options":
            codes |= set(options) if len(parts) == 1 else {parts[1].split("[")[0]}
    return {code: option_params(options[code]) for code in sorted(codes) if code in options}


def replaces(field_path: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the change of ``field_path`` from the account's price (``before``) to the
    declared one (``after``) can only be made by a new price."""
    top = root(field_path)
    if top == "tax_behavior":
        return (before.get("tax_behavior") or UNSPECIFIED) != UNSPECIFIED
    if top != "currency_options":
        return top not in PRICE_UPDATABLE
    parts = field_path.split(".")
    if len(parts) == 1:  # options where there were none, or none left: in place
        return False
    code = parts[1].split("[")[0]
    live: Mapping[str, Any] = (before.get("currency_options") or {}).get(code) or {}
    if len(parts) == 2:  # one currency added (in place) or removed while others stay
        return bool(live) and code not in (after.get("currency_options") or {})
    if parts[2] == "tax_behavior":
        return (live.get("tax_behavior") or UNSPECIFIED) != UNSPECIFIED
    return False


def why_replaced(fields: list[str]) -> str:
    """The reason of a replacement, each rule with the fields it holds."""
    tax = [f for f in fields if f.endswith("tax_behavior")]
    removed = [f for f in fields if root(f) == "currency_options" and f not in tax]
    fixed = [f for f in fields if f not in tax and f not in removed]
    parts = []
    if fixed:
        parts.append(f"fixed at creation: {', '.join(fixed)}")
    if tax:
        parts.append(
            f"tax behavior is set once (Stripe changes it only from unspecified): {', '.join(tax)}"
        )
    if removed:
        parts.append(f"a currency removed while others stay: {', '.join(removed)}")
    return "; ".join(parts)


def compared(live: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The account's price as billing.yaml can compare it: its tax behavior spelled out
    (``unspecified`` when not read), and a currency option's ``tax_behavior`` that
    billing.yaml leaves out not managed."""
    compared = {**live, "tax_behavior": live.get("tax_behavior", UNSPECIFIED)}
    options = live.get("currency_options")
    declared: Mapping[str, Any] = after.get("currency_options") or {}
    if not options:
        return compared
    return {
        **compared,
        "currency_options": {
            code: option
            if "tax_behavior" in declared.get(code, {})
            else {k: v for k, v in option.items() if k != "tax_behavior"}
            for code, option in options.items()
        },
    }


def carried(after: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """A replacement's new price keeps the tax behaviors billing.yaml does not manage
    (the price's, and those of the currencies it keeps)."""
    out = dict(after)
    if "tax_behavior" not in out and live.get("tax_behavior", UNSPECIFIED) != UNSPECIFIED:
        out["tax_behavior"] = live["tax_behavior"]
    options = out.get("currency_options")
    live_options: Mapping[str, Any] = live.get("currency_options") or {}
    if options:
        out["currency_options"] = {
            code: option
            if "tax_behavior" in option
            or live_options.get(code, {}).get("tax_behavior", UNSPECIFIED) == UNSPECIFIED
            else {**option, "tax_behavior": live_options[code]["tax_behavior"]}
            for code, option in options.items()
        }
    return out


def create_params(
    lookup_key: str, after: Mapping[str, Any], ids: Ids, *, transfer: bool
) -> dict[str, Any]:
    """The parameters that create a price of this essence (``transfer``: taking the
    lookup key from the price it replaces)."""
    params: dict[str, Any] = {
        "product": after["product"],
        "currency": after["currency"],
        "lookup_key": lookup_key,
        "metadata": dict(after["metadata"]),
    }
    if transfer:
        params["transfer_lookup_key"] = True
    if after.get("nickname") is not None:
        params["nickname"] = after["nickname"]
    recurring = after.get("recurring")
    if recurring is not None:
        params["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "usage_type": recurring["usage"],
        }
        if recurring.get("meter"):
            params["recurring"]["meter"] = ids.of(Kind.METER, recurring["meter"])
    params.update(amount_params(after))
    transform = after.get("transform_quantity")
    if transform is not None:
        params["transform_quantity"] = dict(transform)
    if after.get("tax_behavior") is not None:
        params["tax_behavior"] = after["tax_behavior"]
    options = after.get("currency_options")
    if options:
        params["currency_options"] = {code: option_params(options[code]) for code in options}
    return params
