"""Read the account into a Snapshot, in as few requests as the API allows.

Each kind is one paged list (100 objects a request): products, meters,
prices (with ``expand[]=data.tiers``, without which every tiered price
would look changed) and alerts. A plan therefore costs
``ceil(products/100) + ceil(meters/100) + ceil(prices/100) + ceil(alerts/100)``
requests (at least one each), whatever the number of declared objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.essence import (
    alert_essence_from_stripe,
    meter_essence_from_stripe,
    price_essence_from_stripe,
    product_essence_from_stripe,
)
from reconciler.gateway import Gateway
from reconciler.model import MANAGED_BY_KEY, MANAGED_BY_VALUE
from reconciler.snapshot import LiveObject, Snapshot

__all__ = ["read_snapshot", "snapshot_from_objects"]


def read_snapshot(gateway: Gateway) -> Snapshot:
    """List every product, meter, price and alert of the account."""
    return snapshot_from_objects(
        products=gateway.list_all("/v1/products"),
        meters=gateway.list_all("/v1/billing/meters"),
        prices=gateway.list_all("/v1/prices", {"expand": ["data.tiers"]}),
        alerts=gateway.list_all("/v1/billing/alerts"),
    )


def _managed(obj: Mapping[str, Any]) -> bool:
    return (obj.get("metadata") or {}).get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def _preferred(current: Mapping[str, Any] | None, candidate: Mapping[str, Any]) -> bool:
    """Of two objects with one identity, the active one wins, then the newest."""
    if current is None:
        return True
    rank = (_is_active(candidate), candidate.get("created", 0), candidate["id"])
    return rank > (_is_active(current), current.get("created", 0), current["id"])


def _is_active(obj: Mapping[str, Any]) -> bool:
    if "status" in obj and obj.get("object") == "billing.meter":
        return bool(obj["status"] == "active")
    return bool(obj.get("active", True))


def snapshot_from_objects(
    *,
    products: Iterable[Mapping[str, Any]],
    meters: Iterable[Mapping[str, Any]],
    prices: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
) -> Snapshot:
    """Reduce Stripe's JSON objects to a Snapshot (pure; ``read_snapshot`` feeds it)."""
    meter_by_name: dict[str, Mapping[str, Any]] = {}
    for meter in meters:
        if _preferred(meter_by_name.get(meter["event_name"]), meter):
            meter_by_name[meter["event_name"]] = meter
    # Only the current meter of an event name is named by it: a price or alert
    # still on a replaced meter keeps that meter's id, so it shows as a change.
    meter_names = {m["id"]: name for name, m in meter_by_name.items()}

    price_by_key: dict[str, Mapping[str, Any]] = {}
    anonymous: list[str] = []
    orphans: list[str] = []
    lookup_key_of: dict[str, str] = {}
    for price in prices:
        key = price.get("lookup_key")
        if not key:
            if price.get("active", True):
                (orphans if _managed(price) else anonymous).append(price["id"])
            continue
        lookup_key_of[price["id"]] = key
        if _preferred(price_by_key.get(key), price):
            price_by_key[key] = price

    snapshot_products: dict[str, LiveObject] = {}
    for product in products:
        default = product.get("default_price")
        default_id = default.get("id") if isinstance(default, Mapping) else default
        default_key = lookup_key_of.get(default_id, default_id) if default_id else None
        snapshot_products[product["id"]] = LiveObject(
            product["id"], product_essence_from_stripe(product, default_key), _managed(product)
        )

    snapshot_alerts: dict[tuple[str, str], LiveObject] = {}
    for alert in alerts:
        if alert.get("status") == "archived":  # archived alerts are gone for good
            continue
        watched = (alert.get("usage_threshold") or {}).get("meter")
        meter_id = watched.get("id") if isinstance(watched, Mapping) else watched
        name = meter_names.get(str(meter_id), str(meter_id))
        snapshot_alerts[(name, alert.get("title", ""))] = LiveObject(
            alert["id"], alert_essence_from_stripe(alert)
        )

    return Snapshot(
        products=snapshot_products,
        meters={
            name: LiveObject(m["id"], meter_essence_from_stripe(m))
            for name, m in meter_by_name.items()
        },
        prices={
            key: LiveObject(p["id"], price_essence_from_stripe(p, meter_names), _managed(p))
            for key, p in price_by_key.items()
        },
        alerts=snapshot_alerts,
        anonymous_prices=tuple(sorted(anonymous)),
        orphan_prices=tuple(sorted(orphans)),
    )
