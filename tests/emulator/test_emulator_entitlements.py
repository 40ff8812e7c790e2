"""Entitlement features and product features through the real stripe SDK (contract tests)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import stripe

from reconciler.emulator import Emulator


def _feature(client: stripe.StripeClient, key: str, **extra: Any) -> stripe.entitlements.Feature:
    params: dict[str, Any] = {"lookup_key": key, "name": f"Feature {key}", **extra}
    return client.v1.entitlements.features.create(params=cast(Any, params))


def _refusal(caught: pytest.ExceptionInfo[stripe.InvalidRequestError]) -> tuple[Any, ...]:
    error = caught.value
    return error.http_status, error.code, error.param


# --- features -----------------------------------------------------------------------------------
def test_feature_create_retrieve_update(client: stripe.StripeClient, uid: str) -> None:
    feature = _feature(client, f"seats_{uid}", metadata={"managed_by": "stripe-reconcile"})
    assert feature.object == "entitlements.feature"
    assert feature.id.startswith("feat_")
    assert (feature.lookup_key, feature.active, feature.livemode) == (f"seats_{uid}", True, False)
    assert feature.metadata.to_dict() == {"managed_by": "stripe-reconcile"}
    fetched = client.v1.entitlements.features.retrieve(feature.id)
    assert fetched.name == f"Feature seats_{uid}"
    updated = client.v1.entitlements.features.update(
        feature.id, params={"name": "Seats", "metadata": {"managed_by": "", "tier": "gold"}}
    )
    assert (updated.name, updated.metadata.to_dict()) == ("Seats", {"tier": "gold"})
    assert updated.lookup_key == f"seats_{uid}"


def test_feature_lookup_key_is_fixed(client: stripe.StripeClient, uid: str) -> None:
    feature = _feature(client, f"fixed_{uid}")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.entitlements.features.update(
            feature.id,
            params={"lookup_key": f"other_{uid}"},  # type: ignore[arg-type]
        )
    assert _refusal(caught) == (400, "parameter_unknown", "lookup_key")


def test_feature_lookup_key_unique_among_active(client: stripe.StripeClient, uid: str) -> None:
    key = f"unique_{uid}"
    first = _feature(client, key)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _feature(client, key)
    assert caught.value.http_status == 400
    assert caught.value.param == "lookup_key"
    archived = client.v1.entitlements.features.update(first.id, params={"active": False})
    assert archived.active is False
    second = _feature(client, key)
    assert second.id != first.id
    assert second.active is True


def test_feature_required_and_length_limits(client: stripe.StripeClient, uid: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.entitlements.features.create(params={"name": "No key"})  # type: ignore[typeddict-item]
    assert _refusal(missing) == (400, "parameter_missing", "lookup_key")
    with pytest.raises(stripe.InvalidRequestError) as long_key:
        _feature(client, f"k{uid}" + "x" * 80)
    assert long_key.value.param == "lookup_key"


def test_archived_features_listed_only_when_asked(client: stripe.StripeClient, uid: str) -> None:
    live = _feature(client, f"live_{uid}")
    gone = _feature(client, f"gone_{uid}")
    client.v1.entitlements.features.update(gone.id, params={"active": False})

    def ids(**filters: Any) -> list[str]:
        page = client.v1.entitlements.features.list(params=filters)  # type: ignore[arg-type]
        return [f.id for f in page.data]

    assert ids(lookup_key=f"live_{uid}") == [live.id]
    assert ids(lookup_key=f"gone_{uid}") == []
    assert ids(lookup_key=f"gone_{uid}", archived=True) == [gone.id]
    assert ids(lookup_key=f"live_{uid}", archived=True) == []
    assert ids(lookup_key=f"live_{uid}", archived=False) == [live.id]


def test_archived_feature_is_final(client: stripe.StripeClient, uid: str) -> None:
    feature = _feature(client, f"final_{uid}")
    client.v1.entitlements.features.update(feature.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.entitlements.features.update(feature.id, params={"active": True})
    assert (caught.value.http_status, caught.value.param) == (400, "active")
    with pytest.raises(stripe.InvalidRequestError) as renamed:
        client.v1.entitlements.features.update(feature.id, params={"name": "Renamed"})
    assert (renamed.value.http_status, renamed.value.param) == (400, "name")
    assert client.v1.entitlements.features.retrieve(feature.id).active is False


def test_archiving_twice_changes_nothing(emu: Emulator, uid: str) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    feature = _feature(client, f"twice_{uid}")
    client.v1.entitlements.features.update(feature.id, params={"active": False})
    again = client.v1.entitlements.features.update(feature.id, params={"active": False})
    assert again.active is False


def test_unknown_feature_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.entitlements.features.retrieve("feat_test_nope")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_feature_list_pages(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    created = [_feature(client, f"page_{i}").id for i in range(7)]
    first = client.v1.entitlements.features.list(params={"limit": 3})
    assert [f.id for f in first.data] == created[::-1][:3]
    assert first.has_more is True
    seen = [
        f.id for f in client.v1.entitlements.features.list(params={"limit": 3}).auto_paging_iter()
    ]
    assert seen == created[::-1]
    before = client.v1.entitlements.features.list(params={"ending_before": created[2], "limit": 2})
    assert [f.id for f in before.data] == [created[4], created[3]]


# --- product features ---------------------------------------------------------------------------
def test_attach_list_retrieve_detach(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    seats = _feature(client, f"pf_seats_{uid}")
    api = _feature(client, f"pf_api_{uid}")
    first = client.v1.products.features.create(product.id, params={"entitlement_feature": seats.id})
    assert first.object == "product_feature"
    assert first.id.startswith("prodft_")
    assert first.entitlement_feature.id == seats.id
    assert first.entitlement_feature.lookup_key == f"pf_seats_{uid}"
    assert "product" not in first
    second = client.v1.products.features.create(product.id, params={"entitlement_feature": api.id})
    listed = client.v1.products.features.list(product.id)
    assert [pf.id for pf in listed.data] == [second.id, first.id]
    assert client.v1.products.features.retrieve(product.id, first.id).id == first.id
    page = client.v1.products.features.list(product.id, params={"limit": 1})
    assert ([pf.id for pf in page.data], page.has_more) == ([second.id], True)
    after = client.v1.products.features.list(
        product.id, params={"limit": 1, "starting_after": second.id}
    )
    assert [pf.id for pf in after.data] == [first.id]
    gone = client.v1.products.features.delete(product.id, first.id)
    assert (gone.id, gone.deleted, gone.object) == (first.id, True, "product_feature")
    assert [pf.id for pf in client.v1.products.features.list(product.id).data] == [second.id]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.features.retrieve(product.id, first.id)
    assert missing.value.http_status == 404


def test_attach_shows_the_features_current_state(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    feature = _feature(client, f"pf_now_{uid}")
    attached = client.v1.products.features.create(
        product.id, params={"entitlement_feature": feature.id}
    )
    client.v1.entitlements.features.update(feature.id, params={"name": "Renamed"})
    again = client.v1.products.features.retrieve(product.id, attached.id)
    assert again.entitlement_feature.name == "Renamed"


def test_attach_refusals(client: stripe.StripeClient, product: stripe.Product, uid: str) -> None:
    feature = _feature(client, f"pf_twice_{uid}")
    client.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    assert (twice.value.http_status, twice.value.param) == (400, "entitlement_feature")
    archived = _feature(client, f"pf_archived_{uid}")
    client.v1.entitlements.features.update(archived.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        client.v1.products.features.create(product.id, params={"entitlement_feature": archived.id})
    assert (inactive.value.http_status, inactive.value.param) == (400, "entitlement_feature")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.products.features.create(
            product.id, params={"entitlement_feature": "feat_test_nope"}
        )
    assert _refusal(unknown) == (400, "resource_missing", "entitlement_feature")
    with pytest.raises(stripe.InvalidRequestError) as no_product:
        client.v1.products.features.create(
            f"prod_missing_{uid}", params={"entitlement_feature": feature.id}
        )
    assert no_product.value.http_status == 404


def test_same_feature_on_two_products(client: stripe.StripeClient, uid: str) -> None:
    feature = _feature(client, f"pf_shared_{uid}")
    one = client.v1.products.create(params={"name": f"One {uid}"})
    two = client.v1.products.create(params={"name": f"Two {uid}"})
    a = client.v1.products.features.create(one.id, params={"entitlement_feature": feature.id})
    b = client.v1.products.features.create(two.id, params={"entitlement_feature": feature.id})
    assert a.id != b.id
    with pytest.raises(stripe.InvalidRequestError) as foreign:
        client.v1.products.features.retrieve(two.id, a.id)
    assert foreign.value.http_status == 404


def test_product_features_take_no_update(emu: Emulator, uid: str) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "P"})
    feature = _feature(client, f"noupd_{uid}")
    attached = client.v1.products.features.create(
        product.id, params={"entitlement_feature": feature.id}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.raw_request("post", f"/v1/products/{product.id}/features/{attached.id}")
    assert caught.value.http_status == 404


def test_features_emit_no_events(emu: Emulator, uid: str) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Evented"})
    before = {e.id for e in client.v1.events.list(params={"limit": 100}).data}
    feature = _feature(client, f"ev_{uid}")
    client.v1.entitlements.features.update(feature.id, params={"name": "x"})
    client.v1.products.features.create(product.id, params={"entitlement_feature": feature.id})
    after = [e for e in client.v1.events.list(params={"limit": 100}).data if e.id not in before]
    assert after == []
