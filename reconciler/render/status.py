"""The ``status`` view of migrations: counts per state and a table of subscriptions, and
with ``--revenue`` each migration's revenue preview."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.kinds import Kind
from reconciler.migrations import counts_phrase
from reconciler.plan import Plan, ResourceChange
from reconciler.render._lines import price_money, printable, when
from reconciler.render.revenue import increase_rows, migration_notes, migration_summary
from reconciler.revenue import MigrationRevenue, RevenuePreview

if TYPE_CHECKING:
    from reconciler.snapshot import Snapshot

__all__ = ["price_amounts", "render_status_json", "render_status_text"]

_COLUMNS = ("subscription", "customer", "state", "switch at", "why")


def _row(row: dict[str, Any]) -> tuple[str, ...]:
    switch = row.get("switch_at")
    return (
        str(row["subscription"]),
        str(row["customer"]),
        str(row["state"]),
        when(switch) if switch is not None else "-",
        str(row.get("blocker") or row.get("note") or ""),
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for cells in [tuple(c.upper() for c in _COLUMNS), *rows]:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        lines.append(("  " + "  ".join([*padded, cells[-1]])).rstrip())
    return lines


def price_amounts(plan: Plan, snapshot: Snapshot | None = None) -> dict[str, str]:
    """What each price charges, as money (``$0.0035 per unit``), by lookup key and by id:
    the account's prices, then the plan's declared ones (what they will be)."""
    found: dict[str, str] = {}
    if snapshot is not None:
        for key, live in [*snapshot.prices.items(), *snapshot.unkeyed.items()]:
            charge = price_money(live.essence)
            if charge is not None:
                found[key] = found[live.stripe_id] = charge
    for change in plan.changes:
        charge = price_money(change.after) if change.kind is Kind.PRICE else None
        if charge is not None:
            found[change.address.removeprefix(f"{change.kind}.")] = charge
    return found


def _revenue_lines(found: MigrationRevenue | None) -> list[str]:
    """A migration's revenue preview under its counts (``status --revenue``)."""
    if found is None:
        return []
    lines = [f"  revenue: {migration_summary(found)}"]
    rows = increase_rows(found)
    if rows:
        lines.append("    largest increases:")
        lines += [
            f"      {r.customer} {r.subscription}: {r.before} -> {r.after} ({r.change})"
            for r in rows
        ]
    return lines + [f"    {note}" for note in migration_notes(found)]


def render_status_text(
    migrations: Sequence[ResourceChange],
    *,
    source: str = "billing.yaml",
    prices: Mapping[str, str] | None = None,
    revenue: RevenuePreview | None = None,
) -> str:
    """Per migration: a heading, what each price charges (from ``prices``, see
    :func:`price_amounts`), its counts, its revenue preview (``revenue``, when
    read), and one line per subscription."""
    if not migrations:
        return printable(f"{source} declares no migrations.\n", keep="\n")
    previews = {m.address: m for m in revenue.migrations} if revenue is not None else {}
    lines: list[str] = []
    for change in migrations:
        details = change.details
        name = change.address.removeprefix("migration.")
        pairs = [(details.get("from_price", "?"), details.get("to_price", "?"))]
        pairs += [(p.get("from_price"), p.get("to_price")) for p in details.get("also") or ()]
        moves = ", ".join(f"{legacy} -> {target}" for legacy, target in pairs)
        lines.append(f"migration {name}: {moves}")
        for legacy, target in pairs:
            charges = [(prices or {}).get(str(ref)) for ref in (legacy, target)]
            if any(charges):
                lines.append(f"  charges: {charges[0] or '?'} -> {charges[1] or '?'}")
        if "counts" not in details:  # not planned: the reason says why
            lines += [f"  {change.reason}", ""]
            continue
        lines.append(f"  {counts_phrase(details['counts'])}")
        lines += _revenue_lines(previews.get(change.address))
        rows = [_row(r) for r in details.get("subscriptions") or []]
        if rows:
            lines += ["", *_table(rows)]
        lines.append("")
    return printable("\n".join(lines), keep="\n")


def render_status_json(
    migrations: Sequence[ResourceChange], *, revenue: RevenuePreview | None = None
) -> str:
    """The same as JSON: counts and subscriptions per migration (no request parameters),
    and the revenue preview (``revenue``, the plan document's part) when read."""
    payload: dict[str, Any] = {
        "migrations": [
            {
                "name": change.address.removeprefix("migration."),
                "from_price": change.details.get("from_price"),
                "to_price": change.details.get("to_price"),
                **({"also": change.details["also"]} if change.details.get("also") else {}),
                "summary": change.reason,
                "counts": change.details.get("counts", {}),
                "subscriptions": [
                    {k: v for k, v in row.items() if k != "params"}
                    for row in change.details.get("subscriptions") or []
                ],
            }
            for change in migrations
        ]
    }
    if revenue is not None:
        payload["revenue"] = revenue.to_json()
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"
