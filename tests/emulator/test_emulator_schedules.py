"""Subscription schedules: from_subscription, phase updates, refusals, release and cancel."""

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
    MAR_15,
    clocked_customer,
    legacy_price,
    legacy_subscription,
    licensed_price,
    meter,
    meter_price,
)

from reconciler.emulator import Emulator


def _update(client: stripe.StripeClient, schedule: str, version: str, **params: Any) -> Any:
    response = client.raw_request(
        "post", f"/v1/subscription_schedules/{schedule}", stripe_version=version, **params
    )
    return client.deserialize(response, api_mode="V1")


def _legacy_setup(client: stripe.StripeClient, product: str) -> dict[str, Any]:
    legacy = legacy_price(client, product)
    seat = licensed_price(client, product, 4900)
    m = meter(client, "video_seconds")
    metered = meter_price(client, product, m.id, unit_amount_decimal="0.35")
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    clock, customer = clocked_customer(client)
    response = client.raw_request(
        "post",
        "/v1/subscriptions",
        stripe_version=LEGACY,
        customer=customer.id,
        items=[{"price": legacy["id"]}, {"price": seat.id, "quantity": 2, "tax_rates": [rate.id]}],
        default_tax_rates=[rate.id],
        discounts=[{"coupon": coupon.id}],
        metadata={"plan": "pro"},
    )
    sub = client.deserialize(response, api_mode="V1")
    return {
        "legacy": legacy["id"],
        "seat": seat.id,
        "metered": metered.id,
        "rate": rate.id,
        "coupon": coupon.id,
        "clock": clock.id,
        "customer": customer.id,
        "sub": sub,
    }


def test_from_subscription_mirrors_the_current_period(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    s = _legacy_setup(client, product.id)
    sub = s["sub"]
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub["id"]})
    assert schedule.id.startswith("sub_sched_")
    assert (schedule.status, schedule.end_behavior) == ("active", "release")
    assert (schedule.subscription, schedule.customer) == (sub["id"], s["customer"])
    assert schedule.test_clock == s["clock"]
    assert (schedule.current_phase.start_date, schedule.current_phase.end_date) == (
        JAN_15,
        FEB_15,
    )
    (phase,) = schedule.phases
    assert (phase.start_date, phase.end_date) == (JAN_15, FEB_15)
    assert [(i.price, i.to_dict().get("quantity")) for i in phase["items"]] == [
        (s["legacy"], None),
        (s["seat"], 2),
    ]
    assert [r.id for r in phase["items"][1].tax_rates] == [s["rate"]]
    assert [r.id for r in phase.default_tax_rates] == [s["rate"]]
    assert phase.discounts[0].discount == sub["discounts"][0]
    assert phase.metadata.to_dict() == {"plan": "pro"}
    assert client.v1.subscriptions.retrieve(sub["id"]).schedule == schedule.id
    assert client.v1.subscription_schedules.retrieve(schedule.id).phases[0].end_date == FEB_15
    listed = client.v1.subscription_schedules.list(params={"customer": s["customer"]})
    assert [x.id for x in listed.data] == [schedule.id]


def test_schedule_refusals(client: stripe.StripeClient, product: stripe.Product) -> None:
    s = _legacy_setup(client, product.id)
    sub_id = s["sub"]["id"]
    for extra in ({"phases": [{"items": [{"price": s["seat"]}]}]}, {"metadata": {"ours": "1"}}):
        with pytest.raises(stripe.InvalidRequestError) as together:
            client.v1.subscription_schedules.create(
                params={"from_subscription": sub_id, **extra}  # type: ignore[typeddict-item]
            )
        assert together.value.param == next(iter(extra))
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub_id})
    with pytest.raises(stripe.InvalidRequestError) as second:
        client.v1.subscription_schedules.create(params={"from_subscription": sub_id})
    assert (second.value.http_status, second.value.param) == (400, "from_subscription")
    phase0 = {"start_date": JAN_15, "end_date": FEB_15, "items": [{"price": s["seat"]}]}
    eleven = [phase0] + [{"items": [{"price": s["seat"]}], "duration": {"interval": "month"}}] * 10
    with pytest.raises(stripe.InvalidRequestError) as too_many:
        client.v1.subscription_schedules.update(
            schedule.id,
            params={"phases": eleven},  # type: ignore[typeddict-item]
        )
    assert (too_many.value.http_status, too_many.value.param) == (400, "phases")
    legacy_phase = {
        "start_date": JAN_15,
        "end_date": FEB_15,
        "items": [{"price": s["legacy"]}, {"price": s["seat"], "quantity": 2}],
    }
    for version in (BASIL, None):
        with pytest.raises(stripe.InvalidRequestError) as gated:
            client.v1.subscription_schedules.update(
                schedule.id,
                params={"phases": [legacy_phase, {"items": [{"price": s["metered"]}]}]},
                options={"stripe_version": version} if version else {},
            )
        assert gated.value.param == "phases[0][items][0][price]"
    with pytest.raises(stripe.InvalidRequestError) as moved:
        _update(
            client,
            schedule.id,
            LEGACY,
            phases=[{**legacy_phase, "start_date": JAN_15 + DAY}],
        )
    assert moved.value.param == "phases[0][start_date]"
    with pytest.raises(stripe.InvalidRequestError) as no_end:
        _update(
            client,
            schedule.id,
            LEGACY,
            phases=[{"start_date": JAN_15, "items": legacy_phase["items"]}, legacy_phase],
        )
    assert no_end.value.param == "phases[0][end_date]"
    with pytest.raises(stripe.InvalidRequestError) as metered_quantity:
        _update(
            client,
            schedule.id,
            LEGACY,
            phases=[legacy_phase, {"items": [{"price": s["metered"], "quantity": 1}]}],
        )
    assert metered_quantity.value.param == "phases[1][items][0][quantity]"


def test_update_phases_for_the_migration(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    s = _legacy_setup(client, product.id)
    sub = s["sub"]
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub["id"]})
    discount = sub["discounts"][0]
    keep = {
        "default_tax_rates": [s["rate"]],
        "discounts": [{"discount": discount}],
        "metadata": {"plan": "pro"},
    }
    updated = _update(
        client,
        schedule.id,
        LEGACY,
        phases=[
            {
                "start_date": JAN_15,
                "end_date": FEB_15,
                "items": [
                    {"price": s["legacy"]},
                    {"price": s["seat"], "quantity": 2, "tax_rates": [s["rate"]]},
                ],
                **keep,
            },
            {
                "items": [
                    {"price": s["metered"]},
                    {"price": s["seat"], "quantity": 2, "tax_rates": [s["rate"]]},
                ],
                **keep,
            },
        ],
        metadata={"managed_by": "stripe-reconcile"},
    )
    assert updated["metadata"].to_dict() == {"managed_by": "stripe-reconcile"}
    first, second = updated["phases"]
    assert (first["start_date"], first["end_date"]) == (JAN_15, FEB_15)
    # The last phase gets one period of its price's interval.
    assert (second["start_date"], second["end_date"]) == (FEB_15, MAR_15)
    assert [i["price"] for i in second["items"]] == [s["metered"], s["seat"]]
    assert second["discounts"][0]["discount"] == discount
    # The current phase is unchanged: the subscription keeps its items.
    current = client.v1.subscriptions.retrieve(sub["id"])
    assert [i.price.id for i in current["items"].data] == [s["legacy"], s["seat"]]
    assert [i.id for i in current["items"].data] == [i["id"] for i in sub["items"]["data"]]


def test_updating_the_current_phase_applies_at_once(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    s = _legacy_setup(client, product.id)
    sub = s["sub"]
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub["id"]})
    # Resending phase 0 without the seat drops it (the pitfall the reconciler must avoid).
    _update(
        client,
        schedule.id,
        LEGACY,
        phases=[{"start_date": JAN_15, "end_date": FEB_15, "items": [{"price": s["legacy"]}]}],
    )
    current = client.v1.subscriptions.retrieve(sub["id"])
    assert [i.price.id for i in current["items"].data] == [s["legacy"]]
    assert current["items"].data[0].id == sub["items"]["data"][0]["id"]
    assert current.default_tax_rates == []
    assert current.discounts == []


def test_release_and_cancel(client: stripe.StripeClient, product: stripe.Product) -> None:
    seat = licensed_price(client, product.id)
    _, customer = clocked_customer(client)
    kept = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id, "quantity": 3}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": kept.id})
    released = client.v1.subscription_schedules.release(schedule.id)
    assert (released.status, released.released_at) == ("released", JAN_15)
    assert (released.released_subscription, released.subscription) == (kept.id, None)
    after = client.v1.subscriptions.retrieve(kept.id)
    assert (after.status, after.schedule, after["items"].data[0].quantity) == ("active", None, 3)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_schedules.release(schedule.id)
    again = client.v1.subscription_schedules.create(params={"from_subscription": kept.id})
    canceled = client.v1.subscription_schedules.cancel(again.id)
    assert (canceled.status, canceled.canceled_at) == ("canceled", JAN_15)
    assert client.v1.subscriptions.retrieve(kept.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_schedules.update(again.id, params={"metadata": {"x": "1"}})


def test_create_with_phases_now_and_later(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    bigger = licensed_price(client, product.id, 3000)
    _, customer = clocked_customer(client)
    now = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": "now",
            "end_behavior": "cancel",
            "phases": [
                {"items": [{"price": seat.id}], "duration": {"interval": "month"}},
                {"items": [{"price": bigger.id, "quantity": 2}]},
            ],
        }
    )
    assert (now.status, now.end_behavior) == ("active", "cancel")
    assert [(p.start_date, p.end_date) for p in now.phases] == [
        (JAN_15, FEB_15),
        (FEB_15, MAR_15),
    ]
    sub = client.v1.subscriptions.retrieve(now.subscription)
    assert (sub.schedule, sub["items"].data[0].price.id) == (now.id, seat.id)
    later = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": FEB_15,
            "phases": [{"items": [{"price": seat.id}]}],
        }
    )
    assert (later.status, later.subscription, later.current_phase) == ("not_started", None, None)
    scheduled = client.v1.subscription_schedules.list(params={"scheduled": True})
    assert [x.id for x in scheduled.data] == [later.id]


def test_iterations_before_clover_duration_after(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id)
    _, customer = clocked_customer(client)
    phases = [{"items": [{"price": seat.id}], "iterations": 2}, {"items": [{"price": seat.id}]}]
    with pytest.raises(stripe.InvalidRequestError) as current:
        client.raw_request(
            "post", "/v1/subscription_schedules", customer=customer.id, phases=phases
        )
    assert (current.value.code, current.value.param) == (
        "parameter_unknown",
        "phases[0][iterations]",
    )
    response = client.raw_request(
        "post",
        "/v1/subscription_schedules",
        stripe_version=BASIL,
        customer=customer.id,
        phases=phases,
    )
    schedule = client.deserialize(response, api_mode="V1")
    assert schedule["phases"][0]["end_date"] == MAR_15


def test_list_by_price_pages_of_100_with_schedules_expanded(
    emu: Emulator, client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = legacy_price(client, product.id)
    other = licensed_price(client, product.id)
    customer = client.v1.customers.create(params={"name": "Many"})
    ids = [
        legacy_subscription(client, customer.id, [{"price": legacy.id}])["id"] for _ in range(130)
    ]
    client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": other.id}]})
    scheduled = client.v1.subscription_schedules.create(params={"from_subscription": ids[5]})
    with pytest.raises(stripe.InvalidRequestError) as too_many:
        client.v1.subscriptions.list(params={"price": legacy.id, "limit": 101})
    assert too_many.value.param == "limit"
    first = client.v1.subscriptions.list(
        params={"price": legacy.id, "limit": 100, "expand": ["data.schedule"]}
    )
    assert len(first.data) == 100 and first.has_more
    second = client.v1.subscriptions.list(
        params={
            "price": legacy.id,
            "limit": 100,
            "starting_after": first.data[-1].id,
            "expand": ["data.schedule"],
        }
    )
    assert not second.has_more
    seen = [s.id for s in first.data] + [s.id for s in second.data]
    assert seen == list(reversed(ids))
    with_schedule = [s for s in first.data + second.data if s.schedule is not None]
    assert [s.id for s in with_schedule] == [ids[5]]
    assert with_schedule[0].schedule.id == scheduled.id
    assert with_schedule[0].schedule.object == "subscription_schedule"
    walked = [
        s.id for s in client.v1.subscriptions.list(params={"price": legacy.id}).auto_paging_iter()
    ]
    assert walked == seen
