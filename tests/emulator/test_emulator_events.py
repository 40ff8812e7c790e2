"""Events: the log of what changed, ``GET /v1/events`` and ``GET /v1/events/{id}``.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``): there events show up after a short delay and the
account holds other runs' events, so they poll and only look at their own
objects. Tests taking ``emu`` check the emulator itself.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import DAY, FEB_15, JAN_15, LEGACY, clocked_customer, licensed_price

from reconciler.emulator import Emulator
from reconciler.emulator import events as event_log

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe-openapi" / "fixtures3.json"


def _events(
    client: stripe.StripeClient,
    params: dict[str, Any],
    until: Callable[[list[Any]], bool] = lambda found: True,
) -> list[Any]:
    """One page of events; against Stripe, polled until ``until`` holds (events lag a little)."""
    deadline = time.monotonic() + (30 if LIVE_KEY else 0)
    while True:
        found = list(client.v1.events.list(params=params).data)  # type: ignore[arg-type]
        if until(found) or time.monotonic() >= deadline:
            return found
        time.sleep(1)


def _about(events: list[Any], object_id: str) -> list[Any]:
    return [event for event in events if event.data.object["id"] == object_id]


def _advance(client: stripe.StripeClient, clock: str, to: int) -> None:
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    deadline = time.monotonic() + 120
    while client.v1.test_helpers.test_clocks.retrieve(clock).status != "ready":
        assert time.monotonic() < deadline, "the test clock did not get ready"
        time.sleep(2)


def _invoiced_subscription(client: stripe.StripeClient, product: str) -> tuple[Any, Any, Any]:
    """A clock, its customer and an active monthly subscription (invoices sent, not charged)."""
    price = licensed_price(client, product, 4900)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    return clock, customer, sub


# --- what the reconciler relies on ----------------------------------------------------------
def test_a_created_schedule_names_its_idempotency_key_and_a_replay_adds_no_event(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    _, _, sub = _invoiced_subscription(client, product.id)
    key = f"adopt-{uid}"
    schedule = client.v1.subscription_schedules.create(
        params={"from_subscription": sub.id}, options={"idempotency_key": key}
    )
    params = {"type": "subscription_schedule.created", "limit": 100}
    mine = _about(
        _events(client, params, lambda found: bool(_about(found, schedule.id))), schedule.id
    )
    assert len(mine) == 1
    event = mine[0]
    assert isinstance(event, stripe.Event)
    assert event.id.startswith("evt_")
    assert (event.object, event.type, event.livemode) == (
        "event",
        "subscription_schedule.created",
        False,
    )
    assert event.request is not None
    assert event.request.idempotency_key == key
    assert str(event.request.id).startswith("req_")
    assert event.data.object["subscription"] == sub.id
    assert client.v1.events.retrieve(event.id).id == event.id

    again = client.v1.subscription_schedules.create(
        params={"from_subscription": sub.id}, options={"idempotency_key": key}
    )
    assert again.id == schedule.id
    if LIVE_KEY:
        time.sleep(5)
    assert len(_about(_events(client, params), schedule.id)) == 1


def test_without_a_key_of_ours_the_event_shows_the_sdks_random_one(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    # The SDK sends a random Idempotency-Key with every POST it is given none
    # for: only a key chosen by the caller identifies the caller's request.
    _, _, sub = _invoiced_subscription(client, product.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    params = {"type": "subscription_schedule.created", "limit": 100}
    mine = _about(
        _events(client, params, lambda found: bool(_about(found, schedule.id))), schedule.id
    )
    assert len(mine) == 1
    assert mine[0].request.id is not None
    assert mine[0].request.idempotency_key


def _http(emu: Emulator, method: str, path: str, body: bytes | None = None) -> Any:
    request = urllib.request.Request(
        emu.url + path,
        data=body,
        method=method,
        headers={"Authorization": "Bearer sk_test_x"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_a_request_without_a_key_has_a_null_idempotency_key(emu: Emulator) -> None:
    product = _http(emu, "POST", "/v1/products", b"name=Plain")
    body = _http(emu, "GET", "/v1/events?type=product.created&limit=1")
    assert body["object"] == "list" and body["url"] == "/v1/events"
    (event,) = body["data"]
    assert event["data"]["object"]["id"] == product["id"]
    assert event["request"]["id"].startswith("req_")
    assert event["request"]["idempotency_key"] is None


def test_test_clock_renewals_are_automatic_events(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, _, sub = _invoiced_subscription(client, product.id)
    _advance(client, clock.id, FEB_15 + DAY)

    def renewal(event: Any) -> bool:
        invoice = event.data.object.to_dict()
        parent = invoice.get("parent") or {}
        details = parent.get("subscription_details") or {}
        owner = invoice.get("subscription") or details.get("subscription")
        return owner == sub.id and invoice["billing_reason"] == "subscription_cycle"

    params = {"type": "invoice.created", "limit": 100}
    found = [e for e in _events(client, params, lambda got: any(map(renewal, got))) if renewal(e)]
    assert len(found) == 1
    assert found[0].request.id is None
    assert found[0].request.idempotency_key is None
    first = [
        e
        for e in _events(client, params)
        if e.data.object["billing_reason"] == "subscription_create"
        and e.data.object["id"] == sub.latest_invoice
    ]
    assert first and first[0].request.id is not None


def test_type_types_and_created_filters(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1500)
    client.v1.prices.update(price.id, params={"metadata": {"tier": "basic"}})

    def seen(found: list[Any]) -> bool:
        return bool(_about(found, price.id))

    created = _events(client, {"type": "price.created", "limit": 100}, seen)
    assert {e.type for e in created} == {"price.created"}
    assert len(_about(created, price.id)) == 1

    wildcard = _events(client, {"type": "price.*", "limit": 100}, seen)
    assert {e.type for e in wildcard} <= {"price.created", "price.updated", "price.deleted"}
    assert {e.type for e in _about(wildcard, price.id)} == {"price.created", "price.updated"}

    both = _events(client, {"types": ["product.created", "price.updated"], "limit": 100}, seen)
    assert {e.type for e in both} <= {"product.created", "price.updated"}
    assert [e.type for e in _about(both, product.id)] == ["product.created"]
    assert [e.type for e in _about(both, price.id)] == ["price.updated"]

    updated = _about(both, price.id)[0]
    assert updated.data.previous_attributes["metadata"].to_dict() == {"tier": None}
    moment = updated.created
    around = _events(client, {"created": {"gte": moment, "lte": moment}, "limit": 100})
    assert updated.id in {e.id for e in around}
    assert all(e.created == moment for e in around)
    before = _events(client, {"created": {"lt": moment}, "limit": 100})
    assert updated.id not in {e.id for e in before}
    exact = _events(client, {"created": moment, "type": "price.updated", "limit": 100})
    assert updated.id in {e.id for e in exact}

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.list(params={"type": "price.created", "types": ["price.updated"]})


def test_paging_with_starting_after_and_ending_before(
    client: stripe.StripeClient, uid: str
) -> None:
    ids = [client.v1.products.create(params={"name": f"Paged {uid} {n}"}).id for n in range(105)]
    params: dict[str, Any] = {"type": "product.created", "limit": 100}
    newest = ids[-1]
    _events(client, params, lambda found: any(e.data.object["id"] == newest for e in found))
    page = client.v1.events.list(params=params)  # type: ignore[arg-type]
    pages = [list(page.data)]
    seen = {e.data.object["id"] for e in page.data} & set(ids)
    while page.has_more and len(seen) < len(ids):
        page = client.v1.events.list(params={**params, "starting_after": page.data[-1].id})
        pages.append(list(page.data))
        seen |= {e.data.object["id"] for e in page.data} & set(ids)
    assert seen == set(ids)
    everything = [e.id for p in pages for e in p]
    assert len(everything) == len(set(everything))
    second_page_start = pages[1][0].id
    back = client.v1.events.list(
        params={"type": "product.created", "limit": 3, "ending_before": second_page_start}
    )
    assert [e.id for e in back.data] == [e.id for e in pages[0][-3:]]
    if not LIVE_KEY:
        assert len(pages) == 2 and len(pages[1]) == 5 and not page.has_more
        assert [e.data.object["id"] for p in pages for e in p] == list(reversed(ids))


def test_retrieve_an_unknown_event_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.events.retrieve("evt_1NoSuchEventAtAll000000")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"


# --- the emulator itself --------------------------------------------------------------------
def test_event_shape_matches_stripes_example(emu: Emulator) -> None:
    make_client(emu.url).v1.products.create(params={"name": "Shaped"})
    (raw,) = _http(emu, "GET", "/v1/events")["data"]
    assert _http(emu, "GET", f"/v1/events/{raw['id']}") == raw
    assert set(raw) == {
        "id",
        "object",
        "api_version",
        "created",
        "data",
        "livemode",
        "pending_webhooks",
        "request",
        "type",
    }
    assert raw["pending_webhooks"] == 0
    assert set(raw["request"]) == {"id", "idempotency_key"}
    assert "previous_attributes" not in raw["data"]
    if FIXTURES.exists():
        example = json.loads(FIXTURES.read_text())["resources"]["event"]
        assert set(example) <= set(raw)
        assert set(example["request"]) == set(raw["request"])


def test_listing_defaults_and_refusals(emu: Emulator) -> None:
    client = make_client(emu.url)
    for n in range(12):
        client.v1.products.create(params={"name": f"P{n}"})
    listed = client.v1.events.list()
    assert len(listed.data) == 10 and listed.has_more
    assert listed.url == "/v1/events"
    assert len(client.v1.events.list(params={"delivery_success": True, "limit": 100}).data) == 12
    for bad in ({"limit": 0}, {"limit": 101}, {"types": [f"t{n}" for n in range(21)]}):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.events.list(params=bad)  # type: ignore[arg-type]
        assert caught.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.events.list(params={"colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as cursor:
        client.v1.events.list(params={"starting_after": "evt_1Unknown"})
    assert (cursor.value.http_status, cursor.value.param) == (400, "starting_after")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.events.retrieve("evt_1Unknown")
    assert str(missing.value.user_message) == "No such event: 'evt_1Unknown'"


def test_a_refused_request_and_a_replayed_one_emit_nothing(emu: Emulator) -> None:
    client = make_client(emu.url)
    client.v1.products.create(params={"id": "prod_taken", "name": "A"})
    options: stripe.RequestOptions = {"idempotency_key": "dup"}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.products.create(params={"id": "prod_taken", "name": "A"}, options=options)
    created = client.v1.products.create(params={"name": "B"}, options={"idempotency_key": "b"})
    client.v1.products.create(params={"name": "B"}, options={"idempotency_key": "b"})
    events = client.v1.events.list().data
    assert [e.data.object["id"] for e in events] == [created.id, "prod_taken"]
    assert events[0].request.idempotency_key == "b"


def test_automatic_events_use_the_test_clock_time_and_the_default_version(
    emu: Emulator,
) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Clocked"})
    clock, _, sub = _invoiced_subscription(client, product.id)
    _advance(client, clock.id, FEB_15 + DAY)
    updated = [
        e
        for e in client.v1.events.list(params={"type": "customer.subscription.updated"}).data
        if e.request.id is None
    ]
    # The sent invoice (finalised after its draft hour) fell due unpaid 30 days later
    # (past_due), then the period renewed.
    assert [e.created for e in updated] == [FEB_15, JAN_15 + 3600 + 30 * DAY]
    assert updated[1].data.previous_attributes["status"] == "active"
    renewal = updated[0]
    assert renewal.api_version == emu_default_version()
    previous = renewal.data.previous_attributes
    assert previous["latest_invoice"] == sub.latest_invoice
    ready = client.v1.events.list(params={"type": "test_helpers.test_clock.*"}).data
    assert [(e.type, e.request.id is None) for e in ready] == [
        ("test_helpers.test_clock.ready", True),
        ("test_helpers.test_clock.advancing", False),
        ("test_helpers.test_clock.created", False),
    ]
    assert ready[0].created == FEB_15 + DAY


def emu_default_version() -> str:
    from reconciler.emulator import DEFAULT_API_VERSION

    return DEFAULT_API_VERSION


def test_request_events_use_the_emulator_clock_and_the_request_version(emu: Emulator) -> None:
    emu.clock.freeze(JAN_15 + 5)
    client = make_client(emu.url)
    response = client.raw_request(
        "post", "/v1/products", name="Old", stripe_version=LEGACY, idempotency_key="old"
    )
    product = client.deserialize(response, api_mode="V1")
    (event,) = client.v1.events.list().data
    assert (event.created, event.api_version) == (JAN_15 + 5, LEGACY)
    assert event.data.object["id"] == product.id
    assert event.request.idempotency_key == "old"


def test_one_request_gives_one_event_per_change(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Bundle"})
    _, customer = clocked_customer(client)  # pays with its default card
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": licensed_price(client, product.id).id}],
        }
    )
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types[:5] == [
        "invoice.payment_succeeded",
        "invoice.paid",
        "invoice.finalized",
        "invoice.created",
        "customer.subscription.created",
    ]
    assert "customer.subscription.updated" not in types
    subscription_events = _about(client.v1.events.list(params={"limit": 100}).data, sub.id)
    (created,) = subscription_events
    assert created.data.object["latest_invoice"] == sub.latest_invoice
    invoice_events = {
        e.type: e.data.object
        for e in client.v1.events.list(params={"type": "invoice.*"}).data
        if e.data.object["id"] == sub.latest_invoice
    }
    assert invoice_events["invoice.created"]["status"] == "draft"
    assert invoice_events["invoice.created"]["number"] is None
    assert invoice_events["invoice.finalized"]["status"] == "open"
    assert invoice_events["invoice.paid"]["status"] == "paid"


def test_a_sent_invoice_is_a_draft_for_an_hour_then_open(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Sent"})
    clock, _, sub = _invoiced_subscription(client, product.id)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types[:2] == ["invoice.created", "customer.subscription.created"]
    draft = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (draft.status, draft.number) == ("draft", None)
    assert draft.automatically_finalizes_at == JAN_15 + 3600
    _advance(client, clock.id, JAN_15 + 3600)
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "invoice.finalized" in types
    assert "invoice.paid" not in types
    invoice = client.v1.invoices.retrieve(draft.id)
    assert invoice.status == "open"
    assert invoice.number is not None
    assert invoice.due_date == JAN_15 + 3600 + 30 * DAY
    assert (invoice.amount_paid, invoice.amount_remaining) == (0, invoice.amount_due)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_schedule_lifecycle_events(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Lifecycle"})
    clock, _, sub = _invoiced_subscription(client, product.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    client.v1.subscription_schedules.update(schedule.id, params={"metadata": {"owner": "us"}})
    client.v1.subscription_schedules.release(schedule.id)
    other = _invoiced_subscription(client, product.id)[2]
    second = client.v1.subscription_schedules.create(params={"from_subscription": other.id})
    client.v1.subscription_schedules.cancel(second.id)
    kinds = [
        (e.type, e.data.object["id"])
        for e in client.v1.events.list(params={"type": "subscription_schedule.*"}).data
    ]
    assert kinds == [
        ("subscription_schedule.canceled", second.id),
        ("subscription_schedule.created", second.id),
        ("subscription_schedule.released", schedule.id),
        ("subscription_schedule.updated", schedule.id),
        ("subscription_schedule.created", schedule.id),
    ]
    updated = client.v1.events.list(params={"type": "subscription_schedule.updated"}).data[0]
    assert updated.data.previous_attributes.to_dict() == {"metadata": {"owner": None}}
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert [e.data.object["id"] for e in deleted] == [other.id]
    assert clock.id


def test_meter_and_price_events(emu: Emulator) -> None:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={"display_name": "M", "event_name": "m", "default_aggregation": {"formula": "sum"}}
    )
    client.v1.billing.meters.update(meter.id, params={"display_name": "M2"})
    client.v1.billing.meters.deactivate(meter.id)
    client.v1.billing.meters.reactivate(meter.id)
    types = [e.type for e in client.v1.events.list(params={"type": "billing.meter.*"}).data]
    assert types == [
        "billing.meter.reactivated",
        "billing.meter.deactivated",
        "billing.meter.updated",
        "billing.meter.created",
    ]
    renamed = client.v1.events.list(params={"type": "billing.meter.updated"}).data[0]
    assert renamed.data.previous_attributes["display_name"] == "M"
    product = client.v1.products.create(params={"name": "P"})
    old = licensed_price(client, product.id)
    client.v1.prices.update(old.id, params={"lookup_key": "pro"})
    new = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 5900,
            "recurring": {"interval": "month"},
            "lookup_key": "pro",
            "transfer_lookup_key": True,
        }
    )
    latest = client.v1.events.list(params={"type": "price.*", "limit": 2}).data
    assert [(e.type, e.data.object["id"]) for e in latest] == [
        ("price.created", new.id),
        ("price.updated", old.id),
    ]
    assert latest[1].data.previous_attributes.to_dict() == {"lookup_key": "pro"}


def test_events_older_than_thirty_days_are_gone(emu: Emulator) -> None:
    client = make_client(emu.url)
    client.v1.products.create(params={"name": "Old"})
    (old,) = client.v1.events.list().data
    emu.clock.advance(29 * DAY)
    assert [e.id for e in client.v1.events.list().data] == [old.id]
    emu.clock.advance(2 * DAY)
    assert client.v1.events.list().data == []
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.events.retrieve(old.id)
    assert caught.value.http_status == 404
    client.v1.products.create(params={"name": "New"})
    with emu.store.lock:
        assert emu.store.find(event_log.EVENT_LOG, old.id) is None
        assert emu.store.count(event_log.EVENT_LOG) == 1


def test_the_log_keeps_the_newest_events(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_log, "MAX_EVENTS", 5)
    client = make_client(emu.url)
    ids = [client.v1.products.create(params={"name": f"P{n}"}).id for n in range(8)]
    listed = client.v1.events.list(params={"limit": 100}).data
    assert [e.data.object["id"] for e in listed] == list(reversed(ids[-5:]))
    assert "_event_log" not in emu.stats()["objects"]


def test_events_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with Emulator(port=0, db_path=db) as first:
        client = make_client(first.url)
        product = client.v1.products.create(
            params={"name": "Kept"}, options={"idempotency_key": "keep"}
        )
        client.v1.products.update(product.id, params={"name": "Kept 2"})
        before = [e.id for e in client.v1.events.list().data]
    with Emulator(port=0, db_path=db) as second:
        client = make_client(second.url)
        assert [e.id for e in client.v1.events.list().data] == before
        client.v1.products.create(params={"name": "Kept"}, options={"idempotency_key": "keep"})
        client.v1.products.update(product.id, params={"name": "Kept 3"})
        latest = client.v1.events.list().data
        assert len(latest) == 3
        previous = latest[0].data.previous_attributes.to_dict()
        # ``updated`` differs too when the two updates fall in different seconds.
        assert previous.pop("name") == "Kept 2"
        assert set(previous) <= {"updated"}
