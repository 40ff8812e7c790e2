"""The words of a revenue preview (``plan --revenue``, ``status --revenue``), as money.

The text render, the markdown comment and ``status`` show the same figures:
each migration's customers, its monthly recurring revenue as is and on the
new price with the change, the largest increases, and notes (a sample, the
previews Stripe refused). The figures are those of :mod:`reconciler.revenue`;
this module only words them. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.money import format_money
from reconciler.revenue import MigrationRevenue, RevenuePreview, SubscriptionRevenue

__all__ = [
    "EXPLAINED",
    "HEADING",
    "MAX_REFUSED_LINES",
    "IncreaseRow",
    "increase_rows",
    "migration_notes",
    "migration_summary",
    "money",
    "preview_of",
    "revenue_text_lines",
    "signed",
]

HEADING = (
    "Revenue preview: monthly recurring revenue of each subscription's next invoice, "
    "as is and on the new price"
)
EXPLAINED = (
    "From Stripe's invoice previews; each invoice's recurring lines after discounts, before "
    "tax, normalised to a month by their price's interval; metered items count the usage "
    "recorded so far this period."
)
MAX_REFUSED_LINES = 5


def preview_of(data: Mapping[str, Any] | None) -> RevenuePreview | None:
    """The preview a plan carries (its document's ``revenue``), None without one."""
    return None if data is None else RevenuePreview.from_json(data)


def money(amount: int, currency: str | None) -> str:
    """``$40.00``; without a known currency, the minor units themselves."""
    return format_money(amount, currency) if currency else f"{amount:,} (minor units)"


def signed(amount: int, currency: str | None) -> str:
    """A change: ``+$6.00``, ``-$2.00``, ``no change``."""
    if amount == 0:
        return "no change"
    return ("+" if amount > 0 else "") + money(amount, currency)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def migration_summary(m: MigrationRevenue) -> str:
    """``2 customers (2 subscriptions to schedule): $40.00 -> $48.00 a month (+$8.00)``."""
    if m.unavailable is not None:
        return m.unavailable
    if not m.to_schedule:
        return "no subscription to schedule now"
    who = (
        f"{_plural(m.customers, 'customer')} ({_plural(m.to_schedule, 'subscription')} to schedule)"
    )
    if not m.counted:
        return f"{who}: no figures, every preview was refused"
    return (
        f"{who}: {money(m.before, m.currency)} -> {money(m.after, m.currency)} a month "
        f"({signed(m.change, m.currency)})"
    )


@dataclass(frozen=True)
class IncreaseRow:
    """One of the largest increases, as text."""

    customer: str
    subscription: str
    before: str
    after: str
    change: str


def increase_rows(m: MigrationRevenue) -> list[IncreaseRow]:
    """The largest increases (see :meth:`MigrationRevenue.largest_increases`), as money."""
    return [
        IncreaseRow(
            row.customer,
            row.subscription,
            money(row.before or 0, m.currency),
            money(row.after or 0, m.currency),
            signed(row.change or 0, m.currency),
        )
        for row in m.largest_increases()
    ]


def _refused_line(row: SubscriptionRevenue) -> str:
    return f"{row.subscription} ({row.customer}): {row.refused}"


def migration_notes(m: MigrationRevenue) -> list[str]:
    """What a reader must know about the figures: a sample, refused previews (each, up
    to :data:`MAX_REFUSED_LINES`)."""
    notes: list[str] = []
    if m.sampled:
        notes.append(
            f"previewed {len(m.subscriptions):,} of {_plural(m.to_schedule, 'subscription')} "
            "to schedule (the first in batch order): the figures cover a sample"
        )
    refused = m.refused
    if refused:
        notes.append(
            f"{_plural(len(refused), 'preview')} refused, left out of the totals: "
            + "; ".join(_refused_line(row) for row in refused[:MAX_REFUSED_LINES])
            + (
                f"; ... and {len(refused) - MAX_REFUSED_LINES:,} more (see the JSON plan)"
                if len(refused) > MAX_REFUSED_LINES
                else ""
            )
        )
    return notes


def revenue_text_lines(preview: RevenuePreview, indent: str = "  ") -> list[str]:
    """The preview as plain lines: a heading, then per migration its summary, its largest
    increases and its notes."""
    if not preview.migrations:
        return ["Revenue preview: no migration to preview."]
    lines = [f"{HEADING}:"]
    for m in preview.migrations:
        lines.append(f"{indent}{m.address}: {migration_summary(m)}")
        rows = increase_rows(m)
        if rows:
            lines.append(f"{indent * 2}largest increases:")
            lines += [
                f"{indent * 3}{r.customer} {r.subscription}: {r.before} -> {r.after} ({r.change})"
                for r in rows
            ]
        lines += [f"{indent * 2}{note}" for note in migration_notes(m)]
    return lines
