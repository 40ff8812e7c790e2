"""The one I/O seam: every request to Stripe goes through a Gateway.

It is the only module that imports ``stripe``. It builds the client from
``STRIPE_API_KEY`` (never logged or shown) and ``STRIPE_API_BASE`` (an
emulator), pins the API version per request where asked, lists with cursor
paging, retries what Stripe says is retryable with jittered exponential
backoff, spaces requests with a token bucket, and counts every request.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import stripe

from reconciler.errors import LiveKeyRefused, ReconcileError, StripeCallError
from reconciler.pacing import AdaptivePace, TokenBucket
from reconciler.redaction import clean_secret, redact
from reconciler.versions import LEGACY_API_VERSION

__all__ = [
    "LEGACY_API_VERSION",
    "MODE_RATE_LIMITS",
    "Gateway",
    "GatewayStats",
    "TokenBucket",
    "guard_key_mode",
    "key_mode",
]

MAX_MESSAGE_CHARS = 200
"""Longest error text from a response that is repeated to the user."""

MODE_RATE_LIMITS = {"test": 25.0, "live": 100.0}
ENDPOINT_RATE_LIMIT = 25.0
"""Stripe's default limit per endpoint (method and path pattern), in both modes."""
"""Stripe's documented operations per second per mode."""

PAGE_SIZE = 100
STRIPE_API = "https://api.stripe.com"
CONNECT_RETRY_SECONDS = 2.0
"""How long a server that cannot be reached at all (refused, unknown host) is retried:
nothing was sent, so waiting longer only delays the message that names the address."""
_RETRYABLE_STATUS = frozenset({409, 429})
_PATH_WORDS = frozenset(
    {
        "test_helpers",
        "test_clocks",
        "subscription_schedules",
        "subscription_items",
        "meter_events",
        "meter_event_session",
        "meter_event_stream",
        "event_summaries",
        "usage_records",
        "usage_record_summaries",
    }
)


def guard_key_mode(
    key: Literal["test", "live"], config_mode: str, *, allow_live: bool, writing: bool
) -> None:
    """Refuse a key whose mode does not match billing.yaml's, and live writes without --live."""
    if key == "live" and config_mode != "live":
        raise LiveKeyRefused(
            "STRIPE_API_KEY is a live key but billing.yaml says mode: test; refusing"
        )
    if key == "test" and config_mode == "live":
        raise LiveKeyRefused(
            "billing.yaml says mode: live but STRIPE_API_KEY is a test key; refusing"
        )
    if key == "live" and writing and not allow_live:
        raise LiveKeyRefused(
            "STRIPE_API_KEY is a live key: apply changes live billing only with --live"
        )


def key_mode(api_key: str) -> Literal["test", "live"]:
    """``test`` or ``live`` from a secret or restricted key's prefix; anything else is refused."""
    if api_key.startswith(("sk_test_", "rk_test_")):
        return "test"
    if api_key.startswith(("sk_live_", "rk_live_")):
        return "live"
    raise ReconcileError("STRIPE_API_KEY is not a Stripe secret or restricted key (sk_/rk_)")


@dataclass
class GatewayStats:
    """Request counts, for progress reports and benchmarks."""

    requests: int = 0
    retries: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    replayed: int = 0

    @property
    def writes(self) -> int:
        return sum(n for route, n in self.by_route.items() if not route.startswith("GET "))


class Gateway:
    """A Stripe client with paging, retries, pacing and counting."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        stripe_version: str | None = None,
        max_retries: int = 5,
        rate_limit: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        api_key = clean_secret("STRIPE_API_KEY", api_key)
        self.mode = key_mode(api_key)
        self._api_key = api_key
        self.api_base = api_base or STRIPE_API
        self.api_base_variable: str | None = None
        """The environment variable ``api_base`` came from, named when it cannot be reached."""
        bases: dict[str, str] = {}
        if api_base:
            bases = {name: api_base for name in ("api", "files", "connect", "meter_events")}
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=bases,  # type: ignore[arg-type]
            stripe_version=stripe_version,
            max_network_retries=0,
            http_client=http_client,  # None: the SDK's own; benchmarks answer from memory
        )
        self.max_retries = max_retries
        self.bucket: TokenBucket | None = None
        self.pace: AdaptivePace | None = None
        self._endpoint_buckets: dict[str, TokenBucket] = {}
        self.set_rate_limit(rate_limit)
        self.stats = GatewayStats()
        self._stats_lock = threading.Lock()
        self._sleep = sleep
        self._rng = rng or random.Random()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Gateway:
        """Build from ``STRIPE_API_KEY`` and optional ``STRIPE_API_BASE``."""
        env = os.environ if environ is None else environ
        api_key = env.get("STRIPE_API_KEY", "").strip()
        if not api_key:
            raise ReconcileError(
                "STRIPE_API_KEY is not set (a restricted read-only key is enough for plan)"
            )
        gateway = cls(api_key, api_base=env.get("STRIPE_API_BASE") or None, **options)
        if env.get("STRIPE_API_BASE"):
            gateway.api_base_variable = "STRIPE_API_BASE"
        return gateway

    def set_rate_limit(self, rate: float | None) -> None:
        """Pace every request, read or write, to ``rate`` per second in all (None:
        unpaced), and each endpoint to at most the same share of Stripe's per-endpoint
        limit; the overall pace adapts to 429s (see :mod:`reconciler.pacing`)."""
        self.bucket = TokenBucket(rate) if rate else None
        self.pace = AdaptivePace(self.bucket) if self.bucket is not None else None
        self._endpoint_buckets = {}
        self._endpoint_rate = min(rate, ENDPOINT_RATE_LIMIT * 0.8) if rate else None

    def _acquire(self, route: str) -> None:
        if self.bucket is not None:
            self.bucket.acquire()
        if self._endpoint_rate is not None:
            with self._stats_lock:
                bucket = self._endpoint_buckets.get(route)
                if bucket is None:
                    bucket = self._endpoint_buckets[route] = TokenBucket(self._endpoint_rate)
            bucket.acquire()

    def redact(self, text: str) -> str:
        """Remove the API key, and anything shaped like a key or a bearer token, from ``text``."""
        return redact(text, self._api_key)

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        stripe_version: str | None = None,
    ) -> dict[str, Any]:
        return self.request("get", path, params, stripe_version=stripe_version)[0]

    def post(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        stripe_version: str | None = None,
    ) -> dict[str, Any]:
        """A write; without an idempotency key one is made, and reused by every retry."""
        return self.write(
            path, params, idempotency_key=idempotency_key, stripe_version=stripe_version
        )[0]

    def write(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        stripe_version: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """A write and whether Stripe answered it from an earlier request with the same key
        (``Idempotent-Replayed``): then nothing was written now."""
        return self.request(
            "post",
            path,
            params,
            idempotency_key=idempotency_key or f"sr-{uuid.uuid4()}",
            stripe_version=stripe_version,
        )

    def delete(
        self, path: str, *, stripe_version: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """A DELETE, and whether the object was already gone (then nothing was deleted now).

        Stripe ignores idempotency keys on DELETE ("these requests are idempotent by
        definition"), so none is sent. A retry after a lost answer, or a second apply
        that deleted the object first, meets a 404 ``resource_missing``: the object is
        gone, which is what the request was for.
        """
        try:
            return self.request("delete", path, stripe_version=stripe_version)
        except StripeCallError as exc:
            if exc.http_status == 404 and exc.code in (None, "resource_missing"):
                return {"id": path.rstrip("/").rsplit("/", 1)[-1], "deleted": True}, True
            raise

    def list_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        stripe_version: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, 100 per request, following ``starting_after``."""
        query = {**(params or {}), "limit": PAGE_SIZE}
        while True:
            page = self.get(path, query, stripe_version=stripe_version)
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            query["starting_after"] = data[-1]["id"]

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        stripe_version: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """One logical request, retried on 409, 429, 5xx and connection errors: the body,
        and whether Stripe answered it from an earlier request with the same key."""
        options: dict[str, Any] = {}
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        if stripe_version:
            options["stripe_version"] = stripe_version
        attempt = 0
        started = time.monotonic()
        while True:
            self._acquire(f"{method.upper()} {_route_of(path)}")
            try:
                response = self._client.raw_request(method, path, **dict(params or {}), **options)
            except stripe.StripeError as exc:
                status = exc.http_status
                self._count(method, path, status or 0, error=exc)
                if status == 429 and exc.code != "lock_timeout" and self.pace is not None:
                    self.pace.rate_limited()
                unreachable = _unreachable(exc)
                if unreachable and time.monotonic() - started >= CONNECT_RETRY_SECONDS:
                    raise self._unreachable_error(method, path, unreachable) from None
                if attempt < self.max_retries and _retryable(exc):
                    attempt += 1
                    with self._stats_lock:
                        self.stats.retries += 1
                    pause = self._backoff(attempt)
                    if unreachable:  # within the budget: the next try comes no later than it
                        pause = min(pause, CONNECT_RETRY_SECONDS - (time.monotonic() - started))
                    self._sleep(max(pause, 0.0))
                    continue
                if unreachable:
                    raise self._unreachable_error(method, path, unreachable) from None
                raise self._call_error(method, path, exc) from None
            except Exception as exc:  # the SDK's own failures can quote headers: never unredacted
                message = self.redact(f"{type(exc).__name__}: {exc}")
                raise ReconcileError(f"{method.upper()} {path}: {message}") from None
            self._count(method, path, response.code)
            if self.pace is not None:
                self.pace.succeeded()
            body: dict[str, Any] = _json_object(response.data, method, path)
            headers = {k.lower(): v for k, v in (response.headers or {}).items()}
            replayed = headers.get("idempotent-replayed") == "true"
            if replayed:
                with self._stats_lock:
                    self.stats.replayed += 1
            return body, replayed

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: up to 0.5 s, 1 s, 2 s ... capped at 8 s."""
        ceiling: float = min(8.0, 0.5 * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _count(
        self, method: str, path: str, status: int, error: stripe.StripeError | None = None
    ) -> None:
        route = f"{method.upper()} {_route_of(path)}"
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.by_status[status] += 1
            self.stats.by_route[route] += 1
            if status == 429:
                self.stats.rate_limited += 1

    def _unreachable_error(self, method: str, path: str, reason: str) -> StripeCallError:
        """The address that could not be reached, and where it was set."""
        if self.api_base_variable:
            hint = (
                f"{self.api_base_variable} sets this address: correct it, start the server "
                f"there, or unset {self.api_base_variable} to use Stripe ({STRIPE_API})"
            )
        else:
            hint = "check the network connection"
        message = f"cannot reach {self.api_base} ({reason}); {hint}"
        return StripeCallError(self.redact(message), method=method, path=path)

    def _call_error(self, method: str, path: str, exc: stripe.StripeError) -> StripeCallError:
        error = exc.error
        message = (error.message if error is not None and error.message else None) or str(
            exc.user_message or exc
        )
        message = self.redact(message)  # before cutting: a cut key is no longer recognised
        if len(message) > MAX_MESSAGE_CHARS:  # a proxy's error page, say: not echoed whole
            message = f"{message[:MAX_MESSAGE_CHARS]}… ({len(message):,} characters)"
        return StripeCallError(
            message,
            method=method,
            path=path,
            http_status=exc.http_status,
            code=exc.code,
            param=getattr(error, "param", None) if error is not None else None,
            error_type=getattr(error, "type", None) if error is not None else None,
        )


def _json_object(body: object, method: str, path: str) -> dict[str, Any]:
    """A response body (the SDK has decoded it once; decoding it again cost a third of
    reading 20,000 subscriptions) as a JSON object, or a StripeCallError saying it is not."""
    if not isinstance(body, dict):
        raise StripeCallError("the answer is not a JSON object", method=method, path=path)
    return body


_NO_CONNECTION = re.compile(r"(NewConnectionError|NameResolutionError|ConnectTimeoutError)")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^\"')\]]+)")


def _unreachable(exc: stripe.StripeError) -> str | None:
    """Why no connection could be made (``Connection refused``), or None: only failures
    before anything was sent count, so a reset mid-request keeps its usual retries."""
    if not isinstance(exc, stripe.APIConnectionError):
        return None
    text = str(exc)
    found = _NO_CONNECTION.search(text)
    if found is None:
        return None
    errno = _ERRNO_TEXT.search(text)
    if errno is not None:
        return errno.group(1).strip()
    return {
        "NameResolutionError": "host name not found",
        "ConnectTimeoutError": "connection timed out",
    }.get(found.group(1), "no connection")


def _retryable(exc: stripe.StripeError) -> bool:
    if isinstance(exc, stripe.APIConnectionError):
        return bool(getattr(exc, "should_retry", True))
    headers = exc.headers or {}
    should_retry = {k.lower(): v for k, v in headers.items()}.get("stripe-should-retry")
    if should_retry == "false":
        return False
    if should_retry == "true":
        return True
    status = exc.http_status or 0
    return status in _RETRYABLE_STATUS or status >= 500


def _route_of(path: str) -> str:
    """``/v1/prices/price_123`` -> ``/v1/prices/{id}``, so counts group by endpoint."""
    parts = path.split("?", maxsplit=1)[0].split("/")
    return "/".join("{id}" if "_" in p and p not in _PATH_WORDS else p for p in parts)
