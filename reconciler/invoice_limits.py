"""What a switch inside a billing period makes Stripe bill at once, and the
per-subscription invoice limits that bill counts against. Pure: no I/O.

Stripe's API reference ("Update a subscription"): switching prices does not
change the billing date or charge at once, unless the interval changes, the
subscription moves from free to paid or paid to free, or a trial starts or
ends; then Stripe invoices at once and resets the billing date. A migration
keeps the interval and the trial, so the free/paid move is the one that can
happen: a metered-only subscription (nothing charged up front) moved to a
licensed price, or the reverse.

docs.stripe.com/rate-limits, Subscriptions API: at most 10 new invoices per
subscription a minute and 20 a day. A ``switch_at: now`` that bills at once is
an invoice made by the tool's own write, so a subscription that already had
its day's invoices waits instead of failing the apply with a 429.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from reconciler.model import Price

__all__ = [
    "INVOICES_PER_DAY",
    "INVOICES_PER_MINUTE",
    "declared_charges",
    "invoice_limit_reached",
    "live_charges",
    "reset_phrase",
]

INVOICES_PER_MINUTE = 10
INVOICES_PER_DAY = 20
_MINUTE = 60
_DAY = 86_400


def live_charges(price: Mapping[str, Any], quantity: int | None) -> bool:
    """Whether an item on this price (a Stripe price object) charges something up front:
    licensed, with an amount above zero for its quantity. A tiered price counts as
    charging (its tiers are not in a subscription's listing); a metered one never does."""
    recurring = price.get("recurring") or {}
    if not recurring or recurring.get("usage_type") == "metered":
        return False
    if (quantity if quantity is not None else 1) <= 0:
        return False
    if price.get("billing_scheme") == "tiered":
        return True
    amount = price.get("unit_amount_decimal") or price.get("unit_amount") or 0
    return Decimal(str(amount)) > 0


def declared_charges(price: Price) -> bool:
    """Whether billing.yaml's price charges something up front for a positive quantity
    (see :func:`live_charges`)."""
    if price.recurring is None or price.is_metered:
        return False
    amounts: list[Decimal | int | None] = [price.unit_amount, price.unit_amount_decimal]
    for tier in price.tiers:
        amounts += [
            tier.unit_amount,
            tier.unit_amount_decimal,
            tier.flat_amount,
            tier.flat_amount_decimal,
        ]
    return any(a is not None and a > 0 for a in amounts)


def reset_phrase(paid_before: bool, paid_after: bool) -> str | None:
    """The note for a switch inside a period that moves between free and paid: Stripe
    invoices at once and restarts the billing period there. None: nothing billed."""
    if paid_before == paid_after:
        return None
    move = "paid to free" if paid_before else "free to paid"
    return (
        f"it goes from {move} at the switch, so Stripe invoices it then and its billing "
        "period restarts there"
    )


def invoice_limit_reached(created: Iterable[int], now: int) -> str | None:
    """Why a write that invoices at ``now`` would pass Stripe's limit for a subscription
    whose invoices were ``created`` at these times; None when it would not. The wait is
    until the oldest invoice counted leaves its window."""
    times = sorted(t for t in created if now - _DAY < t <= now)
    last_minute = [t for t in times if t > now - _MINUTE]
    if len(times) >= INVOICES_PER_DAY:
        window, count, free_at = "a day", len(times), times[-INVOICES_PER_DAY] + _DAY
        limit = INVOICES_PER_DAY
    elif len(last_minute) >= INVOICES_PER_MINUTE:
        window, count = "a minute", len(last_minute)
        free_at, limit = last_minute[-INVOICES_PER_MINUTE] + _MINUTE, INVOICES_PER_MINUTE
    else:
        return None
    return (
        f"switching now invoices it at once, and it had {count} new invoices in the last "
        f"{window.removeprefix('a ')}: Stripe allows {limit} {window} per subscription, so it "
        f"switches on an apply after {_date(free_at)}"
    )


def _date(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
