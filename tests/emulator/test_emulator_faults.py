"""The fault kinds Stripe's retry rules hinge on, and ``reset`` restoring the start-up faults.

Emulator only (the ``emu`` fixture skips in a contract run): real Stripe cannot
be asked for a lock timeout, a 409 or a ``Stripe-Should-Retry: false`` on
demand, and these tests read the emulator's own request log.
"""

from __future__ import annotations

import json
import random
import urllib.request
from typing import Any

import pytest
import stripe
from emulator_helpers import control_request, make_client

from reconciler.emulator import Emulator, FaultPlan
from reconciler.emulator.faults import EXCLUSIVE_KINDS


def _refused_create(emu: Emulator, product_id: str, **options: Any) -> stripe.StripeError:
    """Create a product while a fault is set; the error, after checking nothing was written."""
    client = make_client(emu.url, **options)
    with pytest.raises(stripe.StripeError) as caught:
        client.v1.products.create(
            params={"id": product_id, "name": "F"}, options={"idempotency_key": f"k-{product_id}"}
        )
    emu.set_faults(None)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.retrieve(product_id)
    assert missing.value.http_status == 404
    return caught.value


def _error_body(error: stripe.StripeError) -> dict[str, Any]:
    assert isinstance(error.json_body, dict)
    body: dict[str, Any] = error.json_body["error"]
    return body


def test_lock_is_stripes_429_lock_timeout_to_be_retried(emu: Emulator) -> None:
    emu.set_faults("lock=1")
    error = _refused_create(emu, "prod_locked")
    assert isinstance(error, stripe.RateLimitError)
    assert error.http_status == 429
    assert error.headers is not None and error.headers["Stripe-Should-Retry"] == "true"
    body = _error_body(error)
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "lock_timeout"
    assert body["doc_url"] == "https://stripe.com/docs/error-codes/lock-timeout"
    assert body["message"].startswith(
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it."
    )


def test_409_is_an_idempotency_key_in_use_and_saves_no_result(emu: Emulator) -> None:
    emu.set_faults("409=1")
    error = _refused_create(emu, "prod_conflict")
    assert error.http_status == 409
    body = _error_body(error)
    assert (body["type"], body["code"]) == ("invalid_request_error", "idempotency_key_in_use")
    assert "k-prod_conflict" in body["message"]
    assert "Stripe-Should-Retry" not in (error.headers or {})
    # Nothing was saved under the key: the same request now runs for the first time.
    created = make_client(emu.url).v1.products.create(
        params={"id": "prod_conflict", "name": "F"}, options={"idempotency_key": "k-prod_conflict"}
    )
    assert created.last_response is not None
    assert "Idempotent-Replayed" not in created.last_response.headers


def test_noretry_is_a_500_the_sdk_does_not_repeat(emu: Emulator) -> None:
    emu.set_faults("noretry=1")
    # The SDK may retry twice, but Stripe-Should-Retry: false forbids it: one request.
    error = _refused_create(emu, "prod_noretry", max_network_retries=2)
    assert isinstance(error, stripe.APIError)
    assert error.http_status == 500
    assert error.headers is not None and error.headers["Stripe-Should-Retry"] == "false"
    faulted = [e for e in emu.stats()["log"] if e["fault"]]
    assert [(e["route"], e["status"], e["fault"]) for e in faulted] == [
        ("POST /v1/products", 500, "noretry")
    ]


def test_the_sdk_retries_a_lock_timeout_as_stripe_documents(emu: Emulator) -> None:
    emu.set_faults("lock=1")
    with pytest.raises(stripe.RateLimitError):
        make_client(emu.url, max_network_retries=1).v1.products.list()
    assert emu.stats()["faults"] == {"lock": 2}


@pytest.mark.parametrize("kind", ["409", "lock", "noretry"])
def test_each_new_kind_parses_and_is_counted(emu: Emulator, kind: str) -> None:
    emu.set_faults(f"seed=3,{kind}=1")
    with pytest.raises(stripe.StripeError):
        make_client(emu.url).v1.billing.meters.list()
    assert emu.stats()["faults"] == {kind: 1}
    assert FaultPlan.parse(f"{kind}=0.25").describe()[kind] == 0.25


def test_unknown_kinds_and_overfull_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'slow'") as caught:
        FaultPlan.parse("slow=0.1")
    for kind in ("409", "lock", "noretry"):
        assert kind in str(caught.value)
    with pytest.raises(ValueError, match="add up to more than 1"):
        FaultPlan.parse("409=0.5,lock=0.3,noretry=0.3")
    assert EXCLUSIVE_KINDS[:4] == ("500", "429", "reset", "lost")


def test_a_seed_meets_the_same_faults_as_before_the_new_kinds() -> None:
    """Two draws a request (latency, then the kind); ``500=0.3`` is the first 30% of the
    kind draw: modelled here with the generator itself, not with the plan's code."""
    plan = FaultPlan.parse("seed=3,500=0.3,reset=0.2")
    model = random.Random(3)
    for _ in range(200):
        model.random()  # the latency draw
        draw = model.random()
        expected = "500" if draw < 0.3 else "reset" if draw < 0.5 else None
        assert plan.decide().kind == expected


# --- reset ----------------------------------------------------------------------------------


def _outcomes(emulator: Emulator, n: int = 20) -> list[int]:
    client = make_client(emulator.url)
    seen: list[int] = []
    for _ in range(n):
        try:
            client.v1.billing.meters.list()
            seen.append(200)
        except stripe.StripeError as error:
            seen.append(error.http_status or 0)
    return seen


def test_reset_ends_faults_and_limits_set_since_start(emu: Emulator) -> None:
    emu.set_faults("500=1")
    emu.set_rate_limit(0.001)  # one request, then none for 1000 s
    assert _outcomes(emu, 3) == [500, 429, 429]  # the limit is checked first
    emu.reset()
    assert _outcomes(emu, 5) == [200] * 5
    assert emu.stats()["faults"] == {}


def test_reset_restores_the_start_up_faults_and_their_sequence() -> None:
    with Emulator(port=0, faults="seed=9,500=0.5") as emulator:
        first = _outcomes(emulator)
        assert {200, 500} <= set(first)
        emulator.set_faults(None)
        assert _outcomes(emulator, 5) == [200] * 5
        emulator.reset()
        assert _outcomes(emulator) == first  # the same plan, drawing again from its seed


def test_reset_restores_the_start_up_rate_limit() -> None:
    with Emulator(port=0, rate_limit=0.001) as emulator:
        emulator.set_rate_limit(None)
        assert _outcomes(emulator, 5) == [200] * 5
        emulator.reset()
        assert _outcomes(emulator, 3) == [200, 429, 429]


def test_reset_over_http_restores_the_start_up_configuration() -> None:
    with Emulator(port=0, faults="seed=1,lock=1") as emulator:
        emulator.set_faults(None)
        assert _outcomes(emulator, 2) == [200, 200]
        request = control_request(emulator.url + "/_emulator/reset", "POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"reset": True}
        faults = control_request(emulator.url + "/_emulator/faults")
        with urllib.request.urlopen(faults, timeout=5) as response:
            assert json.loads(response.read())["faults"]["lock"] == 1.0
        assert _outcomes(emulator, 2) == [429, 429]
