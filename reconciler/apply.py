"""Execute a Plan through the gateway, in dependency order, idempotently.

Apply makes no decision the plan did not show. Each planned change becomes
one or more steps; steps run in phases so nothing is left pointing at an
archived object:

1. products (create, update), meters (create, update, reactivate, replace),
2. prices (create, update, replace: the new price takes the lookup key),
3. default prices (products point at their declared default),
4. alerts (create, reactivate, replace),
5. subscription migrations (one group per subscription, so no two workers
   ever write one subscription or its schedule),
6. products losing a default price that is being archived let go of it,
7. retirements last: archive prices (and replaced ones), archive products,
   deactivate meters and alerts.

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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from reconciler.errors import ApplyError, ReconcileError, StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.migrations import TO_PRICE
from reconciler.plan import IDEMPOTENCY_PREFIX, Action, Plan, ResourceChange, fingerprint
from reconciler.snapshot import Snapshot

__all__ = [
    "ApplyResult",
    "Step",
    "apply_plan",
    "failure_message",
    "idempotency_key",
    "plan_steps",
]

PHASE_CATALOG = 1
PHASE_PRICES = 2
PHASE_DEFAULTS = 3
PHASE_ALERTS = 4
PHASE_MIGRATIONS = 5
PHASE_UNSET_DEFAULTS = 6
PHASE_RETIRE = 7


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


_PARAM_FIELDS: dict[str, dict[str, tuple[str | int, ...]]] = {
    "product": {"name": ("name",), "description": ("description",), "id": ("id",)},
    "meter": {
        "event_name": ("event_name",),
        "display_name": ("display_name",),
        "default_aggregation[formula]": ("aggregation",),
        "customer_mapping[event_payload_key]": ("customer_key",),
        "value_settings[event_payload_key]": ("value_key",),
    },
    "price": {
        "product": ("product",),
        "currency": ("currency",),
        "nickname": ("nickname",),
        "lookup_key": ("lookup_key",),
        "unit_amount": ("unit_amount",),
        "unit_amount_decimal": ("unit_amount_decimal",),
        "tiers_mode": ("tiers_mode",),
        "recurring[interval]": ("recurring", "interval"),
        "recurring[interval_count]": ("recurring", "interval_count"),
        "recurring[usage_type]": ("recurring", "usage"),
        "recurring[meter]": ("recurring", "meter"),
        "transform_quantity[divide_by]": ("transform_quantity", "divide_by"),
        "transform_quantity[round]": ("transform_quantity", "round"),
    },
    "alert": {
        "title": ("title",),
        "usage_threshold[gte]": ("threshold",),
        "usage_threshold[meter]": ("meter",),
        "usage_threshold[recurrence]": ("recurrence",),
        "usage_threshold[filters][0][customer]": ("customer",),
    },
}
_TIER_PARAM = re.compile(r"tiers\[(\d+)\]\[(\w+)\]")


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
    kind = address.split(".", 1)[0]
    param = error.param
    found: tuple[str | int, ...] | None = None
    if param is not None:
        found = _PARAM_FIELDS.get(kind, {}).get(param)
        tier = _TIER_PARAM.fullmatch(param) if kind == "price" else None
        if tier is not None:
            found = ("tiers", int(tier.group(1)), tier.group(2))
    return Refusal(address, param, found, error.code == "resource_missing")


class _Ids:
    """Stripe ids known so far: from the snapshot, then from objects this apply made."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.meters = {name: obj.stripe_id for name, obj in snapshot.meters.items()}
        self.prices = {key: obj.stripe_id for key, obj in snapshot.prices.items()}
        self.schedules: dict[str, str] = {}

    def remember(self, kind: str, identity: str, stripe_id: str) -> None:
        {"meter": self.meters, "price": self.prices, "schedule": self.schedules}[kind][identity] = (
            stripe_id
        )

    def meter(self, event_name: str) -> str:
        return self.meters[event_name]

    def price(self, lookup_key: str) -> str:
        return self.prices[lookup_key]


Resolver = Callable[[_Ids], Mapping[str, Any]]


@dataclass(frozen=True)
class Step:
    """One write: its phase, the change it serves, a stable name (for its idempotency
    key), and its path and parameters, resolved late because they may need ids of
    objects created by earlier steps."""

    phase: int
    address: str
    name: str
    path: Callable[[_Ids], str]
    params: Resolver
    remember: tuple[str, str] | None = None  # ("meter" | "price" | "schedule", identity)
    stripe_version: str | None = None
    evidence: str = ""  # the object as planned; set by plan_steps for the whole change


def _changed_fields(change: ResourceChange, names: tuple[str, ...]) -> dict[str, Any]:
    after = change.after or {}
    changed = {c.field.split(".")[0] for c in change.changes} if change.before else set(after)
    params: dict[str, Any] = {}
    for name in names:
        if name in changed and name in after:
            value = after[name]
            params[name] = "" if value is None else value
    if "metadata" in changed and "metadata" in after:
        params["metadata"] = dict(after["metadata"])
    return params


def _meter_create_params(event_name: str, after: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event_name": event_name,
        "display_name": after["display_name"],
        "default_aggregation": {"formula": after["aggregation"]},
        "customer_mapping": {"type": "by_id", "event_payload_key": after["customer_key"]},
        "value_settings": {"event_payload_key": after["value_key"]},
    }


def _price_create_params(
    lookup_key: str, after: Mapping[str, Any], ids: _Ids, *, transfer: bool
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "product": after["product"],
        "currency": after["currency"],
        "lookup_key": lookup_key,
        "metadata": dict(after["metadata"]),
    }
    if transfer:
        params["transfer_lookup_key"] = True
    if after.get("nickname") is not None:
        params["nickname"] = after["nickname"]
    recurring = after.get("recurring")
    if recurring is not None:
        params["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "usage_type": recurring["usage"],
        }
        if recurring.get("meter"):
            params["recurring"]["meter"] = ids.meter(recurring["meter"])
    if after.get("tiers"):
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = after["tiers_mode"]
        params["tiers"] = [
            {
                "up_to": "inf" if tier["up_to"] is None else tier["up_to"],
                **(
                    {"unit_amount_decimal": tier["unit_amount"]}
                    if tier["unit_amount"] is not None
                    else {}
                ),
                **(
                    {"flat_amount_decimal": tier["flat_amount"]}
                    if tier["flat_amount"] is not None
                    else {}
                ),
            }
            for tier in after["tiers"]
        ]
    else:
        params["unit_amount_decimal"] = after["unit_amount"]
    transform = after.get("transform_quantity")
    if transform is not None:
        params["transform_quantity"] = dict(transform)
    return params


def _alert_create_params(address: str, after: Mapping[str, Any], ids: _Ids) -> dict[str, Any]:
    meter, title = _alert_identity(address)
    usage: dict[str, Any] = {
        "gte": after["threshold"],
        "meter": ids.meter(meter),
        "recurrence": after["recurrence"],
    }
    if after.get("customer"):
        usage["filters"] = [{"type": "customer", "customer": after["customer"]}]
    return {"alert_type": "usage_threshold", "title": title, "usage_threshold": usage}


def _alert_identity(address: str) -> tuple[str, str]:
    """``alert.video_seconds["Over 50k"]`` -> ("video_seconds", "Over 50k")."""
    meter, _, rest = address.removeprefix("alert.").partition("[")
    return meter, str(json.loads(rest[:-1]))


def _const(params: Mapping[str, Any]) -> Resolver:
    return lambda _ids: params


def _at(path: str) -> Callable[[_Ids], str]:
    return lambda _ids: path


def _price_params(lookup_key: str, after: Mapping[str, Any], *, transfer: bool) -> Resolver:
    return lambda ids: _price_create_params(lookup_key, after, ids, transfer=transfer)


def _alert_params(address: str, after: Mapping[str, Any]) -> Resolver:
    return lambda ids: _alert_create_params(address, after, ids)


def _default_price_params(lookup_key: str) -> Resolver:
    return lambda ids: {"default_price": ids.price(lookup_key)}


def _meter_rename(address: str, meter_id: str | None, after: Mapping[str, Any]) -> Step:
    """The one in-place change a meter takes: its display name."""
    params = {"display_name": after["display_name"]}
    return Step(
        PHASE_CATALOG, address, "update", _at(f"/v1/billing/meters/{meter_id}"), _const(params)
    )


def _unset_default(address: str, product: str) -> Step:
    """A product lets go of its default price, so that price can be archived."""
    return Step(
        PHASE_UNSET_DEFAULTS,
        address,
        "unset-default",
        _at(f"/v1/products/{product}"),
        _const({"default_price": ""}),
    )


def _steps_for(change: ResourceChange) -> list[Step]:
    """The writes one change needs, each in its phase."""
    kind, address, action = change.kind, change.address, change.action
    after = change.after or {}
    identity = address.split(".", 1)[1]
    old = change.stripe_id
    steps: list[Step] = []
    match kind, action:
        case _, Action.NOOP:
            pass
        case "product", Action.CREATE:
            params = {"id": identity, "name": after["name"], "metadata": dict(after["metadata"])}
            if after.get("description"):
                params["description"] = after["description"]
            steps.append(
                Step(PHASE_CATALOG, address, "create", _at("/v1/products"), _const(params))
            )
        case "product", Action.UPDATE | Action.ARCHIVE:
            fields = _changed_fields(change, ("name", "description", "active"))
            if action is Action.ARCHIVE:
                fields.pop("active", None)
            if fields:
                steps.append(
                    Step(
                        PHASE_CATALOG, address, "update", _at(f"/v1/products/{old}"), _const(fields)
                    )
                )
            if action is Action.ARCHIVE:
                steps.append(
                    Step(
                        PHASE_RETIRE,
                        address,
                        "archive",
                        _at(f"/v1/products/{old}"),
                        _const({"active": False}),
                    )
                )
        case "meter", Action.CREATE:
            steps.append(
                Step(
                    PHASE_CATALOG,
                    address,
                    "create",
                    _at("/v1/billing/meters"),
                    _const(_meter_create_params(identity, after)),
                    ("meter", identity),
                )
            )
        case "meter", Action.UPDATE:
            steps.append(_meter_rename(address, old, after))
        case "meter", Action.REACTIVATE:
            steps.append(
                Step(
                    PHASE_CATALOG,
                    address,
                    "reactivate",
                    _at(f"/v1/billing/meters/{old}/reactivate"),
                    _const({}),
                )
            )
            if any(c.field == "display_name" for c in change.changes):
                steps.append(_meter_rename(address, old, after))
        case "meter", Action.DEACTIVATE:
            steps.append(
                Step(
                    PHASE_RETIRE,
                    address,
                    "deactivate",
                    _at(f"/v1/billing/meters/{old}/deactivate"),
                    _const({}),
                )
            )
        case "price", Action.CREATE | Action.REPLACE:
            transfer = action is Action.REPLACE
            steps.append(
                Step(
                    PHASE_PRICES,
                    address,
                    "create",
                    _at("/v1/prices"),
                    _price_params(identity, after, transfer=transfer),
                    ("price", identity),
                )
            )
            unset_of = change.details.get("unset_default_of")
            if action is Action.REPLACE and unset_of:
                steps.append(_unset_default(address, str(unset_of)))
            if action is Action.REPLACE:
                steps.append(
                    Step(
                        PHASE_RETIRE,
                        address,
                        "archive-old",
                        _at(f"/v1/prices/{old}"),
                        _const({"active": False}),
                    )
                )
        case "price", Action.UPDATE | Action.ARCHIVE:
            fields = _changed_fields(change, ("nickname", "active"))
            fields.update({c.field: c.after for c in change.changes if c.field == "lookup_key"})
            if action is Action.ARCHIVE:
                fields.pop("active", None)
            if fields:
                steps.append(
                    Step(PHASE_PRICES, address, "update", _at(f"/v1/prices/{old}"), _const(fields))
                )
            if action is Action.ARCHIVE:
                default_of = change.details.get("default_of")
                if default_of and change.details.get("default_moves_to") is None:
                    steps.append(_unset_default(address, str(default_of)))
                elif change.details.get("unset_default_of"):
                    steps.append(_unset_default(address, str(change.details["unset_default_of"])))
                steps.append(
                    Step(
                        PHASE_RETIRE,
                        address,
                        "archive",
                        _at(f"/v1/prices/{old}"),
                        _const({"active": False}),
                    )
                )
        case "alert", Action.CREATE | Action.REPLACE:
            if action is Action.REPLACE and (change.before or {}).get("active", True):
                steps.append(
                    Step(
                        PHASE_ALERTS,
                        address,
                        "archive-old",
                        _at(f"/v1/billing/alerts/{old}/archive"),
                        _const({}),
                    )
                )
            steps.append(
                Step(
                    PHASE_ALERTS,
                    address,
                    "create",
                    _at("/v1/billing/alerts"),
                    _alert_params(address, after),
                )
            )
        case "alert", Action.ARCHIVE:
            steps.append(
                Step(
                    PHASE_RETIRE,
                    address,
                    "archive",
                    _at(f"/v1/billing/alerts/{old}/archive"),
                    _const({}),
                )
            )
        case "alert", Action.REACTIVATE:
            steps.append(
                Step(
                    PHASE_ALERTS,
                    address,
                    "activate",
                    _at(f"/v1/billing/alerts/{old}/activate"),
                    _const({}),
                )
            )
        case "alert", Action.DEACTIVATE:
            steps.append(
                Step(
                    PHASE_RETIRE,
                    address,
                    "deactivate",
                    _at(f"/v1/billing/alerts/{old}/deactivate"),
                    _const({}),
                )
            )
        case "migration", Action.MIGRATE:
            for row in change.details.get("subscriptions", []):
                steps += _subscription_steps(address, change.details, row)
        case _:
            raise ReconcileError(f"{address}: apply does not know how to {action.value} a {kind}")
    return steps


def _with_to_price(params: Mapping[str, Any], to_price: str) -> Resolver:
    """Planned phases name the new price by a placeholder: put its id in."""

    def resolve(ids: _Ids) -> Mapping[str, Any]:
        text = json.dumps(params).replace(json.dumps(TO_PRICE), json.dumps(ids.price(to_price)))
        resolved: Mapping[str, Any] = json.loads(text)
        return resolved

    return resolve


def _schedule_path(subscription: str, known: str | None, suffix: str = "") -> Callable[[_Ids], str]:
    def path(ids: _Ids) -> str:
        schedule = ids.schedules.get(subscription, known)
        return f"/v1/subscription_schedules/{schedule}{suffix}"

    return path


def _subscription_steps(
    address: str, details: Mapping[str, Any], row: Mapping[str, Any]
) -> list[Step]:
    """The writes that move (or restore) one subscription; they run in order."""
    sub = row["subscription"]
    where = f"{address}/{sub}"
    action = row["action"]
    evidence = str(row.get("evidence") or "")
    to_price = details["to_price"]
    params = row.get("params") or {}
    legacy = LEGACY_API_VERSION  # phases name the legacy price
    match action:
        case "create_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "schedule",
                    _at("/v1/subscription_schedules"),
                    _const({"from_subscription": sub}),
                    ("schedule", sub),
                    stripe_version=legacy,
                    evidence=evidence,
                ),
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "phases",
                    _schedule_path(sub, None),
                    _with_to_price(params, to_price),
                    stripe_version=legacy,
                    evidence=evidence,
                ),
            ]
        case "update_schedule" | "restore_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "phases",
                    _schedule_path(sub, row["schedule"]),
                    _with_to_price(params, to_price),
                    stripe_version=legacy,
                    evidence=evidence,
                )
            ]
        case "release_schedule":
            return [
                Step(
                    PHASE_MIGRATIONS,
                    where,
                    "release",
                    _schedule_path(sub, row["schedule"], "/release"),
                    _const({}),
                    stripe_version=legacy,
                    evidence=evidence,
                )
            ]
        case _:
            return []


def _default_price_steps(plan: Plan) -> list[Step]:
    """Point each product at its declared default price once every price exists."""
    steps: list[Step] = []
    replaced_defaults = {
        c.details["default_of"]: c.address.removeprefix("price.")
        for c in plan.actionable
        if c.kind == "price" and c.action is Action.REPLACE and c.details.get("default_of")
    }
    for change in plan.actionable:
        if change.kind != "product" or change.action is Action.ARCHIVE:
            continue
        product = change.address.removeprefix("product.")
        wanted = (change.after or {}).get("default_price")
        moved = change.action is Action.CREATE or any(
            c.field == "default_price" for c in change.changes
        )
        if wanted and moved:
            replaced_defaults[product] = wanted
    for product, lookup_key in sorted(replaced_defaults.items()):
        steps.append(
            Step(
                PHASE_DEFAULTS,
                f"product.{product}",
                "default-price",
                _at(f"/v1/products/{product}"),
                _default_price_params(lookup_key),
            )
        )
    return steps


def plan_steps(plan: Plan) -> list[Step]:
    """Every write of the plan, ordered by phase, then plan order.

    Each step carries the evidence of the object it writes as the plan saw it
    (migration steps, their subscription's), for its idempotency key.
    """
    evidence = {change.address: change.evidence for change in plan.changes}
    steps = [
        step if step.evidence else dataclasses.replace(step, evidence=evidence[change.address])
        for change in plan.actionable
        for step in _steps_for(change)
    ]
    steps += [
        dataclasses.replace(step, evidence=evidence.get(step.address, step.address))
        for step in _default_price_steps(plan)
    ]
    return sorted(steps, key=lambda s: s.phase)  # stable: plan order within a phase


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
    its effect is gone, sends it under a salted key instead of being replayed.
    """
    answered = set() if answered is None else answered
    ids = _Ids(snapshot)
    for change in plan.actionable:  # prices taken over by id get their lookup key here
        for field_change in change.changes:
            if field_change.field == "lookup_key" and change.stripe_id is not None:
                ids.prices[str(field_change.after)] = change.stripe_id
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
            try:
                path, params = step.path(ids), step.params(ids)
                key = idempotency_key(step, path, params)
                with lock:
                    if key in answered:
                        key = idempotency_key(step, path, params, salt=str(len(answered)))
                obj, replayed = gateway.write(
                    path, params, idempotency_key=key, stripe_version=step.stripe_version
                )
            except ReconcileError as exc:
                with lock:
                    failures.append((label, exc))
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
