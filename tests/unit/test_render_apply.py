"""The readable render of an apply's result: golden markdown for each outcome.

Golden files live in tests/golden (``apply_*.md``); ``UPDATE_GOLDEN=1 pytest
tests/unit/test_render_apply.py`` rewrites them, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.render.apply import (
    APPLY_MARKER,
    outcome_of,
    render_apply_markdown,
    render_apply_refusal,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

DONE = [
    "product.prod_video_generation: create",
    "meter.video_seconds: create",
    "price.video_seconds_metered: create",
    "product.prod_video_generation: default-price",
]


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "ok": True,
        "summary": "3 to create, 1 to update, 0 to replace, 0 to archive",
        "done": DONE,
        "replayed": [],
        "rounds": 1,
        "failed": None,
        "error": None,
        "remaining": [],
        "requests": 9,
        "retries": 0,
        "rate_limited": 0,
        "pace": None,
    }
    return {**report, **overrides}


REPORTS = {
    "apply_applied": lambda: render_apply_markdown(_report(), source="billing.yaml"),
    "apply_applied_busy": lambda: render_apply_markdown(
        _report(
            rounds=2,
            replayed=DONE[:1],
            requests=31,
            retries=4,
            rate_limited=3,
            pace={"configured": 20.0, "lowest": 5.0, "final": 16.0, "decreases": 2},
        ),
        source="envs/live/billing.yaml",
    ),
    "apply_no_changes": lambda: render_apply_markdown(
        _report(done=[], rounds=0, summary="0 to create, 0 to update, 0 to replace, 0 to archive")
    ),
    "apply_stopped": lambda: render_apply_markdown(
        _report(
            ok=False,
            done=DONE[:2],
            failed=DONE[2],
            error="Stripe refused POST /v1/prices (400): <b>No such meter</b> | mtr_123",
            remaining=DONE[2:],
            rounds=None,
        )
    ),
    "apply_stale": lambda: render_apply_refusal(
        "the account changed since the plan was made, outside this plan:\n"
        "  product.prod_pro_plan: now needs update (changed: name)",
        source="envs/test/billing.yaml",
        reason="stale",
    ),
}


def _golden(name: str, actual: str) -> str:
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_apply_reports_match_their_golden_files(name: str) -> None:
    actual = REPORTS[name]()
    assert actual == _golden(name, actual)
    assert actual.startswith(f"{APPLY_MARKER}\n### stripe-reconcile apply: `")
    assert actual == REPORTS[name]()  # deterministic


def test_the_outcome_line_is_read_back() -> None:
    assert outcome_of(REPORTS["apply_applied"]()) == ("applied", 4)
    assert outcome_of(REPORTS["apply_no_changes"]()) == ("no-changes", 0)
    assert outcome_of(REPORTS["apply_stopped"]()) == ("stopped", 2)
    assert outcome_of(REPORTS["apply_stale"]()) == ("stale", 0)
    mismatch = render_apply_refusal("entry 3 differs", reason="mismatch")
    assert outcome_of(mismatch) == ("mismatch", 0)
    assert "does not match" in mismatch
    assert outcome_of(render_apply_refusal("STRIPE_API_KEY is not set")) == ("error", 0)
    assert outcome_of("no report at all") == ("error", 0)


def test_a_stopped_apply_escapes_html_and_lists_at_most_fifty_steps() -> None:
    many = [f"price.p{n}: create" for n in range(60)]
    text = render_apply_markdown(
        _report(ok=False, done=many, failed="price.x: create", error="<script>", remaining=[])
    )
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "- ... and 10 more" in text
    assert "<details><summary>Steps done (60)</summary>" in text


def test_a_refusal_no_rerun_can_fix_says_what_to_change_instead_of_plan_again() -> None:
    advice = (
        "Stripe refused this for good (a re-run sends the same request and is refused the "
        "same way): change 'customer' of alert.video_seconds[\"Big\"] in billing.yaml, or "
        "create what it names in the account, then run plan and apply again."
    )
    stopped = render_apply_markdown(
        _report(
            ok=False,
            done=[],
            failed="alert: create",
            error="No such customer",
            remaining=["alert: create"],
            rounds=1,
            advice=advice,
        )
    )
    assert "change 'customer' of alert.video_seconds" in stopped
    assert "Plan again" not in stopped
    transient = render_apply_markdown(
        _report(ok=False, done=[], failed="x", error="timeout", remaining=["x"], advice=None)
    )
    assert "Plan again: it shows what is left, and apply finishes it." in transient
