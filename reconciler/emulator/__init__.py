"""A stateful local Stripe API for tests, benchmarks, the demo and offline use.

The real ``stripe`` SDK talks to it over HTTP::

    from reconciler.emulator import Emulator

    with Emulator(port=0) as emu:
        client = stripe.StripeClient(
            "sk_test_x",
            base_addresses={"api": emu.url, "files": emu.url, "connect": emu.url,
                            "meter_events": emu.url},
            max_network_retries=0,
        )
        client.v1.prices.create(params={...})

It is honest: parameters are checked against the SDK's own TypedDicts
(``parameter_unknown`` / ``parameter_missing``), refusals use Stripe's error
shapes and statuses, and API-version gates (legacy usage billing up to
``2025-02-24.acacia``) follow the ``Stripe-Version`` header. Objects are
global to the emulator: every ``sk_test_``/``rk_test_`` key sees one account.

Modules
-------
- :mod:`.server` ``Emulator`` (background thread) and ``serve`` (foreground, CLI);
- :mod:`.app` the request pipeline: auth, rate limit, faults, params, idempotency,
  handler, render, persistence, stats; ``/_emulator/{stats,reset,faults,clock}``;
- :mod:`.router` route table (``Registry``), ``Request``, ``Reply``, ``ObjectType``;
- :mod:`.params` parameter schemas from ``stripe.params`` TypedDicts, coercion;
- :mod:`.encoding` bracketed form decoding, v2 JSON;
- :mod:`.render` expansion, hidden fields, pagination, metadata and ``created`` helpers;
- :mod:`.store` the locked in-memory store; :mod:`.persistence` its SQLite copy;
- :mod:`.events` the event log behind ``/v1/events``: handlers call
  ``emit(req, "price.updated", price)`` after storing a change; events are kept
  once the handler succeeded (``request.succeeded`` hook), never on a replay;
- :mod:`.clock` emulated time; :mod:`.versions` API version ordering and gates;
- :mod:`.faults` deterministic fault plans; :mod:`.ratelimit` the token bucket;
- :mod:`.errors` ``ApiError`` and Stripe's common errors;
- :mod:`.resources` one module per resource family (products, prices, meters,
  meter_events, customers, payment_methods, test_clocks, alerts,
  tax_and_discounts, subscriptions, subscription_items, usage_records,
  schedules, invoices, collection (payments, retries, statuses), prorations,
  previews (invoice previews), renewals, entitlements (features and product
  features), promotion_codes, billing_portal (configurations), events; ``catalog``
  holds the shared product/price builders, ``billing`` the period, usage and
  pricing arithmetic);
- :mod:`.seed` ``seed_legacy_account``: a legacy usage-record account built
  through the HTTP API with the real SDK (tests, demo).

Adding a resource
-----------------
1. Write ``reconciler/emulator/resources/<name>.py`` with handlers
   ``def handler(req: Request) -> JSON | Reply``. Read parameters from
   ``req.params`` (already checked and typed; ``None`` = the caller unset the
   field with an empty string), path parameters from ``req.path_params``, the
   time from ``req.now()`` (emulated clock), and the version gate from
   ``req.legacy_usage_billing`` or ``versions.version_at_least(req.api_version, ...)``.
   Refuse with ``raise invalid(...)`` / ``missing_param(...)`` / ``no_such(...)``
   from :mod:`.errors`.
2. Keep state in ``req.store``: ``store.get(kind, id)`` (404 ``resource_missing``
   for you), ``store.find``, ``store.values`` / ``store.newest_first``, and
   **always** ``store.put(kind, obj)`` after creating or changing an object
   (persistence and idempotency depend on it), then ``emit(req, "<type>", obj)``
   from :mod:`.events` with the Stripe event type of the change. Ids from
   ``new_id("sub")``.
   Handlers run with the store lock held: no locking needed, no blocking calls.
3. List endpoints return ``paginate(req, items_newest_first, "/v1/<path>")``.
4. Add ``def register(registry: Registry) -> None`` declaring
   ``registry.route("POST", "/v1/subscriptions/{id}", update,
   params="SubscriptionUpdateParams")`` (the SDK TypedDict under
   ``stripe.params``; ``adjust=`` can widen it per API version, see
   ``prices.legacy_price_params``), ``registry.object_type(ObjectType("subscription",
   expandable={"customer": "customer"}, hidden=..., transform=...,
   embedded={"price": "price"}, nested=frozenset({"items"})))`` (``complete=``
   adds fields derived from other stored objects when rendering) and any
   hooks (``registry.add_hook("test_clock.advance", renew)``; see
   :mod:`.resources.test_clocks` for the clock hooks).
5. Append the module to ``RESOURCE_MODULES`` in :mod:`.resources`.
"""

from __future__ import annotations

from reconciler.emulator.clock import Clock
from reconciler.emulator.errors import ApiError
from reconciler.emulator.faults import FaultPlan
from reconciler.emulator.persistence import DatabaseUnusable
from reconciler.emulator.router import ObjectType, Registry, Reply, Request
from reconciler.emulator.server import Emulator, check_host, serve
from reconciler.emulator.store import Store, new_id
from reconciler.emulator.versions import (
    BASIL,
    DEFAULT_API_VERSION,
    LAST_LEGACY_USAGE_VERSION,
    has_legacy_usage_billing,
    version_at_least,
)

__all__ = [
    "BASIL",
    "DEFAULT_API_VERSION",
    "LAST_LEGACY_USAGE_VERSION",
    "ApiError",
    "Clock",
    "DatabaseUnusable",
    "Emulator",
    "FaultPlan",
    "ObjectType",
    "Registry",
    "Reply",
    "Request",
    "Store",
    "check_host",
    "has_legacy_usage_billing",
    "new_id",
    "serve",
    "version_at_least",
]
