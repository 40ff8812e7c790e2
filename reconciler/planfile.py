"""Saved plans: read a plan file back, and decide whether it may still be applied.

A plan saved by ``plan --out`` is applied later, often by another machine.
It is refused when it was made from another billing.yaml, or when the
account changed since in a way the plan's own writes do not explain. A plan
that was partly applied (a crash, a lost connection) resumes: what it
already did shows as done, and only the rest runs. The revenue preview a
plan file may carry (``plan --revenue``) is never compared.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from reconciler.errors import PlanError, PlanMismatchError, StalePlanError
from reconciler.inputs import InputError, read_json
from reconciler.kinds import Kind
from reconciler.kinds.base import same_target
from reconciler.kinds.registry import spec_for
from reconciler.model import Desired
from reconciler.plan import Action, Plan, ResourceChange, gc_paused
from reconciler.planner import build_plan
from reconciler.snapshot import Snapshot

__all__ = ["MAX_PLAN_BYTES", "first_difference", "load_plan", "plan_schema", "resolve_saved_plan"]

MAX_PLAN_BYTES = 64 * 1024 * 1024
"""About 60,000 subscription migrations (a 20,000-subscription plan is 19 MB)."""


@cache
def plan_schema() -> dict[str, Any]:
    """The published JSON Schema of plan files."""
    text = resources.files("reconciler").joinpath("schemas/plan.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def load_plan(path: Path) -> Plan:
    """Read and check a plan file; every problem is a PlanError naming the file."""
    with gc_paused():  # a plan of 20,000 subscriptions: see gc_paused
        return _checked_plan(path)


def _checked_plan(path: Path) -> Plan:
    try:
        data = read_json(path, limit=MAX_PLAN_BYTES, noun="plan file", label="a plan")
    except InputError as exc:
        raise PlanError(str(exc)) from None
    if isinstance(data, dict) and data.get("format_version") not in (None, "1"):
        raise PlanError(
            f"{path}: plan format_version {str(data.get('format_version'))[:40]!r} is not "
            "supported by this version of stripe-reconcile (expected '1')"
        )
    errors = sorted(
        jsonschema.Draft202012Validator(plan_schema()).iter_errors(data),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        message = first.message if len(first.message) <= 200 else first.message[:200] + "…"
        raise PlanError(f"{path}: not a stripe-reconcile plan: {where[:200]}: {message}")
    try:
        return Plan.from_json(data)
    except ValueError as exc:  # a kind this version does not know
        raise PlanError(f"{path}: not a stripe-reconcile plan: {str(exc)[:200]}") from None


def resolve_saved_plan(saved: Plan, desired: Desired, snapshot: Snapshot) -> Plan:
    """The plan to execute now for a saved plan, or StalePlanError.

    The file is evidence of what was reviewed, never an instruction: the plan
    executed is always derived anew from billing.yaml and the account.

    - Unchanged account: the derived plan must equal the saved one entry for
      entry; any difference (an edited amount, an added archive, a phase
      field) is a PlanMismatchError naming the first differing entry.
    - Changed account: each change still needed must be what is left of one
      the saved plan set out to do (same object as seen, same target, the
      same or fewer fields to write), and every subscription row must be
      the saved row, or its continuation after the schedule's first write.
      Anything else is someone else's change: StalePlanError, with each.

    The file's revenue preview (``plan --revenue``) is left out of every comparison:
    its figures follow usage, which moves on its own, and apply never reads them.
    """
    saved = saved.without_revenue()
    if saved.config_hash != desired.config_hash():
        raise StalePlanError(
            "the plan was made from a different billing.yaml "
            f"({saved.config_hash[:19]}, now {desired.config_hash()[:19]}); plan again"
        )
    try:
        current = build_plan(desired, snapshot)
    except PlanError as exc:
        raise StalePlanError(f"the account changed since the plan was made:\n{exc}") from None
    if current.snapshot_fingerprint == saved.snapshot_fingerprint:
        with gc_paused():
            if saved.dumps() == current.dumps():  # canonical text: types and order included
                return current
            difference = first_difference(saved.as_data(), current.as_data())
        if difference is not None:
            raise PlanMismatchError(
                f"the plan file is not the plan billing.yaml and the account give: {difference}. "
                "Nothing was written; run plan again and review the new plan."
            )
        return current
    return _remainder(saved, current, snapshot)


def first_difference(saved: Any, derived: Any, path: str = "") -> str | None:
    """Where two JSON plans first differ, as ``changes[3] (price.x).after.unit_amount: the
    file says '1', derived '4900'``; None when they are equal."""
    if isinstance(saved, dict) and isinstance(derived, dict):
        for key in sorted(set(saved) | set(derived)):
            if key not in saved or key not in derived:
                where = f"{path}.{key}".lstrip(".")
                side = "the plan file" if key in saved else "the derived plan"
                return f"{where}: only {side} has it"
            found = first_difference(saved[key], derived[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(saved, list) and isinstance(derived, list):
        for index, (left, right) in enumerate(zip(saved, derived, strict=False)):
            label = f"{path}[{index}]"
            if isinstance(left, dict) and isinstance(left.get("address"), str):
                label += f" ({left['address']})"
            elif isinstance(left, dict) and isinstance(left.get("subscription"), str):
                label += f" ({left['subscription']})"
            found = first_difference(left, right, label)
            if found is not None:
                return found
        if len(saved) != len(derived):
            return (
                f"{path.lstrip('.')}: the plan file has {len(saved)} entries, "
                f"the derived plan {len(derived)}"
            )
        return None
    if saved != derived or type(saved) is not type(derived):
        return f"{path.lstrip('.')}: the plan file says {saved!r}, derived {derived!r}"
    return None


def _remainder(saved: Plan, current: Plan, snapshot: Snapshot) -> Plan:
    """What is left of ``saved`` in ``current``, or StalePlanError listing what is not."""
    problems: list[str] = []
    saved_at = {c.address: c for c in saved.changes}
    kept: list[ResourceChange] = []
    for change in current.changes:
        if change.kind is Kind.MIGRATION:
            kept.append(_migration_remainder(saved_at.get(change.address), change, problems))
        elif change.action is Action.NOOP or _owed_by(saved, change):
            kept.append(change)
        else:
            problems.append(
                f"  {change.address}: now needs {change.action.value} ({change.reason})"
            )
    current_at = {c.address: c for c in current.changes}
    for planned in saved.actionable:
        spec = spec_for(planned.kind)
        if planned.address in current_at or spec is None:
            continue
        if not spec.finished(planned, snapshot):
            problems.append(
                f"  {planned.address}: the plan file says {planned.action.value}, which "
                "billing.yaml and the account do not give"
            )
    if problems:
        detail = "the account changed since the plan was made, outside this plan:\n" + "\n".join(
            problems
        )
        raise StalePlanError(
            detail + "\nNothing was written. Run plan again and review the new plan.",
            detail=detail,
        )
    return dataclasses.replace(current, changes=tuple(kept))


_DONE_STATES = frozenset({"scheduled", "done"})


def _migration_remainder(
    planned: ResourceChange | None, change: ResourceChange, problems: list[str]
) -> ResourceChange:
    """The subscription rows still owed; a row someone else changed is a problem."""
    rows: list[Mapping[str, Any]] = list(change.details.get("subscriptions") or [])
    saved_rows: dict[str, Mapping[str, Any]] = {
        r["subscription"]: r
        for r in ((planned.details if planned else {}).get("subscriptions") or [])
    }
    ends = ("from_price", "to_price", "also")
    if planned is not None and any(planned.details.get(k) != change.details.get(k) for k in ends):
        problems.append(f"  {change.address}: its prices changed since the plan")
        return change
    kept: list[Mapping[str, Any]] = []
    for row in rows:
        sub = row["subscription"]
        before = saved_rows.get(sub)
        if row["action"] is None or (before is not None and _row_owed(before, row)):
            kept.append(row)
        elif before is not None and before["state"] == "waiting" and _same_read(before, row):
            kept.append({k: v for k, v in row.items() if k != "params"} | _WAITING)
        else:
            was = f"{before['state']}" if before is not None else "not in the plan"
            problems.append(
                f"  {change.address}/{sub}: now needs {row['action']} ({row['state']}); "
                f"the plan said {was}"
            )
    now = {r["subscription"]: r for r in rows}
    for sub, before in saved_rows.items():
        if before.get("action") is None:
            continue
        after = now.get(sub)
        finished = (
            after is not None
            and after["action"] is None
            and (after["state"] in _DONE_STATES or after["state"] == before["state"])
        )
        if after is None or (after["action"] is None and not finished):
            state = "gone" if after is None else after["state"]
            problems.append(
                f"  {change.address}/{sub}: the plan would {before['action']}, but it is now "
                f"{state}" + (f" ({after['blocker']})" if after and after.get("blocker") else "")
            )
    actionable = any(r["action"] is not None for r in kept)
    return dataclasses.replace(
        change,
        action=Action.MIGRATE if actionable else Action.NOOP,
        details={**change.details, "subscriptions": kept},
    )


_WAITING = {"state": "waiting", "action": None}


def _same_read(before: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    return bool(before.get("evidence")) and before.get("evidence") == row.get("evidence")


def _row_owed(before: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """A row left to do: unchanged since the plan, or a schedule whose creation landed
    and whose phases are still to be written, exactly as planned."""
    same_request = before.get("params") == row.get("params")
    if before["action"] == row["action"] and _same_read(before, row) and same_request:
        return True
    return (
        before["action"] == "create_schedule"
        and row["state"] == "unfinished"
        and row["action"] == "update_schedule"
        and same_request
    )


def _owed_by(saved: Plan, change: ResourceChange) -> bool:
    """Whether ``change`` is what is left of something ``saved`` set out to do.

    Left over means: the same object as the plan saw it, the same target, and
    each differing field one the saved plan changes, from the same value to
    the same value (fields already written drop out). A planned create whose
    object now exists is owed only when stripe-reconcile's marker is on it and
    only the create's later step (a product's default price) is left: an
    object someone else created under the declared identity is not ours to
    take over. Also owed: the tail of a replace (archiving the old price,
    pointing its product at the new one, creating an alert whose old one this
    plan archived).
    """
    planned = next((c for c in saved.actionable if c.address == change.address), None)
    if planned is not None and planned.kind != change.kind:
        planned = None
    if planned is not None and same_target(planned, change):
        fewer = all(f in planned.changes for f in change.changes)
        same_object = planned.stripe_id == change.stripe_id
        if same_object and fewer and planned.action is change.action:
            return True
        if same_object and fewer and planned.action is Action.REACTIVATE:
            return change.action is Action.UPDATE  # reactivated; the rename is left
    spec = spec_for(change.kind)
    return spec is not None and spec.owed(planned, change, saved)
