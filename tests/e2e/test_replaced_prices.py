"""A price replaced while subscriptions hold it: plan says how many, and billing.yaml decides.

``existing_subscriptions`` on the replacing price: unset, plan counts the
subscriptions that stay on the archived price and asks for a decision;
``grandfather`` keeps them there; ``migrate`` moves them to the new price at
their period end through a migration plan generates, and keeps the old price
active (marked, so no crash can make it look like an interrupted replace)
until none is left on it. On test clocks, invoices worked by hand; customers
pay with ``pm_card_visa``.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.errors import ApplyError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import Action, Plan
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock
from tests.e2e.conftest import change_at, plan_of
from tests.e2e.test_any_price_migrations import (
    CATALOG,
    DAY,
    START,
    _price_id,
    converge,
    subscribe,
)

RAISED = CATALOG.replace("unit_amount: 1000,", "unit_amount: 1100,")
"""seat_2025 declared at $11.00: a fixed field, so the price is replaced."""


def declare(decision: str | None) -> str:
    if decision is None:
        return RAISED
    return RAISED.replace(
        "unit_amount: 1100,", f"unit_amount: 1100, existing_subscriptions: {decision},"
    )


def plan_for(text: str, gateway: Gateway) -> Plan:
    return plan_of(text, gateway)[1]


def last_invoice(gateway: Gateway, customer: str) -> list[tuple[str, int, int]]:
    """The customer's newest invoice as (price id, quantity, amount) lines."""
    found = gateway.get("/v1/invoices", {"customer": customer, "limit": 100})["data"]
    newest = max(found, key=lambda invoice: invoice["created"])
    return [(_price_id(line), line["quantity"], line["amount"]) for line in newest["lines"]["data"]]


def two_subscribers(gateway: Gateway) -> tuple[list[str], list[str], str]:
    """Two paying customers on seat_2025 (2 seats and 1): clocks, customers, the price id."""
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    first = subscribe(gateway, "seat_2025", 2)
    second = subscribe(gateway, "seat_2025", 1)
    old = read_snapshot(gateway).prices["seat_2025"].stripe_id
    return [first[0], second[0]], [first[1], second[1]], old


def test_a_replace_without_a_decision_says_how_many_subscriptions_stay(
    emulator: Emulator, gateway: Gateway
) -> None:
    _clocks, _customers, old = two_subscribers(gateway)
    replace = change_at(plan_for(declare(None), gateway), "price.seat_2025")
    assert replace.action is Action.REPLACE
    assert replace.reason == (
        "fixed at creation: unit_amount; 2 subscriptions stay on the archived price: declare "
        "existing_subscriptions (grandfather to keep them there, or migrate to move them) to "
        "decide"
    )
    assert (replace.details["subscribers"], replace.details["existing_subscriptions"]) == (2, None)
    assert not any(c.kind == "migration" for c in plan_for(declare(None), gateway).changes)
    # Applied as planned: the old price is archived and keeps its subscribers.
    assert not converge(load_text(declare(None), "billing.yaml"), gateway).has_changes
    assert gateway.get(f"/v1/prices/{old}")["active"] is False
    assert len(gateway.get("/v1/subscriptions", {"price": old})["data"]) == 2


def test_grandfathered_subscriptions_stay_and_plan_says_so(
    emulator: Emulator, gateway: Gateway
) -> None:
    _clocks, _customers, old = two_subscribers(gateway)
    replace = change_at(plan_for(declare("grandfather"), gateway), "price.seat_2025")
    assert replace.reason.endswith("; 2 subscriptions stay on the archived price (grandfathered)")
    assert not converge(load_text(declare("grandfather"), "billing.yaml"), gateway).has_changes
    assert gateway.get(f"/v1/prices/{old}")["active"] is False


def test_migrate_moves_every_subscription_at_renewal_then_retires_the_old_price(
    emulator: Emulator, gateway: Gateway
) -> None:
    clocks, customers, old = two_subscribers(gateway)
    text = declare("migrate")
    planned = plan_for(text, gateway)
    replace = change_at(planned, "price.seat_2025")
    assert replace.reason.endswith(
        "2 subscriptions move to the new price at their period end "
        "(migration.seat_2025.existing); the old price stays active until none is left on it"
    )
    migration = change_at(planned, "migration.seat_2025.existing")
    assert (migration.action, migration.details["counts"]) == (Action.MIGRATE, {"pending": 2})

    after = converge(load_text(text, "billing.yaml"), gateway)
    assert not after.has_changes
    kept = change_at(after, f"price.{old}")
    assert kept.reason == (
        "kept active until its 2 subscriptions have moved to seat_2025 "
        "(migration.seat_2025.existing)"
    )
    assert change_at(after, "migration.seat_2025.existing").details["counts"] == {"scheduled": 2}
    old_price = gateway.get(f"/v1/prices/{old}")
    assert (old_price["active"], old_price["lookup_key"]) == (True, None)
    assert old_price["metadata"]["stripe_reconcile_replaced_by"] == "seat_2025"

    for clock in clocks:
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # Worked by hand: 2 seats at $10.00 = 2,000 cents on signup, 2 at $11.00 = 2,200 at the
    # renewal; the single seat 1,000 then 1,100. No proration at the switch.
    new = read_snapshot(gateway).prices["seat_2025"].stripe_id
    assert [last_invoice(gateway, customer) for customer in customers] == [
        [(new, 2, 2200)],
        [(new, 1, 1100)],
    ]
    emptied = plan_for(text, gateway)
    retire = change_at(emptied, f"price.{old}")
    assert (retire.action, retire.reason) == (
        Action.ARCHIVE,
        "replaced earlier by seat_2025; none of its subscriptions is left on it",
    )
    assert not any(c.kind == "migration" for c in emptied.changes)
    assert not converge(load_text(text, "billing.yaml"), gateway).has_changes
    assert gateway.get(f"/v1/prices/{old}")["active"] is False


def test_a_crash_after_marking_the_old_price_converges_without_an_orphan(
    emulator: Emulator, gateway: Gateway
) -> None:
    _clocks, _customers, old = two_subscribers(gateway)
    config = load_text(declare("migrate"), "billing.yaml")
    snapshot = read_snapshot(gateway, config)

    class DiesCreatingThePrice:
        def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
            if path == "/v1/prices":
                raise StripeCallError("killed", method="post", path=path)
            return gateway.write(path, params, **options)

    with pytest.raises(ApplyError):
        apply_plan(build_plan(config, snapshot), snapshot, DiesCreatingThePrice(), concurrency=1)  # type: ignore[arg-type]
    marked = gateway.get(f"/v1/prices/{old}")
    assert (marked["lookup_key"], marked["metadata"]["stripe_reconcile_replaced_by"]) == (
        "seat_2025",
        "seat_2025",
    )
    again = plan_for(declare("migrate"), gateway)
    assert change_at(again, "price.seat_2025").action is Action.REPLACE  # not an orphan archive
    after = converge(config, gateway)
    assert change_at(after, "migration.seat_2025.existing").details["counts"] == {"scheduled": 2}
    assert not after.has_changes


def test_no_longer_migrating_retires_the_kept_price_saying_who_stays(
    emulator: Emulator, gateway: Gateway
) -> None:
    _clocks, _customers, old = two_subscribers(gateway)
    assert not converge(load_text(declare("migrate"), "billing.yaml"), gateway).has_changes
    changed = plan_for(declare("grandfather"), gateway)
    retire = change_at(changed, f"price.{old}")
    assert (retire.action, retire.reason) == (
        Action.ARCHIVE,
        "replaced earlier by seat_2025; 2 subscriptions stay on it (existing_subscriptions is "
        "no longer migrate)",
    )
    # The schedules written to move them are released in the same apply, before the archive.
    released = change_at(changed, "migration.seat_2025.existing")
    assert released.details["counts"] == {"paused": 2}
    rows = released.details["subscriptions"]
    assert [row["action"] for row in rows] == ["release_schedule"] * 2


def test_no_longer_migrating_keeps_them_on_the_old_price_past_the_switch(
    emulator: Emulator, gateway: Gateway
) -> None:
    clocks, customers, old = two_subscribers(gateway)
    assert not converge(load_text(declare("migrate"), "billing.yaml"), gateway).has_changes
    assert not converge(load_text(declare("grandfather"), "billing.yaml"), gateway).has_changes
    assert gateway.get(f"/v1/prices/{old}")["active"] is False
    assert list(gateway.list_all("/v1/subscription_schedules", {"scheduled": True})) == []
    for clock in clocks:
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # Grandfathered: the renewal bills the old $10.00 price (2 seats, then 1).
    assert [last_invoice(gateway, customer) for customer in customers] == [
        [(old, 2, 2000)],
        [(old, 1, 1000)],
    ]
    assert not plan_for(declare("grandfather"), gateway).has_changes


def test_a_second_raise_before_the_switch_moves_them_to_the_latest_price(
    emulator: Emulator, gateway: Gateway
) -> None:
    """$10 -> $11 with migrate, then -> $12 before the period ends: the schedules written
    for $11 are written again for $12, and the unsubscribed $11 price is archived."""
    clocks, customers, _old = two_subscribers(gateway)
    assert not converge(load_text(declare("migrate"), "billing.yaml"), gateway).has_changes
    middle = read_snapshot(gateway).prices["seat_2025"].stripe_id
    again = declare("migrate").replace("unit_amount: 1100,", "unit_amount: 1200,")
    planned = plan_for(again, gateway)
    migration = change_at(planned, "migration.seat_2025.existing")
    assert migration.details["counts"] == {"reschedule": 2}
    assert not converge(load_text(again, "billing.yaml"), gateway).has_changes
    latest = read_snapshot(gateway).prices["seat_2025"].stripe_id
    assert gateway.get(f"/v1/prices/{middle}")["active"] is False
    for clock in clocks:
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    assert [last_invoice(gateway, customer) for customer in customers] == [
        [(latest, 2, 2400)],
        [(latest, 1, 1200)],
    ]


def test_every_plan_of_a_replace_with_subscribers_is_a_valid_plan_file(
    emulator: Emulator, gateway: Gateway
) -> None:
    from jsonschema import Draft202012Validator

    from reconciler.planfile import plan_schema

    validator = Draft202012Validator(plan_schema())
    _clocks, _customers, _old = two_subscribers(gateway)
    for decision in (None, "grandfather", "migrate"):
        plan = plan_for(declare(decision), gateway)
        assert list(validator.iter_errors(plan.as_data())) == [], decision
    converge(load_text(declare("migrate"), "billing.yaml"), gateway)
    assert list(validator.iter_errors(plan_for(declare("migrate"), gateway).as_data())) == []
    assert list(validator.iter_errors(plan_for(declare("grandfather"), gateway).as_data())) == []


def test_migrate_to_a_price_on_another_interval_is_refused_at_the_decision(
    emulator: Emulator, gateway: Gateway, tmp_path: Any
) -> None:
    """A replace may change the interval; Stripe keeps a subscription's, so no
    subscriber can move: the plan says so at existing_subscriptions, and writes nothing."""
    from tests.e2e.conftest import stripe_reconcile

    _clocks, _customers, old = two_subscribers(gateway)
    yearly = CATALOG.replace(
        "unit_amount: 1000,\n     recurring: {interval: month}",
        "unit_amount: 12000, existing_subscriptions: migrate,\n     recurring: {interval: year}",
    )
    assert yearly != CATALOG
    config = tmp_path / "billing.yaml"
    config.write_text(yearly)
    refused = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == (
        f"Error: {config}:6:107: prices[0].existing_subscriptions: 'seat_2025' bills USD every "
        f"year, but its subscriptions hold {old}, which bills USD every month: Stripe keeps a "
        "subscription's currency and interval, so migrate cannot move them; declare "
        "existing_subscriptions: grandfather"
    )
    assert gateway.get(f"/v1/prices/{old}")["lookup_key"] == "seat_2025"
