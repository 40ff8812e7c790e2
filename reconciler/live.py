"""Read the account into a Snapshot, in as few requests as the API allows.

Each kind is one paged list (100 objects a request): products, meters,
prices (with ``expand[]=data.tiers`` and ``data.currency_options``, without
which every tiered or multi-currency price would look changed) and alerts. A plan therefore costs
``ceil(products/100) + ceil(meters/100) + ceil(prices/100) + ceil(alerts/100)``
requests (at least one each), whatever the number of declared objects. An
add-on kind costs nothing unless billing.yaml declares one; a kind listed per
object of another (each product's attached features) says how it is listed
(``KindSpec.listing``). Migrations add their own reads (:func:`read_migrations`),
and ``plan --revenue`` two invoice previews per subscription previewed
(:func:`read_revenue`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from reconciler.errors import StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.invoice_limits import declared_charges
from reconciler.kinds import Kind
from reconciler.kinds.base import ReadContext
from reconciler.kinds.base import preferred as _preferred
from reconciler.kinds.registry import READ_ORDER, REGISTRY
from reconciler.listing import shared
from reconciler.live_subscriptions import (
    LiveSubscription,
    subscription_from_stripe,
)
from reconciler.migrations import (
    MIGRATION_KEY,
    MigrationSnapshot,
    parity_blocker,
    parity_candidates,
    resetting,
    to_price_placeholder,
)
from reconciler.model import Desired, Migration, Price, id_of
from reconciler.plan import IDEMPOTENCY_PREFIX, Plan, ResourceChange, gc_paused
from reconciler.planner import every_migration
from reconciler.revenue import (
    DEFAULT_LIMIT,
    Interval,
    MigrationRevenue,
    RevenuePreview,
    SubscriptionRevenue,
    customers_of,
    preview_params,
    sample,
    to_schedule,
)
from reconciler.snapshot import Snapshot

PARITY_READERS = 4
"""Parity-gate reads (and subscriber counts) in flight at once: enough to hide latency,
paced by the gateway."""
PREVIEWERS = 4
"""Subscriptions whose invoices are previewed at once (``read_revenue``), paced likewise."""

__all__ = [
    "list_objects",
    "read_legacy_price",
    "read_migrations",
    "read_revenue",
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
    if desired is None:
        return snapshot
    counted = list(dict.fromkeys(i for s in REGISTRY for i in s.subscribed_ids(desired, snapshot)))
    if counted:
        with ThreadPoolExecutor(max_workers=PARITY_READERS) as pool:  # paced by the gateway
            counts = pool.map(lambda price: _subscribers(gateway, price), counted)
            found = dict(zip(counted, counts, strict=True))
        snapshot = dataclasses.replace(
            snapshot, subscribers={k: n for k, n in sorted(found.items()) if n}
        )
    if not every_migration(desired, snapshot):
        return snapshot
    migrations = read_migrations(gateway, desired, snapshot, every_usage=every_usage)
    return dataclasses.replace(snapshot, migrations=migrations)


def _subscribers(gateway: Gateway, price: str) -> int:
    """How many subscriptions hold ``price`` and have not ended (Stripe's list leaves out
    canceled ones unless asked): one request per 100."""
    ended = ("canceled", "incomplete_expired")
    listed = gateway.list_all("/v1/subscriptions", {"price": price})
    return sum(1 for sub in listed if sub.get("status") not in ended)


def list_objects(
    gateway: Gateway, desired: Desired | None = None, *, every_kind: bool = False
) -> dict[str, Iterator[dict[str, Any]]]:
    """Every object of every registered kind, by section (``products`` ...): one paged
    list each, read as it is consumed. An add-on kind is listed only when ``desired``
    declares one, or for ``every_kind`` (import), where a key that may not read it
    (403) or an account without it (404) gives an empty list; there a request two kinds
    make (the products, listed for their attached features too) is made once."""
    listed: dict[str, Iterator[dict[str, Any]]] = {}
    wanted = None if every_kind else desired
    list_all = shared(gateway.list_all) if every_kind else gateway.list_all
    for spec in REGISTRY:
        if not spec.add_on:
            listed[spec.section] = spec.listing(list_all, wanted)
        elif every_kind:
            listed[spec.section] = _if_readable(spec.listing(list_all, None))
        elif desired is not None and spec.reads(desired):
            listed[spec.section] = spec.listing(list_all, desired)
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
    invoices = _AccountDay()
    declared = {p.lookup_key: p for p in desired.prices}
    return {
        m.name: _read_migration(
            gateway,
            m,
            snapshot,
            declared=declared,
            every_usage=every_usage,
            clocks=clocks,
            invoices=invoices,
        )
        for m in every_migration(desired, snapshot)
    }


def _read_pair(
    gateway: Gateway,
    from_price: str,
    to_price: str,
    snapshot: Snapshot,
    declared: Mapping[str, Price],
) -> tuple[MigrationSnapshot, dict[str, Any] | None]:
    """One ``from -> to`` pair's prices as read (no subscriptions yet), and the legacy
    price's object. Whether the target is metered, and its terms, come from billing.yaml:
    it may not exist yet."""
    target = declared.get(to_price)
    to_metered = target is None or target.is_metered
    live_target = snapshot.prices.get(to_price)
    to_price_id = live_target.stripe_id if live_target is not None else None
    to_tax = (target.tax_behavior if target is not None else None) or (
        live_target.essence.get("tax_behavior") if live_target is not None else None
    )
    legacy = read_legacy_price(gateway, from_price)
    from_is_target = legacy is not None and legacy["id"] == to_price_id
    if from_is_target:  # replaced now (not made yet), or billing.yaml names one price twice
        to_price_id = None
    if legacy is None:
        return MigrationSnapshot(
            from_price_id=None, to_price_id=to_price_id, to_metered=to_metered
        ), None
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
        from_tax_behavior=_specified(legacy.get("tax_behavior")),
        to_tax_behavior=_specified(to_tax),
        to_charges=target is not None and declared_charges(target),
        from_is_target=from_is_target,
    )
    return read, legacy


def _specified(tax_behavior: Any) -> str | None:
    """A tax behaviour, or None when Stripe says ``unspecified`` (or nothing)."""
    return str(tax_behavior) if tax_behavior not in (None, "", "unspecified") else None


def _read_migration(
    gateway: Gateway,
    migration: Migration,
    snapshot: Snapshot,
    *,
    declared: Mapping[str, Price],
    every_usage: bool,
    clocks: dict[str, int],
    invoices: _AccountDay,
) -> MigrationSnapshot:
    """One migration as the account has it: each pair's prices, the subscriptions on any
    of its ``from`` prices (once each), and those it moved already."""
    pairs = [
        _read_pair(gateway, from_price, to_price, snapshot, declared)
        for from_price, to_price in migration.pairs
    ]
    (first, legacy), also = pairs[0], tuple(read for read, _ in pairs[1:])
    if legacy is None:
        return dataclasses.replace(first, also=also)
    listed: dict[str, LiveSubscription] = {}
    with gc_paused():  # thousands of subscriptions: see gc_paused
        for price_id in dict.fromkeys(r.from_price_id for r in (first, *also) if r.from_price_id):
            query = {"price": price_id, "status": "all", "expand": ["data.schedule"]}
            for obj in gateway.list_all("/v1/subscriptions", query):
                if obj["id"] not in listed:  # one holding several legacy prices: once
                    listed[obj["id"]] = subscription_from_stripe(obj)
    subscriptions = _with_unfinished_schedules(gateway, tuple(listed.values()))
    read_at = int(time.time())
    clock_times = _clock_times(gateway, subscriptions, clocks)
    moved: dict[str, None] = {}
    for to_price_id in dict.fromkeys(r.to_price_id for r in (first, *also) if r.to_price_id):
        query = {"price": to_price_id, "status": "all"}
        for obj in gateway.list_all("/v1/subscriptions", query):
            if (obj.get("metadata") or {}).get(MIGRATION_KEY) == migration.name:
                moved[obj["id"]] = None
    read = dataclasses.replace(
        first,
        subscriptions=subscriptions,
        moved=tuple(moved),
        read_at=read_at,
        clock_times=clock_times,
        also=also,
    )
    billed_now = resetting(migration, read)
    if billed_now:
        read = dataclasses.replace(
            read, recent_invoices=_recent_invoices(gateway, read, billed_now, invoices)
        )
    if migration.require_usage_parity is None:
        return read
    live_target = snapshot.prices.get(migration.to_price)
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


DAY = 86_400


@dataclasses.dataclass
class _AccountDay:
    """The account's invoices of the day before the read, by subscription: listed at most
    once per plan, whatever the number of migrations switching now."""

    listed: bool = False
    created: dict[str, list[int]] = dataclasses.field(default_factory=dict)


def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The invoice's subscription: ``parent.subscription_details`` since basil, the
    top-level field before."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return id_of(details.get("subscription")) or id_of(invoice.get("subscription"))


def _recent_invoices(
    gateway: Gateway,
    read: MigrationSnapshot,
    subscriptions: list[LiveSubscription],
    account_day: _AccountDay,
) -> dict[str, tuple[int, ...]]:
    """When each of these subscriptions' invoices of the last day (before its present)
    were created: the account's invoices of the day before the read, listed once per
    plan into ``account_day``, for those on no test clock; one listing per subscription
    on a clock, whose invoices carry the clock's time."""
    found: dict[str, tuple[int, ...]] = {}
    walled = {s.id for s in subscriptions if s.test_clock not in read.clock_times}
    if walled and read.read_at is not None and not account_day.listed:
        account_day.listed = True
        query = {"created": {"gte": read.read_at - DAY}}
        for invoice in gateway.list_all("/v1/invoices", query):
            owner = _invoice_subscription(invoice)
            if owner is not None:
                account_day.created.setdefault(owner, []).append(int(invoice["created"]))
    for sub in subscriptions:
        now = read.now_of(sub)
        if sub.id in walled:
            times = account_day.created.get(sub.id, [])
        elif now is not None:
            own: dict[str, Any] = {"subscription": sub.id, "created": {"gte": now - DAY}}
            times = [int(i["created"]) for i in gateway.list_all("/v1/invoices", own)]
        else:
            continue
        if times:
            found[sub.id] = tuple(sorted(times))
    return found


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
    treated as someone else's). Events come newest first, and the read stops once
    every unlabelled schedule's creation has been seen, so a foreign unlabelled
    schedule costs the pages back to its creation, not the whole 30 days.
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
    unseen = set(unlabelled)
    try:
        for event in gateway.list_all("/v1/events", query):
            made = ((event.get("data") or {}).get("object") or {}).get("id")
            key = (event.get("request") or {}).get("idempotency_key") or ""
            if made in unlabelled and key.startswith(IDEMPOTENCY_PREFIX):
                begun.add(str(made))
            unseen.discard(made)
            if not unseen:
                break
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
                f"/v1/prices/{quote(reference, safe='')}",
                {"expand": ["tiers"]},
                stripe_version=LEGACY_API_VERSION,
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


def read_revenue(
    gateway: Gateway, plan: Plan, snapshot: Snapshot, *, limit: int = DEFAULT_LIMIT
) -> RevenuePreview:
    """The revenue preview of each planned migration (``plan --revenue``): for the first
    ``limit`` subscriptions it schedules now, in batch order, the next invoice as is and
    on the new price, from ``POST /v1/invoices/create_preview``.

    Costs two requests per subscription previewed (at most ``2 x limit`` per migration),
    paced by the gateway like every read. A preview Stripe refuses is kept, with
    Stripe's reason, for that subscription alone; only a Stripe that cannot be reached
    stops the read. The arithmetic is :mod:`reconciler.revenue`'s.
    """
    migrations = tuple(
        _migration_revenue(
            gateway, change, snapshot.migrations.get(change.address.split(".", 1)[1]), limit
        )
        for change in plan.changes
        if change.kind is Kind.MIGRATION and "counts" in change.details
    )
    return RevenuePreview(limit, migrations)


def _migration_revenue(
    gateway: Gateway, change: ResourceChange, snap: MigrationSnapshot | None, limit: int
) -> MigrationRevenue:
    rows = to_schedule(change.details)
    currency = snap.from_terms[0] if snap is not None and snap.from_terms else None
    found = MigrationRevenue(change.address, currency, len(rows), customers_of(rows))
    if not rows or snap is None or snap.from_price_id is None:
        return found
    first = str(change.details.get("to_price"))
    to_prices = [first, *(str(p["to_price"]) for p in change.details.get("also") or ())]
    reads = (snap, *snap.also)
    missing = sorted(
        {key for key, read in zip(to_prices, reads, strict=False) if not read.to_price_id}
    )
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        return dataclasses.replace(
            found,
            unavailable=f"to_price {names} is not in the account yet: once apply has "
            "created it, plan --revenue previews the move",
        )
    intervals: dict[str, Interval] = {}
    targets: dict[str, tuple[str, str]] = {}
    for key, read in zip(to_prices, reads, strict=False):
        for price, terms in (
            (read.from_price_id, read.from_terms),
            (read.to_price_id, read.to_terms),
        ):
            if price is not None and terms is not None:
                intervals[price] = (terms[1], terms[2])
        if read.from_price_id is not None and read.to_price_id is not None:
            placeholder = to_price_placeholder(first, key)
            targets.setdefault(read.from_price_id, (read.to_price_id, placeholder))
    default = intervals.get(snap.from_price_id, ("month", 1))
    subscriptions = {sub.id: sub for sub in snap.subscriptions}

    def preview(row: Mapping[str, Any]) -> SubscriptionRevenue:
        sub_id, customer = str(row["subscription"]), str(row["customer"])
        sub = subscriptions.get(sub_id)
        items = [(i.id, i.price) for i in sub.items if i.price in targets] if sub else []
        if not items or any(item_id is None for item_id, _price in items):
            return SubscriptionRevenue(sub_id, customer, refused="its item was not read")
        before, after = preview_params(row, [(str(i), p) for i, p in items], targets)
        invoices: list[dict[str, Any]] = []
        for label, params in (("as is", before), ("on the new price", after)):
            try:
                invoices.append(_preview(gateway, params))
            except StripeCallError as exc:
                if exc.http_status is None:  # no answer at all: not this subscription's
                    raise
                return SubscriptionRevenue(sub_id, customer, refused=f"{label}: {exc}")
        return SubscriptionRevenue.of(
            sub_id, customer, invoices[0], invoices[1], default=default, intervals=intervals
        )

    with ThreadPoolExecutor(max_workers=PREVIEWERS) as pool:
        previewed = tuple(pool.map(preview, sample(change.details, limit)))
    return dataclasses.replace(found, subscriptions=previewed)


def _preview(gateway: Gateway, params: Mapping[str, Any]) -> dict[str, Any]:
    """One invoice preview. Pinned to the last version with usage records, as the
    migration's writes are: since basil a subscription holding a meter-less metered
    price cannot be previewed, and up to it every line carries its whole price."""
    return gateway.request(
        "post", "/v1/invoices/create_preview", params, stripe_version=LEGACY_API_VERSION
    )[0]
