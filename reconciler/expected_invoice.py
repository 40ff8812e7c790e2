"""What Stripe should bill, derived from Stripe's documented rules alone.

A second derivation of invoice amounts, kept apart on purpose: it does not
import :mod:`reconciler.pricing` nor the emulator, and it reads prices as
Stripe returns them (``billing_scheme``, ``unit_amount`` /
``unit_amount_decimal``, ``tiers`` with ``up_to`` None for ``inf``,
``transform_quantity``), so ``simulate`` and the tests check the emulator's
invoices (and Stripe's) against the documentation, not against a copy of
the same arithmetic. Each result says why, in words a reviewer can check.

The rules, with where Stripe states them:

- **Meter formulas** (docs.stripe.com/api/billing/meter/create,
  ``default_aggregation.formula``): ``count`` counts the events, ``sum`` sums
  their values, ``last`` takes "the last event's value in the window" (the
  latest timestamp; among equal ones, the one sent last). There is no other.
- **Pre-aggregated meters** (docs.stripe.com/billing/subscriptions/usage-based/
  recording-usage, the meter's ``event_time_window``): "Stripe only uses the
  most recent meter event within the hourly or daily window for aggregation. A
  newer event sent within the same hourly or daily window overwrites the
  previous one." Windows are taken as UTC hours and days (the boundaries event
  summaries group by; Stripe's page names none), one customer's at a time.
- **Decimal amounts** (docs.stripe.com/billing/subscriptions/decimal-amounts):
  ``unit_amount_decimal`` is in the currency's minor unit (``0.35`` is 0.35
  cents) with up to 12 decimal places. "Rounding occurs on the line item
  level": quantity x decimal amount, then rounded to the nearest whole
  cent; the documented example rounds 0.05 x 30 = 1.5 up to 2 (half up).
  Each line is rounded before the lines are summed.
- **Tiers** (docs.stripe.com/subscriptions/pricing-models/tiered-pricing and
  the price API's ``tiers``): ``up_to`` is the inclusive upper bound of a tier,
  the next tier starts one above it, the last is ``inf``. *Volume*: the whole
  quantity is priced at the tier it falls in (that tier's unit amount for
  every unit, plus that tier's flat amount). *Graduated*: each tier prices
  the units that fall inside it and the tiers' sums add up; a tier's
  ``flat_amount`` is "the flat billing amount for an entire tier, regardless
  of the number of units in the tier", charged for each tier the quantity
  reaches. The first tier is always reached, so its flat amount is a base
  fee even at zero usage (the cautious reading; Stripe's pages show no
  zero-usage example). The exact sum is rounded once, like any line.
- **transform_quantity** (docs.stripe.com/billing/subscriptions/usage-based/
  transform-quantities): the quantity is divided by ``divide_by`` and rounded
  ``up`` or ``down`` to a whole number before the per-unit price applies;
  "Quantity transformation isn't compatible with tiered pricing".
- **Discounts** (API reference, coupon ``percent_off`` / ``amount_off``):
  taken "off the subtotal" of the invoice: percent of the subtotal rounded
  half up to the cent, or the fixed amount, never more than what is left.
  The discount is spread over the lines in proportion to their amounts (the
  last line takes the remainder), which is what each line's
  ``discount_amounts`` shows and what its tax is computed on.
- **Tax rates** (docs.stripe.com/billing/taxes/tax-rates and Stripe's support
  note on rounding: tax is computed per line item and rounded per line,
  e.g. 15% of 0.43 = 0.0645 -> 0.06, then summed): on each line's amount
  after its discount. *Exclusive* adds ``round(taxable x pct)`` on top;
  *inclusive* is already inside the price ("a price of 600 with an
  inclusive 10% rate still totals 600"): the tax carved out is
  ``taxable - round(taxable / (1 + pct))`` and the total does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

__all__ = [
    "Coupon",
    "ExpectedInvoice",
    "ExpectedLine",
    "TaxRate",
    "counted_events",
    "coupon_from_stripe",
    "expected_invoice",
    "expected_line",
    "metered_quantity",
    "money",
    "tax_rate_from_stripe",
]

#: Currencies whose minor unit is the major unit (Stripe's zero-decimal list, the common ones).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def _half_up(amount: Decimal) -> int:
    """The nearest whole minor unit, halves away from zero (1.5 -> 2, Stripe's example)."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


WINDOW_SECONDS = {"hour": 3600, "day": 86400}
"""A pre-aggregated meter's ``event_time_window`` in seconds."""


def counted_events(events: Sequence[tuple[int, int]], window: str | None) -> list[tuple[int, int]]:
    """The ``(timestamp, value)`` events of one customer that a meter counts, given in the
    order they were sent: all of them, or with an ``event_time_window`` the last one sent
    in each window."""
    if window is None:
        return list(events)
    size = WINDOW_SECONDS[window]
    last_sent = {at // size: index for index, (at, _value) in enumerate(events)}
    kept = set(last_sent.values())
    return [event for index, event in enumerate(events) if index in kept]


def metered_quantity(
    formula: str, events: Sequence[tuple[int, int]], window: str | None = None
) -> int:
    """The quantity a meter bills for one customer's ``(timestamp, value)`` events of a
    period, given in the order they were sent (see the module doc for the rules)."""
    counted = counted_events(events, window)
    match formula:
        case "count":
            return len(counted)
        case "sum":
            return sum(value for _at, value in counted)
        case "last":
            latest = max(enumerate(counted), key=lambda pair: (pair[1][0], pair[0]), default=None)
            return 0 if latest is None else latest[1][1]
        case _:
            raise ValueError(f"meters aggregate with sum, count or last, not {formula!r}")


def money(minor: Decimal | int, currency: str = "usd") -> str:
    """An amount in minor units as a reader sees it: ``money(Decimal("0.35"))`` is ``$0.0035``."""
    code = currency.lower()
    major = Decimal(minor) if code in ZERO_DECIMAL else Decimal(minor) / 100
    exponent = major.normalize().as_tuple().exponent
    digits = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    places = max(digits, 0 if code in ZERO_DECIMAL else 2)
    text = f"{major:,.{places}f}"
    symbol = _SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code.upper()}"


def _units(n: int | Decimal) -> str:
    return f"{n:,} unit{'' if n == 1 else 's'}"


def _amount(value: Any, decimal_value: Any) -> Decimal:
    """A Stripe amount pair (``unit_amount`` / ``unit_amount_decimal``) as exact minor units."""
    if decimal_value not in (None, ""):
        return Decimal(str(decimal_value))
    if value is not None:
        return Decimal(int(value))
    return Decimal(0)


@dataclass(frozen=True)
class ExpectedLine:
    """What one invoice line for a price and a quantity should be, and why."""

    quantity: int
    billed_units: int
    exact: Decimal
    amount: int
    why: str


def expected_line(price: Mapping[str, Any], quantity: int) -> ExpectedLine:
    """The line a price bills for ``quantity`` (see the module doc for the rules)."""
    currency = str(price.get("currency") or "usd")
    steps: list[str] = []
    units = quantity
    transform = price.get("transform_quantity")
    tiered = price.get("billing_scheme") == "tiered" or bool(price.get("tiers"))
    if transform:
        if tiered:
            raise ValueError("transform_quantity cannot be combined with tiers (Stripe refuses it)")
        divide_by = int(transform["divide_by"])
        direction = str(transform["round"])
        mode = ROUND_CEILING if direction == "up" else ROUND_FLOOR
        units = int((Decimal(quantity) / divide_by).to_integral_value(rounding=mode))
        steps.append(f"{quantity:,} / {divide_by:,} rounded {direction} = {_units(units)}")
    if tiered:
        exact, told = _tiered(price, units, currency)
        steps.append(told)
    else:
        unit = _amount(price.get("unit_amount"), price.get("unit_amount_decimal"))
        exact = unit * units
        steps.append(f"per unit: {_units(units)} at {money(unit, currency)}")
    amount = _half_up(exact)
    if exact == amount:
        steps.append(f"= {money(amount, currency)}")
    else:
        steps.append(f"= {money(exact, currency)}, rounded to {money(amount, currency)}")
    return ExpectedLine(quantity, units, exact, amount, "; ".join(steps[:-1]) + " " + steps[-1])


def _tier_parts(tier: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    unit = _amount(tier.get("unit_amount"), tier.get("unit_amount_decimal"))
    flat = _amount(tier.get("flat_amount"), tier.get("flat_amount_decimal"))
    return unit, flat


def _bound(tier: Mapping[str, Any]) -> int | None:
    up_to = tier.get("up_to")
    return None if up_to in (None, "inf") else int(up_to)


def _tier_text(n: int, units: int, unit: Decimal, flat: Decimal, currency: str) -> str:
    text = f"tier {n}: {_units(units)} at {money(unit, currency)}"
    return text + (f" + flat {money(flat, currency)}" if flat else "")


def _tiered(price: Mapping[str, Any], units: int, currency: str) -> tuple[Decimal, str]:
    tiers = list(price.get("tiers") or [])
    if not tiers or _bound(tiers[-1]) is not None:
        raise ValueError("a tiered price needs tiers, the last one up_to inf")
    if price.get("tiers_mode") == "volume":
        lower = 0
        for n, tier in enumerate(tiers, start=1):
            upper = _bound(tier)
            if upper is None or units <= upper:
                unit, flat = _tier_parts(tier)
                if upper is None:
                    reach = f"{lower + 1:,} and up"
                else:
                    reach = f"up to {upper:,}" if lower == 0 else f"{lower + 1:,} to {upper:,}"
                return unit * units + flat, (
                    f"volume {_tier_text(n, units, unit, flat, currency)} "
                    f"(the tier of {reach}, for every unit)"
                )
            lower = upper
    total = Decimal(0)
    parts: list[str] = []
    lower = 0
    for n, tier in enumerate(tiers, start=1):
        upper = _bound(tier)
        inside = (units if upper is None else min(units, upper)) - lower
        if inside <= 0 and n > 1:
            break
        unit, flat = _tier_parts(tier)
        inside = max(inside, 0)
        total += unit * inside + flat
        parts.append(_tier_text(n, inside, unit, flat, currency))
        if upper is None or units <= upper:
            break
        lower = upper
    return total, "graduated " + "; ".join(parts)


@dataclass(frozen=True)
class Coupon:
    """A discount's coupon: ``percent_off`` (e.g. ``Decimal(10)``) or ``amount_off`` in cents."""

    percent_off: Decimal | None = None
    amount_off: int | None = None


@dataclass(frozen=True)
class TaxRate:
    """A tax rate: percentage (``Decimal("20")``) and whether prices already include it."""

    percentage: Decimal
    inclusive: bool = False


def coupon_from_stripe(coupon: Mapping[str, Any]) -> Coupon:
    percent = coupon.get("percent_off")
    amount = coupon.get("amount_off")
    return Coupon(
        Decimal(str(percent)) if percent is not None else None,
        int(amount) if amount is not None else None,
    )


def tax_rate_from_stripe(rate: Mapping[str, Any]) -> TaxRate:
    return TaxRate(Decimal(str(rate["percentage"])), bool(rate.get("inclusive")))


@dataclass(frozen=True)
class ExpectedInvoice:
    """An invoice's totals from its line amounts, its discounts and its tax rates."""

    subtotal: int
    discount: int
    line_discounts: tuple[int, ...]
    exclusive_tax: int
    inclusive_tax: int
    total: int
    why: str


def expected_invoice(
    lines: Sequence[int],
    *,
    coupons: Sequence[Coupon] = (),
    tax_rates: Sequence[TaxRate] = (),
    currency: str = "usd",
) -> ExpectedInvoice:
    """Totals for line amounts (each already rounded) under discounts and tax rates."""
    subtotal = sum(lines)
    left = subtotal
    shares = [0] * len(lines)
    steps = [f"subtotal {money(subtotal, currency)}"]
    for coupon in coupons:
        if left <= 0:
            break
        if coupon.percent_off is not None:
            off = _half_up(Decimal(left) * coupon.percent_off / 100)
            steps.append(f"{coupon.percent_off.normalize():f}% off {money(left, currency)}")
        else:
            off = min(int(coupon.amount_off or 0), left)
            steps.append(f"{money(int(coupon.amount_off or 0), currency)} off")
        steps[-1] += f" = -{money(off, currency)}"
        base = left
        remaining = off
        for i, amount in enumerate(lines):
            taxable = amount - shares[i]
            share = remaining if i == len(lines) - 1 else _half_up(Decimal(off) * taxable / base)
            share = min(share, remaining)
            shares[i] += share
            remaining -= share
        left -= off
    exclusive = inclusive = 0
    for rate in tax_rates:
        pct = rate.percentage / 100
        per_line = []
        for amount, share in zip(lines, shares, strict=True):
            taxable = amount - share
            if rate.inclusive:
                per_line.append(taxable - _half_up(Decimal(taxable) / (1 + pct)))
            else:
                per_line.append(_half_up(Decimal(taxable) * pct))
        kind = "inclusive" if rate.inclusive else "exclusive"
        tax = sum(per_line)
        if rate.inclusive:
            inclusive += tax
        else:
            exclusive += tax
        steps.append(
            f"{rate.percentage.normalize():f}% {kind} tax per line "
            f"({' + '.join(money(t, currency) for t in per_line)}) = {money(tax, currency)}"
        )
    discount = subtotal - left
    total = subtotal - discount + exclusive
    steps.append(f"total {money(total, currency)}")
    return ExpectedInvoice(
        subtotal, discount, tuple(shares), exclusive, inclusive, total, "; ".join(steps)
    )
