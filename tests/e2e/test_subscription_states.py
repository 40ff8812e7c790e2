"""Each subscription's own state decides its migration, on test clocks.

A subscription set to cancel (at its period end, at a date, or by its schedule's
``end_behavior: cancel``) is skipped and never revived: no schedule is written,
and it ends when it was going to. One whose renewal failed (``past_due``) or
whose first payment failed (``incomplete``) is blocked until paid, then moves.
Customers pay with Stripe's test cards: ``pm_card_visa`` pays,
``pm_card_chargeCustomerFail`` attaches and then fails every charge.
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
    CATALOG,
    DAY,
    RAISE,
    START,
    converge,
    invoice_lines,
    paying_customer,
    subscribe,
)

HOUR = 3600
RENEWAL = START + 31 * DAY  # January has 31 days


def migration_rows(gateway: Gateway) -> dict[str, dict[str, Any]]:
    config = load_text(RAISE, "billing.yaml")
    plan = build_plan(config, read_snapshot(gateway, config))
    change = next(c for c in plan.changes if c.kind == "migration")
    return {row["subscription"]: row for row in change.details["subscriptions"]}


def pay(gateway: Gateway, customer: str, invoice: str) -> None:
    """The customer pays the invoice with a new card that works."""
    card = gateway.post("/v1/payment_methods/pm_card_visa/attach", {"customer": customer})["id"]
    gateway.post(f"/v1/invoices/{invoice}/pay", {"payment_method": card})


def test_a_subscription_set_to_cancel_is_skipped_and_ends_as_it_was_going_to(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock_a, _, at_period_end = subscribe(gateway, "seat_2025", 1)
    clock_b, _, at_date = subscribe(gateway, "seat_2025", 1)
    gateway.post(f"/v1/subscriptions/{at_period_end}", {"cancel_at_period_end": True})
    gateway.post(
        f"/v1/subscriptions/{at_date}",
        {"cancel_at": START + 20 * DAY, "proration_behavior": "none"},
    )

    found = migration_rows(gateway)
    assert (found[at_period_end]["state"], found[at_period_end]["action"]) == ("skipped", None)
    assert found[at_period_end]["blocker"] == (
        "set to cancel at its period end; a schedule would keep it alive, so it is left alone"
    )
    assert found[at_date]["blocker"] == (
        "set to cancel on 2026-01-21 00:00 UTC; a schedule would keep it alive, so it is left alone"
    )
    assert not converge(load_text(RAISE, "billing.yaml"), gateway).has_changes
    for sub in (at_period_end, at_date):
        assert gateway.get(f"/v1/subscriptions/{sub}")["schedule"] is None

    advance_clock(gateway, clock_a, RENEWAL + 2 * HOUR, wait_seconds=5)
    advance_clock(gateway, clock_b, RENEWAL + 2 * HOUR, wait_seconds=5)
    for sub in (at_period_end, at_date):
        assert gateway.get(f"/v1/subscriptions/{sub}")["status"] == "canceled"
    assert {row["state"] for row in migration_rows(gateway).values()} == {"skipped"}


def test_a_subscription_its_schedule_cancels_is_skipped_and_never_revived(
    emulator: Emulator, gateway: Gateway
) -> None:
    """Someone's schedule ends the subscription (``end_behavior: cancel``) before the
    switch: taking the schedule over would add a phase past its end and revive it."""
    from reconciler.gateway import LEGACY_API_VERSION

    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, _, subscription = subscribe(gateway, "seat_2025", 2)
    schedule = gateway.post(
        "/v1/subscription_schedules",
        {"from_subscription": subscription},
        stripe_version=LEGACY_API_VERSION,
    )
    phase = schedule["phases"][0]
    items = [{"price": i["price"], "quantity": i["quantity"]} for i in phase["items"]]
    ends = START + 20 * DAY
    gateway.post(
        f"/v1/subscription_schedules/{schedule['id']}",
        {
            "end_behavior": "cancel",
            "phases": [{"items": items, "start_date": phase["start_date"], "end_date": ends}],
            "proration_behavior": "none",
        },
        stripe_version=LEGACY_API_VERSION,
    )
    row = migration_rows(gateway)[subscription]
    assert (row["state"], row["action"]) == ("skipped", None)
    assert row["blocker"] == (
        "set to cancel when its schedule ends on 2026-01-21 00:00 UTC; a schedule would keep "
        "it alive, so it is left alone"
    )
    assert not converge(load_text(RAISE, "billing.yaml"), gateway).has_changes
    kept = gateway.get(f"/v1/subscription_schedules/{schedule['id']}")
    assert (kept["end_behavior"], kept["metadata"]) == ("cancel", {})
    advance_clock(gateway, clock, RENEWAL + 2 * HOUR, wait_seconds=5)
    assert gateway.get(f"/v1/subscriptions/{subscription}")["status"] == "canceled"


def test_a_failed_renewal_blocks_the_move_until_the_invoice_is_paid(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, sub = subscribe(gateway, "seat_2025", 2)
    failing = gateway.post(
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach", {"customer": customer}
    )["id"]
    gateway.post(
        f"/v1/customers/{customer}", {"invoice_settings": {"default_payment_method": failing}}
    )
    advance_clock(gateway, clock, RENEWAL + 2 * HOUR, wait_seconds=5)
    owing = gateway.get(f"/v1/subscriptions/{sub}")
    assert owing["status"] == "past_due"

    row = migration_rows(gateway)[sub]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert row["blocker"] == "status past_due: it moves once its invoices are paid"
    assert not converge(load_text(RAISE, "billing.yaml"), gateway).has_changes
    assert gateway.get(f"/v1/subscriptions/{sub}")["schedule"] is None

    pay(gateway, customer, owing["latest_invoice"])
    assert gateway.get(f"/v1/subscriptions/{sub}")["status"] == "active"
    after = converge(load_text(RAISE, "billing.yaml"), gateway)
    assert next(c for c in after.changes if c.kind == "migration").details["counts"] == {
        "scheduled": 1
    }
    advance_clock(gateway, clock, START + (31 + 28) * DAY + 2 * HOUR, wait_seconds=5)
    # Signup and the failed-then-paid January renewal at 2 x $10.00; February at 2 x $12.00.
    assert invoice_lines(gateway, customer) == [
        [("seat_2025", 2, 2000)],
        [("seat_2025", 2, 2000)],
        [("seat_2026", 2, 2400)],
    ]


def test_a_failed_first_payment_blocks_the_move_while_incomplete(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    _, customer = paying_customer(gateway)
    failing = gateway.post(
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach", {"customer": customer}
    )["id"]
    gateway.post(
        f"/v1/customers/{customer}", {"invoice_settings": {"default_payment_method": failing}}
    )
    price = read_snapshot(gateway).prices["seat_2025"].stripe_id
    sub = gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "items": [{"price": price, "quantity": 1}],
            "payment_behavior": "allow_incomplete",
        },
    )
    assert sub["status"] == "incomplete"

    row = migration_rows(gateway)[sub["id"]]
    assert (row["state"], row["blocker"]) == (
        "blocked",
        "status incomplete: it moves once its invoices are paid",
    )
    pay(gateway, customer, sub["latest_invoice"])
    assert gateway.get(f"/v1/subscriptions/{sub['id']}")["status"] == "active"
    assert migration_rows(gateway)[sub["id"]]["action"] == "create_schedule"
    assert not converge(load_text(RAISE, "billing.yaml"), gateway).has_changes
    schedule = gateway.get(f"/v1/subscriptions/{sub['id']}")["schedule"]
    phases = gateway.get(f"/v1/subscription_schedules/{schedule}")["phases"]
    assert [p["start_date"] for p in phases] == [START, RENEWAL]
