"""The Stripe API versions stripe-reconcile pins, for the modules that build requests
without sending them (pure) and for the gateway that sends them."""

from __future__ import annotations

__all__ = ["LEGACY_API_VERSION"]

LEGACY_API_VERSION = "2025-02-24.acacia"
"""The last API version with usage records and meter-less metered prices."""
