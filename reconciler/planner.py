"""Pure planning: build_plan(desired, snapshot) -> Plan.

Each declared object is compared with its live counterpart by essence:
absent -> create; only updatable fields differ -> update; a fixed field
differs -> replace (create new, move lookup key / default price /
dependants, then archive the old); declared inactive -> archive or
deactivate. A meter cannot be replaced: its event name belongs to it for
good, so a change to a fixed meter field is a conflict that names the way
out (a new event name, prices moved to it).
Objects the account holds but billing.yaml does not declare are listed as
unmanaged and never touched. Each kind's spec (``reconciler.kinds``) plans its
own objects; this module runs them in registry order, then the migrations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.errors import PlanError
from reconciler.kinds import Kind
from reconciler.kinds.registry import REGISTRY
from reconciler.migrations import MigrationSnapshot, plan_migration
from reconciler.model import Desired, Migration, terms_text
from reconciler.plan import Action, ActionReason, Plan, ResourceChange, gc_paused
from reconciler.snapshot import Snapshot
from reconciler.yamlsource import Path as YamlPath
from reconciler.yamlsource import format_path

__all__ = ["SourcePlanError", "build_plan", "every_migration"]


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


def _source_path(migration: Migration, from_price: str) -> YamlPath:
    """Where billing.yaml names a migration's ``from`` price."""
    if migration.also:
        return ("migrations", migration.name, "prices", from_price)
    return ("migrations", migration.name, "from_price")


def _missing_source(migration: Migration, from_price: str) -> tuple[YamlPath, str]:
    """A migration's legacy price the account does not hold: nothing would move off it."""
    kind = "price id" if from_price.startswith("price_") else "lookup key"
    return (
        _source_path(migration, from_price),
        f"price '{from_price}' is not in the account; nothing would migrate. "
        f"Check the {kind}, or remove the migration if it is done.",
    )


def _unmovable(migration: Migration, read: MigrationSnapshot) -> list[tuple[YamlPath, str]]:
    """A migration a price's ``existing_subscriptions: migrate`` asks for whose new price
    bills another currency or interval than the old (a replace may change either): no
    subscription can move, said at the price that asked."""
    if migration.declared_by is None or migration.paused:
        return []
    for pair in (read, *read.also):
        changed = pair.changed_terms
        if changed is not None:
            before, after = changed
            return [
                (
                    migration.declared_by,
                    f"'{migration.to_price}' bills {terms_text(after)}, but its subscriptions "
                    f"hold {pair.from_price_id}, which bills {terms_text(before)}: Stripe keeps a "
                    "subscription's currency and interval, so migrate cannot move them; "
                    "declare existing_subscriptions: grandfather",
                )
            ]
    return []


def _aliases(
    migration: Migration,
    read: MigrationSnapshot,
    sources: dict[str, tuple[Migration, str]],
    declared: set[str],
    replaced: frozenset[str],
) -> list[tuple[YamlPath, str]]:
    """Prices billing.yaml names twice once read (a lookup key and its id): a ``from``
    price that is its own target, or that another pair or migration moves already
    (``sources``: each ``from`` price's id, by the first migration moving it). A
    migration ``existing_subscriptions: migrate`` generates is named through the declared
    migration it collides with."""
    problems: list[tuple[YamlPath, str]] = []
    for (from_price, to_price), pair in zip(migration.pairs, (read, *read.also), strict=False):
        found = pair.from_price_id
        if found is None:
            continue
        if found == pair.to_price_id or (pair.from_is_target and found not in replaced):
            problems.append(
                (
                    _source_path(migration, from_price),
                    f"'{from_price}' is the price '{to_price}' itself ({found}): nothing "
                    "would move",
                )
            )
            continue
        if migration.paused and migration.name not in declared:
            continue  # a generated migration no longer wanted only releases its schedules
        first = sources.setdefault(found, (migration, from_price))
        if first[0] is migration and first[1] == from_price:
            continue
        other, named = first
        if migration.name in declared:
            where, message = (
                _source_path(migration, from_price),
                f"'{from_price}' is the price {found}, which migration '{other.name}' moves "
                f"already (as '{named}')",
            )
        else:
            where, message = (
                _source_path(other, named),
                f"'{named}' is the price {found}, whose subscriptions migration "
                f"'{migration.name}' (existing_subscriptions: migrate on '{migration.to_price}')"
                " moves too: keep one of the two",
            )
        problems.append((where, message))
    return problems


def every_migration(desired: Desired, snapshot: Snapshot) -> tuple[Migration, ...]:
    """billing.yaml's migrations, then those its kinds ask for (a price moving the
    subscriptions of the price it replaces)."""
    generated = tuple(m for spec in REGISTRY for m in spec.migrations(desired, snapshot))
    return (*desired.migrations, *generated)


def build_plan(desired: Desired, snapshot: Snapshot) -> Plan:
    """Compare desired with live; raise PlanError on conflicts needing a human decision."""
    with gc_paused():
        return _build_plan(desired, snapshot)


def _build_plan(desired: Desired, snapshot: Snapshot) -> Plan:
    conflicts: list[str] = []
    changes: list[ResourceChange] = []
    for spec in REGISTRY:
        changes += spec.plan(desired, snapshot, conflicts)
    missing: list[tuple[YamlPath, str]] = []
    replaced = frozenset(c.stripe_id for c in changes if c.action is Action.REPLACE and c.stripe_id)
    sources: dict[str, tuple[Migration, str]] = {}
    declared = {m.name for m in desired.migrations}
    for migration in every_migration(desired, snapshot):
        read = snapshot.migrations.get(migration.name)
        if read is None:
            changes.append(
                ResourceChange(
                    migration.address,
                    Kind.MIGRATION,
                    Action.NOOP,
                    "not read",
                    because=ActionReason.NOT_READ,
                )
            )
        else:
            absent = [  # archived or fully moved prices are still read
                _missing_source(migration, from_price)
                for (from_price, _to), pair in zip(
                    migration.pairs, (read, *read.also), strict=False
                )
                if pair.from_price_id is None
            ]
            missing += absent
            missing += _aliases(migration, read, sources, declared, replaced)
            unmovable = _unmovable(migration, read)
            missing += unmovable
            if not absent and not unmovable:
                changes.append(plan_migration(migration, read, replaced))
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


def _unmanaged(desired: Desired, snapshot: Snapshot) -> tuple[str, ...]:
    """Active objects in the account that billing.yaml does not declare, sorted."""
    return tuple(sorted(name for spec in REGISTRY for name in spec.unmanaged(desired, snapshot)))
