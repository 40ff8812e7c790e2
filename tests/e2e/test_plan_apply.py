"""plan and apply against the emulator: convergence, dashboard edits, replaces, request counts."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_config
from reconciler.errors import PlanError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.model import Desired, Meter, Price, Product
from reconciler.plan import Action, FieldChange, Plan
from reconciler.planner import build_plan
from tests.e2e.conftest import EXAMPLE_CATALOG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(EXAMPLE_CATALOG)


def plan_for(desired: Desired, gateway: Gateway) -> Plan:
    """As the plan command does: the account read for what billing.yaml declares."""
    return build_plan(desired, read_snapshot(gateway, desired))


def converge(desired: Desired, gateway: Gateway) -> Plan:
    """Apply the plan, then return the next plan (which must be empty)."""
    snapshot = read_snapshot(gateway)
    apply_plan(build_plan(desired, snapshot), snapshot, gateway)
    return plan_for(desired, gateway)


def actions(plan: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.actionable}


def with_price(desired: Desired, lookup_key: str, **fields: object) -> Desired:
    prices = tuple(
        dataclasses.replace(p, **fields) if p.lookup_key == lookup_key else p
        for p in desired.prices
    )
    return dataclasses.replace(desired, prices=prices)


def price_id(gateway: Gateway, lookup_key: str) -> str:
    return read_snapshot(gateway).prices[lookup_key].stripe_id


def test_empty_account_plans_all_create(gateway: Gateway) -> None:
    plan = plan_for(EXAMPLE, gateway)
    assert set(actions(plan).values()) == {Action.CREATE}
    assert len(plan.actionable) == 11
    assert plan.unmanaged == ()


def test_apply_converges_on_the_example(gateway: Gateway) -> None:
    after = converge(EXAMPLE, gateway)
    assert not after.has_changes, actions(after)
    products = {p["id"]: p for p in gateway.list_all("/v1/products")}
    assert products["prod_pro_plan"]["default_price"] == price_id(gateway, "pro_monthly_base")
    tiered = gateway.get(
        f"/v1/prices/{price_id(gateway, 'pro_video_seconds_overage')}", {"expand": ["tiers"]}
    )
    assert [t["up_to"] for t in tiered["tiers"]] == [1000, 10000, None]
    assert tiered["tiers"][2]["unit_amount_decimal"] == "0.25"


def test_rerunning_apply_makes_no_writes(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    writes_before = gateway.stats.writes
    snapshot = read_snapshot(gateway)
    result = apply_plan(build_plan(EXAMPLE, snapshot), snapshot, gateway)
    assert result.done == []
    assert gateway.stats.writes == writes_before


def test_same_plan_applied_twice_replays_instead_of_duplicating(gateway: Gateway) -> None:
    snapshot = read_snapshot(gateway)
    plan = build_plan(EXAMPLE, snapshot)
    apply_plan(plan, snapshot, gateway)
    apply_plan(plan, snapshot, gateway)  # as after a crash: same keys, Stripe's first answers
    prices = list(gateway.list_all("/v1/prices"))
    assert len(prices) == 5
    assert len(list(gateway.list_all("/v1/billing/meters"))) == 2
    assert not plan_for(EXAMPLE, gateway).has_changes


def test_dashboard_nickname_edit_shows_as_update(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    gateway.post(f"/v1/prices/{price_id(gateway, 'credits_1000')}", {"nickname": "Sale!"})
    plan = plan_for(EXAMPLE, gateway)
    (change,) = plan.actionable
    assert (change.address, change.action) == ("price.credits_1000", Action.UPDATE)
    assert change.changes == (FieldChange("nickname", "Sale!", "1,000 credits"),)
    assert not converge(EXAMPLE, gateway).has_changes


def test_dashboard_archived_price_is_unarchived(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    gateway.post(f"/v1/prices/{price_id(gateway, 'api_requests_metered')}", {"active": False})
    (change,) = plan_for(EXAMPLE, gateway).actionable
    assert change.changes == (FieldChange("active", False, True),)
    assert not converge(EXAMPLE, gateway).has_changes


def test_dashboard_deactivated_meter_is_reactivated(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    meter = read_snapshot(gateway).meters["api_requests"].stripe_id
    gateway.post(f"/v1/billing/meters/{meter}/deactivate")
    assert actions(plan_for(EXAMPLE, gateway)) == {"meter.api_requests": Action.REACTIVATE}
    assert not converge(EXAMPLE, gateway).has_changes


def test_lookup_key_moved_in_dashboard_is_a_conflict(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_credit_packs",
            "currency": "usd",
            "unit_amount": 900,
            "lookup_key": "credits_1000",
            "transfer_lookup_key": True,
        },
    )
    with pytest.raises(PlanError, match="lookup key 'credits_1000' belongs to price_"):
        plan_for(EXAMPLE, gateway)


def test_price_amount_change_replaces_moves_default_and_archives_old(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    old = price_id(gateway, "video_seconds_metered")
    cheaper = with_price(EXAMPLE, "video_seconds_metered", unit_amount_decimal=Decimal("0.3"))
    plan = plan_for(cheaper, gateway)
    assert actions(plan) == {"price.video_seconds_metered": Action.REPLACE}
    assert not converge(cheaper, gateway).has_changes
    new = price_id(gateway, "video_seconds_metered")
    assert new != old
    assert gateway.get(f"/v1/prices/{old}")["active"] is False
    assert gateway.get(f"/v1/prices/{old}")["lookup_key"] is None
    assert gateway.get("/v1/products/prod_video_generation")["default_price"] == new


def test_interrupted_replace_is_finished_by_the_next_plan(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    old = price_id(gateway, "credits_1000")
    # The first half of a replace: the new price took the key, the old is still active.
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_credit_packs",
            "currency": "usd",
            "unit_amount": 1200,
            "nickname": "1,000 credits",
            "lookup_key": "credits_1000",
            "transfer_lookup_key": True,
            "metadata": {"managed_by": "stripe-reconcile"},
        },
    )
    pricier = with_price(EXAMPLE, "credits_1000", unit_amount=1200)
    plan = plan_for(pricier, gateway)
    assert actions(plan) == {
        "product.prod_credit_packs": Action.UPDATE,
        f"price.{old}": Action.ARCHIVE,
    }
    assert not converge(pricier, gateway).has_changes
    assert gateway.get(f"/v1/prices/{old}")["active"] is False


def test_moving_prices_to_a_new_meter_converges(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    old_meter = read_snapshot(gateway).meters["video_seconds"].stripe_id
    v2 = dataclasses.replace(EXAMPLE.meters[0], event_name="video_seconds_v2", aggregation="last")
    retired = dataclasses.replace(EXAMPLE.meters[0], active=False)
    prices = tuple(
        dataclasses.replace(p, recurring=dataclasses.replace(p.recurring, meter="video_seconds_v2"))
        if p.meter == "video_seconds" and p.recurring is not None
        else p
        for p in EXAMPLE.prices
    )
    alerts = tuple(
        dataclasses.replace(a, meter="video_seconds_v2", active=True) for a in EXAMPLE.alerts
    )
    moved = dataclasses.replace(
        EXAMPLE, meters=(retired, v2, *EXAMPLE.meters[1:]), prices=prices, alerts=alerts
    )
    assert not converge(moved, gateway).has_changes
    assert gateway.get(f"/v1/billing/meters/{old_meter}")["status"] == "inactive"
    snapshot = read_snapshot(gateway)
    new_price = gateway.get(f"/v1/prices/{snapshot.prices['video_seconds_metered'].stripe_id}")
    assert new_price["recurring"]["meter"] == snapshot.meters["video_seconds_v2"].stripe_id


def test_retiring_objects_converges(gateway: Gateway) -> None:
    converge(EXAMPLE, gateway)
    meters = tuple(
        dataclasses.replace(m, active=False) if m.event_name == "api_requests" else m
        for m in EXAMPLE.meters
    )
    alerts = tuple(dataclasses.replace(a, active=False) for a in EXAMPLE.alerts)
    retired = dataclasses.replace(
        with_price(EXAMPLE, "credits_1000", active=False, default=False),
        meters=meters,
        alerts=alerts,
    )
    retired = with_price(retired, "api_requests_metered", active=False)
    assert actions(plan_for(retired, gateway)) == {
        "meter.api_requests": Action.DEACTIVATE,
        "price.api_requests_metered": Action.ARCHIVE,
        "price.credits_1000": Action.ARCHIVE,
        'alert.video_seconds["Video seconds passed 50,000"]': Action.DEACTIVATE,
    }
    assert not converge(retired, gateway).has_changes
    assert gateway.get("/v1/products/prod_credit_packs")["default_price"] is None


def test_read_cost_is_pages_not_objects(gateway: Gateway) -> None:
    meters = tuple(
        Meter(event_name=f"m{i}", display_name=f"Meter {i}", aggregation="sum") for i in range(50)
    )
    prices = tuple(
        Price(
            lookup_key=f"p{i}",
            product="prod_bulk",
            currency="usd",
            unit_amount=i,
            recurring=None,
        )
        for i in range(1000)
    )
    bulk = Desired(
        mode="test", products=(Product(id="prod_bulk", name="Bulk"),), meters=meters, prices=prices
    )
    snapshot = read_snapshot(gateway)
    plan = build_plan(bulk, snapshot)
    steps_before = gateway.stats.requests
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Seed through the reconciler itself, concurrently to keep the test short.
        creates = [c for c in plan.actionable if c.kind != "price"]
        apply_plan(dataclasses.replace(plan, changes=tuple(creates)), snapshot, gateway)
        seeded = read_snapshot(gateway)
        price_plan = build_plan(bulk, seeded)
        list(
            pool.map(
                lambda c: apply_plan(
                    dataclasses.replace(price_plan, changes=(c,)), seeded, gateway
                ),
                price_plan.actionable,
            )
        )
    assert gateway.stats.requests > steps_before
    before = gateway.stats.requests
    final = plan_for(bulk, gateway)
    reads = gateway.stats.requests - before
    assert not final.has_changes
    # products + meters + prices + alerts, 100 a page, at least one page each
    expected = 1 + math.ceil(50 / 100) + math.ceil(1000 / 100) + 1
    assert reads == expected == 13
