"""Stripe API versions: parsing, ordering and the legacy usage-billing gate.

A version is ``YYYY-MM-DD.name`` (older ones have no ``.name``); versions sort
by their date. ``2025-02-24.acacia`` is the last version with legacy
usage-based billing (usage records, ``recurring.aggregate_usage``, metered
prices without a meter); ``2025-03-31.basil`` removed it. Every module that
gates behaviour on the version uses :func:`has_legacy_usage_billing` or
:func:`version_at_least` so the rule lives in one place.
"""

from __future__ import annotations

import re
from datetime import date

from reconciler.emulator.errors import ApiError

__all__ = [
    "BASIL",
    "DEFAULT_API_VERSION",
    "LAST_LEGACY_USAGE_VERSION",
    "has_legacy_usage_billing",
    "parse_version",
    "version_at_least",
]

#: The version the stripe SDK 16 pins; used when a request sends no header.
DEFAULT_API_VERSION = "2026-10-28.endive"
LAST_LEGACY_USAGE_VERSION = "2025-02-24.acacia"
BASIL = "2025-03-31.basil"
CLOVER = "2025-09-30.clover"

_VERSION = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:\.([a-z]+))?$")


def parse_version(version: str) -> date:
    """The date a version string stands for; 400 for a malformed one."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise ApiError(
            400,
            f"Invalid Stripe API version: {version}",
            code="api_version_invalid",
            store_idempotent=False,
        )
    year, month, day = (int(g) for g in match.groups()[:3])
    try:
        return date(year, month, day)
    except ValueError:
        raise ApiError(
            400,
            f"Invalid Stripe API version: {version}",
            code="api_version_invalid",
            store_idempotent=False,
        ) from None


def version_at_least(version: str, reference: str) -> bool:
    """True when ``version`` is ``reference`` or newer (by date)."""
    return parse_version(version) >= parse_version(reference)


def has_legacy_usage_billing(version: str) -> bool:
    """True on versions that still have usage records and meter-less metered prices."""
    return parse_version(version) <= parse_version(LAST_LEGACY_USAGE_VERSION)
