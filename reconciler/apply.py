"""Execute a Plan through the gateway, in dependency order, idempotently.

Apply makes no decision the plan did not show. The steps come from
``reconciler.writes`` (pure: each change's steps, by its kind's spec, in
phases so nothing is left pointing at an archived object); this module runs
them.

Within a phase, the steps of different addresses write different objects and
run concurrently (bounded); the steps of one address run in order. A step
that finally fails stops the apply: no new step starts, those in flight
finish, and the result says what was done and what was not.

Every write carries an idempotency key bound to the exact request: the
object as the plan saw it (its evidence), the address, the step, and a digest
of the method, path, API version and resolved parameters. Rerunning the same
plan after a crash, or a second apply that read the same account, replays
Stripe's first answer instead of writing twice; a changed billing.yaml sends
other parameters under another key, so it never collides with an earlier one.
A delete (the few objects Stripe retires only so) needs no key: an object
already gone is what the request was for.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from reconciler.errors import ApplyError, ReconcileError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.kinds.registry import REGISTRY
from reconciler.plan import IDEMPOTENCY_PREFIX, Plan, fingerprint
from reconciler.snapshot import Snapshot
from reconciler.steps import Step
from reconciler.writes import known_ids, plan_steps

__all__ = [
    "ApplyResult",
    "Step",
    "apply_plan",
    "failure_message",
    "idempotency_key",
    "plan_steps",
]


@dataclass
class ApplyResult:
    """What an apply did: steps done, in order, and the one that failed if any.

    ``replayed`` lists the steps Stripe answered from an earlier request with the
    same key (another apply's, or this plan's before a crash): nothing was
    written for them now, so only a fresh read tells whether their effect holds.
    """

    done: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str | None = None
    remaining: list[str] = field(default_factory=list)
    refused: Refusal | None = None
    """Set when Stripe refused the failed step for good (see :func:`refusal`)."""


@dataclass(frozen=True)
class Refusal:
    """A write Stripe refused in a way no re-run can fix: a 400 invalid request or a 404.

    ``field`` is the billing.yaml field the refused Stripe ``param`` comes from,
    as a path inside the object at ``address`` (``("customer",)`` for an alert), or
    None when the parameter is not one billing.yaml sets.
    """

    address: str
    param: str | None
    field: tuple[str | int, ...] | None
    missing: bool
    """Stripe said the object the parameter names does not exist (``resource_missing``)."""

    def advice(self) -> str:
        """What to change, instead of a re-run that would be refused the same way."""
        if self.field is not None:
            what = f"'{_dotted(self.field)}' of {self.address}"
        elif self.param is not None:
            what = f"{self.address} (Stripe refused its '{self.param}')"
        else:
            what = self.address
        create = ", or create what it names in the account" if self.missing else ""
        return (
            "Stripe refused this for good (a re-run sends the same request and is refused the "
            f"same way): change {what} in billing.yaml{create}, then run plan and apply again."
        )


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def refusal(label: str, error: BaseException) -> Refusal | None:
    """The refusal of the step ``label`` (``address: step``) if ``error`` is permanent:
    Stripe's 400 ``invalid_request_error`` for a parameter, or 404 for an object.
    Rate limits, conflicts, locks, idempotency errors, 5xx and lost connections are
    not: another round can succeed."""
    if not isinstance(error, StripeCallError) or error.http_status not in (400, 404):
        return None
    if error.error_type not in (None, "invalid_request_error"):
        return None
    if error.code in ("idempotency_key_in_use", "lock_timeout", "rate_limit"):
        return None
    address = label.rsplit(": ", 1)[0]
    spec = next((s for s in REGISTRY if address.startswith(f"{s.kind.value}.")), None)
    param = error.param
    found: tuple[str | int, ...] | None = None
    if param is not None and spec is not None:
        found = spec.param_field(param)
    return Refusal(address, param, found, error.code == "resource_missing")


def idempotency_key(step: Step, path: str, params: Mapping[str, Any], *, salt: str = "") -> str:
    """The key of one exact request: what it writes, as seen, and what it sends.

    ``salt`` is empty on a first attempt; a later round that must send a request
    again after Stripe already answered it under the same key sets it.
    """
    request = fingerprint((step.stripe_version, path, params))
    text = f"{step.evidence}|{step.address}|{step.name}|{request}|{salt}"
    return (
        IDEMPOTENCY_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    )


def apply_plan(
    plan: Plan,
    snapshot: Snapshot,
    gateway: Gateway,
    *,
    concurrency: int = 4,
    on_step: Callable[[str, int, int], None] | None = None,
    answered: set[str] | None = None,
) -> ApplyResult:
    """Run every step, phase by phase; raise ApplyError saying what was and was not done.

    ``answered`` holds the keys Stripe already answered earlier in this run (it
    is added to): a later round that needs one of those requests again, because
    its effect is gone, sends it under a salted key instead of being replayed. A
    refusal (400, 404: nothing was written) counts as answered too: Stripe may keep
    it for the key, and a later round, after a fresh read, must be asked anew (a
    code whose coupon this round's replayed create did not make).
    """
    answered = set() if answered is None else answered
    ids = known_ids(snapshot, plan)
    steps = plan_steps(plan)
    result = ApplyResult()
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[tuple[str, ReconcileError]] = []

    def run_group(group: list[Step]) -> None:
        for step in group:
            if stop.is_set():
                return
            label = f"{step.address}: {step.name}"
            key = ""
            try:
                path, params = step.path(ids), step.params(ids)
                key = idempotency_key(step, path, params)
                with lock:
                    if key in answered:
                        key = idempotency_key(step, path, params, salt=str(len(answered)))
                if step.method == "delete":
                    obj, replayed = gateway.delete(path, stripe_version=step.stripe_version)
                else:
                    obj, replayed = gateway.write(
                        path, params, idempotency_key=key, stripe_version=step.stripe_version
                    )
            except ReconcileError as exc:
                with lock:
                    failures.append((label, exc))
                    refused = isinstance(exc, StripeCallError) and exc.http_status in (400, 404)
                    if key and refused:
                        answered.add(key)
                stop.set()
                return
            with lock:
                answered.add(key)
                if replayed:
                    result.replayed.append(label)
                if step.remember is not None:
                    ids.remember(*step.remember, obj["id"])
                result.done.append(label)
                done = len(result.done)
            if on_step is not None:
                on_step(label, done, len(steps))

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for _phase, phase_steps in groupby(steps, key=lambda s: s.phase):
            groups: dict[str, list[Step]] = {}
            for step in phase_steps:
                groups.setdefault(step.address, []).append(step)
            for future in [pool.submit(run_group, g) for g in groups.values()]:
                future.result()
            if stop.is_set():
                break
    if failures:
        result.failed, error = failures[0]
        result.error = str(error)
        result.refused = refusal(result.failed, error)
        finished = set(result.done)
        result.remaining = [
            f"{s.address}: {s.name}" for s in steps if f"{s.address}: {s.name}" not in finished
        ]
        raise ApplyError(failure_message(result), result) from error
    return result


RUN_AGAIN = "Run plan again: it shows what is left, and apply finishes it."


def failure_message(result: ApplyResult, advice: str | None = None) -> str:
    """Where an apply stopped, what it did and did not do, and what to do next: what to
    change after a permanent refusal, else ``advice`` (by default: run again)."""
    if result.refused is not None:
        advice = result.refused.advice()
    lines = [f"apply stopped at {result.failed}: {result.error}"]
    lines.append(f"done ({len(result.done)}): " + (", ".join(result.done) or "nothing"))
    lines.append(
        f"not done ({len(result.remaining)}): " + (", ".join(result.remaining) or "nothing")
    )
    lines.append(advice or RUN_AGAIN)
    return "\n".join(lines)
