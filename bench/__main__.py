"""Run every benchmark and print a table of figures: ``python -m bench``."""

from __future__ import annotations

import platform
import sys

from bench import apply_rate


def main() -> None:
    print(f"# stripe-reconcile benchmarks (Python {platform.python_version()}, {sys.platform})")
    print()
    print("## apply: 500 meter/price creations against the emulator's 25 req/s limit")
    for row in apply_rate.main():
        print(row)


if __name__ == "__main__":
    main()
