"""What coupons and promotion codes share: a coupon's essence, which of its fields are
fixed at creation, and whether a plan makes a declared coupon anew.

A promotion code belongs to the coupon object it was made for, and is only
active while that coupon is valid (docs.stripe.com/api/promotion_codes/object,
``active``). A coupon cannot be archived, so a change to a fixed field deletes
it and creates it again under the same id: the codes of the old coupon go
inactive for good, and the promotion code kind plans new ones. Both kinds'
modules use this one, so neither names the other. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.kinds.base import Essence, amount, field_changes, id_of, root
from reconciler.model import Coupon, Moment
from reconciler.plan import FieldChange
from reconciler.snapshot import LiveObject

__all__ = [
    "COUPON_FIXED",
    "coupon_essence",
    "coupon_essence_from_stripe",
    "coupon_valid",
    "fixed_coupon_fields",
    "renewed",
]

COUPON_FIXED = frozenset(
    {
        "percent_off",
        "amount_off",
        "currency",
        "duration",
        "duration_in_months",
        "max_redemptions",
        "redeem_by",
        "applies_to",
    }
)
"""Fields Stripe's coupon update does not take (it takes name, metadata and
currency_options): a change to one deletes the coupon and creates it again."""


def coupon_essence(coupon: Coupon) -> Essence:
    """The managed fields of a declared coupon. ``redeem_by`` is its canonical UTC text,
    one-to-one with the Unix time Stripe holds (so comparing one compares the other)."""
    return {
        "name": coupon.name,
        "percent_off": amount(None, coupon.percent_off),
        "amount_off": coupon.amount_off,
        "currency": coupon.currency,
        "currency_options": {
            currency: {"amount_off": value}
            for currency, value in sorted(coupon.currency_options.items())
        }
        or None,
        "duration": coupon.duration,
        "duration_in_months": coupon.duration_in_months,
        "max_redemptions": coupon.max_redemptions,
        "redeem_by": coupon.redeem_by.text if coupon.redeem_by is not None else None,
        "applies_to": sorted(coupon.applies_to) if coupon.applies_to is not None else None,
        "metadata": dict(coupon.metadata),
        "active": coupon.active,
    }


def coupon_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    """A listed coupon's managed fields (listed with ``applies_to`` and
    ``currency_options`` expanded), and ``valid``: whether Stripe still lets anyone
    redeem it, which billing.yaml does not declare."""
    currency = obj.get("currency")
    options = obj.get("currency_options") or {}
    applies_to = obj.get("applies_to") or {}
    products = applies_to.get("products") if isinstance(applies_to, Mapping) else None
    redeem_by = obj.get("redeem_by")
    return {
        "name": obj.get("name") or None,
        "percent_off": amount(None, obj.get("percent_off")),
        "amount_off": obj.get("amount_off"),
        "currency": currency,
        "currency_options": {
            code: {"amount_off": (option or {}).get("amount_off")}
            for code, option in sorted(options.items())
            if code != currency
        }
        or None,
        "duration": obj.get("duration"),
        "duration_in_months": obj.get("duration_in_months"),
        "max_redemptions": obj.get("max_redemptions"),
        "redeem_by": Moment.of(int(redeem_by)).text if redeem_by is not None else None,
        "applies_to": sorted(str(id_of(p)) for p in products) if products else None,
        "metadata": dict(obj.get("metadata") or {}),
        "active": True,  # a deleted coupon is not listed
        "valid": bool(obj.get("valid", True)),
    }


def fixed_coupon_fields(diffs: tuple[FieldChange, ...]) -> list[str]:
    """The differing fields only a new coupon can have: fixed ones, and a currency
    option taken away (an update adds or changes options, it cannot remove one)."""
    return [
        d.field
        for d in diffs
        if root(d.field) in COUPON_FIXED
        or (root(d.field) == "currency_options" and d.after is None)
    ]


def renewed(coupon: Coupon, live: LiveObject | None) -> bool:
    """Whether the plan makes this declared coupon anew: it is declared active and the
    account lacks it, or holds it with a fixed field changed (deleted and created
    again). Codes made for the coupon the account holds now go inactive either way."""
    if not coupon.active:
        return False
    if live is None:
        return True
    after = coupon_essence(coupon)
    return bool(fixed_coupon_fields(field_changes(live.essence, after, after.keys())))


def coupon_valid(live: LiveObject | None) -> bool:
    """Whether the account's coupon can still be redeemed (a promotion code of it can be
    active): it exists, is before its ``redeem_by`` and under its ``max_redemptions``."""
    return live is not None and bool(live.essence.get("valid", True))
