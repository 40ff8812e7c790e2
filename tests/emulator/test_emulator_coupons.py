"""Coupons through the real stripe SDK: what create refuses, the includable ``applies_to``
and ``currency_options``, a derived ``valid``, what update changes, and a deleted
coupon's id taken by a new one (contract tests unless marked)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import stripe
from emulator_helpers import make_client

from reconciler.emulator import Emulator


def _refused(client: stripe.StripeClient, **params: Any) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.coupons.create(params=cast(Any, params))
    return caught.value


def test_create_refuses_what_stripe_refuses(client: stripe.StripeClient, uid: str) -> None:
    assert _refused(client, percent_off=0, duration="once").param == "percent_off"
    assert _refused(client, percent_off=101, duration="once").param == "percent_off"
    assert _refused(client, amount_off=0, currency="usd").param == "amount_off"
    assert _refused(client, amount_off=500).param == "currency"
    assert _refused(client, percent_off=5, max_redemptions=0).param == "max_redemptions"
    assert _refused(client, percent_off=5, name="x" * 41).param == "name"
    missing = _refused(client, percent_off=5, applies_to={"products": [f"prod_none_{uid}"]})
    assert (missing.code, missing.param) == ("resource_missing", "applies_to[products][0]")
    client.v1.coupons.create(params={"id": f"TAKEN{uid}", "percent_off": 5})
    taken = _refused(client, id=f"TAKEN{uid}", percent_off=5)
    assert (taken.code, taken.param) == ("resource_already_exists", "id")


def test_applies_to_and_currency_options_show_only_when_expanded(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    made = client.v1.coupons.create(
        params={
            "id": f"FIVE{uid}",
            "amount_off": 500,
            "currency": "usd",
            "currency_options": {"eur": {"amount_off": 450}},
            "applies_to": {"products": [product.id]},
            "duration": "repeating",
            "duration_in_months": 3,
        }
    )
    plain = client.v1.coupons.retrieve(made.id).to_dict()
    assert "applies_to" not in plain and "currency_options" not in plain
    assert "generation" not in plain
    full = client.v1.coupons.retrieve(
        made.id, params={"expand": ["applies_to", "currency_options"]}
    )
    assert full.applies_to is not None and full.applies_to.products == [product.id]
    assert full.to_dict()["currency_options"] == {
        "usd": {"amount_off": 500},
        "eur": {"amount_off": 450},
    }
    listed = client.v1.coupons.list(params={"expand": ["data.applies_to"]}).data
    assert [c.applies_to.products for c in listed if c.id == made.id] == [[product.id]]


def test_update_takes_name_metadata_and_currency_options_only(
    client: stripe.StripeClient, uid: str
) -> None:
    made = client.v1.coupons.create(
        params={"id": f"UPD{uid}", "amount_off": 500, "currency": "usd", "name": "Five off"}
    )
    updated = client.v1.coupons.update(
        made.id,
        params={
            "name": "Five dollars off",
            "metadata": {"campaign": "spring"},
            "currency_options": {"gbp": {"amount_off": 400}},
            "expand": ["currency_options"],
        },
    )
    assert (updated.name, updated.metadata["campaign"]) == ("Five dollars off", "spring")
    assert "gbp" in updated.to_dict()["currency_options"]
    with pytest.raises(stripe.InvalidRequestError) as fixed:
        client.raw_request("post", f"/v1/coupons/{made.id}", percent_off=10)
    assert fixed.value.param == "percent_off"


def test_a_deleted_coupons_id_is_taken_by_a_new_coupon(
    client: stripe.StripeClient, uid: str
) -> None:
    first = client.v1.coupons.create(params={"id": f"AGAIN{uid}", "percent_off": 10})
    code = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": first.id}, "code": f"AGAIN{uid}"}
    )
    assert client.v1.coupons.delete(first.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.coupons.retrieve(first.id)
    assert gone.value.http_status == 404
    second = client.v1.coupons.create(params={"id": f"AGAIN{uid}", "percent_off": 20})
    assert (second.id, second.percent_off, second.times_redeemed) == (first.id, 20, 0)
    # The old code belongs to the deleted coupon object, not to the id: it stays inactive,
    # cannot be reactivated, and its code is free for a code of the new coupon.
    assert client.v1.promotion_codes.retrieve(code.id).active is False
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.promotion_codes.update(code.id, params={"active": True})
    new = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": second.id}, "code": f"AGAIN{uid}"}
    )
    assert new.active is True


def test_valid_turns_false_past_redeem_by_and_its_codes_go_inactive(emu: Emulator) -> None:
    client = make_client(emu.url)
    now = emu.clock.now()
    emu.clock.freeze(now)
    coupon = client.v1.coupons.create(
        params={"id": "SOON", "percent_off": 10, "redeem_by": now + 60}
    )
    code = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "SOON"}
    )
    assert (coupon.valid, code.active) == (True, True)
    emu.clock.advance(120)
    assert client.v1.coupons.retrieve("SOON").valid is False
    assert client.v1.promotion_codes.retrieve(code.id).active is False
    assert [c.valid for c in client.v1.coupons.list().data] == [False]
