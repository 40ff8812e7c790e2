"""Apply 500 meter and price changes against the emulator at its 25 req/s limit.

Reports the achieved request rate as a ratio of the rate the gateway was
asked to keep and of the emulator's limit, and how many 429s were met: the
token bucket should keep close to its target without provoking a retry storm.

With competing traffic (another client of the account using half the limit,
12.5 req/s, for the whole run), the default pace of 20 req/s overshoots the
limit: the adaptive pace (AIMD) is compared with a fixed one in the same run,
by their 429 share and achieved pace.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from reconciler.apply import apply_plan
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.model import Desired, Meter, Price, Product
from reconciler.planner import build_plan

EMULATOR_LIMIT = 25.0


@dataclass(frozen=True)
class ApplyRateResult:
    label: str
    target_rate: float
    writes: int
    requests: int
    seconds: float
    rate_limited: int
    retries: int
    lowest_pace: float | None = None

    @property
    def achieved(self) -> float:
        return self.requests / self.seconds

    def row(self) -> str:
        return (
            f"{self.label:<28} {self.writes:>6} {self.requests:>8} {self.seconds:>8.1f} "
            f"{self.achieved:>8.2f} {self.achieved / self.target_rate:>10.2f} "
            f"{self.achieved / EMULATOR_LIMIT:>10.2f} {self.rate_limited:>5} "
            f"{self.rate_limited / self.requests:>10.1%} "
            f"{'fixed' if self.lowest_pace is None else f'{self.lowest_pace:.1f}/s':>9}"
        )


HEADER = (
    f"{'apply run':<28} {'writes':>6} {'requests':>8} {'seconds':>8} {'req/s':>8} "
    f"{'÷ target':>10} {'÷ limit':>10} {'429s':>5} {'429 share':>10} {'min pace':>9}"
)


def desired_with(changes: int) -> Desired:
    """``changes`` creations: half meters, half per-unit prices on one product."""
    meters = tuple(
        Meter(event_name=f"bench_{i}", display_name=f"Bench meter {i}", aggregation="sum")
        for i in range(changes // 2)
    )
    prices = tuple(
        Price(lookup_key=f"bench_price_{i}", product="prod_bench", currency="usd", unit_amount=i)
        for i in range(changes - len(meters) - 1)
    )
    return Desired(
        mode="test",
        products=(Product(id="prod_bench", name="Benchmark"),),
        meters=meters,
        prices=prices,
    )


def _compete(url: str, rate: float, stop: threading.Event) -> None:
    """Another client of the account: reads at ``rate`` per second until stopped."""
    other = Gateway("sk_test_other", api_base=url, max_retries=0, rate_limit=rate)
    while not stop.is_set():
        try:
            other.get("/v1/products", {"limit": 1})
        except Exception:
            continue


def run_once(
    label: str,
    *,
    target_rate: float,
    changes: int = 500,
    competing: float = 0.0,
    adaptive: bool = True,
) -> ApplyRateResult:
    with Emulator(port=0, rate_limit=EMULATOR_LIMIT) as emulator:
        gateway = Gateway("sk_test_bench", api_base=emulator.url, rate_limit=target_rate)
        if not adaptive:
            gateway.pace = None
        stop = threading.Event()
        competitor = threading.Thread(target=_compete, args=(emulator.url, competing, stop))
        if competing:
            competitor.start()
        try:
            return _timed(label, gateway, target_rate, changes)
        finally:
            stop.set()
            if competing:
                competitor.join(timeout=30)


def _timed(label: str, gateway: Gateway, target_rate: float, changes: int) -> ApplyRateResult:
    started = time.monotonic()
    snapshot = read_snapshot(gateway)
    plan = build_plan(desired_with(changes), snapshot)
    apply_plan(plan, snapshot, gateway, concurrency=4)
    seconds = time.monotonic() - started
    return ApplyRateResult(
        label=label,
        target_rate=target_rate,
        writes=gateway.stats.writes,
        requests=gateway.stats.requests,
        seconds=seconds,
        rate_limited=gateway.stats.rate_limited,
        retries=gateway.stats.retries,
        lowest_pace=gateway.pace.report().lowest if gateway.pace is not None else None,
    )


def main() -> list[str]:
    rows = [HEADER]
    rows.append(run_once("default pace (80% of 25/s)", target_rate=0.8 * EMULATOR_LIMIT).row())
    rows.append(run_once("pace at the limit (25/s)", target_rate=EMULATOR_LIMIT).row())
    default = 0.8 * EMULATOR_LIMIT
    half = EMULATOR_LIMIT / 2
    rows.append(
        run_once(
            "50% other traffic, fixed", target_rate=default, competing=half, adaptive=False
        ).row()
    )
    rows.append(run_once("50% other traffic, adaptive", target_rate=default, competing=half).row())
    return rows
