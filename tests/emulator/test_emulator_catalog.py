"""Products and prices through the real stripe SDK (contract tests unless marked)."""

from __future__ import annotations

import pytest
import stripe

from reconciler.emulator import Emulator

LEGACY = "2025-02-24.acacia"


def _metered(meter_id: str) -> dict[str, str]:
    return {"interval": "month", "usage_type": "metered", "meter": meter_id}


# --- products -------------------------------------------------------------------------------
def test_product_create_retrieve_update_list(client: stripe.StripeClient, uid: str) -> None:
    product = client.v1.products.create(
        params={
            "id": f"prod_video_{uid}",
            "name": "Video",
            "description": "Rendering",
            "metadata": {"managed_by": "stripe-reconcile", "tier": "gold"},
        }
    )
    assert product.id == f"prod_video_{uid}"
    assert product.object == "product"
    assert product.livemode is False
    assert product.active is True
    assert product.default_price is None
    fetched = client.v1.products.retrieve(product.id)
    assert fetched.name == "Video"
    updated = client.v1.products.update(
        product.id,
        params={"name": "Video 2", "description": "", "metadata": {"tier": "", "new": "x"}},
    )
    assert updated.name == "Video 2"
    assert updated.description is None
    assert updated.metadata.to_dict() == {"managed_by": "stripe-reconcile", "new": "x"}
    archived = client.v1.products.update(product.id, params={"active": False})
    assert archived.active is False
    listed = client.v1.products.list(params={"ids": [product.id], "active": False})
    assert [p.id for p in listed.data] == [product.id]
    assert client.v1.products.list(params={"ids": [product.id], "active": True}).data == []


def test_product_duplicate_id_is_refused(client: stripe.StripeClient, uid: str) -> None:
    client.v1.products.create(params={"id": f"prod_dup_{uid}", "name": "A"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.create(params={"id": f"prod_dup_{uid}", "name": "B"})
    assert caught.value.http_status == 400
    assert caught.value.code == "resource_already_exists"


def test_product_default_price_data_and_default_price_rules(
    client: stripe.StripeClient, uid: str
) -> None:
    product = client.v1.products.create(
        params={
            "name": "Seats",
            "default_price_data": {
                "currency": "usd",
                "unit_amount": 900,
                "recurring": {"interval": "month"},
            },
        }
    )
    default = client.v1.prices.retrieve(str(product.default_price))
    assert default.product == product.id
    assert default.unit_amount == 900
    other = client.v1.products.create(params={"name": "Other"})
    foreign = client.v1.prices.create(
        params={"product": other.id, "currency": "usd", "unit_amount": 1}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.update(product.id, params={"default_price": foreign.id})
    assert caught.value.param == "default_price"


def test_product_delete_only_without_prices(client: stripe.StripeClient, uid: str) -> None:
    bare = client.v1.products.create(params={"name": "Bare"})
    gone = client.v1.products.delete(bare.id)
    assert gone.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.retrieve(bare.id)
    assert missing.value.http_status == 404
    priced = client.v1.products.create(params={"name": "Priced"})
    client.v1.prices.create(params={"product": priced.id, "currency": "usd", "unit_amount": 5})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.delete(priced.id)
    assert caught.value.http_status == 400
    assert client.v1.products.retrieve(priced.id).id == priced.id


# --- prices ---------------------------------------------------------------------------------
def test_metered_price_on_a_meter(
    client: stripe.StripeClient, product: stripe.Product, meter: stripe.billing.Meter, uid: str
) -> None:
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "USD",
            "unit_amount_decimal": "0.50",
            "recurring": _metered(meter.id),
            "lookup_key": f"video_seconds_{uid}",
            "nickname": "per second",
            "metadata": {"managed_by": "stripe-reconcile"},
            "tax_behavior": "exclusive",
        }
    )
    assert price.id.startswith("price_")
    assert price.type == "recurring"
    assert price.currency == "usd"
    assert price.unit_amount is None
    assert str(price.unit_amount_decimal) == "0.5"
    assert price.recurring.meter == meter.id
    assert price.recurring.usage_type == "metered"
    assert price.recurring.interval_count == 1
    assert price.billing_scheme == "per_unit"
    assert "tiers" not in price
    assert "aggregate_usage" not in price.recurring


def test_whole_amount_has_both_amount_fields(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "eur", "unit_amount": 2000}
    )
    assert price.unit_amount == 2000
    assert str(price.unit_amount_decimal) == "2000"
    assert price.type == "one_time"
    assert price.recurring is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"unit_amount": 5, "unit_amount_decimal": "5"}, "unit_amount"),
        ({"unit_amount_decimal": "0.1234567890123"}, "unit_amount_decimal"),
        ({"unit_amount": 10**12}, "unit_amount"),
        ({}, "unit_amount"),
    ],
)
def test_amount_refusals(
    client: stripe.StripeClient, product: stripe.Product, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(params={"product": product.id, "currency": "usd", **extra})
    assert caught.value.http_status == 400
    assert caught.value.param == param


def test_tiered_price_tiers_only_when_expanded(
    client: stripe.StripeClient, product: stripe.Product, meter: stripe.billing.Meter
) -> None:
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 1000, "unit_amount_decimal": "0.5", "flat_amount": 100},
                {"up_to": "inf", "unit_amount_decimal": "0.25"},
            ],
            "recurring": _metered(meter.id),
        }
    )
    assert "tiers" not in price
    assert price.tiers_mode == "graduated"
    expanded = client.v1.prices.retrieve(price.id, params={"expand": ["tiers"]})
    assert [tier.up_to for tier in expanded.tiers] == [1000, None]
    assert str(expanded.tiers[0].unit_amount_decimal) == "0.5"
    assert expanded.tiers[0].flat_amount == 100
    listed = client.v1.prices.list(params={"product": product.id, "expand": ["data.tiers"]})
    assert [len(p.tiers) for p in listed.data] == [2]
    plain = client.v1.prices.list(params={"product": product.id})
    assert "tiers" not in plain.data[0]


def test_tiers_must_end_with_inf(
    client: stripe.StripeClient, product: stripe.Product, meter: stripe.billing.Meter
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "billing_scheme": "tiered",
                "tiers_mode": "volume",
                "tiers": [{"up_to": 10, "unit_amount": 5}, {"up_to": 20, "unit_amount": 4}],
                "recurring": _metered(meter.id),
            }
        )
    assert caught.value.param == "tiers[1][up_to]"


def test_expand_product_on_list_and_retrieve(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 10}
    )
    single = client.v1.prices.retrieve(price.id, params={"expand": ["product"]})
    assert single.product.id == product.id
    assert single.product.name == product.name
    listed = client.v1.prices.list(params={"product": product.id, "expand": ["data.product"]})
    assert listed.data[0].product.object == "product"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.retrieve(price.id, params={"expand": ["nickname"]})


def test_product_data_and_transform_quantity(client: stripe.StripeClient, uid: str) -> None:
    price = client.v1.prices.create(
        params={
            "product_data": {"name": f"Packs {uid}"},
            "currency": "usd",
            "unit_amount": 100,
            "transform_quantity": {"divide_by": 1000, "round": "up"},
            "recurring": {"interval": "year", "interval_count": 1},
        }
    )
    assert price.transform_quantity.divide_by == 1000
    assert price.transform_quantity.round == "up"
    assert client.v1.products.retrieve(str(price.product)).name == f"Packs {uid}"


def test_update_refuses_immutable_fields(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 10}
    )
    for field, value in (("unit_amount", 20), ("currency", "eur"), ("product", product.id)):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.prices.update(price.id, params={field: value})  # type: ignore[misc]
        assert (caught.value.code, caught.value.param, caught.value.http_status) == (
            "parameter_unknown",
            field,
            400,
        )
    updated = client.v1.prices.update(
        price.id, params={"nickname": "n", "metadata": {"a": "b"}, "tax_behavior": "inclusive"}
    )
    assert (updated.nickname, updated.metadata.to_dict(), updated.tax_behavior) == (
        "n",
        {"a": "b"},
        "inclusive",
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(price.id, params={"tax_behavior": "exclusive"})
    assert caught.value.param == "tax_behavior"


def test_missing_and_unknown_parameters(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(params={"product": product.id, "unit_amount": 1})  # type: ignore[typeddict-item]
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "currency")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.raw_request(
            "post", "/v1/prices", product=product.id, currency="usd", unit_amount=1, colour="red"
        )
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")


def test_archiving_the_default_price_is_refused(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(
        params={"name": "D", "default_price_data": {"currency": "usd", "unit_amount": 1}}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(str(product.default_price), params={"active": False})
    assert caught.value.param == "active"
    replacement = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 2}
    )
    client.v1.products.update(product.id, params={"default_price": replacement.id})
    archived = client.v1.prices.update(str(product.default_price), params={"active": False})
    assert archived.active is False


def test_lookup_key_clash_and_transfer(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    key = f"seat_{uid}"
    first = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 1, "lookup_key": key}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(
            params={"product": product.id, "currency": "usd", "unit_amount": 2, "lookup_key": key}
        )
    assert caught.value.param == "lookup_key"
    second = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 2,
            "lookup_key": key,
            "transfer_lookup_key": True,
        }
    )
    assert second.lookup_key == key
    assert client.v1.prices.retrieve(first.id).lookup_key is None
    found = client.v1.prices.list(params={"lookup_keys": [key]})
    assert [p.id for p in found.data] == [second.id]
    back = client.v1.prices.update(
        first.id, params={"lookup_key": key, "transfer_lookup_key": True}
    )
    assert back.lookup_key == key
    assert client.v1.prices.retrieve(second.id).lookup_key is None


def test_lookup_keys_list_includes_archived_unless_active(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    keys = [f"k{i}_{uid}" for i in range(3)]
    prices = [
        client.v1.prices.create(
            params={"product": product.id, "currency": "usd", "unit_amount": i, "lookup_key": k}
        )
        for i, k in enumerate(keys)
    ]
    client.v1.prices.update(prices[0].id, params={"active": False})
    every = client.v1.prices.list(params={"lookup_keys": keys})
    assert {p.id for p in every.data} == {p.id for p in prices}
    active = client.v1.prices.list(params={"lookup_keys": keys, "active": True})
    assert {p.id for p in active.data} == {prices[1].id, prices[2].id}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.list(params={"lookup_keys": [f"x{i}" for i in range(11)]})
    assert caught.value.param == "lookup_keys"


def test_list_filters(
    client: stripe.StripeClient, product: stripe.Product, meter: stripe.billing.Meter
) -> None:
    one_time = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 1}
    )
    metered = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1,
            "recurring": _metered(meter.id),
        }
    )
    licensed = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 1,
            "recurring": {"interval": "month"},
        }
    )

    def ids(**filters: object) -> list[str]:
        params = {"product": product.id, **filters}
        return [p.id for p in client.v1.prices.list(params=params).data]  # type: ignore[arg-type]

    assert ids() == [licensed.id, metered.id, one_time.id]
    assert ids(type="one_time") == [one_time.id]
    assert ids(type="recurring") == [licensed.id, metered.id]
    assert ids(currency="eur") == [licensed.id]
    assert ids(recurring={"usage_type": "metered"}) == [metered.id]
    assert ids(recurring={"meter": meter.id}) == [metered.id]


# --- the legacy version gate ----------------------------------------------------------------
def test_meterless_metered_price_refused_on_current_version(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
    assert caught.value.http_status == 400
    assert caught.value.param == "recurring[meter]"


def test_aggregate_usage_is_unknown_on_current_version(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.raw_request(
            "post",
            "/v1/prices",
            product=product.id,
            currency="usd",
            unit_amount=1,
            recurring={"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
        )
    assert (caught.value.code, caught.value.param) == (
        "parameter_unknown",
        "recurring[aggregate_usage]",
    )


def test_legacy_version_accepts_meterless_metered_prices(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 3,
            "recurring": {"interval": "month", "usage_type": "metered"},
        },
        options={"stripe_version": LEGACY},
    )
    assert price.recurring.meter is None
    assert price.recurring.aggregate_usage == "sum"
    response = client.raw_request(
        "post",
        "/v1/prices",
        product=product.id,
        currency="usd",
        unit_amount=3,
        recurring={"interval": "month", "usage_type": "metered", "aggregate_usage": "max"},
        stripe_version=LEGACY,
    )
    legacy = client.deserialize(response, api_mode="V1")
    assert legacy.recurring.aggregate_usage == "max"  # type: ignore[attr-defined]
    current = client.v1.prices.retrieve(price.id)
    assert "aggregate_usage" not in current.recurring
    old_view = client.v1.prices.retrieve(price.id, options={"stripe_version": LEGACY})
    assert old_view.recurring.aggregate_usage == "sum"


def test_metered_price_needs_an_active_meter(
    client: stripe.StripeClient, product: stripe.Product, meter: stripe.billing.Meter
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": 1,
                "recurring": _metered("mtr_nope"),
            }
        )
    assert (missing.value.code, missing.value.param) == ("resource_missing", "recurring[meter]")
    client.v1.billing.meters.deactivate(meter.id)
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": 1,
                "recurring": _metered(meter.id),
            }
        )
    assert inactive.value.param == "recurring[meter]"


# --- paging -------------------------------------------------------------------------------------
def test_paging_over_many_objects(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    created = [client.v1.products.create(params={"name": f"P{i}"}).id for i in range(260)]
    seen = [p.id for p in client.v1.products.list(params={"limit": 100}).auto_paging_iter()]
    assert len(seen) == len(set(seen)) == 260
    assert seen == list(reversed(created))
    manual: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, object] = {"limit": 37}
        if after:
            params["starting_after"] = after
        page = client.v1.products.list(params=params)  # type: ignore[arg-type]
        manual.extend(p.id for p in page.data)
        if not page.has_more:
            break
        after = page.data[-1].id
    assert manual == seen
    before = client.v1.products.list(params={"ending_before": seen[50], "limit": 20})
    assert [p.id for p in before.data] == seen[30:50]
    assert before.has_more is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.list(params={"limit": 101})
    assert caught.value.param == "limit"
