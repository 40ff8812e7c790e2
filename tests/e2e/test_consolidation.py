"""Plan consolidation: several ``from -> to`` pairs in one migration, on test clocks.

Two legacy plans (a base seat and an add-on seat) are consolidated into one
new seat price: a subscriber holding both has them moved together in one
schedule write and becomes one item whose quantity is the sum of the two; a
subscriber holding only one moves too. Invoices after the switch are worked
by hand. Customers pay with ``pm_card_visa``.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.live import read_revenue, read_snapshot
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock
from tests.e2e.conftest import stripe_reconcile
from tests.e2e.test_any_price_migrations import (
    DAY,
    START,
    converge,
    invoice_lines,
    paying_customer,
)

CATALOG = """\
version: 1
mode: test
products:
  - {id: prod_app, name: App}
prices:
  - {lookup_key: basic_2025, product: prod_app, currency: usd, unit_amount: 1000,
     recurring: {interval: month}}
  - {lookup_key: addon_2025, product: prod_app, currency: usd, unit_amount: 300,
     recurring: {interval: month}}
  - {lookup_key: team_2026, product: prod_app, currency: usd, unit_amount: 1100,
     recurring: {interval: month}}
  - {lookup_key: extra_2026, product: prod_app, currency: usd, unit_amount: 400,
     recurring: {interval: month}}
"""

CONSOLIDATE = (
    CATALOG
    + """\
migrations:
  one-plan:
    prices:
      basic_2025: team_2026
      addon_2025: team_2026
"""
)


def subscribe(gateway: Gateway, items: dict[str, int]) -> tuple[str, str, str]:
    """A paying customer on its own clock subscribed to ``items`` (lookup key -> quantity)."""
    clock, customer = paying_customer(gateway)
    prices = read_snapshot(gateway).prices
    subscription = gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "items": [
                {"price": prices[key].stripe_id, "quantity": quantity}
                for key, quantity in items.items()
            ],
        },
    )["id"]
    return clock, customer, subscription


def test_two_items_become_one_and_a_single_item_moves_too(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock_both, both, sub_both = subscribe(gateway, {"basic_2025": 3, "addon_2025": 2})
    clock_one, one, sub_one = subscribe(gateway, {"addon_2025": 4})

    config = load_text(CONSOLIDATE, "billing.yaml")
    planned = build_plan(config, read_snapshot(gateway, config))
    migration = next(c for c in planned.changes if c.kind == "migration")
    rows = {row["subscription"]: row for row in migration.details["subscriptions"]}
    moved = rows[sub_both]["params"]["phases"][1]["items"]
    assert moved == [{"price": "@to_price", "quantity": 5}]  # 3 + 2, one item
    assert migration.details["also"][0]["to_price"] == "team_2026"

    after = converge(config, gateway)
    assert next(c for c in after.changes if c.kind == "migration").details["counts"] == {
        "scheduled": 2
    }
    assert not after.has_changes
    for clock in (clock_both, clock_one):
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # Worked by hand: 3 x $10.00 + 2 x $3.00 = 3,600 cents on signup; at the renewal one
    # item of 5 seats at $11.00 = 5,500. The add-on only: 4 x $3.00 = 1,200, then 4 x $11.00.
    assert invoice_lines(gateway, both) == [
        [("basic_2025", 3, 3000), ("addon_2025", 2, 600)],
        [("team_2026", 5, 5500)],
    ]
    assert invoice_lines(gateway, one) == [[("addon_2025", 4, 1200)], [("team_2026", 4, 4400)]]
    done = build_plan(config, read_snapshot(gateway, config))
    assert next(c for c in done.changes if c.kind == "migration").details["counts"] == {"done": 2}
    assert not done.has_changes
    assert sub_one != sub_both


def test_pairs_to_different_prices_move_together_and_keep_each_quantity(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, _sub = subscribe(gateway, {"basic_2025": 2, "addon_2025": 5})
    config = load_text(
        CATALOG
        + """\
migrations:
  new-prices:
    prices:
      basic_2025: team_2026
      addon_2025: extra_2026
""",
        "billing.yaml",
    )
    after = converge(config, gateway)
    assert not after.has_changes
    advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    # 2 x $11.00 = 2,200 and 5 x $4.00 = 2,000 at the renewal, in the items' order.
    assert invoice_lines(gateway, customer)[-1] == [("team_2026", 2, 2200), ("extra_2026", 5, 2000)]


def test_a_declared_quantity_replaces_the_sum(emulator: Emulator, gateway: Gateway) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    clock, customer, _sub = subscribe(gateway, {"basic_2025": 3, "addon_2025": 2})
    text = CONSOLIDATE + "    quantity: 1\n"
    assert not converge(load_text(text, "billing.yaml"), gateway).has_changes
    advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=5)
    assert invoice_lines(gateway, customer)[-1] == [("team_2026", 1, 1100)]


def test_a_further_pair_not_in_the_account_is_a_plan_error_naming_it(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    (tmp_path / "billing.yaml").write_text(CONSOLIDATE.replace("addon_2025: team", "gone: team"))
    done = stripe_reconcile("plan", url=emulator.url, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "Error: billing.yaml:18:13: migrations.one-plan.prices.gone: price 'gone' is not in "
        "the account; nothing would migrate."
    )


def test_the_revenue_preview_of_a_consolidation_merges_the_items_as_the_switch_will(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    _clock, customer, sub = subscribe(gateway, {"basic_2025": 3, "addon_2025": 2})
    config = load_text(CONSOLIDATE, "billing.yaml")
    snapshot = read_snapshot(gateway, config)
    preview = read_revenue(gateway, build_plan(config, snapshot), snapshot)
    (migration,) = preview.migrations
    (row,) = migration.subscriptions
    # Worked by hand: 3 x $10.00 + 2 x $3.00 = 3,600 a month as is; one item of 5 x $11.00.
    assert (row.subscription, row.customer, row.refused) == (sub, customer, None)
    assert (row.before, row.after, row.change) == (3600, 5500, 1900)


def test_a_consolidation_plan_is_a_valid_plan_file(emulator: Emulator, gateway: Gateway) -> None:
    from jsonschema import Draft202012Validator

    from reconciler.planfile import plan_schema

    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    subscribe(gateway, {"basic_2025": 3, "addon_2025": 2})
    config = load_text(CONSOLIDATE, "billing.yaml")
    plan = build_plan(config, read_snapshot(gateway, config))
    assert list(Draft202012Validator(plan_schema()).iter_errors(plan.as_data())) == []
