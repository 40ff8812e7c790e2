"""What a test clock advance does to the subscriptions on it.

Hooked on ``test_clock.advance``: the customers' subscriptions and schedules
are walked event by event, in time order, from the old ``frozen_time`` to the
new one (the clock reads each event's time while it runs):

1. a ``not_started`` schedule whose start is reached creates its subscription
   (and the ``subscription_create`` invoice);
2. at a subscription's period end: the metered usage of the period that ended
   is collected with the items it had; then, when an attached schedule's
   phase ends there, the next phase's items, tax rates, discounts and
   metadata are put on the subscription, or after the last phase the
   ``end_behavior`` applies (``release``: the schedule is ``released`` and the
   subscription keeps the last phase's items; ``cancel``: the subscription is
   canceled and the schedule ``completed``); ``cancel_at_period_end`` cancels;
   a trial ending there (its end is the first period's end) turns
   ``trialing`` into ``active``;
   a subscription still running (``active``, ``past_due``, ``unpaid``) renews
   (every item's period moves on) and its licensed items are billed in
   advance for the new period; one ``subscription_cycle`` invoice holds the
   pending prorations (:mod:`.prorations`, also when the subscription ends
   there) and both kinds of lines (a canceled subscription with nothing to
   bill gets none);
3. a schedule phase that ends between period boundaries switches items and
   prorates per its ``proration_behavior`` (:mod:`.prorations`), or, when the
   switch moves the subscription between free and paid, closes the period and
   invoices it at once (:mod:`.cycle_reset`);
4. payments and statuses (:mod:`.collection`): open invoices are retried at
   their ``next_payment_attempt``; an ``incomplete`` subscription expires 23
   hours after its creation; ``past_due`` and ``unpaid`` subscriptions go on
   renewing (their invoices are collected by the same rules);
5. three days before a trial ends, ``customer.subscription.trial_will_end``
   (docs.stripe.com/billing/subscriptions/trials: "three days before the
   trial period ends"; not sent for trials shorter than that);
6. ``pause_collection`` (docs.stripe.com/billing/subscriptions/pause-payment):
   while set, each renewal invoice is kept as a draft, or, when its draft hour
   is over, marked uncollectible or voided per its ``behavior``; at
   ``resumes_at`` it is cleared;
7. ``cancel_at`` inside a period cancels the subscription then (at a period
   end it behaves as ``cancel_at_period_end``);
8. a draft whose hour is over (``automatically_finalizes_at``) is finalised
   and collected (:func:`.collection.finalize_due`).

Hooked on ``test_clock.max_advance``: at most two intervals of the shortest
subscription on the clock past the current frozen time.
"""

from __future__ import annotations

from reconciler.emulator.errors import invalid
from reconciler.emulator.events import emit
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    INVOICE,
    SCHEDULE,
    SUBSCRIPTION,
    customer_now,
    next_boundary,
    shift,
)
from reconciler.emulator.resources.collection import (
    DRAFT_HOUR,
    INCOMPLETE_EXPIRES,
    expire_incomplete,
    finalize_due,
    overdue,
    payment_method_of,
    retry_due,
)
from reconciler.emulator.resources.invoices import issue_invoice, licensed_lines, metered_lines
from reconciler.emulator.resources.prorations import take_pending
from reconciler.emulator.resources.schedules import (
    current_phase_index,
    enter_phase,
    release_schedule,
    start_schedule,
)
from reconciler.emulator.resources.subscription_limits import limited
from reconciler.emulator.resources.subscriptions import (
    RUNNING,
    cancel_subscription,
    interval_of,
    path_subscription,
    set_period,
)
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["TRIAL_WILL_END", "register"]

#: ``customer.subscription.trial_will_end`` comes this long before the trial's end.
TRIAL_WILL_END = 3 * 86400
_ENDED = ("canceled", "incomplete_expired")


def _customers(req: Request, clock: JSON) -> set[str]:
    return {c["id"] for c in req.store.values(CUSTOMER) if c.get("test_clock") == clock["id"]}


def _active_subscriptions(req: Request, customers: set[str]) -> list[JSON]:
    return [
        sub
        for sub in req.store.values(SUBSCRIPTION)
        if sub["customer"] in customers and sub["status"] in RUNNING
    ]


def _schedule_of(req: Request, sub: JSON) -> JSON | None:
    schedule_id = sub.get("schedule")
    schedule = req.store.find(SCHEDULE, str(schedule_id)) if schedule_id else None
    if schedule is None or schedule["status"] != "active":
        return None
    return schedule


def _phase_end(schedule: JSON, when: int) -> int | None:
    index = current_phase_index(schedule, when)
    if index is None:
        return None
    return int(schedule["phases"][index]["end_date"])


def _clock_subscriptions(req: Request, customers: set[str]) -> list[JSON]:
    return [
        sub
        for sub in req.store.values(SUBSCRIPTION)
        if sub["customer"] in customers and sub["status"] not in _ENDED
    ]


def _timed(sub: JSON) -> list[int]:
    """The moments other than period and phase ends when something happens to ``sub``."""
    if sub["status"] == "incomplete":
        return [int(sub["created"]) + INCOMPLETE_EXPIRES]
    times: list[int] = []
    if sub["status"] == "trialing" and sub.get("trial_end") is not None:
        warning = int(sub["trial_end"]) - TRIAL_WILL_END
        if warning > int(sub["trial_start"] or 0):
            times.append(warning)
    pause = sub.get("pause_collection")
    if pause and pause.get("resumes_at") is not None:
        times.append(int(pause["resumes_at"]))
    if sub.get("cancel_at") is not None and int(sub["cancel_at"]) < int(sub["current_period_end"]):
        times.append(int(sub["cancel_at"]))
    return times


def _next_event(req: Request, customers: set[str], now: int) -> int | None:
    times: list[int] = []
    for sub in _clock_subscriptions(req, customers):
        times.extend(t for t in _timed(sub) if t > now)
    for invoice in req.store.values(INVOICE):
        retry = invoice.get("next_payment_attempt")
        due = invoice.get("due_date")
        if invoice["customer"] in customers and invoice["status"] == "open":
            times.extend(int(t) for t in (retry, due) if t is not None and int(t) > now)
        finalizes = invoice.get("automatically_finalizes_at")
        if invoice["customer"] in customers and invoice["status"] == "draft" and finalizes:
            times.extend([int(finalizes)] if int(finalizes) > now else [])
    for sub in _active_subscriptions(req, customers):
        times.append(int(sub["current_period_end"]))
        schedule = _schedule_of(req, sub)
        if schedule is not None:
            end = _phase_end(schedule, now)
            if end is not None:
                times.append(end)
    for schedule in req.store.values(SCHEDULE):
        if schedule["customer"] in customers and schedule["status"] == "not_started":
            times.append(int(schedule["phases"][0]["start_date"]))
    return min(times) if times else None


def _phase_transition(req: Request, sub: JSON, schedule: JSON, when: int) -> None:
    """The phase ending at ``when`` is over: enter the next one or apply end_behavior."""
    index = current_phase_index(schedule, when - 1)
    following = index + 1 if index is not None else len(schedule["phases"])
    if following < len(schedule["phases"]):
        phase = schedule["phases"][following]
        enter_phase(req, schedule, sub, phase, when)
        schedule["current_phase"] = {
            "end_date": phase["end_date"],
            "start_date": phase["start_date"],
        }
        req.store.put(SCHEDULE, schedule)
        emit(req, "subscription_schedule.updated", schedule)
        return
    if schedule["end_behavior"] == "cancel":
        # Completed first, so cancelling the subscription leaves the schedule as it is.
        schedule["status"] = "completed"
        schedule["completed_at"] = when
        schedule["canceled_at"] = None
        schedule["current_phase"] = None
        req.store.put(SCHEDULE, schedule)
        emit(req, "subscription_schedule.completed", schedule)
        cancel_subscription(req, sub, when, "cancellation_requested")
    else:
        release_schedule(req, schedule, when)


def _process(req: Request, sub: JSON, when: int) -> None:
    boundary = int(sub["current_period_end"]) == when
    schedule = _schedule_of(req, sub)
    phase_ends = schedule is not None and _phase_end(schedule, when - 1) == when
    if not boundary and not phase_ends:
        return
    previous_start = int(sub["current_period_start"])
    old_cycle = interval_of(req, sub)
    # Pending prorations go on the period-end invoice, also when the subscription ends there.
    lines = (
        take_pending(req, sub) + metered_lines(req, sub, previous_start, when) if boundary else []
    )
    if phase_ends and schedule is not None:
        _phase_transition(req, sub, schedule, when)
    if not boundary:
        req.store.put(SUBSCRIPTION, sub)
        return
    ending = sub.get("cancel_at") is not None and int(sub["cancel_at"]) <= when
    if sub["status"] in RUNNING and (sub.get("cancel_at_period_end") or ending):
        cancel_subscription(req, sub, when, "cancellation_requested")
    if sub["status"] == "trialing" and int(sub["trial_end"]) <= when:
        _end_trial(req, sub, when)
    renewing = sub["status"] in RUNNING
    if renewing:
        interval, count = interval_of(req, sub)
        if (interval, count) != old_cycle:
            sub["billing_cycle_anchor"] = when
        end = next_boundary(int(sub["billing_cycle_anchor"]), interval, count, when)
        set_period(sub, when, end)
        lines += licensed_lines(req, sub, when, end)
    if not renewing and not lines:
        req.store.put(SUBSCRIPTION, sub)
        return
    pause = sub.get("pause_collection") if renewing else None
    issue_invoice(
        req,
        sub,
        lines,
        reason="subscription_cycle",
        period=(previous_start, when),
        when=when,
        hold=str(pause["behavior"]) if pause and pause["behavior"] == "keep_as_draft" else None,
        draft_for=DRAFT_HOUR,
    )
    if sub["status"] in RUNNING:
        emit(req, "customer.subscription.updated", sub)


def _end_trial(req: Request, sub: JSON, when: int) -> None:
    """The trial is over: the first paid period starts, unless the subscription has no
    payment method and its ``trial_settings`` say to pause or cancel it.

    docs.stripe.com/billing/subscriptions/trials ("Use trials without collecting
    payment methods"): ``missing_payment_method`` ``create_invoice`` (default)
    invoices anyway, ``pause`` makes the subscription ``paused`` (no invoices
    until it is resumed; ``customer.subscription.paused``), ``cancel`` cancels it.
    """
    missing = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    if missing == "create_invoice" or payment_method_of(req, sub, sub["customer"]) is not None:
        sub["status"] = "active"
        return
    if missing == "pause":
        sub["status"] = "paused"
        req.store.put(SUBSCRIPTION, sub)
        emit(req, "customer.subscription.updated", sub)
        emit(req, "customer.subscription.paused", sub)
        return
    cancel_subscription(req, sub, when, "cancellation_requested")


def resume(req: Request) -> JSON:
    """``POST /v1/subscriptions/{id}/resume`` (docs.stripe.com/api/subscriptions/resume).

    Only a ``paused`` subscription resumes. ``billing_cycle_anchor`` ``{type: now}``
    (the default; "no prorations are generated") starts a new period at once and
    invoices it (``billing_reason``
    ``subscription_update``: UNCONFIRMED, the reference does not name it);
    ``unchanged`` is not emulated. "If payment succeeds the subscription will
    become active, and if payment fails the subscription will be past_due"
    (``payment_behavior=resume_on_payment_attempt``, the default);
    ``resume_on_payment_success`` keeps it ``paused`` until the invoice is paid.
    """
    sub = req.store.get(SUBSCRIPTION, req.path_params["id"])
    params = req.params
    if sub["status"] != "paused":
        raise invalid(
            f"The subscription {sub['id']} is {sub['status']}; only a paused subscription can "
            "be resumed.",
            param="id",
        )
    anchor = params.get("billing_cycle_anchor")
    kind = anchor.get("type") if isinstance(anchor, dict) else anchor
    if kind not in (None, "now"):
        raise invalid(
            "The emulator does not support resuming with billing_cycle_anchor=unchanged "
            "(not emulated); resume with `now`.",
            param="billing_cycle_anchor",
        )
    now = customer_now(req, sub["customer"])
    interval, count = interval_of(req, sub)
    sub["billing_cycle_anchor"] = now
    set_period(sub, now, next_boundary(now, interval, count, now))
    on_success = params.get("payment_behavior") == "resume_on_payment_success"
    if not on_success:
        sub["status"] = "active"
    lines = licensed_lines(req, sub, now, int(sub["current_period_end"]))
    invoice = issue_invoice(
        req, sub, lines, reason="subscription_update", period=(now, now), when=now
    )
    req.store.put(SUBSCRIPTION, sub)
    emit(req, "customer.subscription.updated", sub)
    if (sub["status"] != "paused" and invoice["status"] == "paid") or not on_success:
        emit(req, "customer.subscription.resumed", sub)
    return sub


def _timed_changes(req: Request, sub: JSON, when: int) -> None:
    """What happens to ``sub`` at ``when`` apart from its period end (see :func:`_timed`)."""
    if sub["status"] == "incomplete":
        if int(sub["created"]) + INCOMPLETE_EXPIRES == when:
            expire_incomplete(req, sub, when)
        return
    trial_end = sub.get("trial_end") if sub["status"] == "trialing" else None
    if trial_end is not None and int(trial_end) - TRIAL_WILL_END == when:
        emit(req, "customer.subscription.trial_will_end", sub)
    pause = sub.get("pause_collection")
    if pause and pause.get("resumes_at") is not None and int(pause["resumes_at"]) == when:
        sub["pause_collection"] = None
        req.store.put(SUBSCRIPTION, sub)
        emit(req, "customer.subscription.updated", sub)
    cancel_at = sub.get("cancel_at")
    if cancel_at is not None and int(cancel_at) == when < int(sub["current_period_end"]):
        cancel_subscription(req, sub, when, "cancellation_requested")


def advance(req: Request, clock: JSON, old_time: int, new_time: int) -> None:
    customers = _customers(req, clock)
    now = old_time
    while True:
        when = _next_event(req, customers, now)
        if when is None or when > new_time:
            break
        clock["frozen_time"] = when
        for schedule in list(req.store.values(SCHEDULE)):
            if (
                schedule["customer"] in customers
                and schedule["status"] == "not_started"
                and int(schedule["phases"][0]["start_date"]) == when
            ):
                start_schedule(req, schedule, when)
        finalize_due(req, customers, when)
        retry_due(req, customers, when)
        overdue(req, customers, when)
        for sub in _clock_subscriptions(req, customers):
            _timed_changes(req, sub, when)
        for sub in _active_subscriptions(req, customers):
            _process(req, sub, when)
        now = when
    clock["frozen_time"] = new_time


def max_advance(req: Request, clock: JSON) -> int | None:
    """Two intervals of the shortest active subscription on the clock past its time."""
    frozen = int(clock["frozen_time"])
    limits = [
        shift(frozen, *_doubled(interval_of(req, sub)))
        for sub in _active_subscriptions(req, _customers(req, clock))
    ]
    return min(limits) if limits else None


def _doubled(cycle: tuple[str, int]) -> tuple[str, int]:
    return cycle[0], 2 * cycle[1]


def register(registry: Registry) -> None:
    registry.route(
        "POST",
        "/v1/subscriptions/{id}/resume",
        limited(resume, path_subscription),
        params="SubscriptionResumeParams",
    )
    registry.add_hook("test_clock.max_advance", max_advance)
    registry.add_hook("test_clock.advance", advance)
