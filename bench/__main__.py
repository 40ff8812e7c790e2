"""Run every benchmark and print a table of figures: ``python -m bench``."""

from __future__ import annotations

import argparse
import platform
import sys

from bench import apply_rate, migration, parity, planning, reliability


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--subscriptions",
        type=int,
        default=2000,
        help="subscriptions in the HTTP migration benchmark (default 2000)",
    )
    args = parser.parse_args()
    print(f"# stripe-reconcile benchmarks (Python {platform.python_version()}, {sys.platform})")
    print()
    print("## apply: 500 meter/price creations against the emulator's 25 req/s limit")
    for row in apply_rate.main():
        print(row)
    print()
    print("## migration planning, pure (no I/O)")
    for row in migration.pure_planning():
        print(row)
    print()
    print(
        "## the plan path: billing.yaml, every request through the SDK, plan, render, "
        "write plan.json"
    )
    print("   (1,000 declared prices, a third replaced; CPU seconds, best of three)")
    for row in planning.main():
        print(row)
    print()
    print("## the usage parity gate's reads: the next batch's (batch 50) against everyone's")
    for row in parity.main():
        print(row)
    print()
    print("## migration over HTTP: seed, plan and apply against the 25 req/s limit")
    print("   (writes/sub counts the schedule writes only, not the catalog's)")
    for row in migration.over_http(args.subscriptions):
        print(row)
    print()
    print("## reliability: example config and a 6-subscription migration under random faults")
    for row in reliability.main():
        print(row)


if __name__ == "__main__":
    main()
