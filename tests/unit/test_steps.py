"""Pure step building: a plan in, the exact writes out, with no server.

``plan_steps`` asks each kind's spec for the steps of its changes (and for the
writes that follow from several changes, such as default prices), orders them
by phase, and stamps each with its change's evidence. Parameters that name
objects made in the same apply resolve against the ids known when they run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_config, load_text
from reconciler.errors import ReconcileError
from reconciler.kinds import Kind
from reconciler.kinds.registry import spec_for
from reconciler.plan import Action, FieldChange, Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.snapshot import Snapshot
from reconciler.steps import (
    PHASE_ALERTS,
    PHASE_CATALOG,
    PHASE_DEFAULTS,
    PHASE_MIGRATIONS,
    PHASE_PRICES,
    PHASE_RETIRE,
    PHASE_UNSET_DEFAULTS,
    Ids,
    Step,
)
from reconciler.versions import LEGACY_API_VERSION
from reconciler.writes import plan_steps
from tests.stripe_shapes import snapshot_matching

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = dataclasses.replace(load_config(REPO / "billing.yaml"), migrations=())
IDS = Ids(
    {
        "meter": {"video_seconds": "mtr_v", "api_requests": "mtr_a"},
        "price": {
            "video_seconds_metered": "price_v",
            "pro_monthly_base": "price_p",
            "credits_1000": "price_c",
        },
    }
)


def outline(steps: list[Step]) -> list[tuple[int, str, str, str]]:
    return [(s.phase, s.address, s.name, s.path(IDS)) for s in steps]


def step(steps: list[Step], address: str, name: str) -> Step:
    return next(s for s in steps if s.address == address and s.name == name)


def edit_live(snapshot: Snapshot, section: str, key: object, **essence: Any) -> Snapshot:
    objects = dict(getattr(snapshot, section))
    objects[key] = dataclasses.replace(objects[key], essence={**objects[key].essence, **essence})
    return dataclasses.replace(snapshot, **{section: objects})


def test_an_empty_account_gets_every_object_in_phase_order() -> None:
    steps = plan_steps(build_plan(EXAMPLE, Snapshot()))
    assert outline(steps) == [
        (PHASE_CATALOG, "product.prod_video_generation", "create", "/v1/products"),
        (PHASE_CATALOG, "product.prod_pro_plan", "create", "/v1/products"),
        (PHASE_CATALOG, "product.prod_credit_packs", "create", "/v1/products"),
        (PHASE_CATALOG, "meter.video_seconds", "create", "/v1/billing/meters"),
        (PHASE_CATALOG, "meter.api_requests", "create", "/v1/billing/meters"),
        (PHASE_PRICES, "price.video_seconds_metered", "create", "/v1/prices"),
        (PHASE_PRICES, "price.api_requests_metered", "create", "/v1/prices"),
        (PHASE_PRICES, "price.pro_monthly_base", "create", "/v1/prices"),
        (PHASE_PRICES, "price.pro_video_seconds_overage", "create", "/v1/prices"),
        (PHASE_PRICES, "price.credits_1000", "create", "/v1/prices"),
        (
            PHASE_DEFAULTS,
            "product.prod_credit_packs",
            "default-price",
            "/v1/products/prod_credit_packs",
        ),
        (PHASE_DEFAULTS, "product.prod_pro_plan", "default-price", "/v1/products/prod_pro_plan"),
        (
            PHASE_DEFAULTS,
            "product.prod_video_generation",
            "default-price",
            "/v1/products/prod_video_generation",
        ),
        (
            PHASE_ALERTS,
            'alert.video_seconds["Video seconds passed 50,000"]',
            "create",
            "/v1/billing/alerts",
        ),
    ]
    assert all(s.evidence.startswith("sha256:") for s in steps)
    made = {s.remember for s in steps if s.remember is not None}
    assert ("meter", "video_seconds") in made
    assert ("price", "credits_1000") in made


def test_create_parameters_resolve_ids_of_objects_made_earlier() -> None:
    steps = plan_steps(build_plan(EXAMPLE, Snapshot()))
    marker = {"managed_by": "stripe-reconcile"}
    assert step(steps, "product.prod_pro_plan", "create").params(IDS) == {
        "id": "prod_pro_plan",
        "name": "Pro plan",
        "description": "Monthly plan with 1,000 included video seconds and overage.",
        "metadata": marker,
    }
    assert step(steps, "meter.api_requests", "create").params(IDS) == {
        "event_name": "api_requests",
        "display_name": "API requests",
        "default_aggregation": {"formula": "count"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }
    assert step(steps, "price.pro_video_seconds_overage", "create").params(IDS) == {
        "product": "prod_pro_plan",
        "currency": "usd",
        "lookup_key": "pro_video_seconds_overage",
        "metadata": marker,
        "nickname": "Pro video seconds (first 1,000 included)",
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "usage_type": "metered",
            "meter": "mtr_v",
        },
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": 1000, "unit_amount_decimal": "0"},
            {"up_to": 10000, "unit_amount_decimal": "0.3"},
            {"up_to": "inf", "unit_amount_decimal": "0.25"},
        ],
    }
    assert step(steps, "price.credits_1000", "create").params(IDS) == {
        "product": "prod_credit_packs",
        "currency": "usd",
        "lookup_key": "credits_1000",
        "metadata": marker,
        "nickname": "1,000 credits",
        "unit_amount_decimal": "1000",
    }
    assert step(steps, "product.prod_pro_plan", "default-price").params(IDS) == {
        "default_price": "price_p"
    }
    alert = 'alert.video_seconds["Video seconds passed 50,000"]'
    assert step(steps, alert, "create").params(IDS) == {
        "alert_type": "usage_threshold",
        "title": "Video seconds passed 50,000",
        "usage_threshold": {"gte": 50000, "meter": "mtr_v", "recurrence": "one_time"},
    }


def test_a_matching_account_needs_no_write() -> None:
    assert plan_steps(build_plan(EXAMPLE, snapshot_matching(EXAMPLE))) == []


def test_replacing_a_default_price_moves_the_key_and_the_default_then_archives() -> None:
    live = edit_live(snapshot_matching(EXAMPLE), "prices", "pro_monthly_base", unit_amount="9900")
    steps = plan_steps(build_plan(EXAMPLE, live))
    assert outline(steps) == [
        (PHASE_PRICES, "price.pro_monthly_base", "create", "/v1/prices"),
        (PHASE_DEFAULTS, "product.prod_pro_plan", "default-price", "/v1/products/prod_pro_plan"),
        (PHASE_RETIRE, "price.pro_monthly_base", "archive-old", "/v1/prices/price_2"),
    ]
    create = step(steps, "price.pro_monthly_base", "create").params(IDS)
    assert create["transfer_lookup_key"] is True
    assert create["unit_amount_decimal"] == "4900"
    assert step(steps, "price.pro_monthly_base", "archive-old").params(IDS) == {"active": False}


def test_archiving_a_default_price_lets_its_product_go_of_it_first() -> None:
    desired = dataclasses.replace(
        EXAMPLE,
        prices=tuple(
            dataclasses.replace(p, active=False, default=False)
            if p.lookup_key == "credits_1000"
            else p
            for p in EXAMPLE.prices
        ),
    )
    steps = plan_steps(build_plan(desired, snapshot_matching(EXAMPLE)))
    assert outline(steps) == [
        (
            PHASE_UNSET_DEFAULTS,
            "price.credits_1000",
            "unset-default",
            "/v1/products/prod_credit_packs",
        ),
        (PHASE_RETIRE, "price.credits_1000", "archive", "/v1/prices/price_4"),
    ]
    assert step(steps, "price.credits_1000", "unset-default").params(IDS) == {"default_price": ""}


def test_updates_send_only_what_changed() -> None:
    live = edit_live(snapshot_matching(EXAMPLE), "products", "prod_pro_plan", name="Pro")
    live = edit_live(live, "prices", "credits_1000", nickname="Credits")
    live = edit_live(live, "meters", "api_requests", display_name="Requests")
    steps = plan_steps(build_plan(EXAMPLE, live))
    assert [(s.address, s.name, s.path(IDS), s.params(IDS)) for s in steps] == [
        ("product.prod_pro_plan", "update", "/v1/products/prod_pro_plan", {"name": "Pro plan"}),
        (
            "meter.api_requests",
            "update",
            "/v1/billing/meters/mtr_1",
            {"display_name": "API requests"},
        ),
        ("price.credits_1000", "update", "/v1/prices/price_4", {"nickname": "1,000 credits"}),
    ]


def test_switching_meters_and_alerts_off_and_on() -> None:
    alert = 'alert.video_seconds["Video seconds passed 50,000"]'
    live = edit_live(snapshot_matching(EXAMPLE), "meters", "api_requests", active=False)
    live = edit_live(live, "meters", "api_requests", display_name="Old name")
    live = edit_live(live, "alerts", ("video_seconds", "Video seconds passed 50,000"), threshold=10)
    steps = plan_steps(build_plan(EXAMPLE, live))
    assert outline(steps) == [
        (
            PHASE_CATALOG,
            "meter.api_requests",
            "reactivate",
            "/v1/billing/meters/mtr_1/reactivate",
        ),
        (PHASE_CATALOG, "meter.api_requests", "update", "/v1/billing/meters/mtr_1"),
        (PHASE_ALERTS, alert, "archive-old", "/v1/billing/alerts/alrt_0/archive"),
        (PHASE_ALERTS, alert, "create", "/v1/billing/alerts"),
    ]
    retired = dataclasses.replace(
        EXAMPLE,
        meters=tuple(dataclasses.replace(m, active=False) for m in EXAMPLE.meters),
        alerts=tuple(dataclasses.replace(a, active=False) for a in EXAMPLE.alerts),
        prices=(),
    )
    steps = plan_steps(build_plan(retired, snapshot_matching(EXAMPLE)))
    assert outline(steps) == [
        (PHASE_RETIRE, "meter.video_seconds", "deactivate", "/v1/billing/meters/mtr_0/deactivate"),
        (PHASE_RETIRE, "meter.api_requests", "deactivate", "/v1/billing/meters/mtr_1/deactivate"),
        (PHASE_RETIRE, alert, "deactivate", "/v1/billing/alerts/alrt_0/deactivate"),
    ]


@pytest.mark.parametrize(
    "kind",
    [
        Kind.PRODUCT,
        Kind.METER,
        Kind.PRICE,
        Kind.ALERT,
        Kind.FEATURE,
        Kind.COUPON,
        Kind.PROMOTION_CODE,
    ],
)
def test_an_action_a_kind_cannot_take_is_refused_before_any_write(kind: Kind) -> None:
    spec = spec_for(kind)
    assert spec is not None
    change = ResourceChange(f"{kind}.x", kind, Action.MIGRATE, "edited", stripe_id="x_1")
    with pytest.raises(ReconcileError, match=f"does not know how to migrate a {kind}"):
        spec.steps(change)
    plan = Plan("sha256:c", "sha256:s", (change,))
    with pytest.raises(ReconcileError, match="does not know how to migrate"):
        plan_steps(plan)


def test_a_migration_change_of_another_action_is_refused() -> None:
    change = ResourceChange("migration.m", "migration", Action.CREATE, "edited")
    with pytest.raises(ReconcileError, match="does not know how to create a migration"):
        plan_steps(Plan("sha256:c", "sha256:s", (change,)))


def test_a_migration_writes_each_subscription_in_order_on_the_legacy_version() -> None:
    phases = {"phases": [{"items": [{"price": "@to_price", "quantity": 1}]}]}
    change = ResourceChange(
        "migration.m",
        Kind.MIGRATION,
        Action.MIGRATE,
        "2 to schedule",
        details={
            "to_price": "video_seconds_metered",
            "subscriptions": [
                {"subscription": "sub_new", "action": "create_schedule", "params": phases},
                {
                    "subscription": "sub_had",
                    "action": "update_schedule",
                    "schedule": "sub_sched_1",
                    "params": phases,
                    "evidence": "sha256:sub",
                },
                {"subscription": "sub_paused", "action": "release_schedule", "schedule": "s_2"},
                {"subscription": "sub_done", "action": "none"},
            ],
        },
    )
    steps = plan_steps(Plan("sha256:c", "sha256:s", (change,)))
    ids = Ids({"price": {"video_seconds_metered": "price_v"}, "schedule": {"sub_new": "s_new"}})
    assert [(s.phase, s.address, s.name, s.path(ids)) for s in steps] == [
        (PHASE_MIGRATIONS, "migration.m/sub_new", "schedule", "/v1/subscription_schedules"),
        (PHASE_MIGRATIONS, "migration.m/sub_new", "phases", "/v1/subscription_schedules/s_new"),
        (
            PHASE_MIGRATIONS,
            "migration.m/sub_had",
            "phases",
            "/v1/subscription_schedules/sub_sched_1",
        ),
        (
            PHASE_MIGRATIONS,
            "migration.m/sub_paused",
            "release",
            "/v1/subscription_schedules/s_2/release",
        ),
    ]
    assert {s.stripe_version for s in steps} == {LEGACY_API_VERSION}
    assert steps[0].params(ids) == {"from_subscription": "sub_new"}
    assert steps[0].remember == ("schedule", "sub_new")
    resolved = {"phases": [{"items": [{"price": "price_v", "quantity": 1}]}]}
    assert steps[1].params(ids) == resolved
    assert steps[2].params(ids) == resolved
    assert steps[2].evidence == "sha256:sub"
    assert steps[0].evidence == change.evidence  # a row without its own: the change's


def test_a_feature_is_created_renamed_and_archived_with_exactly_its_fields() -> None:
    spec = spec_for(Kind.FEATURE)
    assert spec is not None
    created = ResourceChange(
        "feature.hd_export",
        Kind.FEATURE,
        Action.CREATE,
        "not in the account",
        after={"name": "HD export", "metadata": {"managed_by": "stripe-reconcile"}, "active": True},
    )
    (create,) = spec.steps(created)
    assert (create.phase, create.path(IDS), create.params(IDS)) == (
        PHASE_CATALOG,
        "/v1/entitlements/features",
        {
            "lookup_key": "hd_export",
            "name": "HD export",
            "metadata": {"managed_by": "stripe-reconcile"},
        },
    )
    before = {"name": "HD", "metadata": {}, "active": True}
    retired = ResourceChange(
        "feature.hd_export",
        Kind.FEATURE,
        Action.ARCHIVE,
        "declared active: false",
        before=before,
        after={**before, "name": "HD export", "active": False},
        changes=(FieldChange("name", "HD", "HD export"), FieldChange("active", True, False)),
        stripe_id="feat_1",
    )
    assert [(s.phase, s.name, s.path(IDS), s.params(IDS)) for s in spec.steps(retired)] == [
        (PHASE_CATALOG, "update", "/v1/entitlements/features/feat_1", {"name": "HD export"}),
        (PHASE_RETIRE, "archive", "/v1/entitlements/features/feat_1", {"active": False}),
    ]


def test_an_archived_product_declared_active_again_is_updated_with_active_true() -> None:
    live = edit_live(snapshot_matching(EXAMPLE), "products", "prod_pro_plan", active=False)
    steps = plan_steps(build_plan(EXAMPLE, live))
    assert [(s.address, s.name, s.params(IDS)) for s in steps] == [
        ("product.prod_pro_plan", "update", {"active": True})
    ]


@pytest.mark.parametrize(
    "kind", [Kind.PRODUCT, Kind.METER, Kind.PRICE, Kind.ALERT, Kind.FEATURE, Kind.PROMOTION_CODE]
)
def test_only_a_kind_retired_by_deleting_deletes(kind: Kind) -> None:
    spec = spec_for(kind)
    assert spec is not None
    change = ResourceChange(
        f"{kind}.x", kind, Action.DELETE, "declared active: false", stripe_id="x"
    )
    with pytest.raises(ReconcileError, match=f"does not know how to delete a {kind}"):
        spec.steps(change)


COUPONS = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video}
coupons:
  - id: SPRING25
    name: Spring
    percent_off: 25
    duration: repeating
    duration_in_months: 3
    redeem_by: "2030-06-30T23:59:59+02:00"
    applies_to: {products: [prod_video]}
  - {id: FIVE, amount_off: 500, currency: usd, currency_options: {eur: {amount_off: 450}}}
"""


def _coupon_steps(text: str, snapshot: Snapshot) -> list[tuple[int, str, str, str, Any, str]]:
    plan = build_plan(load_text(text), snapshot)
    return [
        (s.phase, s.address, s.name, s.method, s.params(IDS), s.path(IDS))
        for s in plan_steps(plan)
        if s.address.startswith("coupon.")
    ]


def test_a_coupon_is_created_after_the_products_it_applies_to() -> None:
    desired = load_text(COUPONS)
    steps = plan_steps(build_plan(desired, Snapshot()))
    assert [(s.phase, s.address) for s in steps] == [
        (PHASE_CATALOG, "product.prod_video"),
        (PHASE_PRICES, "coupon.SPRING25"),
        (PHASE_PRICES, "coupon.FIVE"),
    ]
    marker = {"managed_by": "stripe-reconcile"}
    assert _coupon_steps(COUPONS, Snapshot()) == [
        (
            PHASE_PRICES,
            "coupon.SPRING25",
            "create",
            "post",
            {
                "id": "SPRING25",
                "duration": "repeating",
                "duration_in_months": 3,
                "metadata": marker,
                "name": "Spring",
                "percent_off": "25",
                "redeem_by": 1909087199,  # 2030-06-30T21:59:59Z
                "applies_to": {"products": ["prod_video"]},
            },
            "/v1/coupons",
        ),
        (
            PHASE_PRICES,
            "coupon.FIVE",
            "create",
            "post",
            {
                "id": "FIVE",
                "duration": "once",
                "metadata": marker,
                "amount_off": 500,
                "currency": "usd",
                "currency_options": {"eur": {"amount_off": 450}},
            },
            "/v1/coupons",
        ),
    ]


def test_a_coupon_updates_its_name_and_adds_a_currency_in_place() -> None:
    live = snapshot_matching(load_text(COUPONS))
    changed = COUPONS.replace("name: Spring", "name: Spring sale").replace(
        "{eur: {amount_off: 450}}", "{eur: {amount_off: 450}, gbp: {amount_off: 400}}"
    )
    assert _coupon_steps(changed, live) == [
        (
            PHASE_PRICES,
            "coupon.SPRING25",
            "update",
            "post",
            {"name": "Spring sale"},
            "/v1/coupons/SPRING25",
        ),
        (
            PHASE_PRICES,
            "coupon.FIVE",
            "update",
            "post",
            {"currency_options": {"gbp": {"amount_off": 400}}},
            "/v1/coupons/FIVE",
        ),
    ]


def test_a_changed_coupon_is_deleted_then_created_and_a_retired_one_deleted() -> None:
    live = snapshot_matching(load_text(COUPONS))
    changed = COUPONS.replace("percent_off: 25", "percent_off: 30").replace(
        "{id: FIVE,", "{id: FIVE, active: false,"
    )
    steps = _coupon_steps(changed, live)
    assert [s[:4] for s in steps] == [
        (PHASE_PRICES, "coupon.SPRING25", "delete", "delete"),
        (PHASE_PRICES, "coupon.SPRING25", "create", "post"),
        (PHASE_RETIRE, "coupon.FIVE", "delete", "delete"),
    ]
    assert steps[0][4:] == ({}, "/v1/coupons/SPRING25")
    assert steps[1][4]["percent_off"] == "30"
    assert steps[2][4:] == ({}, "/v1/coupons/FIVE")
    # Taking a currency away is no update: the coupon is made anew.
    fewer = COUPONS.replace(", currency_options: {eur: {amount_off: 450}}", "")
    assert [s[2] for s in _coupon_steps(fewer, live)] == ["delete", "create"]


CODES = (
    COUPONS
    + """\
promotion_codes:
  - code: SPRING
    coupon: SPRING25
    max_redemptions: 20
    expires_at: "2030-01-01T00:00:00Z"
    customer: cus_Test123
    restrictions: {first_time_transaction: true, minimum_amount: 1000, minimum_amount_currency: usd}
    metadata: {channel: blog}
  - {code: five-off, coupon: FIVE}
"""
)


def _all_steps(text: str, snapshot: Snapshot) -> list[tuple[int, str, str, Any]]:
    plan = build_plan(load_text(text), snapshot)
    return [(s.phase, s.address, s.name, s.params(IDS)) for s in plan_steps(plan)]


def test_a_promotion_code_is_created_after_its_coupon_with_exactly_its_fields() -> None:
    steps = _all_steps(CODES, Snapshot())
    order = [(phase, address) for phase, address, _, _ in steps]
    assert order.index((PHASE_PRICES, "coupon.SPRING25")) < order.index(
        (PHASE_DEFAULTS, "promotion_code.SPRING")
    )
    created = {address: params for _, address, _, params in steps}
    assert created["promotion_code.SPRING"] == {
        "promotion": {"type": "coupon", "coupon": "SPRING25"},
        "code": "SPRING",
        "metadata": {"channel": "blog", "managed_by": "stripe-reconcile"},
        "customer": "cus_Test123",
        "max_redemptions": 20,
        "expires_at": 1893456000,
        "restrictions": {
            "first_time_transaction": True,
            "minimum_amount": 1000,
            "minimum_amount_currency": "usd",
        },
    }
    assert created["promotion_code.five-off"] == {
        "promotion": {"type": "coupon", "coupon": "FIVE"},
        "code": "five-off",
        "metadata": {"managed_by": "stripe-reconcile"},
    }


def test_a_coupon_made_anew_replaces_its_codes_around_its_own_writes() -> None:
    live = snapshot_matching(load_text(CODES))
    steps = _all_steps(CODES.replace("percent_off: 25", "percent_off: 30"), live)
    assert [(phase, address, name) for phase, address, name, _ in steps] == [
        (PHASE_CATALOG, "promotion_code.SPRING", "deactivate-old"),
        (PHASE_PRICES, "coupon.SPRING25", "delete"),
        (PHASE_PRICES, "coupon.SPRING25", "create"),
        (PHASE_DEFAULTS, "promotion_code.SPRING", "create"),
    ]
    assert steps[0][3] == {"active": False}
    assert steps[3][3]["promotion"] == {"type": "coupon", "coupon": "SPRING25"}


def test_a_promotion_code_updates_metadata_and_is_deactivated() -> None:
    live = snapshot_matching(load_text(CODES))
    changed = CODES.replace("channel: blog", "channel: news").replace(
        "{code: five-off,", "{code: five-off, active: false, metadata: {why: ended},"
    )
    assert _all_steps(changed, live) == [
        (PHASE_DEFAULTS, "promotion_code.SPRING", "update", {"metadata": {"channel": "news"}}),
        (
            PHASE_RETIRE,
            "promotion_code.five-off",
            "deactivate",
            {"active": False, "metadata": {"why": "ended"}},
        ),
    ]
