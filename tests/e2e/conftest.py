"""Fixtures for end-to-end tests: the reconciler against a running emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway

API_KEY = "sk_test_e2e_0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def running_emulator() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def emulator(running_emulator: Emulator) -> Emulator:
    """The shared emulator, emptied and without faults or rate limit."""
    running_emulator.reset()
    running_emulator.set_faults(None)
    running_emulator.set_rate_limit(None)
    return running_emulator


@pytest.fixture
def gateway(emulator: Emulator) -> Gateway:
    return Gateway(API_KEY, api_base=emulator.url, max_retries=0)


def stripe_reconcile(
    *args: str,
    url: str | None = None,
    key: str = API_KEY,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user does: a subprocess, no colour, this key and server.

    Without ``url`` no Stripe variables are passed at all (the demo, simulate).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["NO_COLOR"] = "1"
    if url is not None:
        env.update(STRIPE_API_KEY=key, STRIPE_API_BASE=url)
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        check=False,
    )
