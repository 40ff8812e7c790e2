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
   a subscription still active renews (every item's period moves on) and
   its licensed items are billed in advance for the new period; one
   ``subscription_cycle`` invoice holds both kinds of lines (a canceled
   subscription with no metered item gets none);
3. a phase that ends between period boundaries switches items without an
   invoice (prorations are not emulated).

Hooked on ``test_clock.max_advance``: at most two intervals of the shortest
subscription on the clock past the current frozen time.
"""

from __future__ import annotations

from reconciler.emulator.events import emit
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    SCHEDULE,
    SUBSCRIPTION,
    next_boundary,
    shift,
)
from reconciler.emulator.resources.invoices import issue_invoice, licensed_lines, metered_lines
from reconciler.emulator.resources.schedules import (
    current_phase_index,
    enter_phase,
    release_schedule,
    start_schedule,
)
from reconciler.emulator.resources.subscriptions import (
    RUNNING,
    cancel_subscription,
    interval_of,
    set_period,
)
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["register"]


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


def _next_event(req: Request, customers: set[str], now: int) -> int | None:
    times: list[int] = []
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
    lines = metered_lines(req, sub, previous_start, when) if boundary else []
    if phase_ends and schedule is not None:
        _phase_transition(req, sub, schedule, when)
    if not boundary:
        req.store.put(SUBSCRIPTION, sub)
        return
    if sub["status"] in RUNNING and sub.get("cancel_at_period_end"):
        cancel_subscription(req, sub, when, "cancellation_requested")
    if sub["status"] == "trialing" and int(sub["trial_end"]) <= when:
        sub["status"] = "active"  # the trial is over: the first paid period starts
    if sub["status"] == "active":
        interval, count = interval_of(req, sub)
        if (interval, count) != old_cycle:
            sub["billing_cycle_anchor"] = when
        end = next_boundary(int(sub["billing_cycle_anchor"]), interval, count, when)
        set_period(sub, when, end)
        lines += licensed_lines(req, sub, when, end)
    if sub["status"] != "active" and not lines:
        req.store.put(SUBSCRIPTION, sub)
        return
    issue_invoice(
        req, sub, lines, reason="subscription_cycle", period=(previous_start, when), when=when
    )
    if sub["status"] == "active":
        emit(req, "customer.subscription.updated", sub)


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
    registry.add_hook("test_clock.max_advance", max_advance)
    registry.add_hook("test_clock.advance", advance)
