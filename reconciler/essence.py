"""Essences: the fields billing.yaml manages, in one normalised shape for both sides.

The planner compares ``*_essence(model)`` with ``*_essence_from_stripe(obj)``;
nothing Stripe adds or defaults may differ between them for an object that
matches its declaration. Amounts are canonical decimal strings (``4900``,
``0.35``) whether Stripe or the YAML gave an integer or a decimal; meters
are named by event name, not id. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciler.model import Alert, Meter, Price, Product, Tier, decimal_text

__all__ = [
    "ALERT_FIXED",
    "METER_FIXED",
    "PRICE_UPDATABLE",
    "PRODUCT_UPDATABLE",
    "alert_essence",
    "alert_essence_from_stripe",
    "meter_essence",
    "meter_essence_from_stripe",
    "price_essence",
    "price_essence_from_stripe",
    "product_essence",
    "product_essence_from_stripe",
]

Essence = dict[str, Any]

PRODUCT_UPDATABLE = frozenset({"name", "description", "metadata", "active", "default_price"})
PRICE_UPDATABLE = frozenset({"nickname", "metadata", "active", "lookup_key"})
METER_FIXED = ("aggregation", "customer_key", "value_key")
ALERT_FIXED = ("threshold", "recurrence", "customer")


def _amount(integer: Any, decimal: Any) -> str | None:
    """One canonical text for an amount given as an integer, a decimal, or both."""
    if decimal is not None and decimal != "":
        return decimal_text(Decimal(str(decimal)))
    if integer is not None:
        return str(int(integer))
    return None


def product_essence(product: Product, default_price: str | None) -> Essence:
    """``default_price`` is the lookup key of the declared default price, if any."""
    out: Essence = {
        "name": product.name,
        "description": product.description,
        "metadata": dict(product.metadata),
        "active": product.active,
    }
    if default_price is not None:
        out["default_price"] = default_price
    return out


def product_essence_from_stripe(obj: Mapping[str, Any], default_price: str | None) -> Essence:
    """``default_price`` is the lookup key (or id) of the product's default price."""
    return {
        "name": obj.get("name"),
        "description": obj.get("description") or None,
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
        "default_price": default_price,
    }


def meter_essence(meter: Meter) -> Essence:
    return {
        "display_name": meter.display_name,
        "aggregation": meter.aggregation,
        "customer_key": meter.customer_key,
        "value_key": meter.value_key,
        "active": meter.active,
    }


def meter_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    return {
        "display_name": obj.get("display_name"),
        "aggregation": (obj.get("default_aggregation") or {}).get("formula"),
        "customer_key": (obj.get("customer_mapping") or {}).get(
            "event_payload_key", "stripe_customer_id"
        ),
        "value_key": (obj.get("value_settings") or {}).get("event_payload_key", "value"),
        "active": obj.get("status", "active") == "active",
    }


def _tier_essence(tier: Tier) -> Essence:
    return {
        "up_to": tier.up_to,
        "unit_amount": _amount(tier.unit_amount, tier.unit_amount_decimal),
        "flat_amount": _amount(tier.flat_amount, tier.flat_amount_decimal),
    }


def price_essence(price: Price) -> Essence:
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
        "unit_amount": _amount(price.unit_amount, price.unit_amount_decimal),
        "tiers_mode": price.tiers_mode,
        "tiers": [_tier_essence(t) for t in price.tiers] if price.tiers else None,
        "transform_quantity": None
        if transform is None
        else {"divide_by": transform.divide_by, "round": transform.round},
    }


def price_essence_from_stripe(obj: Mapping[str, Any], meter_names: Mapping[str, str]) -> Essence:
    """``meter_names`` maps meter ids to event names (an unknown id stays an id)."""
    recurring = obj.get("recurring")
    transform = obj.get("transform_quantity")
    tiers = obj.get("tiers")
    tiered = obj.get("billing_scheme") == "tiered"
    return {
        "product": _id_of(obj.get("product")),
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
        else _amount(obj.get("unit_amount"), obj.get("unit_amount_decimal")),
        "tiers_mode": obj.get("tiers_mode") if tiered else None,
        "tiers": [
            {
                "up_to": t.get("up_to"),
                "unit_amount": _amount(t.get("unit_amount"), t.get("unit_amount_decimal")),
                "flat_amount": _amount(t.get("flat_amount"), t.get("flat_amount_decimal")),
            }
            for t in tiers
        ]
        if tiered and tiers
        else None,
        "transform_quantity": None
        if not transform
        else {"divide_by": transform.get("divide_by"), "round": transform.get("round")},
    }


def alert_essence(alert: Alert) -> Essence:
    return {
        "threshold": alert.threshold,
        "recurrence": alert.recurrence,
        "customer": alert.customer,
        "active": alert.active,
    }


def alert_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    usage = obj.get("usage_threshold") or {}
    customers = [
        _id_of(f.get("customer")) for f in usage.get("filters") or [] if f.get("type") == "customer"
    ]
    return {
        "threshold": usage.get("gte"),
        "recurrence": usage.get("recurrence", "one_time"),
        "customer": customers[0] if customers else None,
        "active": obj.get("status") == "active",
    }


def _id_of(value: Any) -> Any:
    """An expandable field's id, whether it arrived as an id or an expanded object."""
    if isinstance(value, Mapping):
        return value.get("id")
    return value


def _meter_name(value: Any, meter_names: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("event_name") or value.get("id"))
    return meter_names.get(str(value), str(value))
