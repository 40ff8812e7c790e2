"""Apply until the account matches, the way a controller does, instead of locking.

Stripe has no compare-and-set, so two applies cannot exclude each other
through the account; they converge instead. One round applies a plan. A
fresh read and plan follow a round that met a conflict another writer may
have caused (Stripe refused a write as invalid, missing, already existing or
in conflict) or in which Stripe replayed a write from an earlier request
with the same key (its effect may be gone since). Rounds end when a fresh
plan has nothing left to do, when a round fails on the same step with the
same error as the round before (re-planning does not fix a permanent
error), or after ``MAX_ROUNDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.apply import ApplyResult, apply_plan, failure_message
from reconciler.errors import ApplyError, StalePlanError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.plan import Plan
from reconciler.snapshot import Snapshot

__all__ = ["MAX_ROUNDS", "Converged", "apply_until_done"]

MAX_ROUNDS = 5
_CONFLICT_STATUSES = frozenset({400, 404, 409})

Replan = Callable[[], tuple[Snapshot, Plan]]


@dataclass
class Converged:
    """Every round's steps together, and how many rounds it took."""

    result: ApplyResult
    rounds: int


def apply_until_done(
    plan: Plan,
    snapshot: Snapshot,
    gateway: Gateway,
    *,
    replan: Replan,
    concurrency: int = 4,
    on_step: Callable[[str, int, int], None] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> Converged:
    """Apply ``plan``, then re-read and re-plan (``replan``) while another writer may
    have interfered; raise ApplyError when a round cannot be finished."""
    answered: set[str] = set()
    total = ApplyResult()
    last_failure: tuple[str | None, str | None] | None = None
    for round_number in range(1, max_rounds + 1):
        try:
            result = apply_plan(
                plan,
                snapshot,
                gateway,
                concurrency=concurrency,
                on_step=on_step,
                answered=answered,
            )
            failure: ApplyError | None = None
        except ApplyError as exc:
            if not isinstance(exc.result, ApplyResult):
                raise
            result, failure = exc.result, exc
        total.done += result.done
        total.replayed += result.replayed
        if failure is None and not result.replayed:
            return Converged(total, round_number)
        if failure is not None:
            signature = (result.failed, result.error)
            permanent = not _maybe_conflict(failure) or signature == last_failure
            if permanent or round_number == max_rounds:
                total.failed, total.error = signature
                total.remaining = result.remaining
                total.refused = result.refused
                raise ApplyError(_stopped(total, repeated=signature == last_failure), total) from (
                    failure.__cause__
                )
            last_failure = signature
        try:
            snapshot, plan = replan()
        except StalePlanError as exc:
            total.failed, total.error = result.failed, result.error or exc.detail
            raise ApplyError(_changed_under(total, exc), total) from exc
        if not plan.has_changes:
            return Converged(total, round_number)
    raise ApplyError(
        f"the account still differs from billing.yaml after {max_rounds} rounds "
        f"({plan.summary()}): another writer may be changing it at the same time. "
        "Run plan to see what is left.",
        total,
    )


def _maybe_conflict(failure: ApplyError) -> bool:
    """Whether another writer could have caused the refusal (a fresh plan may avoid it)."""
    cause = failure.__cause__
    return isinstance(cause, StripeCallError) and cause.http_status in _CONFLICT_STATUSES


def _changed_under(result: ApplyResult, stale: StalePlanError) -> str:
    """The saved plan no longer explains the account, read again after some writes: what
    was written stays, and the rest is for a new plan."""
    failed = f"{result.failed} failed ({result.error}); then " if result.failed else ""
    return (
        f"apply stopped after {len(result.done)} steps: {failed}{stale.detail}\n"
        f"done ({len(result.done)}): {', '.join(result.done) or 'nothing'}\n"
        "What was done stays. Run plan again and review the new plan: it shows what is left."
    )


def _stopped(result: ApplyResult, *, repeated: bool) -> str:
    if repeated:
        return failure_message(
            result,
            "Stripe refused the same request again after a fresh read of the account: "
            "change billing.yaml or the account so it can succeed, then apply again.",
        )
    return failure_message(
        result, "Run plan again: it shows what is left; apply finishes it once the cause is fixed."
    )
