"""Helpers shared by the emulator tests (a module name unique across the test tree)."""

from __future__ import annotations

import urllib.request
from typing import Any

import stripe

EMULATOR_KEY = "sk_test_emulator_0000000000"
CONTROL_HEADERS = {"Authorization": f"Bearer {EMULATOR_KEY}", "Content-Type": "application/json"}
"""What a caller of the emulator's ``/_emulator/*`` control endpoints sends: a test key, JSON."""


def control_request(
    url: str, method: str = "GET", data: bytes | None = None
) -> urllib.request.Request:
    """A request to a control endpoint (``url`` ends in ``/_emulator/...``) with the key."""
    return urllib.request.Request(url, data=data, method=method, headers=CONTROL_HEADERS)


def make_client(url: str, key: str = EMULATOR_KEY, **options: Any) -> stripe.StripeClient:
    """A stripe client whose every base address points at ``url``."""
    options.setdefault("max_network_retries", 0)
    return stripe.StripeClient(
        key,
        base_addresses={"api": url, "files": url, "connect": url, "meter_events": url},
        **options,
    )
