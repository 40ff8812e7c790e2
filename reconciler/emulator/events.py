"""The event log behind ``/v1/events``: what changed, when, and which request did it.

Handlers call :func:`emit` after they create or change an object (once the
object is stored); the event's ``data.object`` is the object rendered at that
moment. Events wait on the request (``req.context``) and go into the store
only when the handler has succeeded (:func:`commit`, the ``request.succeeded``
hook): a refused request leaves no event, and an idempotent replay never runs
the handler, so it emits nothing, as Stripe replays the stored response
without executing again.

Each event carries ``request: {id, idempotency_key}`` of the API call that
caused it; changes a test clock advance makes run inside :func:`automatic`
and get ``request: {id: null, idempotency_key: null}``, the test clock's
time as ``created`` and the account's default API version, like Stripe's
automatic subscription handling. ``*.updated`` events carry
``data.previous_attributes``: the fields that differ from the object's
previous event (left out when there is none to compare with). Within one
request, a ``*.created`` or ``*.updated`` event followed by another update of
the same object at the same time becomes one event showing the final state.

Stored records (kind :data:`EVENT_LOG`, persisted like every other kind) wrap
the event with the emulator clock time they were logged at: events older
than :data:`RETENTION` seconds are no longer listed or retrievable (Stripe
keeps events for 30 days), and the log keeps the newest :data:`MAX_EVENTS`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.emulator.render import render
from reconciler.emulator.router import Request
from reconciler.emulator.store import JSON, Store, new_id
from reconciler.emulator.versions import DEFAULT_API_VERSION

__all__ = [
    "COMMIT_HOOK",
    "EVENT_LOG",
    "MAX_EVENTS",
    "RETENTION",
    "automatic",
    "commit",
    "emit",
    "find_event",
    "previous_attributes",
    "visible_events",
]

#: Store kind of the event records ``{id, object_id, logged_at, event}``.
EVENT_LOG = "_event_log"
#: The log keeps this many events (the newest); older ones are dropped.
MAX_EVENTS = 100_000
#: Stripe lists and retrieves events for 30 days.
RETENTION = 30 * 86400
#: The registry hook the app runs after a handler succeeded.
COMMIT_HOOK = "request.succeeded"

_PENDING = "events.pending"
_AUTOMATIC = "events.automatic"
_NOW = "events.now"


@dataclasses.dataclass
class _Pending:
    type: str
    object_id: str
    created: int
    automatic: bool
    api_version: str
    snapshot: JSON
    previous: JSON | None


class _Index:
    """The newest event id per object id, to diff an update against (rebuilt on demand)."""

    def __init__(self) -> None:
        self.built = False
        self.last: dict[str, str] = {}


_indexes: weakref.WeakKeyDictionary[Store, _Index] = weakref.WeakKeyDictionary()


def _index(store: Store) -> _Index:
    index = _indexes.get(store)
    if index is None:
        index = _indexes[store] = _Index()
    if not index.built:
        for record in store.iterate(EVENT_LOG):
            index.last[str(record["object_id"])] = str(record["id"])
        index.built = True
    return index


def _last_snapshot(req: Request, object_id: str) -> JSON | None:
    """The object as its newest event (pending or logged) shows it."""
    for entry in reversed(req.context.get(_PENDING, [])):
        if entry.object_id == object_id:
            snapshot: JSON = entry.snapshot
            return snapshot
    event_id = _index(req.store).last.get(object_id)
    record = req.store.find(EVENT_LOG, event_id) if event_id else None
    if record is None:
        return None
    logged: JSON = record["event"]["data"]["object"]
    return logged


@contextmanager
def automatic(req: Request, clock: JSON) -> Iterator[None]:
    """Events emitted inside are Stripe's own doing at the test clock's ``frozen_time``."""
    previous = req.context.get(_AUTOMATIC)
    req.context[_AUTOMATIC] = clock
    try:
        yield
    finally:
        req.context[_AUTOMATIC] = previous


def emit(req: Request, type_: str, obj: JSON) -> None:
    """Record that ``obj`` was created or changed (``type_`` e.g. ``"price.updated"``)."""
    clock = req.context.get(_AUTOMATIC)
    is_automatic = clock is not None
    # One time for every request-driven event of the request, so they coalesce.
    created = (
        int(clock["frozen_time"])
        if clock is not None
        else int(req.context.setdefault(_NOW, req.now()))
    )
    version = DEFAULT_API_VERSION if is_automatic else req.api_version
    view = req if version == req.api_version else dataclasses.replace(req, api_version=version)
    snapshot = render(view, obj, [])
    object_id = str(obj["id"])
    pending: list[_Pending] = req.context.setdefault(_PENDING, [])
    if type_.endswith(".updated"):
        for entry in reversed(pending):
            if entry.object_id != object_id:
                continue
            if entry.type.endswith((".created", ".updated")) and (
                entry.created,
                entry.automatic,
                entry.api_version,
            ) == (created, is_automatic, version):
                entry.snapshot = snapshot
                return
            break
    previous = _last_snapshot(req, object_id) if type_.endswith(".updated") else None
    pending.append(_Pending(type_, object_id, created, is_automatic, version, snapshot, previous))


def previous_attributes(before: JSON, after: JSON, *, top: bool = True) -> JSON:
    """Stripe's ``previous_attributes``: the old value of every field that changed.

    Hashes (metadata, settings) show only their changed keys (a key that was
    added shows ``null``); lists and list objects show their whole old value.
    At the top level, fields only one side has are skipped (two snapshots may
    have been rendered on different API versions).
    """
    changed: JSON = {}
    for key, new in after.items():
        if key not in before:
            if not top:
                changed[key] = None
            continue
        old = before[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            changed[key] = previous_attributes(old, new, top=False)
        else:
            changed[key] = old
    if not top:
        for key, old in before.items():
            if key not in after:
                changed[key] = old
    return changed


def commit(req: Request) -> None:
    """Log the request's pending events (the ``request.succeeded`` hook)."""
    pending: list[_Pending] = req.context.pop(_PENDING, [])
    if not pending:
        return
    index = _index(req.store)
    now = req.now()
    key = req.headers.get("Idempotency-Key") or None
    for entry in pending:
        data: JSON = {"object": entry.snapshot}
        if entry.previous is not None:
            data["previous_attributes"] = previous_attributes(entry.previous, entry.snapshot)
        event: JSON = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": entry.api_version,
            "created": entry.created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": (
                {"id": None, "idempotency_key": None}
                if entry.automatic
                else {"id": req.request_id, "idempotency_key": key}
            ),
            "type": entry.type,
        }
        record: JSON = {
            "id": event["id"],
            "object_id": entry.object_id,
            "logged_at": now,
            "event": event,
        }
        req.store.put(EVENT_LOG, record)
        index.last[entry.object_id] = event["id"]
    _trim(req.store, now)


def _trim(store: Store, now: int) -> None:
    """Drop the oldest records past :data:`MAX_EVENTS` or :data:`RETENTION`."""
    excess = store.count(EVENT_LOG) - MAX_EVENTS
    cutoff = now - RETENTION
    doomed: list[str] = []
    for record in store.iterate(EVENT_LOG):
        if len(doomed) < excess or int(record["logged_at"]) < cutoff:
            doomed.append(str(record["id"]))
            continue
        break
    for record_id in doomed:
        store.delete(EVENT_LOG, record_id)


def visible_events(store: Store, now: int) -> Iterator[JSON]:
    """The events still within :data:`RETENTION`, newest first (live dicts: copy them)."""
    cutoff = now - RETENTION
    for record in store.iterate(EVENT_LOG, newest_first=True):
        if int(record["logged_at"]) >= cutoff:
            event: JSON = record["event"]
            yield event


def find_event(store: Store, event_id: str, now: int) -> JSON | None:
    """The event with ``event_id`` if it is still within :data:`RETENTION` (live dict)."""
    record = store.find(EVENT_LOG, event_id)
    if record is None or int(record["logged_at"]) < now - RETENTION:
        return None
    event: JSON = record["event"]
    return event
