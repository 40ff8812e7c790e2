"""Revenue preview: what a migration does to monthly recurring revenue, from invoice previews.

``plan --revenue`` (and ``status --revenue``) asks Stripe to preview the next
invoice of each subscription a migration would schedule now, twice: as it is
(``subscription``), and on the new prices (``subscription`` with
``subscription_details.items`` moving each item on an old price to its new
price, items moving to one price merged as the phases merge them,
``proration_behavior: none``). This module holds everything about that
but the requests (``live.py`` sends them): which subscriptions are previewed,
the request parameters, and the arithmetic that turns two invoices into two
monthly figures, a change, and a summary per migration. Pure: no I/O.

The arithmetic:

- A line counts when it bills a subscription item (not an invoice item) and is
  not a proration: the recurring part of the invoice. Its amount is taken
  after its discounts (``discount_amounts``) and before tax.
- Each line is normalised to a month from its price's interval: ``month``
  divided by the interval count, ``year`` by 12 per year, ``week`` times
  52/12, ``day`` times 365/12. A line's price comes from the line (the whole
  price on API versions up to ``2025-02-24.acacia``), else from ``intervals``
  by its id, else the migration's own interval (a subscription bills every
  item on one interval, except in flexible billing mode).
- Metered lines count the usage recorded so far in the current period: a
  preview bills what is recorded, so the figure grows as usage flows until
  the period ends. After the switch, a meter price counts its meter's events.
- Each subscription's monthly figure is rounded to the currency's minor unit
  (half up); a migration's totals are the sums of those figures.
- A preview whose line list Stripe cut off (``has_more``: an invoice carries its
  first lines only) is reported for its subscription and left out of the totals,
  never counted in part.

The figures cover the first ``limit`` subscriptions to schedule in the plan's
batch order (see :func:`sample`); a summary says when that is a sample. A
preview Stripe refuses is kept with its reason and left out of the totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from reconciler.migrations import TO_PRICE
from reconciler.model import id_of

__all__ = [
    "DEFAULT_LIMIT",
    "LARGEST",
    "SCHEDULING_ACTIONS",
    "Interval",
    "MigrationRevenue",
    "RevenuePreview",
    "SubscriptionRevenue",
    "customers_of",
    "invoice_monthly",
    "largest_increases",
    "monthly",
    "planned_quantity",
    "preview_params",
    "round_half_up",
    "sample",
    "to_schedule",
]

DEFAULT_LIMIT = 200
"""Subscriptions previewed per migration unless told otherwise (two requests each)."""
LARGEST = 5
"""How many of the largest increases a summary names."""
SCHEDULING_ACTIONS = frozenset({"create_schedule", "update_schedule"})
"""The plan row actions that move a subscription to the new price (a new schedule, ours
finished or rewritten, or one someone else made taken over)."""

Interval = tuple[str, int]
"""A recurring price's interval and interval count: ``("month", 1)``."""

_MONTHS_PER_UNIT: Mapping[str, Fraction] = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}


def monthly(amount: int, interval: Interval) -> Fraction:
    """An amount billed every ``interval``, per month (exact): 12,000 a year is 1,000."""
    unit, count = interval
    if unit not in _MONTHS_PER_UNIT or count < 1:
        raise ValueError(f"not a billing interval: every {count} {unit}")
    return Fraction(amount) / (_MONTHS_PER_UNIT[unit] * count)


def round_half_up(value: Fraction) -> int:
    """The nearest whole number, halves away from zero (1.5 -> 2, -1.5 -> -2)."""
    whole, rest = divmod(abs(value), 1)
    rounded = int(whole) + (1 if rest >= Fraction(1, 2) else 0)
    return rounded if value >= 0 else -rounded


def _line_interval(
    line: Mapping[str, Any], intervals: Mapping[str, Interval], default: Interval
) -> Interval:
    price = line.get("price")
    if isinstance(price, Mapping):
        recurring = price.get("recurring")
        if isinstance(recurring, Mapping) and recurring.get("interval"):
            return str(recurring["interval"]), int(recurring.get("interval_count") or 1)
    details = (line.get("pricing") or {}).get("price_details") or {}
    price_id = id_of(details.get("price")) or id_of(price)
    return intervals.get(price_id, default) if price_id else default


def _recurring(line: Mapping[str, Any]) -> bool:
    """A subscription item's line that is not a proration (both API shapes: the flat
    ``type``/``proration`` up to acacia, ``parent`` since basil)."""
    parent = line.get("parent") or {}
    item_details = parent.get("subscription_item_details") or {}
    of_item = line.get("type") == "subscription" or parent.get("type") == (
        "subscription_item_details"
    )
    prorated = bool(line.get("proration")) or bool(item_details.get("proration"))
    return of_item and not prorated


def invoice_monthly(
    invoice: Mapping[str, Any],
    *,
    default: Interval,
    intervals: Mapping[str, Interval] | None = None,
) -> Fraction:
    """The invoice's recurring amount per month: its subscription lines, prorations left
    out, each after its discounts and normalised by its price's interval (exact)."""
    total = Fraction(0)
    for line in (invoice.get("lines") or {}).get("data") or []:
        if not _recurring(line):
            continue
        discounts = sum(int(d.get("amount") or 0) for d in line.get("discount_amounts") or [])
        interval = _line_interval(line, intervals or {}, default)
        total += monthly(int(line.get("amount") or 0) - discounts, interval)
    return total


@dataclass(frozen=True)
class SubscriptionRevenue:
    """One previewed subscription: its monthly recurring revenue as is and on the new
    price, in minor units, or why Stripe would not preview it."""

    subscription: str
    customer: str
    before: int | None = None
    after: int | None = None
    refused: str | None = None

    @property
    def change(self) -> int | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @classmethod
    def of(
        cls,
        subscription: str,
        customer: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        *,
        default: Interval,
        intervals: Mapping[str, Interval] | None = None,
    ) -> SubscriptionRevenue:
        """From the two preview invoices (as is, on the new price). A preview whose lines
        Stripe cut off (``has_more``) is left out, not counted in part."""
        for invoice in (before, after):
            lines = invoice.get("lines") or {}
            if lines.get("has_more"):
                shown = len(lines.get("data") or [])
                total = lines.get("total_count")
                of = f" of {total}" if total is not None else ""
                return cls(
                    subscription,
                    customer,
                    refused=f"the preview came with {shown}{of} lines (Stripe cuts the "
                    "list): left out rather than counted in part",
                )
        return cls(
            subscription,
            customer,
            round_half_up(invoice_monthly(before, default=default, intervals=intervals)),
            round_half_up(invoice_monthly(after, default=default, intervals=intervals)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "customer": self.customer,
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "refused": self.refused,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubscriptionRevenue:
        return cls(
            str(data["subscription"]),
            str(data["customer"]),
            data.get("before"),
            data.get("after"),
            data.get("refused"),
        )


def largest_increases(
    rows: Iterable[SubscriptionRevenue], count: int = LARGEST
) -> tuple[SubscriptionRevenue, ...]:
    """The ``count`` largest increases, largest first; equal ones by customer, then by
    subscription id, so the order never depends on the order of the previews."""
    rising = [row for row in rows if row.change is not None and row.change > 0]
    rising.sort(key=lambda row: (-(row.change or 0), row.customer, row.subscription))
    return tuple(rising[:count])


@dataclass(frozen=True)
class MigrationRevenue:
    """One migration's revenue preview.

    ``to_schedule`` and ``customers`` count every subscription the plan would
    schedule now (and their customers); ``subscriptions`` are those previewed,
    in batch order; ``unavailable`` says why none could be.
    """

    address: str
    currency: str | None
    to_schedule: int
    customers: int
    subscriptions: tuple[SubscriptionRevenue, ...] = ()
    unavailable: str | None = None

    @property
    def counted(self) -> tuple[SubscriptionRevenue, ...]:
        """The previewed subscriptions with both figures (not refused)."""
        return tuple(row for row in self.subscriptions if row.change is not None)

    @property
    def refused(self) -> tuple[SubscriptionRevenue, ...]:
        return tuple(row for row in self.subscriptions if row.refused is not None)

    @property
    def before(self) -> int:
        return sum(row.before or 0 for row in self.counted)

    @property
    def after(self) -> int:
        return sum(row.after or 0 for row in self.counted)

    @property
    def change(self) -> int:
        return self.after - self.before

    @property
    def sampled(self) -> bool:
        """Whether fewer subscriptions were previewed than the plan schedules (and some
        could be)."""
        return self.unavailable is None and len(self.subscriptions) < self.to_schedule

    def largest_increases(self, count: int = LARGEST) -> tuple[SubscriptionRevenue, ...]:
        return largest_increases(self.counted, count)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "currency": self.currency,
            "to_schedule": self.to_schedule,
            "customers": self.customers,
            "previewed": len(self.subscriptions),
            "refused": len(self.refused),
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "largest_increases": [row.to_json() for row in self.largest_increases()],
            "subscriptions": [row.to_json() for row in self.subscriptions],
            "unavailable": self.unavailable,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MigrationRevenue:
        """Back from :meth:`to_json`; the totals are derived again from the rows."""
        return cls(
            address=str(data["address"]),
            currency=data.get("currency"),
            to_schedule=int(data["to_schedule"]),
            customers=int(data["customers"]),
            subscriptions=tuple(
                SubscriptionRevenue.from_json(row) for row in data.get("subscriptions") or ()
            ),
            unavailable=data.get("unavailable"),
        )


@dataclass(frozen=True)
class RevenuePreview:
    """Every migration's revenue preview, and the per-migration cap it was made with.

    Kept beside the plan (the plan document's ``revenue``), never in it: the saved
    plan's integrity check ignores it, and apply never reads it.
    """

    limit: int
    migrations: tuple[MigrationRevenue, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "migrations": [m.to_json() for m in self.migrations]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RevenuePreview:
        return cls(
            limit=int(data["limit"]),
            migrations=tuple(MigrationRevenue.from_json(m) for m in data.get("migrations") or ()),
        )


def to_schedule(details: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A migration's plan rows that move a subscription now, in batch order."""
    return [
        row for row in details.get("subscriptions") or () if row.get("action") in SCHEDULING_ACTIONS
    ]


def sample(details: Mapping[str, Any], limit: int) -> list[Mapping[str, Any]]:
    """The rows to preview: the first ``limit`` to schedule, in the plan's batch order."""
    if limit < 1:
        raise ValueError(f"the preview limit must be at least 1, not {limit}")
    return to_schedule(details)[:limit]


def planned_quantity(row: Mapping[str, Any], placeholder: str = TO_PRICE) -> int | None:
    """A new price's quantity in the row's planned phases (None: metered, or none);
    ``placeholder`` is what the phases name that price by (see ``to_price_placeholder``)."""
    for phase in (row.get("params") or {}).get("phases") or ():
        for item in phase.get("items") or ():
            if item.get("price") == placeholder:
                quantity = item.get("quantity")
                return int(quantity) if quantity is not None else None
    return None


def preview_params(
    row: Mapping[str, Any],
    items: Sequence[tuple[str, str]],
    targets: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ``create_preview`` requests for a plan row: the subscription as is, and the
    subscription with its old prices' items moved, unprorated.

    ``items`` are the subscription's items on old prices, ``(item id, old price id)``;
    ``targets`` maps an old price id to ``(new price id, the phases' placeholder for
    it)``. The first item moving to a new price takes it, with the planned quantity;
    others moving to the same price are deleted, as the planned phases merge them.
    """
    subscription = str(row["subscription"])
    moved: list[dict[str, Any]] = []
    taken: set[str] = set()
    for item, old_price in items:
        new_price, placeholder = targets[old_price]
        if placeholder in taken:
            moved.append({"id": item, "deleted": True})
            continue
        taken.add(placeholder)
        entry: dict[str, Any] = {"id": item, "price": new_price}
        quantity = planned_quantity(row, placeholder)
        if quantity is not None:
            entry["quantity"] = quantity
        moved.append(entry)
    after = {
        "subscription": subscription,
        "subscription_details": {"items": moved, "proration_behavior": "none"},
    }
    return {"subscription": subscription}, after


def customers_of(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many customers the rows belong to."""
    return len({str(row.get("customer")) for row in rows})
