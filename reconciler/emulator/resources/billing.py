"""Billing arithmetic shared by subscriptions, schedules, usage records and invoices.

- time: :func:`customer_now` (the customer's test clock ``frozen_time`` when it
  has one, else the emulator clock);
- periods: :func:`shift` moves a timestamp by whole intervals on the calendar
  (months and years keep the anchor's day, clamped to the month's length;
  weeks and days are fixed lengths); :func:`next_boundary` is the first
  billing boundary after a moment for an anchor;
- prices: :func:`is_legacy_metered` (metered without a meter) and the
  version gate :func:`check_attachable`;
- legacy usage: :func:`legacy_usage` aggregates usage records per ``aggregate_usage``;
- amounts: :func:`line_amount` prices a quantity (per unit with
  ``transform_quantity``, tiered ``graduated`` / ``volume``, decimal amounts;
  the exact amount is rounded half up to a whole cent once per line, like
  Stripe), :func:`round_cents`.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from reconciler.emulator.errors import invalid
from reconciler.emulator.resources.catalog import PRICE
from reconciler.emulator.router import Request
from reconciler.emulator.store import JSON
from reconciler.emulator.versions import BASIL

__all__ = [
    "COUPON",
    "CUSTOMER",
    "DISCOUNT",
    "INACTIVE_PRICE",
    "INVOICE",
    "SCHEDULE",
    "SUBSCRIPTION",
    "TAX_RATE",
    "TEST_CLOCK",
    "USAGE_RECORD_KIND",
    "check_attachable",
    "customer_now",
    "is_legacy_metered",
    "is_metered",
    "legacy_usage",
    "line_amount",
    "next_boundary",
    "round_cents",
    "shift",
]

SUBSCRIPTION = "subscription"
SCHEDULE = "subscription_schedule"
INVOICE = "invoice"
TAX_RATE = "tax_rate"
COUPON = "coupon"
DISCOUNT = "discount"
CUSTOMER = "customer"
TEST_CLOCK = "test_helpers.test_clock"

_FIXED_SECONDS = {"day": 86400, "week": 7 * 86400}


def customer_now(req: Request, customer_id: str | None) -> int:
    """The customer's test clock time when it has one, else the emulator clock."""
    if customer_id:
        customer = req.store.find(CUSTOMER, customer_id)
        if customer is not None and customer.get("test_clock"):
            clock = req.store.find(TEST_CLOCK, str(customer["test_clock"]))
            if clock is not None:
                return int(clock["frozen_time"])
    return req.now()


def shift(anchor: int, interval: str, count: int) -> int:
    """``anchor`` moved by ``count`` intervals (months/years on the calendar, day clamped)."""
    if interval in _FIXED_SECONDS:
        return anchor + count * _FIXED_SECONDS[interval]
    months = count * (12 if interval == "year" else 1)
    moment = datetime.fromtimestamp(anchor, tz=UTC)
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return int(moment.replace(year=year, month=month + 1, day=day).timestamp())


def next_boundary(anchor: int, interval: str, count: int, after: int) -> int:
    """The first billing boundary strictly after ``after`` for a cycle anchored at ``anchor``."""
    if after < anchor:
        return anchor
    if interval in _FIXED_SECONDS:
        step = count * _FIXED_SECONDS[interval]
        return anchor + ((after - anchor) // step + 1) * step
    # Calendar intervals: estimate, then walk (each boundary is shifted from the anchor,
    # never from the previous boundary, so clamped days recover: Jan 31, Feb 28, Mar 31).
    k = max(0, (after - anchor) // (count * 31 * 86400 * (12 if interval == "year" else 1)))
    while True:
        boundary = shift(anchor, interval, k * count)
        if boundary > after:
            return boundary
        k += 1


def is_metered(price: JSON) -> bool:
    recurring = price.get("recurring") or {}
    return recurring.get("usage_type") == "metered"


def is_legacy_metered(price: JSON) -> bool:
    """A metered price without a meter: legacy usage-record billing."""
    return is_metered(price) and not (price.get("recurring") or {}).get("meter")


#: Stripe's refusal of an archived price, word for word. Sources: the error as
#: Stripe returns it (``invalid_request_error``, no ``code``, ``param`` naming the
#: field, e.g. ``line_items[0][price]``) is quoted in public reports such as
#: github.com/invertase/stripe-firebase-extensions/issues/560 and
#: github.com/strangerstudios/paid-memberships-pro/pull/3717; the API reference
#: defines ``price.active`` as "Whether the price can be used for new purchases",
#: and docs.stripe.com/products-prices/manage-prices says an archived product
#: "can't be added to new invoices or subscriptions" while "existing subscriptions
#: that use the product remain active until they're canceled".
INACTIVE_PRICE = "The price specified is inactive. This field only accepts active prices."


def check_attachable(
    req: Request,
    price_id: Any,
    param: str,
    *,
    allow_legacy: bool = False,
    allow_inactive: bool = False,
) -> JSON:
    """The recurring price ``price_id`` if it may go on a subscription or phase on this version.

    ``allow_legacy`` skips the version gate (a schedule entering a phase that was
    accepted earlier on a legacy version). ``allow_inactive`` lets an archived
    price through: it stays where it already is (an item that keeps its price, a
    phase that keeps a price already on the subscription or schedule, a phase
    accepted before the price was archived being entered). Anything that would
    newly attach an archived price is refused with Stripe's :data:`INACTIVE_PRICE`.
    """
    price = req.store.get(PRICE, str(price_id), param=param, status=400)
    if price.get("type") != "recurring" or price.get("recurring") is None:
        raise invalid(
            f"The price specified ({price['id']}) is a one-time price; subscription items need "
            "a recurring price.",
            param=param,
        )
    if not price.get("active", True) and not allow_inactive:
        raise invalid(INACTIVE_PRICE, param=param)
    if is_legacy_metered(price) and not (allow_legacy or req.legacy_usage_billing):
        raise invalid(
            f"The price {price['id']} is a legacy metered price without a meter (usage "
            f"records). Since API version {BASIL} such prices can no longer be attached to "
            "subscriptions, schedules, quotes or upcoming invoices; use a price backed by a "
            "billing meter, or send this request with an earlier Stripe-Version.",
            param=param,
        )
    return price


def round_cents(amount: Decimal) -> int:
    """Round half up to a whole number of the currency's minor unit."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _transformed(price: JSON, quantity: int) -> int:
    transform = price.get("transform_quantity")
    if not transform:
        return quantity
    rounding = ROUND_CEILING if transform["round"] == "up" else ROUND_FLOOR
    return int((Decimal(quantity) / int(transform["divide_by"])).to_integral_value(rounding))


def _tier_amounts(tier: JSON) -> tuple[Decimal, Decimal]:
    flat = tier.get("flat_amount_decimal") or tier.get("flat_amount")
    unit = tier.get("unit_amount_decimal") or tier.get("unit_amount")
    return _decimal(flat), _decimal(unit)


def exact_amount(price: JSON, quantity: int) -> Decimal:
    """The exact (unrounded) amount for ``quantity`` units of ``price``."""
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers") or []
        if price.get("tiers_mode") == "volume":
            for tier in tiers:
                if tier["up_to"] is None or quantity <= int(tier["up_to"]):
                    flat, unit = _tier_amounts(tier)
                    return flat + unit * quantity
            return Decimal(0)
        total = Decimal(0)
        lower = 0
        for index, tier in enumerate(tiers):
            upper = tier["up_to"]
            units = (quantity if upper is None else min(quantity, int(upper))) - lower
            flat, unit = _tier_amounts(tier)
            if units > 0 or (index == 0 and quantity == 0):
                total += flat + unit * max(units, 0)
            if upper is None or quantity <= int(upper):
                break
            lower = int(upper)
        return total
    unit = _decimal(price.get("unit_amount_decimal") or price.get("unit_amount"))
    return unit * _transformed(price, quantity)


def line_amount(price: JSON, quantity: int) -> int:
    """The line amount in minor units: the exact amount rounded half up once."""
    return round_cents(exact_amount(price, quantity))


#: Internal legacy usage records: ``{id, subscription_item, quantity, timestamp, action}``.
USAGE_RECORD_KIND = "_usage_record"


def legacy_usage(req: Request, item_id: str, aggregate_usage: str, start: int, end: int) -> int:
    """Usage of a legacy metered item over ``[start, end)`` per the price's ``aggregate_usage``.

    Records are kept per timestamp: ``increment`` adds to the quantity at its
    timestamp, ``set`` replaces it. ``sum`` adds the period's timestamps,
    ``max`` takes the largest, ``last_during_period`` the latest one in the
    period (0 without any), ``last_ever`` the latest before the period's end.
    """
    at: dict[int, int] = {}
    for record in req.store.values(USAGE_RECORD_KIND):
        if record["subscription_item"] != item_id:
            continue
        stamp = int(record["timestamp"])
        quantity = int(record["quantity"])
        at[stamp] = quantity if record["action"] == "set" else at.get(stamp, 0) + quantity
    inside = sorted((stamp, value) for stamp, value in at.items() if start <= stamp < end)
    if aggregate_usage == "last_ever":
        before = sorted((stamp, value) for stamp, value in at.items() if stamp < end)
        return before[-1][1] if before else 0
    if aggregate_usage == "last_during_period":
        return inside[-1][1] if inside else 0
    if aggregate_usage == "max":
        return max((value for _, value in inside), default=0)
    return sum(value for _, value in inside)
