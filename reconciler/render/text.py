"""The terminal render of a plan: Terraform-like symbols, one block per change.

``render_text`` turns a :class:`~reconciler.plan.Plan` into the text ``plan``
prints. Colour is the caller's choice (see :func:`reconciler.render.should_color`);
without it the output is plain text with no escape codes. Pure and
deterministic: the same plan gives byte-identical text.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from reconciler.plan import Action, Plan, ResourceChange
from reconciler.render._lines import (
    MAX_SUBSCRIPTION_LINES,
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
from reconciler.render.revenue import preview_of, revenue_text_lines

__all__ = ["WIDTH", "render_text"]

WIDTH = 100
"""The console width the render is laid out for (lines are never wrapped)."""

_HEADER = "stripe-reconcile will make these changes to the account:"
_NO_CHANGES = "No changes. The account matches {source}."
_HELD = "Held back (stripe-reconcile status says why for each):"
_NOTHING_NOW = "No changes to make now: the subscriptions held back above wait on their reasons."
_UNMANAGED = "Not managed by {source} (left alone):"
_INDENT = "      "


def _style(action: Action) -> str:
    match action:
        case Action.CREATE:
            return "green"
        case Action.UPDATE | Action.REACTIVATE:
            return "yellow"
        case Action.REPLACE:
            return "magenta"
        case Action.ARCHIVE | Action.DEACTIVATE | Action.DELETE:
            return "red"
        case Action.MIGRATE:
            return "cyan"
        case Action.NOOP:
            return "dim"


def _line(*parts: str | tuple[str, str], style: str = "") -> Text:
    """One output line from plain or ``(text, style)`` parts, control characters escaped."""
    line = Text(style=style)
    for part in parts:
        text, part_style = (part, "") if isinstance(part, str) else part
        line.append(printable(text), style=part_style)
    return line


def _field_lines(change: ResourceChange) -> list[Text]:
    """``+ path = value`` for a new object, ``~ path: before -> after`` otherwise."""
    if change.action is Action.CREATE:
        created = created_fields(change.after)
        width = max((len(f.path) for f in created), default=0)
        return [
            _line(
                _INDENT,
                ("+", "green"),
                f" {f.path.ljust(width)} = {f.value}",
                *([(f" ({f.money})", "bold")] if f.money else []),
            )
            for f in created
        ]
    lines: list[Text] = []
    for diff in changed_fields(change):
        line = _line(
            _INDENT,
            ("~", "yellow"),
            f" {diff.path}: ",
            (diff.before, "red"),
            " -> ",
            (diff.after, "green"),
            *([(f" ({diff.money})", "bold")] if diff.money else []),
        )
        if diff.forces_replacement:
            line.append("  # forces replacement", style="bold red")
        lines.append(line)
    return lines


def _block(change: ResourceChange) -> list[Text]:
    style = _style(change.action)
    head = _line(
        "  ",
        (change.action.symbol, f"bold {style}"),
        " ",
        (change.address, "bold"),
        f" {phrase(change.action)}",
    )
    lines = [head]
    lines += [  # a reason's later lines are hints to act on (a likely rename): not dimmed
        _line(f"{_INDENT}# {reason}", style="dim" if n == 0 else "yellow")
        for n, reason in enumerate(change.reason.splitlines())
    ]
    deleted = destroys(change)
    if deleted is not None:
        lines.append(_line(f"{_INDENT}! destructive: {deleted}", style="bold red"))
    lines += _field_lines(change)
    details = note(change.details)
    if details is not None:
        lines.append(_line(f"{_INDENT}note: {details}", style="cyan"))
    lines += [
        _line(f"{_INDENT}> {row}", style="cyan")
        for row in subscription_lines(change.details, MAX_SUBSCRIPTION_LINES)
    ]
    return lines


def _consequence(change: ResourceChange) -> str:
    """``replace``, or ``replace (destructive: deletes the coupon, ...)``."""
    deleted = destroys(change)
    return change.action.value + (f" (destructive: {deleted})" if deleted else "")


def _irreversible(plan: Plan) -> list[Text]:
    """The warning the markdown render opens with: steps that cannot be undone."""
    steps = [c for c in plan.actionable if c.irreversible]
    if not steps:
        return []
    count = f"{len(steps)} irreversible step{'' if len(steps) == 1 else 's'}"
    lines = [_line((f"Warning: {count}", "bold yellow"), ": review before applying.")]
    lines += [_line(f"  - {c.address}: {_consequence(c)}", style="yellow") for c in steps]
    return [*lines, Text()]


def _lines(plan: Plan, source: str) -> list[Text]:
    lines: list[Text] = []
    if plan.has_changes:
        lines += [Text(_HEADER, style="bold"), Text()]
        for change in plan.actionable:
            lines += [*_block(change), Text()]
    if plan.unmanaged:
        lines.append(_line(_UNMANAGED.format(source=source), style="dim"))
        lines += [_line(f"  {address}", style="dim") for address in plan.unmanaged]
        lines.append(Text())
    for problem in unplanned_migrations(plan):
        lines += [_line((f"Warning: {problem}", "bold yellow")), Text()]
    held = held_migrations(plan)
    if held:
        lines.append(_line(_HELD, style="bold yellow"))
        lines += [_line(f"  {entry}", style="yellow") for entry in held]
        lines.append(Text())
    revenue = preview_of(plan.revenue)
    if revenue is not None:
        heading, *rest = revenue_text_lines(revenue)
        lines += [_line(heading, style="bold"), *(_line(row) for row in rest), Text()]
    if plan.has_changes:
        lines += _irreversible(plan)
        lines.append(Text(f"Plan: {plan.summary()}.", style="bold"))
    elif held:
        lines.append(_line(_NOTHING_NOW, style="bold"))
    else:
        lines.append(_line(_NO_CHANGES.format(source=source), style="bold green"))
    return lines


def render_text(plan: Plan, *, color: bool, source: str = "billing.yaml") -> str:
    """The plan as terminal text; ANSI colour only when ``color`` is true; ``source`` names
    the billing file the plan was made from."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=WIDTH,
        soft_wrap=True,
        highlight=False,
        markup=False,
        emoji=False,
        legacy_windows=False,
    )
    for line in _lines(plan, source):
        console.print(line)
    return buffer.getvalue()
