"""Fixtures for end-to-end tests: the reconciler against a running emulator."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import Plan, ResourceChange
from reconciler.planner import build_plan
from reconciler.snapshot import Snapshot
from tests.conftest import fresh

API_KEY = "sk_test_e2e_0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CATALOG = REPO_ROOT / "tests" / "data" / "billing-catalog.yaml"
"""The example billing.yaml without its ``migrations:`` block: what an empty account can
plan (a migration whose legacy price is not in the account is a plan error)."""


@pytest.fixture
def emulator(running_emulator: Emulator) -> Emulator:
    """The suite's emulator, emptied, at the present, without faults or rate limit."""
    return fresh(running_emulator)


@pytest.fixture
def gateway(emulator: Emulator) -> Gateway:
    return Gateway(API_KEY, api_base=emulator.url, max_retries=0)


def stripe_reconcile(
    *args: str,
    url: str | None = None,
    key: str = API_KEY,
    cwd: Path | None = None,
    stdin: str | None = None,
    max_memory: int | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user does: a subprocess, no colour, this key and server.

    Without ``url`` no Stripe variables are passed at all (the demo, simulate).
    ``max_memory`` caps the child's address space in bytes (it fails past it).
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
        timeout=timeout,
        input=stdin,
        check=False,
        preexec_fn=None if max_memory is None else lambda: _cap_memory(max_memory),
    )


def _cap_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def writes_seen(emulator: Emulator, route_prefix: str = "POST /v1/") -> int:
    """How many requests the emulator has answered on routes starting so."""
    routes = emulator.stats()["by_route"]
    return sum(n for route, n in routes.items() if route.startswith(route_prefix))


def kill_at_write(
    emulator: Emulator, args: list[str], writes: int, route_prefix: str = "POST /v1/"
) -> int | None:
    """Run the command line and SIGKILL it once the emulator has seen ``writes`` writes
    (counted from the start); the exit code, negative when it was killed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(STRIPE_API_KEY=API_KEY, STRIPE_API_BASE=emulator.url, NO_COLOR="1")
    start = writes_seen(emulator, route_prefix)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if writes_seen(emulator, route_prefix) - start >= writes:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    return process.returncode


def plan_of(text: str, gateway: Gateway) -> tuple[Snapshot, Plan]:
    """The account read for the billing.yaml ``text``, and its plan, as ``plan`` makes them."""
    config = load_text(text, "billing.yaml")
    snapshot = read_snapshot(gateway, config)
    return snapshot, build_plan(config, snapshot)


def converge(text: str, gateway: Gateway) -> Plan:
    """Apply ``text`` as the command line does (rounds until done); the plan that follows."""
    snapshot, plan = plan_of(text, gateway)
    apply_until_done(plan, snapshot, gateway, replan=lambda: plan_of(text, gateway))
    return plan_of(text, gateway)[1]


def change_at(plan: Plan, address: str) -> ResourceChange:
    """The plan's change at ``address``."""
    return next(c for c in plan.changes if c.address == address)
