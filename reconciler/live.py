"""Read the account into a Snapshot, in as few requests as the API allows.

Each kind is one paged list (100 objects a request): products, meters,
prices (with ``expand[]=data.tiers``, without which every tiered price
would look changed) and alerts. A plan therefore costs
``ceil(products/100) + ceil(meters/100) + ceil(prices/100) + ceil(alerts/100)``
requests (at least one each), whatever the number of declared objects.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from reconciler.errors import StripeCallError
from reconciler.essence import (
    alert_essence_from_stripe,
    meter_essence_from_stripe,
    price_essence_from_stripe,
    product_essence_from_stripe,
)
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.migrations import (
    MIGRATION_KEY,
    LiveSubscription,
    MigrationSnapshot,
    parity_blocker,
    parity_candidates,
    subscription_from_stripe,
)
from reconciler.model import Desired, Migration, Price, carries_marker
from reconciler.plan import IDEMPOTENCY_PREFIX, gc_paused
from reconciler.snapshot import LiveObject, Snapshot

PARITY_READERS = 4
"""Parity-gate reads in flight at once: enough to hide latency, paced by the gateway."""

__all__ = ["read_legacy_price", "read_migrations", "read_snapshot", "snapshot_from_objects"]


def read_snapshot(
    gateway: Gateway, desired: Desired | None = None, *, every_usage: bool = False
) -> Snapshot:
    """List every product, meter, price and alert; then what the migrations need
    (``every_usage``: the parity gate's figures for every waiting subscription, not
    only the next batch's)."""
    snapshot = snapshot_from_objects(
        products=gateway.list_all("/v1/products"),
        meters=gateway.list_all("/v1/billing/meters"),
        prices=gateway.list_all("/v1/prices", {"expand": ["data.tiers"]}),
        alerts=gateway.list_all("/v1/billing/alerts"),
    )
    if desired is None or not desired.migrations:
        return snapshot
    migrations = read_migrations(gateway, desired, snapshot, every_usage=every_usage)
    return dataclasses.replace(snapshot, migrations=migrations)


def _managed(obj: Mapping[str, Any]) -> bool:
    return carries_marker(obj.get("metadata"))


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
    unkeyed: dict[str, LiveObject] = {}
    lookup_key_of: dict[str, str] = {}
    for price in prices:
        key = price.get("lookup_key")
        if not key:
            if price.get("active", True):
                (orphans if _managed(price) else anonymous).append(price["id"])
                unkeyed[price["id"]] = LiveObject(
                    price["id"], price_essence_from_stripe(price, meter_names), _managed(price)
                )
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

    alerts_by_identity: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for alert in alerts:
        if alert.get("status") == "archived":  # archived alerts are gone for good
            continue
        watched = (alert.get("usage_threshold") or {}).get("meter")
        meter_id = watched.get("id") if isinstance(watched, Mapping) else watched
        name = meter_names.get(str(meter_id), str(meter_id))
        alerts_by_identity.setdefault((name, alert.get("title", "")), []).append(alert)
    snapshot_alerts: dict[tuple[str, str], LiveObject] = {}
    duplicate_alerts: dict[tuple[str, str], tuple[str, ...]] = {}
    for identity, found in alerts_by_identity.items():
        kept: Mapping[str, Any] | None = None
        for alert in found:
            candidate = {**alert, "active": alert.get("status") == "active"}
            if _preferred(kept, candidate):
                kept = candidate
        assert kept is not None
        snapshot_alerts[identity] = LiveObject(kept["id"], alert_essence_from_stripe(kept))
        others = sorted(a["id"] for a in found if a["id"] != kept["id"])
        if others:  # Stripe does not keep titles unique: two writers can make two
            duplicate_alerts[identity] = tuple(others)

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
        duplicate_alerts=duplicate_alerts,
        anonymous_prices=tuple(sorted(anonymous)),
        orphan_prices=tuple(sorted(orphans)),
        unkeyed=unkeyed,
    )


def read_migrations(
    gateway: Gateway, desired: Desired, snapshot: Snapshot, *, every_usage: bool = False
) -> dict[str, MigrationSnapshot]:
    """For each migration: the legacy price, its subscriptions, and what moved already.

    Costs per migration: one read of the legacy price, one request per 100
    subscriptions on it (schedules expanded), one per 100 on the new price,
    and, when usage parity is required, two per subscription the next batch
    considers (about ``2 x batch``; every waiting one with ``every_usage``).
    """
    return {
        m.name: _read_migration(
            gateway,
            m,
            snapshot,
            target=next((p for p in desired.prices if p.lookup_key == m.to_price), None),
            every_usage=every_usage,
        )
        for m in desired.migrations
    }


def _read_migration(
    gateway: Gateway,
    migration: Migration,
    snapshot: Snapshot,
    *,
    target: Price | None,
    every_usage: bool,
) -> MigrationSnapshot:
    """One migration as the account has it. ``target`` is billing.yaml's to_price
    (whether it is metered, and its terms, come from there: it may not exist yet)."""
    to_metered = target is None or target.is_metered
    to_terms = None
    if target is not None and target.recurring is not None:
        recurring_terms = target.recurring
        to_terms = (target.currency, recurring_terms.interval, recurring_terms.interval_count)
    legacy = read_legacy_price(gateway, migration.from_price)
    live_target = snapshot.prices.get(migration.to_price)
    to_price_id = live_target.stripe_id if live_target is not None else None
    if legacy is None:
        return MigrationSnapshot(from_price_id=None, to_price_id=to_price_id, to_metered=to_metered)
    query = {"price": legacy["id"], "status": "all", "expand": ["data.schedule"]}
    with gc_paused():  # thousands of subscriptions: see gc_paused
        listed = tuple(
            subscription_from_stripe(s) for s in gateway.list_all("/v1/subscriptions", query)
        )
    subscriptions = _with_unfinished_schedules(gateway, listed)
    read_at = int(time.time())
    clock_times = _clock_times(gateway, subscriptions)
    moved: tuple[str, ...] = ()
    if to_price_id is not None:
        moved = tuple(
            s["id"]
            for s in gateway.list_all("/v1/subscriptions", {"price": to_price_id, "status": "all"})
            if (s.get("metadata") or {}).get(MIGRATION_KEY) == migration.name
        )
    recurring = legacy.get("recurring") or {}
    read = MigrationSnapshot(
        from_price_id=legacy["id"],
        to_price_id=to_price_id,
        from_aggregation=recurring.get("aggregate_usage") if not recurring.get("meter") else None,
        from_price_active=bool(legacy.get("active", True)),
        from_metered=recurring.get("usage_type") == "metered",
        to_metered=to_metered,
        from_terms=(
            str(legacy.get("currency")),
            str(recurring.get("interval")),
            int(recurring.get("interval_count") or 1),
        )
        if recurring
        else None,
        to_terms=to_terms,
        subscriptions=subscriptions,
        moved=moved,
        read_at=read_at,
        clock_times=clock_times,
    )
    if migration.require_usage_parity is None:
        return read
    meter_name = (live_target.essence.get("recurring") or {}).get("meter") if live_target else None
    meter = snapshot.meters.get(meter_name) if meter_name else None
    meter_id = meter.stripe_id if meter else None

    def pair(sub: LiveSubscription) -> tuple[Decimal, Decimal] | None:
        return _usage_pair(gateway, sub, legacy["id"], meter_id)

    return dataclasses.replace(
        read, usage=_gate_usage(migration, read, pair, everything=every_usage)
    )


def _gate_usage(
    migration: Migration,
    read: MigrationSnapshot,
    pair: Callable[[LiveSubscription], tuple[Decimal, Decimal] | None],
    *,
    everything: bool,
) -> dict[str, tuple[Decimal, Decimal] | None]:
    """The usage figures the parity gate needs: for the subscriptions the next batch
    takes, in its order, until ``batch`` of them pass (or all, with ``everything``).

    Figures are read ``PARITY_READERS`` at a time (the gateway paces them). The
    rest are left unread: the plan shows them waiting for a later batch.
    """
    candidates = parity_candidates(migration, read)
    wanted = len(candidates) if everything or migration.batch is None else migration.batch
    limit = migration.require_usage_parity
    assert limit is not None
    usage: dict[str, tuple[Decimal, Decimal] | None] = {}
    passed, index = 0, 0
    with ThreadPoolExecutor(max_workers=PARITY_READERS) as pool:
        while passed < wanted and index < len(candidates):
            chunk = candidates[index : index + max(wanted - passed, PARITY_READERS)]
            index += len(chunk)
            for sub, figures in zip(chunk, pool.map(pair, chunk), strict=True):
                usage[sub.id] = figures
                passed += parity_blocker(limit, figures) is None
    return usage


def _clock_times(gateway: Gateway, subscriptions: tuple[LiveSubscription, ...]) -> dict[str, int]:
    """Each test clock's time, read only when a subscription is on one (one request per
    100 clocks): a subscription's present is its clock's, not the wall clock's."""
    if not any(s.test_clock for s in subscriptions):
        return {}
    return {
        str(clock["id"]): int(clock["frozen_time"])
        for clock in gateway.list_all("/v1/test_helpers/test_clocks")
    }


def _with_unfinished_schedules(
    gateway: Gateway, subscriptions: tuple[LiveSubscription, ...]
) -> tuple[LiveSubscription, ...]:
    """Mark the unlabelled schedules stripe-reconcile created (``LiveSchedule.begun``).

    A schedule made ``from_subscription`` carries no metadata until its phases
    are written; a crash between the two writes leaves it unlabelled. The
    account's ``subscription_schedule.created`` events name the idempotency key
    of the request that made each schedule, and apply's keys start with
    ``IDEMPOTENCY_PREFIX``. Read only when an unlabelled schedule exists
    (Stripe keeps events for 30 days; an unlabelled schedule older than that is
    treated as someone else's).
    """
    unlabelled = {
        s.schedule.id for s in subscriptions if s.schedule is not None and not s.schedule.metadata
    }
    if not unlabelled:
        return subscriptions
    # No ``created`` filter: a schedule on a test clock has the clock's time as
    # ``created``, its event the real time, so no bound from the one fits the other.
    query: dict[str, Any] = {"type": "subscription_schedule.created"}
    begun: set[str] = set()
    try:
        for event in gateway.list_all("/v1/events", query):
            made = ((event.get("data") or {}).get("object") or {}).get("id")
            key = (event.get("request") or {}).get("idempotency_key") or ""
            if made in unlabelled and key.startswith(IDEMPOTENCY_PREFIX):
                begun.add(str(made))
    except StripeCallError as exc:
        if exc.http_status not in (403, 404):  # a key without events access: none known
            raise
    return tuple(
        dataclasses.replace(s, schedule=dataclasses.replace(s.schedule, begun=True))
        if s.schedule is not None and s.schedule.id in begun
        else s
        for s in subscriptions
    )


def read_legacy_price(gateway: Gateway, reference: str) -> dict[str, Any] | None:
    """The legacy price by id or lookup key (the active one first), tiers included, read on
    the last API version that shows it whole (``aggregate_usage``); None when absent."""
    if reference.startswith("price_"):
        try:
            return gateway.get(
                f"/v1/prices/{reference}", {"expand": ["tiers"]}, stripe_version=LEGACY_API_VERSION
            )
        except StripeCallError as exc:
            if exc.http_status == 404:
                return None
            raise
    found = (
        gateway.get(
            "/v1/prices",
            {"lookup_keys": [reference], "expand": ["data.tiers"]},
            stripe_version=LEGACY_API_VERSION,
        ).get("data")
        or []
    )
    best: dict[str, Any] | None = None
    for price in found:
        if _preferred(best, price):
            best = price
    return best


def _minute(timestamp: int) -> int:
    return timestamp - timestamp % 60


def _usage_pair(
    gateway: Gateway, sub: LiveSubscription, legacy_price: str, meter_id: str | None
) -> tuple[Decimal, Decimal] | None:
    """(usage records, meter events) of the subscription's last complete period, if any."""
    item = next((i for i in sub.items if i.price == legacy_price), None)
    if item is None or item.id is None or meter_id is None or item.period_start is None:
        return None
    summaries = (
        gateway.get(
            f"/v1/subscription_items/{item.id}/usage_record_summaries",
            {"limit": 100},
            stripe_version=LEGACY_API_VERSION,
        ).get("data")
        or []
    )
    complete = [
        s
        for s in summaries
        if (s.get("period") or {}).get("end") is not None
        and s["period"]["end"] <= item.period_start
    ]
    if not complete:
        return None
    last = max(complete, key=lambda s: s["period"]["end"])
    start, end = _minute(last["period"]["start"]), _minute(last["period"]["end"])
    events = (
        gateway.get(
            f"/v1/billing/meters/{meter_id}/event_summaries",
            {"customer": sub.customer, "start_time": start, "end_time": end},
        ).get("data")
        or []
    )
    metered = sum((Decimal(str(e.get("aggregated_value", 0))) for e in events), Decimal(0))
    return Decimal(str(last.get("total_usage", 0))), metered
