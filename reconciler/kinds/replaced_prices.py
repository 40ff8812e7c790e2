"""What becomes of the subscriptions on a price a plan replaces or archives.

Stripe never moves a subscription by itself: a replaced or archived price keeps
its subscriptions. A plan counts them (the live read, for the prices it would
retire) and says so on the price's line; the replacing price's
``existing_subscriptions`` decides: ``grandfather`` keeps them there, ``migrate``
moves them to the new price at their period end through a generated migration
(:meth:`reconciler.kinds.price.PriceSpec.migrations`). Then the old price is not
archived: it is marked with the lookup key that replaced it (before the key
moves, so a crash never leaves it looking like an interrupted replace) and kept
active, because a schedule phase may not name an inactive price, until none of its
subscriptions is left; then a plan archives it.

Both writes of such a replace (the mark, then the create that moves the key) carry
the evidence of the old price as it was before the mark: an apply that reads the
account between another apply's two writes of the same replace sees the price
marked but still holding the key, plans the same replace, and so sends the same
requests under the same keys, which Stripe answers from the first apply's,
instead of creating a second price that takes the key and leaves the first one,
named by the schedules just written, an orphan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reconciler.kinds import Kind
from reconciler.model import Price
from reconciler.plan import Action, ActionReason, FieldChange, ResourceChange, fingerprint
from reconciler.snapshot import Snapshot

__all__ = [
    "REPLACED_BY_KEY",
    "existing_migration",
    "predecessor_change",
    "unmarked_evidence",
    "with_subscribers",
]

REPLACED_BY_KEY = "stripe_reconcile_replaced_by"
"""Metadata of a replaced price kept active while its subscriptions move: the lookup key
that replaced it. Written before the key moves, so a crash never leaves it an orphan."""


def existing_migration(lookup_key: str) -> str:
    """The name of the migration ``existing_subscriptions: migrate`` generates."""
    return f"{lookup_key}.existing"


def _subscriptions(count: int) -> str:
    return f"{count} subscription{'s' if count != 1 else ''}"


def with_subscribers(change: ResourceChange, price: Price, snapshot: Snapshot) -> ResourceChange:
    """A replace or archive of a price subscriptions hold, saying what becomes of them."""
    if change.action not in (Action.REPLACE, Action.ARCHIVE) or change.stripe_id is None:
        return change
    count = snapshot.subscribers.get(change.stripe_id, 0)
    if not count:
        return change
    decision = price.existing_subscriptions
    details: dict[str, Any] = {
        **change.details,
        "subscribers": count,
        "existing_subscriptions": decision,
    }
    if change.action is Action.REPLACE and decision == "migrate":
        fate = (
            f"move to the new price at their period end "
            f"(migration.{existing_migration(price.lookup_key)}); the old price stays active "
            "until none is left on it"
        )
        details["keep_old"] = True
    elif decision == "grandfather":
        fate = "stay on the archived price (grandfathered)"
    else:
        fate = (
            "stay on the archived price: declare existing_subscriptions (grandfather to keep "
            "them there, or migrate to move them) to decide"
        )
    reason = f"{change.reason}; {_subscriptions(count)} {fate}"
    return dataclasses.replace(change, reason=reason, details=details)


def predecessor_change(address: str, old: str, price: Price, snapshot: Snapshot) -> ResourceChange:
    """A replaced price kept active for its subscriptions: kept while some are left to
    move, archived once none is (or once they are no longer to move)."""
    count = snapshot.subscribers.get(old, 0)
    live = {"active": True}
    if count and price.existing_subscriptions == "migrate" and price.active:
        return ResourceChange(
            address,
            Kind.PRICE,
            Action.NOOP,
            f"kept active until its {_subscriptions(count)} have moved to {price.lookup_key} "
            f"(migration.{existing_migration(price.lookup_key)})",
            live,
            live,
            (),
            old,
            {"subscribers": count},
            ActionReason.KEPT_FOR_SUBSCRIBERS,
        )
    if count:
        why = f"{_subscriptions(count)} stay on it (existing_subscriptions is no longer migrate)"
    else:
        why = "none of its subscriptions is left on it"
    return ResourceChange(
        address,
        Kind.PRICE,
        Action.ARCHIVE,
        f"replaced earlier by {price.lookup_key}; {why}",
        live,
        {"active": False},
        (FieldChange("active", True, False),),
        old,
        {"subscribers": count} if count else {},
        ActionReason.REPLACED_EARLIER,
    )


def unmarked_evidence(change: ResourceChange, lookup_key: str) -> str:
    """The evidence of a replace that keeps the old price, as if the old price were not
    marked yet (see the module docstring): the mark is this replace's own first write."""
    before = change.before
    metadata = (before or {}).get("metadata")
    if before is None or not isinstance(metadata, Mapping):
        return change.evidence
    if metadata.get(REPLACED_BY_KEY) != lookup_key:
        return change.evidence
    unmarked = {k: v for k, v in metadata.items() if k != REPLACED_BY_KEY}
    return fingerprint((change.address, change.stripe_id, {**before, "metadata": unmarked}))
