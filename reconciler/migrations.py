"""Pure migration planning: which subscriptions move, how, and which cannot yet.

For each declared migration, every subscription holding an item on the
``from_price`` (called legacy here: usually a usage-record price, but any
recurring price) is classified, and the schedule writes that move it to
``to_price`` at the switch are computed here, as plain request parameters:

- no schedule: create one ``from_subscription``, then update its phases (2 writes);
- a schedule someone else made: update it, keeping its phases, with the legacy
  price replaced in every phase from the switch on (1 write); a phase that
  spans the switch is split there; more than 10 phases: blocked;
- our schedule, right switch: nothing, unless its phase after the switch no
  longer holds what would be written now (seats changed since, a pair taken
  out, a target the same plan replaces): rewrite (1 write); another switch:
  rewrite;
  ``paused`` (or excluded) before the switch: release ours, or put back the
  legacy price in a schedule we adopted (1 write);
- already moved: done; canceled or incomplete_expired: skipped.

Phase 0 keeps everything of the current phase until the switch; phase 1
swaps only the legacy item's price and keeps every other item, quantity,
discount, tax rate, metadata and collection setting. Metered items carry no
quantity; a licensed target keeps the old item's quantity, or takes the
migration's ``quantity`` (needed when the old item is metered and has none).
No I/O here: ``live.py`` reads (``live_subscriptions.py`` parses what it reads),
``apply.py`` writes.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from reconciler.errors import PlanError
from reconciler.invoice_limits import invoice_limit_reached, reset_phrase
from reconciler.live_subscriptions import (
    LiveSchedule,
    LiveSubscription,
    SubscriptionItem,
    subscription_evidence,
)
from reconciler.model import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    Migration,
    Terms,
    duration_text,
    terms_text,
)
from reconciler.plan import Action, ResourceChange

__all__ = [
    "MAX_PHASES",
    "MIGRATION_KEY",
    "NO_METER_EQUIVALENT",
    "PARITY_NOT_READ",
    "TO_PRICE",
    "MigrationSnapshot",
    "State",
    "SubscriptionRow",
    "billing_reset",
    "counts_phrase",
    "dropped_settings",
    "parity_blocker",
    "parity_candidates",
    "plan_migration",
    "resetting",
    "to_price_placeholder",
]

MAX_PHASES = 10
NO_METER_EQUIVALENT = frozenset({"max", "last_ever", "last_during_period"})
PARITY_NOT_READ = "usage parity: not read (the batch is already full)"
"""The parity gate of a subscription whose usage was not read: it waits for a later
batch. Reads stop once the batch is full (see :func:`parity_candidates`)."""
TO_PRICE = "@to_price"
"""Stands for the new price's id in planned phases; apply puts the real id in."""

MIGRATION_KEY = "stripe_reconcile_migration"


class State(enum.StrEnum):
    """Where a subscription stands in its migration (the plan row's ``state``)."""

    PENDING = "pending"
    UNFINISHED = "unfinished"
    RESCHEDULE = "reschedule"
    WAITING = "waiting"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    SCHEDULED = "scheduled"
    DONE = "done"
    PAUSED = "paused"
    EXCLUDED = "excluded"
    SKIPPED = "skipped"


SKIPPED_STATUSES = frozenset({"canceled", "incomplete_expired"})
OWING_STATUSES = frozenset({"past_due", "unpaid", "incomplete", "paused"})
"""Statuses that wait on a payment (or, for ``paused``, a payment method): not moved."""


@dataclass(frozen=True)
class MigrationSnapshot:
    """What the account says about one migration.

    ``from_aggregation`` is the legacy price's ``aggregate_usage``;
    ``from_metered`` whether it is metered; ``to_metered`` whether
    billing.yaml's ``to_price`` is (taken from the declaration, since the
    price may not exist yet); ``from_terms`` and ``to_terms`` each price's
    (currency, interval, interval count); ``subscriptions`` those holding an item on
    ``from_price_id``; ``moved`` the ids of subscriptions this migration
    already switched; ``usage`` (legacy total, meter total) over the last
    complete period, per subscription, where ``require_usage_parity`` asked.
    """

    from_price_id: str | None
    to_price_id: str | None = None
    from_aggregation: str | None = None
    from_price_active: bool = True
    from_metered: bool = True
    to_metered: bool = True
    from_terms: Terms | None = None
    to_terms: Terms | None = None
    read_at: int | None = None
    """When the account was read; None: no time is known, so nothing is deferred."""
    clock_times: Mapping[str, int] = field(default_factory=dict)
    """Each test clock's time: the present of the subscriptions on it."""

    def now_of(self, sub: LiveSubscription) -> int | None:
        """The subscription's present: its test clock's time, or the time of the read."""
        if sub.test_clock is not None and sub.test_clock in self.clock_times:
            return self.clock_times[sub.test_clock]
        return self.read_at

    subscriptions: tuple[LiveSubscription, ...] = ()
    moved: tuple[str, ...] = ()
    usage: Mapping[str, tuple[Decimal, Decimal] | None] = field(default_factory=dict)
    from_tax_behavior: str | None = None
    """The legacy price's tax behaviour, and the target's (declared, else as read): None
    when unspecified."""
    to_tax_behavior: str | None = None
    to_charges: bool = False
    """Whether the target charges up front (licensed, above zero): billing.yaml's word."""
    from_is_target: bool = False
    """Whether the ``from`` price is the one holding the target's lookup key: a price the
    same plan replaces, or the target itself named by its id."""
    recent_invoices: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """When each subscription's invoices of the day before its present were created,
    read for those a ``switch_at: now`` would bill at once (:func:`resetting`)."""
    also: tuple[MigrationSnapshot, ...] = ()
    """The migration's further pairs (``Migration.also``), in order, each read like the
    first but without subscriptions: those holding any ``from`` price are in
    ``subscriptions``."""

    @property
    def changed_terms(self) -> tuple[Terms, Terms] | None:
        """(the legacy price's, the target's) currency and interval when both are known
        and differ: no subscription can move across them."""
        before, after = self.from_terms, self.to_terms
        if before is None or after is None or before == after:
            return None
        return before, after


class SubscriptionRow(TypedDict):
    """One subscription's line in a migration's plan (``details.subscriptions``):
    ``evidence`` is the digest of the subscription as read; ``params`` the schedule
    write, when there is one."""

    subscription: str
    customer: str
    state: State
    action: str | None
    switch_at: int | str | None
    blocker: str | None
    schedule: str | None
    evidence: str
    params: NotRequired[Mapping[str, Any]]
    note: NotRequired[str]
    """What the write does beyond the move that a reviewer should see (a bill at once)."""


@dataclass(frozen=True)
class _Move:
    """One pair of a migration as planning needs it: an item on ``from_id`` moves to the
    price ``placeholder`` stands for (apply puts its id in)."""

    from_id: str
    to_price: str
    placeholder: str
    from_metered: bool
    to_metered: bool
    to_price_id: str | None
    from_active: bool
    tax_behaviors: tuple[str, str] | None = None
    """(from, to) when both are specified and differ."""
    to_charges: bool = False
    replaced_id: str | None = None
    """The target's id when the same plan replaces it (``to_price_id`` is then None): a
    schedule naming it moves items to a price about to be retired."""


def to_price_placeholder(first: str, to_price: str) -> str:
    """What planned phases name ``to_price`` by, in a migration whose first pair moves to
    ``first``: ``TO_PRICE`` for that price, ``TO_PRICE:<lookup key>`` for another."""
    return TO_PRICE if to_price == first else f"{TO_PRICE}:{to_price}"


def _moves(migration: Migration, snap: MigrationSnapshot) -> dict[str, _Move]:
    """Each pair whose ``from`` price the account holds, by that price's id."""
    moves: dict[str, _Move] = {}
    reads = (snap, *snap.also)
    for (_from, to_price), read in zip(migration.pairs, reads, strict=False):
        if read.from_price_id is None or read.from_price_id in moves:
            continue
        moves[read.from_price_id] = _Move(
            from_id=read.from_price_id,
            to_price=to_price,
            placeholder=to_price_placeholder(migration.to_price, to_price),
            from_metered=read.from_metered,
            to_metered=read.to_metered,
            to_price_id=read.to_price_id,
            from_active=read.from_price_active,
            tax_behaviors=(read.from_tax_behavior, read.to_tax_behavior)
            if read.from_tax_behavior
            and read.to_tax_behavior
            and read.from_tax_behavior != read.to_tax_behavior
            else None,
            to_charges=read.to_charges,
        )
    return moves


def _move_items(
    items: list[dict[str, Any]],
    moves: Mapping[str, _Move],
    migration: Migration,
    quantities: list[int | None] | None = None,
) -> list[dict[str, Any]]:
    """Items (phase parameters) with every item on a ``from`` price moved to its target.

    Items moving to one price become one item: Stripe refuses two items on the same
    price, so the first keeps its place, tax rates and metadata, and its quantity is
    the sum of theirs (or the declared ``quantity``). ``quantities`` are the old items'
    own, where the parameters leave them out (metered items); by default each item's.
    Other items are kept as they are (the same dicts: plans are never mutated).
    """
    moved: list[dict[str, Any]] = []
    into: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        move = moves.get(item.get("price"))  # type: ignore[arg-type]
        if move is None:
            moved.append(item)
            continue
        old = quantities[index] if quantities is not None else item.get("quantity")
        quantity = moved_quantity(migration, old, to_metered=move.to_metered)
        merged = into.get(move.placeholder)
        if merged is not None:
            if quantity is not None and migration.quantity is None:
                merged["quantity"] = int(merged.get("quantity") or 0) + quantity
            continue
        dropped = ("quantity",) if move.to_metered else ("quantity", "billing_thresholds")
        target = {k: v for k, v in item.items() if k not in dropped}
        target["price"] = move.placeholder
        if quantity is not None:
            target["quantity"] = quantity
        into[move.placeholder] = target
        moved.append(target)
    return moved


_WRITES_PHASES = frozenset({"create_schedule", "update_schedule"})
"""Actions that write moving phases (the others release or restore)."""


@dataclass(frozen=True)
class _Decision:
    state: State
    action: str | None = None
    blocker: str | None = None
    switch_at: int | str | None = None
    params: Mapping[str, Any] | None = None


def _switch_time(migration: Migration, legacy: SubscriptionItem) -> int | str | None:
    match migration.switch_at.kind:
        case "now":
            return "now"
        case "at":
            return migration.switch_at.at
        case "period_end":
            return legacy.period_end


def _item_params(item: SubscriptionItem, *, price: str, metered: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"price": price}
    if not metered and item.quantity is not None:
        params["quantity"] = item.quantity
    if item.tax_rates:
        params["tax_rates"] = list(item.tax_rates)
    if item.metadata:
        params["metadata"] = dict(item.metadata)
    if item.discounts:
        params["discounts"] = [dict(d) for d in item.discounts]
    if item.billing_thresholds:
        params["billing_thresholds"] = dict(item.billing_thresholds)
    return params


def moved_quantity(migration: Migration, quantity: int | None, *, to_metered: bool) -> int | None:
    """The moved item's quantity: none on a metered price; else the migration's
    ``quantity`` when declared, the old item's when it has one, or 1."""
    if to_metered:
        return None
    if migration.quantity is not None:
        return migration.quantity
    return quantity if quantity is not None else 1


def _schedule_metadata(migration: Migration, from_price: str, switch: int | str) -> dict[str, str]:
    return {
        MANAGED_BY_KEY: MANAGED_BY_VALUE,
        MIGRATION_KEY: migration.name,
        "from_price": from_price,
        "to_price": migration.to_price,
        "switch_at": str(switch),
    }


def _moved_metadata(migration: Migration) -> dict[str, str]:
    """Phase metadata is merged into the subscription's when the phase starts: this key
    marks a subscription as moved by the migration and leaves its other keys alone."""
    return {MIGRATION_KEY: migration.name}


def _items_before_and_after(
    migration: Migration, moves: Mapping[str, _Move], sub: LiveSubscription
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The subscription's items as phase parameters, and the same items moved: what a
    schedule written from it now holds before and after the switch. Items that do not
    move are the same dicts in both."""
    before = [_item_params(i, price=i.price, metered=i.metered) for i in sub.items]
    return before, _move_items(before, moves, migration, [i.quantity for i in sub.items])


def _fresh_phases(
    migration: Migration,
    moves: Mapping[str, _Move],
    *,
    sub: LiveSubscription,
    switch: int | str,
    start: int | None,
) -> list[dict[str, Any]]:
    """Phases for a schedule made from the subscription: now until the switch, then moved.

    ``start`` is phase 0's start: the current period's start for a schedule
    just made from the subscription, the schedule's own for one rewritten.
    """
    common: dict[str, Any] = {"proration_behavior": "none", **sub.settings}
    if sub.discounts:
        common["discounts"] = [dict(d) for d in sub.discounts]
    if sub.default_tax_rates:
        common["default_tax_rates"] = list(sub.default_tax_rates)
    if sub.collection_method:
        common["collection_method"] = sub.collection_method
    before, after = _items_before_and_after(migration, moves, sub)
    first = {**common, "start_date": start, "end_date": switch, "items": before}
    if sub.trial_end is not None:  # the phase rewritten over a trial keeps the trial
        first["trial_end"] = sub.trial_end
    return [first, {**common, "items": after, "metadata": _moved_metadata(migration)}]


def _adopted_phases(
    migration: Migration,
    moves: Mapping[str, _Move],
    schedule: LiveSchedule,
    switch: int | str,
) -> tuple[list[dict[str, Any]], str]:
    """Someone else's phases, with the legacy price replaced from the switch on.

    Returns the phases and how they were reshaped, for a later restore:
    ``split`` (a phase spanning the switch was cut there), ``appended`` (every
    phase ended by the switch, so a moved one was added) or ``swapped``. The
    first moved phase carries the marker that tells a moved subscription.
    ``switch`` "now" cuts the current phase now.
    """
    phases: list[dict[str, Any]] = []
    shape = "swapped"
    marked = False

    def moved(phase: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal marked
        items = _move_items([dict(i) for i in phase["items"]], moves, migration)
        result = {**phase, "items": items}
        if not marked:
            result["metadata"] = {**(phase.get("metadata") or {}), **_moved_metadata(migration)}
            marked = True
        return result

    for index, phase in enumerate(schedule.phases):
        start, end = phase.get("start_date"), phase.get("end_date")
        if switch == "now":
            spans, after = index == 0, index > 0
        else:
            after = start is not None and start >= int(switch)
            spans = not after and (end is None or end > int(switch))
        if after:
            phases.append(moved(phase))
        elif spans:
            shape = "split"
            phases.append({**phase, "end_date": switch})
            phases.append(moved({k: v for k, v in phase.items() if k != "start_date"}))
        else:
            phases.append(dict(phase))
    if not marked and phases:
        shape = "appended"
        last = phases[-1]
        phases.append(moved({k: v for k, v in last.items() if k not in ("start_date", "end_date")}))
    return phases, shape


def _decide(
    migration: Migration,
    snap: MigrationSnapshot,
    moves: Mapping[str, _Move],
    sub: LiveSubscription,
) -> _Decision:
    """One subscription's state, and the schedule write that moves (or restores) it."""
    if sub.status in SKIPPED_STATUSES:
        return _Decision(State.SKIPPED)
    held = [i for i in sub.items if i.price in moves]
    legacy = held[0] if held else None
    schedule = sub.schedule
    unfinished = schedule is not None and schedule.unfinished
    ours = schedule is not None and (schedule.ours or unfinished)
    mine = unfinished or (
        ours and schedule is not None and schedule.metadata.get(MIGRATION_KEY) == migration.name
    )
    excluded = sub.id in migration.exclude
    if legacy is None:
        return _Decision(State.DONE if sub.id in snap.moved else State.SKIPPED)
    if migration.subscriptions is not None and sub.id not in migration.subscriptions:
        excluded = True
    if excluded or migration.paused:
        state = State.EXCLUDED if excluded else State.PAUSED
        if mine and schedule is not None:
            if schedule.metadata.get("adopted") == "true":
                params = _restore(schedule, _back_from_ids(moves))
                return _Decision(state, "restore_schedule", params=params)
            return _Decision(state, "release_schedule")
        return _Decision(state)
    switch = _switch_time(migration, legacy)
    if switch is None:
        return _Decision(State.BLOCKED, blocker="the legacy item has no current period end")
    if (
        isinstance(switch, int)
        and legacy.period_start is not None
        and switch <= legacy.period_start
    ):
        return _Decision(
            State.BLOCKED,
            blocker=f"switch_at {_date(switch)} is not after the current period's start "
            f"({_date(legacy.period_start)}): choose a later time, period_end or now",
        )
    if schedule is not None and ours and not mine:
        other = schedule.metadata.get(MIGRATION_KEY)
        return _Decision(State.BLOCKED, blocker=f"scheduled by migration '{other}'")
    written = mine and schedule is not None and schedule.metadata.get("switch_at") == str(switch)
    if written and schedule is not None:
        adopted = schedule.metadata.get("adopted") == "true"
        if adopted and not _names_replaced(schedule, moves):
            return _Decision(State.SCHEDULED, switch_at=switch)
        if not adopted and _moves_as_planned(migration, schedule, moves, sub):
            return _Decision(State.SCHEDULED, switch_at=switch)
    decision = _next_write(
        migration, snap, moves, sub, held=held, legacy=legacy, switch=switch, mine=mine
    )
    if written and decision.action is None:
        # Our schedule still switches as written: say so, and why it is not written again.
        why = decision.blocker or f"it is {decision.state.value} for now"
        return _Decision(
            State.SCHEDULED,
            blocker=f"switches as written earlier; its phases no longer match the "
            f"subscription, and writing them again waits: {why}",
            switch_at=switch,
        )
    return decision


def _next_write(
    migration: Migration,
    snap: MigrationSnapshot,
    moves: Mapping[str, _Move],
    sub: LiveSubscription,
    *,
    held: Sequence[SubscriptionItem],
    legacy: SubscriptionItem,
    switch: int | str,
    mine: bool,
) -> _Decision:
    """What to write for a subscription with no schedule of this migration that switches
    as planned, or what stops it (the rules of the subscription's own state)."""
    schedule = sub.schedule
    targets = {moves[i.price].to_price_id: moves[i.price].to_price for i in held}
    holding = next((i for i in sub.items if i.price in targets and i.price not in moves), None)
    if holding is not None:
        return _Decision(
            State.BLOCKED,
            blocker=f"it holds {targets[holding.price]} ({holding.price}) already, on another "
            "item, and Stripe refuses two items on one price: merge the two by hand, or "
            "exclude the subscription",
            switch_at=switch,
        )
    archived = next((i.price for i in held if not moves[i.price].from_active), None)
    if archived is not None:
        return _Decision(
            State.BLOCKED,
            blocker=f"the legacy price {archived} is archived, and a schedule phase may not "
            "name an inactive price: reactivate it until the migration is done",
            switch_at=switch,
        )
    taxed = next((moves[i.price] for i in held if moves[i.price].tax_behaviors), None)
    if taxed is not None and taxed.tax_behaviors and not migration.allow_tax_behavior_change:
        old, new = taxed.tax_behaviors
        return _Decision(
            State.BLOCKED,
            blocker=f"{taxed.from_id} is tax {old} and {taxed.to_price} tax {new}: what the "
            "customer pays would change with the tax; declare allow_tax_behavior_change: "
            "true to move it anyway",
            switch_at=switch,
        )
    metered = any(i.metered for i in held)
    refusal = _subscription_refusal(sub, metered, switch) or _timing(migration, snap, sub, switch)
    if refusal is not None:
        return refusal
    limited = _invoice_limit(migration, snap, moves, sub, switch)
    if limited is not None:
        return limited
    from_price = legacy.price
    if mine and schedule is not None:
        return _rewrite(migration, moves, sub=sub, schedule=schedule, legacy=legacy, switch=switch)
    parity = _parity_blocker(migration, snap, sub)
    if parity is PARITY_NOT_READ:
        return _Decision(State.WAITING, switch_at=switch)
    if parity is not None:
        return _Decision(State.BLOCKED, blocker=parity, switch_at=switch)
    if schedule is None:
        return _written(
            migration,
            moves,
            sub,
            from_price=from_price,
            start=legacy.period_start,
            switch=switch,
            state=State.PENDING,
            action="create_schedule",
        )
    return _adopt(migration, moves, schedule, from_price, switch)


def _moved_phase(migration: Migration, schedule: LiveSchedule) -> Mapping[str, Any]:
    """The first phase carrying the migration's marker (the last phase for a schedule
    without one)."""
    marked = [
        phase
        for phase in schedule.phases
        if (phase.get("metadata") or {}).get(MIGRATION_KEY) == migration.name
    ]
    return marked[0] if marked else (schedule.phases[-1] if schedule.phases else {})


def _moves_as_planned(
    migration: Migration,
    schedule: LiveSchedule,
    moves: Mapping[str, _Move],
    sub: LiveSubscription,
) -> bool:
    """Whether our schedule's moved phase holds the items this migration would write from
    the subscription now (each price, and each quantity it sets). A seat count changed on
    the subscription since, a pair taken out of billing.yaml or a target replaced make
    it differ, and the phases are written again: the switch would otherwise bring back
    what the schedule was written with."""
    _before, planned = _items_before_and_after(migration, moves, sub)
    ids = {move.placeholder: move.to_price_id for move in moves.values()}
    have = {
        str(item.get("price")): item.get("quantity")
        for item in _moved_phase(migration, schedule).get("items") or ()
    }
    if len(have) != len(planned):
        return False
    for item in planned:
        price = ids.get(item["price"], item["price"])
        if price is None or price not in have:
            return False
        if item.get("quantity") is not None and have[price] != item["quantity"]:
            return False
    return True


def _names_replaced(schedule: LiveSchedule, moves: Mapping[str, _Move]) -> bool:
    """Whether the schedule moves items to a target the same plan replaces (a second
    raise before the switch): its phases are written again for the new price."""
    retiring = {move.replaced_id for move in moves.values() if move.replaced_id is not None}
    return any(
        item.get("price") in retiring for phase in schedule.phases for item in phase["items"]
    )


def _written(
    migration: Migration,
    moves: Mapping[str, _Move],
    sub: LiveSubscription,
    *,
    from_price: str,
    start: int | None,
    switch: int | str,
    state: State,
    action: str,
) -> _Decision:
    """A schedule written from the subscription (phase 0 from ``start``), unless the
    settings lint finds that its phases would drop something the subscription carries."""
    phases = _fresh_phases(migration, moves, sub=sub, switch=switch, start=start)
    missing = dropped_settings(sub, phases, moves)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return _Decision(
            State.BLOCKED,
            blocker=f"the phases written would drop {'; '.join(missing[:3])}{more}: take it "
            "off the subscription, or exclude the subscription",
            switch_at=switch,
        )
    params = {
        "phases": phases,
        "end_behavior": "release",
        "metadata": _schedule_metadata(migration, from_price, switch),
        "proration_behavior": "none",
    }
    return _Decision(state, action, switch_at=switch, params=params)


def dropped_settings(
    sub: LiveSubscription, phases: Sequence[Mapping[str, Any]], moves: Mapping[str, _Move]
) -> list[str]:
    """The settings lint: what the subscription carries that phases written for it leave
    out (Stripe drops what a schedule update does not restate). ``phases`` are the phase
    before the switch and those after it, where old items are on their new prices."""
    missing: list[str] = []
    for n, phase in enumerate(phases):
        where = "before the switch" if n == 0 else "after the switch"
        discounts = phase.get("discounts") or []
        missing += [
            f"the discount {_named(d)} {where}" for d in sub.discounts if dict(d) not in discounts
        ]
        rates = phase.get("default_tax_rates") or []
        missing += [
            f"the default tax rate {r} {where}" for r in sub.default_tax_rates if r not in rates
        ]
        if sub.collection_method and phase.get("collection_method") != sub.collection_method:
            missing.append(f"collection_method {sub.collection_method} {where}")
        missing += [f"{key} {where}" for key, v in sub.settings.items() if phase.get(key) != v]
        items = phase.get("items") or []
        for item in sub.items:
            price = moves[item.price].placeholder if n and item.price in moves else item.price
            found = next((i for i in items if i.get("price") == price), None)
            name = item.id or item.price
            if found is None:
                missing.append(f"the item {name} {where}")
                continue
            missing += _item_drops(item, found, f"the item {name}'s", where)
    return missing


def _item_drops(
    item: SubscriptionItem, found: Mapping[str, Any], whose: str, where: str
) -> list[str]:
    missing = [
        f"{whose} tax rate {r} {where}"
        for r in item.tax_rates
        if r not in (found.get("tax_rates") or [])
    ]
    metadata = found.get("metadata") or {}
    missing += [
        f"{whose} metadata {k} {where}" for k, v in item.metadata.items() if metadata.get(k) != v
    ]
    discounts = found.get("discounts") or []
    missing += [
        f"{whose} discount {_named(d)} {where}" for d in item.discounts if dict(d) not in discounts
    ]
    if item.billing_thresholds and found.get("billing_thresholds") != dict(item.billing_thresholds):
        missing.append(f"{whose} billing_thresholds {where} (only a metered price takes them)")
    return missing


def _named(discount: Mapping[str, str]) -> str:
    return next(iter(discount.values()), "?")


def _subscription_refusal(
    sub: LiveSubscription, metered: bool, switch: int | str
) -> _Decision | None:
    """What this subscription's own state forbids, with the reason (None: nothing).

    Each rule follows Stripe's behaviour: a schedule written over a subscription
    set to cancel (by itself, or by its schedule's ``end_behavior: cancel``, which
    Stripe shows as the subscription's ``cancel_at``) would carry it past its end;
    a subscription waiting on a payment moves once paid; on billing mode classic,
    replacing a metered item mid-period drops the usage it accrued; a schedule phase
    ends a trial that runs past it.
    """
    schedule = sub.schedule
    by_schedule = sub.cancel_at is None and schedule is not None and schedule.cancels
    if sub.cancel_at_period_end or sub.cancel_at is not None or by_schedule:
        if sub.cancel_at_period_end:
            when = "at its period end"
        elif by_schedule and schedule is not None:
            ends = schedule.ends_at
            when = f"when its schedule ends{f' on {_date(ends)}' if ends is not None else ''}"
        else:
            when = f"on {_date(sub.cancel_at)}"
        return _Decision(
            State.SKIPPED,
            blocker=f"set to cancel {when}; a schedule would keep it alive, so it is left alone",
            switch_at=switch,
        )
    if sub.status in OWING_STATUSES:
        return _Decision(
            State.BLOCKED,
            blocker=f"status {sub.status}: it moves once its invoices are paid",
            switch_at=switch,
        )
    if switch == "now" and metered and sub.billing_mode != "flexible":
        mode = sub.billing_mode or "classic"
        return _Decision(
            State.BLOCKED,
            blocker=f"switch_at now on billing mode {mode} would drop the usage the metered item "
            "accrued this period: switch at period_end, or move the subscription to flexible "
            "billing mode first",
            switch_at=switch,
        )
    if sub.trial_end is not None and isinstance(switch, int) and sub.trial_end > switch:
        return _Decision(
            State.BLOCKED,
            blocker=f"in trial until {_date(sub.trial_end)}, after the switch: switch at "
            "period_end, or at the trial's end",
            switch_at=switch,
        )
    return None


def _timing(
    migration: Migration, snap: MigrationSnapshot, sub: LiveSubscription, switch: int | str
) -> _Decision | None:
    """A fixed switch already past is blocked; a renewal closer than ``defer_within``
    waits for the next one (the switch moves with the period)."""
    now = snap.now_of(sub)
    if now is None or not isinstance(switch, int):
        return None
    if migration.switch_at.kind == "at" and switch <= now:
        return _Decision(
            State.BLOCKED,
            blocker=f"switch_at {_date(switch)} has passed (it is {_date(now)}): choose a "
            "later time, period_end or now",
            switch_at=switch,
        )
    if migration.switch_at.kind == "period_end" and switch - now < migration.defer_within:
        return _Decision(
            State.DEFERRED,
            blocker=f"renews on {_date(switch)}, within defer_within "
            f"({duration_text(migration.defer_within)}): it switches at the renewal after",
            switch_at=switch,
        )
    return None


def billing_reset(
    migration: Migration, moves: Mapping[str, _Move], sub: LiveSubscription, switch: int | str
) -> str | None:
    """What Stripe bills at a switch inside the period (see :mod:`invoice_limits`): a note
    when the move takes the subscription between free and paid; None at a period end,
    where the renewal bills anyway, or when it stays as it is."""
    held = [i for i in sub.items if i.price in moves]
    if not held or (isinstance(switch, int) and switch == held[0].period_end):
        return None
    paid_after = any(i.charges for i in sub.items if i.price not in moves) or any(
        moves[i.price].to_charges
        and (moved_quantity(migration, i.quantity, to_metered=moves[i.price].to_metered) or 0) > 0
        for i in held
    )
    return reset_phrase(any(i.charges for i in sub.items), paid_after)


def resetting(migration: Migration, snap: MigrationSnapshot) -> list[LiveSubscription]:
    """The subscriptions a ``switch_at: now`` would bill at once: whose recent invoices
    planning must know (:attr:`MigrationSnapshot.recent_invoices`)."""
    if migration.switch_at.kind != "now":
        return []
    moves = _moves(migration, snap)
    return [s for s in snap.subscriptions if billing_reset(migration, moves, s, "now")]


def _invoice_limit(
    migration: Migration,
    snap: MigrationSnapshot,
    moves: Mapping[str, _Move],
    sub: LiveSubscription,
    switch: int | str,
) -> _Decision | None:
    """A ``now`` switch that bills at once waits while the subscription is at Stripe's
    limit of new invoices: its write would be refused with a 429 until then."""
    now = snap.now_of(sub)
    created = snap.recent_invoices.get(sub.id)
    if switch != "now" or now is None or not created:
        return None
    if billing_reset(migration, moves, sub, switch) is None:
        return None
    reason = invoice_limit_reached(created, now)
    return _Decision(State.DEFERRED, blocker=reason, switch_at=switch) if reason else None


def _date(timestamp: int | None) -> str:
    if timestamp is None:
        return "an unknown date"
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _rewrite(
    migration: Migration,
    moves: Mapping[str, _Move],
    *,
    sub: LiveSubscription,
    schedule: LiveSchedule,
    legacy: SubscriptionItem,
    switch: int | str,
) -> _Decision:
    """Our schedule with another switch time: write its phases again."""
    from_price = legacy.price
    if schedule.metadata.get("adopted") == "true":
        restored = _restore(schedule, _back_from_ids(moves))
        base = LiveSchedule(schedule.id, schedule.status, {}, tuple(restored["phases"]))
        return _adopt(migration, moves, base, from_price, switch, state=State.RESCHEDULE)
    start = schedule.phases[0].get("start_date") if schedule.phases else legacy.period_start
    state = State.UNFINISHED if schedule.unfinished else State.RESCHEDULE
    return _written(
        migration,
        moves,
        sub,
        from_price=from_price,
        start=start,
        switch=switch,
        state=state,
        action="update_schedule",
    )


def _adopt(
    migration: Migration,
    moves: Mapping[str, _Move],
    schedule: LiveSchedule,
    from_price: str,
    switch: int | str,
    *,
    state: State = State.PENDING,
) -> _Decision:
    if schedule.uncarried:
        return _Decision(
            State.BLOCKED,
            blocker=f"the existing schedule {schedule.id} sets {', '.join(schedule.uncarried)}, "
            "which rewriting its phases would drop: exclude the subscription, or remove that "
            "setting from the schedule",
            switch_at=switch,
        )
    phases, shape = _adopted_phases(migration, moves, schedule, switch)
    if len(phases) > MAX_PHASES:
        return _Decision(
            State.BLOCKED,
            blocker=f"the existing schedule {schedule.id} would need {len(phases)} phases "
            f"(Stripe allows {MAX_PHASES})",
            switch_at=switch,
        )
    if _restore_loses(schedule, phases, shape, moves):
        return _Decision(
            State.BLOCKED,
            blocker=f"the existing schedule {schedule.id} has a phase after the switch whose "
            f"{from_price} items the move would change in a way pausing could not undo (a "
            "quantity changed, or items merged into one): end that phase at the switch, or "
            "exclude the subscription",
            switch_at=switch,
        )
    metadata = _schedule_metadata(migration, from_price, switch)
    metadata.update(adopted="true", shape=shape)
    params = {"phases": phases, "metadata": metadata, "proration_behavior": "none"}
    return _Decision(state, "update_schedule", switch_at=switch, params=params)


_OUR_SCHEDULE_KEYS = (
    MANAGED_BY_KEY,
    MIGRATION_KEY,
    "from_price",
    "to_price",
    "switch_at",
    "adopted",
    "shape",
)


def _back_from_ids(moves: Mapping[str, _Move]) -> dict[str, tuple[str, bool]]:
    """What an adopted schedule's moved items go back to: each target price's id (known
    once it exists) -> (the first ``from`` price moving to it, whether that is metered)."""
    back: dict[str, tuple[str, bool]] = {}
    for move in moves.values():
        for target in (move.to_price_id, move.replaced_id):
            if target is not None:
                back.setdefault(target, (move.from_id, move.from_metered))
    return back


def _back_from_placeholders(moves: Mapping[str, _Move]) -> dict[str, tuple[str, bool]]:
    """As :func:`_back_from_ids`, for phases planned with placeholders."""
    back: dict[str, tuple[str, bool]] = {}
    for move in moves.values():
        back.setdefault(move.placeholder, (move.from_id, move.from_metered))
    return back


def _restore(schedule: LiveSchedule, back: Mapping[str, tuple[str, bool]]) -> dict[str, Any]:
    """Undo an adoption: the legacy prices back (``back``: target price -> its ``from``
    price, and whether that is metered), the marker gone, the reshaping undone."""
    shape = schedule.metadata.get("shape", "swapped")
    phases: list[dict[str, Any]] = []
    for phase in schedule.phases:
        items = [
            _unmoved(item, *back[item["price"]]) if item.get("price") in back else dict(item)
            for item in phase["items"]
        ]
        metadata = {k: v for k, v in (phase.get("metadata") or {}).items() if k != MIGRATION_KEY}
        marked = MIGRATION_KEY in (phase.get("metadata") or {})
        if marked and shape == "appended":
            continue
        if marked and shape == "split" and phases:
            joined = {k: v for k, v in phases[-1].items() if k != "end_date"}
            if phase.get("end_date") is not None:
                joined["end_date"] = phase["end_date"]
            phases[-1] = joined
            continue
        phases.append({**phase, "items": items, "metadata": metadata})
    return {
        "phases": phases,
        "metadata": {key: "" for key in _OUR_SCHEDULE_KEYS},
        "proration_behavior": "none",
    }


def _unmoved(item: Mapping[str, Any], from_price: str, from_metered: bool) -> dict[str, Any]:
    back = {**item, "price": from_price}
    if from_metered:
        back.pop("quantity", None)
    return back


def _restore_loses(
    schedule: LiveSchedule,
    phases: list[dict[str, Any]],
    shape: str,
    moves: Mapping[str, _Move],
) -> bool:
    """Whether pausing could not give back the schedule's items exactly: a phase after
    the switch whose legacy quantity the move changed (a licensed item moved to a
    metered price, or to a declared quantity), or whose items it merged."""
    adopted = LiveSchedule(schedule.id, schedule.status, {"shape": shape}, tuple(phases))
    restored = _restore(adopted, _back_from_placeholders(moves))["phases"]

    def items(phase: Mapping[str, Any]) -> list[tuple[Any, Any]]:
        return [(i.get("price"), i.get("quantity")) for i in phase["items"]]

    return [items(p) for p in restored] != [items(p) for p in schedule.phases]


def _parity_blocker(
    migration: Migration, snap: MigrationSnapshot, sub: LiveSubscription
) -> str | None:
    limit = migration.require_usage_parity
    if limit is None:
        return None
    if sub.id not in snap.usage:
        return PARITY_NOT_READ
    return parity_blocker(limit, snap.usage[sub.id])


def parity_blocker(limit: Decimal, figures: tuple[Decimal, Decimal] | None) -> str | None:
    """Why ``(usage records, meter events)`` fail the gate of ``limit`` percent, or None."""
    if figures is None:
        return "usage parity: no complete period with both usage records and meter events yet"
    legacy, metered = figures
    if legacy == metered:
        return None
    base = legacy if legacy != 0 else metered
    gap = abs(metered - legacy) / base * 100
    if gap > limit:
        return (
            f"usage parity: meter events {metered} vs usage records {legacy} over the last "
            f"complete period differ by {gap.quantize(Decimal('0.01'))}% "
            f"(allowed {limit}%)"
        )
    return None


_STATE_PHRASES: tuple[tuple[State, str], ...] = (
    (State.PENDING, "to schedule"),
    (State.UNFINISHED, "to finish scheduling"),
    (State.RESCHEDULE, "to reschedule"),
    (State.WAITING, "waiting for a later batch"),
    (State.DEFERRED, "deferred"),
    (State.BLOCKED, "blocked"),
    (State.SCHEDULED, "scheduled"),
    (State.DONE, "done"),
    (State.PAUSED, "paused"),
    (State.EXCLUDED, "excluded"),
    (State.SKIPPED, "skipped"),
)


def counts_phrase(counts: Mapping[str, int]) -> str:
    """``120 to schedule, 3 blocked, 877 done``: the states that occur, in a fixed order."""
    parts = [f"{counts[state]} {phrase}" for state, phrase in _STATE_PHRASES if counts.get(state)]
    return ", ".join(parts) or "no subscriptions on the legacy price"


def parity_candidates(migration: Migration, snap: MigrationSnapshot) -> list[LiveSubscription]:
    """The subscriptions, in the order batches take them, whose next step waits on the
    usage parity gate: what the gate must read, and no more (``snap.usage`` ignored)."""
    if migration.require_usage_parity is None or snap.from_price_id is None:
        return []
    unread = dataclasses.replace(snap, usage={})
    moves = _moves(migration, snap)
    return [
        sub
        for sub in sorted(snap.subscriptions, key=lambda s: s.id)
        if _decide(migration, unread, moves, sub).state is State.WAITING
    ]


def plan_migration(
    migration: Migration, snap: MigrationSnapshot, replaced: frozenset[str] = frozenset()
) -> ResourceChange:
    """One ResourceChange for the migration; per-subscription detail in ``details``.

    ``replaced``: the ids of the objects the same plan replaces. A target among them is
    planned as not made yet: a schedule naming it moves to a price about to be retired.
    """
    address = migration.address
    for (from_price, to_price), read in zip(migration.pairs, (snap, *snap.also), strict=False):
        _check_pair(address, from_price, to_price, read)
    if snap.from_price_id is None:
        kind = "price id" if migration.from_price.startswith("price_") else "lookup key"
        return ResourceChange(
            address,
            "migration",
            Action.NOOP,
            f"from_price '{migration.from_price}' is not in the account (no price has that "
            f"{kind}): nothing to migrate; correct from_price or remove the migration",
            details={"from_price": migration.from_price, "to_price": migration.to_price},
        )
    rows: list[SubscriptionRow] = []
    counts: dict[str, int] = {}
    scheduled_now = 0
    moves = {
        from_id: dataclasses.replace(move, to_price_id=None, replaced_id=move.to_price_id)
        if move.to_price_id in replaced
        else move
        for from_id, move in _moves(migration, snap).items()
    }
    for sub in sorted(snap.subscriptions, key=lambda s: s.id):
        decision = _decide(migration, snap, moves, sub)
        state, action = decision.state, decision.action
        starts_new = action in ("create_schedule",) or (
            action == "update_schedule" and state is State.PENDING
        )
        if starts_new and migration.batch is not None and scheduled_now >= migration.batch:
            state, action = State.WAITING, None
        elif starts_new:
            scheduled_now += 1
        counts[state] = counts.get(state, 0) + 1
        row: SubscriptionRow = {
            "subscription": sub.id,
            "customer": sub.customer,
            "state": state,
            "action": action,
            "switch_at": decision.switch_at,
            "blocker": decision.blocker,
            "schedule": sub.schedule.id if sub.schedule else None,
            "evidence": subscription_evidence(sub),
        }
        if action is not None and decision.params is not None:
            row["params"] = decision.params
        if action in _WRITES_PHASES and decision.switch_at is not None:
            note = billing_reset(migration, moves, sub, decision.switch_at)
            if note is not None:
                row["note"] = note
        rows.append(row)
    already_moved = len(set(snap.moved) - {sub.id for sub in snap.subscriptions})
    if already_moved:
        counts[State.DONE] = counts.get(State.DONE, 0) + already_moved
    actionable = [row for row in rows if row["action"] is not None]
    reason = counts_phrase(counts)
    details: dict[str, Any] = {
        "from_price": snap.from_price_id,
        "to_price": migration.to_price,
        "counts": counts,
        "subscriptions": rows,
    }
    if migration.also:
        details["also"] = [
            {"from_price": read.from_price_id, "to_price": to_price}
            for (_from, to_price), read in zip(migration.also, snap.also, strict=True)
        ]
    return ResourceChange(
        address,
        "migration",
        Action.MIGRATE if actionable else Action.NOOP,
        reason,
        details=details,
    )


def _check_pair(address: str, from_price: str, to_price: str, read: MigrationSnapshot) -> None:
    """What no subscription of a pair could be moved across: another currency or interval,
    a legacy aggregation no meter reproduces, a further pair's price not in the account."""
    changed = read.changed_terms
    if changed is not None:
        before, after = changed
        raise PlanError(
            f"{address}: to_price '{to_price}' bills {terms_text(after)}, "
            f"from_price {read.from_price_id} {terms_text(before)}; a migration keeps "
            "the currency and the billing interval (Stripe fixes a subscription's currency, "
            "and mixes intervals only in flexible billing mode): declare a to_price with the "
            "same ones"
        )
    if read.to_metered and read.from_aggregation in NO_METER_EQUIVALENT:
        raise PlanError(
            f"{address}: from_price {read.from_price_id} aggregates usage records with "
            f"'{read.from_aggregation}', which no meter formula reproduces (meters have sum, "
            "count and last); bill it another way before migrating"
        )
