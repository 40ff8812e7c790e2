"""A switch inside a period that moves a subscription between free and paid is billed at
once (Stripe resets the billing date), and a ``now`` switch waits while the subscription
is at Stripe's per-subscription invoice limits (10 a minute, 20 a day)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from reconciler.invoice_limits import (
    INVOICES_PER_DAY,
    INVOICES_PER_MINUTE,
    declared_charges,
    invoice_limit_reached,
    live_charges,
    reset_phrase,
)
from reconciler.live_subscriptions import (
    LiveSubscription,
    SubscriptionItem,
    subscription_from_stripe,
)
from reconciler.migrations import (
    MigrationSnapshot,
    plan_migration,
    resetting,
)
from reconciler.model import Migration, Price, Recurring, SwitchAt, Tier

START, END = 1_767_225_600, 1_769_904_000  # 2026-01-01, 2026-02-01
NOW = START + 10 * 86_400
OLD, NEW = "price_old", "price_new"
MOVE_NOW = Migration(
    name="flat", from_price="old", to_price="new", switch_at=SwitchAt("now", None, "now")
)
AT_PERIOD_END = Migration(name="flat", from_price="old", to_price="new")


def _licensed(**fields: Any) -> dict[str, Any]:
    return {"id": "price_x", "recurring": {"usage_type": "licensed"}, **fields}


@pytest.mark.parametrize(
    ("price", "quantity", "charges"),
    [
        (_licensed(unit_amount=1000), 1, True),
        (_licensed(unit_amount=1000), None, True),
        (_licensed(unit_amount_decimal="0.5"), 2, True),
        (_licensed(unit_amount=0), 4, False),
        (_licensed(unit_amount=1000), 0, False),
        (_licensed(billing_scheme="tiered", unit_amount=None), 1, True),
        ({"id": "p", "recurring": {"usage_type": "metered"}, "unit_amount": 5}, None, False),
        ({"id": "p", "unit_amount": 500}, 1, False),  # one-time: never on a subscription's cycle
    ],
)
def test_an_item_charges_up_front_when_licensed_above_zero(
    price: dict[str, Any], quantity: int | None, charges: bool
) -> None:
    assert live_charges(price, quantity) is charges


def test_a_declared_price_charges_by_its_amount_or_any_tier() -> None:
    monthly = Recurring(interval="month")
    assert declared_charges(Price("a", "prod", "usd", recurring=monthly, unit_amount=100))
    assert not declared_charges(Price("b", "prod", "usd", recurring=monthly, unit_amount=0))
    tiers = (Tier(up_to=5, unit_amount=0), Tier(up_to=None, flat_amount=2000))
    assert declared_charges(Price("c", "prod", "usd", recurring=monthly, tiers=tiers))
    metered = Recurring(interval="month", usage="metered", meter="calls")
    assert not declared_charges(Price("d", "prod", "usd", recurring=metered, unit_amount=100))
    assert not declared_charges(Price("e", "prod", "usd", unit_amount=100))
    assert not declared_charges(
        Price("f", "prod", "usd", recurring=monthly, unit_amount_decimal=Decimal("0"))
    )


def test_only_a_move_between_free_and_paid_is_billed_at_once() -> None:
    assert reset_phrase(True, True) is None
    assert reset_phrase(False, False) is None
    assert reset_phrase(False, True) == (
        "it goes from free to paid at the switch, so Stripe invoices it then and its billing "
        "period restarts there"
    )
    assert "from paid to free" in (reset_phrase(True, False) or "")


def test_the_day_limit_counts_the_last_86400_seconds_and_says_when_it_frees() -> None:
    oldest = NOW - 86_000
    day = [oldest + 60 * n for n in range(INVOICES_PER_DAY)]
    assert invoice_limit_reached(day[1:], NOW) is None  # 19: one more is allowed
    assert invoice_limit_reached(day, NOW) == (
        "switching now invoices it at once, and it had 20 new invoices in the last day: "
        "Stripe allows 20 a day per subscription, so it switches on an apply after "
        "2026-01-11 00:06:40 UTC"
    )
    expired = [NOW - 86_400, *day[1:]]  # exactly a day old: out of the window
    assert invoice_limit_reached(expired, NOW) is None
    future = [NOW + 5, *day[1:]]  # created after the present (another clock): not counted
    assert invoice_limit_reached(future, NOW) is None


def test_the_minute_limit_counts_the_last_60_seconds() -> None:
    burst = [NOW - 50 + n for n in range(INVOICES_PER_MINUTE)]
    reason = invoice_limit_reached(burst, NOW)
    assert reason is not None
    assert "10 new invoices in the last minute: Stripe allows 10 a minute" in reason
    assert reason.endswith("2026-01-11 00:00:10 UTC")
    assert invoice_limit_reached(burst[1:], NOW) is None
    assert invoice_limit_reached([t - 11 for t in burst], NOW) is None


def metered_only(sub_id: str, **fields: Any) -> LiveSubscription:
    """Free: a metered item only (nothing charged up front), in flexible billing mode
    (classic mode cannot switch a metered item now)."""
    item = SubscriptionItem(price=OLD, metered=True, period_start=START, period_end=END, id="si_m")
    return LiveSubscription(
        sub_id, f"cus_{sub_id}", "active", items=(item,), billing_mode="flexible", **fields
    )


def paid_seat(sub_id: str) -> LiveSubscription:
    item = SubscriptionItem(
        price=OLD, quantity=2, period_start=START, period_end=END, id="si_s", charges=True
    )
    return LiveSubscription(sub_id, f"cus_{sub_id}", "active", items=(item,))


def snap(*subs: LiveSubscription, **fields: Any) -> MigrationSnapshot:
    settings: dict[str, Any] = {"read_at": NOW, "to_metered": False, "to_charges": True}
    settings.update(fields)
    return MigrationSnapshot(from_price_id=OLD, to_price_id=NEW, subscriptions=subs, **settings)


def rows(migration: Migration, read: MigrationSnapshot) -> dict[str, dict[str, Any]]:
    change = plan_migration(migration, read)
    return {row["subscription"]: dict(row) for row in change.details["subscriptions"]}


def test_a_now_switch_from_free_to_paid_says_it_is_billed_at_once() -> None:
    row = rows(MOVE_NOW, snap(metered_only("sub_1")))["sub_1"]
    assert (row["state"], row["action"]) == ("pending", "create_schedule")
    assert row["note"].startswith("it goes from free to paid at the switch")


def test_a_fixed_switch_inside_the_period_says_so_and_one_at_the_period_end_does_not() -> None:
    inside = dataclasses.replace(MOVE_NOW, switch_at=SwitchAt("at", NOW + 3600, "t"))
    assert "free to paid" in rows(inside, snap(metered_only("sub_1")))["sub_1"]["note"]
    at_end = rows(AT_PERIOD_END, snap(metered_only("sub_1")))["sub_1"]
    assert at_end["action"] == "create_schedule"
    assert "note" not in at_end


def test_a_move_that_stays_paid_or_stays_free_is_not_billed_at_once() -> None:
    stays_paid = rows(MOVE_NOW, snap(paid_seat("sub_1")))["sub_1"]
    assert "note" not in stays_paid
    stays_free = rows(MOVE_NOW, snap(metered_only("sub_1"), to_metered=True, to_charges=False))
    assert "note" not in stays_free["sub_1"]
    free_target = rows(MOVE_NOW, snap(paid_seat("sub_1"), to_charges=False))["sub_1"]
    assert "from paid to free" in free_target["note"]


def test_another_paid_item_keeps_the_subscription_paid_across_the_move() -> None:
    base = paid_seat("sub_1")
    platform = SubscriptionItem(price="price_platform", quantity=1, id="si_p", charges=True)
    both = dataclasses.replace(base, items=(*base.items, platform))
    assert "note" not in rows(MOVE_NOW, snap(both, to_charges=False))["sub_1"]


def test_a_now_switch_at_the_day_limit_waits_and_names_the_limit() -> None:
    day = tuple(NOW - 3600 * n for n in range(1, INVOICES_PER_DAY + 1))
    read = snap(metered_only("sub_1"), metered_only("sub_2"), recent_invoices={"sub_1": day})
    found = rows(MOVE_NOW, read)
    assert (found["sub_1"]["state"], found["sub_1"]["action"]) == ("deferred", None)
    assert "Stripe allows 20 a day per subscription" in found["sub_1"]["blocker"]
    assert found["sub_2"]["action"] == "create_schedule"
    assert plan_migration(MOVE_NOW, read).reason == "1 to schedule, 1 deferred"


def test_the_limit_does_not_hold_back_a_switch_that_bills_nothing_at_once() -> None:
    day = tuple(NOW - 60 * n for n in range(1, 40))
    read = snap(paid_seat("sub_1"), recent_invoices={"sub_1": day})
    assert rows(MOVE_NOW, read)["sub_1"]["action"] == "create_schedule"
    at_end = snap(metered_only("sub_1"), recent_invoices={"sub_1": day})
    assert rows(AT_PERIOD_END, at_end)["sub_1"]["action"] == "create_schedule"


def test_on_a_test_clock_the_limit_counts_at_the_clocks_time() -> None:
    clock_now = NOW + 30 * 86_400
    day = tuple(clock_now - n for n in range(1, INVOICES_PER_DAY + 1))
    on_clock = metered_only("sub_1", test_clock="clock_1")
    late = snap(on_clock, recent_invoices={"sub_1": day}, clock_times={"clock_1": clock_now})
    assert rows(MOVE_NOW, late)["sub_1"]["state"] == "deferred"
    later = dataclasses.replace(late, clock_times={"clock_1": clock_now + 86_400})
    assert rows(MOVE_NOW, later)["sub_1"]["action"] == "create_schedule"


def test_only_now_switches_that_bill_at_once_are_read_for_recent_invoices() -> None:
    read = snap(metered_only("sub_free"), paid_seat("sub_paid"))
    assert [s.id for s in resetting(MOVE_NOW, read)] == ["sub_free"]
    assert resetting(AT_PERIOD_END, read) == []


def test_an_item_is_read_as_charging_from_its_expanded_price() -> None:
    obj = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "active",
        "items": {
            "data": [
                {"id": "si_1", "quantity": 2, "price": _licensed(id="price_a", unit_amount=900)},
                {"id": "si_2", "price": {"id": "price_b", "recurring": {"usage_type": "metered"}}},
                {"id": "si_3", "quantity": 1, "price": "price_c"},
            ]
        },
    }
    items = subscription_from_stripe(obj).items
    assert [i.charges for i in items] == [True, False, False]


def test_plan_and_status_show_the_note_beside_the_write() -> None:
    from reconciler.render._lines import subscription_lines
    from reconciler.render.status import _row

    row = rows(MOVE_NOW, snap(metered_only("sub_1")))["sub_1"]
    (line,) = subscription_lines({"subscriptions": [row]}, limit=None)
    assert line == (
        "sub_1 (cus_sub_1): schedule (from the subscription, then phases), switch at now; "
        "it goes from free to paid at the switch, so Stripe invoices it then and its billing "
        "period restarts there"
    )
    assert _row(row)[-1] == row["note"]
