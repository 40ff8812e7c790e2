"""Migrations between any two recurring prices, on test clocks, invoices worked by hand.

A price increase at renewal (licensed to licensed, quantities kept), a
metered price replaced by a flat seat (a declared quantity), and the
refusals that keep a move reversible. Customers pay with Stripe's test card
``pm_card_visa``, so every invoice is paid and no subscription falls past due.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.model import Desired
from reconciler.plan import Plan
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock
from reconciler.snapshot import Snapshot
from tests.e2e.conftest import stripe_reconcile

DAY = 86400
START = 1_767_225_600  # 2026-01-01T00:00:00Z

CATALOG = """\
version: 1
mode: test
products:
  - {id: prod_app, name: App}
prices:
  - {lookup_key: seat_2025, product: prod_app, currency: usd, unit_amount: 1000,
     recurring: {interval: month}}
  - {lookup_key: seat_2026, product: prod_app, currency: usd, unit_amount: 1200,
     recurring: {interval: month}}
"""

RAISE = (
    CATALOG
    + """\
migrations:
  raise-2026:
    from_price: seat_2025
    to_price: seat_2026
"""
)


def converge(config: Desired, gateway: Gateway) -> Plan:
    """Apply as the command line does; the plan that follows."""

    def replan() -> tuple[Snapshot, Plan]:
        snapshot = read_snapshot(gateway, config)
        return snapshot, build_plan(config, snapshot)

    snapshot, plan = replan()
    apply_until_done(plan, snapshot, gateway, replan=replan)
    return replan()[1]


def subscribe(gateway: Gateway, price_key: str, quantity: int) -> tuple[str, str, str]:
    """A customer on its own test clock subscribed to the price: (clock, customer, sub)."""
    clock, customer = paying_customer(gateway)
    price = read_snapshot(gateway).prices[price_key].stripe_id
    subscription = gateway.post(
        "/v1/subscriptions",
        {"customer": customer, "items": [{"price": price, "quantity": quantity}]},
    )["id"]
    return clock, customer, subscription


def paying_customer(gateway: Gateway) -> tuple[str, str]:
    """A customer on its own test clock, paying by card: (clock, customer)."""
    clock = gateway.post("/v1/test_helpers/test_clocks", {"frozen_time": START})["id"]
    customer = gateway.post(
        "/v1/customers",
        {
            "test_clock": clock,
            "email": f"{clock}@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        },
    )["id"]
    return clock, customer


def invoice_lines(gateway: Gateway, customer: str) -> list[list[tuple[str, int, int]]]:
    """Each invoice, oldest first, as (price lookup key, quantity, amount) lines."""
    keys = {obj.stripe_id: key for key, obj in read_snapshot(gateway).prices.items()}
    found = gateway.get("/v1/invoices", {"customer": customer, "limit": 100})["data"]
    return [
        [
            (keys[_price_id(line)], line["quantity"], line["amount"])
            for line in invoice["lines"]["data"]
        ]
        for invoice in sorted(found, key=lambda invoice: invoice["created"])
    ]


def _price_id(line: dict[str, Any]) -> str:
    pricing = (line.get("pricing") or {}).get("price_details") or {}
    price = pricing.get("price") or line.get("price")
    return str(price["id"] if isinstance(price, dict) else price)


def test_a_price_increase_moves_every_subscriber_at_renewal_with_its_quantity(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock_a, customer_a, sub_a = subscribe(gateway, "seat_2025", 3)
    clock_b, customer_b, sub_b = subscribe(gateway, "seat_2025", 1)

    config = load_text(RAISE, "billing.yaml")
    after = converge(config, gateway)
    migration = next(c for c in after.changes if c.kind == "migration")
    assert migration.details["counts"] == {"scheduled": 2}
    assert not after.has_changes

    for clock in (clock_a, clock_b):
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # Worked by hand: 3 seats at $10.00 = 3,000 cents on signup, then 3 at $12.00 = 3,600
    # at the January renewal; the single seat 1,000 then 1,200. No proration at the switch.
    assert invoice_lines(gateway, customer_a) == [
        [("seat_2025", 3, 3000)],
        [("seat_2026", 3, 3600)],
    ]
    assert invoice_lines(gateway, customer_b) == [
        [("seat_2025", 1, 1000)],
        [("seat_2026", 1, 1200)],
    ]
    done = build_plan(config, read_snapshot(gateway, config))
    assert next(c for c in done.changes if c.kind == "migration").details["counts"] == {"done": 2}
    assert {sub_a, sub_b} == {
        s["id"]
        for s in gateway.get(
            "/v1/subscriptions", {"price": read_snapshot(gateway).prices["seat_2026"].stripe_id}
        )["data"]
    }


def test_seats_added_after_the_schedule_was_written_are_billed_at_the_new_price(
    emulator: Emulator, gateway: Gateway
) -> None:
    """The schedule's phase after the switch froze 2 seats; the customer takes 4 before
    the renewal. The next plan writes the phases again, and the renewal bills 4."""
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, subscription = subscribe(gateway, "seat_2025", 2)
    config = load_text(RAISE, "billing.yaml")
    assert not converge(config, gateway).has_changes
    item = gateway.get(f"/v1/subscriptions/{subscription}")["items"]["data"][0]["id"]
    gateway.post(f"/v1/subscription_items/{item}", {"quantity": 4, "proration_behavior": "none"})
    changed = build_plan(config, read_snapshot(gateway, config))
    migration = next(c for c in changed.changes if c.kind == "migration")
    assert migration.details["counts"] == {"reschedule": 1}
    assert not converge(config, gateway).has_changes
    advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # Worked by hand: 2 seats at $10.00 on signup, then 4 at $12.00 = 4,800 at the renewal.
    assert invoice_lines(gateway, customer) == [
        [("seat_2025", 2, 2000)],
        [("seat_2026", 4, 4800)],
    ]


def test_a_declared_quantity_replaces_each_subscribers_own(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, _ = subscribe(gateway, "seat_2025", 4)
    config = load_text(RAISE + "    quantity: 1\n", "billing.yaml")
    assert not converge(config, gateway).has_changes
    advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # 4 seats at $10.00 = 4,000 cents, then the declared single seat at $12.00 = 1,200.
    assert invoice_lines(gateway, customer) == [
        [("seat_2025", 4, 4000)],
        [("seat_2026", 1, 1200)],
    ]


def test_a_move_to_a_yearly_price_is_refused_before_anything_is_read(tmp_path: Any) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        RAISE.replace(
            "unit_amount: 1200,\n     recurring: {interval: month}",
            "unit_amount: 12000,\n     recurring: {interval: year}",
        ),
        encoding="utf-8",
    )
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert (
        "migrations.raise-2026.to_price: 'seat_2026' bills USD every year but from_price "
        "'seat_2025' USD every month; a migration keeps the currency and the billing interval"
    ) in result.stderr + result.stdout


def test_a_subscriber_in_trial_keeps_the_trial_and_pays_the_new_price_after_it(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer = paying_customer(gateway)
    price = read_snapshot(gateway).prices["seat_2025"].stripe_id
    trial = gateway.post(
        "/v1/subscriptions",
        {"customer": customer, "items": [{"price": price, "quantity": 2}], "trial_period_days": 14},
    )
    assert (trial["status"], trial["trial_end"]) == ("trialing", START + 14 * DAY)
    config = load_text(RAISE, "billing.yaml")
    assert not converge(config, gateway).has_changes
    mid_trial = gateway.get(f"/v1/subscriptions/{trial['id']}")
    assert (mid_trial["status"], mid_trial["trial_end"]) == ("trialing", START + 14 * DAY)
    phases = gateway.get(f"/v1/subscription_schedules/{mid_trial['schedule']}")["phases"]
    assert [(p["trial_end"], p["start_date"]) for p in phases] == [
        (START + 14 * DAY, START),
        (None, START + 14 * DAY),
    ]
    advance_clock(gateway, clock, START + 15 * DAY, wait_seconds=5)
    # The trial invoices 0 for 2 seats; when it ends, 2 seats at the new $12.00 = 2,400.
    assert invoice_lines(gateway, customer) == [
        [("seat_2025", 2, 0)],
        [("seat_2026", 2, 2400)],
    ]


def test_a_licensed_move_can_switch_now_on_classic_billing_mode(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, _, sub = subscribe(gateway, "seat_2025", 2)
    advance_clock(gateway, clock, START + 3 * DAY, wait_seconds=5)
    config = load_text(RAISE + "    switch_at: now\n", "billing.yaml")
    after = converge(config, gateway)
    assert next(c for c in after.changes if c.kind == "migration").details["counts"] == {"done": 1}
    new_price = read_snapshot(gateway).prices["seat_2026"].stripe_id
    items = gateway.get(f"/v1/subscriptions/{sub}")["items"]["data"]
    assert [(item["price"]["id"], item["quantity"]) for item in items] == [(new_price, 2)]


def test_a_renewal_too_close_defers_the_switch_to_the_renewal_after(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, _ = subscribe(gateway, "seat_2025", 2)
    renewal = START + 31 * DAY  # January has 31 days
    advance_clock(gateway, clock, renewal - 1800, wait_seconds=5)
    config = load_text(RAISE, "billing.yaml")
    plan = build_plan(config, read_snapshot(gateway, config))
    (row,) = next(c for c in plan.changes if c.kind == "migration").details["subscriptions"]
    assert (row["state"], row["action"]) == ("deferred", None)
    assert "within defer_within (1h)" in row["blocker"]
    assert not plan.has_changes
    advance_clock(gateway, clock, renewal + 2 * 3600, wait_seconds=5)
    after = converge(config, gateway)
    (row,) = next(c for c in after.changes if c.kind == "migration").details["subscriptions"]
    assert (row["state"], row["switch_at"]) == ("scheduled", START + (31 + 28) * DAY)
    advance_clock(gateway, clock, START + 60 * DAY, wait_seconds=5)
    # Signup and the January renewal at $10.00 (the switch was deferred), then $12.00.
    assert [lines[0][2] for lines in invoice_lines(gateway, customer)] == [2000, 2000, 2400]


def test_the_switch_keeps_the_subscriptions_own_payment_method_and_item_metadata(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer = paying_customer(gateway)
    card = gateway.post("/v1/payment_methods/pm_card_mastercard/attach", {"customer": customer})[
        "id"
    ]
    price = read_snapshot(gateway).prices["seat_2025"].stripe_id
    sub = gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "items": [{"price": price, "quantity": 2, "metadata": {"seat": "owner"}}],
            "default_payment_method": card,
        },
    )["id"]
    assert not converge(load_text(RAISE, "billing.yaml"), gateway).has_changes
    advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    moved = gateway.get(f"/v1/subscriptions/{sub}")
    new_price = read_snapshot(gateway).prices["seat_2026"].stripe_id
    assert moved["default_payment_method"] == card
    assert [(i["price"]["id"], i["quantity"], i["metadata"]) for i in moved["items"]["data"]] == [
        (new_price, 2, {"seat": "owner"})
    ]


def test_the_accounts_test_clocks_are_listed_once_for_every_migration(
    emulator: Emulator, gateway: Gateway
) -> None:
    two = (
        CATALOG
        + """\
  - {lookup_key: team_2025, product: prod_app, currency: usd, unit_amount: 5000,
     recurring: {interval: month}}
  - {lookup_key: team_2026, product: prod_app, currency: usd, unit_amount: 6000,
     recurring: {interval: month}}
migrations:
  raise-2026: {from_price: seat_2025, to_price: seat_2026}
  raise-team: {from_price: team_2025, to_price: team_2026}
"""
    )
    config = load_text(two, "billing.yaml")
    assert not converge(dataclasses.replace(config, migrations=()), gateway).has_changes
    subscribe(gateway, "seat_2025", 1)
    subscribe(gateway, "team_2025", 1)
    before = gateway.stats.by_route["GET /v1/test_helpers/test_clocks"]
    snapshot = read_snapshot(gateway, config)
    assert gateway.stats.by_route["GET /v1/test_helpers/test_clocks"] - before == 1
    assert {name: len(m.clock_times) for name, m in snapshot.migrations.items()} == {
        "raise-2026": 2,
        "raise-team": 2,
    }


def test_a_move_between_tax_behaviours_is_blocked_until_allowed(
    emulator: Emulator, gateway: Gateway
) -> None:
    taxed = CATALOG.replace(
        "unit_amount: 1000,", "unit_amount: 1000, tax_behavior: exclusive,"
    ).replace("unit_amount: 1200,", "unit_amount: 1200, tax_behavior: inclusive,")
    assert not converge(load_text(taxed, "billing.yaml"), gateway).has_changes
    _clock, _customer, sub = subscribe(gateway, "seat_2025", 2)
    migrations = "migrations:\n  raise-2026:\n    from_price: seat_2025\n    to_price: seat_2026\n"
    config = load_text(taxed + migrations, "billing.yaml")
    blocked = converge(config, gateway)
    (row,) = next(c for c in blocked.changes if c.kind == "migration").details["subscriptions"]
    assert (row["subscription"], row["state"]) == (sub, "blocked")
    assert "tax exclusive and seat_2026 tax inclusive" in row["blocker"]
    allowed = load_text(taxed + migrations + "    allow_tax_behavior_change: true\n", "b.yaml")
    after = converge(allowed, gateway)
    assert next(c for c in after.changes if c.kind == "migration").details["counts"] == {
        "scheduled": 1
    }


def _refused_at_plan(text: str, gateway: Gateway) -> str:
    """The located problems of a plan that must not be made; nothing is written."""
    from reconciler.planner import SourcePlanError

    config = load_text(text, "billing.yaml")
    before = len(list(gateway.list_all("/v1/subscription_schedules")))
    try:
        build_plan(config, read_snapshot(gateway, config))
    except SourcePlanError as exc:
        assert len(list(gateway.list_all("/v1/subscription_schedules"))) == before
        return str(exc)
    raise AssertionError("the plan was made")


def test_a_price_named_by_its_id_and_by_its_lookup_key_is_one_price(
    emulator: Emulator, gateway: Gateway
) -> None:
    """Naming the same price twice (an id here, a lookup key there) would move
    subscriptions onto the price they hold, or schedule them twice."""
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    subscribe(gateway, "seat_2025", 2)
    snapshot = read_snapshot(gateway)
    old = snapshot.prices["seat_2025"].stripe_id
    onto_itself = CATALOG + f"migrations:\n  m:\n    from_price: {old}\n    to_price: seat_2025\n"
    assert _refused_at_plan(onto_itself, gateway) == (
        f"billing.yaml: migrations.m.from_price: '{old}' is the price 'seat_2025' itself "
        f"({old}): nothing would move"
    )
    twice = RAISE + f"  again:\n    from_price: {old}\n    to_price: seat_2026\n"
    assert _refused_at_plan(twice, gateway) == (
        f"billing.yaml: migrations.again.from_price: '{old}' is the price {old}, which "
        "migration 'raise-2026' moves already (as 'seat_2025')"
    )
    raised_too = RAISE.replace(
        "unit_amount: 1000,", "unit_amount: 1050, existing_subscriptions: migrate,"
    )
    assert _refused_at_plan(raised_too, gateway) == (
        f"billing.yaml: migrations.raise-2026.from_price: 'seat_2025' is the price {old}, "
        "whose subscriptions migration 'seat_2025.existing' (existing_subscriptions: migrate "
        "on 'seat_2025') moves too: keep one of the two"
    )
