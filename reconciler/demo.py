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
one, and retires the emptied old price. Each step returns data; ``cli.py``
prints it.

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

from reconciler.emulator import Emulator
from reconciler.emulator.seed import SeededAccount, SeededCustomer, seed_legacy_account
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
    "Demo",
    "InvoiceView",
    "Rehearsal",
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
        self.account = seed_legacy_account(self.emulator, customers=self.rehearsal.customers)
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
