"""Pure migration planning on hand-built subscriptions and schedules."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import PlanError
from reconciler.live_subscriptions import (
    LiveSchedule,
    LiveSubscription,
    SubscriptionItem,
    schedule_from_stripe,
    subscription_from_stripe,
)
from reconciler.migrations import (
    MAX_PHASES,
    MIGRATION_KEY,
    TO_PRICE,
    MigrationSnapshot,
    dropped_settings,
    plan_migration,
)
from reconciler.model import Migration, SwitchAt
from reconciler.plan import Action

LEGACY = "price_legacy"
NEW = "price_new"
START, END = 1_767_225_600, 1_769_904_000  # 2026-01-01, 2026-02-01
MIGRATION = Migration(name="move", from_price="legacy_key", to_price="new_key")


def sub(sub_id: str, **fields: Any) -> LiveSubscription:
    base: dict[str, Any] = {
        "id": sub_id,
        "customer": f"cus_{sub_id}",
        "status": "active",
        "items": (
            SubscriptionItem(
                price=LEGACY, metered=True, period_start=START, period_end=END, id="si_1"
            ),
            SubscriptionItem(price="price_seat", quantity=3, tax_rates=("txr_1",), id="si_2"),
        ),
        "discounts": ({"coupon": "co_10"},),
        "default_tax_rates": ("txr_vat",),
        "metadata": {"team": "video"},
        "collection_method": "charge_automatically",
    }
    base.update(fields)
    return LiveSubscription(**base)


def snapshot(*subs: LiveSubscription, **fields: Any) -> MigrationSnapshot:
    return MigrationSnapshot(from_price_id=LEGACY, to_price_id=NEW, subscriptions=subs, **fields)


def rows(migration: Migration, snap: MigrationSnapshot) -> dict[str, dict[str, Any]]:
    change = plan_migration(migration, snap)
    return {row["subscription"]: row for row in change.details["subscriptions"]}


def _written_for(row: dict[str, Any], target: str) -> LiveSchedule:
    """The schedule a row's write leaves, its placeholders resolved to ``target``."""
    params = row["params"]
    phases = [
        {
            **p,
            "items": [{**i, "price": target} if i["price"] == TO_PRICE else i for i in p["items"]],
        }
        for p in params["phases"]
    ]
    return LiveSchedule("sub_sched_1", "active", params["metadata"], tuple(phases))


def test_fresh_schedule_keeps_everything_but_the_legacy_price() -> None:
    row = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    assert (row["state"], row["action"], row["switch_at"]) == ("pending", "create_schedule", END)
    phase0, phase1 = row["params"]["phases"]
    common = {
        "discounts": [{"coupon": "co_10"}],
        "default_tax_rates": ["txr_vat"],
        "collection_method": "charge_automatically",
        "proration_behavior": "none",
    }
    assert phase0 == {
        **common,
        "start_date": START,
        "end_date": END,
        "items": [
            {"price": LEGACY},
            {"price": "price_seat", "quantity": 3, "tax_rates": ["txr_1"]},
        ],
    }
    assert phase1 == {
        **common,
        "items": [
            {"price": TO_PRICE},
            {"price": "price_seat", "quantity": 3, "tax_rates": ["txr_1"]},
        ],
        "metadata": {MIGRATION_KEY: "move"},
    }
    assert row["params"]["end_behavior"] == "release"
    assert row["params"]["metadata"]["switch_at"] == str(END)


def test_states_of_every_kind() -> None:
    ours = LiveSchedule(
        "sub_sched_ours",
        "active",
        {"managed_by": "stripe-reconcile", MIGRATION_KEY: "move", "switch_at": str(END)},
        (
            {"items": [{"price": LEGACY}, {"price": "price_seat", "quantity": 3}]},
            {"items": [{"price": NEW}, {"price": "price_seat", "quantity": 3}]},
        ),
    )
    other = LiveSchedule(
        "sub_sched_x", "active", {"managed_by": "stripe-reconcile", MIGRATION_KEY: "other"}
    )
    moved_item = (SubscriptionItem(price=NEW, metered=True, period_start=END, period_end=END + 1),)
    snap = snapshot(
        sub("sub_scheduled", schedule=ours),
        sub("sub_canceled", status="canceled"),
        sub("sub_excluded"),
        sub("sub_other", schedule=other),
        sub("sub_moved", items=moved_item),
        moved=("sub_moved", "sub_earlier"),
    )
    migration = Migration(
        name="move", from_price="legacy_key", to_price="new_key", exclude=("sub_excluded",)
    )
    change = plan_migration(migration, snap)
    states = {r["subscription"]: r["state"] for r in change.details["subscriptions"]}
    assert states == {
        "sub_scheduled": "scheduled",
        "sub_canceled": "skipped",
        "sub_excluded": "excluded",
        "sub_other": "blocked",
        "sub_moved": "done",
    }
    assert change.details["counts"] == {
        "scheduled": 1,
        "skipped": 1,
        "excluded": 1,
        "blocked": 1,
        "done": 2,
    }
    assert change.action is Action.NOOP
    assert change.reason == "1 blocked, 1 scheduled, 2 done, 1 excluded, 1 skipped"


def test_batch_limits_new_schedules_per_apply() -> None:
    subs = [sub(f"sub_{n:02d}") for n in range(7)]
    change = plan_migration(
        Migration(name="move", from_price="k", to_price="n", batch=3), snapshot(*subs)
    )
    assert change.details["counts"] == {"pending": 3, "waiting": 4}
    scheduled = [r["subscription"] for r in change.details["subscriptions"] if r["action"]]
    assert scheduled == ["sub_00", "sub_01", "sub_02"]


def test_parity_gate() -> None:
    migration = Migration(
        name="move", from_price="k", to_price="n", require_usage_parity=Decimal("1")
    )
    snap = snapshot(
        sub("sub_close"),
        sub("sub_far"),
        sub("sub_unknown"),
        usage={
            "sub_close": (Decimal(1000), Decimal(995)),
            "sub_far": (Decimal(1000), Decimal(900)),
            "sub_unknown": None,
        },
    )
    result = rows(migration, snap)
    assert result["sub_close"]["state"] == "pending"
    assert result["sub_far"]["blocker"] == (
        "usage parity: meter events 900 vs usage records 1000 over the last complete period "
        "differ by 10.00% (allowed 1%)"
    )
    assert result["sub_unknown"]["state"] == "blocked"


def test_legacy_aggregations_without_a_meter_formula_are_refused() -> None:
    with pytest.raises(PlanError, match="'last_ever', which no meter formula reproduces"):
        plan_migration(MIGRATION, snapshot(from_aggregation="last_ever"))


def test_fixed_switch_before_the_period_is_blocked() -> None:
    early = Migration(
        name="m", from_price="k", to_price="n", switch_at=SwitchAt("at", START - 1, "x")
    )
    row = rows(early, snapshot(sub("sub_1")))["sub_1"]
    assert row["state"] == "blocked"
    assert row["blocker"] == (
        "switch_at 2025-12-31 23:59 UTC is not after the current period's start "
        "(2026-01-01 00:00 UTC): choose a later time, period_end or now"
    )


def test_a_subscription_holding_the_target_already_is_blocked_with_the_way_out() -> None:
    """Stripe refuses two items on one price: the schedule could never be written."""
    both = sub("sub_1", items=(*sub("sub_1").items, SubscriptionItem(price=NEW, id="si_3")))
    row = rows(MIGRATION, snapshot(both))["sub_1"]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert row["blocker"] == (
        f"it holds new_key ({NEW}) already, on another item, and Stripe refuses two items on "
        "one price: merge the two by hand, or exclude the subscription"
    )


def _foreign(phases: list[dict[str, Any]]) -> LiveSchedule:
    return LiveSchedule("sub_sched_f", "active", {"owner": "finance"}, tuple(phases))


phase_lengths = st.lists(st.integers(1, 40), min_size=1, max_size=9)


@settings(max_examples=200, deadline=None)
@given(phase_lengths, st.integers(1, 400), st.booleans())
def test_adopting_then_restoring_gives_back_the_original_phases(
    lengths: list[int], offset_days: int, seats: bool
) -> None:
    day = 86400
    starts = [START]
    for length in lengths:
        starts.append(starts[-1] + length * day)
    items = [{"price": LEGACY}] + ([{"price": "price_seat", "quantity": 2}] if seats else [])
    phases = [
        {"start_date": a, "end_date": b, "items": [dict(i) for i in items], "metadata": {}}
        for a, b in itertools.pairwise(starts)
    ]
    switch = START + offset_days * day
    migration = Migration(
        name="move", from_price="k", to_price="n", switch_at=SwitchAt("at", switch, "t")
    )
    row = rows(migration, snapshot(sub("sub_1", schedule=_foreign(phases))))["sub_1"]
    if row["state"] == "blocked":
        assert len(phases) + 1 > MAX_PHASES
        return
    adopted = row["params"]
    assert adopted["metadata"]["adopted"] == "true"
    moved_phases = [
        {
            **p,
            "items": [{**i, "price": NEW} if i["price"] == TO_PRICE else i for i in p["items"]],
        }
        for p in adopted["phases"]
    ]
    for phase in moved_phases:
        begins = phase.get("start_date")
        prices = {i["price"] for i in phase["items"]}
        if begins is not None and begins >= switch:
            assert LEGACY not in prices
    live = LiveSchedule("sub_sched_f", "active", adopted["metadata"], tuple(moved_phases))
    restored = rows(
        Migration(name="move", from_price="k", to_price="n", paused=True),
        snapshot(sub("sub_1", schedule=live)),
    )["sub_1"]
    assert restored["action"] == "restore_schedule"
    assert restored["params"]["phases"] == phases
    assert set(restored["params"]["metadata"].values()) == {""}


def test_a_schedule_naming_a_target_replaced_since_is_written_again() -> None:
    first = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    written = sub("sub_1", schedule=_written_for(first, NEW))
    assert rows(MIGRATION, snapshot(written))["sub_1"]["state"] == "scheduled"
    # The target was replaced by price_newer: the schedule still names NEW.
    again = rows(MIGRATION, dataclasses.replace(snapshot(written), to_price_id="price_newer"))
    assert (again["sub_1"]["state"], again["sub_1"]["action"]) == ("reschedule", "update_schedule")
    # Replaced by this very plan: the new price is not made yet.
    change = plan_migration(MIGRATION, snapshot(written), frozenset({NEW}))
    (row,) = change.details["subscriptions"]
    assert (row["state"], row["action"]) == ("reschedule", "update_schedule")


def test_seats_changed_since_the_schedule_was_written_are_written_again() -> None:
    """The moved phase froze the seat count: the switch would take the seats added since
    away, so the phases are written again with the subscription's own."""
    first = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    legacy, seat = sub("sub_1").items
    more = dataclasses.replace(seat, quantity=5)
    written = sub("sub_1", items=(legacy, more), schedule=_written_for(first, NEW))
    row = rows(MIGRATION, snapshot(written))["sub_1"]
    assert (row["state"], row["action"]) == ("reschedule", "update_schedule")
    moved = row["params"]["phases"][1]["items"]
    assert {"price": "price_seat", "quantity": 5, "tax_rates": ["txr_1"]} in moved


def test_a_schedule_that_cannot_be_written_again_now_still_says_it_switches() -> None:
    """Seats changed, but the subscription is past due: the schedule is not written
    again yet, and it still switches as written; the row must not say it will not."""
    first = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    legacy, seat = sub("sub_1").items
    items = (legacy, dataclasses.replace(seat, quantity=5))
    owing = sub("sub_1", items=items, status="past_due", schedule=_written_for(first, NEW))
    row = rows(MIGRATION, snapshot(owing))["sub_1"]
    assert (row["state"], row["action"], row["switch_at"]) == ("scheduled", None, END)
    assert row["blocker"] == (
        "switches as written earlier; its phases no longer match the subscription, and "
        "writing them again waits: status past_due: it moves once its invoices are paid"
    )


def test_a_pair_taken_out_of_a_consolidation_is_written_again() -> None:
    both = Migration(
        name="move", from_price="legacy_key", to_price="new_key", also=(("seat_key", "new_key"),)
    )
    seat_read = MigrationSnapshot(from_price_id="price_seat", to_price_id=NEW, to_metered=False)
    legacy, seat = sub("sub_1").items
    items = (legacy, dataclasses.replace(seat, tax_rates=()))
    merged = rows(both, dataclasses.replace(snapshot(sub("sub_1", items=items)), also=(seat_read,)))
    written = sub("sub_1", items=items, schedule=_written_for(merged["sub_1"], NEW))
    row = rows(MIGRATION, snapshot(written))["sub_1"]
    assert (row["state"], row["action"]) == ("reschedule", "update_schedule")
    assert [i["price"] for i in row["params"]["phases"][1]["items"]] == [TO_PRICE, "price_seat"]


def test_an_adopted_schedule_naming_a_target_the_plan_replaces_is_written_again() -> None:
    """A second raise before the switch: the adopted schedule's moved items go back to the
    legacy price and move to the new target; paused, they go back as they were."""
    phases = [{"start_date": START, "end_date": END + 86400 * 30, "items": [{"price": LEGACY}]}]
    first = rows(MIGRATION, snapshot(sub("sub_1", schedule=_foreign(phases))))["sub_1"]
    written = sub("sub_1", schedule=_written_for(first, NEW))
    assert rows(MIGRATION, snapshot(written))["sub_1"]["state"] == "scheduled"
    change = plan_migration(MIGRATION, snapshot(written), frozenset({NEW}))
    (row,) = change.details["subscriptions"]
    assert (row["state"], row["action"]) == ("reschedule", "update_schedule")

    def shape(phases: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        return [(p.get("start_date"), p.get("end_date"), p["items"]) for p in phases]

    assert shape(row["params"]["phases"]) == shape(first["params"]["phases"])
    paused = dataclasses.replace(MIGRATION, paused=True)
    (back,) = plan_migration(paused, snapshot(written), frozenset({NEW})).details["subscriptions"]
    assert (back["state"], back["action"]) == ("paused", "restore_schedule")
    assert [p["items"] for p in back["params"]["phases"]] == [[{"price": LEGACY}]]


def test_an_adopted_schedule_whose_own_later_phase_moves_elsewhere_stays_scheduled() -> None:
    """Someone scheduled an upgrade at the renewal: that price is theirs, not a stale
    target, and excluding the subscription gives their phases back."""
    phases = [
        {"start_date": START, "end_date": END, "items": [{"price": LEGACY}]},
        {"start_date": END, "end_date": END + 86400 * 30, "items": [{"price": "price_upgrade"}]},
    ]
    first = rows(MIGRATION, snapshot(sub("sub_1", schedule=_foreign(phases))))["sub_1"]
    written = sub("sub_1", schedule=_written_for(first, NEW))
    assert rows(MIGRATION, snapshot(written))["sub_1"]["state"] == "scheduled"
    excluded = dataclasses.replace(MIGRATION, exclude=("sub_1",))
    back = rows(excluded, snapshot(written))["sub_1"]
    assert (back["state"], back["action"]) == ("excluded", "restore_schedule")


@pytest.mark.parametrize(
    ("from_price", "kind"), [("legacy_key", "lookup key"), ("price_gone", "price id")]
)
def test_a_missing_from_price_is_named_with_what_to_do(from_price: str, kind: str) -> None:
    migration = Migration(name="move", from_price=from_price, to_price="new_key")
    change = plan_migration(migration, MigrationSnapshot(from_price_id=None, to_price_id=NEW))
    assert change.action is Action.NOOP
    assert change.reason.startswith(f"from_price '{from_price}' is not in the account")
    assert f"no price has that {kind}" in change.reason


# Any recurring price to any recurring price: the moved item's quantity.

SEAT_OLD, SEAT_NEW = "price_seat_2025", "price_seat_2026"


def licensed_sub(sub_id: str, quantity: int = 5, **fields: Any) -> LiveSubscription:
    item = SubscriptionItem(
        price=SEAT_OLD, quantity=quantity, period_start=START, period_end=END, id="si_seat"
    )
    return sub(sub_id, items=(item,), **fields)


def licensed_snapshot(*subs: LiveSubscription, **fields: Any) -> MigrationSnapshot:
    settings: dict[str, Any] = {"from_metered": False, "to_metered": False, **fields}
    return MigrationSnapshot(
        from_price_id=SEAT_OLD, to_price_id=SEAT_NEW, subscriptions=subs, **settings
    )


def moved_items(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in row["params"]["phases"][-1]["items"] if i["price"] == TO_PRICE]


def test_a_price_increase_keeps_each_subscriptions_quantity() -> None:
    migration = Migration(name="raise", from_price="seat_2025", to_price="seat_2026")
    found = rows(migration, licensed_snapshot(licensed_sub("sub_a", 5), licensed_sub("sub_b", 12)))
    assert [moved_items(found[s]) for s in ("sub_a", "sub_b")] == [
        [{"price": TO_PRICE, "quantity": 5}],
        [{"price": TO_PRICE, "quantity": 12}],
    ]
    phase0 = found["sub_a"]["params"]["phases"][0]
    assert phase0["items"] == [{"price": SEAT_OLD, "quantity": 5}]
    assert phase0["end_date"] == END


def test_a_declared_quantity_replaces_the_old_one() -> None:
    migration = Migration(name="bundle", from_price="seat_2025", to_price="team", quantity=1)
    row = rows(migration, licensed_snapshot(licensed_sub("sub_a", 7)))["sub_a"]
    assert moved_items(row) == [{"price": TO_PRICE, "quantity": 1}]


def test_metered_to_licensed_takes_the_declared_quantity_or_one() -> None:
    metered_to_flat = snapshot(sub("sub_1"), to_metered=False)
    declared = Migration(name="flat", from_price="k", to_price="n", quantity=3)
    assert moved_items(rows(declared, metered_to_flat)["sub_1"]) == [
        {"price": TO_PRICE, "quantity": 3}
    ]
    undeclared = Migration(name="flat", from_price="k", to_price="n")
    assert moved_items(rows(undeclared, metered_to_flat)["sub_1"]) == [
        {"price": TO_PRICE, "quantity": 1}
    ]


def test_licensed_to_metered_drops_the_quantity_stripe_refuses_on_metered_items() -> None:
    snap = licensed_snapshot(licensed_sub("sub_a", 4), to_metered=True)
    row = rows(Migration(name="meter", from_price="seat_2025", to_price="calls"), snap)["sub_a"]
    assert moved_items(row) == [{"price": TO_PRICE}]


def test_a_licensed_target_is_not_refused_for_an_aggregation_no_meter_reproduces() -> None:
    snap = snapshot(sub("sub_1"), from_aggregation="max", to_metered=False)
    change = plan_migration(Migration(name="flat", from_price="k", to_price="n"), snap)
    assert change.action is Action.MIGRATE
    with pytest.raises(PlanError, match="no meter formula"):
        plan_migration(MIGRATION, snapshot(sub("sub_1"), from_aggregation="max"))


def _phase(start: int, end: int | None, *items: dict[str, Any]) -> dict[str, Any]:
    phase: dict[str, Any] = {"start_date": start, "items": list(items)}
    if end is not None:
        phase["end_date"] = end
    return phase


def test_an_adopted_schedule_keeps_the_licensed_quantity_and_restores_exactly() -> None:
    day = 86400
    switch = START + 10 * day
    phases = [
        _phase(START, START + 20 * day, {"price": SEAT_OLD, "quantity": 5}),
        _phase(START + 20 * day, START + 40 * day, {"price": SEAT_OLD, "quantity": 8}),
    ]
    migration = Migration(
        name="raise",
        from_price="seat_2025",
        to_price="seat_2026",
        switch_at=SwitchAt("at", switch, "t"),
    )
    snap = licensed_snapshot(licensed_sub("sub_a", schedule=_foreign(phases)))
    row = rows(migration, snap)["sub_a"]
    assert row["state"] == "pending"
    adopted = row["params"]["phases"]
    assert [p["items"] for p in adopted] == [
        [{"price": SEAT_OLD, "quantity": 5}],
        [{"price": TO_PRICE, "quantity": 5}],
        [{"price": TO_PRICE, "quantity": 8}],
    ]
    live_phases = tuple(
        {**p, "items": [{**i, "price": SEAT_NEW} for i in p["items"]]} if i else dict(p)
        for i, p in enumerate(adopted)
    )
    live = LiveSchedule("sub_sched_f", "active", row["params"]["metadata"], live_phases)
    paused = Migration(name="raise", from_price="seat_2025", to_price="seat_2026", paused=True)
    restored = rows(paused, licensed_snapshot(licensed_sub("sub_a", schedule=live)))["sub_a"]
    assert restored["action"] == "restore_schedule"
    assert [p["items"] for p in restored["params"]["phases"]] == [p["items"] for p in phases]


@pytest.mark.parametrize(
    ("to_metered", "quantity"), [(True, None), (False, 1)], ids=["to-metered", "declared"]
)
def test_adopting_is_blocked_when_pausing_could_not_give_the_quantity_back(
    to_metered: bool, quantity: int | None
) -> None:
    day = 86400
    switch = START + 10 * day
    phases = [
        _phase(START, switch, {"price": SEAT_OLD, "quantity": 5}),
        _phase(switch, START + 40 * day, {"price": SEAT_OLD, "quantity": 8}),
    ]
    migration = Migration(
        name="move",
        from_price="seat_2025",
        to_price="target",
        switch_at=SwitchAt("at", switch, "t"),
        quantity=quantity,
    )
    snap = licensed_snapshot(
        licensed_sub("sub_a", schedule=_foreign(phases)), to_metered=to_metered
    )
    row = rows(migration, snap)["sub_a"]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert "pausing could not undo" in row["blocker"]


def test_pausing_a_metered_to_licensed_move_takes_the_quantity_off_again() -> None:
    moved = _phase(END, None, {"price": NEW, "quantity": 2})
    moved["metadata"] = {MIGRATION_KEY: "flat"}
    phases = (_phase(START, END, {"price": LEGACY}), moved)
    metadata = {
        "managed_by": "stripe-reconcile",
        MIGRATION_KEY: "flat",
        "adopted": "true",
        "shape": "appended",
        "switch_at": str(END),
    }
    live = LiveSchedule("sub_sched_f", "active", metadata, phases)
    paused = Migration(name="flat", from_price="k", to_price="n", paused=True, quantity=2)
    snap = snapshot(sub("sub_1", schedule=live), to_metered=False)
    restored = rows(paused, snap)["sub_1"]
    assert restored["action"] == "restore_schedule"
    assert [p["items"] for p in restored["params"]["phases"]] == [[{"price": LEGACY}]]


@pytest.mark.parametrize(
    ("to_terms", "phrase"),
    [(("usd", "year", 1), "USD every year"), (("eur", "month", 1), "EUR every month")],
)
def test_a_move_to_another_currency_or_interval_is_refused_with_both_named(
    to_terms: tuple[str, str, int], phrase: str
) -> None:
    snap = licensed_snapshot(
        licensed_sub("sub_a"), from_terms=("usd", "month", 1), to_terms=to_terms
    )
    with pytest.raises(PlanError) as refused:
        plan_migration(Migration(name="m", from_price="seat_2025", to_price="seat_2026"), snap)
    message = str(refused.value)
    assert f"to_price 'seat_2026' bills {phrase}" in message
    assert f"from_price {SEAT_OLD} USD every month" in message


def test_the_same_terms_named_differently_are_not_a_change() -> None:
    terms = ("usd", "month", 3)
    snap = licensed_snapshot(licensed_sub("sub_a"), from_terms=terms, to_terms=terms)
    change = plan_migration(Migration(name="m", from_price="a", to_price="b"), snap)
    assert change.action is Action.MIGRATE


# Each subscription's own state, per Stripe's behaviour.


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"cancel_at_period_end": True}, "set to cancel at its period end"),
        ({"cancel_at": END - 86400}, "set to cancel on 2026-01-31 00:00 UTC"),
    ],
)
def test_a_subscription_set_to_cancel_is_left_alone_never_revived(
    fields: dict[str, Any], reason: str
) -> None:
    row = rows(MIGRATION, snapshot(sub("sub_1", **fields)))["sub_1"]
    assert (row["state"], row["action"]) == ("skipped", None)
    assert row["blocker"].startswith(reason)
    assert "a schedule would keep it alive" in row["blocker"]


@pytest.mark.parametrize("status", ["past_due", "unpaid", "incomplete", "paused"])
def test_a_subscription_waiting_on_a_payment_is_blocked_until_paid(status: str) -> None:
    row = rows(MIGRATION, snapshot(sub("sub_1", status=status)))["sub_1"]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert row["blocker"] == f"status {status}: it moves once its invoices are paid"


def test_an_existing_schedule_stays_scheduled_when_the_subscription_falls_behind() -> None:
    first = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    ours = _written_for(first, NEW)
    row = rows(MIGRATION, snapshot(sub("sub_1", status="past_due", schedule=ours)))["sub_1"]
    assert row["state"] == "scheduled"


@pytest.mark.parametrize(
    ("mode", "blocked"), [(None, True), ("classic", True), ("flexible", False)]
)
def test_switching_now_on_classic_billing_mode_would_drop_accrued_usage(
    mode: str | None, blocked: bool
) -> None:
    now = Migration(name="move", from_price="k", to_price="n", switch_at=SwitchAt("now"))
    row = rows(now, snapshot(sub("sub_1", billing_mode=mode)))["sub_1"]
    if blocked:
        assert row["state"] == "blocked"
        assert row["blocker"].startswith(f"switch_at now on billing mode {mode or 'classic'}")
    else:
        assert (row["state"], row["action"]) == ("pending", "create_schedule")


def test_switching_now_is_allowed_for_a_licensed_item_on_classic_billing_mode() -> None:
    now = Migration(
        name="raise", from_price="seat_2025", to_price="seat_2026", switch_at=SwitchAt("now")
    )
    row = rows(now, licensed_snapshot(licensed_sub("sub_a", billing_mode="classic")))["sub_a"]
    assert (row["state"], row["action"]) == ("pending", "create_schedule")


def test_a_trial_is_kept_in_the_phase_before_the_switch() -> None:
    row = rows(MIGRATION, snapshot(sub("sub_1", status="trialing", trial_end=END)))["sub_1"]
    phase0, phase1 = row["params"]["phases"]
    assert phase0["trial_end"] == END
    assert "trial_end" not in phase1


def test_a_trial_running_past_a_fixed_switch_is_blocked() -> None:
    early = Migration(
        name="move", from_price="k", to_price="n", switch_at=SwitchAt("at", END - 86400, "t")
    )
    row = rows(early, snapshot(sub("sub_1", status="trialing", trial_end=END)))["sub_1"]
    assert row["state"] == "blocked"
    assert row["blocker"].startswith("in trial until 2026-02-01 00:00 UTC, after the switch")


def test_a_subscription_is_read_with_its_cancel_trial_and_billing_mode() -> None:
    base = {"id": "sub_1", "customer": "cus_1", "items": {"data": []}}
    read = subscription_from_stripe(
        {
            **base,
            "status": "trialing",
            "trial_end": END,
            "cancel_at_period_end": True,
            "cancel_at": END,
            "billing_mode": {"type": "flexible", "flexible": None},
        }
    )
    assert (read.trial_end, read.cancel_at_period_end, read.cancel_at, read.billing_mode) == (
        END,
        True,
        END,
        "flexible",
    )
    ended = subscription_from_stripe({**base, "status": "active", "trial_end": START})
    assert (ended.trial_end, ended.cancel_at_period_end, ended.billing_mode) == (None, False, None)
    assert read.evidence != subscription_from_stripe({**base, "status": "trialing"}).evidence


# Phases keep everything a subscription or a schedule phase carries.

SETTINGS = {
    "default_payment_method": "pm_1",
    "billing_thresholds": {"amount_gte": 50000, "reset_billing_cycle_anchor": False},
    "automatic_tax": {"enabled": True},
    "invoice_settings": {"days_until_due": 14},
    "application_fee_percent": 2.5,
}


def test_a_subscriptions_settings_are_read_as_phase_parameters() -> None:
    read = subscription_from_stripe(
        {
            "id": "sub_1",
            "customer": "cus_1",
            "status": "active",
            "items": {
                "data": [{"id": "si_1", "price": {"id": "p"}, "metadata": {"seat": "owner"}}]
            },
            "default_payment_method": {"id": "pm_1", "object": "payment_method"},
            "billing_thresholds": {"amount_gte": 50000, "reset_billing_cycle_anchor": False},
            "automatic_tax": {"enabled": True, "liability": {"type": "self"}},
            "days_until_due": 14,
            "application_fee_percent": 2.5,
            "on_behalf_of": None,
            "transfer_data": None,
        }
    )
    assert read.settings == SETTINGS
    assert read.items[0].metadata == {"seat": "owner"}


def test_fresh_phases_carry_the_subscriptions_settings_and_item_metadata() -> None:
    seat = SubscriptionItem(price="price_seat", quantity=3, metadata={"seat": "owner"})
    legacy = SubscriptionItem(
        price=LEGACY, metered=True, period_start=START, period_end=END, metadata={"k": "v"}
    )
    row = rows(MIGRATION, snapshot(sub("sub_1", items=(legacy, seat), settings=SETTINGS)))["sub_1"]
    for phase in row["params"]["phases"]:
        assert {key: phase[key] for key in SETTINGS} == SETTINGS
    before, after = (phase["items"] for phase in row["params"]["phases"])
    assert before == [
        {"price": LEGACY, "metadata": {"k": "v"}},
        {"price": "price_seat", "quantity": 3, "metadata": {"seat": "owner"}},
    ]
    assert after[0] == {"price": TO_PRICE, "metadata": {"k": "v"}}
    assert after[1] is before[1]


def _read_phase(start: int, end: int | None, **fields: Any) -> dict[str, Any]:
    phase: dict[str, Any] = {
        "start_date": start,
        "end_date": end,
        "items": [{"price": {"id": LEGACY}, "metadata": {"k": "v"}, "tax_rates": []}],
        "proration_behavior": "create_prorations",
        "add_invoice_items": [],
        "metadata": {},
        "invoice_settings": None,
        "trial_end": None,
    }
    phase.update(fields)
    return phase


def test_an_adopted_schedules_phase_settings_are_written_back() -> None:
    read = schedule_from_stripe(
        {
            "id": "sub_sched_f",
            "status": "active",
            "metadata": {"owner": "sales"},
            "current_phase": {"start_date": START, "end_date": END + 86400 * 30},
            "phases": [
                _read_phase(
                    START,
                    END + 86400 * 30,
                    default_payment_method="pm_9",
                    invoice_settings={"days_until_due": 7, "issuer": {"type": "self"}},
                    automatic_tax={"enabled": True, "liability": None},
                )
            ],
        }
    )
    assert read.uncarried == ()
    row = rows(MIGRATION, snapshot(sub("sub_1", schedule=read)))["sub_1"]
    assert row["state"] == "pending"
    for phase in row["params"]["phases"]:
        assert phase["default_payment_method"] == "pm_9"
        assert phase["invoice_settings"] == {"days_until_due": 7}
        assert phase["automatic_tax"] == {"enabled": True}
        assert phase["items"][0]["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"add_invoice_items": [{"price": "price_setup"}]}, "add_invoice_items"),
        ({"proration_behavior": "none"}, "proration_behavior"),
        ({"trial": True}, "trial"),
        ({"invoice_settings": {"issuer": {"type": "account", "account": "acct_1"}}}, "issuer"),
        ({"invoice_settings": {"account_tax_ids": ["atxi_1"]}}, "account_tax_ids"),
        ({"items": [{"price": {"id": LEGACY}, "price_data": {"x": 1}}]}, "items.price_data"),
    ],
)
def test_adopting_a_schedule_with_a_setting_it_cannot_write_back_is_blocked(
    fields: dict[str, Any], named: str
) -> None:
    read = schedule_from_stripe(
        {
            "id": "sub_sched_f",
            "status": "active",
            "metadata": {},
            "current_phase": {"start_date": START},
            "phases": [_read_phase(START, END + 86400 * 30, **fields)],
        }
    )
    ours_metadata = {"owner": "finance"}
    schedule = dataclasses.replace(read, metadata=ours_metadata)
    row = rows(MIGRATION, snapshot(sub("sub_1", schedule=schedule)))["sub_1"]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert named in row["blocker"]
    assert "rewriting its phases would drop" in row["blocker"]


# Time: a renewal too close, a fixed switch already past.


def test_a_renewal_within_defer_within_waits_for_the_next_one() -> None:
    near = snapshot(sub("sub_1"), read_at=END - 1800)
    row = rows(MIGRATION, near)["sub_1"]
    assert (row["state"], row["action"]) == ("deferred", None)
    assert row["blocker"] == (
        "renews on 2026-02-01 00:00 UTC, within defer_within (1h): it switches at the renewal after"
    )
    assert plan_migration(MIGRATION, near).reason == "1 deferred"
    far = rows(MIGRATION, snapshot(sub("sub_1"), read_at=END - 7200))["sub_1"]
    assert far["state"] == "pending"
    never = dataclasses.replace(MIGRATION, defer_within=0)
    assert rows(never, near)["sub_1"]["state"] == "pending"


def test_a_subscription_on_a_test_clock_lives_at_the_clocks_time() -> None:
    on_clock = sub("sub_1", test_clock="clock_1")
    snap = snapshot(on_clock, read_at=START, clock_times={"clock_1": END - 60})
    assert snap.now_of(on_clock) == END - 60
    assert rows(MIGRATION, snap)["sub_1"]["state"] == "deferred"
    assert snap.now_of(sub("sub_2")) == START


def test_a_fixed_switch_already_past_is_blocked_with_both_times() -> None:
    past = Migration(
        name="move", from_price="k", to_price="n", switch_at=SwitchAt("at", START + 86400, "t")
    )
    row = rows(past, snapshot(sub("sub_1"), read_at=START + 2 * 86400))["sub_1"]
    assert row["state"] == "blocked"
    assert row["blocker"] == (
        "switch_at 2026-01-02 00:00 UTC has passed (it is 2026-01-03 00:00 UTC): choose a "
        "later time, period_end or now"
    )


def test_an_existing_schedule_is_not_deferred() -> None:
    first = rows(MIGRATION, snapshot(sub("sub_1")))["sub_1"]
    ours = _written_for(first, NEW)
    near = snapshot(sub("sub_1", schedule=ours), read_at=END - 60)
    assert rows(MIGRATION, near)["sub_1"]["state"] == "scheduled"


def test_every_setting_a_phase_or_subscription_carries_is_read_for_writing_back() -> None:
    read = schedule_from_stripe(
        {
            "id": "sub_sched_c",
            "object": "subscription_schedule",
            "status": "active",
            "metadata": {"owner": "partners"},
            "current_phase": {"start_date": START},
            "phases": [
                _read_phase(
                    START,
                    END,
                    items=[
                        {
                            "object": "phase_item",
                            "price": {"id": LEGACY},
                            "billing_thresholds": {"usage_gte": 500},
                            "discounts": [{"coupon": "co_5", "discount": None}],
                            "tax_rates": [],
                        }
                    ],
                    automatic_tax={
                        "enabled": True,
                        "liability": {"type": "account", "account": {"id": "acct_1"}},
                    },
                    on_behalf_of="acct_2",
                    transfer_data={"destination": {"id": "acct_3"}, "amount_percent": 10},
                    application_fee_percent=1.5,
                )
            ],
        }
    )
    assert read.uncarried == ()
    (phase,) = read.phases
    assert phase["items"] == [
        {
            "price": LEGACY,
            "billing_thresholds": {"usage_gte": 500},
            "discounts": [{"coupon": "co_5"}],
        }
    ]
    assert phase["automatic_tax"] == {
        "enabled": True,
        "liability": {"type": "account", "account": "acct_1"},
    }
    assert phase["on_behalf_of"] == "acct_2"
    assert phase["transfer_data"] == {"destination": "acct_3", "amount_percent": 10}
    assert phase["application_fee_percent"] == 1.5


def test_a_subscription_read_with_unexpanded_prices_and_customer_objects() -> None:
    read = subscription_from_stripe(
        {
            "id": "sub_1",
            "customer": {"id": "cus_9", "object": "customer"},
            "status": "active",
            "items": {"data": [{"id": "si_1", "price": "price_plain", "quantity": 2}]},
        }
    )
    assert (read.customer, read.items[0].price, read.items[0].metered) == (
        "cus_9",
        "price_plain",
        False,
    )


def test_a_legacy_item_without_a_period_end_is_blocked_with_the_reason() -> None:
    no_period = SubscriptionItem(price=LEGACY, metered=True, id="si_1")
    row = rows(MIGRATION, snapshot(sub("sub_1", items=(no_period,))))["sub_1"]
    assert (row["state"], row["blocker"]) == (
        "blocked",
        "the legacy item has no current period end",
    )


# --- several pairs in one migration (consolidation) ---------------------------------------

ADDON_OLD, ADDON_NEW = "price_addon_2025", "price_addon_2026"


def consolidating(to_addon: str = "seat_2026", **fields: Any) -> Migration:
    return Migration(
        name="one-plan",
        from_price="seat_2025",
        to_price="seat_2026",
        also=(("addon_2025", to_addon),),
        **fields,
    )


def two_item_sub(sub_id: str, **fields: Any) -> LiveSubscription:
    items = (
        SubscriptionItem(SEAT_OLD, 3, ("txr_1",), period_start=START, period_end=END, id="si_a"),
        SubscriptionItem("price_support", 1, id="si_b"),
        SubscriptionItem(ADDON_OLD, 2, period_start=START, period_end=END, id="si_c"),
    )
    return sub(sub_id, items=items, **fields)


def pairs_snapshot(*subs: LiveSubscription, **fields: Any) -> MigrationSnapshot:
    addon = MigrationSnapshot(
        from_price_id=ADDON_OLD, to_price_id=ADDON_NEW, from_metered=False, to_metered=False
    )
    return licensed_snapshot(*subs, also=(addon,), **fields)


def test_items_moving_to_one_price_become_one_item_with_the_sum_of_their_quantities() -> None:
    row = rows(consolidating(), pairs_snapshot(two_item_sub("sub_1")))["sub_1"]
    before, after = (phase["items"] for phase in row["params"]["phases"])
    assert [i["price"] for i in before] == [SEAT_OLD, "price_support", ADDON_OLD]
    # The first moved item keeps its place and tax rates; the other items stay as they are.
    assert after == [
        {"price": TO_PRICE, "quantity": 5, "tax_rates": ["txr_1"]},
        {"price": "price_support", "quantity": 1},
    ]


def test_a_declared_quantity_is_the_merged_items_quantity() -> None:
    row = rows(consolidating(quantity=1), pairs_snapshot(two_item_sub("sub_1")))["sub_1"]
    assert row["params"]["phases"][1]["items"][0] == {
        "price": TO_PRICE,
        "quantity": 1,
        "tax_rates": ["txr_1"],
    }


def test_pairs_to_different_prices_name_each_by_its_own_placeholder() -> None:
    change = plan_migration(consolidating("addon_2026"), pairs_snapshot(two_item_sub("sub_1")))
    row = change.details["subscriptions"][0]
    assert [i["price"] for i in row["params"]["phases"][1]["items"]] == [
        TO_PRICE,
        "price_support",
        f"{TO_PRICE}:addon_2026",
    ]
    assert change.details["also"] == [{"from_price": ADDON_OLD, "to_price": "addon_2026"}]


def test_a_subscription_holding_only_a_further_pairs_price_moves_too() -> None:
    only_addon = sub(
        "sub_2",
        items=(SubscriptionItem(ADDON_OLD, 4, period_start=START, period_end=END, id="si_c"),),
    )
    row = rows(consolidating(), pairs_snapshot(only_addon))["sub_2"]
    assert (row["state"], row["switch_at"]) == ("pending", END)
    assert row["params"]["phases"][1]["items"] == [{"price": TO_PRICE, "quantity": 4}]


def test_a_further_pairs_archived_price_blocks_the_subscriptions_holding_it() -> None:
    snap = pairs_snapshot(two_item_sub("sub_1"))
    archived = dataclasses.replace(snap.also[0], from_price_active=False)
    row = rows(consolidating(), dataclasses.replace(snap, also=(archived,)))["sub_1"]
    assert row["state"] == "blocked"
    assert row["blocker"].startswith(f"the legacy price {ADDON_OLD} is archived")


def test_a_further_pair_in_another_currency_is_refused_naming_it() -> None:
    snap = pairs_snapshot(two_item_sub("sub_1"))
    euros = dataclasses.replace(
        snap.also[0], from_terms=("eur", "month", 1), to_terms=("usd", "month", 1)
    )
    with pytest.raises(PlanError, match=f"from_price {ADDON_OLD} EUR every month"):
        plan_migration(consolidating(), dataclasses.replace(snap, also=(euros,)))


def test_adopting_merges_items_only_where_pausing_could_split_them_again() -> None:
    day = 86400
    switch = START + 10 * day
    both = ({"price": SEAT_OLD, "quantity": 3}, {"price": ADDON_OLD, "quantity": 2})
    migration = consolidating(switch_at=SwitchAt("at", switch, "t"))
    # A phase spanning the switch is cut there: pausing joins it again, nothing lost.
    spanning = [_phase(START, START + 40 * day, *both)]
    row = rows(migration, pairs_snapshot(two_item_sub("sub_1", schedule=_foreign(spanning))))
    assert row["sub_1"]["action"] == "update_schedule"
    assert row["sub_1"]["params"]["phases"][1]["items"] == [{"price": TO_PRICE, "quantity": 5}]
    # A phase wholly after the switch would have its two items merged for good.
    later = [_phase(START, switch, *both), _phase(switch, START + 40 * day, *both)]
    row = rows(migration, pairs_snapshot(two_item_sub("sub_1", schedule=_foreign(later))))
    assert (row["sub_1"]["state"], row["sub_1"]["action"]) == ("blocked", None)
    assert "items merged into one" in row["sub_1"]["blocker"]


def test_adopting_a_schedule_with_pairs_to_different_prices_restores_exactly() -> None:
    day = 86400
    switch = START + 10 * day
    phases = [
        _phase(
            START,
            START + 40 * day,
            {"price": SEAT_OLD, "quantity": 3},
            {"price": ADDON_OLD, "quantity": 2},
        )
    ]
    migration = consolidating("addon_2026", switch_at=SwitchAt("at", switch, "t"))
    snap = pairs_snapshot(two_item_sub("sub_1", schedule=_foreign(phases)))
    row = rows(migration, snap)["sub_1"]
    assert row["action"] == "update_schedule"
    adopted = row["params"]["phases"]
    ids = {TO_PRICE: SEAT_NEW, f"{TO_PRICE}:addon_2026": ADDON_NEW}
    live_phases = tuple(
        {**p, "items": [{**i, "price": ids.get(i["price"], i["price"])} for i in p["items"]]}
        for p in adopted
    )
    live = LiveSchedule("sub_sched_f", "active", row["params"]["metadata"], live_phases)
    paused = dataclasses.replace(migration, paused=True)
    restored = rows(paused, pairs_snapshot(two_item_sub("sub_1", schedule=live)))["sub_1"]
    assert restored["action"] == "restore_schedule"
    assert [p["items"] for p in restored["params"]["phases"]] == [p["items"] for p in phases]


# --- tax behaviour --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "allowed", "state"),
    [
        ("exclusive", "inclusive", False, "blocked"),
        ("exclusive", "inclusive", True, "pending"),
        ("exclusive", "exclusive", False, "pending"),
        (None, "inclusive", False, "pending"),  # unspecified: nothing to compare
    ],
)
def test_a_move_between_tax_behaviours_is_blocked_unless_allowed(
    old: str | None, new: str, allowed: bool, state: str
) -> None:
    migration = Migration(
        name="raise",
        from_price="seat_2025",
        to_price="seat_2026",
        allow_tax_behavior_change=allowed,
    )
    snap = licensed_snapshot(licensed_sub("sub_a"), from_tax_behavior=old, to_tax_behavior=new)
    row = rows(migration, snap)["sub_a"]
    assert row["state"] == state
    if state == "blocked":
        assert row["blocker"] == (
            f"{SEAT_OLD} is tax exclusive and seat_2026 tax inclusive: what the customer pays "
            "would change with the tax; declare allow_tax_behavior_change: true to move it anyway"
        )


def test_only_subscriptions_holding_the_pair_whose_tax_behaviour_changes_are_blocked() -> None:
    snap = pairs_snapshot(
        two_item_sub("sub_both"),
        sub(
            "sub_seat",
            items=(SubscriptionItem(SEAT_OLD, 1, period_start=START, period_end=END, id="si"),),
        ),
    )
    taxed = dataclasses.replace(
        snap.also[0], from_tax_behavior="inclusive", to_tax_behavior="exclusive"
    )
    found = rows(consolidating(), dataclasses.replace(snap, also=(taxed,)))
    assert (found["sub_both"]["state"], found["sub_seat"]["state"]) == ("blocked", "pending")
    assert found["sub_both"]["blocker"].startswith(f"{ADDON_OLD} is tax inclusive and seat_2026")


# --- the settings lint ----------------------------------------------------------------------


def test_the_settings_lint_names_a_discount_the_phases_would_drop() -> None:
    subscription = sub("sub_1")
    moves = {LEGACY: _move_to_new()}
    row = rows(MIGRATION, snapshot(subscription))["sub_1"]
    phases = row["params"]["phases"]
    assert dropped_settings(subscription, phases, moves) == []  # what plan writes drops nothing
    without = [{k: v for k, v in phase.items() if k != "discounts"} for phase in phases]
    assert dropped_settings(subscription, without, moves) == [
        "the discount co_10 before the switch",
        "the discount co_10 after the switch",
    ]


def _move_to_new() -> Any:
    from reconciler.migrations import _moves

    return _moves(MIGRATION, snapshot())[LEGACY]


def test_an_items_own_discount_and_threshold_stay_on_it_in_both_phases() -> None:
    seat = SubscriptionItem(
        "price_seat", 3, ("txr_1",), id="si_2", discounts=({"coupon": "co_seat"},)
    )
    legacy = SubscriptionItem(
        LEGACY,
        metered=True,
        period_start=START,
        period_end=END,
        id="si_1",
        discounts=({"discount": "di_1"},),
        billing_thresholds={"usage_gte": 5000},
    )
    row = rows(MIGRATION, snapshot(sub("sub_1", items=(legacy, seat))))["sub_1"]
    assert row["state"] == "pending"
    before, after = (phase["items"] for phase in row["params"]["phases"])
    assert before[0]["discounts"] == after[0]["discounts"] == [{"discount": "di_1"}]
    assert after[0]["billing_thresholds"] == {"usage_gte": 5000}  # metered to metered
    assert before[1]["discounts"] == after[1]["discounts"] == [{"coupon": "co_seat"}]


def test_a_usage_threshold_a_licensed_price_cannot_take_blocks_the_move() -> None:
    legacy = SubscriptionItem(
        LEGACY,
        metered=True,
        period_start=START,
        period_end=END,
        id="si_1",
        billing_thresholds={"usage_gte": 5000},
    )
    flat = Migration(name="flat", from_price="legacy_key", to_price="seat", quantity=1)
    row = rows(flat, snapshot(sub("sub_1", items=(legacy,)), to_metered=False))["sub_1"]
    assert (row["state"], row["action"]) == ("blocked", None)
    assert row["blocker"] == (
        "the phases written would drop the item si_1's billing_thresholds after the switch "
        "(only a metered price takes them): take it off the subscription, or exclude the "
        "subscription"
    )


def test_items_merged_into_one_whose_settings_differ_are_blocked_naming_what_would_go() -> None:
    items = (
        SubscriptionItem(SEAT_OLD, 3, period_start=START, period_end=END, id="si_a"),
        SubscriptionItem(
            ADDON_OLD, 2, period_start=START, period_end=END, id="si_c", metadata={"seat": "x"}
        ),
    )
    row = rows(consolidating(), pairs_snapshot(sub("sub_1", items=items)))["sub_1"]
    assert row["state"] == "blocked"
    assert row["blocker"].startswith(
        "the phases written would drop the item si_c's metadata seat after the switch"
    )


def test_an_items_discounts_and_threshold_are_read() -> None:
    read = subscription_from_stripe(
        {
            "id": "sub_1",
            "customer": "cus_1",
            "status": "active",
            "items": {
                "data": [
                    {
                        "id": "si_1",
                        "price": {"id": LEGACY, "recurring": {"usage_type": "metered"}},
                        "discounts": ["di_1", {"object": "discount", "id": "di_2"}],
                        "billing_thresholds": {"usage_gte": 100},
                    }
                ]
            },
        }
    )
    (item,) = read.items
    assert item.discounts == ({"discount": "di_1"}, {"discount": "di_2"})
    assert item.billing_thresholds == {"usage_gte": 100}
