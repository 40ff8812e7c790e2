"""Fixtures for the emulator tests: a running emulator and stripe clients.

``client`` is backend-agnostic: against the emulator by default, against real
Stripe test mode when ``STRIPE_TEST_API_KEY`` is set (contract run). Tests
that need the emulator's own controls (stats, faults, direct store access)
take the ``emu`` fixture, which skips in a contract run.
"""

from __future__ import annotations

import os
import uuid

import pytest
import stripe
from emulator_helpers import make_client

from reconciler.emulator import Emulator
from tests.conftest import fresh

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One marker for the contract suite: every test on the backend-agnostic ``client``
    is ``stripe_live`` and not ``emu``-only, so ``pytest -m stripe_live`` with
    ``STRIPE_TEST_API_KEY`` set runs exactly the tests Stripe test mode can answer."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "client" in fixtures and "emu" not in fixtures:
            item.add_marker(pytest.mark.stripe_live)


@pytest.fixture
def shared_emulator(running_emulator: Emulator) -> Emulator:
    """The suite's one emulator (``tests/conftest.py``), as these tests name it."""
    return running_emulator


@pytest.fixture
def emu(shared_emulator: Emulator) -> Emulator:
    """The emulator, emptied, without faults or rate limit (skips against real Stripe)."""
    if LIVE_KEY:
        pytest.skip("checks the emulator itself; not run against real Stripe")
    return fresh(shared_emulator)


@pytest.fixture
def client(shared_emulator: Emulator) -> stripe.StripeClient:
    """A client for the backend under test (emulator, or Stripe test mode)."""
    if LIVE_KEY:
        return stripe.StripeClient(LIVE_KEY, max_network_retries=2)
    fresh(shared_emulator)
    return make_client(shared_emulator.url)


@pytest.fixture
def uid() -> str:
    """A short unique suffix, so contract runs against a real account do not collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def meter(client: stripe.StripeClient, uid: str) -> stripe.billing.Meter:
    return client.v1.billing.meters.create(
        params={
            "display_name": f"Video seconds {uid}",
            "event_name": f"video_seconds_{uid}",
            "default_aggregation": {"formula": "sum"},
        }
    )


@pytest.fixture
def product(client: stripe.StripeClient, uid: str) -> stripe.Product:
    return client.v1.products.create(params={"id": f"prod_test_{uid}", "name": f"Video {uid}"})
