"""A ``switch_at: now`` that Stripe bills at once, against the account's invoices.

A seat subscription moved to a metered price goes from paid to free, so Stripe
invoices it at the switch and restarts its period; the plan says so beside the
write. Stripe allows a subscription 20 new invoices a day: one that had them
waits (deferred, with the time it frees) instead of failing the apply with a 429,
on a test clock at the clock's time and off a clock at the time of the read (where
a test can only fill the minute's limit: Stripe refuses the eleventh).
"""

from __future__ import annotations

from typing import Any

from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock
from tests.e2e.test_any_price_migrations import (
    DAY,
    START,
    converge,
    paying_customer,
)

CATALOG = """\
version: 1
mode: test
meters:
  - {event_name: api_calls, display_name: API calls, aggregation: sum}
products:
  - {id: prod_app, name: App}
prices:
  - {lookup_key: seat_2025, product: prod_app, currency: usd, unit_amount: 1000,
     recurring: {interval: month}}
  - {lookup_key: calls_2026, product: prod_app, currency: usd, unit_amount_decimal: "0.5",
     recurring: {interval: month, usage: metered, meter: api_calls}}
"""
SWITCH_NOW = (
    CATALOG
    + """\
migrations:
  to-calls:
    from_price: seat_2025
    to_price: calls_2026
    switch_at: now
"""
)


def seat_subscription(gateway: Gateway, customer: str) -> str:
    price = read_snapshot(gateway).prices["seat_2025"].stripe_id
    return str(
        gateway.post(
            "/v1/subscriptions",
            {
                "customer": customer,
                "items": [{"price": price, "quantity": 1}],
                "billing_mode": {"type": "flexible"},
            },
        )["id"]
    )


def invoice_until(
    gateway: Gateway, subscription: str, total: int, clock: str | None = None
) -> None:
    """Seat changes invoiced at once until the subscription has ``total`` invoices (its
    first is the signup's). Stripe allows 10 a minute: on a clock, the clock moves a
    minute on after each ten."""
    item = gateway.get(f"/v1/subscriptions/{subscription}")["items"]["data"][0]["id"]
    for n in range(1, total):
        if clock is not None and n % 10 == 0:
            now = gateway.get(f"/v1/test_helpers/test_clocks/{clock}")["frozen_time"]
            advance_clock(gateway, clock, now + 61, wait_seconds=5)
        gateway.post(
            f"/v1/subscriptions/{subscription}",
            {
                "items": [{"id": item, "quantity": 2 + n % 2}],
                "proration_behavior": "always_invoice",
            },
        )
    invoices = gateway.get("/v1/invoices", {"subscription": subscription, "limit": 100})
    assert len(invoices["data"]) == total


def rows(gateway: Gateway) -> dict[str, dict[str, Any]]:
    config = load_text(SWITCH_NOW, "billing.yaml")
    plan = build_plan(config, read_snapshot(gateway, config))
    (migration,) = [c for c in plan.changes if c.kind == "migration"]
    return {row["subscription"]: row for row in migration.details["subscriptions"]}


def test_a_subscription_at_the_day_limit_on_a_test_clock_waits_a_day_then_moves(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer = paying_customer(gateway)
    busy = seat_subscription(gateway, customer)
    invoice_until(gateway, busy, 20, clock)

    row = rows(gateway)[busy]
    assert (row["state"], row["action"]) == ("deferred", None)
    assert row["blocker"] == (
        "switching now invoices it at once, and it had 20 new invoices in the last day: "
        "Stripe allows 20 a day per subscription, so it switches on an apply after "
        "2026-01-02 00:00:00 UTC"
    )

    advance_clock(gateway, clock, START + DAY + 60, wait_seconds=5)
    row = rows(gateway)[busy]
    assert (row["state"], row["action"]) == ("pending", "create_schedule")
    assert row["note"].startswith("it goes from paid to free at the switch")

    after = converge(load_text(SWITCH_NOW, "billing.yaml"), gateway)
    assert not after.has_changes
    calls = read_snapshot(gateway).prices["calls_2026"].stripe_id
    moved = gateway.get(f"/v1/subscriptions/{busy}")
    assert [i["price"]["id"] for i in moved["items"]["data"]] == [calls]
    # As the note said: billed at the switch, and the period restarts there.
    switch = START + DAY + 60
    assert moved["billing_cycle_anchor"] == switch
    assert moved["items"]["data"][0]["current_period_start"] == switch
    invoices = gateway.get("/v1/invoices", {"subscription": busy, "limit": 100})["data"]
    assert [i["created"] for i in invoices if i["created"] == switch] == [switch]


def test_off_a_clock_the_minute_limit_counts_the_minute_before_the_read(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    customer = gateway.post(
        "/v1/customers",
        {
            "email": "walled@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        },
    )["id"]
    burst, quiet = (seat_subscription(gateway, customer) for _ in range(2))
    invoice_until(gateway, burst, 10)
    invoice_until(gateway, quiet, 9)

    found = rows(gateway)
    assert found[burst]["state"] == "deferred"
    minute = "10 new invoices in the last minute: Stripe allows 10 a minute"
    assert minute in found[burst]["blocker"]
    assert (found[quiet]["state"], found[quiet]["action"]) == ("pending", "create_schedule")
    assert "from paid to free" in found[quiet]["note"]
