"""What a price charges for a quantity: the arithmetic an invoice line follows.

Used to check invoices (``simulate``, the demo): per-unit amounts (sub-cent
decimals included), graduated and volume tiers with flat fees, and
``transform_quantity``. The exact amount is rounded half up to a whole cent
once per line. Works on price essences (see :mod:`reconciler.essence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["line_amount"]


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def line_amount(price: Mapping[str, Any], quantity: int | Decimal) -> int:
    """The amount in cents a price charges for ``quantity`` units."""
    units = Decimal(quantity)
    transform = price.get("transform_quantity")
    if transform:
        rounding = ROUND_CEILING if transform["round"] == "up" else ROUND_FLOOR
        units = (units / Decimal(transform["divide_by"])).to_integral_value(rounding=rounding)
    tiers = price.get("tiers")
    if tiers:
        exact = _tiered(tiers, str(price.get("tiers_mode")), units)
    else:
        exact = units * _dec(price.get("unit_amount"))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tiered(tiers: list[Mapping[str, Any]], mode: str, units: Decimal) -> Decimal:
    if mode == "volume":
        for tier in tiers:
            if tier.get("up_to") is None or units <= tier["up_to"]:
                return units * _dec(tier.get("unit_amount")) + _dec(tier.get("flat_amount"))
        raise ValueError("a tier list must end with up_to: inf")
    total = Decimal(0)
    floor = Decimal(0)
    for tier in tiers:
        ceiling = Decimal(tier["up_to"]) if tier.get("up_to") is not None else None
        in_tier = (min(units, ceiling) if ceiling is not None else units) - floor
        if in_tier > 0 or floor == 0:
            total += max(in_tier, Decimal(0)) * _dec(tier.get("unit_amount"))
            total += _dec(tier.get("flat_amount"))
        if ceiling is None or units <= ceiling:
            break
        floor = ceiling
    return total
