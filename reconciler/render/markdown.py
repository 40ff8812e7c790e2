"""The pull-request render of a plan: a GitHub-flavoured markdown comment.

``render_markdown`` opens with a hidden marker (:data:`MARKER`) so a CI job
can find and update one sticky comment, calls out irreversible steps first,
then shows counts, a table of changes and each change's fields as a diff, and
the revenue preview when the plan carries one.
Pure and deterministic.
"""

from __future__ import annotations

import html
import re

from reconciler.plan import Action, Plan, ResourceChange
from reconciler.render._lines import (
    changed_fields,
    created_fields,
    destroys,
    held_migrations,
    note,
    phrase,
    printable,
    subscription_lines,
    unplanned_migrations,
)
from reconciler.render.revenue import (
    EXPLAINED,
    increase_rows,
    migration_notes,
    migration_summary,
    money,
    preview_of,
    signed,
)
from reconciler.revenue import RevenuePreview

__all__ = ["MARKER", "render_markdown"]

MARKER = "<!-- stripe-reconcile-plan -->"
"""The first line of every plan comment, for finding the comment to update."""

_HEADING = "### stripe-reconcile plan"
_NO_CHANGES = "**No changes.** The account matches {source}."
_NOTHING_NOW = "**No changes to make now.** Some subscriptions are held back (below)."
_HELD = "**Held back** (`stripe-reconcile status` says why for each):"


def _cell(text: str) -> str:
    """Text safe in a table cell: one line; ``|``, backticks and HTML escaped."""
    flat = html.escape(" ".join(text.split()), quote=False)
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def _code(text: str) -> str:
    """A code span that holds any text on one line, backticks included."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _code_cell(text: str) -> str:
    """A code span for a table cell: GFM splits cells on ``|`` even inside code."""
    return _code(" ".join(text.split())).replace("|", "\\|")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _destructive(change: ResourceChange) -> str:
    """`` — **destructive:** deletes the coupon ...`` for a change that deletes, else empty."""
    deleted = destroys(change)
    return f" — **destructive:** {_cell(deleted)}" if deleted else ""


def _irreversible(plan: Plan) -> list[str]:
    steps = [c for c in plan.actionable if c.irreversible]
    if not steps:
        return []
    lines = [
        "> [!WARNING]",
        f"> **{_plural(len(steps), 'irreversible step')}:** review before applying.",
        ">",
    ]
    lines += [f"> - {_code(c.address)}: {c.action.value}{_destructive(c)}" for c in steps]
    return [*lines, ""]


def _counts(plan: Plan) -> list[str]:
    counts = plan.counts()
    rows = [_row(f"{_code_cell(a.symbol)} {a.value}", str(counts[a])) for a in Action if counts[a]]
    return [
        f"**Plan: {plan.summary()}.**",
        "",
        "| Action | Count |",
        "| --- | ---: |",
        *rows,
        "",
    ]


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(plan: Plan) -> list[str]:
    rows = [
        _row(
            _code_cell(c.action.symbol),
            _code_cell(c.address),
            c.action.value,
            _cell("; ".join(c.reason.splitlines())),
        )
        for c in plan.actionable
    ]
    return ["| | Address | Action | Reason |", "| --- | --- | --- | --- |", *rows, ""]


def _diff_lines(change: ResourceChange) -> list[str]:
    deleted = destroys(change)
    destructive = [f"! destructive: {deleted}"] if deleted else []
    match change.action:
        case Action.CREATE:
            lines = [
                f"+ {f.path} = {f.value}" + (f" ({f.money})" if f.money else "")
                for f in created_fields(change.after)
            ]
        case (
            Action.UPDATE
            | Action.REPLACE
            | Action.ARCHIVE
            | Action.DEACTIVATE
            | Action.DELETE
            | Action.REACTIVATE
            | Action.MIGRATE
            | Action.NOOP
        ):
            lines = []
            for diff in changed_fields(change):
                forced = "  # forces replacement" if diff.forces_replacement else ""
                old = f" ({diff.before_money or 'none'})" if diff.money else ""
                new = f" ({diff.after_money or 'none'})" if diff.money else ""
                lines += [
                    f"- {diff.path}: {diff.before}{old}",
                    f"+ {diff.path}: {diff.after}{new}{forced}",
                ]
    details = note(change.details)
    if details is not None:
        lines.append(f"# note: {details}")
    lines += [f"> {row}" for row in subscription_lines(change.details, None)]
    return destructive + lines


def _fenced(lines: list[str]) -> list[str]:
    body = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return [f"{fence}diff", *lines, fence]


def _details(change: ResourceChange) -> list[str]:
    summary = f"<code>{html.escape(change.address)}</code> {phrase(change.action)}"
    diff = _diff_lines(change)
    body = [*_fenced(diff), ""] if diff else ["No field changes.", ""]
    return [f"<details><summary>{summary}</summary>", "", *body, "</details>", ""]


def _unmanaged(plan: Plan, source: str) -> list[str]:
    if not plan.unmanaged:
        return []
    managed_by = html.escape(source)
    title = f"{_plural(len(plan.unmanaged), 'object')} not managed by {managed_by} (left alone)"
    items = [f"- {_code(address)}" for address in plan.unmanaged]
    return [f"<details><summary>{title}</summary>", "", *items, "", "</details>", ""]


def _dollars(text: str) -> str:
    """Cell text whose ``$`` signs stay money: GitHub reads text between two of them as
    math (``$40.00 | +$8.00``), so each is escaped."""
    return _cell(text).replace("$", "\\$")


def _revenue(preview: RevenuePreview) -> list[str]:
    """The revenue preview: a table of migrations, each one's largest increases, notes."""
    lines = ["#### Revenue preview", ""]
    if not preview.migrations:
        return [*lines, "No migration to preview.", ""]
    lines += [
        f"Monthly recurring revenue of each subscription's next invoice, as is and on the new "
        f"price. {EXPLAINED}",
        "",
        "| Migration | Customers | Subscriptions | Before | After | Change |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes: list[str] = []
    for m in preview.migrations:
        address = _code_cell(m.address)
        if m.counted:
            amounts = (money(m.before, m.currency), money(m.after, m.currency))
            figures = [_dollars(text) for text in (*amounts, signed(m.change, m.currency))]
        else:
            figures = ["-", "-", "-"]
            notes.append(f"- {_code(m.address)}: {_dollars(migration_summary(m))}")
        lines.append(_row(address, f"{m.customers:,}", f"{m.to_schedule:,}", *figures))
        notes += [f"- {_code(m.address)}: {_dollars(note)}" for note in migration_notes(m)]
    lines.append("")
    for m in preview.migrations:
        rows = increase_rows(m)
        if not rows:
            continue
        lines += [
            f"Largest increases, {_code(m.address)}:",
            "",
            "| Customer | Subscription | Before | After | Change |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        lines += [
            _row(
                _code_cell(r.customer),
                _code_cell(r.subscription),
                *(_dollars(text) for text in (r.before, r.after, r.change)),
            )
            for r in rows
        ]
        lines.append("")
    return [*lines, *notes, *([""] if notes else [])]


def render_markdown(plan: Plan, *, source: str = "billing.yaml") -> str:
    """The plan as a markdown PR comment, starting with :data:`MARKER`; ``source`` names the
    billing file the plan was made from."""
    lines = [MARKER, _HEADING, ""]
    held = held_migrations(plan)
    if plan.has_changes:
        lines += _irreversible(plan)
        lines += _counts(plan)
        lines += _table(plan)
        for change in plan.actionable:
            lines += _details(change)
    elif held:
        lines += [_NOTHING_NOW, ""]
    else:
        lines += [_NO_CHANGES.format(source=source), ""]
    lines += [f"> **Warning:** `{problem}`" for problem in unplanned_migrations(plan)]
    lines += [""] if unplanned_migrations(plan) else []
    if held:
        lines += [_HELD, "", *(f"- `{entry}`" for entry in held), ""]
    revenue = preview_of(plan.revenue)
    lines += _revenue(revenue) if revenue is not None else []
    lines += _unmanaged(plan, source)
    config, snapshot = _code(plan.config_hash), _code(plan.snapshot_fingerprint)
    lines.append(f"<sub>config {config} · snapshot {snapshot}</sub>")
    return printable("\n".join(lines), keep="\n") + "\n"
