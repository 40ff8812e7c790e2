"""Read the account into a Snapshot, in as few requests as the API allows.

Each kind is one paged list (100 objects a request): products, meters,
prices (with ``expand[]=data.tiers``, without which every tiered price
would look changed) and alerts. A plan therefore costs
``ceil(products/100) + ceil(meters/100) + ceil(prices/100) + ceil(alerts/100)``
requests (at least one each), whatever the number of declared objects. An
add-on kind costs nothing unless billing.yaml declares one; a kind listed per
object of another (each product's attached features) says how it is listed
(``KindSpec.listing``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from reconciler.errors import StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.kinds.base import ReadContext
from reconciler.kinds.base import preferred as _preferred
from reconciler.kinds.registry import READ_ORDER, REGISTRY
from reconciler.migrations import (
    MIGRATION_KEY,
    LiveSubscription,
    MigrationSnapshot,
    parity_blocker,
    parity_candidates,
    subscription_from_stripe,
)
from reconciler.model import Desired, Migration, Price
from reconciler.plan import IDEMPOTENCY_PREFIX, gc_paused
from reconciler.snapshot import Snapshot

PARITY_READERS = 4
"""Parity-gate reads in flight at once: enough to hide latency, paced by the gateway."""

__all__ = [
    "list_objects",
    "read_legacy_price",
    "read_migrations",
    "read_snapshot",
    "snapshot_from_objects",
]


def read_snapshot(
    gateway: Gateway, desired: Desired | None = None, *, every_usage: bool = False
) -> Snapshot:
    """List every object of every registered kind (an add-on kind only when ``desired``
    declares one, or when no ``desired`` is given); then what the migrations need
    (``every_usage``: the parity gate's figures for every waiting subscription, not
    only the next batch's)."""
    # Without billing.yaml, every kind: a plan built on this snapshot must not take an
    # add-on kind's objects for absent.
    snapshot = snapshot_from_objects(**list_objects(gateway, desired, every_kind=desired is None))
    if desired is None or not desired.migrations:
        return snapshot
    migrations = read_migrations(gateway, desired, snapshot, every_usage=every_usage)
    return dataclasses.replace(snapshot, migrations=migrations)


def list_objects(
    gateway: Gateway, desired: Desired | None = None, *, every_kind: bool = False
) -> dict[str, Iterator[dict[str, Any]]]:
    """Every object of every registered kind, by section (``products`` ...): one paged
    list each, read as it is consumed. An add-on kind is listed only when ``desired``
    declares one, or for ``every_kind`` (import), where a key that may not read it
    (403) or an account without it (404) gives an empty list."""
    listed: dict[str, Iterator[dict[str, Any]]] = {}
    wanted = None if every_kind else desired
    for spec in REGISTRY:
        if not spec.add_on:
            listed[spec.section] = spec.listing(gateway.list_all, wanted)
        elif every_kind:
            listed[spec.section] = _if_readable(spec.listing(gateway.list_all, None))
        elif desired is not None and spec.reads(desired):
            listed[spec.section] = spec.listing(gateway.list_all, desired)
    return listed


def _if_readable(objects: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from objects
    except StripeCallError as exc:
        if exc.http_status not in (403, 404):
            raise


def snapshot_from_objects(**listed: Iterable[Mapping[str, Any]]) -> Snapshot:
    """Reduce Stripe's JSON objects, listed by kind (``products=``, ``meters=`` ...: each
    spec's section), to a Snapshot (pure; ``read_snapshot`` feeds it). Kinds are read
    in ``READ_ORDER``: a kind that names another's ids after it."""
    unknown = set(listed) - {spec.section for spec in REGISTRY}
    if unknown:
        raise TypeError(f"no kind is listed as {', '.join(sorted(unknown))}")
    context = ReadContext()
    fields: dict[str, Any] = {}
    for spec in READ_ORDER:
        fields.update(spec.read(listed.get(spec.section, ()), context))
    return Snapshot(**fields)


def read_migrations(
    gateway: Gateway, desired: Desired, snapshot: Snapshot, *, every_usage: bool = False
) -> dict[str, MigrationSnapshot]:
    """For each migration: the legacy price, its subscriptions, and what moved already.

    Costs per migration: one read of the legacy price, one request per 100
    subscriptions on it (schedules expanded), one per 100 on the new price,
    and, when usage parity is required, two per subscription the next batch
    considers (about ``2 x batch``; every waiting one with ``every_usage``). The
    account's test clocks are listed once, when a subscription is on one.
    """
    clocks: dict[str, int] = {}
    return {
        m.name: _read_migration(
            gateway,
            m,
            snapshot,
            target=next((p for p in desired.prices if p.lookup_key == m.to_price), None),
            every_usage=every_usage,
            clocks=clocks,
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
    clocks: dict[str, int],
) -> MigrationSnapshot:
    """One migration as the account has it. ``target`` is billing.yaml's to_price
    (whether it is metered, and its terms, come from there: it may not exist yet)."""
    to_metered = target is None or target.is_metered
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
    clock_times = _clock_times(gateway, subscriptions, clocks)
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
        to_terms=target.terms if target is not None else None,
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


def _clock_times(
    gateway: Gateway, subscriptions: tuple[LiveSubscription, ...], clocks: dict[str, int]
) -> dict[str, int]:
    """Each test clock's time, read only when a subscription is on one (one request per
    100 clocks), and then into ``clocks`` for the other migrations of the same read: a
    subscription's present is its clock's, not the wall clock's."""
    if not clocks and any(s.test_clock for s in subscriptions):
        clocks.update(
            (str(clock["id"]), int(clock["frozen_time"]))
            for clock in gateway.list_all("/v1/test_helpers/test_clocks")
        )
    return clocks


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
    """(usage records, meter events) of the subscription's last complete period, if any.

    The meter side is Stripe's event summary for the customer: the meter's own formula,
    over the events its own payload keys named the customer in, with its own
    ``event_time_window`` applied (only the latest event sent in each window counts), so
    the gate compares what the meter will bill, whatever its settings."""
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
