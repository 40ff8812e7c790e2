"""Amounts as people read them: ``$49.00``, ``$0.0035``, ``€27.00``, ``¥500``.

Stripe counts money in a currency's minor unit (cents for USD; yen for JPY,
which has none; thousandths for BHD). Renders show both: the money, and
Stripe's minor units beside it, so neither a reviewer nor a tool is misled.
Pure.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["currency_exponent", "format_money", "money_beside_minor"]

# Stripe's zero-decimal and three-decimal currencies; every other one has two places.
_ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
_SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "inr": "₹",
    "krw": "₩",
    "cad": "CA$",
    "aud": "A$",
}


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (2 for usd, 0 for jpy)."""
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def format_money(minor: int | str | Decimal, currency: str) -> str:
    """An amount in minor units as money: at least the currency's places, more when the
    amount has them (``0.35`` cents is ``$0.0035``), thousands separated, the sign before
    the symbol (``-$1.50``); unknown symbols as ``CHF 12.00``."""
    exponent = currency_exponent(currency)
    major = Decimal(minor).scaleb(-exponent)
    if not major.is_finite():
        raise ValueError(f"not an amount: {minor!r}")
    power = major.normalize().as_tuple().exponent
    places = max(exponent, -power if isinstance(power, int) else 0)
    text = f"{abs(major):,.{places}f}"
    sign = "-" if major < 0 else ""
    code = currency.lower()
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{code.upper()} {text}"


def money_beside_minor(value: object, currency: str | None) -> str | None:
    """``$49.00`` for a minor-unit amount (an int, or a decimal string), None for anything
    else or without a currency."""
    if currency is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return format_money(value, currency)
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return None
        return format_money(amount, currency) if amount.is_finite() else None
    return None
