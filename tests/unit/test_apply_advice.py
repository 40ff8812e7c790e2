"""What a stopped apply advises: what to change after a permanent refusal, a re-run
after anything another round can fix."""

from __future__ import annotations

import pytest

from reconciler.apply import RUN_AGAIN, ApplyResult, Refusal, failure_message, refusal
from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.errors import ApplyError, ReconcileError, StalePlanError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.planner import build_plan
from reconciler.snapshot import Snapshot

ALERT = 'alert.video_seconds["Big customer"]'


def _refused(
    status: int | None,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = "invalid_request_error",
) -> StripeCallError:
    return StripeCallError(
        "refused",
        method="post",
        path="/v1/x",
        http_status=status,
        code=code,
        param=param,
        error_type=error_type,
    )


@pytest.mark.parametrize(
    ("label", "error", "expected"),
    [
        (
            f"{ALERT}: create",
            _refused(400, code="resource_missing", param="usage_threshold[filters][0][customer]"),
            Refusal(ALERT, "usage_threshold[filters][0][customer]", ("customer",), True),
        ),
        (
            "price.pro: create",
            _refused(400, param="unit_amount"),
            Refusal("price.pro", "unit_amount", ("unit_amount",), False),
        ),
        (
            "price.pro: create",
            _refused(400, param="tiers[2][flat_amount]"),
            Refusal("price.pro", "tiers[2][flat_amount]", ("tiers", 2, "flat_amount"), False),
        ),
        (
            "price.pro: create",
            _refused(400, param="recurring[meter]", code="resource_missing"),
            Refusal("price.pro", "recurring[meter]", ("recurring", "meter"), True),
        ),
        (
            "meter.video_seconds: create",
            _refused(400, param="default_aggregation[formula]"),
            Refusal("meter.video_seconds", "default_aggregation[formula]", ("aggregation",), False),
        ),
        (
            "product.prod_x: update",
            _refused(404, code="resource_missing", param="id"),
            Refusal("product.prod_x", "id", ("id",), True),
        ),
        (
            "price.pro: create",
            _refused(400, param="something_new"),
            Refusal("price.pro", "something_new", None, False),
        ),
    ],
)
def test_permanent_refusals(label: str, error: StripeCallError, expected: Refusal) -> None:
    assert refusal(label, error) == expected


@pytest.mark.parametrize(
    "error",
    [
        _refused(409, code="resource_already_exists"),
        _refused(429, code="rate_limit", error_type="invalid_request_error"),
        _refused(400, code="idempotency_key_in_use"),
        _refused(400, error_type="idempotency_error"),
        _refused(500, error_type="api_error"),
        _refused(None, error_type=None),  # the connection was lost
        ReconcileError("anything else"),
    ],
)
def test_transient_or_conflicting_failures_are_not_permanent(error: ReconcileError) -> None:
    assert refusal("price.pro: create", error) is None


def _stopped(refused: Refusal | None) -> ApplyResult:
    return ApplyResult(
        done=["product.p: create"],
        failed=f"{ALERT}: create",
        error="POST /v1/billing/alerts (400 resource_missing): No such customer",
        remaining=[f"{ALERT}: create"],
        refused=refused,
    )


def test_a_permanent_refusal_names_the_field_to_change() -> None:
    refused = Refusal(ALERT, "usage_threshold[filters][0][customer]", ("customer",), True)
    advice = failure_message(_stopped(refused)).splitlines()[-1]
    assert advice == (
        "Stripe refused this for good (a re-run sends the same request and is refused the "
        f"same way): change 'customer' of {ALERT} in billing.yaml, or create what it names in "
        "the account, then run plan and apply again."
    )
    assert "apply finishes it" not in failure_message(_stopped(refused), "custom advice")


def test_a_refusal_of_a_parameter_billing_yaml_does_not_set_names_the_parameter() -> None:
    advice = Refusal("price.pro", "something_new", None, False).advice()
    assert "change price.pro (Stripe refused its 'something_new') in billing.yaml, then" in advice


def test_anything_else_says_run_again() -> None:
    assert failure_message(_stopped(None)).splitlines()[-1] == RUN_AGAIN
    assert failure_message(_stopped(None), "custom advice").splitlines()[-1] == "custom advice"


CONFIG = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video}
alerts: []
"""


class _Refusing(Gateway):
    """A gateway whose every write fails with ``error``."""

    def __init__(self, error: StripeCallError) -> None:
        super().__init__("sk_test_advice_0000", api_base="http://127.0.0.1:9", max_retries=0)
        self.error = error

    def write(self, *args: object, **kwargs: object) -> tuple[dict[str, object], bool]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "last_line"),
    [
        (
            _refused(500, error_type="api_error"),
            "Run plan again: it shows what is left; apply finishes it once the cause is fixed.",
        ),
        (
            _refused(400, param="name"),
            "Stripe refused this for good (a re-run sends the same request and is refused the "
            "same way): change 'name' of product.prod_video in billing.yaml, then run plan and "
            "apply again.",
        ),
    ],
    ids=["transient", "permanent"],
)
def test_an_apply_that_stops_advises_by_the_kind_of_failure(
    error: StripeCallError, last_line: str
) -> None:
    plan = build_plan(load_text(CONFIG), Snapshot())
    gateway = _Refusing(error)
    with pytest.raises(ApplyError) as stopped:
        apply_until_done(plan, Snapshot(), gateway, replan=lambda: (Snapshot(), plan))
    assert str(stopped.value).splitlines()[-1] == last_line


class _FirstWriteOnly(_Refusing):
    """A gateway that makes the first write and refuses the next with ``error``."""

    def write(self, *args: object, **kwargs: object) -> tuple[dict[str, object], bool]:
        if not getattr(self, "wrote", False):
            self.wrote = True
            return {"id": "prod_video", "object": "product"}, False
        raise self.error


def test_a_saved_plan_found_stale_after_some_writes_says_what_was_written() -> None:
    """A conflict sends apply to read the account again; the saved plan no longer
    explaining it then stops the apply, which must not claim nothing was written."""
    two = CONFIG.replace("alerts: []", "  - {id: prod_audio, name: Audio}\nalerts: []")
    plan = build_plan(load_text(two), Snapshot())
    gateway = _FirstWriteOnly(_refused(409, code="resource_already_exists"))
    detail = "the account changed since the plan was made, outside this plan:\n  product.x: gone"

    def stale() -> tuple[Snapshot, object]:
        raise StalePlanError(detail + "\nNothing was written. Run plan again.", detail=detail)

    with pytest.raises(ApplyError) as stopped:
        apply_until_done(plan, Snapshot(), gateway, replan=stale, concurrency=1)  # type: ignore[arg-type]
    message = str(stopped.value)
    assert "Nothing was written" not in message
    assert message.splitlines()[0] == (
        "apply stopped after 1 steps: product.prod_audio: create failed (POST /v1/x (409 "
        "resource_already_exists): refused); then the account changed since the plan was "
        "made, outside this plan:"
    )
    assert "done (1): product.prod_video: create" in message
    assert message.splitlines()[-1].startswith("What was done stays.")
