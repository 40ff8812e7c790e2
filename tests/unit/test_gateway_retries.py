"""The gateway's retries and pacing, on a fake clock: what is retried, how long it waits.

The retry tests run the real ``Gateway`` (and the real ``stripe`` SDK under it)
against an emulator with injected faults; nothing sleeps: ``sleep`` records each
delay, and "time passing" is what heals the fault. Emulator only: real Stripe
cannot be made to answer a lock timeout or ``Stripe-Should-Retry: false`` on
demand. The token bucket tests need no server at all.
"""

from __future__ import annotations

import random

import pytest
import stripe

from reconciler.emulator import Emulator
from reconciler.errors import StripeCallError
from reconciler.gateway import Gateway, TokenBucket
from tests.conftest import fresh

API_KEY = "sk_test_e2e_0123456789"


@pytest.fixture
def emulator(running_emulator: Emulator) -> Emulator:
    return fresh(running_emulator)


class FakeTime:
    """A clock that moves only when slept on; the emulator's fault clears after
    ``heal_after`` sleeps (None: it never does)."""

    def __init__(self, emulator: Emulator | None = None, heal_after: int | None = None) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self._emulator = emulator
        self._heal_after = heal_after

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        if self._emulator is not None and len(self.delays) == self._heal_after:
            self._emulator.set_faults(None)


def gateway_for(emulator: Emulator, time: FakeTime, *, max_retries: int = 5) -> Gateway:
    return Gateway(
        API_KEY,
        api_base=emulator.url,
        max_retries=max_retries,
        sleep=time.sleep,
        rng=random.Random(1234),
    )


def requests_seen(emulator: Emulator) -> int:
    return int(emulator.stats()["requests_total"])


def ceiling(attempt: int) -> float:
    """The documented backoff ceiling of retry ``attempt`` (1-based): 0.5 s doubling to 8 s."""
    return min(8.0, 0.5 * 2.0 ** (attempt - 1))


# --- what is retried ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("lock", 429),  # Stripe's lock_timeout: a 429 with Stripe-Should-Retry: true
        ("409", 409),  # idempotency_key_in_use: no header, the status says retry
        ("429", 429),
        ("500", 500),
        ("reset", 0),  # the connection dropped: no status at all
    ],
)
def test_a_passing_fault_is_retried_and_the_write_succeeds(
    emulator: Emulator, kind: str, status: int
) -> None:
    emulator.set_faults(f"{kind}=1")
    time = FakeTime(emulator, heal_after=2)
    gateway = gateway_for(emulator, time)
    product, replayed = gateway.write("/v1/products", {"id": "prod_retried", "name": "Retried"})
    assert (product["id"], replayed) == ("prod_retried", False)
    assert requests_seen(emulator) == 3
    assert emulator.stats()["faults"] == {kind: 2}
    assert gateway.stats.retries == 2
    assert gateway.stats.by_status[status] == 2
    assert len(time.delays) == 2
    assert len(list(gateway.list_all("/v1/products"))) == 1


def test_stripe_should_retry_false_is_not_retried(emulator: Emulator) -> None:
    emulator.set_faults("noretry=1")
    time = FakeTime(emulator, heal_after=1)
    gateway = gateway_for(emulator, time, max_retries=5)
    with pytest.raises(StripeCallError) as caught:
        gateway.write("/v1/products", {"id": "prod_refused", "name": "Refused"})
    assert caught.value.http_status == 500
    assert requests_seen(emulator) == 1
    assert time.delays == []
    assert gateway.stats.retries == 0


def test_a_lost_answer_is_retried_with_the_same_key_and_replayed(emulator: Emulator) -> None:
    emulator.set_faults("lost=1")
    time = FakeTime(emulator, heal_after=1)
    gateway = gateway_for(emulator, time)
    product, replayed = gateway.write("/v1/products", {"id": "prod_lost", "name": "Lost"})
    assert (product["id"], replayed) == ("prod_lost", True)
    assert gateway.stats.replayed == 1
    assert len(list(gateway.list_all("/v1/products"))) == 1


def test_a_delete_says_whether_it_deleted_or_found_the_object_gone(emulator: Emulator) -> None:
    gateway = gateway_for(emulator, FakeTime())
    gateway.write("/v1/coupons", {"id": "SPRING", "percent_off": 10, "duration": "once"})
    assert gateway.delete("/v1/coupons/SPRING") == (
        {"id": "SPRING", "object": "coupon", "deleted": True},
        False,
    )
    # A second apply (or this one after a crash) finds it gone: done, nothing deleted now.
    assert gateway.delete("/v1/coupons/SPRING") == ({"id": "SPRING", "deleted": True}, True)
    assert gateway.stats.by_route["DELETE /v1/coupons/SPRING"] == 2


def test_a_delete_whose_answer_is_lost_is_retried_and_reads_as_gone(emulator: Emulator) -> None:
    gateway = gateway_for(emulator, FakeTime())
    gateway.write("/v1/coupons", {"id": "LOST", "percent_off": 10, "duration": "once"})
    emulator.set_faults("lost=1")
    time = FakeTime(emulator, heal_after=1)
    gateway = gateway_for(emulator, time)
    assert gateway.delete("/v1/coupons/LOST") == ({"id": "LOST", "deleted": True}, True)
    assert len(time.delays) == 1
    assert list(gateway.list_all("/v1/coupons")) == []


def test_a_delete_refused_for_another_reason_is_an_error(emulator: Emulator) -> None:
    emulator.set_faults("noretry=1")
    gateway = gateway_for(emulator, FakeTime(emulator, heal_after=1))
    with pytest.raises(StripeCallError) as caught:
        gateway.delete("/v1/coupons/ANY")
    assert caught.value.http_status == 500


def test_a_refusal_is_not_retried(emulator: Emulator) -> None:
    time = FakeTime()
    gateway = gateway_for(emulator, time)
    with pytest.raises(StripeCallError) as caught:
        gateway.get("/v1/products/prod_nowhere")
    assert caught.value.http_status == 404
    assert requests_seen(emulator) == 1
    assert time.delays == []


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_is_respected(emulator: Emulator, max_retries: int) -> None:
    emulator.set_faults("500=1")
    time = FakeTime()
    gateway = gateway_for(emulator, time, max_retries=max_retries)
    with pytest.raises(StripeCallError) as caught:
        gateway.get("/v1/products")
    assert caught.value.http_status == 500
    assert requests_seen(emulator) == max_retries + 1
    assert len(time.delays) == gateway.stats.retries == max_retries


# --- how long it waits ----------------------------------------------------------------------


def test_delays_follow_full_jitter_exponential_backoff(emulator: Emulator) -> None:
    emulator.set_faults("lock=1")
    time = FakeTime()
    gateway = gateway_for(emulator, time, max_retries=8)
    with pytest.raises(StripeCallError):
        gateway.get("/v1/billing/meters")
    assert len(time.delays) == 8
    bounds = [(ceiling(n) / 2, ceiling(n)) for n in range(1, 9)]
    assert [b[1] for b in bounds] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    for delay, (low, high) in zip(time.delays, bounds, strict=True):
        assert low <= delay <= high
    # Jittered: the waits are not the bare lower bounds.
    assert [d for d, (low, _) in zip(time.delays, bounds, strict=True) if d > low]


def test_the_same_seed_waits_the_same_and_another_seed_does_not(emulator: Emulator) -> None:
    def delays(seed: int) -> list[float]:
        emulator.set_faults("500=1")
        time = FakeTime()
        gateway = Gateway(
            API_KEY,
            api_base=emulator.url,
            max_retries=4,
            sleep=time.sleep,
            rng=random.Random(seed),
        )
        with pytest.raises(StripeCallError):
            gateway.get("/v1/products")
        return time.delays

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


# --- the token bucket -----------------------------------------------------------------------


def bucket(rate: float, burst: float | None, time: FakeTime) -> TokenBucket:
    return TokenBucket(rate, burst, clock=time.clock, sleep=time.sleep)


def test_the_rate_is_honoured_over_many_acquisitions() -> None:
    time = FakeTime()
    paced = bucket(10, 2, time)
    stamps = []
    for _ in range(300):
        paced.acquire()
        stamps.append(time.now)
    # 2 at once, then one every 0.1 s: 298 waits.
    assert time.now == pytest.approx(29.8)
    # In any stretch of time, at most burst + rate * seconds tokens were taken.
    for i in range(0, len(stamps), 7):
        for j in range(i + 1, len(stamps)):
            assert j - i + 1 <= 2 + 10 * (stamps[j] - stamps[i]) + 1e-6


def test_burst_capacity_is_free_then_each_token_waits() -> None:
    time = FakeTime()
    paced = bucket(5, 3, time)
    assert [paced.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert time.delays == []
    assert paced.acquire() == pytest.approx(0.2)
    assert paced.acquire() == pytest.approx(0.2)


def test_idle_time_refills_up_to_the_burst_and_no_further() -> None:
    time = FakeTime()
    paced = bucket(4, 2, time)
    for _ in range(2):
        paced.acquire()
    time.now += 3600.0  # an hour idle saves up two tokens, not 14,400
    assert [paced.acquire() for _ in range(2)] == [0.0, 0.0]
    assert paced.acquire() == pytest.approx(0.25)


def test_waited_seconds_are_reported() -> None:
    time = FakeTime()
    paced = bucket(2, 1, time)
    waited = [paced.acquire() for _ in range(5)]
    assert waited == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5])
    assert sum(waited) == pytest.approx(sum(time.delays))
    assert sum(waited) == pytest.approx(time.now)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate)


def test_the_gateway_paces_its_requests_through_the_bucket(emulator: Emulator) -> None:
    time = FakeTime()
    gateway = gateway_for(emulator, time)
    gateway.bucket = bucket(4, 1, time)
    for _ in range(9):
        gateway.get("/v1/products")
    assert requests_seen(emulator) == 9
    assert time.now == pytest.approx(2.0)  # 8 waits of 0.25 s


class _Answering(stripe.HTTPClient):
    """An HTTP client that answers every request with one fixed body."""

    name = "fixed"

    def __init__(self, body: str, status: int = 200) -> None:
        super().__init__()
        self._body, self._status = body, status

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: object, post_data: object = None, **_: object
    ) -> tuple[str, int, dict[str, str]]:
        return self._body, self._status, {}

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[1, 2]", "the answer is not a JSON object"),
        ('"text"', "the answer is not a JSON object"),
        ("<html>", "Invalid response body"),
        ("{" * 5_000, "Invalid response body"),
    ],
)
def test_an_answer_that_is_not_a_json_object_is_a_clear_error(body: str, expected: str) -> None:
    gateway = Gateway(API_KEY, api_base="http://127.0.0.1:9", http_client=_Answering(body))
    with pytest.raises(StripeCallError) as caught:
        gateway.get("/v1/prices")
    assert str(caught.value).startswith("GET /v1/prices")
    assert expected in str(caught.value)
    assert len(str(caught.value)) < 300  # a hostile body is not echoed whole
