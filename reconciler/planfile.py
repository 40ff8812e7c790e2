"""Saved plans: read a plan file back, and decide whether it may still be applied.

A plan saved by ``plan --out`` is applied later, often by another machine.
It is refused when it was made from another billing.yaml, or when the
account changed since in a way the plan's own writes do not explain. A plan
that was partly applied (a crash, a lost connection) resumes: what it
already did shows as done, and only the rest runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from reconciler.errors import PlanError, StalePlanError
from reconciler.model import MANAGED_BY_KEY, Desired
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.snapshot import Snapshot

__all__ = ["load_plan", "plan_schema", "resolve_saved_plan"]


@cache
def plan_schema() -> dict[str, Any]:
    """The published JSON Schema of plan files."""
    text = resources.files("reconciler").joinpath("schemas/plan.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def load_plan(path: Path) -> Plan:
    """Read and check a plan file; every problem is a PlanError naming the file."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read plan file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if isinstance(data, dict) and data.get("format_version") not in (None, "1"):
        raise PlanError(
            f"{path}: plan format_version {data.get('format_version')!r} is not supported "
            "by this version of stripe-reconcile (expected '1')"
        )
    errors = sorted(
        jsonschema.Draft202012Validator(plan_schema()).iter_errors(data),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise PlanError(f"{path}: not a stripe-reconcile plan: {where}: {first.message}")
    return Plan.from_json(data)


def resolve_saved_plan(saved: Plan, desired: Desired, snapshot: Snapshot) -> Plan:
    """The plan to execute now for a saved plan, or StalePlanError.

    Unchanged account: the saved plan itself (its idempotency keys replay any
    write that landed without an answer). Changed account: a fresh plan,
    accepted only if each of its changes is one the saved plan still owes,
    with the same before and after, or the tail of a replace the saved plan
    started (archiving the old price, pointing the product at the new one).
    """
    if saved.config_hash != desired.config_hash():
        raise StalePlanError(
            "the plan was made from a different billing.yaml "
            f"({saved.config_hash[:19]}, now {desired.config_hash()[:19]}); plan again"
        )
    if snapshot.fingerprint() == saved.snapshot_fingerprint:
        return saved
    try:
        current = build_plan(desired, snapshot)
    except PlanError as exc:
        raise StalePlanError(f"the account changed since the plan was made:\n{exc}") from None
    unexplained = [
        f"  {change.address}: now needs {change.action.value} ({change.reason})"
        for change in current.actionable
        if not _owed_by(saved, change)
    ]
    if unexplained:
        raise StalePlanError(
            "the account changed since the plan was made, outside this plan:\n"
            + "\n".join(unexplained)
            + "\nRun plan again and review the new plan."
        )
    return current


def _unmarked(after: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An after-state without the marker only created objects carry, for comparison."""
    if after is None or not isinstance(after.get("metadata"), Mapping):
        return after
    metadata = {k: v for k, v in after["metadata"].items() if k != MANAGED_BY_KEY}
    return {**after, "metadata": metadata}


def _owed_by(saved: Plan, change: ResourceChange) -> bool:
    """Whether ``change`` is what is left of something ``saved`` set out to do.

    Left over means: the same action on the same address with the same
    target, and each differing field one the saved plan changes, from the
    same value to the same value (fields already written drop out). A field
    someone else changed in between shows a different "before" and is not
    owed. A planned create whose object exists but still needs an update
    to its planned state is owed too (its later steps did not run). Also
    owed: the tail of a replace (archiving the old price, or pointing its
    product at the new one).
    """
    planned = next((c for c in saved.actionable if c.address == change.address), None)
    if planned is not None and _unmarked(planned.after) == _unmarked(change.after):
        if planned.action is change.action and all(f in planned.changes for f in change.changes):
            return True
        if planned.action is Action.CREATE and change.action is Action.UPDATE:
            return True  # created, but the create's later steps (a default price) did not run
    replaced = [c for c in saved.actionable if c.action is Action.REPLACE]
    if change.kind == "price" and change.action is Action.ARCHIVE:
        return any(c.stripe_id == change.stripe_id for c in replaced)
    if change.kind == "product" and change.action is Action.UPDATE:
        product = change.address.removeprefix("product.")
        moves_default = {c.details.get("default_of") for c in replaced}
        return product in moves_default and all(c.field == "default_price" for c in change.changes)
    return False
