"""The demo's story, step by step, on an embedded emulator: no key, no network.

An AI-video business bills generated seconds with a legacy usage-record
price. The demo seeds that account, then follows the migration playbook:
create the meter and the metered price, dual-write meter events beside the
usage records for a full period so the parity gate can prove them equal,
schedule every subscription to switch at its period end, cross the switch on
the test clocks, and compare the last legacy invoice with the first metered
one. A second act raises the meter price 20% (:func:`raised`, with
``existing_subscriptions: migrate``), crosses the renewal each subscription
moves at, compares the last invoice on the old price with the first on the new
one, and retires the emptied old price. A third act consolidates two legacy
licensed plans, the platform fee and priority-rendering seats, into one studio
seat (:func:`consolidated`, a migration with ``prices:``): a subscription on
both becomes one item with the sum of their seats, one on either moves too,
and each one's seat lines before and after the switch are checked against
rules worked by hand here (:class:`Consolidation`), not by the project's
invoice code. Each step returns data; ``cli.py`` prints it.

Any billing.yaml with a migration off a legacy price can tell the story
(:func:`prepare`): the seeded legacy price takes the migration's
``from_price`` lookup key, meter events go to the ``to_price``'s meter under
that meter's payload keys (one a day, so each is its own window on a
pre-aggregated meter, and the expected quantity counts what that meter's
``event_time_window`` lets count), and the invoices are checked against
:mod:`reconciler.expected_invoice` (Stripe's documented rules), whatever
the prices charge. What cannot work on the seeded account (another currency
or interval, a ``from_price`` that is itself a meter price, a meter that
does not sum, so parity never holds) is refused before anything starts, with the
reason; what the demo changes to tell the story (one migration, every
subscription, the switch at the period end, a parity gate) is listed.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from reconciler.config import desired_from_data
from reconciler.emulator import Emulator
from reconciler.emulator.seed import (
    PLATFORM_LOOKUP_KEY,
    PRIORITY_LOOKUP_KEY,
    SeededAccount,
    SeededCustomer,
    seed_legacy_account,
)
from reconciler.errors import ReconcileError
from reconciler.expected_invoice import (
    ExpectedLine,
    coupon_from_stripe,
    expected_invoice,
    expected_line,
    metered_quantity,
    money,
    tax_rate_from_stripe,
)
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.model import Desired, Meter, Migration, Price, SwitchAt, Tier
from reconciler.scenario import advance_clock, customer_invoices, report_usage, send_meter_event

__all__ = [
    "DEMO_KEY",
    "Consolidation",
    "Demo",
    "InvoiceView",
    "Rehearsal",
    "SeatInvoice",
    "SeatLine",
    "consolidated",
    "prepare",
    "raised",
    "running_demo",
]

DEMO_KEY = "sk_test_demo_0000000000"
DAY = 86400
HOUR = 3600
CUSTOMERS = 12
SEEDED = {"currency": "usd", "interval": "month", "interval_count": 1}  # the seeded legacy price


@dataclass(frozen=True)
class Rehearsal:
    """What the demo runs: billing.yaml with the one migration it follows, the meter that
    migration's price bills from, how many customers to seed, and what it changed."""

    desired: Desired
    migration: Migration
    meter: Meter
    customers: int
    notes: tuple[str, ...]


def prepare(desired: Desired, name: str = "billing.yaml") -> Rehearsal:
    """Check that ``desired`` can tell the demo's story on the seeded account; refuse with
    the reason when it cannot (:class:`ReconcileError`), before anything starts."""
    if not desired.migrations:
        raise ReconcileError(
            f"{name} declares no migration: the demo moves a legacy usage-record account onto "
            "a meter, so it needs a migrations: entry (see the example billing.yaml)"
        )
    migration = desired.migrations[0]
    notes = []
    if len(desired.migrations) > 1:
        others = ", ".join(m.name for m in desired.migrations[1:])
        notes.append(f"the demo follows migration {migration.name}; left out: {others}")
    where = f"{name}: migration {migration.name}"
    if migration.also:
        raise ReconcileError(
            f"{where} moves {len(migration.pairs)} prices at once; the demo's story moves one "
            "legacy usage-record price to one meter price"
        )
    _refuse_the_third_acts_keys(desired, migration, name)
    if migration.from_price.startswith("price_"):
        raise ReconcileError(
            f"{where}: from_price {migration.from_price} is a price id; the demo seeds its own "
            "legacy price, so it needs a lookup key to give it"
        )
    if any(p.lookup_key == migration.from_price for p in desired.prices):
        raise ReconcileError(
            f"{where}: from_price {migration.from_price} is declared in prices (a meter price); "
            "the demo's story starts from a legacy usage-record price"
        )
    target = next(p for p in desired.prices if p.lookup_key == migration.to_price)
    recurring = target.recurring
    if target.currency != SEEDED["currency"]:
        raise ReconcileError(
            f"{where}: to_price {target.lookup_key} is in {target.currency}; the demo's legacy "
            "account bills in usd, and a subscription holds one currency"
        )
    if recurring is None or (recurring.interval, recurring.interval_count) != ("month", 1):
        raise ReconcileError(
            f"{where}: to_price {target.lookup_key} is not monthly; the demo's legacy "
            "subscriptions renew every month, and one subscription has one billing interval"
        )
    meter = next(m for m in desired.meters if m.event_name == target.meter)
    if meter.aggregation != "sum":
        raise ReconcileError(
            f"{where}: meter {meter.event_name} aggregates with {meter.aggregation}; the demo "
            "holds the migration back until the meter's figures equal the summed usage "
            "records (the parity gate), which a meter that does not sum never reaches"
        )
    changes: dict[str, Any] = {}
    if migration.require_usage_parity is None:
        changes["require_usage_parity"] = Decimal("0.5")
        notes.append("the parity gate holds the migration until usage matches (0.5%)")
    if migration.subscriptions is not None or migration.exclude:
        changes.update(subscriptions=None, exclude=())
        notes.append("every seeded subscription is migrated (the file names its own)")
    if migration.switch_at != SwitchAt("period_end"):
        changes["switch_at"] = SwitchAt("period_end")
        notes.append(
            f"the switch is at the period end (the file says {migration.switch_at.to_value()})"
        )
    if migration.paused:
        changes["paused"] = False
        notes.append("the migration runs (the file pauses it)")
    customers = min(CUSTOMERS, migration.batch or CUSTOMERS)
    if customers < CUSTOMERS:
        notes.append(f"{customers} customers are seeded: one batch of {migration.batch}")
    adjusted = dataclasses.replace(migration, **changes)
    return Rehearsal(
        dataclasses.replace(desired, migrations=(adjusted,)),
        adjusted,
        meter,
        customers,
        tuple(notes),
    )


RAISE = Decimal("1.2")
"""The demo's price increase: every amount of the meter price 20% up."""


def _up(amount: int | None, decimal: Decimal | None) -> Decimal | None:
    """An amount (minor units, whole or decimal) raised by :data:`RAISE`, as a decimal within
    Stripe's 12 places."""
    base = decimal if decimal is not None else (Decimal(amount) if amount is not None else None)
    if base is None:
        return None
    return (base * RAISE).quantize(Decimal("1e-12")).normalize()


def raised(rehearsal: Rehearsal) -> tuple[Desired, Price]:
    """billing.yaml after the demo's price increase: the migration's meter price with every
    amount 20% up, moving the subscriptions on it at their period end
    (``existing_subscriptions: migrate``); and that price."""
    desired = rehearsal.desired
    key = rehearsal.migration.to_price
    old = next(p for p in desired.prices if p.lookup_key == key)
    new = dataclasses.replace(
        old,
        unit_amount=None,
        unit_amount_decimal=_up(old.unit_amount, old.unit_amount_decimal),
        tiers=tuple(
            Tier(
                up_to=t.up_to,
                unit_amount_decimal=_up(t.unit_amount, t.unit_amount_decimal),
                flat_amount_decimal=_up(t.flat_amount, t.flat_amount_decimal),
            )
            for t in old.tiers
        ),
        existing_subscriptions="migrate",
    )
    if not old.tiers and new.unit_amount_decimal is None:
        raise ReconcileError(f"price {key} has no amount to raise")
    prices = tuple(new if p is old else p for p in desired.prices)
    return dataclasses.replace(desired, prices=prices), new


STUDIO_KEY = "studio_seat"
CONSOLIDATION = "one-studio-plan"
CONSOLIDATION_YAML = """\
prices:
  - lookup_key: studio_seat
    product: {product}
    currency: usd
    nickname: Studio seat (platform and priority rendering)
    unit_amount: 4000
    recurring: {{interval: month}}
migrations:
  one-studio-plan:
    prices:
      platform_fee: studio_seat
      priority_rendering: studio_seat
    switch_at: period_end
"""
"""What the third act adds to billing.yaml: the consolidated price, on the product of the
migration's ``to_price``, and the migration that moves both legacy plans onto it."""

# The third act's figures, worked by hand (the seed's prices and the price declared
# above), so that its checks do not come from the amounts they check.
PLATFORM_SEAT = 4900  # platform_fee: $49.00 a month, one seat
PRIORITY_SEAT = 1500  # priority_rendering: $15.00 a seat a month
STUDIO_SEAT = 4000  # studio_seat: $40.00 a seat a month


def _refuse_the_third_acts_keys(desired: Desired, migration: Migration, name: str) -> None:
    """The third act seeds two legacy plans and declares their consolidation under fixed
    names: a file that already uses one cannot tell that act."""
    ours = (PLATFORM_LOOKUP_KEY, PRIORITY_LOOKUP_KEY, STUDIO_KEY)
    declared = {p.lookup_key for p in desired.prices} | {migration.from_price}
    taken = [key for key in ours if key in declared]
    if taken or migration.name == CONSOLIDATION:
        what = f"price {', '.join(taken)}" if taken else f"migration {CONSOLIDATION}"
        raise ReconcileError(
            f"{name} uses {what}; the demo's third act seeds the legacy plans "
            f"{PLATFORM_LOOKUP_KEY} and {PRIORITY_LOOKUP_KEY} and consolidates them into "
            f"{STUDIO_KEY} with migration {CONSOLIDATION}, so it needs those names free"
        )


def consolidated(desired: Desired, rehearsal: Rehearsal) -> tuple[Desired, str]:
    """billing.yaml for the third act: ``desired`` with :data:`CONSOLIDATION_YAML` added
    (checked as any billing.yaml is), and the YAML added."""
    product = next(
        p.product for p in desired.prices if p.lookup_key == rehearsal.migration.to_price
    )
    text = CONSOLIDATION_YAML.format(product=product)
    added = yaml.safe_load(text)
    data = desired.to_dict()
    data["prices"] = [*data["prices"], *added["prices"]]
    data["migrations"] = {**data["migrations"], **added["migrations"]}
    return desired_from_data(data, "billing.yaml"), text


def _dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


@dataclass(frozen=True)
class SeatLine:
    """A seat line of an invoice: the price's lookup key, its seats and its amount."""

    price: str
    seats: int
    amount: int

    def __str__(self) -> str:
        return f"{self.price} {self.seats} x {_dollars(self.amount // max(self.seats, 1))}"


@dataclass(frozen=True)
class SeatInvoice:
    """One invoice of the third act: its seat lines beside the ones worked by hand."""

    title: str
    period: tuple[int, int]
    lines: tuple[tuple[str, int], ...]
    subtotal: int
    total: int
    seats: tuple[SeatLine, ...]
    expected: tuple[SeatLine, ...]
    why: str

    @property
    def checks(self) -> bool:
        return self.seats == self.expected

    def check_rows(self, width: int = 40) -> list[str]:
        """How the seat lines are worked, and whether the invoice agrees."""
        found = "; ".join(f"{s} = {_dollars(s.amount)}" for s in self.seats) or "no seat line"
        rows = textwrap.wrap(self.why, width)
        if not self.checks:
            rows += textwrap.wrap(f"billed: {found}", width)
        return [*rows, "seat lines: " + ("ok" if self.checks else "MISMATCH")]


@dataclass(frozen=True)
class Consolidation:
    """One subscription on the legacy seat plans: what it holds, and its last invoice on
    them and its first on the consolidated price (None when there is none)."""

    customer: str
    platform_seats: int
    priority_seats: int
    before: SeatInvoice | None
    after: SeatInvoice | None

    @property
    def seats(self) -> int:
        return self.platform_seats + self.priority_seats

    @property
    def checks(self) -> bool:
        return (
            self.before is not None
            and self.after is not None
            and self.before.checks
            and self.after.checks
        )

    def summary(self) -> str:
        """One line: the seats before, the item after, and whether both invoices agree."""
        held = [
            f"{n} {key}"
            for n, key in (
                (self.platform_seats, PLATFORM_LOOKUP_KEY),
                (self.priority_seats, PRIORITY_LOOKUP_KEY),
            )
            if n
        ]
        merged = "one item: " if len(held) > 1 else ""
        if self.checks:
            verdict = "ok"
        elif self.before is None or self.after is None:
            verdict = f"MISMATCH (no invoice {'before' if self.before is None else 'after'})"
        else:
            verdict = "MISMATCH"
        return (
            f"{self.customer}: {' + '.join(held)} -> {merged}{self.seats} {STUDIO_KEY} "
            f"= {_dollars(self.seats * STUDIO_SEAT)}: {verdict}"
        )


@dataclass(frozen=True)
class InvoiceView:
    """One invoice as the demo shows it, with what Stripe's rules say it should be."""

    title: str
    price: str
    period: tuple[int, int]
    lines: tuple[tuple[str, int], ...]
    subtotal: int
    total: int
    usage_quantity: int
    usage_units: int
    usage_cents: int
    expected: ExpectedLine
    expected_total: int
    currency: str = "usd"
    price_id: str = ""

    @property
    def checks(self) -> bool:
        return (
            self.usage_units == self.usage_quantity
            and self.usage_cents == self.expected.amount
            and self.total == self.expected_total
        )

    def check_rows(self, width: int = 40) -> list[str]:
        """Why the usage line costs what it does, and whether the invoice agrees."""
        mark = "ok" if self.checks else "MISMATCH"
        rows = textwrap.wrap(f"{self.price}: {self.expected.why}", width)
        return [
            *rows,
            f"expected line {money(self.expected.amount, self.currency)}, "
            f"total {money(self.expected_total, self.currency)}: {mark}",
        ]


class Demo:
    """The demo account: its emulator, a gateway to it, and the seeded customers."""

    def __init__(self, emulator: Emulator, rehearsal: Rehearsal) -> None:
        self.emulator = emulator
        self.rehearsal = rehearsal
        self.gateway = Gateway(DEMO_KEY, api_base=emulator.url)
        self.account: SeededAccount | None = None
        self.records: dict[str, dict[int, int]] = {}  # customer -> period start -> seconds
        # customer -> period start -> (timestamp, value) of each meter event, as sent
        self.events: dict[str, dict[int, list[tuple[int, int]]]] = {}

    @property
    def customers(self) -> tuple[SeededCustomer, ...]:
        assert self.account is not None, "seed first"
        return self.account.customers

    def seed(self) -> SeededAccount:
        """The legacy account, its price under the migration's ``from_price`` lookup key."""
        self.account = seed_legacy_account(
            self.emulator, customers=self.rehearsal.customers, priority_rendering=True
        )
        key = self.rehearsal.migration.from_price
        legacy = self.gateway.get(
            f"/v1/prices/{self.account.legacy_price}", stripe_version=LEGACY_API_VERSION
        )
        if legacy.get("lookup_key") != key:
            self.gateway.post(
                f"/v1/prices/{self.account.legacy_price}",
                {"lookup_key": key},
                stripe_version=LEGACY_API_VERSION,
            )
        for customer in self.account.customers:
            self.records[customer.customer] = {customer.period_start: customer.usage_total}
            self.events[customer.customer] = {}
        return self.account

    def _advance(self, customer: SeededCustomer, to: int) -> None:
        advance_clock(self.gateway, customer.test_clock, to)

    def _record(self, customer: SeededCustomer, seconds: int, at: int, period: int) -> None:
        report_usage(self.gateway, customer.legacy_item, seconds, at)
        by_period = self.records[customer.customer]
        by_period[period] = by_period.get(period, 0) + seconds

    def _event(
        self, customer: SeededCustomer, seconds: int, at: int, key: str, period: int
    ) -> None:
        meter = self.rehearsal.meter
        send_meter_event(
            self.gateway,
            meter.event_name,
            customer.customer,
            seconds,
            at=at,
            identifier=key,
            customer_key=meter.customer_key,
            value_key=meter.value_key,
        )
        self.events[customer.customer].setdefault(period, []).append((at, seconds))

    @staticmethod
    def _daily(customer: SeededCustomer, day: int) -> int:
        return 60 * (customer.index + 1) + 7 * day

    def dual_write_first_period(self) -> int:
        """Meter events beside the usage records for all of period 1; the clocks then
        cross into period 2. Returns the meter events sent."""
        sent = 0
        for customer in self.customers:
            start, end = customer.period_start, customer.period_end
            days = (end - start) // DAY
            self._advance(customer, end - HOUR)
            for day in range(days):
                at = start + day * DAY + HOUR
                seconds = self._daily(customer, day)
                if day >= 10:  # the seed already reported days 0-9 as usage records
                    self._record(customer, seconds, at, start)
                self._event(customer, seconds, at, f"{customer.customer}-p1-{day}", start)
                sent += 1
            self._advance(customer, end + HOUR)
        return sent

    def cross_the_switch(self) -> tuple[int, int]:
        """Period 2 on both (usage records still bill it), the switch at its end, then
        period 3 on meter events alone. Returns (usage records, meter events) sent."""
        records = events = 0
        for customer in self.customers:
            start = customer.period_end
            period_2_end = self._period_end(customer)
            for day in range(5):
                at = start + day * DAY + HOUR
                seconds = 100 * (customer.index + 1) + day
                self._advance(customer, at + 60)
                self._record(customer, seconds, at, start)
                self._event(customer, seconds, at, f"{customer.customer}-p2-{day}", start)
                records += 1
                events += 1
            self._advance(customer, period_2_end + HOUR)
            period_3_end = self._period_end(customer)
            for day in range(5):
                at = period_2_end + day * DAY + HOUR
                seconds = 150 * (customer.index + 1) + day
                self._advance(customer, at + 60)
                self._event(customer, seconds, at, f"{customer.customer}-p3-{day}", period_2_end)
                events += 1
            self._advance(customer, period_3_end + HOUR)
        return records, events

    def cross_the_raise(self) -> int:
        """The period the price increase is scheduled at the end of, then the first period
        on the raised price, on meter events. Returns the meter events sent."""
        sent = 0
        for customer in self.customers:
            start = self._period_start(customer)
            end = self._period_end(customer)
            for period, base in ((start, 200), (end, 250)):
                for day in range(5):
                    at = period + day * DAY + HOUR
                    seconds = base * (customer.index + 1) + day
                    self._advance(customer, at + 60)
                    self._event(
                        customer, seconds, at, f"{customer.customer}-r{period}-{day}", period
                    )
                    sent += 1
                self._advance(customer, self._period_end(customer) + HOUR)
        return sent

    @property
    def seat_holders(self) -> tuple[SeededCustomer, ...]:
        """The customers on either legacy seat plan (the platform fee, priority rendering)."""
        return tuple(c for c in self.customers if c.platform_item or c.priority_item)

    def cross_the_consolidation(self) -> int:
        """Each seat holder's clock past its period end, where the consolidation switches.
        Returns the subscriptions that renewed."""
        for customer in self.seat_holders:
            self._advance(customer, self._period_end(customer) + HOUR)
        return len(self.seat_holders)

    def consolidations(self, studio_price: str) -> tuple[Consolidation, ...]:
        """Each seat holder's last invoice on the legacy seat plans and first on the studio
        seat (``studio_price``), checked against the seats the seed gave it."""
        assert self.account is not None, "seed first"
        keys = {
            self.account.platform_price: PLATFORM_LOOKUP_KEY,
            str(self.account.priority_price): PRIORITY_LOOKUP_KEY,
            studio_price: STUDIO_KEY,
        }
        found = []
        for customer in self.seat_holders:
            platform = 1 if customer.platform_item else 0
            priority = customer.priority_seats
            held = [
                SeatLine(key, n, n * amount)
                for key, n, amount in (
                    (PLATFORM_LOOKUP_KEY, platform, PLATFORM_SEAT),
                    (PRIORITY_LOOKUP_KEY, priority, PRIORITY_SEAT),
                )
                if n
            ]
            seats = platform + priority
            why_before = (
                " + ".join(f"{line.seats} x {_dollars(line.amount // line.seats)}" for line in held)
                + f" = {_dollars(sum(line.amount for line in held))}"
            )
            why_after = (
                f"{' + '.join(str(line.seats) for line in held)} = {seats} seats"
                if len(held) > 1
                else f"{seats} seat{'s' if seats > 1 else ''}"
            ) + f" x {_dollars(STUDIO_SEAT)} = {_dollars(seats * STUDIO_SEAT)}, one item"
            invoices = [
                (invoice, _seat_lines(invoice, keys))
                for invoice in customer_invoices(self.gateway, customer.customer)
            ]
            on_old = [i for i, lines in invoices if any(ln.price != STUDIO_KEY for ln in lines)]
            on_new = [i for i, lines in invoices if any(ln.price == STUDIO_KEY for ln in lines)]
            before = (
                _seat_invoice(on_old[-1], keys, "the two legacy plans", tuple(held), why_before)
                if on_old
                else None
            )
            after = (
                _seat_invoice(
                    on_new[0],
                    keys,
                    "one studio seat plan",
                    (SeatLine(STUDIO_KEY, seats, seats * STUDIO_SEAT),),
                    why_after,
                )
                if on_new
                else None
            )
            name = str(self.gateway.get(f"/v1/customers/{customer.customer}").get("name"))
            found.append(Consolidation(name, platform, priority, before, after))
        return tuple(found)

    def _period_start(self, customer: SeededCustomer) -> int:
        subscription = self.gateway.get(f"/v1/subscriptions/{customer.subscription}")
        return int(subscription["items"]["data"][0]["current_period_start"])

    def _period_end(self, customer: SeededCustomer) -> int:
        subscription = self.gateway.get(f"/v1/subscriptions/{customer.subscription}")
        return int(subscription["items"]["data"][0]["current_period_end"])

    def invoices(self, customer: SeededCustomer) -> tuple[InvoiceView, InvoiceView]:
        """The last invoice billed from usage records and the first from meter events."""
        assert self.account is not None, "seed first"
        legacy = self.account.legacy_price
        views = self._views(customer, {legacy: "usage records (legacy price)"})
        old = [v for v in views if v.price_id == legacy][-1]
        new = next(v for v in views if v.price_id != legacy)
        return old, new

    def raise_invoices(
        self, customer: SeededCustomer, old_price: str, new_price: str
    ) -> tuple[InvoiceView, InvoiceView]:
        """The last invoice on the meter price before the increase and the first after."""
        titles = {old_price: "meter events (before)", new_price: "meter events (raised)"}
        views = self._views(customer, titles)
        old = [v for v in views if v.price_id == old_price][-1]
        new = next(v for v in views if v.price_id == new_price)
        return old, new

    def _views(self, customer: SeededCustomer, titles: dict[str, str]) -> list[InvoiceView]:
        """Each of the customer's invoices with a usage line, checked; titled by its usage
        line's price (``titles``, else as billed from meter events)."""
        assert self.account is not None, "seed first"
        legacy_price = self.account.legacy_price
        coupon = coupon_from_stripe(self.gateway.get(f"/v1/coupons/{self.account.coupon}"))
        rate = tax_rate_from_stripe(self.gateway.get(f"/v1/tax_rates/{self.account.tax_rate}"))
        views = []
        for invoice in customer_invoices(self.gateway, customer.customer):
            lines = invoice["lines"]["data"]
            usage = [
                ln
                for ln in lines
                if (ln.get("price") or {}).get("recurring", {}).get("usage_type") == "metered"
            ]
            if not usage:
                continue
            line = usage[0]
            period = (int(line["period"]["start"]), int(line["period"]["end"]))
            legacy = line["price"]["id"] == legacy_price
            if legacy:
                quantity = self.records[customer.customer].get(period[0], 0)
            else:
                meter = self.rehearsal.meter
                quantity = metered_quantity(
                    meter.aggregation,
                    self.events[customer.customer].get(period[0], []),
                    meter.event_time_window,
                )
            price = self.gateway.get(
                f"/v1/prices/{line['price']['id']}",
                {"expand": ["tiers"]},
                stripe_version=LEGACY_API_VERSION,
            )
            expected = expected_line(price, quantity)
            others = [int(ln["amount"]) for ln in lines if ln is not line]
            whole = expected_invoice(
                [expected.amount, *others],
                coupons=[coupon] if invoice.get("discounts") else [],
                tax_rates=[rate] if invoice.get("total_tax_amounts") else [],
                currency=str(invoice["currency"]),
            )
            views.append(
                InvoiceView(
                    title=titles.get(line["price"]["id"], "meter events (new price)"),
                    price=str(price.get("lookup_key") or price["id"]),
                    price_id=str(line["price"]["id"]),
                    period=period,
                    lines=tuple((_describe(ln, legacy_price), int(ln["amount"])) for ln in lines),
                    subtotal=int(invoice["subtotal"]),
                    total=int(invoice["total"]),
                    usage_quantity=quantity,
                    usage_units=int(line.get("quantity") or 0),
                    usage_cents=int(line["amount"]),
                    expected=expected,
                    expected_total=whole.total,
                    currency=str(invoice["currency"]),
                )
            )
        return views


def _seat_lines(invoice: dict[str, Any], keys: dict[str, str]) -> tuple[SeatLine, ...]:
    """The invoice's lines on the seat prices (``keys``: price id -> lookup key)."""
    return tuple(
        SeatLine(keys[price], int(line.get("quantity") or 0), int(line["amount"]))
        for line in invoice["lines"]["data"]
        if (price := str((line.get("price") or {}).get("id"))) in keys
    )


def _seat_invoice(
    invoice: dict[str, Any],
    keys: dict[str, str],
    title: str,
    expected: tuple[SeatLine, ...],
    why: str,
) -> SeatInvoice:
    lines = invoice["lines"]["data"]
    seats = _seat_lines(invoice, keys)
    first = next(ln for ln in lines if str((ln.get("price") or {}).get("id")) in keys)
    described = []
    for line in lines:
        price = line.get("price") or {}
        key = keys.get(str(price.get("id")))
        if key is not None:
            text = f"{line.get('quantity')} x {key}"
        elif (price.get("recurring") or {}).get("usage_type") == "metered":
            text = f"{line.get('quantity')} units (meter)"
        else:
            text = str(line.get("description") or price.get("nickname") or price.get("id"))
        described.append((text, int(line["amount"])))
    return SeatInvoice(
        title=title,
        period=(int(first["period"]["start"]), int(first["period"]["end"])),
        lines=tuple(described),
        subtotal=int(invoice["subtotal"]),
        total=int(invoice["total"]),
        seats=seats,
        expected=expected,
        why=why,
    )


def _describe(line: dict[str, Any], legacy_price: str) -> str:
    price = line.get("price") or {}
    if price.get("id") == legacy_price:
        return f"{line.get('quantity')} units (usage records)"
    if (price.get("recurring") or {}).get("usage_type") == "metered":
        return f"{line.get('quantity')} units (meter)"
    return str(line.get("description") or price.get("nickname") or "platform fee")


@contextmanager
def running_demo(
    rehearsal: Rehearsal, *, keep: bool = False, db_path: Path | None = None
) -> Iterator[Demo]:
    """A Demo on a fresh emulator; stopped afterwards unless ``keep``."""
    emulator = Emulator(port=0, db_path=db_path)
    emulator.start()
    try:
        yield Demo(emulator, rehearsal)
    finally:
        if not keep:
            emulator.stop()
