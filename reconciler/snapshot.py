"""The account as read: every object that can matter, reduced to its essence.

``live.py`` fills a Snapshot through the gateway; tests build them by hand.
Keys are identities: product id, meter event name, price lookup key, alert
``(event name, title)``, portal configuration name. Pure values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.live_subscriptions import (
    subscription_evidence,
)
from reconciler.migrations import (
    MigrationSnapshot,
)
from reconciler.plan import fingerprint

__all__ = ["LiveObject", "Snapshot"]


@dataclass(frozen=True)
class LiveObject:
    """One Stripe object: its id, its essence, and whether stripe-reconcile made it.

    ``managed`` is read from ``managed_by`` metadata; objects without metadata
    (meters, alerts) are always considered managed once declared.
    """

    stripe_id: str
    essence: Mapping[str, Any]
    managed: bool = True

    @property
    def active(self) -> bool:
        return bool(self.essence.get("active", True))


@dataclass(frozen=True)
class Snapshot:
    """What the account holds.

    ``anonymous_prices`` are active prices without a lookup key that
    stripe-reconcile did not make; ``orphan_prices`` are active ones it did
    make: a replace moves the lookup key to the new price before archiving
    the old, so an orphan is a replace interrupted between the two.
    ``unkeyed`` holds both kinds by id, for prices billing.yaml adopts by id.
    ``predecessors`` are replaced prices kept active, by the lookup key that
    replaced them, while their subscriptions move (``existing_subscriptions:
    migrate``); ``subscribers`` counts the live subscriptions on each price a plan
    would retire, or keeps for them.
    """

    products: Mapping[str, LiveObject] = field(default_factory=dict)
    meters: Mapping[str, LiveObject] = field(default_factory=dict)
    prices: Mapping[str, LiveObject] = field(default_factory=dict)
    alerts: Mapping[tuple[str, str], LiveObject] = field(default_factory=dict)
    features: Mapping[str, LiveObject] = field(default_factory=dict)
    portal_configurations: Mapping[str, LiveObject] = field(default_factory=dict)
    product_features: Mapping[str, LiveObject] = field(default_factory=dict)
    """Features attached to products, by ``<product id>/<feature lookup key>`` (the
    feature's id when it is not an active feature): read for products that declare
    ``features:`` only."""
    coupons: Mapping[str, LiveObject] = field(default_factory=dict)
    promotion_codes: Mapping[str, LiveObject] = field(default_factory=dict)
    duplicate_alerts: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    anonymous_prices: tuple[str, ...] = ()
    orphan_prices: tuple[str, ...] = ()
    unkeyed: Mapping[str, LiveObject] = field(default_factory=dict)
    predecessors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subscribers: Mapping[str, int] = field(default_factory=dict)
    migrations: Mapping[str, MigrationSnapshot] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of everything read: any change by anyone gives another fingerprint."""
        return fingerprint(self.evidence())

    def evidence(self) -> dict[str, Any]:
        """The snapshot as sorted JSON-able data, for fingerprints and stale-plan reports."""

        def section(objects: Mapping[Any, LiveObject]) -> dict[str, Any]:
            return {
                "/".join(key) if isinstance(key, tuple) else key: {
                    "id": obj.stripe_id,
                    "managed": obj.managed,
                    "essence": obj.essence,
                }
                for key, obj in sorted(objects.items())
            }

        evidence: dict[str, Any] = {
            "products": section(self.products),
            "meters": section(self.meters),
            "prices": section(self.prices),
            "alerts": section(self.alerts),
            "duplicate_alerts": {
                "/".join(key): list(ids) for key, ids in sorted(self.duplicate_alerts.items())
            },
            "anonymous_prices": sorted(self.anonymous_prices),
            "orphan_prices": sorted(self.orphan_prices),
            "unkeyed": section(self.unkeyed),
            "migrations": {
                name: _migration_evidence(migration)
                for name, migration in sorted(self.migrations.items())
            },
        }
        if self.features:  # absent when there are none: older fingerprints stay the same
            evidence["features"] = section(self.features)
        if self.portal_configurations:  # likewise
            evidence["portal_configurations"] = section(self.portal_configurations)
        if self.predecessors:  # likewise
            evidence["predecessors"] = {k: list(v) for k, v in sorted(self.predecessors.items())}
        if self.subscribers:  # likewise
            evidence["subscribers"] = dict(sorted(self.subscribers.items()))
        if self.product_features:  # likewise
            evidence["product_features"] = section(self.product_features)
        if self.coupons:  # likewise
            evidence["coupons"] = section(self.coupons)
        if self.promotion_codes:  # likewise
            evidence["promotion_codes"] = section(self.promotion_codes)
        return evidence


def _migration_evidence(migration: MigrationSnapshot) -> dict[str, Any]:
    """One migration's evidence: each subscription by its digest, the rest as read."""
    evidence = _pair_evidence(migration)
    if migration.also:  # absent for one pair: older fingerprints stay the same
        evidence["also"] = [_pair_evidence(pair) for pair in migration.also]
    return evidence


def _pair_evidence(migration: MigrationSnapshot) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "from_price_id": migration.from_price_id,
        "from_price_active": migration.from_price_active,
        "from_aggregation": migration.from_aggregation,
        "from_metered": migration.from_metered,
        "to_price_id": migration.to_price_id,
        "moved": sorted(migration.moved),
        "subscriptions": {s.id: subscription_evidence(s) for s in migration.subscriptions},
        "usage": {
            sub: None if pair is None else [str(pair[0]), str(pair[1])]
            for sub, pair in sorted(migration.usage.items())
        },
    }
    for side in ("from_tax_behavior", "to_tax_behavior"):  # when set: older fingerprints hold
        if getattr(migration, side) is not None:
            evidence[side] = getattr(migration, side)
    return evidence
