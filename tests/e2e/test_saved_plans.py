"""apply PLANFILE: stale plans refused, finished plans no-ops, interrupted plans resumed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_config
from reconciler.errors import ApplyError, PlanError, StalePlanError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import Action
from reconciler.planfile import load_plan, resolve_saved_plan
from reconciler.planner import build_plan
from tests.e2e.conftest import EXAMPLE_CATALOG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(EXAMPLE_CATALOG)


def save(plan_text: str, tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(plan_text)
    return path


class CrashAfter:
    """A gateway whose writes fail after ``n`` successes, as if the process died."""

    def __init__(self, gateway: Gateway, n: int) -> None:
        self.gateway = gateway
        self.left = n

    def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
        if self.left <= 0:
            raise StripeCallError("connection lost", method="post", path=path)
        self.left -= 1
        return self.gateway.write(path, params, **options)


def test_saved_plan_round_trips_through_its_file(gateway: Gateway, tmp_path: Path) -> None:
    plan = build_plan(EXAMPLE, read_snapshot(gateway))
    assert load_plan(save(plan.dumps(), tmp_path)) == plan


def test_unchanged_account_applies_the_saved_plan_itself(gateway: Gateway, tmp_path: Path) -> None:
    saved = load_plan(save(build_plan(EXAMPLE, read_snapshot(gateway)).dumps(), tmp_path))
    snapshot = read_snapshot(gateway)
    assert resolve_saved_plan(saved, EXAMPLE, snapshot) == saved
    apply_plan(saved, snapshot, gateway)
    assert not build_plan(EXAMPLE, read_snapshot(gateway)).has_changes


def test_finished_plan_reapplied_is_a_no_op(gateway: Gateway) -> None:
    snapshot = read_snapshot(gateway)
    saved = build_plan(EXAMPLE, snapshot)
    apply_plan(saved, snapshot, gateway)
    writes = gateway.stats.writes
    again = resolve_saved_plan(saved, EXAMPLE, read_snapshot(gateway))
    assert not again.has_changes
    apply_plan(again, read_snapshot(gateway), gateway)
    assert gateway.stats.writes == writes


def test_plan_from_another_billing_yaml_is_refused(gateway: Gateway) -> None:
    saved = build_plan(EXAMPLE, read_snapshot(gateway))
    edited = dataclasses.replace(EXAMPLE, mode="live")
    with pytest.raises(StalePlanError, match=r"made from a different billing\.yaml"):
        resolve_saved_plan(saved, edited, read_snapshot(gateway))


def test_dashboard_edit_after_planning_makes_the_plan_stale(gateway: Gateway) -> None:
    snapshot = read_snapshot(gateway)
    apply_plan(build_plan(EXAMPLE, snapshot), snapshot, gateway)
    renamed = dataclasses.replace(
        EXAMPLE,
        products=tuple(dataclasses.replace(p, name=p.name + " v2") for p in EXAMPLE.products),
    )
    saved = build_plan(renamed, read_snapshot(gateway))
    meter = read_snapshot(gateway).meters["api_requests"].stripe_id
    gateway.post(f"/v1/billing/meters/{meter}", {"display_name": "Edited in the Dashboard"})
    gateway.post("/v1/products/prod_pro_plan", {"name": "Someone else's name"})
    with pytest.raises(StalePlanError) as caught:
        resolve_saved_plan(saved, renamed, read_snapshot(gateway))
    message = str(caught.value)
    assert "meter.api_requests: now needs update" in message
    assert "product.prod_pro_plan: now needs update" in message
    assert "product.prod_video_generation" not in message


@pytest.mark.parametrize("crash_after", [1, 4, 9, 13])
def test_interrupted_plan_resumes_without_duplicates(gateway: Gateway, crash_after: int) -> None:
    snapshot = read_snapshot(gateway)
    saved = build_plan(EXAMPLE, snapshot)
    with pytest.raises(ApplyError):
        apply_plan(saved, snapshot, CrashAfter(gateway, crash_after), concurrency=1)  # type: ignore[arg-type]
    now = read_snapshot(gateway)
    rest = resolve_saved_plan(saved, EXAMPLE, now)
    apply_plan(rest, now, gateway)
    assert not build_plan(EXAMPLE, read_snapshot(gateway)).has_changes
    assert len(list(gateway.list_all("/v1/prices"))) == 5
    assert len(list(gateway.list_all("/v1/products"))) == 3


@pytest.mark.parametrize("crash_after", [1, 2])
def test_interrupted_replace_resumes_from_the_saved_plan(
    gateway: Gateway, crash_after: int
) -> None:
    snapshot = read_snapshot(gateway)
    apply_plan(build_plan(EXAMPLE, snapshot), snapshot, gateway)
    cheaper = dataclasses.replace(
        EXAMPLE,
        prices=tuple(
            dataclasses.replace(p, unit_amount=900) if p.lookup_key == "credits_1000" else p
            for p in EXAMPLE.prices
        ),
    )
    snapshot = read_snapshot(gateway)
    saved = build_plan(cheaper, snapshot)
    assert [c.action for c in saved.actionable] == [Action.REPLACE]
    with pytest.raises(ApplyError):
        apply_plan(saved, snapshot, CrashAfter(gateway, crash_after), concurrency=1)  # type: ignore[arg-type]
    now = read_snapshot(gateway)
    apply_plan(resolve_saved_plan(saved, cheaper, now), now, gateway)
    assert not build_plan(cheaper, read_snapshot(gateway)).has_changes
    active = [p for p in gateway.list_all("/v1/prices") if p["active"]]
    assert len(active) == 5


def test_plan_file_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="plan file not found"):
        load_plan(tmp_path / "missing.json")
    with pytest.raises(PlanError, match=r"plan.json:1:2: not JSON"):
        load_plan(save("{oops", tmp_path))
    with pytest.raises(PlanError, match="format_version '7' is not supported"):
        load_plan(save(json.dumps({"format_version": "7"}), tmp_path))
    with pytest.raises(PlanError, match="not a stripe-reconcile plan"):
        load_plan(save(json.dumps({"format_version": "1", "changes": 3}), tmp_path))
