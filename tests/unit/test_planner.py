"""The pure planner on hand-built snapshots: every action, every cascade."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from reconciler.config import load_config
from reconciler.errors import PlanError
from reconciler.model import Desired, Price
from reconciler.plan import Action, FieldChange, Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.snapshot import LiveObject, Snapshot
from tests.strategies import desired_states
from tests.stripe_shapes import snapshot_matching

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(REPO / "billing.yaml")


def actions(plan: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes}


def change(plan: Plan, address: str) -> ResourceChange:
    return next(c for c in plan.changes if c.address == address)


def with_price(desired: Desired, lookup_key: str, **fields: object) -> Desired:
    prices = tuple(
        dataclasses.replace(p, **fields) if p.lookup_key == lookup_key else p
        for p in desired.prices
    )
    return dataclasses.replace(desired, prices=prices)


def edit_live(snapshot: Snapshot, section: str, key: object, **essence: object) -> Snapshot:
    objects = dict(getattr(snapshot, section))
    live = objects[key]
    objects[key] = dataclasses.replace(live, essence={**live.essence, **essence})
    return dataclasses.replace(snapshot, **{section: objects})


def test_empty_account_creates_everything() -> None:
    plan = build_plan(EXAMPLE, Snapshot())
    assert {c.action for c in plan.actionable} == {Action.CREATE}
    assert len(plan.actionable) == 3 + 2 + 5 + 1
    assert change(plan, "migration.video-seconds-to-meter").action is Action.NOOP
    assert plan.summary() == "11 to create, 0 to update, 0 to replace, 0 to archive"
    product = change(plan, "product.prod_video_generation")
    assert product.after["metadata"] == {"managed_by": "stripe-reconcile"}
    assert product.after["default_price"] == "video_seconds_metered"


def test_matching_account_has_no_changes() -> None:
    plan = build_plan(EXAMPLE, snapshot_matching(EXAMPLE))
    assert not plan.has_changes, [c for c in plan.changes if c.action is not Action.NOOP]
    assert plan.summary() == "0 to create, 0 to update, 0 to replace, 0 to archive"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states())
def test_any_matching_account_has_no_changes(desired: Desired) -> None:
    assert not build_plan(desired, snapshot_matching(desired)).has_changes


def test_metadata_change_updates_a_price_in_place() -> None:
    desired = with_price(EXAMPLE, "video_seconds_metered", metadata={"plan": "payg"})
    edited = change(build_plan(desired, snapshot_matching(EXAMPLE)), "price.video_seconds_metered")
    assert edited.action is Action.UPDATE
    assert edited.changes == (FieldChange("metadata.plan", None, "payg"),)


def test_nickname_edit_is_an_update() -> None:
    snapshot = edit_live(
        snapshot_matching(EXAMPLE), "prices", "credits_1000", nickname="Dashboard edit"
    )
    plan = build_plan(EXAMPLE, snapshot)
    edited = change(plan, "price.credits_1000")
    assert edited.action is Action.UPDATE
    assert edited.changes == (FieldChange("nickname", "Dashboard edit", "1,000 credits"),)
    assert edited.stripe_id == snapshot.prices["credits_1000"].stripe_id
    assert plan.summary() == "0 to create, 1 to update, 0 to replace, 0 to archive"


def test_price_archived_in_dashboard_is_unarchived() -> None:
    snapshot = edit_live(snapshot_matching(EXAMPLE), "prices", "credits_1000", active=False)
    edited = change(build_plan(EXAMPLE, snapshot), "price.credits_1000")
    assert edited.action is Action.UPDATE
    assert edited.changes == (FieldChange("active", False, True),)


def test_declared_archive_of_a_default_price_says_where_default_goes() -> None:
    desired = with_price(EXAMPLE, "credits_1000", active=False, default=False)
    archived = change(build_plan(desired, snapshot_matching(EXAMPLE)), "price.credits_1000")
    assert archived.action is Action.ARCHIVE
    assert archived.details == {"default_of": "prod_credit_packs", "default_moves_to": None}
    assert archived.irreversible


def test_amount_change_replaces_and_moves_the_default() -> None:
    desired = with_price(EXAMPLE, "video_seconds_metered", unit_amount_decimal=Decimal("0.3"))
    plan = build_plan(desired, snapshot_matching(EXAMPLE))
    replaced = change(plan, "price.video_seconds_metered")
    assert replaced.action is Action.REPLACE
    assert replaced.reason == "fixed at creation: unit_amount"
    assert replaced.changes == (FieldChange("unit_amount", "0.35", "0.3"),)
    assert replaced.details == {"default_of": "prod_video_generation"}
    assert plan.summary() == "0 to create, 0 to update, 1 to replace, 0 to archive"


def test_decimal_spelling_is_not_a_change() -> None:
    desired = with_price(
        EXAMPLE, "credits_1000", unit_amount=None, unit_amount_decimal=Decimal("1000.00")
    )
    assert not build_plan(desired, snapshot_matching(EXAMPLE)).has_changes


def test_tier_change_replaces() -> None:
    pro = next(p for p in EXAMPLE.prices if p.lookup_key == "pro_video_seconds_overage")
    tiers = (dataclasses.replace(pro.tiers[0], up_to=500), *pro.tiers[1:])
    desired = with_price(EXAMPLE, "pro_video_seconds_overage", tiers=tiers)
    replaced = change(
        build_plan(desired, snapshot_matching(EXAMPLE)), "price.pro_video_seconds_overage"
    )
    assert replaced.action is Action.REPLACE
    assert replaced.changes == (FieldChange("tiers[0].up_to", 1000, 500),)
    assert replaced.reason == "fixed at creation: tiers[0].up_to"


def test_meter_display_name_updates_in_place() -> None:
    snapshot = edit_live(snapshot_matching(EXAMPLE), "meters", "api_requests", display_name="Old")
    updated = change(build_plan(EXAMPLE, snapshot), "meter.api_requests")
    assert updated.action is Action.UPDATE
    assert updated.changes == (FieldChange("display_name", "Old", "API requests"),)


def test_meter_formula_change_is_a_conflict_that_names_the_way_out() -> None:
    snapshot = edit_live(snapshot_matching(EXAMPLE), "meters", "video_seconds", aggregation="last")
    with pytest.raises(PlanError) as caught:
        build_plan(EXAMPLE, snapshot)
    message = str(caught.value)
    assert message.startswith("meter.video_seconds: aggregation 'last' -> 'sum': ")
    assert "Declare a new meter with a new event_name" in message


@pytest.mark.parametrize(
    ("declared", "live", "told"),
    [
        ({"customer_key": "account"}, {}, "customer_key 'stripe_customer_id' -> 'account'"),
        ({"value_key": "seconds"}, {}, "value_key 'value' -> 'seconds'"),
        ({"event_time_window": "hour"}, {}, "event_time_window None -> 'hour'"),
        ({}, {"event_time_window": "day"}, "event_time_window 'day' -> None"),
        (
            {"event_time_window": "hour"},
            {"event_time_window": "day"},
            "event_time_window 'day' -> 'hour'",
        ),
    ],
)
def test_every_fixed_meter_setting_is_a_conflict_that_names_the_way_out(
    declared: dict[str, str], live: dict[str, str], told: str
) -> None:
    meters = tuple(
        dataclasses.replace(m, **declared) if m.event_name == "video_seconds" else m
        for m in EXAMPLE.meters
    )
    snapshot = edit_live(snapshot_matching(EXAMPLE), "meters", "video_seconds", **live)
    with pytest.raises(PlanError) as caught:
        build_plan(dataclasses.replace(EXAMPLE, meters=meters), snapshot)
    message = str(caught.value)
    assert message.startswith(f"meter.video_seconds: {told}: ")
    assert "formula, payload keys and event time window are fixed at creation" in message
    assert "Declare a new meter with a new event_name" in message
    assert "mark 'video_seconds' active: false" in message


def test_a_meter_with_an_event_time_window_plans_clean_against_itself() -> None:
    meters = tuple(
        dataclasses.replace(m, event_time_window="hour") if m.event_name == "api_requests" else m
        for m in EXAMPLE.meters
    )
    desired = dataclasses.replace(EXAMPLE, meters=meters)
    assert not build_plan(desired, snapshot_matching(desired)).has_changes
    created = change(build_plan(desired, Snapshot()), "meter.api_requests")
    assert (created.action, created.after["event_time_window"]) == (Action.CREATE, "hour")
    # A meter without one says nothing of it: its plan reads as before.
    plain = change(build_plan(EXAMPLE, Snapshot()), "meter.video_seconds")
    assert plain.after is not None and "event_time_window" not in plain.after


def test_moving_prices_to_a_new_meter_replaces_them() -> None:
    v2 = dataclasses.replace(EXAMPLE.meters[0], event_name="video_seconds_v2", aggregation="last")
    retired = dataclasses.replace(EXAMPLE.meters[0], active=False)
    prices = tuple(
        dataclasses.replace(p, recurring=dataclasses.replace(p.recurring, meter="video_seconds_v2"))
        if p.meter == "video_seconds" and p.recurring is not None
        else p
        for p in EXAMPLE.prices
    )
    alerts = tuple(dataclasses.replace(a, meter="video_seconds_v2") for a in EXAMPLE.alerts)
    moved = dataclasses.replace(
        EXAMPLE, meters=(retired, v2, *EXAMPLE.meters[1:]), prices=prices, alerts=alerts
    )
    plan = build_plan(moved, snapshot_matching(EXAMPLE))
    assert {c.address: c.action for c in plan.actionable} == {
        "meter.video_seconds": Action.DEACTIVATE,
        "meter.video_seconds_v2": Action.CREATE,
        "price.video_seconds_metered": Action.REPLACE,
        "price.pro_video_seconds_overage": Action.REPLACE,
        'alert.video_seconds_v2["Video seconds passed 50,000"]': Action.CREATE,
    }
    assert change(plan, "price.pro_video_seconds_overage").changes == (
        FieldChange("recurring.meter", "video_seconds", "video_seconds_v2"),
    )
    assert plan.unmanaged == ('alert.video_seconds["Video seconds passed 50,000"]',)


def test_meter_deactivated_in_dashboard_is_reactivated() -> None:
    snapshot = edit_live(snapshot_matching(EXAMPLE), "meters", "api_requests", active=False)
    assert change(build_plan(EXAMPLE, snapshot), "meter.api_requests").action is Action.REACTIVATE


def test_declared_inactive_meter_is_deactivated_not_replaced() -> None:
    meters = tuple(
        dataclasses.replace(m, active=False, aggregation="sum")
        if m.event_name == "api_requests"
        else m
        for m in EXAMPLE.meters
    )
    desired = dataclasses.replace(
        with_price(EXAMPLE, "api_requests_metered", active=False), meters=meters
    )
    plan = build_plan(desired, snapshot_matching(EXAMPLE))
    assert change(plan, "meter.api_requests").action is Action.DEACTIVATE
    assert change(plan, "price.api_requests_metered").action is Action.ARCHIVE


def test_alert_threshold_change_replaces_the_alert() -> None:
    key = ("video_seconds", "Video seconds passed 50,000")
    snapshot = edit_live(snapshot_matching(EXAMPLE), "alerts", key, threshold=40000)
    replaced = change(
        build_plan(EXAMPLE, snapshot), 'alert.video_seconds["Video seconds passed 50,000"]'
    )
    assert replaced.action is Action.REPLACE
    assert replaced.reason == "fixed at creation: threshold"


def test_deactivated_alert_is_reactivated() -> None:
    key = ("video_seconds", "Video seconds passed 50,000")
    snapshot = edit_live(snapshot_matching(EXAMPLE), "alerts", key, active=False)
    plan = build_plan(EXAMPLE, snapshot)
    assert (
        change(plan, 'alert.video_seconds["Video seconds passed 50,000"]').action
        is Action.REACTIVATE
    )


def test_price_not_created_by_us_is_a_conflict_unless_adopted() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    prices = dict(snapshot.prices)
    prices["credits_1000"] = dataclasses.replace(prices["credits_1000"], managed=False)
    snapshot = dataclasses.replace(snapshot, prices=prices)
    with pytest.raises(PlanError) as caught:
        build_plan(EXAMPLE, snapshot)
    assert "price.credits_1000: lookup key 'credits_1000' belongs to price_4" in str(caught.value)
    assert "adopt: true" in str(caught.value)
    adopted = change(
        build_plan(with_price(EXAMPLE, "credits_1000", adopt=True), snapshot), "price.credits_1000"
    )
    assert adopted.action is Action.NOOP  # managed_by metadata already present in the essence


def test_adopting_an_existing_product_writes_only_what_is_declared() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    live = snapshot.products["prod_pro_plan"]
    foreign = LiveObject(live.stripe_id, {**live.essence, "metadata": {}}, managed=False)
    snapshot = dataclasses.replace(
        snapshot, products={**snapshot.products, "prod_pro_plan": foreign}
    )
    assert change(build_plan(EXAMPLE, snapshot), "product.prod_pro_plan").action is Action.NOOP
    renamed = dataclasses.replace(
        snapshot,
        products={
            **snapshot.products,
            "prod_pro_plan": dataclasses.replace(
                foreign, essence={**foreign.essence, "name": "Pro"}
            ),
        },
    )
    adopted = change(build_plan(EXAMPLE, renamed), "product.prod_pro_plan")
    assert adopted.action is Action.UPDATE
    assert adopted.reason == "changed: name (adopted: not created by stripe-reconcile)"
    assert adopted.changes == (FieldChange("name", "Pro", "Pro plan"),)


def test_created_objects_carry_the_marker_and_replacements_too() -> None:
    plan = build_plan(EXAMPLE, Snapshot())
    assert change(plan, "price.credits_1000").after["metadata"] == {
        "managed_by": "stripe-reconcile"
    }
    desired = with_price(EXAMPLE, "credits_1000", unit_amount=900)
    replaced = change(build_plan(desired, snapshot_matching(EXAMPLE)), "price.credits_1000")
    assert replaced.after["metadata"] == {"managed_by": "stripe-reconcile"}
    assert all(not c.field.startswith("metadata") for c in replaced.changes)


def test_metadata_keys_added_elsewhere_are_not_drift() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    live = snapshot.products["prod_pro_plan"]
    extra = {**live.essence, "metadata": {**live.essence["metadata"], "crm_id": "42"}}
    snapshot = dataclasses.replace(
        snapshot,
        products={**snapshot.products, "prod_pro_plan": dataclasses.replace(live, essence=extra)},
    )
    assert not build_plan(EXAMPLE, snapshot).has_changes


def test_empty_metadata_value_unsets_a_key() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    live = snapshot.prices["credits_1000"]
    extra = {**live.essence, "metadata": {**live.essence["metadata"], "legacy": "yes"}}
    snapshot = dataclasses.replace(
        snapshot,
        prices={**snapshot.prices, "credits_1000": dataclasses.replace(live, essence=extra)},
    )
    desired = with_price(EXAMPLE, "credits_1000", metadata={"legacy": ""})
    unset = change(build_plan(desired, snapshot), "price.credits_1000")
    assert unset.action is Action.UPDATE
    assert unset.changes == (FieldChange("metadata.legacy", "yes", ""),)


def test_moved_default_price_is_a_product_update() -> None:
    snapshot = edit_live(
        snapshot_matching(EXAMPLE),
        "products",
        "prod_pro_plan",
        default_price="pro_video_seconds_overage",
    )
    moved = change(build_plan(EXAMPLE, snapshot), "product.prod_pro_plan")
    assert moved.action is Action.UPDATE
    assert moved.changes == (
        FieldChange("default_price", "pro_video_seconds_overage", "pro_monthly_base"),
    )


def test_lookup_key_moved_away_shows_as_create() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    prices = dict(snapshot.prices)
    prices["credits_1000_old"] = prices.pop("credits_1000")
    plan = build_plan(EXAMPLE, dataclasses.replace(snapshot, prices=prices))
    assert change(plan, "price.credits_1000").action is Action.CREATE
    assert plan.unmanaged == ("price.credits_1000_old",)


def test_unmanaged_objects_are_listed_not_touched() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    stray = LiveObject("price_stray", {"active": True}, managed=False)
    archived = LiveObject("price_old", {"active": False}, managed=True)
    snapshot = dataclasses.replace(
        snapshot,
        prices={**snapshot.prices, "stray": stray, "old": archived},
        meters={**snapshot.meters, "tokens": LiveObject("mtr_t", {"active": True})},
        anonymous_prices=("price_anon",),
    )
    plan = build_plan(EXAMPLE, snapshot)
    assert not plan.has_changes
    assert plan.unmanaged == ("meter.tokens", "price price_anon (no lookup key)", "price.stray")


def test_declared_archived_and_absent_is_a_noop() -> None:
    extra = Price(
        lookup_key="gone", product="prod_credit_packs", currency="usd", unit_amount=1, active=False
    )
    desired = dataclasses.replace(EXAMPLE, prices=(*EXAMPLE.prices, extra))
    plan = build_plan(desired, snapshot_matching(EXAMPLE))
    assert change(plan, "price.gone").action is Action.NOOP
    assert not plan.has_changes


def test_plan_carries_config_hash_and_snapshot_fingerprint() -> None:
    snapshot = snapshot_matching(EXAMPLE)
    plan = build_plan(EXAMPLE, snapshot)
    assert plan.config_hash == EXAMPLE.config_hash()
    assert plan.snapshot_fingerprint == snapshot.fingerprint()
    edited = edit_live(snapshot, "prices", "credits_1000", nickname="x")
    assert edited.fingerprint() != snapshot.fingerprint()


def test_plan_json_round_trip() -> None:
    desired = with_price(EXAMPLE, "video_seconds_metered", unit_amount_decimal=Decimal("0.3"))
    plan = build_plan(desired, snapshot_matching(EXAMPLE))
    again = Plan.from_json(json.loads(plan.dumps()))
    assert again == plan
    assert again.to_json() == plan.to_json()
    assert again.dumps() == plan.dumps()


def test_plan_json_refuses_unknown_format_version() -> None:
    data = build_plan(EXAMPLE, Snapshot()).to_json()
    data["format_version"] = "99"
    with pytest.raises(ValueError, match="format_version '99' is not supported"):
        Plan.from_json(data)
