"""The declarative route table and the request a handler receives.

A :class:`Registry` holds everything the resource modules declare:

- routes: ``registry.route("POST", "/v1/prices/{id}", handler, params="PriceUpdateParams")``
  where ``params`` names the SDK TypedDict (under ``stripe.params``) whose keys
  the endpoint accepts;
- object types: ``registry.object_type(ObjectType(...))`` says which fields of
  an object can be expanded (and into which stored kind), which fields only
  appear when expanded, and an optional per-API-version transform;
- hooks: named callback lists other modules can extend (e.g. ``"test_clock.advance"``).

A handler is ``def handler(req: Request) -> JSON | Reply`` and runs with the
store lock held; it raises :class:`~reconciler.emulator.errors.ApiError` to
refuse. Whatever it returns is rendered (expansions, hidden fields) by the
server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator.clock import Clock
from reconciler.emulator.errors import ApiError
from reconciler.emulator.params import ObjectNode, schema_for
from reconciler.emulator.store import JSON, Store
from reconciler.emulator.versions import has_legacy_usage_billing

__all__ = [
    "Handler",
    "ObjectType",
    "Registry",
    "Reply",
    "Request",
    "Route",
    "SchemaAdjuster",
]


@dataclass(frozen=True)
class Reply:
    """A handler result with a status other than 200 (or a body not to render)."""

    body: JSON
    status: int = 200
    render: bool = True


@dataclass
class Request:
    """One API call as a handler sees it."""

    method: str
    path: str
    route: Route
    path_params: dict[str, str]
    params: JSON
    api_key: str
    api_version: str
    request_id: str
    store: Store
    clock: Clock
    registry: Registry
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Per-request scratch space for emulator modules (the event log keeps its
    #: pending events here until the handler has succeeded).
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def legacy_usage_billing(self) -> bool:
        """True when the request's API version still has legacy usage billing."""
        return has_legacy_usage_billing(self.api_version)

    @property
    def expand(self) -> list[str]:
        value = self.params.get("expand")
        return [str(v) for v in value] if isinstance(value, list) else []

    def now(self) -> int:
        return self.clock.now()


Handler = Callable[[Request], "JSON | Reply"]
#: Adjusts a route's parameter schema for an API version: ``(version, schema) -> schema``.
SchemaAdjuster = Callable[[str, ObjectNode], ObjectNode]


@dataclass(frozen=True)
class Route:
    """``METHOD /path/{param}`` -> handler, with its parameter schema."""

    method: str
    pattern: str
    handler: Handler
    params: str | None
    regex: re.Pattern[str]
    auth: str = "secret"
    adjust: SchemaAdjuster | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.pattern}"

    def schema(self, api_version: str) -> ObjectNode:
        """The accepted parameters for this route on this API version."""
        base = schema_for(self.params) if self.params else ObjectNode("NoParams")
        return self.adjust(api_version, base) if self.adjust else base


@dataclass(frozen=True)
class ObjectType:
    """How objects with ``"object": name`` render.

    ``expandable`` maps a field holding an id to the store kind it points at;
    ``hidden`` fields are only included when named in ``expand``;
    ``transform(copy, api_version)`` adjusts a rendered copy per API version;
    ``complete(req, copy)`` adds fields derived from other stored objects (a
    subscription item's ``plan`` from its price), after ``transform``;
    ``embedded`` maps a field holding an id to the store kind whose current
    object always replaces it (a subscription item's ``price``); ``nested``
    names fields holding objects or lists to render too (their own embedded
    fields and transforms apply), e.g. a subscription's ``items``.
    """

    name: str
    expandable: Mapping[str, str] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    transform: Callable[[JSON, str], None] | None = None
    complete: Callable[[Request, JSON], None] | None = None
    embedded: Mapping[str, str] = field(default_factory=dict)
    nested: frozenset[str] = frozenset()


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$")


class Registry:
    """Routes, object types and hooks declared by the resource modules."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.types: dict[str, ObjectType] = {}
        self._hooks: dict[str, list[Callable[..., Any]]] = {}

    def route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        params: str | None = None,
        auth: str = "secret",
        adjust: SchemaAdjuster | None = None,
    ) -> None:
        """Declare an endpoint; ``params`` names the SDK TypedDict, e.g. ``"PriceCreateParams"``."""
        method = method.upper()
        for existing in self.routes:
            if existing.method == method and existing.pattern == pattern:
                raise ValueError(f"route {method} {pattern} declared twice")
        if params is not None:
            schema_for(params)  # fail at start-up, not on the first request
        self.routes.append(Route(method, pattern, handler, params, _compile(pattern), auth, adjust))

    def object_type(self, spec: ObjectType) -> None:
        self.types[spec.name] = spec

    def add_hook(self, name: str, callback: Callable[..., Any]) -> None:
        """Register ``callback`` under ``name`` (called in registration order)."""
        self._hooks.setdefault(name, []).append(callback)

    def hooks(self, name: str) -> list[Callable[..., Any]]:
        return list(self._hooks.get(name, []))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request, or Stripe's unrecognised-URL 404."""
        for route in self.routes:
            if route.method != method:
                continue
            found = route.regex.match(path)
            if found:
                return route, dict(found.groupdict())
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            store_idempotent=False,
        )
