"""The demo's story, step by step, on an embedded emulator: no key, no network.

An AI-video business bills generated seconds with a legacy usage-record
price. The demo seeds that account, then follows the migration playbook:
create the meter and the metered price, dual-write meter events beside the
usage records for a full period so the parity gate can prove them equal,
schedule every subscription to switch at its period end, cross the switch on
the test clocks, and compare the last legacy invoice with the first metered
one. Each step returns data; ``cli.py`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.emulator import Emulator
from reconciler.emulator.seed import SeededAccount, SeededCustomer, seed_legacy_account
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.model import Desired
from reconciler.pricing import line_amount
from reconciler.scenario import advance_clock, report_usage, send_meter_event

__all__ = ["DEMO_KEY", "Demo", "InvoiceView", "running_demo"]

DEMO_KEY = "sk_test_demo_0000000000"
DAY = 86400
HOUR = 3600
UNIT_PRICE = {"unit_amount": "0.35"}  # the legacy price and the new metered price alike


@dataclass(frozen=True)
class InvoiceView:
    """One invoice as the demo shows it, with the amount it should have."""

    title: str
    period: tuple[int, int]
    lines: tuple[tuple[str, int], ...]
    subtotal: int
    total: int
    usage_seconds: int
    expected_usage_cents: int
    usage_cents: int

    @property
    def checks(self) -> bool:
        return self.usage_cents == self.expected_usage_cents


class Demo:
    """The demo account: its emulator, a gateway to it, and the seeded customers."""

    def __init__(self, emulator: Emulator, desired: Desired) -> None:
        self.emulator = emulator
        self.desired = desired
        self.gateway = Gateway(DEMO_KEY, api_base=emulator.url)
        self.account: SeededAccount | None = None
        self.usage: dict[str, dict[int, int]] = {}  # customer -> period start -> seconds

    @property
    def customers(self) -> tuple[SeededCustomer, ...]:
        assert self.account is not None, "seed first"
        return self.account.customers

    def seed(self, customers: int = 12) -> SeededAccount:
        self.account = seed_legacy_account(self.emulator, customers=customers)
        for customer in self.account.customers:
            self.usage[customer.customer] = {customer.period_start: customer.usage_total}
        return self.account

    def _advance(self, customer: SeededCustomer, to: int) -> None:
        advance_clock(self.gateway, customer.test_clock, to)

    def _record(self, customer: SeededCustomer, seconds: int, at: int) -> None:
        report_usage(self.gateway, customer.legacy_item, seconds, at)

    def _event(self, customer: SeededCustomer, seconds: int, at: int, key: str) -> None:
        send_meter_event(
            self.gateway, "video_seconds", customer.customer, seconds, at=at, identifier=key
        )

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
                    self._record(customer, seconds, at)
                    self.usage[customer.customer][start] += seconds
                self._event(customer, seconds, at, f"{customer.customer}-p1-{day}")
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
                self._record(customer, seconds, at)
                self._event(customer, seconds, at, f"{customer.customer}-p2-{day}")
                self.usage[customer.customer][start] = (
                    self.usage[customer.customer].get(start, 0) + seconds
                )
                records += 1
                events += 1
            self._advance(customer, period_2_end + HOUR)
            period_3_end = self._period_end(customer)
            for day in range(5):
                at = period_2_end + day * DAY + HOUR
                seconds = 150 * (customer.index + 1) + day
                self._advance(customer, at + 60)
                self._event(customer, seconds, at, f"{customer.customer}-p3-{day}")
                self.usage[customer.customer][period_2_end] = (
                    self.usage[customer.customer].get(period_2_end, 0) + seconds
                )
                events += 1
            self._advance(customer, period_3_end + HOUR)
        return records, events

    def _period_end(self, customer: SeededCustomer) -> int:
        subscription = self.gateway.get(f"/v1/subscriptions/{customer.subscription}")
        return int(subscription["items"]["data"][0]["current_period_end"])

    def invoices(self, customer: SeededCustomer) -> tuple[InvoiceView, InvoiceView]:
        """The last invoice billed from usage records and the first from meter events."""
        found = self.gateway.get(
            "/v1/invoices",
            {"customer": customer.customer, "limit": 100},
            stripe_version=LEGACY_API_VERSION,
        )["data"]
        legacy_price = self.account.legacy_price if self.account else ""
        views = []
        for invoice in sorted(found, key=lambda i: i["created"]):
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
            seconds = self.usage[customer.customer].get(period[0], 0)
            legacy = line["price"]["id"] == legacy_price
            views.append(
                InvoiceView(
                    title="usage records (legacy price)" if legacy else "meter events (new price)",
                    period=period,
                    lines=tuple((_describe(ln, legacy_price), int(ln["amount"])) for ln in lines),
                    subtotal=int(invoice["subtotal"]),
                    total=int(invoice["total"]),
                    usage_seconds=seconds,
                    expected_usage_cents=line_amount(UNIT_PRICE, seconds),
                    usage_cents=int(line["amount"]),
                )
            )
        old = [v for v in views if v.title.startswith("usage")][-1]
        new = next(v for v in views if v.title.startswith("meter"))
        return old, new


def _describe(line: dict[str, Any], legacy_price: str) -> str:
    price = line.get("price") or {}
    if price.get("id") == legacy_price:
        return f"{line.get('quantity')} s video (usage records)"
    if (price.get("recurring") or {}).get("usage_type") == "metered":
        return f"{line.get('quantity')} s video (meter)"
    return str(line.get("description") or price.get("nickname") or "platform fee")


@contextmanager
def running_demo(
    desired: Desired, *, keep: bool = False, db_path: Path | None = None
) -> Iterator[Demo]:
    """A Demo on a fresh emulator; stopped afterwards unless ``keep``."""
    emulator = Emulator(port=0, db_path=db_path)
    emulator.start()
    try:
        yield Demo(emulator, desired)
    finally:
        if not keep:
            emulator.stop()
