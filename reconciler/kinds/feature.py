"""Entitlement features: identified by their lookup key; name and metadata change in place;
retired by archiving, which Stripe makes final.

After docs.stripe.com/api/entitlements/feature: a feature's ``lookup_key`` is
unique among active features and set at creation; ``name`` and ``metadata``
update; ``active: false`` archives it, and an archived feature cannot be
reactivated. Its lookup key is then free again, so a feature declared active
after it was archived is created anew. The list leaves archived features
out, which is why an archived one reads as absent. An add-on kind: features
are read only when billing.yaml declares one. The lookup keys of the features
read name their ids for the features attached to products, and a feature
created by an apply is remembered for the attachments that follow it.
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
    archivable,
    by_identity,
    is_managed,
    metadata_entry,
    unknown_action,
    update_then_archive,
)
from reconciler.model import Desired, Feature, given
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_CATALOG, PHASE_RETIRE, Step, at, const

__all__ = ["FeatureSpec", "feature_essence", "feature_essence_from_stripe"]

PATH = "/v1/entitlements/features"


def feature_essence(feature: Feature) -> Essence:
    return {"name": feature.name, "metadata": dict(feature.metadata), "active": feature.active}


def feature_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    return {
        "name": obj.get("name"),
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
    }


class FeatureSpec(KindSpec):
    kind = Kind.FEATURE
    section = "features"
    list_path = PATH
    add_on = True
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "lookup_key": ("lookup_key",),
        "name": ("name",),
    }

    def build(self, entry: Mapping[str, Any]) -> Feature:
        return Feature(
            lookup_key=entry["lookup_key"],
            name=entry["name"],
            **given(entry, "metadata", "active"),
        )

    def identity(self, declared: Feature) -> str:
        return declared.lookup_key

    def forces_replacement(self, root_field: str) -> bool:
        return False  # the lookup key is the identity; everything else updates

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        by_key = by_identity(objects, "lookup_key")
        context.names[self.kind] = {f["id"]: key for key, f in by_key.items()}
        return {
            self.section: {
                key: LiveObject(f["id"], feature_essence_from_stripe(f), is_managed(f))
                for key, f in by_key.items()
            }
        }

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        return [
            archivable(
                feature.address,
                self.kind,
                snapshot.features.get(feature.lookup_key),
                feature_essence(feature),
            )
            for feature in desired.features
        ]

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        after = change.after or {}
        match action:
            case Action.CREATE:
                params = {
                    "lookup_key": self.named(address),
                    "name": after["name"],
                    "metadata": dict(after["metadata"]),
                }
                made = (self.kind.value, self.named(address))
                return [Step(PHASE_CATALOG, address, "create", at(PATH), const(params), made)]
            case Action.UPDATE | Action.ARCHIVE:
                return update_then_archive(
                    change, f"{PATH}/{old}", ("name",), phases=(PHASE_CATALOG, PHASE_RETIRE)
                )
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def known_ids(self, snapshot: Snapshot, plan: Plan) -> dict[str, str]:
        return {key: obj.stripe_id for key, obj in snapshot.features.items()}

    def prepare_import(self, context: ImportContext) -> None:
        """Every active feature's lookup key by id (an archived one names nothing)."""
        context.names[self.kind] = {
            f["id"]: f["lookup_key"]
            for f in context.listed.get(self.kind, ())
            if f.get("active", True)
        }

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for feature in sorted(context.listed.get(self.kind, ()), key=lambda f: f["lookup_key"]):
            if not feature.get("active", True):
                continue  # archived for good: nothing billing.yaml could do with it
            entry: dict[str, Any] = {"lookup_key": feature["lookup_key"], "name": feature["name"]}
            metadata = metadata_entry(feature)
            if metadata:
                entry["metadata"] = metadata
            entries.append(entry)
        return entries
