"""Every object the emulator returns has Stripe's shape, recursively.

Two references, combined:

- Stripe's published example objects (``../shared/stripe-openapi/fixtures3.json``
  beside the repository): their keys are the fields Stripe always returns
  (a ``null`` example value means the field is nullable). Skipped when the
  file is absent, as in users' clones;
- the SDK's typed resources (``stripe.Invoice`` and their inner classes): a
  field annotated without ``Optional`` is always present and never ``null``;
  a field the SDK does not know is not one Stripe returns.

For each object kind the checker walks the response: a missing always-present
field, a ``null`` where the SDK says never null, a hash or list where Stripe
has another type, or an unknown field is a problem, at any depth (nested
objects such as a subscription item's ``price`` are checked against their own
kind). Objects are built through the SDK, so the test also runs against
Stripe test mode (``STRIPE_TEST_API_KEY``), where it checks the checker.
"""

from __future__ import annotations

import json
import os
import time
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import stripe
from lifecycle_helpers import LEGACY, clocked_customer, legacy_price, legacy_subscription
from stripe._object_classes import OBJECT_CLASSES

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe-openapi" / "fixtures3.json"

#: Keys whose values are free-form hashes (no fixed keys to compare).
FREE_FORM = {"metadata", "previous_attributes", "status_details"}

#: Keys whose values map a currency to an object of one shape (the SDK types them
#: ``UntypedStripeObject[CurrencyOptions]``): each value is checked, not the currency keys.
CURRENCY_MAPS = {"currency_options"}

#: Example-object keys Stripe no longer returns on the SDK's pinned API version:
#: since ``2025-03-31.basil`` an invoice's subscription is under
#: ``parent.subscription_details`` (changelog; the SDK 16 ``Invoice`` has no such field).
MOVED = {"invoice": {"subscription"}}

#: Fields Stripe leaves out in some objects although its example shows them: a metered
#: item has no ``quantity`` (usage sets the amount), in a subscription as in a schedule phase.
LEFT_OUT_WHEN_METERED = {"quantity"}

#: Legacy usage-record summaries left the API in basil: neither the SDK 16 nor the
#: current example objects describe them. Their shape on ``2025-02-24.acacia``, from
#: Stripe's API reference of that version ("The usage record summary object").
USAGE_RECORD_SUMMARY = {
    "id": "sis_1",
    "object": "usage_record_summary",
    "invoice": None,
    "livemode": False,
    "period": {"end": None, "start": None},
    "subscription_item": "si_1",
    "total_usage": 1,
}


@cache
def _examples() -> dict[str, Any]:
    if not FIXTURES.exists():
        return {}
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return {**resources, "usage_record_summary": USAGE_RECORD_SUMMARY}


def _resource_class(kind: str) -> type | None:
    if kind not in OBJECT_CLASSES:
        return None
    module, name = OBJECT_CLASSES[kind]
    cls: type = getattr(__import__(module, fromlist=[name]), name)
    return cls


@cache
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> annotation the SDK class itself declares (no constants, no internals)."""
    found: dict[str, Any] = vars(cls).get("__annotations__", {})
    return {n: hint for n, hint in found.items() if not n.isupper() and not n.startswith("_")}


def _nullable(hint: Any) -> bool:
    if isinstance(hint, str):
        return hint.startswith("Optional[")
    return type(None) in typing.get_args(hint)


def _inner(cls: type | None, key: str) -> type | None:
    if cls is None:
        return None
    inner: dict[str, type] = getattr(cls, "_inner_class_types", {})
    return inner.get(key)


def _is_metered_item(ours: dict[str, Any]) -> bool:
    plan = ours.get("plan")
    return isinstance(plan, dict) and plan.get("usage_type") == "metered"


def problems(obj: Any, kind: str) -> list[str]:
    """Every way ``obj`` (a response dict of ``kind``) differs from Stripe's shape."""
    return list(_walk(obj, _examples().get(kind), _resource_class(kind), kind))


def _walk(ours: dict[str, Any], example: Any, cls: type | None, path: str) -> Iterator[str]:
    kind = ours.get("object")
    if isinstance(example, dict) and set(example) <= {"id", "object"} and "object" in example:
        return  # the example shows a bare reference (an account): nothing to compare
    if isinstance(kind, str) and "." in path and kind != "list":
        # A nested resource (an item's price, a phase item's plan): its own kind's shape.
        nested = _examples().get(kind)
        if nested is not None or _resource_class(kind) is not None:
            example, cls = nested, _resource_class(kind) or cls
    if ours.get("object") == "list" and isinstance(ours.get("data"), list):
        sample = example.get("data", [None])[0] if isinstance(example, dict) else None
        for index, item in enumerate(ours["data"]):
            if isinstance(item, dict):
                yield from _walk(item, sample, cls, f"{path}.data[{index}]")
        return
    hints = _hints(cls) if cls is not None else {}
    required = set(example) if isinstance(example, dict) else set()
    required -= MOVED.get(str(kind), set())
    if _is_metered_item(ours):
        required -= LEFT_OUT_WHEN_METERED
    required |= {name for name, hint in hints.items() if not _nullable(hint)}
    for name in sorted(required - set(ours)):
        yield f"{path}.{name} is missing"
    known = set(hints) | (set(example) if isinstance(example, dict) else set())
    for name in sorted(set(ours) - known):
        if cls is not None or isinstance(example, dict):
            yield f"{path}.{name} is not a field Stripe returns"
    for name, value in ours.items():
        where = f"{path}.{name}"
        hint = hints.get(name)
        sample = example.get(name) if isinstance(example, dict) else None
        if value is None:
            if hint is not None and not _nullable(hint):
                yield f"{where} is null; Stripe never returns null there"
            continue
        if name in FREE_FORM:
            continue
        if name in CURRENCY_MAPS and isinstance(value, dict):
            for currency, item in value.items():
                if isinstance(item, dict):
                    yield from _walk(item, None, _inner(cls, name), f"{where}.{currency}")
            continue
        if isinstance(sample, dict) and not isinstance(value, dict):
            if not (isinstance(value, str) and sample.get("object")):  # an unexpanded id
                yield f"{where} is {type(value).__name__}; Stripe returns a hash"
            continue
        if isinstance(sample, list) and not isinstance(value, list):
            yield f"{where} is {type(value).__name__}; Stripe returns a list"
            continue
        if isinstance(value, dict):
            yield from _walk(value, sample, _inner(cls, name), where)
        elif isinstance(value, list):
            first = sample[0] if isinstance(sample, list) and sample else None
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _walk(item, first, _inner(cls, name), f"{where}[{index}]")


# --- the checker itself ---------------------------------------------------------------------


def test_the_checker_finds_missing_null_and_unknown_fields() -> None:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not present")
    for kind in ("subscription", "invoice", "line_item", "customer", "price", "discount"):
        assert problems(json.loads(json.dumps(_examples()[kind])), kind) == []
    example = json.loads(json.dumps(_examples()["subscription"]))
    del example["invoice_settings"]["issuer"]
    example["billing_mode"] = None
    example["invented"] = 1
    found = problems(example, "subscription")
    assert "subscription.invoice_settings.issuer is missing" in found
    assert "subscription.billing_mode is null; Stripe never returns null there" in found
    assert "subscription.invented is not a field Stripe returns" in found


# --- the objects -----------------------------------------------------------------------------


def _dict(obj: Any) -> dict[str, Any]:
    found: dict[str, Any] = obj.to_dict(recursive=True)
    return found


@pytest.fixture
def objects(client: stripe.StripeClient, uid: str) -> dict[str, list[dict[str, Any]]]:
    """One or more responses of every object kind the emulator serves."""
    meter = client.v1.billing.meters.create(
        params={
            "display_name": f"Seconds {uid}",
            "event_name": f"seconds_{uid}",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = client.v1.products.create(params={"name": f"Shapes {uid}"})
    seat = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
        }
    )
    metered = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount_decimal": "0.5",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    clock, customer = clocked_customer(client)
    customer = client.v1.customers.update(
        customer.id, params={"address": {"line1": "1 Main St", "country": "US"}}
    )
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}, {"price": metered.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "default_tax_rates": [rate.id],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    item = client.v1.subscription_items.retrieve(sub["items"].data[0].id)
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    discounted = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["discounts"]})
    alert = client.v1.billing.alerts.create(
        params={
            "alert_type": "usage_threshold",
            "title": f"Alert {uid}",
            "usage_threshold": {"gte": 5, "meter": meter.id, "recurrence": "one_time"},
        }
    )
    paying = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    paid = client.v1.invoices.retrieve(str(paying.latest_invoice))
    prorated = client.v1.subscriptions.update(
        paying.id,
        params={
            "items": [{"id": paying["items"].data[0].id, "quantity": 2}],
            "proration_behavior": "always_invoice",
        },
    )
    proration = client.v1.invoices.retrieve(str(prorated.latest_invoice))
    # Previews (no id of their own kind: ``upcoming_in_...`` invoices), plain and prorating.
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    prorating = client.v1.invoices.create_preview(
        params={
            "subscription": paying.id,
            "subscription_details": {"items": [{"id": paying["items"].data[0].id, "quantity": 3}]},
        }
    )
    card = client.v1.customers.payment_methods.list(customer.id).data[0]
    spare = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    detached = client.v1.payment_methods.detach(spare.id)
    resumed = _paused_and_resumed(client, seat.id)
    base = int(clock.frozen_time) // 86400 * 86400
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": customer.id, "start_time": base, "end_time": base + 86400}
    ).data
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in (
        product,
        seat,
        metered,
        meter,
        alert,
        customer,
        clock,
        rate,
        coupon,
        sub,
        item,
        schedule,
        invoice,
        paying,
        paid,
        proration,
        *proration.lines.data,
        preview,
        *preview.lines.data,
        prorating,
        *prorating.lines.data,
        card,
        spare,
        detached,
        resumed,
        *invoice.lines.data,
        *discounted.discounts,  # type: ignore[union-attr]
        *summaries,
    ):
        found.setdefault(str(obj.object), []).append(_dict(obj))
    catalog, catalog_ids = _catalog_objects(client, uid)
    for kind, obj in catalog:
        found.setdefault(kind, []).append(obj)
    found["event"] = _own_events(
        client, {sub.id, customer.id, invoice.id, schedule.id, card.id, *catalog_ids}
    )
    return found


def _catalog_objects(
    client: stripe.StripeClient, uid: str
) -> tuple[list[tuple[str, dict[str, Any]]], set[str]]:
    """Every response of the entitlement feature, product feature, promotion code and
    portal configuration routes (plain and with their includable fields), and the ids
    whose events to check."""
    product = client.v1.products.create(params={"name": f"Catalog {uid}"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
        }
    )
    features = client.v1.entitlements.features
    feature = features.create(params={"lookup_key": f"shape_{uid}", "name": f"Shape {uid}"})
    attached = client.v1.products.features.create(
        product.id, params={"entitlement_feature": feature.id}
    )
    detached = client.v1.products.features.delete(product.id, attached.id)
    again = client.v1.products.features.create(
        product.id, params={"entitlement_feature": feature.id}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "once"})
    codes = client.v1.promotion_codes
    promo = codes.create(
        params={
            "promotion": {"type": "coupon", "coupon": coupon.id},
            "code": f"SHAPE{uid}",
            "restrictions": {
                "minimum_amount": 100,
                "minimum_amount_currency": "usd",
                "currency_options": {"eur": {"minimum_amount": 90}},
            },
        }
    )
    both = ["promotion.coupon", "restrictions.currency_options"]
    portal = client.v1.billing_portal.configurations
    products = "features.subscription_update.products"
    config = portal.create(
        params={
            "name": f"Shape {uid}",
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [{"product": product.id, "prices": [price.id]}],
                },
                "subscription_cancel": {"enabled": True},
            },
        }
    )
    responses: list[tuple[str, Any]] = [
        ("entitlements.feature", feature),
        ("entitlements.feature", features.retrieve(feature.id)),
        ("entitlements.feature", features.update(feature.id, params={"name": "Renamed"})),
        *(
            ("entitlements.feature", f)
            for f in features.list(params={"lookup_key": f"shape_{uid}"})
        ),
        ("product_feature", attached),
        ("product_feature", again),
        ("product_feature", client.v1.products.features.retrieve(product.id, again.id)),
        *(("product_feature", pf) for pf in client.v1.products.features.list(product.id)),
        ("deleted_product_feature", detached),
        ("promotion_code", promo),
        ("promotion_code", codes.retrieve(promo.id, params={"expand": both})),
        ("promotion_code", codes.update(promo.id, params={"active": False})),
        *(("promotion_code", p) for p in codes.list(params={"code": f"SHAPE{uid}"})),
        ("billing_portal.configuration", config),
        ("billing_portal.configuration", portal.retrieve(config.id, params={"expand": [products]})),
        ("billing_portal.configuration", portal.update(config.id, params={"name": "Renamed"})),
        *(
            ("billing_portal.configuration", c)
            for c in portal.list(params={"limit": 3, "expand": [f"data.{products}"]})
        ),
    ]
    return [(kind, _dict(obj)) for kind, obj in responses], {promo.id, config.id}


def _paused_and_resumed(client: stripe.StripeClient, price: str) -> Any:
    """A subscription paused at the end of a card-less trial, then resumed with a card."""
    clock, customer = clocked_customer(client, payment_method=None)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price}],
            "trial_period_days": 1,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": int(clock.frozen_time) + 86400 + 7200}
    )
    deadline = time.monotonic() + (120 if LIVE_KEY else 0)
    while client.v1.test_helpers.test_clocks.retrieve(clock.id).status != "ready":
        assert time.monotonic() < deadline, "the test clock did not get ready"
        time.sleep(2)
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    return client.v1.subscriptions.resume(sub.id)


def _own_events(client: stripe.StripeClient, ids: set[str]) -> list[dict[str, Any]]:
    """The events about this test's objects (polled: Stripe's events lag a little)."""
    deadline = time.monotonic() + (30 if LIVE_KEY else 0)
    while True:
        page = client.v1.events.list(params={"limit": 100}).data
        own = [_dict(e) for e in page if _dict(e)["data"]["object"].get("id") in ids]
        if len(own) >= len(ids) or time.monotonic() >= deadline:
            return own
        time.sleep(1)


EXPECTED_KINDS = {
    "product",
    "price",
    "billing.meter",
    "billing.alert",
    "customer",
    "test_helpers.test_clock",
    "tax_rate",
    "coupon",
    "subscription",
    "subscription_item",
    "subscription_schedule",
    "invoice",
    "line_item",
    "discount",
    "event",
    "payment_method",
    "entitlements.feature",
    "product_feature",
    "deleted_product_feature",
    "promotion_code",
    "billing_portal.configuration",
}


def test_every_object_kind_has_stripes_shape(objects: dict[str, list[dict[str, Any]]]) -> None:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not present")
    assert set(objects) >= EXPECTED_KINDS
    if not LIVE_KEY:  # Stripe aggregates meter events asynchronously: no summary yet there
        assert "billing.meter_event_summary" in objects
    found = [p for kind, objs in objects.items() for obj in objs for p in problems(obj, kind)]
    assert not found, "\n".join(found)


def test_customer_address_has_every_key(objects: dict[str, list[dict[str, Any]]]) -> None:
    address = objects["customer"][0]["address"]
    assert address == {
        "city": None,
        "country": "US",
        "line1": "1 Main St",
        "line2": None,
        "postal_code": None,
        "state": None,
    }


def test_usage_record_summaries_have_stripes_shape(client: stripe.StripeClient, uid: str) -> None:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not present")
    product = client.v1.products.create(params={"name": f"Legacy {uid}"})
    price = legacy_price(client, product.id)
    _, customer = clocked_customer(client)
    sub = legacy_subscription(client, customer.id, [{"price": price.id}])
    item = sub["items"].data[0].id
    response = client.raw_request(
        "get", f"/v1/subscription_items/{item}/usage_record_summaries", stripe_version=LEGACY
    )
    page = client.deserialize(response, api_mode="V1")
    assert page.data
    found = [p for summary in page.data for p in problems(_dict(summary), "usage_record_summary")]
    assert not found, "\n".join(found)
