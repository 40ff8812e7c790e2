"""Helpers shared by the emulator tests (a module name unique across the test tree)."""

from __future__ import annotations

from typing import Any

import stripe

EMULATOR_KEY = "sk_test_emulator_0000000000"


def make_client(url: str, key: str = EMULATOR_KEY, **options: Any) -> stripe.StripeClient:
    """A stripe client whose every base address points at ``url``."""
    options.setdefault("max_network_retries", 0)
    return stripe.StripeClient(
        key,
        base_addresses={"api": url, "files": url, "connect": url, "meter_events": url},
        **options,
    )
