"""Pure step building: a plan in, every write apply makes out, in order.

Each change becomes the steps its kind's spec builds (``reconciler.kinds``);
a migration's, one group per subscription, are built here. Writes that follow
from several changes at once (a product pointed at its default price once the
price exists) come from the specs' ``plan_steps``. Steps run in phases, so
nothing is left pointing at an archived object:

1. products (create, update), meters (create, update, reactivate, replace),
   entitlement features (create, update),
2. prices (create, update, replace: the new price takes the lookup key),
3. default prices (products point at their declared default), portal
   configurations (created or updated naming prices by id; one offering a
   replaced price is pointed at its replacement), features attached to products,
4. alerts (create, reactivate, replace),
5. subscription migrations (one group per subscription, so no two workers
   ever write one subscription or its schedule),
6. products losing a default price that is being archived let go of it, and
   features no longer declared are detached from products,
7. retirements last: archive prices (and replaced ones), archive products and
   features, deactivate meters and alerts, retire portal configurations.

No I/O: ``apply.py`` runs the steps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.errors import ReconcileError
from reconciler.kinds import Kind
from reconciler.kinds.registry import REGISTRY, spec_for
from reconciler.migrations import to_price_placeholder
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.snapshot import Snapshot
from reconciler.steps import PHASE_MIGRATIONS, SCHEDULE, Ids, Resolver, Step, at, const
from reconciler.versions import LEGACY_API_VERSION

__all__ = ["known_ids", "plan_steps"]


def known_ids(snapshot: Snapshot, plan: Plan) -> Ids:
    """Every id the steps may name, as known before the first write."""
    return Ids({spec.kind.value: spec.known_ids(snapshot, plan) for spec in REGISTRY})


def _steps_for(change: ResourceChange) -> list[Step]:
    """The writes one change needs, each in its phase: its kind's, or a migration's."""
    spec = spec_for(change.kind)
    if spec is not None:
        return spec.steps(change)
    if change.kind is Kind.MIGRATION and change.action is Action.MIGRATE:
        return [
            step
            for row in change.details.get("subscriptions", [])
            for step in _subscription_steps(change.address, change.details, row)
        ]
    raise ReconcileError(
        f"{change.address}: apply does not know how to {change.action.value} a {change.kind}"
    )


def _with_to_price(params: Mapping[str, Any], targets: Mapping[str, str]) -> Resolver:
    """Planned phases name each new price by a placeholder (``targets``: placeholder ->
    lookup key): put their ids in."""

    def resolve(ids: Ids) -> Mapping[str, Any]:
        text = json.dumps(params)
        for placeholder, lookup_key in targets.items():
            text = text.replace(json.dumps(placeholder), json.dumps(ids.of(Kind.PRICE, lookup_key)))
        resolved: Mapping[str, Any] = json.loads(text)
        return resolved

    return resolve


def _targets(details: Mapping[str, Any]) -> dict[str, str]:
    """Placeholder -> lookup key of every price a migration's phases move items to."""
    first = str(details["to_price"])
    keys = [first, *(str(pair["to_price"]) for pair in details.get("also") or ())]
    return {to_price_placeholder(first, key): key for key in keys}


def _schedule_path(subscription: str, known: str | None, suffix: str = "") -> Callable[[Ids], str]:
    def path(ids: Ids) -> str:
        schedule = ids.get(SCHEDULE, subscription, known)
        return f"/v1/subscription_schedules/{schedule}{suffix}"

    return path


def _subscription_steps(
    address: str, details: Mapping[str, Any], row: Mapping[str, Any]
) -> list[Step]:
    """The writes that move (or restore) one subscription; they run in order."""
    sub = row["subscription"]
    where = f"{address}/{sub}"
    action = row["action"]
    evidence = str(row.get("evidence") or "")
    targets = _targets(details)
    params = row.get("params") or {}
    legacy = LEGACY_API_VERSION  # phases name the legacy price
    match action:
        case "create_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "schedule",
                    at("/v1/subscription_schedules"),
                    const({"from_subscription": sub}),
                    (SCHEDULE, sub),
                    stripe_version=legacy,
                    evidence=evidence,
                ),
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "phases",
                    _schedule_path(sub, None),
                    _with_to_price(params, targets),
                    stripe_version=legacy,
                    evidence=evidence,
                ),
            ]
        case "update_schedule" | "restore_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "phases",
                    _schedule_path(sub, row["schedule"]),
                    _with_to_price(params, targets),
                    stripe_version=legacy,
                    evidence=evidence,
                )
            ]
        case "release_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "release",
                    _schedule_path(sub, row["schedule"], "/release"),
                    const({}),
                    stripe_version=legacy,
                    evidence=evidence,
                )
            ]
        case _:
            return []


def plan_steps(plan: Plan) -> list[Step]:
    """Every write of the plan, ordered by phase, then plan order.

    Each step carries the evidence of the object it writes as the plan saw it
    (migration steps, their subscription's), for its idempotency key.
    """
    evidence = {change.address: change.evidence for change in plan.changes}
    steps = [
        step if step.evidence else dataclasses.replace(step, evidence=evidence[change.address])
        for change in plan.actionable
        for step in _steps_for(change)
    ]
    steps += [  # writes that follow from several changes (default prices)
        dataclasses.replace(step, evidence=evidence.get(step.address, step.address))
        for spec in REGISTRY
        for step in spec.plan_steps(plan)
    ]
    return sorted(steps, key=lambda s: s.phase)  # stable: plan order within a phase
