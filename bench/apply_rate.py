"""Apply 500 meter and price changes against the emulator at its 25 req/s limit.

Reports the achieved request rate as a ratio of the rate the gateway was
asked to keep and of the emulator's limit, and how many 429s were met: the
token bucket should keep close to its target without provoking a retry storm.
"""

from __future__ import annotations

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

    @property
    def achieved(self) -> float:
        return self.requests / self.seconds

    def row(self) -> str:
        return (
            f"{self.label:<28} {self.writes:>6} {self.requests:>8} {self.seconds:>8.1f} "
            f"{self.achieved:>8.2f} {self.achieved / self.target_rate:>10.2f} "
            f"{self.achieved / EMULATOR_LIMIT:>10.2f} {self.rate_limited:>5} {self.retries:>7}"
        )


HEADER = (
    f"{'apply run':<28} {'writes':>6} {'requests':>8} {'seconds':>8} {'req/s':>8} "
    f"{'÷ target':>10} {'÷ limit':>10} {'429s':>5} {'retries':>7}"
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


def run_once(label: str, *, target_rate: float, changes: int = 500) -> ApplyRateResult:
    with Emulator(port=0, rate_limit=EMULATOR_LIMIT) as emulator:
        gateway = Gateway("sk_test_bench", api_base=emulator.url, rate_limit=target_rate)
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
        )


def main() -> list[str]:
    rows = [HEADER]
    rows.append(run_once("default pace (80% of 25/s)", target_rate=0.8 * EMULATOR_LIMIT).row())
    rows.append(run_once("pace at the limit (25/s)", target_rate=EMULATOR_LIMIT).row())
    return rows
