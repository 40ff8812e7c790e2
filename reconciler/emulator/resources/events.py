"""Events: ``GET /v1/events`` and ``GET /v1/events/{id}`` over the event log.

The log itself (what is recorded, when, with which ``request``) lives in
:mod:`reconciler.emulator.events`; this module serves it:

- list, newest first: ``type`` (an event name, or a group with ``*`` as a
  wildcard, e.g. ``invoice.*``), ``types[]`` (up to 20 exact names; not with
  ``type``), ``created`` (an exact time or ``gt``/``gte``/``lt``/``lte``),
  ``limit`` (1-100, default 10), ``starting_after`` / ``ending_before`` (any
  event id still kept, whatever the filters), ``delivery_success``
  (accepted, ignored: the emulator delivers no webhooks);
- retrieve: ``No such event`` (404) for an unknown id or an event older than
  30 days.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from reconciler.emulator.errors import invalid, no_such
from reconciler.emulator.events import COMMIT_HOOK, commit, find_event, visible_events
from reconciler.emulator.render import matches_created, page_cursors, page_limit
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["register"]

MAX_TYPES = 20
URL = "/v1/events"


def _type_filter(params: JSON) -> Callable[[str], bool]:
    one = params.get("type")
    many = params.get("types")
    if one is not None and many is not None:
        raise invalid("You may only specify one of these parameters: type, types.", param="types")
    if many is not None:
        if len(many) > MAX_TYPES:
            raise invalid(
                f"You may pass at most {MAX_TYPES} event types in `types`.", param="types"
            )
        names = {str(name) for name in many}
        return lambda type_: type_ in names
    if one is None:
        return lambda type_: True
    pattern = re.compile(".*".join(re.escape(part) for part in str(one).split("*")))
    return lambda type_: pattern.fullmatch(type_) is not None


def _take(events: Iterator[JSON], wanted: Callable[[JSON], bool], count: int) -> list[JSON]:
    page: list[JSON] = []
    for event in events:
        if wanted(event):
            page.append(event)
            if len(page) == count:
                break
    return page


def list_(req: Request) -> JSON:
    params = req.params
    limit = page_limit(req)
    after, before = page_cursors(req)
    type_ok = _type_filter(params)
    created = params.get("created")
    now = req.now()

    def wanted(event: JSON) -> bool:
        return type_ok(str(event["type"])) and matches_created(event, created)

    cursor = after or before
    if cursor is not None and find_event(req.store, cursor, now) is None:
        raise no_such(
            "event", cursor, param="starting_after" if after else "ending_before", status=400
        )
    events = visible_events(req.store, now)
    if before is not None:
        newer: list[JSON] = []
        for event in events:
            if event["id"] == before:
                break
            if wanted(event):
                newer.append(event)
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        if after is not None:
            for event in events:
                if event["id"] == after:
                    break
        found = _take(events, wanted, limit + 1)
        page, has_more = found[:limit], len(found) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": URL}


def retrieve(req: Request) -> JSON:
    event_id = req.path_params["id"]
    event = find_event(req.store, event_id, req.now())
    if event is None:
        raise no_such("event", event_id)
    return event


def register(registry: Registry) -> None:
    registry.route("GET", URL, list_, params="EventListParams")
    registry.route("GET", URL + "/{id}", retrieve, params="EventRetrieveParams")
    registry.add_hook(COMMIT_HOOK, commit)
