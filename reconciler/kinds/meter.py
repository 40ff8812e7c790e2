"""Meters: identified by their event name; only the display name changes in place.

A meter cannot be replaced: its formula (``sum``, ``count`` or ``last``), its
payload keys and its event time window are fixed at creation
(docs.stripe.com/api/billing/meter/create; update takes ``display_name``
alone) and an event name belongs to one meter for good, so a change to a fixed
field of an active meter is a conflict that names the way out. Retired by
deactivating (and brought back by reactivating).

``event_time_window`` (``hour`` or ``day``, or none) says events arrive
pre-aggregated per window: Stripe uses only the latest event sent for a
customer in each window. It is in a meter's essence only when set, so a
meter without one reads and plans as it always has.
"""

from __future__ import annotations

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
    by_identity,
    switchable,
    unknown_action,
)
from reconciler.model import DEFAULT_CUSTOMER_KEY, DEFAULT_VALUE_KEY, Desired, Meter, given
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_CATALOG, PHASE_RETIRE, Step, at, const

__all__ = ["METER_FIXED", "MeterSpec", "meter_essence", "meter_essence_from_stripe"]

METER_FIXED = ("aggregation", "customer_key", "value_key", "event_time_window")


def meter_essence(meter: Meter) -> Essence:
    essence: Essence = {
        "display_name": meter.display_name,
        "aggregation": meter.aggregation,
        "customer_key": meter.customer_key,
        "value_key": meter.value_key,
        "active": meter.active,
    }
    if meter.event_time_window is not None:
        essence["event_time_window"] = meter.event_time_window
    return essence


def meter_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    essence: Essence = {
        "display_name": obj.get("display_name"),
        "aggregation": (obj.get("default_aggregation") or {}).get("formula"),
        "customer_key": (obj.get("customer_mapping") or {}).get(
            "event_payload_key", DEFAULT_CUSTOMER_KEY
        ),
        "value_key": (obj.get("value_settings") or {}).get("event_payload_key", DEFAULT_VALUE_KEY),
        "active": obj.get("status", "active") == "active",
    }
    if obj.get("event_time_window"):
        essence["event_time_window"] = obj["event_time_window"]
    return essence


def create_params(event_name: str, after: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that create a meter of this essence."""
    params: dict[str, Any] = {
        "event_name": event_name,
        "display_name": after["display_name"],
        "default_aggregation": {"formula": after["aggregation"]},
        "customer_mapping": {"type": "by_id", "event_payload_key": after["customer_key"]},
        "value_settings": {"event_payload_key": after["value_key"]},
    }
    if after.get("event_time_window"):
        params["event_time_window"] = after["event_time_window"]
    return params


def _rename(address: str, meter_id: str | None, after: Mapping[str, Any]) -> Step:
    """The one in-place change a meter takes: its display name."""
    params = {"display_name": after["display_name"]}
    return Step(
        PHASE_CATALOG, address, "update", at(f"/v1/billing/meters/{meter_id}"), const(params)
    )


class MeterSpec(KindSpec):
    kind = Kind.METER
    section = "meters"
    list_path = "/v1/billing/meters"
    import_after = (Kind.PRICE, Kind.ALERT)
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "event_name": ("event_name",),
        "display_name": ("display_name",),
        "default_aggregation[formula]": ("aggregation",),
        "customer_mapping[event_payload_key]": ("customer_key",),
        "value_settings[event_payload_key]": ("value_key",),
        "event_time_window": ("event_time_window",),
    }

    def build(self, entry: Mapping[str, Any]) -> Meter:
        return Meter(
            event_name=entry["event_name"],
            display_name=entry["display_name"],
            aggregation=entry["aggregation"],
            **given(entry, "customer_key", "value_key", "active", "event_time_window"),
        )

    def identity(self, declared: Meter) -> str:
        return declared.event_name

    def forces_replacement(self, root_field: str) -> bool:
        return root_field in METER_FIXED

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        by_name = by_identity(objects, "event_name")
        # Only the current meter of an event name is named by it: a price or alert
        # still on a replaced meter keeps that meter's id, so it shows as a change.
        context.names[self.kind] = {m["id"]: name for name, m in by_name.items()}
        return {
            "meters": {
                name: LiveObject(m["id"], meter_essence_from_stripe(m))
                for name, m in by_name.items()
            }
        }

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        for meter in desired.meters:
            after = meter_essence(meter)
            live = snapshot.meters.get(meter.event_name)
            if live is None:
                changes.append(absent(meter.address, self.kind, meter.active, after))
                continue
            fixed = [  # a window absent on either side is None: none
                f"{name} {live.essence.get(name)!r} -> {after.get(name)!r}"
                for name in METER_FIXED
                if live.essence.get(name) != after.get(name)
            ]
            if fixed and meter.active:
                conflicts.append(
                    f"{meter.address}: {', '.join(fixed)}: a meter's formula, payload keys and "
                    f"event time window are fixed at creation, and an event name belongs to "
                    f"one meter for good ({live.stripe_id}). Declare a new meter with a new "
                    f"event_name, point the prices and alerts at it, and mark "
                    f"'{meter.event_name}' active: false"
                )
            else:
                changes.append(
                    switchable(meter.address, self.kind, live, after, fixed_fields=METER_FIXED)
                )
        return changes

    def steps(self, change: ResourceChange) -> list[Step]:
        address, old = change.address, change.stripe_id
        after = change.after or {}
        match change.action:
            case Action.CREATE:
                event_name = self.named(address)
                return [
                    Step(
                        PHASE_CATALOG,
                        address,
                        "create",
                        at("/v1/billing/meters"),
                        const(create_params(event_name, after)),
                        (self.kind.value, event_name),
                    )
                ]
            case Action.UPDATE:
                return [_rename(address, old, after)]
            case Action.REACTIVATE:
                steps = [
                    Step(
                        PHASE_CATALOG,
                        address,
                        "reactivate",
                        at(f"/v1/billing/meters/{old}/reactivate"),
                        const({}),
                    )
                ]
                if any(c.field == "display_name" for c in change.changes):
                    steps.append(_rename(address, old, after))
                return steps
            case Action.DEACTIVATE:
                return [
                    Step(
                        PHASE_RETIRE,
                        address,
                        "deactivate",
                        at(f"/v1/billing/meters/{old}/deactivate"),
                        const({}),
                    )
                ]
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def known_ids(self, snapshot: Snapshot, plan: Plan) -> dict[str, str]:
        return {name: obj.stripe_id for name, obj in snapshot.meters.items()}

    def prepare_import(self, context: ImportContext) -> None:
        """Every listed meter's event name by id (retired ones included)."""
        context.names[self.kind] = {
            m["id"]: m["event_name"] for m in _sorted(context.listed.get(self.kind, ()))
        }

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for meter in _sorted(context.listed.get(self.kind, ())):
            active = meter.get("status") == "active"
            if not active and not context.uses(self.kind, meter["event_name"]):
                continue
            entry: dict[str, Any] = {
                "event_name": meter["event_name"],
                "display_name": meter.get("display_name"),
                "aggregation": (meter.get("default_aggregation") or {}).get("formula"),
            }
            customer_key = (meter.get("customer_mapping") or {}).get("event_payload_key")
            if customer_key and customer_key != DEFAULT_CUSTOMER_KEY:
                entry["customer_key"] = customer_key
            value_key = (meter.get("value_settings") or {}).get("event_payload_key")
            if value_key and value_key != DEFAULT_VALUE_KEY:
                entry["value_key"] = value_key
            if meter.get("event_time_window"):
                entry["event_time_window"] = meter["event_time_window"]
            if not active:
                entry["active"] = False
            entries.append(entry)
        return entries


def _sorted(meters: Iterable[StripeObject]) -> list[StripeObject]:
    return sorted(meters, key=lambda m: (m["event_name"], m["id"]))
