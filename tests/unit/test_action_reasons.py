"""Why each change has its action: recorded by the planner, kept by plan files.

The JSON plan holds the reason's words only (its schema is unchanged), so a
loaded plan must read back the very member the planner recorded, and the
renders decide "forces replacement" from it rather than from the action.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from reconciler.config import load_config, load_text
from reconciler.errors import PlanError
from reconciler.model import Desired
from reconciler.plan import Action, ActionReason, Plan
from reconciler.planner import build_plan
from reconciler.render._lines import changed_fields, unplanned_migrations
from reconciler.snapshot import LiveObject, Snapshot
from tests.strategies import desired_states
from tests.stripe_shapes import snapshot_matching

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(REPO / "billing.yaml")
CATALOG = dataclasses.replace(EXAMPLE, migrations=())
ALERT = ("video_seconds", "Video seconds passed 50,000")


def edit_live(snapshot: Snapshot, section: str, key: object, **essence: Any) -> Snapshot:
    objects = dict(getattr(snapshot, section))
    objects[key] = dataclasses.replace(objects[key], essence={**objects[key].essence, **essence})
    return dataclasses.replace(snapshot, **{section: objects})


def reasons(plan: Plan) -> dict[str, ActionReason]:
    return {c.address: c.why for c in plan.changes}


def assert_kept_by_the_file(plan: Plan) -> None:
    loaded = Plan.from_json(plan.as_data())
    assert reasons(loaded) == reasons(plan)
    assert loaded.dumps() == plan.dumps()


def test_every_reason_the_planner_gives_survives_a_plan_file() -> None:
    live = snapshot_matching(CATALOG)
    live = edit_live(live, "prices", "pro_monthly_base", unit_amount="9900")  # replace
    live = edit_live(live, "prices", "credits_1000", nickname="Edited")  # update
    live = edit_live(live, "meters", "api_requests", active=False)  # reactivate
    live = edit_live(live, "alerts", ALERT, threshold=7)  # replace
    live = dataclasses.replace(
        live,
        prices={
            **live.prices,
            "api_requests_metered": dataclasses.replace(
                live.prices["api_requests_metered"], managed=False
            ),
        },
        orphan_prices=("price_orphan",),
        duplicate_alerts={ALERT: ("alrt_dup",)},
    )
    desired = dataclasses.replace(
        CATALOG,
        prices=tuple(
            dataclasses.replace(p, adopt=True, nickname="Adopted")
            if p.lookup_key == "api_requests_metered"
            else p
            for p in CATALOG.prices
        ),
    )
    plan = build_plan(desired, live)
    assert reasons(plan) == {
        "product.prod_video_generation": ActionReason.MATCHES,
        "product.prod_pro_plan": ActionReason.MATCHES,
        "product.prod_credit_packs": ActionReason.MATCHES,
        "meter.video_seconds": ActionReason.MATCHES,
        "meter.api_requests": ActionReason.DECLARED_ACTIVE,
        "price.video_seconds_metered": ActionReason.MATCHES,
        "price.api_requests_metered": ActionReason.ADOPTED_CHANGED,
        "price.pro_monthly_base": ActionReason.CANNOT_UPDATE,
        "price.pro_video_seconds_overage": ActionReason.MATCHES,
        "price.credits_1000": ActionReason.CHANGED,
        "price.price_orphan": ActionReason.INTERRUPTED_REPLACE,
        'alert.video_seconds["Video seconds passed 50,000"]#alrt_dup': ActionReason.DUPLICATE,
        'alert.video_seconds["Video seconds passed 50,000"]': ActionReason.CANNOT_UPDATE,
    }
    assert_kept_by_the_file(plan)


def test_retiring_and_absent_objects() -> None:
    retired = dataclasses.replace(
        CATALOG,
        meters=tuple(dataclasses.replace(m, active=False) for m in CATALOG.meters),
        prices=(),
        alerts=tuple(dataclasses.replace(a, active=False, threshold=1) for a in CATALOG.alerts),
    )
    live = edit_live(snapshot_matching(CATALOG), "alerts", ALERT, active=False)
    plan = build_plan(retired, live)
    assert set(reasons(plan).values()) == {
        ActionReason.MATCHES,
        ActionReason.DECLARED_INACTIVE,
        ActionReason.INACTIVE_NOT_REPLACED,
    }
    assert_kept_by_the_file(plan)
    plan = build_plan(retired, Snapshot())
    assert set(reasons(plan).values()) == {ActionReason.ABSENT, ActionReason.ABSENT_AND_INACTIVE}
    assert_kept_by_the_file(plan)


def test_migrations_not_read_are_not_reported_as_unplanned() -> None:
    plan = build_plan(EXAMPLE, Snapshot())
    migration = next(c for c in plan.changes if c.address.startswith("migration."))
    assert migration.why is ActionReason.NOT_READ
    assert unplanned_migrations(plan) == []
    assert_kept_by_the_file(plan)


def test_only_a_replace_because_it_cannot_update_marks_fields_as_forcing_it() -> None:
    live = edit_live(snapshot_matching(CATALOG), "prices", "credits_1000", unit_amount="5")
    plan = build_plan(CATALOG, live)
    replace = next(c for c in plan.changes if c.address == "price.credits_1000")
    assert replace.why is ActionReason.CANNOT_UPDATE
    assert [d.forces_replacement for d in changed_fields(replace)] == [True]
    relabelled = dataclasses.replace(replace, because=ActionReason.CHANGED)
    assert [d.forces_replacement for d in changed_fields(relabelled)] == [False]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states(), desired_states())
def test_any_plan_reads_back_its_reasons(desired: Desired, other: Desired) -> None:
    try:
        plan = build_plan(desired, snapshot_matching(other))
    except PlanError:
        assume(False)
        return
    assert_kept_by_the_file(plan)


def test_a_live_object_that_is_not_managed_and_not_adopted_is_a_conflict() -> None:
    live = snapshot_matching(CATALOG)
    live = dataclasses.replace(
        live,
        prices={
            **live.prices,
            "credits_1000": LiveObject("price_x", live.prices["credits_1000"].essence, False),
        },
    )
    with pytest.raises(PlanError, match="adopt: true"):
        build_plan(CATALOG, live)


DISCOUNTS = load_text(
    """\
version: 1
mode: test
coupons:
  - {id: SPRING25, percent_off: 25}
  - {id: OLD, percent_off: 5}
  - {id: EXPIRED, percent_off: 5}
promotion_codes:
  - {code: SPRING, coupon: SPRING25}
  - {code: GONE, coupon: EXPIRED}
  - {code: DROP, coupon: OLD}
""",
    "billing.yaml",
)


def test_coupon_and_promotion_code_reasons_survive_a_plan_file() -> None:
    live = snapshot_matching(DISCOUNTS)
    expired = live.coupons["EXPIRED"]
    gone = live.promotion_codes["gone"]
    live = dataclasses.replace(
        live,
        coupons={
            **live.coupons,
            "EXPIRED": dataclasses.replace(expired, essence={**expired.essence, "valid": False}),
        },
        promotion_codes={
            **live.promotion_codes,
            "gone": dataclasses.replace(gone, essence={**gone.essence, "active": False}),
        },
    )
    desired = dataclasses.replace(
        DISCOUNTS,
        coupons=tuple(
            dataclasses.replace(c, percent_off=Decimal(30))
            if c.id == "SPRING25"
            else dataclasses.replace(c, active=c.id != "OLD")
            for c in DISCOUNTS.coupons
        ),
        promotion_codes=tuple(
            dataclasses.replace(p, active=p.code != "DROP") for p in DISCOUNTS.promotion_codes
        ),
    )
    plan = build_plan(desired, live)
    assert reasons(plan) == {
        "coupon.SPRING25": ActionReason.CANNOT_UPDATE,
        "coupon.OLD": ActionReason.DECLARED_INACTIVE,
        "coupon.EXPIRED": ActionReason.MATCHES,
        "promotion_code.SPRING": ActionReason.CANNOT_UPDATE,
        "promotion_code.GONE": ActionReason.COUPON_NOT_VALID,
        "promotion_code.DROP": ActionReason.DECLARED_INACTIVE,
    }
    assert {c.address: c.action for c in plan.actionable} == {
        "coupon.SPRING25": Action.REPLACE,
        "coupon.OLD": Action.DELETE,
        "promotion_code.SPRING": Action.REPLACE,
        "promotion_code.DROP": Action.DEACTIVATE,
    }
    assert_kept_by_the_file(plan)
