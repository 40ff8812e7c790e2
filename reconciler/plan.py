"""The plan: immutable values describing what apply will do, and their JSON form.

A plan is made by the planner from the desired state and a snapshot of the
account; it is rendered for people, saved for later, and applied. The JSON
form is the machine contract (``format_version``), published as
``schemas/plan.schema.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import gc
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.kinds import Kind

__all__ = [
    "FORMAT_VERSION",
    "IDEMPOTENCY_PREFIX",
    "INVALID_COUPON_REASON",
    "Action",
    "ActionReason",
    "FieldChange",
    "Kind",
    "Plan",
    "ResourceChange",
    "dump_json",
    "fingerprint",
]

FORMAT_VERSION = "1"
IDEMPOTENCY_PREFIX = "stripe-reconcile-"
"""Every write apply makes carries a key that starts so: the account's events tell
which objects stripe-reconcile created."""


class Action(enum.Enum):
    """What apply does to one resource."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    ARCHIVE = "archive"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    MIGRATE = "migrate"
    NOOP = "no-op"
    DELETE = "delete"
    """For the few objects Stripe retires only by deleting (coupons): gone for good."""

    @property
    def symbol(self) -> str:
        match self:
            case Action.CREATE:
                return "+"
            case Action.UPDATE | Action.REACTIVATE:
                return "~"
            case Action.REPLACE:
                return "-/+"
            case Action.ARCHIVE | Action.DEACTIVATE | Action.DELETE:
                return "-"
            case Action.MIGRATE:
                return ">"
            case Action.NOOP:
                return " "

    @property
    def irreversible(self) -> bool:
        """Steps a reviewer must see called out: they cannot simply be undone."""
        match self:
            case (
                Action.REPLACE | Action.ARCHIVE | Action.DEACTIVATE | Action.MIGRATE | Action.DELETE
            ):
                return True
            case Action.CREATE | Action.UPDATE | Action.REACTIVATE | Action.NOOP:
                return False


class ActionReason(enum.Enum):
    """Why a change has its action (Terraform's "replace because cannot update").

    Recorded on each change by the planner; a plan file keeps only the reason's
    words, so loading one gives the same member back (:meth:`of`).
    """

    ABSENT = "absent"
    """create: the account does not hold the declared object."""
    ABSENT_AND_INACTIVE = "absent-and-inactive"
    """no-op: declared retired, and the account does not hold it."""
    MATCHES = "matches"
    """no-op: the account holds it as declared."""
    CHANGED = "changed"
    """update: fields that change in place differ."""
    ADOPTED_CHANGED = "adopted-changed"
    """update of an object stripe-reconcile did not create (taken over)."""
    CANNOT_UPDATE = "cannot-update"
    """replace: a field fixed at creation differs."""
    DECLARED_INACTIVE = "declared-inactive"
    """archive, deactivate or delete: declared ``active: false``."""
    DECLARED_ACTIVE = "declared-active"
    """reactivate: declared active, inactive in the account."""
    INACTIVE_NOT_REPLACED = "inactive-not-replaced"
    """no-op: a retired object whose fixed fields differ is not replaced."""
    INTERRUPTED_REPLACE = "interrupted-replace"
    """archive: a replace stopped between making the new object and retiring the old."""
    DUPLICATE = "duplicate"
    """archive: a second object under one identity (two writers made one each)."""
    REPLACED_EARLIER = "replaced-earlier"
    """archive: a replaced price kept active while its subscriptions moved to its
    successor, now that none is left on it (or they are no longer to move)."""
    KEPT_FOR_SUBSCRIBERS = "kept-for-subscribers"
    """no-op: a replaced price kept active until its subscriptions have moved."""
    MIGRATION = "migration"
    """a migration's subscriptions: the change's details hold each one's state."""
    NOT_READ = "not-read"
    """no-op: the account was not read for it."""
    UNDECLARED = "undeclared"
    """archive: a part of a declared object that it no longer declares (a feature attached
    to a product whose ``features:`` leaves it out), taken away."""
    COUPON_NOT_VALID = "coupon-not-valid"
    """no-op: a promotion code declared active whose coupon Stripe no longer lets anyone
    redeem (past its ``redeem_by``, or redeemed ``max_redemptions`` times)."""

    @classmethod
    def of(cls, kind: str, action: Action, reason: str) -> ActionReason:
        """The member a change's kind, action and words stand for."""
        if kind == Kind.MIGRATION:
            return cls.NOT_READ if reason == "not read" else cls.MIGRATION
        first = reason.split("\n", 1)[0]
        match action:
            case Action.CREATE:
                return cls.ABSENT
            case Action.REPLACE:
                return cls.CANNOT_UPDATE
            case Action.REACTIVATE:
                return cls.DECLARED_ACTIVE
            case Action.UPDATE:
                return cls.ADOPTED_CHANGED if first.endswith(_ADOPTED) else cls.CHANGED
            case Action.DELETE:
                return cls.DECLARED_INACTIVE
            case Action.ARCHIVE | Action.DEACTIVATE:
                if first.startswith(_INTERRUPTED):
                    return cls.INTERRUPTED_REPLACE
                if first.startswith(_DUPLICATE):
                    return cls.DUPLICATE
                if first.startswith(_REPLACED_EARLIER):
                    return cls.REPLACED_EARLIER
                if first.startswith(_UNDECLARED):
                    return cls.UNDECLARED
                return cls.DECLARED_INACTIVE
            case Action.NOOP:
                return {
                    "matches": cls.MATCHES,
                    "declared inactive and absent": cls.ABSENT_AND_INACTIVE,
                    "inactive; not replaced": cls.INACTIVE_NOT_REPLACED,
                    "not read": cls.NOT_READ,
                    INVALID_COUPON_REASON: cls.COUPON_NOT_VALID,
                }.get(first, cls.KEPT_FOR_SUBSCRIBERS if first.startswith(_KEPT) else cls.MATCHES)
            case Action.MIGRATE:
                return cls.MIGRATION


_KINDS = frozenset(kind.value for kind in Kind)
INVALID_COUPON_REASON = "its coupon is no longer valid"
"""The first line of the reason of a promotion code left inactive with its coupon."""
_ADOPTED = "(adopted: not created by stripe-reconcile)"
_INTERRUPTED = "left over from an interrupted replace"
_DUPLICATE = "a second alert under the declared title"
_REPLACED_EARLIER = "replaced earlier by"
_KEPT = "kept active until"
_UNDECLARED = "not among "


@dataclass(frozen=True)
class FieldChange:
    """One field's value before and after (None: absent)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    """One resource's planned change.

    ``before`` and ``after`` are essences: only the fields billing.yaml
    manages, normalised. ``stripe_id`` names the existing object (None when
    it is to be created). ``changes`` lists the differing fields. ``kind`` may be
    given as its text (``"price"``); it is always kept as a ``Kind``.
    """

    address: str
    kind: Kind | str
    action: Action
    reason: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    changes: tuple[FieldChange, ...] = ()
    stripe_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    because: ActionReason | None = field(default=None, compare=False)
    """Why: given by the planner, else (a loaded plan, a migration) read from the words."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            if self.kind not in _KINDS:
                raise ValueError(
                    f"{self.address}: kind {self.kind!r} is not one this version knows"
                )
            object.__setattr__(self, "kind", Kind(self.kind))
        if self.because is None:
            object.__setattr__(
                self, "because", ActionReason.of(self.kind, self.action, self.reason)
            )

    @property
    def why(self) -> ActionReason:
        """``because``, always set once the change exists."""
        assert self.because is not None
        return self.because

    @property
    def irreversible(self) -> bool:
        return self.action.irreversible

    @property
    def evidence(self) -> str:
        """A digest of the object as the plan saw it (None before: absent)."""
        return fingerprint((self.address, self.stripe_id, self.before))

    def to_json(self) -> dict[str, Any]:
        """The change as JSON-able data; nested values are shared with the change (tuples
        and read-only mappings included), so serialise it with :func:`dump_json`."""
        return {
            "address": self.address,
            "kind": str(self.kind),
            "action": self.action.value,
            "reason": self.reason,
            "irreversible": self.irreversible,
            "stripe_id": self.stripe_id,
            "before": self.before,
            "after": self.after,
            "changes": [
                {"field": c.field, "before": c.before, "after": c.after} for c in self.changes
            ],
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceChange:
        return cls(
            address=data["address"],
            kind=data["kind"],
            action=Action(data["action"]),
            reason=data["reason"],
            before=data["before"],
            after=data["after"],
            changes=tuple(
                FieldChange(c["field"], c["before"], c["after"]) for c in data["changes"]
            ),
            stripe_id=data["stripe_id"],
            details=data.get("details", {}),
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large acyclic structure is built.

    Reading, planning and writing 20,000 subscriptions allocates millions of
    small objects that live on; each full collection rescans them all (about
    half the time of a plan). Nothing built here forms cycles, so nothing is
    lost: reference counting frees it, and the collector resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


EXPANDED_LEVELS = 5
"""JSON nesting levels laid out one entry per line; deeper values (a migration's
per-subscription rows, a tier) take one line each."""


def _as_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _json_encoder(*, item_separator: str = ",", key_separator: str = ":") -> Callable[[Any], str]:
    """A reusable sorted-keys, non-ASCII-kept JSON encoder for acyclic data.

    ``json.dumps`` builds an encoder per call, which dominates when it is called
    once per subscription; this builds the C encoder once (pure Python where the
    C one is missing). Mappings that are not dicts become dicts, other values
    their text.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        fallback = json.JSONEncoder(
            sort_keys=True,
            ensure_ascii=False,
            default=_as_dict,
            separators=(item_separator, key_separator),
        )
        return fallback.encode
    chunks = make(
        None,  # no cycle check: plans are trees
        _as_dict,
        json.encoder.encode_basestring,
        None,
        key_separator,
        item_separator,
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan (floats never reach a plan)
    )
    return lambda value: "".join(chunks(value, 0))


_compact = _json_encoder(item_separator=", ", key_separator=": ")
_encode_key: Callable[[str], str] = json.encoder.encode_basestring
_canonical_json = _json_encoder()


def dump_json(value: Any) -> str:
    """Sorted, two-space-indented JSON in time linear in its size.

    The outer levels are laid out one entry per line; each value deeper than
    ``EXPANDED_LEVELS`` is one line written by the C encoder, which the standard
    library uses only without ``indent``.
    """
    out: list[str] = []
    _lay_out(value, 0, out)
    return "".join(out)


def _lay_out(value: Any, level: int, out: list[str]) -> None:
    inner = "\n" + "  " * (level + 1)
    if level < EXPANDED_LEVELS and isinstance(value, Mapping) and value:
        out.append("{")
        for index, key in enumerate(sorted(value, key=str)):
            out.append(("," if index else "") + inner + _encode_key(str(key)))
            out.append(": ")
            _lay_out(value[key], level + 1, out)
        out.append("\n" + "  " * level + "}")
    elif level < EXPANDED_LEVELS and isinstance(value, (list, tuple)) and value:
        out.append("[")
        for index, item in enumerate(value):
            out.append(("," if index else "") + inner)
            _lay_out(item, level + 1, out)
        out.append("\n" + "  " * level + "]")
    else:
        out.append(_compact(value))


def fingerprint(value: Any) -> str:
    """A stable hash of JSON-able data (key order does not matter; mappings of any kind,
    tuples as lists, other values by their text). Hot: once per subscription read."""
    canonical = _canonical_json(value)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Plan:
    """Every change apply will make, with evidence of what it was made from.

    ``config_hash`` identifies the billing.yaml (by meaning), ``snapshot_fingerprint``
    the account state that was read. ``unmanaged`` lists objects in the account
    that billing.yaml does not declare: shown, never touched. ``revenue`` is the
    revenue preview's document (``plan --revenue``, see :mod:`reconciler.revenue`),
    kept beside the plan and never part of it: :meth:`without_revenue` is what a
    saved plan's integrity check compares, and apply never reads it.
    """

    config_hash: str
    snapshot_fingerprint: str
    changes: tuple[ResourceChange, ...] = ()
    unmanaged: tuple[str, ...] = ()
    format_version: str = FORMAT_VERSION
    revenue: Mapping[str, Any] | None = None

    @property
    def actionable(self) -> tuple[ResourceChange, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    def counts(self) -> Counter[Action]:
        return Counter(c.action for c in self.actionable)

    def summary(self) -> str:
        """``N to create, N to update, N to replace, N to archive`` (+ deletions and
        migrations when present)."""
        counts = self.counts()
        parts = [
            f"{counts[Action.CREATE]} to create",
            f"{counts[Action.UPDATE] + counts[Action.REACTIVATE]} to update",
            f"{counts[Action.REPLACE]} to replace",
            f"{counts[Action.ARCHIVE] + counts[Action.DEACTIVATE]} to archive",
        ]
        if counts[Action.DELETE]:
            parts.append(f"{counts[Action.DELETE]} to delete")
        if counts[Action.MIGRATE]:
            parts.append(f"{counts[Action.MIGRATE]} to migrate")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "format_version": self.format_version,
            "config_hash": self.config_hash,
            "snapshot_fingerprint": self.snapshot_fingerprint,
            "summary": {
                a.value: counts[a]
                for a in Action
                if a is not Action.NOOP and (a is not Action.DELETE or counts[a])
            },  # ``delete`` only when a plan deletes: a plan without one reads as before
            "has_changes": self.has_changes,
            "changes": [c.to_json() for c in self.changes],
            "unmanaged": list(self.unmanaged),
            **({"revenue": self.revenue} if self.revenue is not None else {}),
        }

    def without_revenue(self) -> Plan:
        """The plan alone: what apply derives again and a saved plan must match."""
        return self if self.revenue is None else dataclasses.replace(self, revenue=None)

    def dumps(self) -> str:
        """The plan file's text: deterministic, sorted keys, one trailing newline."""
        with gc_paused():
            return dump_json(self.to_json()) + "\n"

    def as_data(self) -> dict[str, Any]:
        """The plan as plain JSON data (dicts, lists), exactly as its file reads back."""
        data: dict[str, Any] = json.loads(self.dumps())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"plan format_version {version!r} is not supported (expected {FORMAT_VERSION!r})"
            )
        return cls(
            config_hash=data["config_hash"],
            snapshot_fingerprint=data["snapshot_fingerprint"],
            changes=tuple(ResourceChange.from_json(c) for c in data["changes"]),
            unmanaged=tuple(data.get("unmanaged", ())),
            format_version=version,
            revenue=data.get("revenue"),
        )
