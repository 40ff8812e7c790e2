"""Simulate each migration end to end on a test clock, and check the two invoices.

For every migration in billing.yaml: a customer on a fresh test clock with a
subscription on the legacy price, usage reported as usage records, the
migration applied to that one subscription, meter events sent after the
switch, the clock advanced through two periods, and the last legacy invoice
and the first metered one compared with what the prices should charge
(:mod:`reconciler.pricing`). On the embedded emulator the legacy price is
created to mirror the new one when the account has none.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.apply import apply_plan
from reconciler.errors import ReconcileError
from reconciler.essence import price_essence_from_stripe
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.live import read_legacy_price, read_snapshot
from reconciler.model import Desired, Migration
from reconciler.planner import build_plan
from reconciler.pricing import line_amount
from reconciler.scenario import advance_clock, report_usage, send_meter_event

__all__ = ["InvoiceCheck", "SimulationResult", "simulate_migration"]

DAY = 86400
HOUR = 3600
LEGACY_USAGE = (1200, 845, 2010)  # seconds reported as usage records in period 1
METERED_USAGE = (1500, 990, 3125)  # seconds sent as meter events in period 2


@dataclass(frozen=True)
class InvoiceCheck:
    """One invoice's usage line against what the price should charge."""

    source: str
    period: tuple[int, int]
    quantity: int
    amount: int
    expected: int
    total: int

    @property
    def ok(self) -> bool:
        return self.amount == self.expected


@dataclass(frozen=True)
class SimulationResult:
    migration: str
    customer: str
    subscription: str
    legacy: InvoiceCheck
    metered: InvoiceCheck

    @property
    def ok(self) -> bool:
        return self.legacy.ok and self.metered.ok


def _legacy_price(gateway: Gateway, desired: Desired, migration: Migration) -> dict[str, Any]:
    """The legacy price in the account, or one made to mirror the new price."""
    reference = migration.from_price
    existing = read_legacy_price(gateway, reference)
    if existing is not None:
        return existing
    if reference.startswith("price_"):
        raise ReconcileError(f"migration.{migration.name}: from_price {reference} not found")
    target = next(p for p in desired.prices if p.lookup_key == migration.to_price)
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
    if target.tiers:
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = target.tiers_mode
        params["tiers"] = [t.to_dict() for t in target.tiers]
    elif target.unit_amount_decimal is not None:
        params["unit_amount_decimal"] = str(target.unit_amount_decimal)
    else:
        params["unit_amount"] = target.unit_amount
    if target.transform_quantity is not None:
        params["transform_quantity"] = target.transform_quantity.to_dict()
    return gateway.post("/v1/prices", params, stripe_version=LEGACY_API_VERSION)


def _essence_of(price: dict[str, Any]) -> dict[str, Any]:
    return price_essence_from_stripe(price, {})


def simulate_migration(
    gateway: Gateway,
    desired: Desired,
    migration: Migration,
    *,
    say: Callable[[str], None] = lambda _line: None,
    start: int | None = None,
) -> SimulationResult:
    """Run one migration for one new subscription on a test clock; see the module doc."""
    begin = start if start is not None else int(time.time()) // DAY * DAY
    legacy = _legacy_price(gateway, desired, migration)
    clock = gateway.post(
        "/v1/test_helpers/test_clocks",
        {"frozen_time": begin, "name": f"simulate {migration.name}"},
    )
    customer = gateway.post(
        "/v1/customers", {"name": f"simulate {migration.name}", "test_clock": clock["id"]}
    )
    sub = gateway.post(
        "/v1/subscriptions",
        {"customer": customer["id"], "items": [{"price": legacy["id"]}]},
        stripe_version=LEGACY_API_VERSION,
    )
    item = sub["items"]["data"][0]
    period_end = int(item["current_period_end"])
    say(f"customer {customer['id']} on test clock {clock['id']}, subscription {sub['id']}")
    advance_clock(gateway, clock["id"], begin + DAY)
    for n, seconds in enumerate(LEGACY_USAGE):
        report_usage(gateway, item["id"], seconds, begin + n * HOUR + 60)
    say(f"{sum(LEGACY_USAGE)} seconds reported as usage records")
    only_this = dataclasses.replace(
        migration,
        subscriptions=(sub["id"],),
        exclude=(),
        batch=None,
        require_usage_parity=None,
        paused=False,
    )
    one = dataclasses.replace(desired, migrations=(only_this,))
    snapshot = read_snapshot(gateway, one)
    plan = build_plan(one, snapshot)
    apply_plan(plan, snapshot, gateway)
    say(f"migration applied: switch at the period end ({period_end})")
    advance_clock(gateway, clock["id"], period_end + HOUR)
    meter = str(next(p for p in desired.prices if p.lookup_key == migration.to_price).meter)
    for n, seconds in enumerate(METERED_USAGE):
        at = period_end + n * 60
        send_meter_event(
            gateway, meter, customer["id"], seconds, at=at, identifier=f"sim-{sub['id']}-{n}"
        )
    say(f"{sum(METERED_USAGE)} seconds sent as meter events after the switch")
    next_end = int(
        gateway.get(f"/v1/subscriptions/{sub['id']}")["items"]["data"][0]["current_period_end"]
    )
    advance_clock(gateway, clock["id"], next_end + HOUR)
    target = read_snapshot(gateway).prices[migration.to_price]
    checks = _invoice_checks(gateway, customer["id"], legacy, target.stripe_id)
    legacy_check = checks.get(legacy["id"])
    metered_check = checks.get(target.stripe_id)
    if legacy_check is None or metered_check is None:
        raise ReconcileError(
            f"migration.{migration.name}: expected a legacy and a metered invoice, "
            f"found usage lines for {sorted(checks)}"
        )
    return SimulationResult(
        migration.name,
        customer["id"],
        sub["id"],
        dataclasses.replace(
            legacy_check,
            expected=line_amount(_essence_of(legacy), sum(LEGACY_USAGE)),
        ),
        dataclasses.replace(
            metered_check,
            expected=line_amount(target.essence, sum(METERED_USAGE)),
        ),
    )


def _invoice_checks(
    gateway: Gateway, customer: str, legacy: dict[str, Any], new_price: str
) -> dict[str, InvoiceCheck]:
    """The first usage line of each price, across the customer's invoices."""
    found: dict[str, InvoiceCheck] = {}
    invoices = gateway.get(
        "/v1/invoices", {"customer": customer, "limit": 100}, stripe_version=LEGACY_API_VERSION
    )["data"]
    for invoice in sorted(invoices, key=lambda i: i["created"]):
        for line in invoice["lines"]["data"]:
            price = (line.get("price") or {}).get("id")
            if price in (legacy["id"], new_price) and price not in found:
                found[price] = InvoiceCheck(
                    source="usage records" if price == legacy["id"] else "meter events",
                    period=(int(line["period"]["start"]), int(line["period"]["end"])),
                    quantity=int(line.get("quantity") or 0),
                    amount=int(line["amount"]),
                    expected=-1,
                    total=int(invoice["total"]),
                )
    return found
