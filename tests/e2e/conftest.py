"""Fixtures for end-to-end tests: the reconciler against a running emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway

API_KEY = "sk_test_e2e_0123456789"


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
