"""Invoice expectations against numbers worked out by hand from Stripe's documented rules.

Every expected figure below is a literal computed in the comment beside it,
not by calling any of the project's pricing code. Amounts are in cents;
``unit_amount_decimal`` is in cents too (``"0.35"`` is a third of a cent and a bit).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulator.resources.billing import line_amount as emulator_line_amount
from reconciler.expected_invoice import (
    Coupon,
    TaxRate,
    coupon_from_stripe,
    expected_invoice,
    expected_line,
    metered_quantity,
    money,
    tax_rate_from_stripe,
)

PER_SECOND = {"currency": "usd", "billing_scheme": "per_unit", "unit_amount_decimal": "0.35"}
GRADUATED = {
    "currency": "usd",
    "billing_scheme": "tiered",
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 1000, "unit_amount": 0, "unit_amount_decimal": "0", "flat_amount": None},
        {"up_to": 10000, "unit_amount": None, "unit_amount_decimal": "0.3", "flat_amount": None},
        {"up_to": None, "unit_amount": None, "unit_amount_decimal": "0.25", "flat_amount": None},
    ],
}
FLAT_PLUS_UNIT = {
    "currency": "eur",
    "billing_scheme": "tiered",
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 1000, "unit_amount": 0, "flat_amount": 500},
        {"up_to": None, "unit_amount_decimal": "0.45", "flat_amount": None},
    ],
}
VOLUME = {
    "currency": "usd",
    "billing_scheme": "tiered",
    "tiers_mode": "volume",
    "tiers": [
        {"up_to": 100, "unit_amount": 2, "flat_amount": 500},
        {"up_to": "inf", "unit_amount_decimal": "1.5", "flat_amount": None},
    ],
}


HOUR, DAY = 3600, 86400
T = 1_700_006_400  # a UTC midnight
SENT = [(T + 60, 5), (T + 120, 9), (T + HOUR + 60, 2), (T + 30, 4)]
"""Events in the order sent: the last, stamped earliest, arrives late in the first hour."""


@pytest.mark.parametrize(
    ("formula", "window", "quantity"),
    [
        ("sum", None, 5 + 9 + 2 + 4),
        ("count", None, 4),
        ("last", None, 2),  # the latest timestamp
        # hourly: the first hour keeps the last event sent in it (4), the second its one (2)
        ("sum", "hour", 4 + 2),
        ("count", "hour", 2),
        ("last", "hour", 2),
        # daily: one window, the last event sent (4) is all that counts
        ("sum", "day", 4),
        ("count", "day", 1),
        ("last", "day", 4),
    ],
)
def test_a_meter_bills_its_formula_over_the_events_its_window_keeps(
    formula: str, window: str | None, quantity: int
) -> None:
    assert metered_quantity(formula, SENT, window) == quantity


def test_a_meter_without_events_bills_nothing_and_knows_only_stripes_formulas() -> None:
    assert [metered_quantity(f, []) for f in ("sum", "count", "last")] == [0, 0, 0]
    with pytest.raises(ValueError, match="sum, count or last, not 'max'"):
        metered_quantity("max", SENT)


def test_equal_timestamps_take_the_one_sent_last() -> None:
    assert metered_quantity("last", [(T, 3), (T, 8)]) == 8


def test_sub_cent_per_unit_is_rounded_once_per_line_half_up() -> None:
    # 4,055 s x 0.35 c = 1,419.25 c -> 1,419 c ($14.19)
    line = expected_line(PER_SECOND, 4055)
    assert (line.exact, line.amount) == (Decimal("1419.25"), 1419)
    assert line.why == "per unit: 4,055 units at $0.0035 = $14.1925, rounded to $14.19"
    # 10 x 0.35 c = 3.5 c -> 4 c: a half goes up (Stripe's example: 0.05 x 30 = 1.5 -> 2)
    assert expected_line(PER_SECOND, 10).amount == 4
    # 0.05 c x 30 = 1.5 c -> 2 c, the documented example itself
    assert expected_line({"unit_amount_decimal": "0.05"}, 30).amount == 2
    # 1 x 0.35 c = 0.35 c -> 0 c
    assert expected_line(PER_SECOND, 1).amount == 0


def test_graduated_tiers_across_a_boundary() -> None:
    # 2,500 s: tier 1 1,000 x 0 = 0; tier 2 1,500 x 0.3 c = 450 c -> $4.50
    assert expected_line(GRADUATED, 2500).amount == 450
    # 12,001 s: 1,000 x 0 + 9,000 x 0.3 = 2,700 + 2,001 x 0.25 = 500.25 -> 3,200.25 -> 3,200 c
    line = expected_line(GRADUATED, 12001)
    assert line.amount == 3200
    assert line.why == (
        "graduated tier 1: 1,000 units at $0.00; tier 2: 9,000 units at $0.003; "
        "tier 3: 2,001 units at $0.0025 = $32.0025, rounded to $32.00"
    )
    # exactly on a bound: up_to is inclusive, 1,000 s stay in tier 1 -> 0 c
    assert expected_line(GRADUATED, 1000).amount == 0
    # one more: 1 x 0.3 c = 0.3 c -> 0 c
    assert expected_line(GRADUATED, 1001).amount == 0


def test_flat_plus_unit_tiers() -> None:
    # 4,055 s: 500 c flat + 0 x 1,000 + 3,055 x 0.45 c = 1,374.75 -> 1,874.75 c -> 1,875 c
    line = expected_line(FLAT_PLUS_UNIT, 4055)
    assert line.amount == 1875
    assert line.why.startswith("graduated tier 1: 1,000 units at €0.00 + flat €5.00; tier 2: ")
    # 5,615 s: 500 + 4,615 x 0.45 = 2,076.75 -> 2,576.75 -> 2,577 c
    assert expected_line(FLAT_PLUS_UNIT, 5615).amount == 2577
    # no usage: the first tier's flat fee is still a base fee -> 500 c
    assert expected_line(FLAT_PLUS_UNIT, 0).amount == 500


def test_volume_tiers_price_every_unit_at_the_tier_reached() -> None:
    # 100: tier 1 for all: 100 x 2 c + 500 c flat = 700 c
    assert expected_line(VOLUME, 100).amount == 700
    # 101: tier 2 for all 101 units, no flat: 101 x 1.5 c = 151.5 -> 152 c (cheaper than 100)
    line = expected_line(VOLUME, 101)
    assert line.amount == 152
    assert "for every unit" in line.why and "tier 2: 101 units at $0.015" in line.why


def test_transform_quantity_rounds_up_and_down_before_pricing() -> None:
    per_minute_up = {"unit_amount": 900, "transform_quantity": {"divide_by": 60, "round": "up"}}
    per_minute_down = {**per_minute_up, "transform_quantity": {"divide_by": 60, "round": "down"}}
    # 61 s / 60 = 1.0167 -> up 2 minutes x 900 c = 1,800 c
    up = expected_line(per_minute_up, 61)
    assert (up.billed_units, up.amount) == (2, 1800)
    assert up.why == "61 / 60 rounded up = 2 units; per unit: 2 units at $9.00 = $18.00"
    # 61 s / 60 -> down 1 minute x 900 c = 900 c
    assert expected_line(per_minute_down, 61).amount == 900
    # 59 s -> down 0 minutes = 0 c; up 1 minute = 900 c
    assert expected_line(per_minute_down, 59).amount == 0
    assert expected_line(per_minute_up, 59).amount == 900


def test_transform_quantity_with_tiers_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be combined with tiers"):
        expected_line({**VOLUME, "transform_quantity": {"divide_by": 2, "round": "up"}}, 3)


def test_percent_discount_is_taken_off_the_subtotal() -> None:
    # lines 320 + 4,900 = 5,220; 10% of 5,220 = 522 -> total 4,698
    invoice = expected_invoice([320, 4900], coupons=[Coupon(percent_off=Decimal(10))])
    assert (invoice.subtotal, invoice.discount, invoice.total) == (5220, 522, 4698)
    # spread in proportion: 522 x 320 / 5,220 = 32 on the first line, the rest (490) on the last
    assert invoice.line_discounts == (32, 490)
    # 12.5% of 1,419 = 177.375 -> 177 -> total 1,242
    assert expected_invoice([1419], coupons=[Coupon(percent_off=Decimal("12.5"))]).total == 1242


def test_fixed_discount_never_goes_below_zero() -> None:
    # 1,419 - 500 = 919
    assert expected_invoice([1419], coupons=[Coupon(amount_off=500)]).total == 919
    # 300 - min(500, 300) = 0
    small = expected_invoice([300], coupons=[Coupon(amount_off=500)])
    assert (small.discount, small.total) == (300, 0)


def test_exclusive_tax_is_added_per_line_after_the_discount() -> None:
    # 320 - 32 = 288 x 20% = 57.6 -> 58; 4,900 - 490 = 4,410 x 20% = 882; tax 940
    # total 5,220 - 522 + 940 = 5,638
    invoice = expected_invoice(
        [320, 4900], coupons=[Coupon(percent_off=Decimal(10))], tax_rates=[TaxRate(Decimal(20))]
    )
    assert (invoice.exclusive_tax, invoice.total) == (940, 5638)
    # Stripe's own rounding note: 15% of 43 = 6.45 -> 6 and of 484 = 72.6 -> 73; 79 in all
    assert expected_invoice([43, 484], tax_rates=[TaxRate(Decimal(15))]).exclusive_tax == 79


def test_inclusive_tax_is_carved_out_and_leaves_the_total() -> None:
    # 1,419 includes 20%: 1,419 / 1.2 = 1,182.5 -> 1,183 net, tax 1,419 - 1,183 = 236
    invoice = expected_invoice([1419], tax_rates=[TaxRate(Decimal(20), inclusive=True)])
    assert (invoice.inclusive_tax, invoice.exclusive_tax, invoice.total) == (236, 0, 1419)
    # Stripe's example: 60,000 with 10% inclusive still totals 60,000 (tax 60,000 - 54,545 = 5,455)
    ten = expected_invoice([60000], tax_rates=[TaxRate(Decimal(10), inclusive=True)])
    assert (ten.inclusive_tax, ten.total) == (5455, 60000)


def test_stripe_shapes_are_read_as_stripe_sends_them() -> None:
    assert coupon_from_stripe({"percent_off": 10.0, "amount_off": None}).percent_off == 10
    assert coupon_from_stripe({"percent_off": None, "amount_off": 500}).amount_off == 500
    rate = tax_rate_from_stripe({"percentage": 20.0, "inclusive": False})
    assert (rate.percentage, rate.inclusive) == (Decimal(20), False)


def test_money_reads_as_a_person_writes_it() -> None:
    assert money(Decimal("0.35")) == "$0.0035"
    assert money(123456) == "$1,234.56"
    assert money(Decimal("1874.75"), "eur") == "€18.7475"
    assert money(5, "jpy") == "5 JPY"


# The emulator bills with its own arithmetic (reconciler/emulator/resources/billing.py);
# drawn prices and quantities, it must bill what the documented rules above say.
_amounts = st.decimals(min_value=0, max_value=5000, places=3, allow_nan=False)


@st.composite
def _prices(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        price: dict[str, Any] = {
            "billing_scheme": "per_unit",
            "unit_amount_decimal": str(draw(_amounts)),
            "unit_amount": None,
        }
        if draw(st.booleans()):
            price["transform_quantity"] = {
                "divide_by": draw(st.integers(1, 1000)),
                "round": draw(st.sampled_from(["up", "down"])),
            }
        return price
    bounds = sorted(draw(st.sets(st.integers(1, 20000), max_size=3)))
    return {
        "billing_scheme": "tiered",
        "tiers_mode": draw(st.sampled_from(["graduated", "volume"])),
        "tiers": [
            {
                "up_to": up_to,
                "unit_amount": None,
                "unit_amount_decimal": str(draw(_amounts)),
                "flat_amount": draw(st.sampled_from([None, 0, 100, 2500])),
                "flat_amount_decimal": None,
            }
            for up_to in [*bounds, None]
        ],
    }


@given(price=_prices(), quantity=st.integers(0, 50000))
@settings(max_examples=300)
def test_the_emulator_bills_what_the_documented_rules_say(
    price: dict[str, Any], quantity: int
) -> None:
    assert emulator_line_amount(price, quantity) == expected_line(price, quantity).amount


def test_the_model_stands_apart_from_the_arithmetic_it_checks() -> None:
    """A second derivation only counts if it shares no code with the first."""
    import ast
    import inspect

    import reconciler.expected_invoice as module

    tree = ast.parse(inspect.getsource(module))
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not [name for name in imported if name.startswith("reconciler")]
