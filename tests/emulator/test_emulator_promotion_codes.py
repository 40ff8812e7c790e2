"""Promotion codes through the real stripe SDK (contract tests unless marked)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
import stripe

from reconciler.emulator import Emulator


@pytest.fixture
def coupon(client: stripe.StripeClient) -> stripe.Coupon:
    return client.v1.coupons.create(params={"percent_off": 20, "duration": "forever"})


def _code(client: stripe.StripeClient, coupon: str, **extra: Any) -> stripe.PromotionCode:
    params: dict[str, Any] = {"promotion": {"type": "coupon", "coupon": coupon}, **extra}
    return client.v1.promotion_codes.create(params=cast(Any, params))


def test_create_retrieve_update(
    client: stripe.StripeClient, coupon: stripe.Coupon, uid: str
) -> None:
    promo = _code(
        client,
        coupon.id,
        code=f"FALL-{uid}",
        metadata={"managed_by": "stripe-reconcile"},
        max_redemptions=5,
        restrictions={"minimum_amount": 1000, "minimum_amount_currency": "usd"},
    )
    assert promo.object == "promotion_code"
    assert promo.id.startswith("promo_")
    assert (promo.code, promo.active, promo.times_redeemed) == (f"FALL-{uid}", True, 0)
    assert promo.promotion.type == "coupon"
    assert promo.promotion.coupon == coupon.id
    assert promo.customer is None
    assert promo.max_redemptions == 5
    assert promo.restrictions.minimum_amount == 1000
    assert promo.restrictions.minimum_amount_currency == "usd"
    assert promo.restrictions.first_time_transaction is False
    assert "currency_options" not in promo.restrictions
    fetched = client.v1.promotion_codes.retrieve(promo.id)
    assert fetched.code == promo.code
    updated = client.v1.promotion_codes.update(
        promo.id, params={"active": False, "metadata": {"managed_by": "", "campaign": "fall"}}
    )
    assert updated.active is False
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"campaign": "fall"}
    back = client.v1.promotion_codes.update(promo.id, params={"active": True})
    assert back.active is True


def test_generated_code(client: stripe.StripeClient, coupon: stripe.Coupon) -> None:
    promo = _code(client, coupon.id)
    assert promo.code
    assert promo.code.isalnum()


def test_expand_coupon_and_currency_options(
    client: stripe.StripeClient, coupon: stripe.Coupon, uid: str
) -> None:
    promo = _code(
        client,
        coupon.id,
        code=f"MULTI{uid}",
        restrictions={
            "minimum_amount": 1000,
            "minimum_amount_currency": "usd",
            "currency_options": {"eur": {"minimum_amount": 900}},
        },
    )
    assert "currency_options" not in promo.restrictions
    expanded = client.v1.promotion_codes.retrieve(
        promo.id, params={"expand": ["promotion.coupon", "restrictions.currency_options"]}
    )
    assert expanded.promotion.coupon.id == coupon.id  # type: ignore[union-attr]
    assert expanded.promotion.coupon.percent_off == 20  # type: ignore[union-attr]
    assert expanded.restrictions.currency_options["eur"].minimum_amount == 900  # type: ignore[index]
    listed = client.v1.promotion_codes.list(
        params={"code": f"MULTI{uid}", "expand": ["data.restrictions.currency_options"]}
    )
    assert listed.data[0].restrictions.currency_options["eur"].minimum_amount == 900  # type: ignore[index]
    updated = client.v1.promotion_codes.update(
        promo.id,
        params={
            "restrictions": {"currency_options": {"gbp": {"minimum_amount": 800}}},
            "expand": ["restrictions.currency_options"],
        },
    )
    options = updated.restrictions.currency_options
    assert options is not None
    by_currency = cast(dict[str, Any], options)
    assert {code: o.minimum_amount for code, o in by_currency.items()} == {"eur": 900, "gbp": 800}


def test_restrictions_and_code_are_fixed(
    client: stripe.StripeClient, coupon: stripe.Coupon, uid: str
) -> None:
    promo = _code(client, coupon.id, code=f"FIXED{uid}")
    for params in (
        {"code": f"OTHER{uid}"},
        {"max_redemptions": 3},
        {"expires_at": int(time.time()) + 3600},
        {"promotion": {"type": "coupon", "coupon": coupon.id}},
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.promotion_codes.update(promo.id, params=params)  # type: ignore[arg-type]
        assert caught.value.code == "parameter_unknown"
        assert caught.value.param == next(iter(params))
    with pytest.raises(stripe.InvalidRequestError) as restriction:
        client.v1.promotion_codes.update(
            promo.id,
            params={"restrictions": {"minimum_amount": 5}},  # type: ignore[arg-type]
        )
    assert restriction.value.param == "restrictions[minimum_amount]"


def test_legacy_coupon_parameter_is_unknown(
    client: stripe.StripeClient, coupon: stripe.Coupon
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.raw_request("post", "/v1/promotion_codes", coupon=coupon.id)
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "coupon"


def test_code_unique_among_active_codes_regardless_of_case(
    client: stripe.StripeClient, coupon: stripe.Coupon, uid: str
) -> None:
    first = _code(client, coupon.id, code=f"SAME{uid}")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _code(client, coupon.id, code=f"same{uid}")
    assert (caught.value.http_status, caught.value.param) == (400, "code")
    client.v1.promotion_codes.update(first.id, params={"active": False})
    second = _code(client, coupon.id, code=f"same{uid}")
    assert second.active is True
    with pytest.raises(stripe.InvalidRequestError) as reactivate:
        client.v1.promotion_codes.update(first.id, params={"active": True})
    assert reactivate.value.param == "code"


def test_code_unique_per_customer(
    client: stripe.StripeClient, coupon: stripe.Coupon, uid: str
) -> None:
    one = client.v1.customers.create(params={"name": f"One {uid}"})
    two = client.v1.customers.create(params={"name": f"Two {uid}"})
    a = _code(client, coupon.id, code=f"VIP{uid}", customer=one.id)
    b = _code(client, coupon.id, code=f"VIP{uid}", customer=two.id)
    assert (a.customer, b.customer) == (one.id, two.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _code(client, coupon.id, code=f"vip{uid}", customer=one.id)
    assert caught.value.param == "code"
    listed = client.v1.promotion_codes.list(params={"code": f"vip{uid}", "customer": two.id})
    assert [p.id for p in listed.data] == [b.id]
    expanded = client.v1.promotion_codes.retrieve(a.id, params={"expand": ["customer"]})
    assert expanded.customer.id == one.id  # type: ignore[union-attr]


def test_create_refusals(client: stripe.StripeClient, coupon: stripe.Coupon, uid: str) -> None:
    def refused(**params: Any) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.promotion_codes.create(params=params)  # type: ignore[arg-type]
        assert caught.value.http_status == 400
        return caught.value

    assert refused(code="x").param == "promotion"
    missing = refused(promotion={"type": "coupon", "coupon": "nope_coupon"})
    assert (missing.code, missing.param) == ("resource_missing", "promotion[coupon]")
    promotion = {"type": "coupon", "coupon": coupon.id}
    assert refused(promotion=promotion, code="has space").param == "code"
    assert refused(promotion=promotion, customer="cus_nope").param == "customer"
    assert (
        refused(promotion=promotion, restrictions={"minimum_amount": 100}).param
        == "restrictions[minimum_amount_currency]"
    )
    assert refused(promotion=promotion, expires_at=int(time.time()) - 60).param == "expires_at"


def test_limits_follow_the_coupon(client: stripe.StripeClient, uid: str) -> None:
    redeem_by = int(time.time()) + 86400
    limited = client.v1.coupons.create(
        params={
            "percent_off": 5,
            "duration": "once",
            "max_redemptions": 3,
            "redeem_by": redeem_by,
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as too_many:
        _code(client, limited.id, max_redemptions=4)
    assert too_many.value.param == "max_redemptions"
    with pytest.raises(stripe.InvalidRequestError) as too_late:
        _code(client, limited.id, expires_at=redeem_by + 60)
    assert too_late.value.param == "expires_at"
    ok = _code(client, limited.id, max_redemptions=3, expires_at=redeem_by - 60)
    assert (ok.max_redemptions, ok.expires_at) == (3, redeem_by - 60)


def test_deleted_coupon_deactivates_and_blocks_reactivation(
    client: stripe.StripeClient, uid: str
) -> None:
    coupon = client.v1.coupons.create(params={"percent_off": 15, "duration": "forever"})
    promo = _code(client, coupon.id, code=f"GONE{uid}")
    client.v1.coupons.delete(coupon.id)
    assert client.v1.promotion_codes.retrieve(promo.id).active is False
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.promotion_codes.update(promo.id, params={"active": True})
    assert caught.value.http_status == 400


def test_list_filters(client: stripe.StripeClient, coupon: stripe.Coupon, uid: str) -> None:
    other = client.v1.coupons.create(params={"percent_off": 30, "duration": "forever"})
    a = _code(client, coupon.id, code=f"LA{uid}")
    b = _code(client, coupon.id, code=f"LB{uid}", active=False)
    c = _code(client, other.id, code=f"LC{uid}")

    def ids(**filters: Any) -> list[str]:
        page = client.v1.promotion_codes.list(params={"limit": 100, **filters})  # type: ignore[arg-type]
        return [p.id for p in page.data]

    assert ids(coupon=coupon.id) == [b.id, a.id]
    assert ids(coupon=coupon.id, active=True) == [a.id]
    assert ids(coupon=coupon.id, active=False) == [b.id]
    assert ids(coupon=other.id) == [c.id]
    assert ids(code=f"la{uid}") == [a.id]
    assert ids(coupon=coupon.id, created={"gte": a.created}) == [b.id, a.id]
    page = client.v1.promotion_codes.list(params={"coupon": coupon.id, "limit": 1})
    assert ([p.id for p in page.data], page.has_more) == ([b.id], True)
    rest = client.v1.promotion_codes.list(
        params={"coupon": coupon.id, "limit": 1, "starting_after": b.id}
    )
    assert [p.id for p in rest.data] == [a.id]


def test_customer_account_is_not_emulated(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    coupon = client.v1.coupons.create(params={"percent_off": 5, "duration": "once"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _code(client, coupon.id, customer_account="acct_123")
    assert caught.value.param == "customer_account"
    assert "not emulated" in str(caught.value.user_message)


def test_promotion_code_events(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    coupon = client.v1.coupons.create(params={"percent_off": 5, "duration": "once"})
    promo = _code(client, coupon.id, code="EVENTS")
    client.v1.promotion_codes.update(promo.id, params={"active": False})
    events = client.v1.events.list(params={"type": "promotion_code.*"}).data
    assert [e.type for e in events] == ["promotion_code.updated", "promotion_code.created"]
    updated = events[0]
    assert updated.data.object["id"] == promo.id
    previous = updated.data.previous_attributes
    assert previous is not None
    assert previous.to_dict() == {"active": True}
    assert "currency_options" not in updated.data.object["restrictions"]
