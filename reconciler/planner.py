"""Pure planning: build_plan(desired, snapshot) -> Plan.

Each declared object is compared with its live counterpart by essence:
absent -> create; only updatable fields differ -> update; a fixed field
differs -> replace (create new, move lookup key / default price /
dependants, then archive the old); declared inactive -> archive or
deactivate. A meter cannot be replaced: its event name belongs to it for
good, so a change to a fixed meter field is a conflict that names the way
out (a new event name, prices moved to it).
Objects the account holds but billing.yaml does not declare are listed as
unmanaged and never touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from deepdiff import DeepDiff

from reconciler.errors import PlanError
from reconciler.essence import (
    ALERT_FIXED,
    METER_FIXED,
    PRICE_UPDATABLE,
    alert_essence,
    meter_essence,
    price_essence,
    product_essence,
)
from reconciler.migrations import plan_migration
from reconciler.model import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    Desired,
    Migration,
    alert_address,
)
from reconciler.plan import Action, FieldChange, Plan, ResourceChange, gc_paused
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.yamlsource import Path as YamlPath
from reconciler.yamlsource import format_path

__all__ = ["SourcePlanError", "build_plan"]


class SourcePlanError(PlanError):
    """Plan problems that belong to a place in billing.yaml, each a YAML path and a
    message, with any others after them. ``str()`` names the file without a line;
    :meth:`located` adds line and column from a ``locate`` function (the CLI's)."""

    def __init__(
        self,
        located: Iterable[tuple[YamlPath, str]],
        others: Iterable[str] = (),
        source: str = "billing.yaml",
    ) -> None:
        self.problems = tuple(located)
        self.others = tuple(others)
        self.source = source
        super().__init__(self.located())

    def located(self, locate: Callable[[YamlPath], tuple[int, int] | None] | None = None) -> str:
        """One line per problem: ``billing.yaml:57:7: migrations.x.from_price: ...``."""
        lines = []
        for path, message in self.problems:
            where = locate(path) if locate is not None else None
            at = f"{self.source}:{where[0]}:{where[1]}" if where else self.source
            lines.append(f"{at}: {format_path(path)}: {message}")
        return "\n".join([*lines, *self.others])


def _missing_source(migration: Migration) -> tuple[YamlPath, str]:
    """A migration whose legacy price the account does not hold: it would move nothing."""
    kind = "price id" if migration.from_price.startswith("price_") else "lookup key"
    return (
        ("migrations", migration.name, "from_price"),
        f"price '{migration.from_price}' is not in the account; nothing would migrate. "
        f"Check the {kind}, or remove the migration if it is done.",
    )


def build_plan(desired: Desired, snapshot: Snapshot) -> Plan:
    """Compare desired with live; raise PlanError on conflicts needing a human decision."""
    with gc_paused():
        return _build_plan(desired, snapshot)


def _build_plan(desired: Desired, snapshot: Snapshot) -> Plan:
    conflicts: list[str] = []
    changes: list[ResourceChange] = []
    changes += _plan_products(desired, snapshot)
    changes += _plan_meters(desired, snapshot, conflicts)
    changes += _plan_prices(desired, snapshot, conflicts)
    adopted = {p.id for p in desired.prices if p.id is not None}
    changes += [
        ResourceChange(
            f"price.{price_id}",
            "price",
            Action.ARCHIVE,
            "left over from an interrupted replace (managed, lost its lookup key)",
            {"active": True},
            {"active": False},
            (FieldChange("active", True, False),),
            price_id,
        )
        for price_id in snapshot.orphan_prices
        if price_id not in adopted
    ]
    changes += _plan_alerts(desired, snapshot)
    missing: list[tuple[YamlPath, str]] = []
    for migration in desired.migrations:
        read = snapshot.migrations.get(migration.name)
        if read is None:
            changes.append(ResourceChange(migration.address, "migration", Action.NOOP, "not read"))
        elif read.from_price_id is None:  # archived or fully moved prices are still read
            missing.append(_missing_source(migration))
        else:
            changes.append(plan_migration(migration, read))
    if missing:
        raise SourcePlanError(missing, conflicts)
    if conflicts:
        raise PlanError("\n".join(conflicts))
    return Plan(
        config_hash=desired.config_hash(),
        snapshot_fingerprint=snapshot.fingerprint(),
        changes=tuple(changes),
        unmanaged=_unmanaged(desired, snapshot),
    )


def _field_changes(
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


def _root(field: str) -> str:
    """The top-level field of a change path: ``tiers[0].up_to`` -> ``tiers``."""
    return field.split(".", 1)[0].split("[", 1)[0]


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


def _marked(after: Mapping[str, Any]) -> dict[str, Any]:
    """The state of an object stripe-reconcile creates: its metadata carries the marker.

    Only created objects get it; an existing object is compared on the metadata
    keys billing.yaml names, so adopting one writes nothing it does not declare.
    """
    if "metadata" not in after:
        return dict(after)
    return {**after, "metadata": {**after["metadata"], MANAGED_BY_KEY: MANAGED_BY_VALUE}}


def _default_prices(desired: Desired) -> dict[str, str]:
    return {p.product: p.lookup_key for p in desired.prices if p.default}


def _absent(address: str, kind: str, active: bool, after: Mapping[str, Any]) -> ResourceChange:
    """A declared object the account does not have: create it, unless declared retired."""
    if active:
        return ResourceChange(
            address, kind, Action.CREATE, "not in the account", None, _marked(after)
        )
    return ResourceChange(address, kind, Action.NOOP, "declared inactive and absent")


def _existing(
    address: str,
    kind: str,
    action: Action,
    reason: str,
    *,
    live: LiveObject,
    after: Mapping[str, Any],
    diffs: tuple[FieldChange, ...],
    details: Mapping[str, Any] | None = None,
) -> ResourceChange:
    return ResourceChange(
        address, kind, action, reason, live.essence, after, diffs, live.stripe_id, details or {}
    )


def _plan_products(desired: Desired, snapshot: Snapshot) -> list[ResourceChange]:
    defaults = _default_prices(desired)
    changes: list[ResourceChange] = []
    for product in desired.products:
        after = product_essence(product, defaults.get(product.id))
        live = snapshot.products.get(product.id)
        if live is None:
            changes.append(_absent(product.address, "product", product.active, after))
            continue
        diffs = _field_changes(live.essence, after, after.keys())
        changes.append(
            _update_or_archive(product.address, "product", live=live, after=after, diffs=diffs)
        )
    return changes


def _update_or_archive(
    address: str,
    kind: str,
    *,
    live: LiveObject,
    after: Mapping[str, Any],
    diffs: tuple[FieldChange, ...],
    details: Mapping[str, Any] | None = None,
) -> ResourceChange:
    """Shared tail of products and prices: no-op, update, or archive."""
    if not diffs:
        action, reason = Action.NOOP, "matches"
    elif live.active and not after.get("active", True):
        action, reason = Action.ARCHIVE, "declared active: false"
    elif not live.managed:
        changed = ", ".join(d.field for d in diffs)
        action, reason = (
            Action.UPDATE,
            f"changed: {changed} (adopted: not created by stripe-reconcile)",
        )
    else:
        action, reason = Action.UPDATE, "changed: " + ", ".join(d.field for d in diffs)
    return _existing(
        address, kind, action, reason, live=live, after=after, diffs=diffs, details=details
    )


def _plan_switchable(
    address: str,
    kind: str,
    live: LiveObject,
    after: Mapping[str, Any],
    *,
    fixed_fields: tuple[str, ...],
) -> ResourceChange:
    """Meters and alerts: fixed fields replace, ``active`` switches, the rest updates."""
    active = bool(after["active"])
    diffs = _field_changes(live.essence, after, after.keys())
    fixed = [d.field for d in diffs if _root(d.field) in fixed_fields]
    if active and fixed:
        action, reason = Action.REPLACE, f"fixed at creation: {', '.join(fixed)}"
    elif live.active and not active:
        action, reason = Action.DEACTIVATE, "declared active: false"
    elif not live.active and active:
        action, reason = Action.REACTIVATE, "declared active but inactive in the account"
    elif diffs and not fixed:
        action, reason = Action.UPDATE, "changed: " + ", ".join(d.field for d in diffs)
    else:
        action, reason = Action.NOOP, "matches" if not diffs else "inactive; not replaced"
    return _existing(address, kind, action, reason, live=live, after=after, diffs=diffs)


def _plan_meters(
    desired: Desired, snapshot: Snapshot, conflicts: list[str]
) -> list[ResourceChange]:
    changes: list[ResourceChange] = []
    for meter in desired.meters:
        after = meter_essence(meter)
        live = snapshot.meters.get(meter.event_name)
        if live is None:
            changes.append(_absent(meter.address, "meter", meter.active, after))
            continue
        fixed = [
            f"{name} {live.essence.get(name)!r} -> {after[name]!r}"
            for name in METER_FIXED
            if live.essence.get(name) != after[name]
        ]
        if fixed and meter.active:
            conflicts.append(
                f"{meter.address}: {', '.join(fixed)}: a meter's formula and payload keys are "
                f"fixed at creation, and an event name belongs to one meter for good "
                f"({live.stripe_id}). Declare a new meter with a new event_name, point the "
                f"prices and alerts at it, and mark '{meter.event_name}' active: false"
            )
        else:
            changes.append(
                _plan_switchable(
                    meter.address,
                    "meter",
                    live,
                    after,
                    fixed_fields=METER_FIXED,
                )
            )
    return changes


def _plan_prices(
    desired: Desired, snapshot: Snapshot, conflicts: list[str]
) -> list[ResourceChange]:
    defaults = _default_prices(desired)
    changes: list[ResourceChange] = []
    for price in desired.prices:
        after = price_essence(price)
        live = snapshot.prices.get(price.lookup_key)
        address = price.address
        by_id = live is None and price.id is not None and price.id in snapshot.unkeyed
        if by_id and price.id is not None:
            live = snapshot.unkeyed[price.id]
        if live is None:
            changes.append(_absent(address, "price", price.active, after))
            continue
        adopted = price.adopt or price.id == live.stripe_id  # named by id: taken over
        if not live.managed and not adopted:
            conflicts.append(
                f"{address}: lookup key '{price.lookup_key}' belongs to {live.stripe_id}, which "
                "stripe-reconcile did not create; set adopt: true on this price to take it over, "
                "or choose another lookup_key"
            )
            continue
        details = _price_details(price.product, price.lookup_key, live, snapshot, defaults)
        diffs = _field_changes(live.essence, after, after.keys())
        if by_id:  # taken over by id: it gets its lookup key
            diffs = (FieldChange("lookup_key", None, price.lookup_key), *diffs)
        fixed = [d.field for d in diffs if _root(d.field) not in PRICE_UPDATABLE]
        if price.active and fixed:
            reason = f"fixed at creation: {', '.join(fixed)}"
            changes.append(
                _existing(
                    address,
                    "price",
                    Action.REPLACE,
                    reason,
                    live=live,
                    after=_marked(after),  # the new price is one stripe-reconcile creates
                    diffs=diffs,
                    details=details,
                )
            )
            continue
        if not price.active:
            # An archived price is never replaced: only its updatable fields matter.
            diffs = tuple(d for d in diffs if _root(d.field) in PRICE_UPDATABLE)
        changes.append(
            _update_or_archive(
                address, "price", live=live, after=after, diffs=diffs, details=details
            )
        )
    return changes


def _price_details(
    product: str,
    lookup_key: str,
    live: LiveObject,
    snapshot: Snapshot,
    defaults: Mapping[str, str],
) -> dict[str, Any]:
    """Default-price bookkeeping apply needs when this price is replaced or archived.

    The product that matters is the one the live price is on: a price moved to
    another product leaves its old product, which may no longer be declared,
    pointing at it, and Stripe refuses to archive a product's default price.
    """
    home = str(live.essence.get("product") or product)
    live_home = snapshot.products.get(home)
    if live_home is None or live_home.essence.get("default_price") != lookup_key:
        return {}
    if home != product:
        if defaults.get(home) is not None:
            return {}  # the old product's declared default moves first
        return {"unset_default_of": home}
    if defaults.get(product) == lookup_key:
        return {"default_of": product}
    return {"default_of": product, "default_moves_to": defaults.get(product)}


def _renamed_from(desired: Desired, snapshot: Snapshot) -> dict[tuple[str, Any], list[str]]:
    """Active alerts billing.yaml does not declare, on a meter it declares, by (meter,
    customer): a declared alert new to the account beside one of them is likely a rename."""
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


def _rename_hint(undeclared: list[str]) -> str:
    """The second line of a new alert's reason when it may replace another."""
    them = ", ".join(undeclared)
    return (
        f"is this a rename? {them} on the same meter and customer is not declared and stays "
        "active (alerts are identified by meter and title); to retire it, declare it with its "
        "title and active: false"
    )


def _plan_alerts(desired: Desired, snapshot: Snapshot) -> list[ResourceChange]:
    changes: list[ResourceChange] = []
    renamed_from = _renamed_from(desired, snapshot)
    for alert in desired.alerts:
        after = alert_essence(alert)
        live = snapshot.alerts.get((alert.meter, alert.title))
        if live is None:
            change = _absent(alert.address, "alert", alert.active, after)
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
                    "alert",
                    Action.ARCHIVE,
                    f"a second alert under the declared title ({live.stripe_id} is kept): "
                    "two writers created one each",
                    stripe_id=duplicate,
                )
            )
        changes.append(
            _plan_switchable(
                alert.address,
                "alert",
                live,
                after,
                fixed_fields=ALERT_FIXED,
            )
        )
    return changes


def _unmanaged(desired: Desired, snapshot: Snapshot) -> tuple[str, ...]:
    """Active objects in the account that billing.yaml does not declare, sorted."""
    found: list[str] = []
    products = {p.id for p in desired.products}
    found += [
        f"product.{k}" for k, o in snapshot.products.items() if k not in products and o.active
    ]
    meters = {m.event_name for m in desired.meters}
    found += [f"meter.{k}" for k, o in snapshot.meters.items() if k not in meters and o.active]
    prices = {p.lookup_key for p in desired.prices}
    found += [f"price.{k}" for k, o in snapshot.prices.items() if k not in prices and o.active]
    adopted = {p.id for p in desired.prices if p.id is not None}
    found += [
        f"price {price_id} (no lookup key)"
        for price_id in snapshot.anonymous_prices
        if price_id not in adopted
    ]
    alerts = {(a.meter, a.title) for a in desired.alerts}
    found += [
        alert_address(*key) for key, o in snapshot.alerts.items() if key not in alerts and o.active
    ]
    return tuple(sorted(found))
