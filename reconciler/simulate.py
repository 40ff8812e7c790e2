"""Simulate each migration end to end on a test clock, and check the two invoices.

For every migration in billing.yaml: a customer on a fresh test clock with a
subscription on the migration's ``from_price``, usage reported the way that
price takes it (usage records for a legacy price, meter events for a
meter-backed one; a licensed price is subscribed with :data:`SEATS` units), the
migration applied to that one subscription (switching at the period end,
whatever ``switch_at`` says, so both invoices exist), meter events sent after
the switch, the clock advanced through two periods, and the last invoice on
the old price and the first on the new one checked. A migration of several
prices (``prices:``) subscribes to each old price at once and checks each old
line, then each new price's (items merged into one bill the sum of their
seats, as the migration writes them; one meter's events are sent once). A licensed price bills
its period in advance, a metered one in arrears: either way the line checked
is the one for the period on that side of the switch.

The expected figures come from :mod:`reconciler.expected_invoice`, written
from Stripe's documented rules and independent of the arithmetic the
emulator bills with: the quantity follows the meter's formula (``sum``,
``count``, ``last``; usage records with ``aggregate_usage: sum``, the one
legacy aggregation a meter can match), the line amount follows the price
read back from the account, and each check says which price it billed and
why. Meter events carry the meter's own payload keys, read from the meter
itself, and a meter's ``event_time_window`` is honoured: its events go out an
hour apart (so each of an hourly meter's is a window's figure), and the
expected quantity counts only the latest event sent in each window, as Stripe
does. What simulate makes up is reported through ``say``: when the
account has no ``from_price`` (the embedded emulator starts empty) a legacy
usage-record price with ``to_price``'s amounts stands in for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.apply import apply_plan
from reconciler.errors import ReconcileError
from reconciler.expected_invoice import (
    ExpectedLine,
    counted_events,
    expected_invoice,
    expected_line,
    metered_quantity,
    money,
)
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.kinds.price import amount_params, price_essence
from reconciler.live import read_legacy_price, read_snapshot
from reconciler.migrations import NO_METER_EQUIVALENT, moved_quantity
from reconciler.model import Desired, Migration, SwitchAt
from reconciler.plan import Action
from reconciler.planner import build_plan
from reconciler.scenario import (
    advance_clock,
    customer_invoices,
    meter_keys,
    report_usage,
    send_meter_event,
)

__all__ = [
    "InvoiceCheck",
    "SimulationResult",
    "day",
    "describe_check",
    "simulate_migration",
]

DAY = 86400
HOUR = 3600
LEGACY_USAGE = (1200, 845, 2010)  # reported on the old price in period 1
METERED_USAGE = (1500, 990, 3125)  # sent as meter events on the new price in period 2
START_DAYS_AGO = 32  # legacy aggregations with no meter formula
SEATS = 3
"""Units of a licensed ``from_price`` the simulated subscription holds."""


def day(epoch: int) -> str:
    """An epoch as a UTC date (with the time when it is not midnight)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if moment.hour or moment.minute or moment.second:
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class InvoiceCheck:
    """One invoice's line for a price against what Stripe's rules say it should be."""

    source: str
    price: str
    price_id: str
    period: tuple[int, int]
    quantity: int
    expected_quantity: int
    amount: int
    expected: ExpectedLine
    total: int
    expected_total: int
    currency: str = "usd"

    @property
    def ok(self) -> bool:
        return (
            self.quantity == self.expected_quantity
            and self.amount == self.expected.amount
            and self.total == self.expected_total
        )

    def problems(self) -> list[str]:
        """What differs, in words (empty when the invoice is as expected)."""
        out = []
        if self.quantity != self.expected_quantity:
            out.append(f"billed {self.quantity:,} units, sent {self.expected_quantity:,}")
        if self.amount != self.expected.amount:
            out.append(f"line {self.amount} cents, expected {self.expected.amount}")
        if self.total != self.expected_total:
            out.append(f"invoice total {self.total} cents, expected {self.expected_total}")
        return out


def describe_check(check: InvoiceCheck) -> list[str]:
    """An invoice check as lines of text: which price, how many units, why that amount."""
    verdict = "ok" if check.ok else "MISMATCH: " + "; ".join(check.problems())
    return [
        f"invoice from {check.source}, period {day(check.period[0])} to {day(check.period[1])}:",
        f"  price {check.price} ({check.price_id}): {check.quantity:,} units billed",
        f"  why: {check.expected.why}",
        f"  line {money(check.amount, check.currency)}, invoice total "
        f"{money(check.total, check.currency)}: {verdict}",
    ]


@dataclass(frozen=True)
class SimulationResult:
    """One rehearsed migration: the invoice lines checked on the old prices (the period
    before the switch) and on the new ones (the period after), in that order."""

    migration: str
    customer: str
    subscription: str
    test_clock: str
    switch: int
    checks: tuple[InvoiceCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


Events = Sequence[tuple[int, int]]
"""Usage sent, in order: ``(timestamp, value)`` each."""


@dataclass(frozen=True)
class _Usage:
    """How one side of the switch takes usage: a meter, or usage records."""

    meter: Mapping[str, Any] | None
    aggregation: str
    """The meter's formula, the usage records' ``aggregate_usage``, or ``licensed``."""

    @property
    def licensed(self) -> bool:
        return self.aggregation == LICENSED

    @property
    def usage_records(self) -> bool:
        return self.meter is None and not self.licensed

    @property
    def window(self) -> str | None:
        """The meter's ``event_time_window`` (``hour`` or ``day``), if it has one."""
        found = (self.meter or {}).get("event_time_window")
        return str(found) if found else None

    def step(self, usual: int) -> int:
        """Seconds between the events sent: an hour on a pre-aggregated meter, so an hourly
        one gets one event a window; ``usual`` otherwise."""
        return HOUR if self.window is not None else usual

    def expected(self, events: Events) -> int:
        """The quantity Stripe should bill for ``events``, sent in order."""
        if self.meter is None:
            return sum(value for _at, value in events)  # usage records: aggregate_usage sum
        return metered_quantity(self.aggregation, events, self.window)

    def describe(self, events: Events) -> str:
        values = [value for _at, value in events]
        if self.licensed:
            return "licensed: no usage, billed by quantity"
        if self.meter is None:
            return (
                f"{sum(values):,} units in {len(values)} usage records "
                f"(aggregate_usage {self.aggregation})"
            )
        name = str(self.meter.get("display_name") or self.meter["event_name"])
        told = (
            f"{len(values)} meter events on meter {self.meter['event_name']} ({name}, "
            f"{self.aggregation}) with values {', '.join(f'{v:,}' for v in values)}"
        )
        if self.window is None:
            return told
        counted = [value for _at, value in counted_events(events, self.window)]
        return (
            f"{told}, pre-aggregated per {self.window}: the latest event sent in each "
            f"{self.window} counts ({', '.join(f'{v:,}' for v in counted)})"
        )


LICENSED = "licensed"


def _usage_of(gateway: Gateway, price: Mapping[str, Any]) -> _Usage:
    recurring = price.get("recurring") or {}
    if recurring.get("usage_type") != "metered":
        return _Usage(None, LICENSED)
    meter_id = recurring.get("meter")
    if not meter_id:
        return _Usage(None, str(recurring.get("aggregate_usage") or "sum"))
    meter = gateway.get(f"/v1/billing/meters/{meter_id}")
    return _Usage(meter, str((meter.get("default_aggregation") or {}).get("formula") or "sum"))


def _mirror_legacy_price(
    gateway: Gateway, desired: Desired, pair: tuple[str, str], say: Callable[[str], None]
) -> dict[str, Any]:
    """A legacy usage-record price standing in for a ``from_price`` the account lacks."""
    reference, to_price = pair
    target = next(p for p in desired.prices if p.lookup_key == to_price)
    params: dict[str, Any] = {
        "expand": ["tiers"],
        "product": target.product,
        "currency": target.currency,
        "lookup_key": reference,
        "nickname": f"{reference} (legacy usage records, made by simulate)",
        "recurring": {
            "interval": target.recurring.interval if target.recurring else "month",
            "interval_count": target.recurring.interval_count if target.recurring else 1,
            "usage_type": "metered",
            "aggregate_usage": "sum",
        },
    }
    params.update(amount_params(price_essence(target)))  # as apply creates to_price
    if target.transform_quantity is not None:
        params["transform_quantity"] = target.transform_quantity.to_dict()
    price = gateway.post("/v1/prices", params, stripe_version=LEGACY_API_VERSION)
    say(
        f"the account has no price {reference}: simulate made {price['id']} to stand in for "
        f"it, a legacy usage-record price (aggregate_usage "
        f"{params['recurring']['aggregate_usage']}) with {to_price}'s amounts"
    )
    return price


def _old_price(
    gateway: Gateway,
    desired: Desired,
    migration: Migration,
    pair: tuple[str, str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    from_price = pair[0]
    existing = read_legacy_price(gateway, from_price)
    if existing is not None:
        return existing
    if from_price.startswith("price_"):
        raise ReconcileError(
            f"migration.{migration.name}: from_price {from_price} not found in the "
            "account (simulate makes a stand-in only for a lookup key)"
        )
    return _mirror_legacy_price(gateway, desired, pair, say)


def _new_price(gateway: Gateway, migration: Migration, to_price: str) -> dict[str, Any]:
    found = read_legacy_price(gateway, to_price)
    if found is None:
        raise ReconcileError(
            f"migration.{migration.name}: to_price {to_price} is not in the account; "
            "apply billing.yaml there first"
        )
    return found


@dataclass(frozen=True)
class _Side:
    """One price on one side of the switch, and how it takes usage."""

    price: Mapping[str, Any]
    usage: _Usage

    @property
    def id(self) -> str:
        return str(self.price["id"])


def _sides(
    gateway: Gateway, desired: Desired, migration: Migration, say: Callable[[str], None]
) -> tuple[list[_Side], list[_Side], dict[str, str]]:
    """The old prices, the new ones (each once, in billing.yaml's order), and which new
    price each old one moves to, by id; refused when the rehearsal cannot tell them apart."""
    olds: dict[str, _Side] = {}
    news: dict[str, _Side] = {}
    moves: dict[str, str] = {}
    for pair in migration.pairs:
        new = news.get(pair[1])
        if new is None:
            found = _new_price(gateway, migration, pair[1])
            new = news[pair[1]] = _Side(found, _usage_of(gateway, found))
        old_price = _old_price(gateway, desired, migration, pair, say)
        old = _Side(old_price, _usage_of(gateway, old_price))
        if old.usage.usage_records and old.usage.aggregation in NO_METER_EQUIVALENT:
            raise ReconcileError(
                f"migration.{migration.name}: {_name(old.price)} aggregates usage records with "
                f"{old.usage.aggregation}, which no meter formula matches; nothing to simulate"
            )
        olds[old.id] = old
        moves[old.id] = new.id
    both = set(olds) & {side.id for side in news.values()}
    if both:
        raise ReconcileError(
            f"migration.{migration.name}: {', '.join(sorted(both))} is both moved off and onto; "
            "simulate checks each price's line on one side of the switch"
        )
    return list(olds.values()), list(news.values()), moves


def _require_catalog(gateway: Gateway, desired: Desired) -> None:
    """Refuse, before making anything, an account that does not hold billing.yaml's catalog
    (simulate moves one subscription; it does not apply the rest)."""
    catalog = dataclasses.replace(desired, migrations=())
    pending = [c.address for c in build_plan(catalog, read_snapshot(gateway, catalog)).actionable]
    if pending:
        raise ReconcileError(
            f"the account does not hold billing.yaml's catalog yet ({', '.join(pending[:5])}"
            f"{' ...' if len(pending) > 5 else ''} would change): run apply first"
        )


def _name(price: Mapping[str, Any]) -> str:
    return str(price.get("lookup_key") or price["id"])


def _timeline(values: Sequence[int], first_at: int, step: int) -> tuple[tuple[int, int], ...]:
    """``values`` sent ``step`` seconds apart from ``first_at``: ``(timestamp, value)`` each."""
    return tuple((first_at + n * step, value) for n, value in enumerate(values))


def _report(
    gateway: Gateway,
    usage: _Usage,
    *,
    item: str,
    customer: str,
    events: Events,
    tag: str,
) -> None:
    for n, (at, value) in enumerate(events):
        if usage.meter is None:
            report_usage(gateway, item, value, at)
            continue
        customer_key, value_key = meter_keys(usage.meter)
        send_meter_event(
            gateway,
            str(usage.meter["event_name"]),
            customer,
            value,
            at=at,
            identifier=f"{tag}-{n}",
            customer_key=customer_key,
            value_key=value_key,
        )


def _wait_for_meter(
    gateway: Gateway, usage: _Usage, customer: str, period: tuple[int, int], want: int
) -> None:
    """Meter events are aggregated asynchronously (Stripe says about 30 s): wait until the
    meter's summary for the customer shows them before the clock crosses the period end."""
    if usage.meter is None:
        return
    for _ in range(90):
        summaries = gateway.get(
            f"/v1/billing/meters/{usage.meter['id']}/event_summaries",
            {"customer": customer, "start_time": period[0], "end_time": period[1]},
        ).get("data", [])
        if sum(float(s.get("aggregated_value") or 0) for s in summaries) >= want:
            return
        time.sleep(2)


def simulate_migration(
    gateway: Gateway,
    desired: Desired,
    migration: Migration,
    *,
    say: Callable[[str], None] = lambda _line: None,
    start: int | None = None,
) -> SimulationResult:
    """Run one migration for one new subscription on a test clock; see the module doc.

    ``start`` is the clock's first frozen time. By default it is midnight UTC
    :data:`START_DAYS_AGO` days back: Stripe takes meter events at most 35 days old and
    5 minutes ahead of now, so a monthly switch crossed that way is in the past, inside
    the window, and the events after it are accepted.
    """
    begin = start if start is not None else (int(time.time()) // DAY - START_DAYS_AGO) * DAY
    _require_catalog(gateway, desired)
    olds, news, moves = _sides(gateway, desired, migration, say)
    legacy = any(side.usage.usage_records for side in olds)
    if migration.switch_at != SwitchAt("period_end"):
        say(
            f"billing.yaml switches at {migration.switch_at.to_value()}; the rehearsal switches "
            "at the period end, so one full period is billed on each price"
        )
    clock = gateway.post(
        "/v1/test_helpers/test_clocks",
        {"frozen_time": begin, "name": f"simulate {migration.name}"[:300]},
    )
    customer = gateway.post(
        "/v1/customers",
        {
            "name": f"simulate {migration.name}",
            "email": "simulate@example.com",
            "test_clock": clock["id"],
        },
    )
    # Invoices are sent, not charged: the rehearsal is about amounts, and needs no card.
    sub = gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer["id"],
            "items": [
                {"price": side.id, **({"quantity": SEATS} if side.usage.licensed else {})}
                for side in olds
            ],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        stripe_version=LEGACY_API_VERSION if legacy else None,
    )
    items = {str(item["price"]["id"]): item for item in sub["items"]["data"]}
    first = sub["items"]["data"][0]
    period_start = int(first["current_period_start"])
    period_end = int(first["current_period_end"])
    names = ", ".join(f"{_name(side.price)} ({side.id})" for side in olds)
    say(
        f"test clock {clock['id']} at {day(begin)}: customer {customer['id']}, subscription "
        f"{sub['id']} on {names}, period {day(period_start)} to {day(period_end)}"
    )
    # Usage an hour apart from one minute in; the clock moves past it but stays well inside
    # the first period (a daily price's included).
    advance_clock(gateway, clock["id"], begin + len(LEGACY_USAGE) * HOUR)
    old_sent = _send(
        gateway,
        olds,
        items=items,
        customer=customer["id"],
        values=LEGACY_USAGE,
        first_at=begin + 60,
        step=HOUR,
        tag=f"sim-{sub['id']}-old",
        period=(period_start, period_end),
        say=lambda text: say(f"period 1: {text}"),
    )
    only_this = dataclasses.replace(
        migration,
        switch_at=SwitchAt("period_end"),
        subscriptions=(sub["id"],),
        exclude=(),
        batch=None,
        require_usage_parity=None,
        paused=False,
    )
    one = dataclasses.replace(desired, migrations=(only_this,))
    snapshot = read_snapshot(gateway, one)
    plan = build_plan(one, snapshot)
    if not any(c.action is Action.MIGRATE for c in plan.actionable):
        blocked = [c.reason for c in plan.changes if c.kind == "migration"]
        raise ReconcileError(
            f"migration.{migration.name}: the subscription could not be scheduled"
            + (f" ({'; '.join(blocked)})" if blocked else "")
        )
    apply_plan(plan, snapshot, gateway)
    targets = ", ".join(_name(side.price) for side in news)
    say(f"migration applied: {sub['id']} switches to {targets} on {day(period_end)}")
    steps = [side.usage.step(60) for side in news if not side.usage.licensed]
    step = max(steps, default=60)
    last_event = period_end + 60 + (len(METERED_USAGE) - 1) * step if steps else period_end
    # Past the switch, and past the last event (Stripe takes none more than 5 minutes ahead).
    advance_clock(gateway, clock["id"], max(period_end + HOUR, last_event))
    next_end = int(
        gateway.get(f"/v1/subscriptions/{sub['id']}")["items"]["data"][0]["current_period_end"]
    )
    new_sent = _send(
        gateway,
        news,
        items={},
        customer=customer["id"],
        values=METERED_USAGE,
        first_at=period_end + 60,
        step=step,
        tag=f"sim-{sub['id']}-new",
        period=(period_end, next_end),
        say=lambda text: say(f"period 2: {text}"),
    )
    advance_clock(gateway, clock["id"], next_end + HOUR)
    expected: dict[str, tuple[Mapping[str, Any], int, str, tuple[int, int]]] = {}
    for side in olds:
        quantity = SEATS if side.usage.licensed else side.usage.expected(old_sent[side.id])
        source = _source(side.usage, "old")
        expected[side.id] = (side.price, quantity, source, (period_start, period_end))
    for side in news:
        movers = [old for old in olds if moves[old.id] == side.id]
        quantity = (
            _moved_seats(migration, movers)
            if side.usage.licensed
            else side.usage.expected(new_sent[side.id])
        )
        source = _source(side.usage, "new")
        expected[side.id] = (side.price, quantity, source, (period_end, next_end))
    found = _invoice_checks(gateway, customer["id"], expected)
    missing = [_name(price) for key, (price, *_rest) in expected.items() if key not in found]
    if missing:
        raise ReconcileError(
            f"migration.{migration.name}: expected a line on {', '.join(missing)} for its "
            f"period, found lines for {', '.join(sorted(found)) or 'none'}"
        )
    return SimulationResult(
        migration.name,
        customer["id"],
        sub["id"],
        clock["id"],
        period_end,
        tuple(found[key] for key in expected),
    )


def _send(
    gateway: Gateway,
    sides: Sequence[_Side],
    *,
    items: Mapping[str, Mapping[str, Any]],
    customer: str,
    values: Sequence[int],
    first_at: int,
    step: int,
    tag: str,
    period: tuple[int, int],
    say: Callable[[str], None],
) -> dict[str, Events]:
    """Usage for one side of the switch, the way each price takes it (usage records on its
    item, meter events once per meter), waiting for the meters to count it: what each
    price was sent, by id (nothing for a licensed price)."""
    sent: dict[str, Events] = {}
    by_meter: dict[str, Events] = {}
    for side in sides:
        if side.usage.licensed:
            sent[side.id] = ()
            say(f"{_name(side.price)}: {side.usage.describe(())}")
            continue
        meter = str((side.usage.meter or {}).get("id") or "")
        if meter and meter in by_meter:  # one meter bills every price on it
            sent[side.id] = by_meter[meter]
            continue
        events = _timeline(values, first_at, side.usage.step(step))
        item = str((items.get(side.id) or {}).get("id") or "")
        _report(
            gateway, side.usage, item=item, customer=customer, events=events, tag=f"{tag}-{side.id}"
        )
        say(f"{_name(side.price)}: {side.usage.describe(events)}")
        _wait_for_meter(gateway, side.usage, customer, period, side.usage.expected(events))
        sent[side.id] = events
        if meter:
            by_meter[meter] = events
    return sent


def _source(usage: _Usage, side: str) -> str:
    if usage.licensed:
        return "licensed quantity, billed in advance"
    if usage.usage_records:
        return "usage records"
    return "meter events" if side == "new" else "meter events on the old price"


def _moved_seats(migration: Migration, movers: Sequence[_Side]) -> int:
    """The quantity the moved item carries, by the migration's own rule: the declared
    quantity, else the sum of the items merged into it (each its seats, or 1)."""
    if migration.quantity is not None:
        return migration.quantity
    seats = [
        moved_quantity(migration, SEATS if side.usage.licensed else None, to_metered=False)
        for side in movers
    ]
    return sum(seat if seat is not None else 1 for seat in seats)


def _invoice_checks(
    gateway: Gateway,
    customer: str,
    prices: Mapping[str, tuple[Mapping[str, Any], int, str, tuple[int, int]]],
) -> dict[str, InvoiceCheck]:
    """Each price's line for its usage period (a $0 line a first invoice may hold for a
    metered price is for another period), with its expectation."""
    found: dict[str, InvoiceCheck] = {}
    for invoice in customer_invoices(gateway, customer):
        lines = invoice["lines"]["data"]
        for line in lines:
            price_id = str((line.get("price") or {}).get("id") or "")
            if price_id not in prices or price_id in found:
                continue
            price, quantity, source, period = prices[price_id]
            if (int(line["period"]["start"]), int(line["period"]["end"])) != period:
                continue
            expected = expected_line(price, quantity)
            others = [int(other["amount"]) for other in lines if other is not line]
            total = expected_invoice([expected.amount, *others]).total
            found[price_id] = InvoiceCheck(
                source=source,
                price=_name(price),
                price_id=price_id,
                period=(int(line["period"]["start"]), int(line["period"]["end"])),
                quantity=int(line.get("quantity") or 0),
                expected_quantity=quantity,
                amount=int(line["amount"]),
                expected=expected,
                total=int(invoice["total"]),
                expected_total=total,
                currency=str(price.get("currency") or invoice.get("currency") or "usd"),
            )
    return found
