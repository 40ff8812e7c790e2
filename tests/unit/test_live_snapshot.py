"""Reading the account: two objects under one identity, and which one the snapshot keeps.

Stripe lets an account hold two meters with one event name (one deactivated,
then a new one made) and, over time, prices that carried the same lookup key.
The snapshot keeps one per identity: the active one, then the newest, then the
greater id; the others are not the declared object and are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest

from reconciler.errors import StripeCallError
from reconciler.live import _with_unfinished_schedules, list_objects, snapshot_from_objects
from reconciler.live_subscriptions import (
    LiveSchedule,
    LiveSubscription,
)
from reconciler.model import Coupon, Desired, Feature, Product
from reconciler.plan import IDEMPOTENCY_PREFIX
from reconciler.snapshot import LiveObject, Snapshot

MANAGED = {"managed_by": "stripe-reconcile"}


def meter(meter_id: str, event_name: str, *, created: int, active: bool = True) -> dict[str, Any]:
    return {
        "id": meter_id,
        "object": "billing.meter",
        "event_name": event_name,
        "display_name": f"Meter {meter_id}",
        "default_aggregation": {"formula": "sum"},
        "status": "active" if active else "inactive",
        "created": created,
    }


def price(
    price_id: str,
    lookup_key: str | None,
    *,
    created: int,
    active: bool = True,
    meter_id: str | None = None,
    amount: int = 100,
) -> dict[str, Any]:
    recurring = None
    if meter_id is not None:
        recurring = {"interval": "month", "usage_type": "metered", "meter": meter_id}
    return {
        "id": price_id,
        "object": "price",
        "lookup_key": lookup_key,
        "product": "prod_video",
        "currency": "usd",
        "unit_amount": amount,
        "billing_scheme": "per_unit",
        "recurring": recurring,
        "active": active,
        "metadata": dict(MANAGED),
        "created": created,
    }


def snapshot(
    *, meters: Sequence[dict[str, Any]] = (), prices: Sequence[dict[str, Any]] = ()
) -> Snapshot:
    return snapshot_from_objects(products=[], meters=meters, prices=prices, alerts=[])


# --- prices sharing a lookup key ------------------------------------------------------------


def test_the_active_price_wins_over_a_newer_archived_one() -> None:
    prices = [
        price("price_old_active", "video", created=100),
        price("price_new_archived", "video", created=200, active=False),
    ]
    for order in (prices, prices[::-1]):  # whatever order the list arrives in
        found = snapshot(prices=order)
        assert found.prices["video"].stripe_id == "price_old_active"
        assert found.prices["video"].active is True


def test_of_two_active_prices_the_newest_wins() -> None:
    prices = [
        price("price_b_older", "video", created=100, amount=100),
        price("price_a_newer", "video", created=300, amount=250),
    ]
    for order in (prices, prices[::-1]):
        kept = snapshot(prices=order).prices["video"]
        assert kept.stripe_id == "price_a_newer"
        assert kept.essence["unit_amount"] == "250"


def test_of_two_archived_prices_the_newest_wins() -> None:
    prices = [
        price("price_first", "video", created=100, active=False),
        price("price_second", "video", created=200, active=False),
    ]
    for order in (prices, prices[::-1]):
        assert snapshot(prices=order).prices["video"].stripe_id == "price_second"


def test_same_age_falls_back_to_the_greater_id() -> None:
    prices = [price("price_1A", "video", created=100), price("price_1B", "video", created=100)]
    for order in (prices, prices[::-1]):
        assert snapshot(prices=order).prices["video"].stripe_id == "price_1B"


def test_the_losing_price_is_neither_anonymous_nor_an_orphan() -> None:
    found = snapshot(
        prices=[
            price("price_kept", "video", created=200),
            price("price_shadowed", "video", created=100),
        ]
    )
    assert found.anonymous_prices == ()
    assert found.orphan_prices == ()
    assert "price_shadowed" not in found.unkeyed


# --- meters sharing an event name -----------------------------------------------------------


def test_the_active_meter_wins_over_a_newer_inactive_one() -> None:
    meters = [
        meter("mtr_active", "video_seconds", created=100),
        meter("mtr_newer_inactive", "video_seconds", created=200, active=False),
    ]
    for order in (meters, meters[::-1]):
        kept = snapshot(meters=order).meters["video_seconds"]
        assert kept.stripe_id == "mtr_active"
        assert kept.essence["active"] is True


def test_of_two_inactive_meters_the_newest_wins() -> None:
    meters = [
        meter("mtr_first", "video_seconds", created=100, active=False),
        meter("mtr_second", "video_seconds", created=200, active=False),
    ]
    for order in (meters, meters[::-1]):
        kept = snapshot(meters=order).meters["video_seconds"]
        assert kept.stripe_id == "mtr_second"
        assert kept.essence["active"] is False


def test_a_price_on_the_losing_meter_keeps_that_meters_id() -> None:
    """Only the kept meter is named by the event name: a price still billing the other
    one shows its id, so the plan sees it is on the wrong meter."""
    found = snapshot(
        meters=[
            meter("mtr_current", "video_seconds", created=200),
            meter("mtr_retired", "video_seconds", created=100, active=False),
        ],
        prices=[
            price("price_on_current", "current", created=1, meter_id="mtr_current"),
            price("price_on_retired", "retired", created=1, meter_id="mtr_retired"),
        ],
    )
    assert found.prices["current"].essence["recurring"]["meter"] == "video_seconds"
    assert found.prices["retired"].essence["recurring"]["meter"] == "mtr_retired"


class _ListingGateway:
    """A gateway whose entitlement features list fails with ``status`` (others are empty)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.paths: list[str] = []

    def list_all(self, path: str, params: object = None) -> Iterator[dict[str, object]]:
        self.paths.append(path)
        if path == "/v1/entitlements/features":
            raise StripeCallError("refused", method="GET", path=path, http_status=self.status)
        yield from ()


@pytest.mark.parametrize("status", [403, 404])
def test_import_reads_an_add_on_kind_only_where_the_key_can(status: int) -> None:
    gateway = _ListingGateway(status)
    listed = list_objects(gateway, every_kind=True)  # type: ignore[arg-type]
    assert {section: list(objects) for section, objects in listed.items()}["features"] == []


def test_an_add_on_kind_failing_otherwise_is_an_error() -> None:
    listed = list_objects(_ListingGateway(500), every_kind=True)  # type: ignore[arg-type]
    with pytest.raises(StripeCallError):
        list(listed["features"])


def test_an_add_on_kind_is_listed_only_when_billing_yaml_declares_one() -> None:
    none = list_objects(_ListingGateway(403), Desired(mode="test"))  # type: ignore[arg-type]
    assert "features" not in none
    declared = Desired(mode="test", features=(Feature(lookup_key="sso", name="SSO"),))
    some = list_objects(_ListingGateway(403), declared)  # type: ignore[arg-type]
    assert "features" in some


class _EventsGateway:
    """Serves ``subscription_schedule.created`` events, newest first, counting those read."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.read = 0

    def list_all(self, path: str, params: object = None) -> Iterator[dict[str, Any]]:
        assert path == "/v1/events"
        for event in self.events:
            self.read += 1
            yield event


def _created(schedule: str, key: str) -> dict[str, Any]:
    return {"data": {"object": {"id": schedule}}, "request": {"idempotency_key": key}}


def _on_unlabelled(schedule: str) -> LiveSubscription:
    return LiveSubscription(
        id=f"sub_{schedule}",
        customer="cus_1",
        status="active",
        schedule=LiveSchedule(schedule, "active"),
    )


def test_the_events_read_stops_once_every_unlabelled_schedule_is_seen() -> None:
    events = [_created(f"sub_sched_{n}", "other") for n in range(1000)]
    events[5] = _created("sub_sched_ours", f"{IDEMPOTENCY_PREFIX}abc")
    events[150] = _created("sub_sched_foreign", "dashboard")
    gateway = _EventsGateway(events)
    subscriptions = (_on_unlabelled("sub_sched_ours"), _on_unlabelled("sub_sched_foreign"))
    found = _with_unfinished_schedules(gateway, subscriptions)  # type: ignore[arg-type]
    assert [s.schedule.begun for s in found if s.schedule is not None] == [True, False]
    assert gateway.read == 151  # not the 1,000 events of the last 30 days


def test_an_unlabelled_schedule_older_than_the_events_reads_them_all() -> None:
    gateway = _EventsGateway([_created(f"sub_sched_{n}", "other") for n in range(300)])
    found = _with_unfinished_schedules(  # type: ignore[arg-type]
        gateway, (_on_unlabelled("sub_sched_ancient"),)
    )
    assert found[0].schedule is not None and not found[0].schedule.begun
    assert gateway.read == 300


class _Account:
    """A gateway whose lists answer from ``pages`` by path; a path mapped to a status fails
    with it, an unknown one is empty. Records each path listed."""

    def __init__(self, pages: dict[str, list[dict[str, object]] | int]) -> None:
        self.pages = pages
        self.paths: list[str] = []

    def list_all(self, path: str, params: object = None) -> Iterator[dict[str, object]]:
        self.paths.append(path)
        found = self.pages.get(path, [])
        if isinstance(found, int):
            raise StripeCallError("refused", method="GET", path=path, http_status=found)
        yield from found


HD = {"id": "feat_hd", "object": "entitlements.feature", "lookup_key": "hd_export", "active": True}


def _attachment(attachment_id: str, feature: dict[str, object]) -> dict[str, object]:
    return {"id": attachment_id, "object": "product_feature", "entitlement_feature": feature}


def test_attached_features_are_listed_per_product_that_declares_them() -> None:
    declared = Desired(
        mode="test",
        products=(
            Product(id="prod_video", name="Video", features=("hd_export",)),
            Product(id="prod_new", name="New", features=()),
            Product(id="prod_team", name="Team"),
        ),
        features=(Feature(lookup_key="hd_export", name="HD"),),
    )
    account = _Account(
        {
            "/v1/entitlements/features": [HD],
            "/v1/products/prod_video/features": [_attachment("pf_1", HD)],
            "/v1/products/prod_new/features": 404,  # not made yet: nothing attached
        }
    )
    listed = list_objects(account, declared)  # type: ignore[arg-type]
    snapshot = snapshot_from_objects(**listed)
    assert [p for p in account.paths if p.startswith("/v1/products/")] == [
        "/v1/products/prod_video/features",
        "/v1/products/prod_new/features",
    ]
    assert dict(snapshot.product_features) == {
        "prod_video/hd_export": LiveObject(
            "pf_1", {"product": "prod_video", "feature": "hd_export", "attached": True}
        )
    }


def test_no_product_declaring_features_reads_none() -> None:
    account = _Account({})
    plain = Desired(mode="test", products=(Product(id="prod_team", name="Team"),))
    assert "product_features" not in list_objects(account, plain)  # type: ignore[arg-type]
    assert account.paths == []  # lists are read as consumed: nothing asked yet either


def test_an_attachment_whose_feature_is_not_active_is_named_by_its_id() -> None:
    archived = {**HD, "id": "feat_old", "active": False}
    found = snapshot_from_objects(
        features=[HD],
        product_features=[
            {**_attachment("pf_1", HD), "product": "prod_video"},
            {**_attachment("pf_2", archived), "product": "prod_video"},
            {**_attachment("pf_3", "feat_hd"), "product": "prod_team"},  # an id, unexpanded
        ],
    )
    assert sorted(found.product_features) == [
        "prod_team/hd_export",
        "prod_video/feat_old",
        "prod_video/hd_export",
    ]


def test_a_product_list_failing_for_another_reason_is_an_error() -> None:
    declared = Desired(
        mode="test",
        products=(Product(id="prod_video", name="Video", features=()),),
    )
    listed = list_objects(  # type: ignore[arg-type]
        _Account({"/v1/products/prod_video/features": 500}), declared
    )
    with pytest.raises(StripeCallError):
        list(listed["product_features"])


def test_import_reads_every_products_attachments_and_skips_a_product_gone() -> None:
    account = _Account(
        {
            "/v1/products": [{"id": "prod_a"}, {"id": "prod_b"}, {"id": "prod_c"}],
            "/v1/products/prod_a/features": [_attachment("pf_1", HD)],
            "/v1/products/prod_b/features": 404,  # deleted since the product list
            "/v1/products/prod_c/features": [_attachment("pf_3", HD)],
        }
    )
    listed = list_objects(account, every_kind=True)  # type: ignore[arg-type]
    found = [(a["product"], a["id"]) for a in listed["product_features"]]
    assert found == [("prod_a", "pf_1"), ("prod_c", "pf_3")]


def test_import_with_a_key_that_may_not_read_entitlements_writes_no_attachments() -> None:
    account = _Account(
        {
            "/v1/products": [{"id": "prod_a"}, {"id": "prod_b"}],
            "/v1/products/prod_a/features": 403,
            "/v1/products/prod_b/features": 403,
        }
    )
    listed = list_objects(account, every_kind=True)  # type: ignore[arg-type]
    assert list(listed["product_features"]) == []


class _RecordingGateway:
    """A gateway that lists nothing and records what it was asked to list."""

    def __init__(self) -> None:
        self.asked: dict[str, object] = {}

    def list_all(self, path: str, params: object = None) -> Iterator[dict[str, object]]:
        self.asked[path] = params
        yield from ()


def test_coupons_are_listed_with_their_includable_fields_only_when_declared() -> None:
    gateway = _RecordingGateway()
    declared = Desired(mode="test", coupons=(Coupon(id="SPRING25", percent_off=Decimal(25)),))
    for objects in list_objects(gateway, declared).values():  # type: ignore[arg-type]
        list(objects)
    assert gateway.asked["/v1/coupons"] == {"expand": ["data.applies_to", "data.currency_options"]}
    assert "/v1/promotion_codes" not in gateway.asked  # none declared: not read


def test_a_promotion_code_reads_as_its_active_object_whatever_the_case() -> None:
    def code(code_id: str, text: str, active: bool, created: int) -> dict[str, Any]:
        return {
            "id": code_id,
            "code": text,
            "active": active,
            "created": created,
            "promotion": {"type": "coupon", "coupon": "SPRING25"},
            "restrictions": {},
            "metadata": {},
        }

    found = snapshot_from_objects(
        promotion_codes=[
            code("promo_old", "SPRING", False, 1),
            code("promo_new", "spring", True, 2),
            code("promo_newest", "Spring", False, 3),
        ]
    )
    assert list(found.promotion_codes) == ["spring"]
    assert found.promotion_codes["spring"].stripe_id == "promo_new"
    assert found.promotion_codes["spring"].essence["code"] == "spring"
