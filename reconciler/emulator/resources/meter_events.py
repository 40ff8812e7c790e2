"""Meter events: ``POST /v1/billing/meter_events`` and the v2 JSON endpoints.

- ``POST /v1/billing/meter_events`` (form): one event;
- ``POST /v2/billing/meter_events`` (JSON): one event, ISO-8601 timestamps;
- ``POST /v2/billing/meter_event_session``: a 15-minute token for the stream;
- ``POST /v2/billing/meter_event_stream`` (JSON ``{"events": [...]}``, up to
  100, authenticated with the session token instead of an API key).

Events are stored as internal records (kind ``_meter_event``) holding the
meter, customer and numeric value they resolved to, so summaries and (later)
invoices can aggregate them. An event needs an active meter with its
``event_name``, the meter's customer and value payload keys, a whole-number
value, a timestamp at most 35 days old and at most 5 minutes ahead (of the
customer's test clock when it has one), and an ``identifier`` not used in
the last 24 hours. Stripe checks some of these asynchronously; the emulator
refuses at once so tests see the problem.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.emulator.app import SESSION_KIND
from reconciler.emulator.errors import invalid
from reconciler.emulator.resources.meters import EVENT_KIND, METER
from reconciler.emulator.router import Registry, Reply, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["register"]

IDENTIFIER_KIND = "_meter_event_identifier"
MAX_PAST = 35 * 86400
MAX_FUTURE = 5 * 60
IDENTIFIER_WINDOW = 24 * 3600
SESSION_SECONDS = 15 * 60
MAX_STREAM_EVENTS = 100


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_iso(value: Any, param: str) -> int:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"Invalid timestamp: {value} (expected ISO 8601).", param=param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _customer_now(req: Request, customer_id: str) -> int:
    customer = req.store.find("customer", customer_id)
    if customer is not None and customer.get("test_clock"):
        clock = req.store.find("test_helpers.test_clock", str(customer["test_clock"]))
        if clock is not None:
            return int(clock["frozen_time"])
    return req.now()


def _param(prefix: str, name: str, key: str | None = None) -> str:
    base = f"{prefix}[{name}]" if prefix else name
    return f"{base}[{key}]" if key is not None else base


def prepare_event(req: Request, event: JSON, timestamp: int | None, prefix: str) -> JSON:
    """Check one event and build its internal record (not stored yet)."""
    event_name = str(event["event_name"])
    meter = next(
        (
            m
            for m in req.store.values(METER)
            if m["event_name"] == event_name and m["status"] == "active"
        ),
        None,
    )
    if meter is None:
        raise invalid(
            f"No active meter has the event_name '{event_name}'.",
            param=_param(prefix, "event_name"),
        )
    payload = {str(k): str(v) for k, v in (event.get("payload") or {}).items() if v is not None}
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer = payload.get(customer_key)
    if not customer:
        raise invalid(
            f"The payload must contain '{customer_key}' (the meter's customer mapping key).",
            param=_param(prefix, "payload", customer_key),
        )
    formula = meter["default_aggregation"]["formula"]
    raw_value = payload.get(value_key)
    if raw_value is None and formula != "count":
        raise invalid(
            f"The payload must contain '{value_key}' (the meter's value key).",
            param=_param(prefix, "payload", value_key),
        )
    value = 1
    if raw_value is not None:
        try:
            number = Decimal(raw_value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number != number.to_integral_value():
            raise invalid(
                f"The meter event value must be a whole number (got '{raw_value}').",
                param=_param(prefix, "payload", value_key),
            )
        value = int(number)
    now = _customer_now(req, customer)
    when = now if timestamp is None else timestamp
    if when < now - MAX_PAST:
        raise invalid(
            "The timestamp must be within the past 35 calendar days.",
            param=_param(prefix, "timestamp"),
        )
    if when > now + MAX_FUTURE:
        raise invalid(
            "The timestamp must not be more than 5 minutes in the future.",
            param=_param(prefix, "timestamp"),
        )
    identifier = event.get("identifier") or new_id("mev_ident")
    seen = req.store.find(IDENTIFIER_KIND, str(identifier))
    if seen is not None and int(seen["created"]) + IDENTIFIER_WINDOW > req.now():
        raise invalid(
            f"An event already exists with identifier {identifier}.",
            param=_param(prefix, "identifier"),
        )
    return {
        "id": new_id("mev"),
        "event_name": event_name,
        "identifier": str(identifier),
        "payload": payload,
        "timestamp": when,
        "created": req.now(),
        "meter": meter["id"],
        "customer": customer,
        "value": value,
    }


def store_event(req: Request, record: JSON) -> None:
    req.store.put(EVENT_KIND, record)
    req.store.put(
        IDENTIFIER_KIND,
        {"id": record["identifier"], "event": record["id"], "created": record["created"]},
    )


def create_v1(req: Request) -> JSON:
    params = req.params
    timestamp = params.get("timestamp")
    record = prepare_event(req, params, None if timestamp is None else int(timestamp), "")
    store_event(req, record)
    return {
        "object": "billing.meter_event",
        "created": record["created"],
        "event_name": record["event_name"],
        "identifier": record["identifier"],
        "livemode": False,
        "payload": record["payload"],
        "timestamp": record["timestamp"],
    }


def _v2_event(record: JSON) -> JSON:
    return {
        "object": "v2.billing.meter_event",
        "created": _iso(record["created"]),
        "event_name": record["event_name"],
        "identifier": record["identifier"],
        "livemode": False,
        "payload": record["payload"],
        "timestamp": _iso(record["timestamp"]),
    }


def create_v2(req: Request) -> JSON:
    params = req.params
    timestamp = params.get("timestamp")
    parsed = None if timestamp is None else _parse_iso(timestamp, "timestamp")
    record = prepare_event(req, params, parsed, "")
    store_event(req, record)
    return _v2_event(record)


def create_session(req: Request) -> JSON:
    now = req.clock.time()
    token = "mes_tok_" + secrets.token_urlsafe(24)
    session_id = new_id("mes")
    req.store.put(
        SESSION_KIND,
        {
            "id": token,
            "session": session_id,
            "api_key": req.api_key,
            "expires_at_unix": now + SESSION_SECONDS,
        },
    )
    return {
        "id": session_id,
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": _iso(now),
        "expires_at": _iso(now + SESSION_SECONDS),
        "livemode": False,
    }


def stream(req: Request) -> Reply:
    events = req.params["events"] or []
    if len(events) > MAX_STREAM_EVENTS:
        raise invalid(f"A stream request takes at most {MAX_STREAM_EVENTS} events.", param="events")
    records = []
    identifiers: set[str] = set()
    for index, event in enumerate(events):
        prefix = f"events[{index}]"
        timestamp = event.get("timestamp")
        parsed = None if timestamp is None else _parse_iso(timestamp, f"{prefix}[timestamp]")
        record = prepare_event(req, event, parsed, prefix)
        if record["identifier"] in identifiers:
            raise invalid(
                f"An event already exists with identifier {record['identifier']}.",
                param=f"{prefix}[identifier]",
            )
        identifiers.add(record["identifier"])
        records.append(record)
    for record in records:
        store_event(req, record)
    return Reply({}, status=202, render=False)


def register(registry: Registry) -> None:
    registry.route(
        "POST", "/v1/billing/meter_events", create_v1, params="billing.MeterEventCreateParams"
    )
    registry.route(
        "POST", "/v2/billing/meter_events", create_v2, params="v2.billing.MeterEventCreateParams"
    )
    registry.route(
        "POST",
        "/v2/billing/meter_event_session",
        create_session,
        params="v2.billing.MeterEventSessionCreateParams",
    )
    registry.route(
        "POST",
        "/v2/billing/meter_event_stream",
        stream,
        params="v2.billing.MeterEventStreamCreateParams",
        auth="meter_event_session",
    )
