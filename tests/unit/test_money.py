"""Amounts as money: Stripe's minor units in each currency's own places."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.money import currency_exponent, format_money, money_beside_minor
from reconciler.render._lines import price_money


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (4900, "usd", "$49.00"),
        (9900, "USD", "$99.00"),
        (0, "usd", "$0.00"),
        (1, "usd", "$0.01"),
        (2700, "eur", "€27.00"),
        (500, "jpy", "¥500"),
        (1234567, "jpy", "¥1,234,567"),
        (27000, "kwd", "KWD 27.000"),
        (1, "kwd", "KWD 0.001"),
        (1200, "chf", "CHF 12.00"),
        ("0.35", "usd", "$0.0035"),  # sub-cent: as many places as the amount has
        ("0.5", "usd", "$0.005"),
        ("0.50", "usd", "$0.005"),  # trailing zeros past the cent are dropped...
        ("100.0", "usd", "$1.00"),  # ...but never below the currency's own places
        ("0.000000000001", "usd", "$0.00000000000001"),
        (Decimal("1.5"), "kwd", "KWD 0.0015"),
        ("0.5", "jpy", "¥0.5"),
        (-150, "usd", "-$1.50"),
        (-500, "jpy", "-¥500"),
        (-1200, "chf", "-CHF 12.00"),
        ("-0.35", "eur", "-€0.0035"),
        (9223372036854775807, "usd", "$92,233,720,368,547,758.07"),
        (-9223372036854775808, "jpy", "-¥9,223,372,036,854,775,808"),
        ("1E+3", "usd", "$10.00"),
    ],
)
def test_format_money(minor: int | str | Decimal, currency: str, shown: str) -> None:
    assert format_money(minor, currency) == shown


@pytest.mark.parametrize(
    ("currency", "places"), [("usd", 2), ("eur", 2), ("jpy", 0), ("KRW", 0), ("kwd", 3)]
)
def test_currency_exponent(currency: str, places: int) -> None:
    assert currency_exponent(currency) == places


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_not_an_amount_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        format_money(value, "usd")
    assert money_beside_minor(value, "usd") is None


@pytest.mark.parametrize("value", [None, True, 1.5, "abc", [1], {"a": 1}])
def test_money_beside_minor_only_for_amounts(value: object) -> None:
    assert money_beside_minor(value, "usd") is None


def test_money_beside_minor_needs_a_currency() -> None:
    assert money_beside_minor(4900, None) is None
    assert money_beside_minor("4900", "usd") == "$49.00"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from(["usd", "jpy", "kwd"]))
def test_money_reads_back_as_the_same_minor_units(minor: int, currency: str) -> None:
    shown = format_money(minor, currency)
    digits = shown.lstrip("-").lstrip("$¥KWD ").replace(",", "")
    back = Decimal(digits).scaleb(currency_exponent(currency))
    assert back == abs(minor)
    assert shown.startswith("-") == (minor < 0)


def _price(**overrides: object) -> dict[str, object]:
    essence: dict[str, object] = {"currency": "usd", "unit_amount": "0.35", "tiers": None}
    essence.update(overrides)
    return essence


@pytest.mark.parametrize(
    ("essence", "shown"),
    [
        (_price(), "$0.0035 per unit"),
        (_price(unit_amount="4900", currency="eur"), "€49.00 per unit"),
        (_price(transform_quantity={"divide_by": 1000, "round": "up"}), "$0.0035 per 1000 units"),
        (
            _price(
                unit_amount=None,
                tiers_mode="graduated",
                tiers=[
                    {"up_to": 10000, "unit_amount": "0.5", "flat_amount": None},
                    {"up_to": None, "unit_amount": "0.35", "flat_amount": "2500"},
                ],
            ),
            "graduated tiers: $0.005 per unit up to 10000, $0.0035 per unit + $25.00 flat above",
        ),
        (_price(currency=None), None),
        (None, None),
    ],
)
def test_price_money(essence: dict[str, object] | None, shown: str | None) -> None:
    assert price_money(essence) == shown
