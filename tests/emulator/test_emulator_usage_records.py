"""Legacy usage records and their summaries (API versions up to 2025-02-24.acacia only)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from lifecycle_helpers import (
    BASIL,
    DAY,
    FEB_15,
    JAN_15,
    LEGACY,
    advance,
    clocked_customer,
    legacy_price,
    legacy_subscription,
    licensed_price,
)


def _report(client: stripe.StripeClient, item: str, **params: Any) -> Any:
    response = client.raw_request(
        "post", f"/v1/subscription_items/{item}/usage_records", stripe_version=LEGACY, **params
    )
    return client.deserialize(response, api_mode="V1")


def _summaries(client: stripe.StripeClient, item: str) -> Any:
    response = client.raw_request(
        "get", f"/v1/subscription_items/{item}/usage_record_summaries", stripe_version=LEGACY
    )
    return client.deserialize(response, api_mode="V1")


@pytest.mark.parametrize(
    ("aggregate_usage", "expected"),
    [("sum", 10 + 5 + 7), ("max", 10 + 5), ("last_during_period", 7), ("last_ever", 7)],
)
def test_usage_records_aggregate_per_price(
    client: stripe.StripeClient,
    product: stripe.Product,
    aggregate_usage: str,
    expected: int,
) -> None:
    price = legacy_price(client, product.id, aggregate_usage=aggregate_usage)
    clock, customer = clocked_customer(client)
    sub = legacy_subscription(client, customer.id, [{"price": price["id"]}])
    item = sub["items"]["data"][0]["id"]
    advance(client, clock.id, JAN_15 + 5 * DAY)
    record = _report(client, item, quantity=10, timestamp=JAN_15 + DAY)
    assert record["object"] == "usage_record"
    assert record["id"].startswith("mbur_")
    assert (record["quantity"], record["timestamp"]) == (10, JAN_15 + DAY)
    _report(client, item, quantity=5, timestamp=JAN_15 + DAY)  # increment: 15 at day 1
    _report(client, item, quantity=3, timestamp=JAN_15 + 2 * DAY, action="set")
    _report(client, item, quantity=7, timestamp=JAN_15 + 2 * DAY, action="set")  # 7 at day 2
    summaries = _summaries(client, item)
    assert len(summaries["data"]) == 1
    current = summaries["data"][0]
    assert current["object"] == "usage_record_summary"
    assert (current["total_usage"], current["invoice"]) == (expected, None)
    assert current["period"]["start"] == JAN_15
    assert current["period"]["end"] == FEB_15


def test_usage_record_refusals(client: stripe.StripeClient, product: stripe.Product) -> None:
    price = legacy_price(client, product.id)
    seat = licensed_price(client, product.id)
    clock, customer = clocked_customer(client)
    sub = legacy_subscription(client, customer.id, [{"price": price["id"]}, {"price": seat.id}])
    metered_item, seat_item = (i["id"] for i in sub["items"]["data"])
    advance(client, clock.id, JAN_15 + 3 * DAY)
    with pytest.raises(stripe.InvalidRequestError) as before:
        _report(client, metered_item, quantity=1, timestamp=JAN_15 - DAY)
    assert before.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as future:
        _report(client, metered_item, quantity=1, timestamp=JAN_15 + 4 * DAY)
    assert future.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as licensed:
        _report(client, seat_item, quantity=1)
    assert licensed.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _report(client, metered_item, quantity=1, source="api")
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "source")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        _report(client, "si_missing", quantity=1)
    assert missing.value.http_status == 404
    now = _report(client, metered_item, quantity=2, timestamp="now")
    assert now["timestamp"] == JAN_15 + 3 * DAY


@pytest.mark.parametrize("version", [BASIL, None])
def test_usage_record_routes_are_gone_on_basil(
    client: stripe.StripeClient, product: stripe.Product, version: str | None
) -> None:
    price = legacy_price(client, product.id)
    _, customer = clocked_customer(client)
    item = legacy_subscription(client, customer.id, [{"price": price["id"]}])["items"]["data"][0]
    options: dict[str, Any] = {"stripe_version": version} if version else {}
    for method, suffix, params in (
        ("post", "usage_records", {"quantity": 1}),
        ("get", "usage_record_summaries", {}),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.raw_request(
                method, f"/v1/subscription_items/{item['id']}/{suffix}", **options, **params
            )
        assert caught.value.http_status == 404
        assert "Unrecognized request URL" in str(caught.value.user_message)
