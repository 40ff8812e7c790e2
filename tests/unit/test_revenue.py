"""The revenue preview's arithmetic on invoice previews, with the numbers worked by hand.

Invoices here are shaped as Stripe returns previews: up to ``2025-02-24.acacia``
a line carries ``type``, ``proration`` and the whole ``price``; since basil
``parent`` and ``pricing.price_details`` (a price id only).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.migrations import TO_PRICE
from reconciler.plan import Plan, fingerprint
from reconciler.render.revenue import migration_notes, migration_summary, revenue_text_lines
from reconciler.revenue import (
    MigrationRevenue,
    RevenuePreview,
    SubscriptionRevenue,
    invoice_monthly,
    largest_increases,
    monthly,
    planned_quantity,
    preview_params,
    round_half_up,
    sample,
    to_schedule,
)

SCHEMA = Path(__file__).resolve().parents[2] / "reconciler" / "schemas" / "plan.schema.json"
MONTH = ("month", 1)


def price(price_id: str, interval: str = "month", count: int = 1) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "recurring": {"interval": interval, "interval_count": count},
    }


def line(amount: int, **fields: Any) -> dict[str, Any]:
    """An acacia-shaped subscription line (the whole price on it)."""
    found: dict[str, Any] = {
        "amount": amount,
        "type": "subscription",
        "proration": False,
        "discount_amounts": [],
        "price": price("price_seat"),
    }
    found.update(fields)
    return found


def basil_line(amount: int, price_id: str, **fields: Any) -> dict[str, Any]:
    """A basil-shaped subscription line: the price is an id under ``pricing``."""
    found: dict[str, Any] = {
        "amount": amount,
        "discount_amounts": [],
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {"proration": False, "subscription_item": "si_1"},
        },
        "pricing": {"type": "price_details", "price_details": {"price": price_id}},
    }
    found.update(fields)
    return found


def invoice(*lines: dict[str, Any]) -> dict[str, Any]:
    return {"object": "invoice", "currency": "usd", "lines": {"data": list(lines)}}


# --- normalising to a month -----------------------------------------------------------------


def test_a_monthly_licensed_price_increase_of_3_seats_from_10_to_12_dollars_is_6_dollars() -> None:
    before = invoice(line(3 * 1000, quantity=3))
    after = invoice(line(3 * 1200, quantity=3, price=price("price_seat_2026")))
    row = SubscriptionRevenue.of("sub_1", "cus_1", before, after, default=MONTH)
    assert (row.before, row.after, row.change) == (3000, 3600, 600)
    m = MigrationRevenue("migration.raise", "usd", 1, 1, (row,))
    assert migration_summary(m) == (
        "1 customer (1 subscription to schedule): $30.00 -> $36.00 a month (+$6.00)"
    )


@pytest.mark.parametrize("cut", ["before", "after"])
def test_a_preview_whose_lines_stripe_cut_off_is_left_out_not_counted_in_part(cut: str) -> None:
    whole = invoice(*[line(1000, quantity=1) for _ in range(10)])
    partial = {**whole, "lines": {**whole["lines"], "has_more": True, "total_count": 12}}
    before, after = (partial, whole) if cut == "before" else (whole, partial)
    row = SubscriptionRevenue.of("sub_1", "cus_1", before, after, default=MONTH)
    assert (row.before, row.after, row.change) == (None, None, None)
    assert row.refused == (
        "the preview came with 10 of 12 lines (Stripe cuts the list): left out rather than "
        "counted in part"
    )
    m = MigrationRevenue("migration.raise", "usd", 1, 1, (row,))
    assert (m.before, m.after, m.refused) == (0, 0, (row,))


def test_a_yearly_price_is_normalised_to_a_month() -> None:
    yearly = price("price_year", "year")
    # $120.00 a year is $10.00 a month; $240.00 every 2 years too.
    assert invoice_monthly(invoice(line(12000, price=yearly)), default=MONTH) == 1000
    biennial = price("price_2y", "year", 2)
    assert invoice_monthly(invoice(line(24000, price=biennial)), default=MONTH) == 1000
    # $100.00 a year is 833 1/3 cents a month, rounded to 833 for the subscription.
    row = SubscriptionRevenue.of(
        "sub_1",
        "cus_1",
        invoice(line(10000, price=yearly)),
        invoice(line(12000, price=yearly)),
        default=MONTH,
    )
    assert (row.before, row.after, row.change) == (833, 1000, 167)


@pytest.mark.parametrize(
    ("amount", "interval", "per_month"),
    [
        (1000, ("month", 1), Fraction(1000)),
        (3000, ("month", 3), Fraction(1000)),
        (12000, ("year", 1), Fraction(1000)),
        (1000, ("week", 1), Fraction(52000, 12)),  # 52 weeks in 12 months
        (100, ("day", 1), Fraction(36500, 12)),  # 365 days in 12 months
        (1400, ("week", 2), Fraction(26 * 1400, 12)),
    ],
)
def test_each_interval_per_month(
    amount: int, interval: tuple[str, int], per_month: Fraction
) -> None:
    assert monthly(amount, interval) == per_month


@pytest.mark.parametrize("interval", [("fortnight", 1), ("month", 0)])
def test_an_unknown_interval_is_refused(interval: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match="not a billing interval"):
        monthly(100, interval)


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),
        (Fraction(2500, 3), 833),
        (Fraction(-3, 2), -2),
        (Fraction(7, 3), 2),
        (Fraction(0), 0),
    ],
)
def test_round_half_up(value: Fraction, rounded: int) -> None:
    assert round_half_up(value) == rounded


# --- which lines count ------------------------------------------------------------------------


def test_a_metered_price_counts_the_usage_recorded_so_far() -> None:
    metered = price("price_seconds")
    # 1,234 seconds so far at 0.35 cents: 431.9 -> a 432 cent line; at 2,000 seconds, 700.
    early = invoice(line(432, quantity=1234, price=metered))
    later = invoice(line(700, quantity=2000, price=metered))
    assert invoice_monthly(early, default=MONTH) == 432
    assert invoice_monthly(later, default=MONTH) == 700


def test_prorations_and_invoice_items_are_left_out_and_discounts_taken_off() -> None:
    found = invoice(
        line(3000, discount_amounts=[{"amount": 300, "discount": "di_1"}]),
        line(-500, proration=True),
        {"amount": 999, "type": "invoiceitem", "price": price("price_once")},
        basil_line(
            700,
            "price_seat",
            parent={
                "type": "subscription_item_details",
                "subscription_item_details": {"proration": True},
            },
        ),
    )
    # 3,000 less its 300 discount; the proration, the invoice item and the basil
    # proration line do not recur.
    assert invoice_monthly(found, default=MONTH) == 2700


def test_a_basil_line_takes_its_interval_from_the_price_id_else_the_default() -> None:
    found = invoice(basil_line(12000, "price_year"), basil_line(500, "price_unknown"))
    intervals = {"price_year": ("year", 1)}
    assert invoice_monthly(found, default=MONTH, intervals=intervals) == 1000 + 500
    assert invoice_monthly(found, default=("year", 1), intervals=intervals) == Fraction(12500, 12)


def test_an_invoice_without_lines_is_zero() -> None:
    assert invoice_monthly({"lines": {"data": []}}, default=MONTH) == 0
    assert invoice_monthly({}, default=MONTH) == 0


# --- ranking and totals -----------------------------------------------------------------------


def _row(sub: str, customer: str, before: int, after: int) -> SubscriptionRevenue:
    return SubscriptionRevenue(sub, customer, before, after)


def test_largest_increases_break_ties_by_customer_then_subscription() -> None:
    rows = [
        _row("sub_9", "cus_b", 1000, 1200),  # +200
        _row("sub_3", "cus_a", 1000, 1200),  # +200
        _row("sub_1", "cus_b", 1000, 1200),  # +200
        _row("sub_5", "cus_c", 1000, 1500),  # +500
        _row("sub_7", "cus_d", 1000, 900),  # a decrease: never an increase
        _row("sub_8", "cus_e", 1000, 1000),  # no change
        _row("sub_2", "cus_f", 1000, 1100),  # +100
        _row("sub_4", "cus_g", 1000, 1100),  # +100
    ]
    expected = ["sub_5", "sub_3", "sub_1", "sub_9", "sub_2"]
    assert [r.subscription for r in largest_increases(rows)] == expected
    assert [r.subscription for r in largest_increases(reversed(rows))] == expected
    assert [r.subscription for r in largest_increases(rows, 2)] == ["sub_5", "sub_3"]


def test_totals_leave_refused_previews_out_and_say_so() -> None:
    rows = (
        _row("sub_1", "cus_1", 3000, 3600),
        SubscriptionRevenue("sub_2", "cus_2", refused="as is: No upcoming invoices"),
        _row("sub_3", "cus_1", 1000, 1200),
    )
    m = MigrationRevenue("migration.raise", "usd", to_schedule=3, customers=2, subscriptions=rows)
    assert (m.before, m.after, m.change) == (4000, 4800, 800)
    assert [r.subscription for r in m.refused] == ["sub_2"]
    assert not m.sampled
    assert migration_notes(m) == [
        "1 preview refused, left out of the totals: sub_2 (cus_2): as is: No upcoming invoices"
    ]


def test_a_sample_says_how_many_of_how_many() -> None:
    rows = tuple(_row(f"sub_{n:03}", f"cus_{n:03}", 1000, 1200) for n in range(200))
    m = MigrationRevenue("migration.raise", "usd", 20000, 19500, rows)
    assert m.sampled
    assert migration_notes(m) == [
        "previewed 200 of 20,000 subscriptions to schedule (the first in batch order): the "
        "figures cover a sample"
    ]
    assert migration_summary(m) == (
        "19,500 customers (20,000 subscriptions to schedule): $2,000.00 -> $2,400.00 a month "
        "(+$400.00)"
    )


def test_refusals_past_five_are_counted_not_listed() -> None:
    rows = tuple(SubscriptionRevenue(f"sub_{n}", f"cus_{n}", refused="403") for n in range(7))
    m = MigrationRevenue("migration.raise", "usd", 7, 7, rows)
    (note,) = migration_notes(m)
    assert note.startswith("7 previews refused, left out of the totals: sub_0 (cus_0): 403;")
    assert note.endswith("sub_4 (cus_4): 403; ... and 2 more (see the JSON plan)")
    assert migration_summary(m) == (
        "7 customers (7 subscriptions to schedule): no figures, every preview was refused"
    )


def test_text_lines_of_a_decrease_a_blank_migration_and_none() -> None:
    falling = MigrationRevenue("migration.cut", "eur", 1, 1, (_row("sub_1", "cus_1", 900, 800),))
    idle = MigrationRevenue("migration.idle", "usd", 0, 0)
    waiting = MigrationRevenue("migration.new", "usd", 2, 2, unavailable="to_price 'x' is new")
    assert revenue_text_lines(RevenuePreview(200, (falling, idle, waiting))) == [
        "Revenue preview: monthly recurring revenue of each subscription's next invoice, as is "
        "and on the new price:",
        "  migration.cut: 1 customer (1 subscription to schedule): €9.00 -> €8.00 a month (-€1.00)",
        "  migration.idle: no subscription to schedule now",
        "  migration.new: to_price 'x' is new",
    ]
    assert revenue_text_lines(RevenuePreview(200)) == ["Revenue preview: no migration to preview."]


# --- what is previewed, and how ---------------------------------------------------------------


def _plan_row(sub: str, action: str | None, state: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "subscription": sub,
        "customer": f"cus_{sub}",
        "action": action,
        "state": state,
        **extra,
    }


def test_the_sample_is_the_first_rows_to_schedule_in_batch_order() -> None:
    details = {
        "subscriptions": [
            _plan_row("a", "create_schedule"),
            _plan_row("b", None, "waiting"),
            _plan_row("c", "release_schedule", "paused"),
            _plan_row("d", "update_schedule", "unfinished"),
            _plan_row("e", "update_schedule", "reschedule"),
            _plan_row("f", None, "done"),
        ]
    }
    assert [r["subscription"] for r in to_schedule(details)] == ["a", "d", "e"]
    assert [r["subscription"] for r in sample(details, 2)] == ["a", "d"]
    with pytest.raises(ValueError, match="at least 1"):
        sample(details, 0)


def test_preview_params_swap_the_old_item_for_the_planned_quantity() -> None:
    phases = [
        {"items": [{"price": "price_old", "quantity": 3}]},
        {"items": [{"price": TO_PRICE, "quantity": 3}, {"price": "price_addon", "quantity": 1}]},
    ]
    row = _plan_row("sub_1", "create_schedule", params={"phases": phases})
    assert planned_quantity(row) == 3
    before, after = preview_params(
        row, [("si_old", "price_old")], {"price_old": ("price_new", TO_PRICE)}
    )
    assert before == {"subscription": "sub_1"}
    assert after == {
        "subscription": "sub_1",
        "subscription_details": {
            "items": [{"id": "si_old", "price": "price_new", "quantity": 3}],
            "proration_behavior": "none",
        },
    }
    metered = _plan_row(
        "sub_2", "create_schedule", params={"phases": [{"items": [{"price": TO_PRICE}]}]}
    )
    assert planned_quantity(metered) is None
    targets = {"price_old": ("price_new", TO_PRICE)}
    assert preview_params(metered, [("si_2", "price_old")], targets)[1]["subscription_details"][
        "items"
    ] == [{"id": "si_2", "price": "price_new"}]


# --- the document -----------------------------------------------------------------------------


def _preview() -> RevenuePreview:
    rows = (
        _row("sub_1", "cus_1", 3000, 3600),
        SubscriptionRevenue("sub_2", "cus_2", refused="as is: gone"),
    )
    return RevenuePreview(200, (MigrationRevenue("migration.raise", "usd", 3, 2, rows),))


def test_the_preview_round_trips_through_its_json_and_derives_its_totals() -> None:
    preview = _preview()
    data = json.loads(json.dumps(preview.to_json()))
    assert RevenuePreview.from_json(data) == preview
    (m,) = data["migrations"]
    assert {k: m[k] for k in ("previewed", "refused", "before", "after", "change")} == {
        "previewed": 2,
        "refused": 1,
        "before": 3000,
        "after": 3600,
        "change": 600,
    }
    assert [r["subscription"] for r in m["largest_increases"]] == ["sub_1"]


def test_a_plan_carries_the_preview_beside_it_in_its_schema() -> None:
    plan = Plan(
        config_hash=fingerprint({"c": 1}),
        snapshot_fingerprint=fingerprint({"s": 1}),
        revenue=_preview().to_json(),
    )
    document = json.loads(plan.dumps())
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert [e.message for e in validator.iter_errors(document)] == []
    assert Plan.from_json(document) == plan
    assert "revenue" not in json.loads(plan.without_revenue().dumps())
    document["revenue"]["migrations"][0]["colour"] = "red"
    assert not validator.is_valid(document)


def test_preview_params_of_a_consolidation_move_each_item_and_delete_the_merged_ones() -> None:
    phases = [
        {
            "items": [
                {"price": TO_PRICE, "quantity": 5},
                {"price": f"{TO_PRICE}:extra", "quantity": 2},
            ]
        }
    ]
    row = _plan_row("sub_1", "create_schedule", params={"phases": phases})
    targets = {
        "price_basic": ("price_team", TO_PRICE),
        "price_addon": ("price_team", TO_PRICE),
        "price_old_extra": ("price_extra", f"{TO_PRICE}:extra"),
    }
    items = [("si_a", "price_basic"), ("si_b", "price_addon"), ("si_c", "price_old_extra")]
    _before, after = preview_params(row, items, targets)
    assert after["subscription_details"]["items"] == [
        {"id": "si_a", "price": "price_team", "quantity": 5},
        {"id": "si_b", "deleted": True},
        {"id": "si_c", "price": "price_extra", "quantity": 2},
    ]
