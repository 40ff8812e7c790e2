"""Pure step building: a plan in, the exact writes out, with no server.

``plan_steps`` asks each kind's spec for the steps of its changes (and for the
writes that follow from several changes, such as default prices), orders them
by phase, and stamps each with its change's evidence. Parameters that name
objects made in the same apply resolve against the ids known when they run.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_config, load_text
from reconciler.errors import ReconcileError
from reconciler.kinds import Kind
from reconciler.kinds.portal import portal_essence
from reconciler.kinds.product_feature import attachment_essence
from reconciler.kinds.registry import REGISTRY, spec_for
from reconciler.model import CustomUnitAmount, PortalConfiguration
from reconciler.plan import Action, ActionReason, FieldChange, Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.snapshot import LiveObject, Snapshot
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


def test_a_meter_is_created_with_its_own_keys_and_time_window() -> None:
    spec = spec_for(Kind.METER)
    assert spec is not None
    after = {
        "display_name": "Tokens",
        "aggregation": "last",
        "customer_key": "account",
        "value_key": "tokens",
        "active": True,
        "event_time_window": "hour",
    }
    created = ResourceChange("meter.tokens", Kind.METER, Action.CREATE, "absent", after=after)
    (create,) = spec.steps(created)
    assert (create.phase, create.path(IDS), create.params(IDS), create.remember) == (
        PHASE_CATALOG,
        "/v1/billing/meters",
        {
            "event_name": "tokens",
            "display_name": "Tokens",
            "default_aggregation": {"formula": "last"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "account"},
            "value_settings": {"event_payload_key": "tokens"},
            "event_time_window": "hour",
        },
        ("meter", "tokens"),
    )
    assert spec.param_field("event_time_window") == ("event_time_window",)


@pytest.mark.parametrize("kind", [spec.kind for spec in REGISTRY])
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


def test_a_migration_of_several_prices_puts_each_new_prices_id_in() -> None:
    items = [
        {"price": "@to_price", "quantity": 5},
        {"price": "price_support"},
        {"price": "@to_price:extra_2026", "quantity": 2},
    ]
    change = ResourceChange(
        "migration.m",
        Kind.MIGRATION,
        Action.MIGRATE,
        "1 to schedule",
        details={
            "to_price": "team_2026",
            "also": [
                {"from_price": "price_addon", "to_price": "team_2026"},
                {"from_price": "price_extra", "to_price": "extra_2026"},
            ],
            "subscriptions": [
                {
                    "subscription": "sub_1",
                    "action": "update_schedule",
                    "schedule": "s_1",
                    "params": {"phases": [{"items": items}]},
                }
            ],
        },
    )
    (step,) = plan_steps(Plan("sha256:c", "sha256:s", (change,)))
    ids = Ids({"price": {"team_2026": "price_team", "extra_2026": "price_extra_new"}})
    assert step.params(ids) == {
        "phases": [
            {
                "items": [
                    {"price": "price_team", "quantity": 5},
                    {"price": "price_support"},
                    {"price": "price_extra_new", "quantity": 2},
                ]
            }
        ]
    }


OPTIONS = load_text(
    """\
version: 1
mode: test
products:
  - {id: prod_pro, name: Pro}
  - {id: prod_credits, name: Credits}
prices:
  - lookup_key: pro_monthly
    product: prod_pro
    currency: usd
    unit_amount: 4900
    recurring: {interval: month}
    tax_behavior: exclusive
    currency_options:
      gbp: {unit_amount: 3900, tax_behavior: inclusive}
      eur: {unit_amount_decimal: "4500.5"}
  - lookup_key: pro_seats
    product: prod_pro
    currency: usd
    recurring: {interval: month}
    tiers_mode: volume
    tiers:
      - {up_to: 10, unit_amount: 1000}
      - {up_to: inf, unit_amount: 800}
    currency_options:
      eur:
        tiers:
          - {up_to: 10, unit_amount: 900}
          - {up_to: inf, flat_amount: 5000}
  - lookup_key: credits_top_up
    product: prod_credits
    currency: usd
    custom_unit_amount: {minimum: 500, preset: 2000}
    currency_options:
      eur: {custom_unit_amount: {maximum: 90000}}
""",
    "billing.yaml",
)
MARKER = {"managed_by": "stripe-reconcile"}


def price_steps(live: Snapshot, address: str) -> list[tuple[str, str, dict[str, Any]]]:
    steps = plan_steps(build_plan(OPTIONS, live))
    return [(s.name, s.path(IDS), s.params(IDS)) for s in steps if s.address == address]


def test_a_price_is_created_with_its_tax_behavior_currencies_and_bounds() -> None:
    steps = plan_steps(build_plan(OPTIONS, Snapshot()))
    assert step(steps, "price.pro_monthly", "create").params(IDS) == {
        "product": "prod_pro",
        "currency": "usd",
        "lookup_key": "pro_monthly",
        "metadata": MARKER,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "unit_amount_decimal": "4900",
        "tax_behavior": "exclusive",
        "currency_options": {
            "eur": {"unit_amount_decimal": "4500.5"},
            "gbp": {"unit_amount_decimal": "3900", "tax_behavior": "inclusive"},
        },
    }
    assert step(steps, "price.pro_seats", "create").params(IDS)["currency_options"] == {
        "eur": {
            "tiers": [
                {"up_to": 10, "unit_amount_decimal": "900"},
                {"up_to": "inf", "flat_amount_decimal": "5000"},
            ]
        }
    }
    top_up = step(steps, "price.credits_top_up", "create").params(IDS)
    assert "unit_amount_decimal" not in top_up and "recurring" not in top_up
    assert top_up["custom_unit_amount"] == {"enabled": True, "minimum": 500, "preset": 2000}
    assert top_up["currency_options"] == {
        "eur": {"custom_unit_amount": {"enabled": True, "maximum": 90000}}
    }


def test_an_account_holding_them_needs_no_write() -> None:
    assert plan_steps(build_plan(OPTIONS, snapshot_matching(OPTIONS))) == []


def test_a_tax_behavior_is_set_in_place_while_unspecified() -> None:
    live = edit_live(
        snapshot_matching(OPTIONS), "prices", "pro_monthly", tax_behavior="unspecified"
    )
    assert price_steps(live, "price.pro_monthly") == [
        ("update", "/v1/prices/price_0", {"tax_behavior": "exclusive"})
    ]


def test_an_update_sends_each_changed_currency_whole() -> None:
    matching = snapshot_matching(OPTIONS)
    options = matching.prices["pro_monthly"].essence["currency_options"]
    eur = {**options["eur"], "unit_amount": "4000"}
    live = edit_live(matching, "prices", "pro_monthly", currency_options={"eur": eur})
    assert price_steps(live, "price.pro_monthly") == [
        (
            "update",
            "/v1/prices/price_0",
            {
                "currency_options": {
                    "eur": {"unit_amount_decimal": "4500.5"},
                    "gbp": {"unit_amount_decimal": "3900", "tax_behavior": "inclusive"},
                }
            },
        )
    ]
    live = edit_live(matching, "prices", "pro_monthly", currency_options={**options, "eur": eur})
    assert price_steps(live, "price.pro_monthly") == [
        (
            "update",
            "/v1/prices/price_0",
            {"currency_options": {"eur": {"unit_amount_decimal": "4500.5"}}},
        )
    ]


def test_currencies_no_longer_declared_are_cleared_with_an_empty_value() -> None:
    declared = dataclasses.replace(
        OPTIONS,
        prices=tuple(
            dataclasses.replace(p, currency_options={}) if p.lookup_key == "pro_monthly" else p
            for p in OPTIONS.prices
        ),
    )
    steps = plan_steps(build_plan(declared, snapshot_matching(OPTIONS)))
    assert [(s.name, s.params(IDS)) for s in steps if s.address == "price.pro_monthly"] == [
        ("update", {"currency_options": ""})
    ]


def test_a_replacement_keeps_the_tax_behaviors_billing_yaml_leaves_out() -> None:
    declared = dataclasses.replace(
        OPTIONS,
        prices=tuple(
            dataclasses.replace(p, custom_unit_amount=CustomUnitAmount(minimum=800))
            if p.lookup_key == "credits_top_up"
            else p
            for p in OPTIONS.prices
        ),
    )
    matching = snapshot_matching(OPTIONS)
    options = matching.prices["credits_top_up"].essence["currency_options"]
    live = edit_live(
        matching,
        "prices",
        "credits_top_up",
        tax_behavior="inclusive",
        currency_options={"eur": {**options["eur"], "tax_behavior": "exclusive"}},
    )
    plan = build_plan(declared, live)
    change = next(c for c in plan.changes if c.address == "price.credits_top_up")
    assert (change.action, change.reason) == (
        Action.REPLACE,
        "fixed at creation: custom_unit_amount.minimum, custom_unit_amount.preset",
    )
    create = step(plan_steps(plan), "price.credits_top_up", "create").params(IDS)
    assert create["transfer_lookup_key"] is True
    assert create["custom_unit_amount"] == {"enabled": True, "minimum": 800}
    assert create["tax_behavior"] == "inclusive"
    assert create["currency_options"]["eur"]["tax_behavior"] == "exclusive"


PORTAL = PortalConfiguration(
    name="Self-serve",
    settings={
        "business_profile": {"headline": "Manage your plan", "privacy_policy_url": None},
        "default_return_url": None,
        "login_page": {"enabled": True},
        "features": {
            "customer_update": {"enabled": False, "allowed_updates": []},
            "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["quantity", "price"],
                "products": [
                    {"product": "prod_pro_plan", "prices": ["pro_monthly_base", "pro_yearly"]}
                ],
            },
        },
    },
    metadata={"team": "growth"},
)
YEARLY = dataclasses.replace(
    next(p for p in EXAMPLE.prices if p.lookup_key == "pro_monthly_base"),
    lookup_key="pro_yearly",
    default=False,
    unit_amount=99000,
)
WITH_PORTAL = dataclasses.replace(
    EXAMPLE, prices=(*EXAMPLE.prices, YEARLY), portal_configurations=(PORTAL,)
)
PORTAL_PATH = "/v1/billing_portal/configurations"


def test_a_portal_configuration_is_created_once_prices_exist_naming_them_by_id() -> None:
    steps = plan_steps(build_plan(WITH_PORTAL, snapshot_matching(EXAMPLE)))
    assert [(s.phase, s.address, s.name) for s in steps] == [
        (PHASE_PRICES, "price.pro_yearly", "create"),
        (PHASE_DEFAULTS, "portal.Self-serve", "create"),
    ]
    create = step(steps, "portal.Self-serve", "create")
    assert create.path(IDS) == PORTAL_PATH
    with pytest.raises(KeyError):  # the new price's id is known only once it is made
        create.params(IDS)
    ids = Ids(IDS.known)
    ids.remember("price", "pro_yearly", "price_y")  # what apply does when the price is made
    assert create.params(ids) == {
        "name": "Self-serve",
        "metadata": {"team": "growth", "managed_by": "stripe-reconcile"},
        "business_profile": {"headline": "Manage your plan"},
        "login_page": {"enabled": True},
        "features": {
            "customer_update": {"enabled": False, "allowed_updates": ""},
            "subscription_cancel": {
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",  # the only one Stripe takes at the period end
            },
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price", "quantity"],
                "products": [{"product": "prod_pro_plan", "prices": ["price_p", "price_y"]}],
            },
        },
    }


def test_a_portal_update_sends_the_changed_settings_and_the_archive_comes_last() -> None:
    spec = spec_for(Kind.PORTAL)
    assert spec is not None
    live = snapshot_matching(WITH_PORTAL)
    edited = edit_live(
        live,
        "portal_configurations",
        "Self-serve",
        business_profile={"headline": "Old", "privacy_policy_url": "https://example.com/p"},
        metadata={"team": "ops", "managed_by": "stripe-reconcile"},
    )
    retired = dataclasses.replace(
        WITH_PORTAL, portal_configurations=(dataclasses.replace(PORTAL, active=False),)
    )
    change = next(
        c for c in build_plan(retired, edited).changes if c.address == "portal.Self-serve"
    )
    assert change.action is Action.ARCHIVE
    assert [c.field for c in change.changes] == [
        "business_profile.headline",
        "business_profile.privacy_policy_url",
        "metadata.team",
        "active",
    ]
    path = f"{PORTAL_PATH}/bpc_0"
    assert [(s.phase, s.name, s.path(IDS), s.params(IDS)) for s in spec.steps(change)] == [
        (
            PHASE_DEFAULTS,
            "update",
            path,
            {
                "metadata": {"team": "growth"},
                "business_profile": {"headline": "Manage your plan", "privacy_policy_url": ""},
            },
        ),
        (PHASE_RETIRE, "archive", path, {"active": False}),
    ]


def test_a_portal_update_sends_whole_only_the_feature_hashes_that_changed() -> None:
    spec = spec_for(Kind.PORTAL)
    assert spec is not None
    live = snapshot_matching(WITH_PORTAL)
    features = copy.deepcopy(dict(live.portal_configurations["Self-serve"].essence["features"]))
    features["subscription_update"]["products"][0]["prices"] = ["pro_monthly_base"]
    features["invoice_history"]["enabled"] = True  # not stated: not compared, not written
    edited = edit_live(live, "portal_configurations", "Self-serve", features=features)
    change = next(
        c for c in build_plan(WITH_PORTAL, edited).changes if c.address == "portal.Self-serve"
    )
    assert change.action is Action.UPDATE
    assert [(c.field, c.before, c.after) for c in change.changes] == [
        ("features.subscription_update.products[0].prices[1]", None, "pro_yearly")
    ]
    (update,) = spec.steps(change)
    assert update.params(
        Ids({"price": {"pro_monthly_base": "price_p", "pro_yearly": "price_y"}})
    ) == {
        "features": {
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price", "quantity"],
                "products": [{"product": "prod_pro_plan", "prices": ["price_p", "price_y"]}],
            }
        }
    }


def test_a_configuration_offering_a_replaced_price_is_pointed_at_its_replacement() -> None:
    raised = dataclasses.replace(
        WITH_PORTAL,
        prices=tuple(
            dataclasses.replace(p, unit_amount=129000) if p.lookup_key == "pro_yearly" else p
            for p in WITH_PORTAL.prices
        ),
    )
    plan = build_plan(raised, snapshot_matching(WITH_PORTAL))
    assert {c.address: c.action for c in plan.actionable} == {"price.pro_yearly": Action.REPLACE}
    steps = plan_steps(plan)
    assert [(s.phase, s.address, s.name) for s in steps] == [
        (PHASE_PRICES, "price.pro_yearly", "create"),
        (PHASE_DEFAULTS, "portal.Self-serve", "switch-prices"),
        (PHASE_RETIRE, "price.pro_yearly", "archive-old"),
    ]
    switch = step(steps, "portal.Self-serve", "switch-prices")
    ids = Ids({"price": {"pro_monthly_base": "price_p", "pro_yearly": "price_old"}})
    ids.remember("price", "pro_yearly", "price_new")  # the replacement, made in phase 2
    assert switch.path(ids) == f"{PORTAL_PATH}/bpc_0"
    assert switch.params(ids) == {
        "features": {
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price", "quantity"],
                "products": [{"product": "prod_pro_plan", "prices": ["price_p", "price_new"]}],
            }
        }
    }
    # A configuration whose own update sends its products needs no second write.
    renamed = dataclasses.replace(
        raised,
        portal_configurations=(
            dataclasses.replace(
                PORTAL,
                settings={
                    **PORTAL.settings,
                    "features": {
                        **PORTAL.settings["features"],
                        "subscription_update": {
                            **PORTAL.settings["features"]["subscription_update"],
                            "proration_behavior": "always_invoice",
                        },
                    },
                },
            ),
        ),
    )
    names = [
        (s.address, s.name) for s in plan_steps(build_plan(renamed, snapshot_matching(WITH_PORTAL)))
    ]
    assert ("portal.Self-serve", "update") in names
    assert ("portal.Self-serve", "switch-prices") not in names


def test_a_saved_plan_owes_pointing_a_configuration_at_a_replacement() -> None:
    spec = spec_for(Kind.PORTAL)
    assert spec is not None
    raised = dataclasses.replace(
        WITH_PORTAL,
        prices=tuple(
            dataclasses.replace(p, unit_amount=129000) if p.lookup_key == "pro_yearly" else p
            for p in WITH_PORTAL.prices
        ),
    )
    saved = build_plan(raised, snapshot_matching(WITH_PORTAL))
    tail = ResourceChange(
        "portal.Self-serve",
        Kind.PORTAL,
        Action.UPDATE,
        "changed",
        after=portal_essence(PORTAL),
        changes=(
            FieldChange(
                "features.subscription_update.products[0].prices[1]", "price_old", "pro_yearly"
            ),
        ),
        stripe_id="bpc_0",
    )
    assert spec.owed(None, tail, saved)
    other = dataclasses.replace(tail, changes=(FieldChange("metadata.team", "ops", "growth"),))
    assert not spec.owed(None, other, saved)
    assert not spec.owed(None, tail, Plan("sha256:c", "sha256:s", ()))


ATTACHING = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video, features: [hd_export, sso]}
  - {id: prod_team, name: Team}
features:
  - {lookup_key: hd_export, name: HD export}
  - {lookup_key: sso, name: SSO}
"""


def test_attachments_are_made_once_product_and_feature_exist_with_the_feature_id_late() -> None:
    desired = load_text(ATTACHING, "billing.yaml")
    live = dataclasses.replace(snapshot_matching(desired), product_features={})
    steps = plan_steps(build_plan(desired, live))
    assert [(s.phase, s.address, s.name, s.path(IDS), s.method) for s in steps] == [
        (
            PHASE_DEFAULTS,
            "product_feature.prod_video/hd_export",
            "attach",
            "/v1/products/prod_video/features",
            "post",
        ),
        (
            PHASE_DEFAULTS,
            "product_feature.prod_video/sso",
            "attach",
            "/v1/products/prod_video/features",
            "post",
        ),
    ]
    # From an empty account the feature is made in the same apply: its id comes late.
    fresh = plan_steps(build_plan(desired, Snapshot()))
    made = step(fresh, "feature.sso", "create")
    assert (made.phase, made.remember) == (PHASE_CATALOG, ("feature", "sso"))
    attach = step(fresh, "product_feature.prod_video/sso", "attach")
    assert attach.phase > made.phase and attach.phase > PHASE_CATALOG
    ids = Ids({"feature": {"hd_export": "feat_h"}})
    with pytest.raises(KeyError):
        attach.params(ids)
    ids.remember(*made.remember, "feat_s")
    assert attach.params(ids) == {"entitlement_feature": "feat_s"}
    assert step(fresh, "product_feature.prod_video/hd_export", "attach").params(ids) == {
        "entitlement_feature": "feat_h"
    }


def test_an_attachment_the_product_no_longer_lists_is_deleted_before_any_archive() -> None:
    desired = load_text(ATTACHING, "billing.yaml")
    live = snapshot_matching(desired)
    retired = load_text(
        ATTACHING.replace("[hd_export, sso]", "[hd_export]").replace(
            "name: SSO}", "name: SSO, active: false}"
        ),
        "billing.yaml",
    )
    plan = build_plan(retired, live)
    detach = next(c for c in plan.actionable if c.address == "product_feature.prod_video/sso")
    assert (detach.action, detach.why, detach.stripe_id) == (
        Action.ARCHIVE,
        ActionReason.UNDECLARED,
        "prodft_prod_video_sso",
    )
    assert detach.changes == (FieldChange("attached", True, False),)
    steps = plan_steps(plan)
    assert [(s.phase, s.address, s.name, s.path(IDS), s.params(IDS), s.method) for s in steps] == [
        (
            PHASE_UNSET_DEFAULTS,
            "product_feature.prod_video/sso",
            "detach",
            "/v1/products/prod_video/features/prodft_prod_video_sso",
            {},
            "delete",
        ),
        (
            PHASE_RETIRE,
            "feature.sso",
            "archive",
            "/v1/entitlements/features/feat_1",
            {"active": False},
            "post",
        ),
    ]


def test_a_product_without_features_plans_nothing_for_its_attachments() -> None:
    desired = load_text(ATTACHING.replace(", features: [hd_export, sso]", ""), "billing.yaml")
    live = dataclasses.replace(
        snapshot_matching(desired),
        product_features={
            "prod_video/sso": LiveObject("prodft_1", attachment_essence("prod_video", "sso"))
        },
    )
    plan = build_plan(desired, live)
    assert not plan.has_changes
    assert plan.unmanaged == ()
    assert [c for c in plan.changes if c.kind is Kind.PRODUCT_FEATURE] == []


def test_a_product_feature_change_names_its_kind_and_refuses_what_it_cannot_do() -> None:
    spec = spec_for(Kind.PRODUCT_FEATURE)
    assert spec is not None
    change = ResourceChange(
        "product_feature.prod_video/sso", Kind.PRODUCT_FEATURE, Action.UPDATE, "edited"
    )
    with pytest.raises(ReconcileError, match="does not know how to update a product_feature"):
        spec.steps(change)
    noop = ResourceChange(
        "product_feature.prod_video/sso", Kind.PRODUCT_FEATURE, Action.NOOP, "matches"
    )
    assert spec.steps(noop) == []


def test_a_product_feature_address_without_its_two_parts_is_refused_before_any_write() -> None:
    spec = spec_for(Kind.PRODUCT_FEATURE)
    assert spec is not None
    odd = ResourceChange("product_feature.prod_video", Kind.PRODUCT_FEATURE, Action.CREATE, "x")
    with pytest.raises(ReconcileError, match="not <product id>/<feature lookup key>"):
        spec.steps(odd)


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


SEATS = """\
version: 1
mode: test
products:
  - {id: prod_app, name: App}
prices:
  - {lookup_key: seat, product: prod_app, currency: usd, unit_amount: 1000,
     recurring: {interval: month}}
"""


def test_a_replace_keeping_the_old_price_writes_the_same_requests_once_it_is_marked() -> None:
    """An apply reading the old price after another apply marked it (the key not moved
    yet) plans the same replace: its mark and create carry the evidence of the price
    before the mark, so they go under the same idempotency keys, and Stripe answers
    them from the first apply's instead of making a second price."""
    from reconciler.apply import idempotency_key
    from reconciler.kinds.replaced_prices import REPLACED_BY_KEY

    raised = load_text(
        SEATS.replace("unit_amount: 1000,", "unit_amount: 1100, existing_subscriptions: migrate,"),
        "billing.yaml",
    )
    live = snapshot_matching(load_text(SEATS, "billing.yaml"))
    old = live.prices["seat"]
    live = dataclasses.replace(live, subscribers={old.stripe_id: 2})

    def keys(marker: str | None) -> list[tuple[str, str]]:
        snapshot = live
        if marker is not None:
            metadata = {**old.essence["metadata"], REPLACED_BY_KEY: marker}
            snapshot = edit_live(live, "prices", "seat", metadata=metadata)
        plan = build_plan(raised, snapshot)
        assert change_at(plan, "price.seat").details["keep_old"] is True
        steps = [s for s in plan_steps(plan) if s.address == "price.seat"]
        return [(s.name, idempotency_key(s, s.path(IDS), s.params(IDS))) for s in steps]

    unmarked = keys(None)
    assert [name for name, _key in unmarked] == ["mark-old", "create"]
    assert keys("seat") == unmarked
    # Marked for another lookup key, it is another price as seen: other keys.
    assert keys("other") != unmarked


def change_at(plan: Plan, address: str) -> ResourceChange:
    return next(c for c in plan.changes if c.address == address)
