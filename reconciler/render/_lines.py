"""What every render of a plan shares: phrases, value text and field lines.

The text and markdown renders differ only in layout and decoration; the
words they show for one change come from here, so the terminal, the PR
comment and any later render agree on what a change looks like. Pure.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.kinds import Kind
from reconciler.kinds.registry import spec_for
from reconciler.money import money_beside_minor
from reconciler.plan import Action, ActionReason, Plan, ResourceChange

__all__ = [
    "MAX_SUBSCRIPTION_LINES",
    "FieldDiff",
    "FieldValue",
    "changed_fields",
    "created_fields",
    "destroys",
    "forces_replacement",
    "format_value",
    "note",
    "phrase",
    "price_money",
    "printable",
    "subscription_lines",
    "unplanned_migrations",
]


@dataclass(frozen=True)
class FieldValue:
    """One field of an object to be created: a dotted path and its value's text."""

    path: str
    value: str
    money: str | None = None
    """The value as money (``$0.0035``) when it is an amount in a known currency."""


@dataclass(frozen=True)
class FieldDiff:
    """One differing field: a dotted path, both values' text, and whether it forces replacement."""

    path: str
    before: str
    after: str
    forces_replacement: bool
    before_money: str | None = None
    after_money: str | None = None
    """Each side as money (``$99.00``) when the field is an amount in a known currency."""

    @property
    def money(self) -> str | None:
        """``$99.00 -> $49.00`` for an amount, None for any other field."""
        if self.before_money is None and self.after_money is None:
            return None
        return f"{self.before_money or 'none'} -> {self.after_money or 'none'}"


def phrase(action: Action) -> str:
    """What happens to the object, as a verb phrase after its address."""
    match action:
        case Action.CREATE:
            return "will be created"
        case Action.UPDATE:
            return "will be updated in place"
        case Action.REPLACE:
            return "will be replaced"
        case Action.ARCHIVE:
            return "will be archived"
        case Action.DEACTIVATE:
            return "will be deactivated"
        case Action.DELETE:
            return "will be deleted"
        case Action.REACTIVATE:
            return "will be reactivated"
        case Action.MIGRATE:
            return "will be migrated"
        case Action.NOOP:
            return "is unchanged"


def printable(text: str, *, keep: str = "") -> str:
    """Control characters (ESC, CR, C1 ...) as visible escapes, so names from the account
    cannot move the cursor or colour a terminal; characters in ``keep`` pass through."""
    return "".join(
        ch
        if ch in keep or unicodedata.category(ch) != "Cc"
        else (f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}")
        for ch in text
    )


def format_value(value: Any) -> str:
    """JSON-like text of a value: strings quoted, None as ``null``, keys sorted."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


_AMOUNT_FIELDS = frozenset(
    {"unit_amount", "flat_amount", "unit_amount_decimal", "flat_amount_decimal"}
)
"""Fields that hold an amount in the currency's minor units (Stripe's own unit)."""


def _money(value: Any, currency: str | None) -> str | None:
    """``$0.0035`` for an amount in minor units, None for anything else."""
    return money_beside_minor(value, currency) if isinstance(currency, str) else None


def _amount_text(value: Any, currency: str | None) -> str:
    """``0.35 ($0.0035)``: Stripe's minor units, then the money they are."""
    money = _money(value, currency)
    return f"{value} ({money})" if money else str(value)


def _tier_text(tier: Mapping[str, Any], currency: str | None = None) -> str:
    """A tier as people read it: ``up to 10000: unit 0.5 ($0.005), flat 100 ($1.00)``."""
    up_to = tier.get("up_to")
    parts = []
    if tier.get("unit_amount") is not None:
        parts.append(f"unit {_amount_text(tier['unit_amount'], currency)}")
    if tier.get("flat_amount") is not None:
        parts.append(f"flat {_amount_text(tier['flat_amount'], currency)}")
    bound = "up to inf" if up_to is None else f"up to {up_to}"
    return f"{bound}: {', '.join(parts) or 'free'}"


def _is_tier_list(path: str, value: Any) -> bool:
    return (
        path.rsplit(".", maxsplit=1)[-1] == "tiers"
        and isinstance(value, list | tuple)
        and all(isinstance(t, Mapping) for t in value)
    )


_BOUNDS = frozenset({"minimum", "maximum", "preset"})
"""Pay-what-you-want bounds (under ``custom_unit_amount``): amounts too."""
_OPTION_PATH = re.compile(r"(?:^|\.)currency_options\.([a-z]{3})(?=$|[.\[])")


def _is_amount(path: str) -> bool:
    parts = path.split(".")
    return parts[-1] in _AMOUNT_FIELDS or (
        parts[-1] in _BOUNDS and len(parts) > 1 and parts[-2] == "custom_unit_amount"
    )


def _path_currency(path: str, currency: str | None) -> str | None:
    """The currency of the amounts at ``path``: a currency option's own
    (``currency_options.eur...``), else the object's."""
    found = _OPTION_PATH.search(path)
    return found.group(1) if found else currency


def _leaves(path: str, value: Any, currency: str | None = None) -> dict[str, str | None]:
    """Flatten a value to ``{dotted.path: text}``; None stays None so callers can omit it.
    With a ``currency``, tiers show their amounts as money too."""
    currency = _path_currency(path, currency)
    if isinstance(value, Mapping) and value:
        out: dict[str, str | None] = {}
        for key in sorted(value, key=str):
            out.update(_leaves(f"{path}.{key}", value[key], currency))
        return out
    if _is_tier_list(path, value) and value:
        return {f"{path}[{i}]": _tier_text(tier, currency) for i, tier in enumerate(value)}
    return {path: None if value is None else format_value(value)}


def _raw_leaves(path: str, value: Any) -> dict[str, Any]:
    """The raw values beside :func:`_leaves`' text, for the amounts among them."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(_raw_leaves(f"{path}.{key}", value[key]))
        return out
    return {path: value}


def _currency(state: Mapping[str, Any] | None) -> str | None:
    found = state.get("currency") if state is not None else None
    return found if isinstance(found, str) else None


def created_fields(after: Mapping[str, Any] | None) -> tuple[FieldValue, ...]:
    """Every field of a new object, flattened and sorted; absent (None) fields are left out.
    Amounts carry their money (``unit_amount = "0.35"``, money ``$0.0035``)."""
    if after is None:
        return ()
    currency = _currency(after)
    found: list[FieldValue] = []
    for name in sorted(after, key=str):
        raw = _raw_leaves(str(name), after[name])
        found += [
            FieldValue(
                path,
                text,
                _money(raw.get(path), _path_currency(path, currency)) if _is_amount(path) else None,
            )
            for path, text in _leaves(str(name), after[name], currency).items()
            if text is not None
        ]
    return tuple(found)


def forces_replacement(kind: Kind | str, field: str) -> bool:
    """Whether a change to ``field`` of a ``kind`` object can only be made by replacing it."""
    spec = spec_for(kind)
    return spec is not None and spec.forces_replacement(re.split(r"[.\[]", field, maxsplit=1)[0])


def _forces_replacement_in(change: ResourceChange, field: str) -> bool:
    """Whether, in this change, the change of ``field`` is one only a replacement makes."""
    spec = spec_for(change.kind)
    return spec is not None and spec.forces_replacement_of(change, field)


def _shows_money(kind: Kind | str) -> bool:
    """Whether the kind's essence holds amounts in its currency."""
    spec = spec_for(kind)
    return spec is not None and spec.amounts


def changed_fields(change: ResourceChange) -> tuple[FieldDiff, ...]:
    """Each field change, nested values narrowed to the leaves that differ; amounts carry
    their money on each side, in that side's currency."""
    found: list[FieldDiff] = []
    old_currency, new_currency = _currency(change.before), _currency(change.after)
    old_currency = old_currency or new_currency
    new_currency = new_currency or old_currency
    money = _shows_money(change.kind)
    for field_change in change.changes:
        forced = change.why is ActionReason.CANNOT_UPDATE and _forces_replacement_in(
            change, field_change.field
        )
        before = _leaves(field_change.field, field_change.before, old_currency)
        after = _leaves(field_change.field, field_change.after, new_currency)
        raw_before = _raw_leaves(field_change.field, field_change.before)
        raw_after = _raw_leaves(field_change.field, field_change.after)
        diffs = [
            FieldDiff(
                path,
                before.get(path) or "null",
                after.get(path) or "null",
                forced,
                *(
                    (
                        _money(raw_before.get(path), _path_currency(path, old_currency)),
                        _money(raw_after.get(path), _path_currency(path, new_currency)),
                    )
                    if money and _is_amount(path)
                    else (None, None)
                ),
            )
            for path in dict.fromkeys([*before, *after])
            if before.get(path) != after.get(path)
        ]
        if not diffs:
            # Equal once flattened (e.g. [] against null): still show the recorded change.
            diffs = [
                FieldDiff(
                    field_change.field,
                    format_value(field_change.before),
                    format_value(field_change.after),
                    forced,
                )
            ]
        found += diffs
    return tuple(found)


def price_money(essence: Mapping[str, Any] | None) -> str | None:
    """What a price charges, as money: ``$0.0035 per unit``, ``$49.00 per 1000 units``,
    ``graduated tiers: $0.005 up to 10000, then $0.0035``; None when unknown."""
    if essence is None:
        return None
    currency = _currency(essence)
    if currency is None:
        return None
    tiers = essence.get("tiers")
    if isinstance(tiers, list) and tiers:
        parts = []
        for tier in tiers:
            if not isinstance(tier, Mapping):
                return None
            unit = _money(tier.get("unit_amount"), currency)
            flat = _money(tier.get("flat_amount"), currency)
            charged = [*([f"{unit} per unit"] if unit else []), *([f"{flat} flat"] if flat else [])]
            bound = "above" if tier.get("up_to") is None else f"up to {tier['up_to']}"
            parts.append(f"{' + '.join(charged) or 'free'} {bound}")
        return f"{essence.get('tiers_mode') or 'tiered'} tiers: " + ", ".join(parts)
    unit = _money(essence.get("unit_amount"), currency)
    if unit is None:
        return None
    transform = essence.get("transform_quantity")
    divide_by = transform.get("divide_by") if isinstance(transform, Mapping) else None
    return f"{unit} per {divide_by} units" if divide_by else f"{unit} per unit"


def destroys(change: ResourceChange) -> str | None:
    """What the change deletes for good in Stripe (its kind says), None for nothing: the
    renders show it as destructive."""
    spec = spec_for(change.kind)
    return spec.deletes(change) if spec is not None else None


def note(details: Mapping[str, Any]) -> str | None:
    """The change's details as one line (``default_of = "video_api", ...``), None when empty.

    A migration's per-subscription detail is left to :func:`subscription_lines`.
    """
    shown = {k: v for k, v in details.items() if k not in _MIGRATION_DETAIL}
    if not shown:
        return None
    return ", ".join(f"{key} = {format_value(shown[key])}" for key in sorted(shown, key=str))


_MIGRATION_DETAIL = frozenset({"subscriptions", "counts"})
_ACTION_WORDS = {
    "create_schedule": "schedule (from the subscription, then phases)",
    "update_schedule": "rewrite its schedule",
    "release_schedule": "release our schedule",
    "restore_schedule": "restore its schedule",
}
MAX_SUBSCRIPTION_LINES = 20


def when(value: Any) -> str:
    """An epoch time as ``2026-01-01 00:00 UTC``; anything else as text."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def subscription_lines(details: Mapping[str, Any], limit: int | None) -> list[str]:
    """One line per subscription that has something to do or is blocked, at most ``limit``."""
    rows = [
        row
        for row in details.get("subscriptions") or []
        if row.get("action") or row.get("state") == "blocked"
    ]
    lines = []
    for row in rows[:limit]:
        action = row.get("action") or ""
        what = _ACTION_WORDS.get(action, row.get("state", ""))
        if action == "update_schedule" and row.get("state") == "pending":
            what = "take over its existing schedule"
        line = f"{row['subscription']} ({row['customer']}): {what}"
        if row.get("switch_at") is not None and row.get("action"):
            line += f", switch at {when(row['switch_at'])}"
        if row.get("blocker"):
            line += f": {row['blocker']}"
        if row.get("note"):
            line += f"; {row['note']}"
        lines.append(line)
    if limit is not None and len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more (see the JSON plan)")
    return lines


_HELD_STATES = ("blocked", "deferred", "waiting")
"""Subscription states that wait on something: a plan with nothing to write says so."""


def held_migrations(plan: Plan) -> list[str]:
    """``migration.x: 3 blocked, 20 scheduled`` for each migration with nothing to write
    whose subscriptions are held back (blocked, deferred or waiting): a plan with no
    changes must not read as if every subscription had moved or would."""
    return [
        f"{c.address}: {c.reason}"
        for c in plan.changes
        if c.kind is Kind.MIGRATION
        and c.action is Action.NOOP
        and any((c.details.get("counts") or {}).get(state) for state in _HELD_STATES)
    ]


def unplanned_migrations(plan: Plan) -> list[str]:
    """``migration.x: <why>`` for each declared migration that could not be planned
    (its legacy price is not in the account): a plan with no changes must not hide it."""
    return [
        f"{c.address}: {c.reason}"
        for c in plan.changes
        if c.kind is Kind.MIGRATION
        and c.action is Action.NOOP
        and "counts" not in c.details
        and c.why is not ActionReason.NOT_READ
    ]
