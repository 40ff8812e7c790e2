"""Test clocks: ``/v1/test_helpers/test_clocks`` create, retrieve, list, delete, advance.

``advance`` moves ``frozen_time`` forward only, then the clock is ``ready``.
Billing effects plug in through registry hooks, so the subscription and
invoice modules can add them without touching this one:

- ``"test_clock.max_advance"``: ``fn(req, clock) -> int | None``, the latest
  ``frozen_time`` the clock may jump to (the smallest answer wins; with no
  answer, two years ahead, Stripe's limit for a clock without subscriptions);
- ``"test_clock.advance"``: ``fn(req, clock, old_time, new_time) -> None``, run
  in registration order while the clock is ``advancing``, to renew
  subscriptions, switch schedule phases, finalise invoices...;
- ``"test_clock.delete"``: ``fn(req, clock) -> None`` before the clock and its
  customers go.

Events the advance hooks emit are automatic (:func:`..events.automatic`): no
request id or idempotency key, the clock's time as ``created``.
"""

from __future__ import annotations

from reconciler.emulator.errors import invalid
from reconciler.emulator.events import automatic, emit
from reconciler.emulator.render import paginate
from reconciler.emulator.resources._common import deleted
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["TEST_CLOCK", "register"]

TEST_CLOCK = "test_helpers.test_clock"
LABEL = "test_clock"
DELETES_AFTER = 30 * 86400
MAX_ADVANCE_WITHOUT_SUBSCRIPTIONS = 2 * 365 * 86400


def create(req: Request) -> JSON:
    now = req.now()
    clock: JSON = {
        "id": new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + DELETES_AFTER,
        "frozen_time": int(req.params["frozen_time"]),
        "livemode": False,
        "name": req.params.get("name"),
        "status": "ready",
        "status_details": {},
    }
    req.store.put(TEST_CLOCK, clock)
    emit(req, "test_helpers.test_clock.created", clock)
    return clock


def retrieve(req: Request) -> JSON:
    return req.store.get(TEST_CLOCK, req.path_params["id"], label=LABEL)


def list_(req: Request) -> JSON:
    return paginate(
        req, req.store.newest_first(TEST_CLOCK), "/v1/test_helpers/test_clocks", label=LABEL
    )


def delete(req: Request) -> JSON:
    clock = req.store.get(TEST_CLOCK, req.path_params["id"], label=LABEL)
    for hook in req.registry.hooks("test_clock.delete"):
        hook(req, clock)
    for customer in req.store.values("customer"):
        if customer.get("test_clock") == clock["id"]:
            req.store.delete("customer", customer["id"])
    emit(req, "test_helpers.test_clock.deleted", clock)
    req.store.delete(TEST_CLOCK, clock["id"])
    return deleted("test_helpers.test_clock", clock["id"])


def advance(req: Request) -> JSON:
    clock = req.store.get(TEST_CLOCK, req.path_params["id"], label=LABEL)
    old_time = int(clock["frozen_time"])
    new_time = int(req.params["frozen_time"])
    if new_time <= old_time:
        raise invalid(
            f"The test clock can only move forward: frozen_time must be after {old_time}.",
            param="frozen_time",
        )
    limits = [
        limit
        for hook in req.registry.hooks("test_clock.max_advance")
        if (limit := hook(req, clock)) is not None
    ]
    latest = min(limits) if limits else old_time + MAX_ADVANCE_WITHOUT_SUBSCRIPTIONS
    if new_time > latest:
        raise invalid(
            f"Cannot advance the test clock past {latest}: advance at most two intervals of "
            "the shortest subscription on the clock (two years without subscriptions).",
            param="frozen_time",
        )
    clock["status"] = "advancing"
    emit(req, "test_helpers.test_clock.advancing", clock)
    # What the advance sets off is Stripe's own doing: events with no request.
    with automatic(req, clock):
        for hook in req.registry.hooks("test_clock.advance"):
            hook(req, clock, old_time, new_time)
        clock["frozen_time"] = new_time
        clock["status"] = "ready"
        req.store.put(TEST_CLOCK, clock)
        emit(req, "test_helpers.test_clock.ready", clock)
    return clock


def register(registry: Registry) -> None:
    base = "/v1/test_helpers/test_clocks"
    registry.route("POST", base, create, params="test_helpers.TestClockCreateParams")
    registry.route("GET", base, list_, params="test_helpers.TestClockListParams")
    registry.route("GET", base + "/{id}", retrieve, params="test_helpers.TestClockRetrieveParams")
    registry.route("DELETE", base + "/{id}", delete, params="test_helpers.TestClockDeleteParams")
    registry.route(
        "POST", base + "/{id}/advance", advance, params="test_helpers.TestClockAdvanceParams"
    )
