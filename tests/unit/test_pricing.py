"""Invoice arithmetic, by hand."""

from __future__ import annotations

from reconciler.pricing import line_amount

PER_SECOND = {"unit_amount": "0.35"}
GRADUATED = {
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 1000, "unit_amount": "0", "flat_amount": None},
        {"up_to": 10000, "unit_amount": "0.3", "flat_amount": None},
        {"up_to": None, "unit_amount": "0.25", "flat_amount": None},
    ],
}
VOLUME = {
    "tiers_mode": "volume",
    "tiers": [
        {"up_to": 100, "unit_amount": "2", "flat_amount": "500"},
        {"up_to": None, "unit_amount": "1.5", "flat_amount": None},
    ],
}


def test_sub_cent_per_unit_rounds_half_up_once() -> None:
    assert line_amount(PER_SECOND, 2115) == 740  # 740.25
    assert line_amount(PER_SECOND, 1) == 0  # 0.35
    assert line_amount(PER_SECOND, 10) == 4  # 3.5 -> 4


def test_graduated_tiers() -> None:
    assert line_amount(GRADUATED, 500) == 0
    assert line_amount(GRADUATED, 2500) == 450  # 1500 x 0.3
    assert line_amount(GRADUATED, 12001) == 3200  # 9000 x 0.3 + 2001 x 0.25 = 3200.25


def test_volume_tiers_price_every_unit_at_the_reached_tier() -> None:
    assert line_amount(VOLUME, 0) == 500
    assert line_amount(VOLUME, 100) == 700  # 100 x 2 + 500
    assert line_amount(VOLUME, 101) == 152  # 101 x 1.5 = 151.5


def test_transform_quantity_rounds_before_pricing() -> None:
    per_minute = {"unit_amount": "900", "transform_quantity": {"divide_by": 60, "round": "up"}}
    assert line_amount(per_minute, 61) == 1800
    assert (
        line_amount({**per_minute, "transform_quantity": {"divide_by": 60, "round": "down"}}, 61)
        == 900
    )
