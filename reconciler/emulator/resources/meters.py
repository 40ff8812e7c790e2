"""Billing meters: ``/v1/billing/meters`` and their event summaries.

``event_name`` is unique among meters; only ``display_name`` is updatable
(the SDK's ``MeterUpdateParams``); there is no delete, only
``deactivate`` / ``reactivate``. The formula (``sum``, ``count``, ``last``),
the payload keys and ``event_time_window`` (``day`` or ``hour``, or none: the
SDK's choices, anything else is refused) are set at creation only.

Event summaries aggregate the stored meter events (see
:mod:`reconciler.emulator.resources.meter_events`) with the meter's formula
over ``[start_time, end_time)``, optionally per hour or day. A meter with an
``event_time_window`` takes pre-aggregated events: "Stripe only uses the most
recent meter event within the hourly or daily window for aggregation. A newer
event sent within the same hourly or daily window overwrites the previous one"
(docs.stripe.com/billing/subscriptions/usage-based/recording-usage), per
customer. Windows are UTC hours and days (the boundaries
``value_grouping_window`` uses); invoices count the same events.
"""

from __future__ import annotations

from decimal import Decimal

from reconciler.emulator.errors import already_exists, invalid
from reconciler.emulator.events import emit
from reconciler.emulator.render import paginate
from reconciler.emulator.resources._common import require_text
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["EVENT_KIND", "METER", "aggregate", "events_for", "register"]

METER = "billing.meter"
#: Stored meter events (internal records; see meter_events.py for their shape).
EVENT_KIND = "_meter_event"
MAX_DISPLAY_NAME = 250
MAX_EVENT_NAME = 100
WINDOW_SECONDS = {None: 60, "hour": 3600, "day": 86400}


def create(req: Request) -> JSON:
    params = req.params
    event_name = require_text(params, "event_name", max_length=MAX_EVENT_NAME)
    display_name = require_text(params, "display_name", max_length=MAX_DISPLAY_NAME)
    for existing in req.store.values(METER):
        if existing["event_name"] == event_name:
            raise already_exists(
                f"A meter with event_name '{event_name}' already exists ({existing['id']}); "
                "event names are unique among meters.",
                param="event_name",
            )
    customer_mapping = params.get("customer_mapping") or {}
    value_settings = params.get("value_settings") or {}
    now = req.now()
    meter: JSON = {
        "id": new_id("mtr_test"),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": customer_mapping.get("event_payload_key") or "stripe_customer_id",
            "type": customer_mapping.get("type") or "by_id",
        },
        "default_aggregation": {"formula": params["default_aggregation"]["formula"]},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": params.get("event_time_window"),
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": value_settings.get("event_payload_key") or "value"},
    }
    req.store.put(METER, meter)
    emit(req, "billing.meter.created", meter)
    return meter


def retrieve(req: Request) -> JSON:
    return req.store.get(METER, req.path_params["id"], label="billing meter")


def update(req: Request) -> JSON:
    meter = req.store.get(METER, req.path_params["id"], label="billing meter")
    if "display_name" in req.params:
        meter["display_name"] = require_text(
            req.params, "display_name", max_length=MAX_DISPLAY_NAME
        )
        meter["updated"] = req.now()
        emit(req, "billing.meter.updated", meter)
    return req.store.put(METER, meter)


def deactivate(req: Request) -> JSON:
    meter = req.store.get(METER, req.path_params["id"], label="billing meter")
    if meter["status"] == "inactive":
        raise invalid(f"The meter {meter['id']} is already inactive.")
    now = req.now()
    meter["status"] = "inactive"
    meter["status_transitions"] = {"deactivated_at": now}
    meter["updated"] = now
    req.store.put(METER, meter)
    emit(req, "billing.meter.deactivated", meter)
    return meter


def reactivate(req: Request) -> JSON:
    meter = req.store.get(METER, req.path_params["id"], label="billing meter")
    if meter["status"] == "active":
        raise invalid(f"The meter {meter['id']} is already active.")
    for other in req.store.values(METER):
        if (
            other["id"] != meter["id"]
            and other["status"] == "active"
            and (other["event_name"] == meter["event_name"])
        ):
            raise invalid(
                f"Another active meter ({other['id']}) uses event_name '{meter['event_name']}'."
            )
    meter["status"] = "active"
    meter["status_transitions"] = {"deactivated_at": None}
    meter["updated"] = req.now()
    req.store.put(METER, meter)
    emit(req, "billing.meter.reactivated", meter)
    return meter


def list_(req: Request) -> JSON:
    status = req.params.get("status")
    items = [m for m in req.store.newest_first(METER) if status is None or m["status"] == status]
    return paginate(req, items, "/v1/billing/meters", label="billing meter")


def events_for(req: Request, meter: JSON, customer: str, start: int, end: int) -> list[JSON]:
    """The events of ``meter`` for ``customer`` that count, with ``start <= timestamp <
    end``, in the order they were received: all of them, or for a meter with an
    ``event_time_window`` the last one received in each window."""
    received = [
        event
        for event in req.store.values(EVENT_KIND)
        if event["meter"] == meter["id"] and event["customer"] == customer
    ]
    window = meter.get("event_time_window")
    if window is not None:
        size = WINDOW_SECONDS[window]
        latest = {int(event["timestamp"]) // size: event for event in received}
        kept = {id(event) for event in latest.values()}
        received = [event for event in received if id(event) in kept]
    return [event for event in received if start <= int(event["timestamp"]) < end]


def aggregate(formula: str, events: list[JSON]) -> int | float:
    """``sum`` / ``count`` / ``last`` (latest timestamp, then latest received) of the events."""
    if formula == "count":
        return len(events)
    if not events:
        return 0
    if formula == "last":
        last = max(enumerate(events), key=lambda pair: (int(pair[1]["timestamp"]), pair[0]))[1]
        total = Decimal(str(last["value"]))
    else:
        total = sum((Decimal(str(event["value"])) for event in events), Decimal(0))
    return int(total) if total == total.to_integral_value() else float(total)


def event_summaries(req: Request) -> JSON:
    meter = req.store.get(METER, req.path_params["id"], label="billing meter")
    params = req.params
    start, end = int(params["start_time"]), int(params["end_time"])
    window = params.get("value_grouping_window")
    step = WINDOW_SECONDS[window]
    boundary = {60: "minute", 3600: "hour", 86400: "day"}[step]
    for name, value in (("start_time", start), ("end_time", end)):
        if value % step:
            raise invalid(
                f"{name} must be aligned with {boundary} boundaries"
                + (f" when value_grouping_window is {window}." if window else "."),
                param=name,
            )
    if end <= start:
        raise invalid("end_time must be after start_time.", param="end_time")
    windows = (
        [(start, end)]
        if window is None
        else [(begin, min(begin + step, end)) for begin in range(start, end, step)]
    )
    customer = str(params["customer"])
    formula = meter["default_aggregation"]["formula"]
    summaries = [
        {
            "id": f"mtrusg_{meter['id']}_{customer}_{begin}_{finish}",
            "object": "billing.meter_event_summary",
            "aggregated_value": aggregate(formula, events_for(req, meter, customer, begin, finish)),
            "end_time": finish,
            "livemode": False,
            "meter": meter["id"],
            "start_time": begin,
        }
        for begin, finish in reversed(windows)
    ]
    return paginate(
        req,
        summaries,
        f"/v1/billing/meters/{meter['id']}/event_summaries",
        label="billing meter event summary",
    )


def register(registry: Registry) -> None:
    registry.route("POST", "/v1/billing/meters", create, params="billing.MeterCreateParams")
    registry.route("GET", "/v1/billing/meters", list_, params="billing.MeterListParams")
    registry.route("GET", "/v1/billing/meters/{id}", retrieve, params="billing.MeterRetrieveParams")
    registry.route("POST", "/v1/billing/meters/{id}", update, params="billing.MeterUpdateParams")
    registry.route(
        "POST",
        "/v1/billing/meters/{id}/deactivate",
        deactivate,
        params="billing.MeterDeactivateParams",
    )
    registry.route(
        "POST",
        "/v1/billing/meters/{id}/reactivate",
        reactivate,
        params="billing.MeterReactivateParams",
    )
    registry.route(
        "GET",
        "/v1/billing/meters/{id}/event_summaries",
        event_summaries,
        params="billing.MeterEventSummaryListParams",
    )
