"""Writes as values: the steps apply runs, and the ids they resolve late.

A step names its phase, the change it serves, a stable name (for its
idempotency key), and its path and parameters, resolved when it runs because
they may need ids of objects created by earlier steps. Building steps is
pure (each kind's spec does it, see ``reconciler.kinds``); running them is
``apply.py``'s. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "PHASE_ALERTS",
    "PHASE_CATALOG",
    "PHASE_DEFAULTS",
    "PHASE_MIGRATIONS",
    "PHASE_PRICES",
    "PHASE_RETIRE",
    "PHASE_UNSET_DEFAULTS",
    "SCHEDULE",
    "Ids",
    "Resolver",
    "Step",
    "at",
    "const",
]

PHASE_CATALOG = 1
PHASE_PRICES = 2
PHASE_DEFAULTS = 3
PHASE_ALERTS = 4
PHASE_MIGRATIONS = 5
PHASE_UNSET_DEFAULTS = 6
PHASE_RETIRE = 7

SCHEDULE = "schedule"
"""The namespace of subscription schedules' ids, by subscription."""


class Ids:
    """Stripe ids known so far, per namespace (a kind's value, or ``schedule``) and
    identity: from the snapshot, then from objects this apply made."""

    def __init__(self, known: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.known: dict[str, dict[str, str]] = {
            namespace: dict(ids) for namespace, ids in (known or {}).items()
        }

    def remember(self, namespace: str, identity: str, stripe_id: str) -> None:
        self.known.setdefault(namespace, {})[identity] = stripe_id

    def of(self, namespace: str, identity: str) -> str:
        """The id of ``identity`` in ``namespace`` (KeyError when none is known)."""
        return self.known[namespace][identity]

    def get(self, namespace: str, identity: str, default: str | None = None) -> str | None:
        return self.known.get(namespace, {}).get(identity, default)


Resolver = Callable[[Ids], Mapping[str, Any]]


@dataclass(frozen=True)
class Step:
    """One write: its phase, the change it serves, a stable name (for its idempotency
    key), and its path and parameters, resolved late because they may need ids of
    objects created by earlier steps."""

    phase: int
    address: str
    name: str
    path: Callable[[Ids], str]
    params: Resolver
    remember: tuple[str, str] | None = None  # (namespace, identity) of the object made
    stripe_version: str | None = None
    evidence: str = ""  # the object as planned; set by plan_steps for the whole change
    method: Literal["post", "delete"] = "post"
    """``delete`` for the few objects Stripe retires only by deleting (coupons, a
    product's attached features); their parameters are empty."""


def const(params: Mapping[str, Any]) -> Resolver:
    """Parameters known when the plan is made."""
    return lambda _ids: params


def at(path: str) -> Callable[[Ids], str]:
    """A path known when the plan is made."""
    return lambda _ids: path
