"""The managed kinds: one spec per kind, registered in ``reconciler.kinds.registry``.

This package's top level holds only the ``Kind`` enum, so that the plan can be
typed by it without importing the specs (which build plan values). Each kind's
module (``product``, ``meter``, ``price``, ``alert``, ``feature``, ``portal``,
``product_feature``, ``coupon``, ``promotion_code``) says everything about that
kind: identity, essences, updatable and fixed fields, how it is listed, how it is
planned, its steps per action, how it is imported and how it renders. The core
iterates the registry and names no kind itself.
"""

from __future__ import annotations

import enum

__all__ = ["Kind"]


class Kind(enum.StrEnum):
    """What a planned change is about; the value is the address prefix and the plan's
    ``kind``. Migrations are planned by ``reconciler.migrations``, not by a spec."""

    PRODUCT = "product"
    METER = "meter"
    PRICE = "price"
    ALERT = "alert"
    FEATURE = "feature"
    PORTAL = "portal"
    PRODUCT_FEATURE = "product_feature"
    COUPON = "coupon"
    PROMOTION_CODE = "promotion_code"
    MIGRATION = "migration"
