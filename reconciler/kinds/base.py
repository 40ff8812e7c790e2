"""What a kind's spec is, and the pieces several kinds share.

A spec is one object per managed kind (see ``registry.py``); the planner,
apply's step building, the live reader, the importer and the renders call
its methods and never name a kind. The helpers here compare essences and
shape the changes every kind plans (create when absent, update, archive,
switch on and off). Pure: no I/O.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from deepdiff import DeepDiff

from reconciler.errors import ReconcileError
from reconciler.kinds import Kind
from reconciler.model import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    Desired,
    Migration,
    carries_marker,
    decimal_text,
    id_of,
)
from reconciler.plan import Action, ActionReason, FieldChange, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import Step, at, const

__all__ = [
    "Essence",
    "ImportContext",
    "KindSpec",
    "Lister",
    "ReadContext",
    "absent",
    "amount",
    "archivable",
    "by_identity",
    "changed_params",
    "existing",
    "field_changes",
    "id_of",
    "is_managed",
    "listed_active",
    "marked",
    "metadata_entry",
    "preferred",
    "root",
    "same_target",
    "switchable",
    "unknown_action",
    "unmarked",
    "update_or_archive",
    "update_then_archive",
]

Essence = dict[str, Any]
StripeObject = Mapping[str, Any]
Lister = Callable[[str, Mapping[str, Any]], Iterator[dict[str, Any]]]
"""A paged list request (the gateway's ``list_all``): a path and its parameters in, every
object listed out. Specs compose these; they never reach the gateway themselves."""


def amount(integer: Any, decimal: Any) -> str | None:
    """One canonical text for an amount given as an integer, a decimal, or both."""
    if decimal is not None and decimal != "":
        return decimal_text(Decimal(str(decimal)))
    if integer is not None:
        return str(int(integer))
    return None


def is_managed(obj: StripeObject) -> bool:
    """Whether stripe-reconcile made this Stripe object (its metadata says so)."""
    return carries_marker(obj.get("metadata"))


def listed_active(obj: StripeObject) -> bool:
    """Whether a listed object is active: a meter by its status, others by ``active``."""
    if "status" in obj and obj.get("object") == "billing.meter":
        return bool(obj["status"] == "active")
    return bool(obj.get("active", True))


def preferred(current: StripeObject | None, candidate: StripeObject) -> bool:
    """Of two objects with one identity, the active one wins, then the newest."""
    if current is None:
        return True
    rank = (listed_active(candidate), candidate.get("created", 0), candidate["id"])
    return rank > (listed_active(current), current.get("created", 0), current["id"])


def by_identity(objects: Iterable[StripeObject], key: str) -> dict[str, StripeObject]:
    """Listed objects by the field that identifies them, the preferred one of each."""
    chosen: dict[str, StripeObject] = {}
    for obj in objects:
        if preferred(chosen.get(obj[key]), obj):
            chosen[obj[key]] = obj
    return chosen


def update_then_archive(
    change: ResourceChange,
    path: str,
    names: tuple[str, ...],
    *,
    phases: tuple[int, int],
) -> list[Step]:
    """The writes of a kind retired by archiving (``active: false`` on its update path):
    the fields of ``names`` that changed, then, for an archive, the archive itself."""
    updates, retire = phases
    fields = changed_params(change, names)
    if change.action is Action.ARCHIVE:
        fields.pop("active", None)  # the archive step sends it
    steps: list[Step] = []
    if fields:
        steps.append(Step(updates, change.address, "update", at(path), const(fields)))
    if change.action is Action.ARCHIVE:
        steps.append(Step(retire, change.address, "archive", at(path), const({"active": False})))
    return steps


@dataclass
class ReadContext:
    """What reading one kind learns that another needs: the names of Stripe ids, per
    kind (a meter id's event name, a price id's lookup key)."""

    names: dict[Kind, dict[str, str]] = field(default_factory=dict)

    def name(self, kind: Kind, stripe_id: str) -> str:
        """The identity of a Stripe id of ``kind`` (an unknown id stays an id)."""
        return self.names.get(kind, {}).get(stripe_id, stripe_id)


@dataclass
class ImportContext:
    """Everything listed from the account, by kind, and what the entries written so far
    refer to (a product or meter nothing uses and that is retired is left out)."""

    listed: Mapping[Kind, Sequence[StripeObject]]
    names: dict[Kind, dict[str, str]] = field(default_factory=dict)
    """Identities of Stripe ids, per kind, for entries that name another object."""
    used: dict[Kind, set[str]] = field(default_factory=dict)
    proposed_lookup_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fields: dict[Kind, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """billing.yaml fields a kind declared inside another's entries adds to them, per kind
    and identity (a product's ``features:``)."""

    def fields_of(self, kind: Kind, identity: str) -> dict[str, Any]:
        """The fields other kinds add to the entry of ``identity`` (none by default)."""
        return dict(self.fields.get(kind, {}).get(identity, {}))

    def name(self, kind: Kind, stripe_id: str) -> str:
        """The identity of a Stripe id of ``kind`` (an unknown id stays an id)."""
        return self.names.get(kind, {}).get(stripe_id, stripe_id)

    def use(self, kind: Kind, identity: str) -> None:
        self.used.setdefault(kind, set()).add(identity)

    def uses(self, kind: Kind, identity: str) -> bool:
        return identity in self.used.get(kind, set())


class KindSpec(abc.ABC):
    """Everything the core needs to know about one managed kind."""

    kind: ClassVar[Kind]
    section: ClassVar[str]
    """Its list's name in billing.yaml, in ``Desired`` and in ``Snapshot``."""
    list_path: ClassVar[str]
    list_params: ClassVar[Mapping[str, Any]] = {}
    read_after: ClassVar[tuple[Kind, ...]] = ()
    """Kinds whose reading this kind's reading needs (their names of ids)."""
    import_after: ClassVar[tuple[Kind, ...]] = ()
    """Kinds whose import entries decide which of this kind's objects are written."""
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {}
    """Stripe's parameter names of this kind's writes -> billing.yaml field paths."""
    amounts: ClassVar[bool] = False
    """Whether its essence holds amounts in its currency (renders show them as money)."""
    add_on: ClassVar[bool] = False
    """Read only when billing.yaml declares one (a restricted key kept for the rest of
    billing may not read it, and an account that uses none pays no request for it);
    ``import`` reads it when the key can."""
    nested: ClassVar[bool] = False
    """Declared inside another kind's entries (a product's ``features:``), not as a
    billing.yaml section of its own: ``section`` names its part of the snapshot only."""

    def declared(self, desired: Desired) -> Sequence[Any]:
        """The declared objects of this kind, in declaration order."""
        objects: Sequence[Any] = getattr(desired, self.section)
        return objects

    def reads(self, desired: Desired) -> bool:
        """Whether planning ``desired`` reads this add-on kind: when it declares one."""
        return bool(self.declared(desired))

    def listing(self, list_all: Lister, desired: Desired | None) -> Iterator[dict[str, Any]]:
        """This kind's objects in the account: one paged list of ``list_path`` by default.
        ``desired`` None asks for every object (import, a read without billing.yaml)."""
        return list_all(self.list_path, self.list_params)

    def live(self, snapshot: Snapshot) -> Mapping[Any, LiveObject]:
        """The account's objects of this kind, by identity."""
        objects: Mapping[Any, LiveObject] = getattr(snapshot, self.section)
        return objects

    def address_of(self, identity: Any) -> str:
        """The plan address of an identity."""
        return f"{self.kind.value}.{identity}"

    def named(self, address: str) -> str:
        """The text after the kind in an address (``price.x`` -> ``x``)."""
        return address.removeprefix(f"{self.kind.value}.")

    @abc.abstractmethod
    def build(self, entry: Mapping[str, Any]) -> Any:
        """The model object of a schema-valid billing.yaml entry (defaults filled in by
        the model class: only the fields the entry states are passed)."""

    @abc.abstractmethod
    def identity(self, declared: Any) -> Hashable:
        """The key of a declared object in ``live(snapshot)``."""

    @abc.abstractmethod
    def forces_replacement(self, root_field: str) -> bool:
        """Whether a change to this top-level field can only be made by replacing."""

    def forces_replacement_of(self, change: ResourceChange, field_path: str) -> bool:
        """Whether, in ``change``, the change of ``field_path`` is one only a replacement
        makes (by default: whether its top-level field always is)."""
        return self.forces_replacement(root(field_path))

    def param_field(self, param: str) -> tuple[str | int, ...] | None:
        """The billing.yaml field a refused Stripe parameter comes from, if any."""
        return self.param_fields.get(param)

    @abc.abstractmethod
    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        """The ``Snapshot`` fields this kind fills from its listed objects."""

    @abc.abstractmethod
    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        """The changes of every declared object of this kind (conflicts appended)."""

    def unmanaged(self, desired: Desired, snapshot: Snapshot) -> list[str]:
        """Active objects of this kind that billing.yaml does not declare."""
        declared = {self.identity(obj) for obj in self.declared(desired)}
        return [
            self.address_of(key)
            for key, obj in self.live(snapshot).items()
            if key not in declared and obj.active
        ]

    @abc.abstractmethod
    def steps(self, change: ResourceChange) -> list[Step]:
        """The writes one change of this kind needs, each in its phase."""

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Whether ``change`` is the tail of something ``saved`` set out to do, when it is
        not simply what is left of ``planned`` (the saved change at its address, of this
        kind, if any): a saved plan re-checked after a crash or a concurrent apply."""
        return False

    def deletes(self, change: ResourceChange) -> str | None:
        """What ``change`` deletes for good in Stripe, as a phrase the renders show beside
        it as destructive (``deletes the coupon``); None when it deletes nothing."""
        return None

    def finished(self, planned: ResourceChange, snapshot: Snapshot) -> bool:
        """Whether a saved change that billing.yaml and the account no longer give is one
        already done (its object gone from view), rather than a sign the account moved."""
        return False

    def plan_steps(self, plan: Plan) -> list[Step]:
        """Writes that follow from several changes at once (none by default)."""
        return []

    def subscribed_ids(self, desired: Desired, snapshot: Snapshot) -> tuple[str, ...]:
        """Ids of this kind's objects whose live subscriptions the plan must count (the
        account is read for them before planning); none by default."""
        return ()

    def migrations(self, desired: Desired, snapshot: Snapshot) -> tuple[Migration, ...]:
        """Migrations this kind's declarations ask for, planned like declared ones (a
        price's ``existing_subscriptions: migrate``); none by default."""
        return ()

    def known_ids(self, snapshot: Snapshot, plan: Plan) -> dict[str, str]:
        """Ids later steps name this kind's objects by, known before apply writes."""
        return {}

    def prepare_import(self, context: ImportContext) -> None:  # noqa: B027 - optional hook
        """Record what other kinds' entries need of this kind's listed objects (nothing by
        default)."""

    @abc.abstractmethod
    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        """billing.yaml entries for the listed objects of this kind."""


def root(field_path: str) -> str:
    """The top-level field of a change path: ``tiers[0].up_to`` -> ``tiers``."""
    return field_path.split(".", 1)[0].split("[", 1)[0]


def field_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str]
) -> tuple[FieldChange, ...]:
    """Differences field by field; metadata is compared key by key."""
    found: list[FieldChange] = []
    for name in fields:
        old, new = before.get(name), after.get(name)
        if name == "metadata":
            old_map: Mapping[str, Any] = old or {}
            new_map: Mapping[str, Any] = new or {}
            for key in sorted(new_map):
                if old_map.get(key, "") != new_map[key]:
                    found.append(FieldChange(f"metadata.{key}", old_map.get(key), new_map[key]))
        elif old != new:
            found.extend(_nested_changes(name, old, new))
    return tuple(found)


def _nested_changes(name: str, old: Any, new: Any) -> list[FieldChange]:
    """One FieldChange per differing leaf (``tiers[0].up_to``), so reviews see what moved."""
    if not (isinstance(old, (dict, list)) and type(old) is type(new)):
        return [FieldChange(name, old, new)]
    found: list[FieldChange] = []
    for levels in DeepDiff(old, new, view="tree").values():
        for level in levels:
            path = name
            for part in level.path(output_format="list"):
                path += f"[{part}]" if isinstance(part, int) else f".{part}"
            found.append(FieldChange(path, _present(level.t1), _present(level.t2)))
    return sorted(found, key=lambda change: change.field)


def _present(value: Any) -> Any:
    """DeepDiff's marker for a missing side becomes None."""
    return None if type(value).__name__ == "NotPresent" else value


def marked(after: Mapping[str, Any]) -> dict[str, Any]:
    """The state of an object stripe-reconcile creates: its metadata carries the marker.

    Only created objects get it; an existing object is compared on the metadata
    keys billing.yaml names, so adopting one writes nothing it does not declare.
    """
    if "metadata" not in after:
        return dict(after)
    return {**after, "metadata": {**after["metadata"], MANAGED_BY_KEY: MANAGED_BY_VALUE}}


def unmarked(after: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An after-state without the marker only created objects carry, for comparison."""
    if after is None or not isinstance(after.get("metadata"), Mapping):
        return after
    metadata = {k: v for k, v in after["metadata"].items() if k != MANAGED_BY_KEY}
    return {**after, "metadata": metadata}


def same_target(planned: ResourceChange, change: ResourceChange) -> bool:
    """Whether two changes aim at the same state (the creation marker aside)."""
    return unmarked(planned.after) == unmarked(change.after)


def absent(address: str, kind: Kind, active: bool, after: Mapping[str, Any]) -> ResourceChange:
    """A declared object the account does not have: create it, unless declared retired."""
    if active:
        return ResourceChange(
            address,
            kind,
            Action.CREATE,
            "not in the account",
            None,
            marked(after),
            because=ActionReason.ABSENT,
        )
    return ResourceChange(
        address,
        kind,
        Action.NOOP,
        "declared inactive and absent",
        because=ActionReason.ABSENT_AND_INACTIVE,
    )


def existing(
    address: str,
    kind: Kind,
    action: Action,
    reason: str,
    because: ActionReason,
    *,
    live: LiveObject,
    after: Mapping[str, Any],
    diffs: tuple[FieldChange, ...],
    details: Mapping[str, Any] | None = None,
) -> ResourceChange:
    """A change to an object the account holds."""
    return ResourceChange(
        address,
        kind,
        action,
        reason,
        live.essence,
        after,
        diffs,
        live.stripe_id,
        details or {},
        because,
    )


def update_or_archive(
    address: str,
    kind: Kind,
    *,
    live: LiveObject,
    after: Mapping[str, Any],
    diffs: tuple[FieldChange, ...],
    details: Mapping[str, Any] | None = None,
) -> ResourceChange:
    """Kinds retired by archiving (products, prices): no-op, update, or archive."""
    changed = ", ".join(d.field for d in diffs)
    if not diffs:
        action, reason, because = Action.NOOP, "matches", ActionReason.MATCHES
    elif live.active and not after.get("active", True):
        action, reason = Action.ARCHIVE, "declared active: false"
        because = ActionReason.DECLARED_INACTIVE
    elif not live.managed:
        action, reason = (
            Action.UPDATE,
            f"changed: {changed} (adopted: not created by stripe-reconcile)",
        )
        because = ActionReason.ADOPTED_CHANGED
    else:
        action, reason, because = Action.UPDATE, f"changed: {changed}", ActionReason.CHANGED
    return existing(
        address,
        kind,
        action,
        reason,
        because,
        live=live,
        after=after,
        diffs=diffs,
        details=details,
    )


def archivable(
    address: str, kind: Kind, live: LiveObject | None, after: Mapping[str, Any]
) -> ResourceChange:
    """The change of a declared object of a kind retired by archiving (products,
    features): created when absent, else no-op, update or archive."""
    if live is None:
        return absent(address, kind, bool(after.get("active", True)), after)
    diffs = field_changes(live.essence, after, after.keys())
    return update_or_archive(address, kind, live=live, after=after, diffs=diffs)


def switchable(
    address: str,
    kind: Kind,
    live: LiveObject,
    after: Mapping[str, Any],
    *,
    fixed_fields: Iterable[str],
) -> ResourceChange:
    """Kinds switched off and on (meters, alerts): fixed fields replace, ``active``
    switches, the rest updates."""
    fixed_roots = frozenset(fixed_fields)
    active = bool(after["active"])
    diffs = field_changes(live.essence, after, after.keys())
    fixed = [d.field for d in diffs if root(d.field) in fixed_roots]
    if active and fixed:
        action, reason = Action.REPLACE, f"fixed at creation: {', '.join(fixed)}"
        because = ActionReason.CANNOT_UPDATE
    elif live.active and not active:
        action, reason = Action.DEACTIVATE, "declared active: false"
        because = ActionReason.DECLARED_INACTIVE
    elif not live.active and active:
        action, reason = Action.REACTIVATE, "declared active but inactive in the account"
        because = ActionReason.DECLARED_ACTIVE
    elif diffs and not fixed:
        action, reason = Action.UPDATE, "changed: " + ", ".join(d.field for d in diffs)
        because = ActionReason.CHANGED
    elif not diffs:
        action, reason, because = Action.NOOP, "matches", ActionReason.MATCHES
    else:
        action, reason = Action.NOOP, "inactive; not replaced"
        because = ActionReason.INACTIVE_NOT_REPLACED
    return existing(address, kind, action, reason, because, live=live, after=after, diffs=diffs)


def changed_params(change: ResourceChange, names: tuple[str, ...]) -> dict[str, Any]:
    """Update parameters for the fields of ``names`` the change touches, and metadata."""
    after = change.after or {}
    changed = {c.field.split(".")[0] for c in change.changes} if change.before else set(after)
    params: dict[str, Any] = {}
    for name in names:
        if name in changed and name in after:
            value = after[name]
            params[name] = "" if value is None else value
    if "metadata" in changed and "metadata" in after:
        params["metadata"] = dict(after["metadata"])
    return params


def metadata_entry(obj: StripeObject) -> dict[str, str]:
    """An object's metadata as billing.yaml declares it: without the marker, sorted."""
    return {
        k: str(v) for k, v in sorted((obj.get("metadata") or {}).items()) if k != MANAGED_BY_KEY
    }


def unknown_action(change: ResourceChange) -> list[Step]:
    """A change no step of its kind carries out: refused before any write."""
    raise ReconcileError(
        f"{change.address}: apply does not know how to {change.action.value} a {change.kind}"
    )
