"""Idempotency, rate limiting, fault injection and SQLite persistence."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import stripe
from emulator_helpers import control_request, make_client

from reconciler.emulator import Emulator


# --- idempotency --------------------------------------------------------------------------
def test_idempotent_replay_returns_the_first_response(emu: Emulator) -> None:
    client = make_client(emu.url)
    options: stripe.RequestOptions = {"idempotency_key": "create-video-product"}
    first = client.v1.products.create(params={"name": "Video"}, options=options)
    again = client.v1.products.create(params={"name": "Video"}, options=options)
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [p.id for p in client.v1.products.list().data] == [first.id]
    stats = emu.stats()
    assert stats["objects"] == {"product": 1}
    assert stats["idempotent_replays"] == 1


def test_idempotency_key_with_other_parameters_is_refused(emu: Emulator) -> None:
    client = make_client(emu.url)
    options: stripe.RequestOptions = {"idempotency_key": "k1"}
    client.v1.products.create(params={"name": "One"}, options=options)
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.products.create(params={"name": "Two"}, options=options)
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"


def test_idempotent_errors_replay_too_but_validation_errors_do_not(emu: Emulator) -> None:
    client = make_client(emu.url)
    client.v1.products.create(params={"id": "prod_taken", "name": "A"})
    options: stripe.RequestOptions = {"idempotency_key": "dup"}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.products.create(params={"id": "prod_taken", "name": "A"}, options=options)
        assert caught.value.code == "resource_already_exists"
    assert emu.stats()["idempotent_replays"] == 1
    retry: stripe.RequestOptions = {"idempotency_key": "retry-after-fix"}
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("post", "/v1/products", name="B", colour="x", idempotency_key="v")
    product = client.v1.products.create(params={"name": "B"}, options=retry)
    assert product.name == "B"


def test_idempotency_keys_are_scoped_per_api_key(emu: Emulator) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "shared"}
    one = make_client(emu.url, key="sk_test_one").v1.products.create(
        params={"name": "X"}, options=options
    )
    two = make_client(emu.url, key="sk_test_two").v1.products.create(
        params={"name": "X"}, options=options
    )
    assert one.id != two.id


# --- rate limit ---------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_header() -> None:
    with Emulator(port=0, rate_limit=3) as emulator:
        client = make_client(emulator.url)
        errors: list[stripe.RateLimitError] = []
        for _ in range(10):
            try:
                client.v1.products.list()
            except stripe.RateLimitError as error:
                errors.append(error)
        assert errors, "a burst of 10 requests at 3/s must be limited"
        error = errors[0]
        assert error.http_status == 429
        assert error.json_body["error"]["type"] == "rate_limit_error"
        assert error.json_body["error"]["code"] == "rate_limit"
        assert error.headers["Stripe-Should-Retry"] == "true"
        assert emulator.stats()["by_status"]["429"] == len(errors)


# --- faults -------------------------------------------------------------------------------
def test_fault_500_writes_nothing(emu: Emulator) -> None:
    emu.set_faults("500=1")
    client = make_client(emu.url)
    with pytest.raises(stripe.APIError) as caught:
        client.v1.products.create(params={"id": "prod_f500", "name": "F"})
    assert caught.value.http_status == 500
    emu.set_faults(None)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve("prod_f500")


def test_fault_429(emu: Emulator) -> None:
    emu.set_faults("429=1")
    with pytest.raises(stripe.RateLimitError) as caught:
        make_client(emu.url).v1.products.list()
    assert caught.value.http_status == 429


def test_fault_reset_drops_the_connection_before_the_write(emu: Emulator) -> None:
    emu.set_faults("reset=1")
    client = make_client(emu.url)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.products.create(params={"id": "prod_reset", "name": "R"})
    emu.set_faults(None)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve("prod_reset")


def test_fault_lost_commits_but_the_client_sees_an_error(emu: Emulator) -> None:
    emu.set_faults("lost=1")
    client = make_client(emu.url)
    options: stripe.RequestOptions = {"idempotency_key": "lost-one"}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.products.create(params={"id": "prod_lost", "name": "L"}, options=options)
    emu.set_faults(None)
    assert client.v1.products.retrieve("prod_lost").name == "L"
    replay = client.v1.products.create(params={"id": "prod_lost", "name": "L"}, options=options)
    assert replay.id == "prod_lost"


def test_fault_latency_delays_without_failing(emu: Emulator) -> None:
    emu.set_faults("latency=1:0.05")
    product = make_client(emu.url).v1.products.create(params={"name": "Slow"})
    assert product.name == "Slow"
    entry = emu.stats()["log"][-1]
    assert (entry["delay"], entry["status"], entry["fault"]) == (0.05, 200, None)
    assert entry["ms"] >= 50


def test_faults_are_deterministic_per_seed_and_settable_at_runtime(emu: Emulator) -> None:
    def run() -> list[object]:
        request = control_request(
            emu.url + "/_emulator/faults",
            "POST",
            json.dumps({"spec": "seed=11,500=0.3,429=0.2"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["faults"]["seed"] == 11
        client = make_client(emu.url)
        outcomes: list[object] = []
        for _ in range(30):
            try:
                client.v1.billing.meters.list()
                outcomes.append(200)
            except stripe.StripeError as error:
                outcomes.append(error.http_status)
        return outcomes

    first = run()
    second = run()
    assert first == second
    assert {200, 500, 429} <= set(first)
    request = control_request(emu.url + "/_emulator/faults", "POST", b"{}")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"faults": None}


def test_side_endpoints_are_never_faulted(emu: Emulator) -> None:
    emu.set_faults("reset=1")
    with urllib.request.urlopen(
        control_request(emu.url + "/_emulator/stats"), timeout=5
    ) as response:
        assert response.status == 200


# --- persistence --------------------------------------------------------------------------
def test_sqlite_restart_keeps_state(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with Emulator(port=0, db_path=db) as first:
        client = make_client(first.url)
        meter = client.v1.billing.meters.create(
            params={
                "display_name": "P",
                "event_name": "p",
                "default_aggregation": {"formula": "sum"},
            }
        )
        product = client.v1.products.create(
            params={"id": "prod_kept", "name": "Kept"}, options={"idempotency_key": "mk-product"}
        )
        price = client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount_decimal": "0.25",
                "lookup_key": "kept",
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            }
        )
        client.v1.products.update(
            product.id, params={"default_price": price.id, "metadata": {"v": "2"}}
        )
        customer = client.v1.customers.create(params={"name": "C"})
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_700_000_000})
        alert = client.v1.billing.alerts.create(
            params={
                "alert_type": "usage_threshold",
                "title": "A",
                "usage_threshold": {"gte": 5, "meter": meter.id, "recurrence": "one_time"},
            }
        )
        client.v1.billing.alerts.archive(alert.id)
        others = [client.v1.products.create(params={"name": f"O{i}"}).id for i in range(3)]
    with Emulator(port=0, db_path=db) as second:
        client = make_client(second.url)
        kept = client.v1.products.retrieve("prod_kept")
        assert kept.default_price == price.id
        assert kept.metadata.to_dict() == {"v": "2"}
        assert client.v1.prices.list(params={"lookup_keys": ["kept"]}).data[0].id == price.id
        assert client.v1.billing.meters.retrieve(meter.id).event_name == "p"
        assert client.v1.customers.retrieve(customer.id).name == "C"
        assert client.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time == 1_700_000_000
        assert client.v1.billing.alerts.retrieve(alert.id).status == "archived"
        order = [p.id for p in client.v1.products.list().data]
        assert order == [*reversed(others), "prod_kept"]
        replay = client.v1.products.create(
            params={"id": "prod_kept", "name": "Kept"}, options={"idempotency_key": "mk-product"}
        )
        assert replay.id == "prod_kept"
        second.reset()
    with Emulator(port=0, db_path=db) as third:
        assert make_client(third.url).v1.products.list().data == []


# --- concurrency --------------------------------------------------------------------------
def test_concurrent_writers_lose_nothing(emu: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(worker: int) -> list[str]:
        client = make_client(emu.url)
        return [client.v1.products.create(params={"name": f"W{worker}-{i}"}).id for i in range(15)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        made = [pid for ids in pool.map(create, range(6)) for pid in ids]
    listed = [
        p.id
        for p in make_client(emu.url).v1.products.list(params={"limit": 100}).auto_paging_iter()
    ]
    assert len(set(made)) == 90
    assert sorted(listed) == sorted(made)
    assert emu.stats()["by_route"]["POST /v1/products"] == 90
