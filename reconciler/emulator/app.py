"""Request processing, independent of the HTTP transport.

:class:`App` takes one request (method, path, headers, body) through the
pipeline every Stripe call goes through here, in this order: API version
check, route match, authentication, rate limit, fault plan, parameter
decoding and checking against the SDK schema, idempotency, the handler (with
the store lock held), rendering, persistence (before the response leaves),
and statistics. ``/_emulator/*`` side endpoints (stats, health, reset, faults,
clock, and those resource modules add with a ``"control /_emulator/<name>"``
hook, such as ``billing_settings`` in :mod:`.resources.collection`) skip all of it (no faults, not
counted) but need a test key too, and refuse what a web page could make a
browser send (an Origin header, form or text/plain bodies) with 403.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reconciler.emulator.clock import Clock
from reconciler.emulator.encoding import check_params, decode_form, decode_json, decode_path_id
from reconciler.emulator.errors import ApiError
from reconciler.emulator.faults import Fault, FaultPlan, fault_error
from reconciler.emulator.params import coerce_params
from reconciler.emulator.persistence import SqlitePersistence
from reconciler.emulator.ratelimit import TokenBucket
from reconciler.emulator.render import render
from reconciler.emulator.router import Registry, Reply, Request, Route
from reconciler.emulator.store import JSON, Store
from reconciler.emulator.versions import DEFAULT_API_VERSION, parse_version

__all__ = ["IDEMPOTENCY_KIND", "SESSION_KIND", "App", "Headers", "Outcome", "mask_key"]

logger = logging.getLogger(__name__)

IDEMPOTENCY_KIND = "_idempotency"
SESSION_KIND = "_meter_event_session"
IDEMPOTENCY_TTL = 24 * 3600
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
_BROWSER_FORM_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)


@dataclass
class Outcome:
    """What the transport should send; ``drop`` = close the connection without answering."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((name.lower(), value) for name, value in items)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


def mask_key(key: str) -> str:
    """Stripe's way of naming a key in an error: ``sk_live_****1234``."""
    parts = key.split("_")
    prefix = "_".join(parts[:2]) + "_" if len(parts) > 2 else ""
    if len(key) <= len(prefix) + 8:
        return prefix + "****"
    return f"{prefix}****{key[-4:]}"


def _rate_limited(message: str) -> ApiError:
    return ApiError(
        429,
        message,
        type_="rate_limit_error",
        code="rate_limit",
        headers={"Stripe-Should-Retry": "true"},
        store_idempotent=False,
    )


class _Stats:
    def __init__(self, log_size: int) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.replays = 0
        self.log: deque[JSON] = deque(maxlen=log_size)

    def record(self, entry: JSON, *, replayed: bool) -> None:
        with self.lock:
            self.total += 1
            self.by_route[str(entry["route"])] += 1
            self.by_status[str(entry["status"])] += 1
            if entry.get("fault"):
                self.faults[str(entry["fault"])] += 1
            if replayed:
                self.replays += 1
            self.log.append(entry)

    def snapshot(self) -> JSON:
        with self.lock:
            return {
                "requests_total": self.total,
                "by_route": dict(sorted(self.by_route.items())),
                "by_status": dict(sorted(self.by_status.items())),
                "faults": dict(sorted(self.faults.items())),
                "idempotent_replays": self.replays,
                "log": list(self.log),
            }

    def clear(self) -> None:
        with self.lock:
            self.total = 0
            self.replays = 0
            self.by_route.clear()
            self.by_status.clear()
            self.faults.clear()
            self.log.clear()


class App:
    """The emulator minus the socket: state, configuration and the request pipeline."""

    def __init__(
        self,
        registry: Registry,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        rate_limit: float | None = None,
        faults: FaultPlan | None = None,
        persistence: SqlitePersistence | None = None,
        log_size: int = 500,
    ) -> None:
        self.registry = registry
        self.store = store or Store()
        self.clock = clock or Clock()
        self.bucket = TokenBucket(rate_limit) if rate_limit else None
        self.faults = faults
        # What reset() goes back to: the configuration the emulator started with.
        self._startup_rate_limit = rate_limit
        self._startup_faults = faults
        self.persistence = persistence
        self._stats = _Stats(log_size)
        if persistence is not None:
            persistence.load_into(self.store)

    # --- control ----------------------------------------------------------------------
    def stats(self) -> JSON:
        snapshot = self._stats.snapshot()
        with self.store.lock:
            snapshot["objects"] = {
                kind: self.store.count(kind)
                for kind in self.store.kinds()
                if not kind.startswith("_")
            }
        return snapshot

    def reset(self) -> None:
        """Forget every object, record and counter (and the database rows), and go back to
        the fault plan and rate limit the emulator started with: faults or a limit set
        since (``set_faults``, ``set_rate_limit``, ``/_emulator/faults``) end here, and the
        start-up fault plan draws its sequence again from its seed."""
        with self.store.lock:
            self.store.clear()
            if self.persistence is not None:
                self.persistence.clear()
        self._stats.clear()
        self.set_rate_limit(self._startup_rate_limit)
        startup = self._startup_faults
        self.set_faults(dataclasses.replace(startup) if startup is not None else None)

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.faults = plan

    def set_rate_limit(self, rate: float | None) -> None:
        self.bucket = TokenBucket(rate) if rate else None

    # --- pipeline ---------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        method = method.upper()
        url = urlsplit(raw_path)
        if url.path.startswith("/_emulator/"):
            return self._side(method, url.path, headers, body)
        started = time.monotonic()
        request_id = "req_" + secrets.token_hex(7)
        version = headers.get("Stripe-Version") or DEFAULT_API_VERSION
        route_key = f"{method} (unmatched)"
        fault = Fault()
        replayed = False
        extra_headers: dict[str, str] = {}
        try:
            try:
                route, path_params = self.registry.match(method, url.path)
                route_key = route.key
                not_found: ApiError | None = None
            except ApiError as exc:
                route, path_params, not_found = None, {}, exc
            api_key = self._authenticate(headers, route.auth if route else "secret")
            if not_found is not None:
                raise not_found
            assert route is not None
            path_params = {name: decode_path_id(v, name) for name, v in path_params.items()}
            parse_version(version)
            if self.bucket is not None and not self.bucket.take():
                raise _rate_limited(
                    "Request rate limit exceeded. You can learn more about rate limits "
                    "here https://stripe.com/docs/rate-limits."
                )
            fault = self.faults.decide() if self.faults is not None else Fault()
            if fault.delay:
                time.sleep(fault.delay)
            if fault.kind == "reset":
                self._record(
                    request_id=request_id,
                    method=method,
                    path=url.path,
                    route_key=route_key,
                    status=0,
                    fault=fault,
                    replayed=False,
                    started=started,
                )
                return Outcome(0, drop=True)
            refusal = fault_error(fault.kind, headers.get("Idempotency-Key"))
            if refusal is not None:
                raise refusal
            raw = self._decode(method, url.path, url.query, body)
            check_params(raw)
            status, payload, replayed = self._execute(
                route=route,
                path_params=path_params,
                raw=raw,
                api_key=api_key,
                version=version,
                request_id=request_id,
                headers=headers,
                method=method,
                path=url.path,
            )
            if replayed:
                extra_headers["Idempotent-Replayed"] = "true"
        except ApiError as exc:
            status, payload = exc.status, exc.body()
            extra_headers.update(exc.headers)
        self._record(
            request_id=request_id,
            method=method,
            path=url.path,
            route_key=route_key,
            status=status,
            fault=fault,
            replayed=replayed,
            started=started,
        )
        if fault.kind == "lost":
            return Outcome(0, drop=True)
        response_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": version,
            **extra_headers,
        }
        if headers.get("Idempotency-Key"):
            response_headers["Idempotency-Key"] = headers["Idempotency-Key"]
        return Outcome(status, json.dumps(payload, indent=2).encode(), response_headers)

    def _record(
        self,
        *,
        request_id: str,
        method: str,
        path: str,
        route_key: str,
        status: int,
        fault: Fault,
        replayed: bool,
        started: float,
    ) -> None:
        entry: JSON = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route_key,
            "status": status,
            "fault": fault.kind,
            "delay": fault.delay,
            "replayed": replayed,
            "ms": round((time.monotonic() - started) * 1000, 2),
        }
        self._stats.record(entry, replayed=replayed)

    def _authenticate(self, headers: Mapping[str, str], auth: str) -> str:
        header = (headers.get("Authorization") or "").strip()
        key = ""
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        elif header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            key = decoded.partition(":")[0]
        if not key:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.",
                store_idempotent=False,
            )
        if auth == "meter_event_session":
            return self._session_key(key)
        if not key.startswith(TEST_KEY_PREFIXES):
            raise ApiError(
                401, f"Invalid API Key provided: {mask_key(key)}", store_idempotent=False
            )
        return key

    def _session_key(self, token: str) -> str:
        with self.store.lock:
            session = self.store.find(SESSION_KIND, token)
        if session is None:
            raise ApiError(
                401,
                f"Invalid meter event session token provided: {mask_key(token)}",
                store_idempotent=False,
            )
        if float(session["expires_at_unix"]) <= self.clock.time():
            raise ApiError(
                401,
                "The meter event session has expired; create a new one.",
                type_="temporary_session_expired",
                code="billing_meter_event_session_expired",
                store_idempotent=False,
            )
        return str(session["api_key"])

    def _decode(self, method: str, path: str, query: str, body: bytes) -> JSON:
        if method in ("GET", "DELETE"):
            return decode_form(query)
        if path.startswith("/v2/"):
            return decode_json(body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "The request body is not UTF-8.", store_idempotent=False) from None
        return decode_form(text)

    def _execute(
        self,
        *,
        route: Route,
        path_params: dict[str, str],
        raw: JSON,
        api_key: str,
        version: str,
        request_id: str,
        headers: Mapping[str, str],
        method: str,
        path: str,
    ) -> tuple[int, JSON, bool]:
        idempotency_key = headers.get("Idempotency-Key")
        use_idempotency = bool(idempotency_key) and (
            method == "POST" or (method == "DELETE" and path.startswith("/v2/"))
        )
        scope = ""
        fingerprint = ""
        with self.store.lock:
            try:
                if use_idempotency:
                    scope = hashlib.sha256(f"{api_key}\0{idempotency_key}".encode()).hexdigest()
                    fingerprint = hashlib.sha256(
                        json.dumps([method, path, raw], sort_keys=True).encode()
                    ).hexdigest()
                    replay = self._replay(scope, fingerprint, str(idempotency_key))
                    if replay is not None:
                        return int(replay["status"]), dict(replay["body"]), True
                params = coerce_params(route.schema(version), raw)
                request = Request(
                    method=method,
                    path=path,
                    route=route,
                    path_params=path_params,
                    params=params,
                    api_key=api_key,
                    api_version=version,
                    request_id=request_id,
                    store=self.store,
                    clock=self.clock,
                    registry=self.registry,
                    headers=headers,
                )
                try:
                    result = route.handler(request)
                    if isinstance(result, Reply):
                        status = result.status
                        payload = render(request, result.body) if result.render else result.body
                    else:
                        status, payload = 200, render(request, result)
                    for hook in self.registry.hooks("request.succeeded"):
                        hook(request)
                except ApiError as exc:
                    if not exc.store_idempotent:
                        raise
                    status, payload = exc.status, exc.body()
                if use_idempotency:
                    self.store.put(
                        IDEMPOTENCY_KIND,
                        {
                            "id": scope,
                            "fingerprint": fingerprint,
                            "status": status,
                            "body": payload,
                            "created": self.clock.now(),
                        },
                    )
                return status, payload, False
            finally:
                if self.persistence is not None:
                    self.persistence.flush(self.store)
                else:
                    self.store.take_changes()

    def _replay(self, scope: str, fingerprint: str, key: str) -> JSON | None:
        record = self.store.find(IDEMPOTENCY_KIND, scope)
        if record is None:
            return None
        if int(record["created"]) + IDEMPOTENCY_TTL < self.clock.now():
            self.store.delete(IDEMPOTENCY_KIND, scope)
            return None
        if record["fingerprint"] != fingerprint:
            raise ApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                type_="idempotency_error",
                store_idempotent=False,
            )
        return record

    # --- side endpoints -----------------------------------------------------------------
    def _side(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        try:
            self._guard_control(headers)
            payload = self._side_payload(method, path, body)
            status = 200
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except (ValueError, TypeError) as exc:
            status, payload = 400, {"error": {"type": "invalid_request_error", "message": str(exc)}}
        return Outcome(
            status,
            json.dumps(payload, indent=2).encode(),
            {"Content-Type": "application/json"},
        )

    def _guard_control(self, headers: Mapping[str, str]) -> None:
        """Control endpoints need a test key and refuse anything a web page could send.

        A page can make a browser post a form (urlencoded, multipart, text/plain)
        to a loopback port without a preflight, and every browser request from a
        page carries Origin: each is refused with 403 before the key is read.
        """
        if headers.get("Origin") is not None:
            raise ApiError(403, "Emulator control endpoints refuse browser requests (Origin).")
        media = str(headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if media in _BROWSER_FORM_TYPES:
            raise ApiError(
                403,
                f"Emulator control endpoints refuse {media} bodies, which browsers send; "
                "send application/json.",
            )
        self._authenticate(headers, "secret")

    def _side_payload(self, method: str, path: str, body: bytes) -> JSON:
        endpoint = path.rstrip("/")
        if endpoint == "/_emulator/stats" and method == "GET":
            return self.stats()
        if endpoint == "/_emulator/health" and method == "GET":
            return {"ok": True}
        if endpoint == "/_emulator/reset" and method == "POST":
            self.reset()
            return {"reset": True}
        if endpoint == "/_emulator/faults":
            if method == "POST":
                data = decode_json(body)
                plan = FaultPlan.from_json(data) if data else None
                self.set_faults(plan)
            current = self.faults
            return {"faults": current.describe() if current is not None else None}
        controls = self.registry.hooks(f"control {endpoint}")
        if controls:
            # A resource module's own control endpoint: fn(store, method, json_body) -> JSON.
            with self.store.lock:
                data = decode_json(body) if method == "POST" else {}
                answer: JSON = controls[0](self.store, method, data)
                if self.persistence is not None:
                    self.persistence.flush(self.store)
                else:
                    self.store.take_changes()
            return answer
        if endpoint == "/_emulator/clock":
            if method == "POST":
                self._set_clock(decode_json(body))
            return {"now": self.clock.now()}
        raise ApiError(404, f"Unrecognized emulator endpoint ({method}: {path}).")

    def _set_clock(self, data: dict[str, Any]) -> None:
        if "frozen_time" in data:
            if data["frozen_time"] is None:
                self.clock.unfreeze()
            else:
                self.clock.freeze(int(data["frozen_time"]))
        if "advance" in data:
            self.clock.advance(float(data["advance"]))
