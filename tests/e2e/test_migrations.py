"""Subscription migrations against the emulator, on test clocks, invoices checked by hand.

The seeded account (``reconciler.emulator.seed``) has customers on their own
test clocks, each subscribed to the legacy price ``video_seconds_legacy``
(usage records, 0.35 cents a second, monthly). Customer 0 also pays a 49.00
platform fee with a 10 % coupon and 20 % tax; customer 1 has a schedule we did
not make. Usage records for ten days: customer i reports 60(i+1) + 7d seconds
on day d, so 915, 1515 and 2115 seconds for customers 0, 1 and 2.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.emulator.seed import (
    MIGRATION_CONFIG,
    SeededAccount,
    SeededCustomer,
    seed_legacy_account,
)
from reconciler.errors import ApplyError, PlanError, StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.live import read_snapshot
from reconciler.model import Desired
from reconciler.plan import Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock, report_usage, send_meter_event
from reconciler.snapshot import Snapshot
from tests.e2e.conftest import stripe_reconcile

DAY = 86400
# 0.35 cents x seconds of usage records, rounded half up: 915 -> 320.25, 1515 -> 530.25,
# 2115 -> 740.25 cents.
LEGACY_AMOUNTS = {0: 320, 1: 530, 2: 740}


def desired(**migration: Any) -> Desired:
    base = load_text(MIGRATION_CONFIG, "migrations.yaml")
    changed = dataclasses.replace(base.migrations[0], **migration)
    return dataclasses.replace(base, migrations=(changed,))


def plan_for(config: Desired, gateway: Gateway) -> tuple[Plan, Any]:
    snapshot = read_snapshot(gateway, config)
    return build_plan(config, snapshot), snapshot


def converge(config: Desired, gateway: Gateway) -> Plan:
    """Apply as the CLI does (re-planning after conflicts and replays); the next plan."""
    plan, snapshot = plan_for(config, gateway)

    def replan() -> tuple[Snapshot, Plan]:
        fresh, snap = plan_for(config, gateway)
        return snap, fresh

    apply_until_done(plan, snapshot, gateway, replan=replan)
    return plan_for(config, gateway)[0]


def migration_of(plan: Plan) -> ResourceChange:
    return next(c for c in plan.changes if c.kind == "migration")


def rows(plan: Plan) -> dict[str, dict[str, Any]]:
    return {row["subscription"]: row for row in migration_of(plan).details["subscriptions"]}


def counts(plan: Plan) -> dict[str, int]:
    return dict(migration_of(plan).details["counts"])


def advance(gateway: Gateway, customer: SeededCustomer, to: int) -> None:
    advance_clock(gateway, customer.test_clock, to, wait_seconds=1)


def meter_event(gateway: Gateway, customer: SeededCustomer, value: int, at: int) -> None:
    send_meter_event(
        gateway, "video_seconds", customer.customer, value, at=at, identifier=f"{at}-{value}"
    )


def invoices(gateway: Gateway, customer: SeededCustomer) -> list[dict[str, Any]]:
    found = gateway.get(
        "/v1/invoices",
        {"customer": customer.customer, "limit": 100},
        stripe_version=LEGACY_API_VERSION,
    )["data"]
    return sorted(found, key=lambda invoice: invoice["created"])


def line_amounts(invoice: dict[str, Any]) -> dict[str, int]:
    return {line["price"]["id"]: line["amount"] for line in invoice["lines"]["data"]}


@pytest.fixture
def seeded(emulator: Emulator) -> SeededAccount:
    return seed_legacy_account(emulator, customers=3)


def metered_price(gateway: Gateway) -> str:
    return read_snapshot(gateway).prices["video_seconds_metered"].stripe_id


def test_the_guide_flow_with_and_without_an_existing_schedule(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    config = desired()
    first, _ = plan_for(config, gateway)
    assert counts(first) == {"pending": 3}
    actions = {sub: row["action"] for sub, row in rows(first).items()}
    assert actions == {
        seeded.customers[0].subscription: "create_schedule",
        seeded.customers[1].subscription: "update_schedule",  # someone else's schedule
        seeded.customers[2].subscription: "create_schedule",
    }
    writes = gateway.stats.writes
    after = converge(config, gateway)
    # create the meter and the price, make it the product's default (the product is
    # adopted as it is); then 2 + 1 + 2 schedule writes
    assert gateway.stats.writes - writes == 3 + 5
    assert counts(after) == {"scheduled": 3}
    assert not after.has_changes

    new_price = metered_price(gateway)
    for customer in seeded.customers:
        # Across the switch: period 1 is billed from usage records...
        advance(gateway, customer, customer.period_end + DAY)
        # ...and during period 2 usage goes to the meter: 1000 seconds.
        meter_event(gateway, customer, 1000, customer.period_end + DAY // 2)
        advance(gateway, customer, customer.period_end + 31 * DAY)
        billed = invoices(gateway, customer)
        at_switch = next(i for i in billed if i["period_end"] == customer.period_end)
        after_switch = next(i for i in billed if i["period_start"] == customer.period_end)
        assert line_amounts(at_switch)[seeded.legacy_price] == LEGACY_AMOUNTS[customer.index]
        assert line_amounts(after_switch)[new_price] == 350  # 1000 x 0.35 cents
        assert seeded.legacy_price not in line_amounts(after_switch)

    # Customer 0 kept its platform fee, coupon and tax: 49.00 + 3.50 = 52.50,
    # less 10 % = 47.25, plus 20 % tax = 56.70.
    extras = seeded.customers[0]
    period_2 = next(i for i in invoices(gateway, extras) if i["period_start"] == extras.period_end)
    assert line_amounts(period_2)[seeded.platform_price] == 4900
    assert period_2["subtotal"] == 5250
    assert period_2["total"] == 5670

    # After the switch, the migration is done and plans nothing.
    final, _ = plan_for(config, gateway)
    assert counts(final) == {"done": 3}
    assert not final.has_changes


def test_switch_now_on_classic_billing_mode_is_refused_for_the_usage_it_would_drop(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    """Legacy subscriptions were made before flexible billing mode, so they are classic:
    replacing their metered item mid-period would lose the usage it accrued."""
    config = desired(switch_at=dataclasses.replace(desired().migrations[0].switch_at, kind="now"))
    after = converge(config, gateway)
    assert counts(after) == {"blocked": 3}
    for row in rows(after).values():
        assert row["blocker"].startswith("switch_at now on billing mode classic would drop")
    for customer in seeded.customers:
        sub = gateway.get(f"/v1/subscriptions/{customer.subscription}")
        assert seeded.legacy_price in [item["price"]["id"] for item in sub["items"]["data"]]


def test_fixed_switch_date_is_honoured_and_can_be_moved(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    plain = seeded.customers[2]
    switch = plain.period_start + 20 * DAY  # inside the current period
    config = desired(
        switch_at=dataclasses.replace(
            desired().migrations[0].switch_at, kind="at", at=switch, text="fixed"
        ),
        subscriptions=(plain.subscription,),
    )
    assert counts(converge(config, gateway)) == {"scheduled": 1, "excluded": 2}
    schedule = gateway.get(f"/v1/subscriptions/{plain.subscription}")["schedule"]
    phases = gateway.get(f"/v1/subscription_schedules/{schedule}")["phases"]
    assert phases[0]["end_date"] == switch
    # Moving the date rewrites the same schedule (one write), then all is quiet.
    later = dataclasses.replace(config.migrations[0].switch_at, at=switch + DAY)
    moved = dataclasses.replace(
        config, migrations=(dataclasses.replace(config.migrations[0], switch_at=later),)
    )
    plan, _ = plan_for(moved, gateway)
    assert rows(plan)[plain.subscription]["state"] == "reschedule"
    writes = gateway.stats.writes
    assert counts(converge(moved, gateway)) == {"scheduled": 1, "excluded": 2}
    assert gateway.stats.writes - writes == 1
    phases = gateway.get(f"/v1/subscription_schedules/{schedule}")["phases"]
    assert phases[0]["end_date"] == switch + DAY
    advance(gateway, plain, switch + DAY + 3600)
    sub = gateway.get(f"/v1/subscriptions/{plain.subscription}")
    assert [i["price"]["id"] for i in sub["items"]["data"]] == [metered_price(gateway)]


def test_batches_schedule_a_canary_first_then_the_rest(
    emulator: Emulator, gateway: Gateway
) -> None:
    seed_legacy_account(emulator, customers=23, usage_days=1)
    config = desired(batch=5)
    first, _ = plan_for(config, gateway)
    assert counts(first) == {"pending": 5, "waiting": 18}
    assert counts(converge(config, gateway)) == {"scheduled": 5, "pending": 5, "waiting": 13}
    for _ in range(4):
        converge(config, gateway)
    final, _ = plan_for(config, gateway)
    assert counts(final) == {"scheduled": 23}
    assert not final.has_changes
    schedules = list(gateway.list_all("/v1/subscription_schedules"))
    ours = [s for s in schedules if s["metadata"].get("managed_by") == "stripe-reconcile"]
    assert len(ours) == 23
    assert len({s["subscription"] for s in ours}) == 23


def test_pausing_before_the_switch_restores_every_subscription(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    foreign = seeded.customers[1]
    original = gateway.get(f"/v1/subscription_schedules/{foreign.schedule}")
    converge(desired(), gateway)
    paused = converge(desired(paused=True), gateway)
    assert counts(paused) == {"paused": 3}
    assert not paused.has_changes
    for customer in (seeded.customers[0], seeded.customers[2]):
        sub = gateway.get(f"/v1/subscriptions/{customer.subscription}")
        assert sub["schedule"] is None  # ours, released
    restored = gateway.get(f"/v1/subscription_schedules/{foreign.schedule}")
    assert restored["status"] == "active"
    assert [p["items"] for p in restored["phases"]] == [p["items"] for p in original["phases"]]
    assert [p["end_date"] for p in restored["phases"]] == [
        p["end_date"] for p in original["phases"]
    ]
    assert not any(value for key, value in restored["metadata"].items() if key != "seed")
    # Unpausing schedules them again.
    assert counts(converge(desired(), gateway)) == {"scheduled": 3}


def _crash_between_schedule_and_phases(config: Desired, gateway: Gateway) -> None:
    """Apply ``config`` until the first schedule is made from its subscription, and die
    before that schedule's phases are written."""
    plan, snapshot = plan_for(config, gateway)

    class DiesAfterSchedule:
        def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
            if path.startswith("/v1/subscription_schedules/"):
                raise StripeCallError("killed", method="post", path=path)
            return gateway.write(path, params, **options)

    with pytest.raises(ApplyError):
        apply_plan(plan, snapshot, DiesAfterSchedule(), concurrency=1)  # type: ignore[arg-type]


def test_crash_between_schedule_and_phases_converges(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    config = desired(subscriptions=(seeded.customers[2].subscription,))
    _crash_between_schedule_and_phases(config, gateway)
    half, _ = plan_for(config, gateway)
    row = rows(half)[seeded.customers[2].subscription]
    # Unlabelled, but the account's events say stripe-reconcile created it.
    assert (row["state"], row["action"]) == ("unfinished", "update_schedule")
    after = converge(config, gateway)
    assert counts(after) == {"scheduled": 1, "excluded": 2}
    schedules = [
        s
        for s in gateway.list_all("/v1/subscription_schedules")
        if s["subscription"] == seeded.customers[2].subscription
    ]
    assert len(schedules) == 1


def test_an_unfinished_schedule_someone_gave_phases_is_adopted_with_them(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    """After the crash, someone else writes phases on the unlabelled schedule: it is
    theirs now, and the move keeps their phases (it does not write over them)."""
    customer = seeded.customers[2]
    config = desired(subscriptions=(customer.subscription,))
    _crash_between_schedule_and_phases(config, gateway)
    schedule_id = gateway.get(f"/v1/subscriptions/{customer.subscription}")["schedule"]
    made = gateway.get(
        f"/v1/subscription_schedules/{schedule_id}", stripe_version=LEGACY_API_VERSION
    )
    current = made["phases"][0]
    items = [{"price": item["price"]} for item in current["items"]]
    theirs_end = current["end_date"] + 60 * DAY
    gateway.post(
        f"/v1/subscription_schedules/{schedule_id}",
        {
            "phases": [
                {
                    "items": items,
                    "start_date": current["start_date"],
                    "end_date": current["end_date"],
                },
                {"items": items, "end_date": theirs_end},
            ]
        },
        stripe_version=LEGACY_API_VERSION,
    )
    row = rows(plan_for(config, gateway)[0])[customer.subscription]
    assert (row["state"], row["action"]) == ("pending", "update_schedule")
    assert row["params"]["metadata"]["adopted"] == "true"
    assert counts(converge(config, gateway)) == {"scheduled": 1, "excluded": 2}
    kept = gateway.get(
        f"/v1/subscription_schedules/{schedule_id}", stripe_version=LEGACY_API_VERSION
    )
    assert [p["end_date"] for p in kept["phases"]] == [current["end_date"], theirs_end]
    new_price = read_snapshot(gateway, config).prices["video_seconds_metered"].stripe_id
    assert [i["price"] for i in kept["phases"][1]["items"]] == [new_price]


def test_usage_parity_gate_blocks_then_passes(gateway: Gateway, seeded: SeededAccount) -> None:
    plain = seeded.customers[2]
    config = desired(require_usage_parity=Decimal("0.5"), subscriptions=(plain.subscription,))
    converge(dataclasses.replace(config, migrations=()), gateway)  # the meter and price
    # Finish period 1 with usage records only, then look: no meter events at all.
    advance(gateway, plain, plain.period_end + DAY)
    blocked, _ = plan_for(config, gateway)
    row = rows(blocked)[plain.subscription]
    assert row["state"] == "blocked"
    assert row["blocker"].startswith("usage parity: meter events 0 vs usage records 2115")
    # Dual-write in period 2: records and events agree within 0.5 %.
    start = plain.period_end
    report_usage(gateway, plain.legacy_item, 1000, start + 3600)
    meter_event(gateway, plain, 998, start + 3600)
    advance(gateway, plain, start + 31 * DAY)
    passed, _ = plan_for(config, gateway)
    assert rows(passed)[plain.subscription]["state"] == "pending"


def test_legacy_aggregation_without_meter_equivalent_is_refused(gateway: Gateway) -> None:
    converge(dataclasses.replace(desired(), migrations=()), gateway)
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_video_generation",
            "currency": "usd",
            "unit_amount": 1,
            "lookup_key": "gpu_peak_legacy",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "max"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    config = desired(from_price="gpu_peak_legacy")
    with pytest.raises(PlanError, match="aggregates usage records with 'max'"):
        plan_for(config, gateway)


def test_a_schedule_that_would_pass_ten_phases_is_blocked(
    gateway: Gateway, seeded: SeededAccount
) -> None:
    foreign = seeded.customers[1]
    current = gateway.get(f"/v1/subscription_schedules/{foreign.schedule}")["phases"][0]
    item = {"price": seeded.legacy_price}
    start, end = current["start_date"], current["end_date"]
    # Ten phases, the first spanning the switch at the period end: a split makes eleven.
    phases = [{"start_date": start, "end_date": end + DAY, "items": [item]}]
    phases += [{"end_date": end + (n + 1) * DAY, "items": [item]} for n in range(1, 9)]
    phases.append({"items": [item]})
    gateway.post(
        f"/v1/subscription_schedules/{foreign.schedule}",
        {"phases": phases},
        stripe_version=LEGACY_API_VERSION,
    )
    plan, _ = plan_for(desired(), gateway)
    row = rows(plan)[foreign.subscription]
    assert row["state"] == "blocked"
    assert "would need 11 phases (Stripe allows 10)" in row["blocker"]
    assert counts(plan) == {"pending": 2, "blocked": 1}


def test_status_command_shows_each_subscription(
    emulator: Emulator, seeded: SeededAccount, tmp_path: Path
) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(MIGRATION_CONFIG)

    def status(*extra: str) -> str:
        done = stripe_reconcile("status", "-f", str(config), *extra, url=emulator.url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    text = status()
    assert text.startswith(f"migration video-seconds-to-meter: {seeded.legacy_price} -> ")
    assert "  3 to schedule\n" in text
    for customer in seeded.customers:
        assert customer.subscription in text
    data = json.loads(status("--format", "json"))
    states = {r["subscription"]: r["state"] for r in data["migrations"][0]["subscriptions"]}
    assert states == {c.subscription: "pending" for c in seeded.customers}
