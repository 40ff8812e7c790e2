"""Alerts: usage-threshold alerts identified by their title within their meter.

Nothing changes in place: a new threshold, customer or recurrence archives the
alert and creates another. Retired by deactivating. Stripe does not keep
titles unique, so two writers can make two alerts under one title: the
second is archived. A declared alert new to the account beside an undeclared
active one on the same meter and customer is likely a rename, and the plan
says so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    Essence,
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    absent,
    id_of,
    preferred,
    same_target,
    switchable,
    unknown_action,
)
from reconciler.model import Alert, Desired, alert_address, given
from reconciler.plan import Action, ActionReason, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_ALERTS, PHASE_RETIRE, Ids, Resolver, Step, at, const

__all__ = ["ALERT_FIXED", "AlertSpec", "alert_essence", "alert_essence_from_stripe"]

ALERT_FIXED = ("threshold", "recurrence", "customer")


def alert_essence(alert: Alert) -> Essence:
    return {
        "threshold": alert.threshold,
        "recurrence": alert.recurrence,
        "customer": alert.customer,
        "active": alert.active,
    }


def alert_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    usage = obj.get("usage_threshold") or {}
    customers = [
        id_of(f.get("customer")) for f in usage.get("filters") or [] if f.get("type") == "customer"
    ]
    return {
        "threshold": usage.get("gte"),
        "recurrence": usage.get("recurrence", "one_time"),
        "customer": customers[0] if customers else None,
        "active": obj.get("status") == "active",
    }


def alert_identity(address: str) -> tuple[str, str]:
    """``alert.video_seconds["Over 50k"]`` -> ("video_seconds", "Over 50k")."""
    meter, _, rest = address.removeprefix("alert.").partition("[")
    return meter, str(json.loads(rest[:-1]))


def create_params(address: str, after: Mapping[str, Any], ids: Ids) -> dict[str, Any]:
    """The parameters that create the alert at ``address`` with this essence."""
    meter, title = alert_identity(address)
    usage: dict[str, Any] = {
        "gte": after["threshold"],
        "meter": ids.of(Kind.METER, meter),
        "recurrence": after["recurrence"],
    }
    if after.get("customer"):
        usage["filters"] = [{"type": "customer", "customer": after["customer"]}]
    return {"alert_type": "usage_threshold", "title": title, "usage_threshold": usage}


def _create_resolver(address: str, after: Mapping[str, Any]) -> Resolver:
    return lambda ids: create_params(address, after, ids)


def _switch(phase: int, address: str, name: str, old: str | None, verb: str) -> Step:
    return Step(phase, address, name, at(f"/v1/billing/alerts/{old}/{verb}"), const({}))


def _rename_hint(undeclared: list[str]) -> str:
    """The second line of a new alert's reason when it may replace another."""
    them = ", ".join(undeclared)
    return (
        f"is this a rename? {them} on the same meter and customer is not declared and stays "
        "active (alerts are identified by meter and title); to retire it, declare it with its "
        "title and active: false"
    )


class AlertSpec(KindSpec):
    kind = Kind.ALERT
    section = "alerts"
    list_path = "/v1/billing/alerts"
    read_after = (Kind.METER,)
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "title": ("title",),
        "usage_threshold[gte]": ("threshold",),
        "usage_threshold[meter]": ("meter",),
        "usage_threshold[recurrence]": ("recurrence",),
        "usage_threshold[filters][0][customer]": ("customer",),
    }

    def build(self, entry: Mapping[str, Any]) -> Alert:
        return Alert(
            title=entry["title"],
            meter=entry["meter"],
            threshold=entry["threshold"],
            **given(entry, "recurrence", "customer", "active"),
        )

    def identity(self, declared: Alert) -> tuple[str, str]:
        return (declared.meter, declared.title)

    def address_of(self, identity: Any) -> str:
        meter, title = identity
        return alert_address(meter, title)

    def forces_replacement(self, root_field: str) -> bool:
        return root_field in ALERT_FIXED

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        by_identity: dict[tuple[str, str], list[StripeObject]] = {}
        for alert in objects:
            if alert.get("status") == "archived":  # archived alerts are gone for good
                continue
            meter_id = id_of((alert.get("usage_threshold") or {}).get("meter"))
            name = context.name(Kind.METER, str(meter_id))
            by_identity.setdefault((name, alert.get("title", "")), []).append(alert)
        alerts: dict[tuple[str, str], LiveObject] = {}
        duplicates: dict[tuple[str, str], tuple[str, ...]] = {}
        for identity, found in by_identity.items():
            kept: StripeObject | None = None
            for alert in found:
                candidate = {**alert, "active": alert.get("status") == "active"}
                if preferred(kept, candidate):
                    kept = candidate
            assert kept is not None
            alerts[identity] = LiveObject(kept["id"], alert_essence_from_stripe(kept))
            others = sorted(a["id"] for a in found if a["id"] != kept["id"])
            if others:  # Stripe does not keep titles unique: two writers can make two
                duplicates[identity] = tuple(others)
        return {"alerts": alerts, "duplicate_alerts": duplicates}

    def _renamed_from(
        self, desired: Desired, snapshot: Snapshot
    ) -> dict[tuple[str, Any], list[str]]:
        """Active alerts billing.yaml does not declare, on a meter it declares, by (meter,
        customer): a declared alert new to the account beside one of them is likely a
        rename."""
        declared = {(a.meter, a.title) for a in desired.alerts}
        meters = {m.event_name for m in desired.meters}
        found: dict[tuple[str, Any], list[str]] = {}
        for (meter, title), live in sorted(snapshot.alerts.items()):
            if (meter, title) in declared or meter not in meters or not live.active:
                continue
            found.setdefault((meter, live.essence.get("customer")), []).append(
                f"{alert_address(meter, title)} ({live.stripe_id})"
            )
        return found

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        renamed_from = self._renamed_from(desired, snapshot)
        for alert in desired.alerts:
            after = alert_essence(alert)
            live = snapshot.alerts.get((alert.meter, alert.title))
            if live is None:
                change = absent(alert.address, self.kind, alert.active, after)
                undeclared = renamed_from.get((alert.meter, alert.customer))
                if change.action is Action.CREATE and undeclared:
                    change = dataclasses.replace(
                        change, reason=f"{change.reason}\n{_rename_hint(undeclared)}"
                    )
                changes.append(change)
                continue
            for duplicate in snapshot.duplicate_alerts.get((alert.meter, alert.title), ()):
                changes.append(
                    ResourceChange(
                        f"{alert.address}#{duplicate}",
                        self.kind,
                        Action.ARCHIVE,
                        f"a second alert under the declared title ({live.stripe_id} is kept): "
                        "two writers created one each",
                        stripe_id=duplicate,
                        because=ActionReason.DUPLICATE,
                    )
                )
            changes.append(
                switchable(alert.address, self.kind, live, after, fixed_fields=ALERT_FIXED)
            )
        return changes

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        match action:
            case Action.CREATE | Action.REPLACE:
                steps = []
                if action is Action.REPLACE and (change.before or {}).get("active", True):
                    steps.append(_switch(PHASE_ALERTS, address, "archive-old", old, "archive"))
                steps.append(
                    Step(
                        PHASE_ALERTS,
                        address,
                        "create",
                        at("/v1/billing/alerts"),
                        _create_resolver(address, change.after or {}),
                    )
                )
                return steps
            case Action.ARCHIVE:
                return [_switch(PHASE_RETIRE, address, "archive", old, "archive")]
            case Action.REACTIVATE:
                return [_switch(PHASE_ALERTS, address, "activate", old, "activate")]
            case Action.DEACTIVATE:
                return [_switch(PHASE_RETIRE, address, "deactivate", old, "deactivate")]
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Creating the new alert of a replace whose old alert is archived already."""
        return (
            planned is not None
            and planned.action is Action.REPLACE
            and same_target(planned, change)
            and change.action is Action.CREATE
        )

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        listed = context.listed.get(self.kind, ())
        for alert in sorted(listed, key=lambda a: (a.get("title") or "", a["id"])):
            if alert.get("status") == "archived":
                continue
            usage = alert.get("usage_threshold") or {}
            entry: dict[str, Any] = {
                "title": alert.get("title"),
                "meter": context.name(Kind.METER, str(id_of(usage.get("meter")))),
                "threshold": usage.get("gte"),
            }
            customers = [id_of(f.get("customer")) for f in usage.get("filters") or []]
            if customers:
                entry["customer"] = customers[0]
            if alert.get("status") != "active":
                entry["active"] = False
            context.use(Kind.METER, entry["meter"])
            entries.append(entry)
        return entries
