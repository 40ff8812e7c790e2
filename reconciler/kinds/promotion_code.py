"""Promotion codes: identified by their code, regardless of case; only ``active`` and
metadata change; any other change deactivates the code object and creates a new one
with the same code; retired by deactivating (Stripe deletes none).

After docs.stripe.com/api/promotion_codes: a code "must be unique across all
active promotion codes for each customer", regardless of case; create names its
coupon as ``promotion: {type: coupon, coupon: ID}``; the update takes ``active``,
``metadata`` and ``restrictions.currency_options`` ("most fields are, by design,
not editable"). A promotion code "is only active if the coupon is also valid",
and belongs to the coupon object it was made for: when the plan deletes its
coupon and creates it again (a fixed coupon field changed), the code goes
inactive for good, so the plan replaces it too, against the new coupon. The old
code is deactivated before the coupon's writes and the new one created after
them, in a later phase (the code is free once the old one is inactive).

A code declared active that the account holds inactive is made anew rather than
reactivated: an inactive code may belong to a deleted coupon, which Stripe never
lets come back. One whose coupon is no longer valid (past ``redeem_by``, or
redeemed ``max_redemptions`` times) is left as it is: Stripe would refuse a new
one as well. An add-on kind: codes are read only when billing.yaml declares one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    Essence,
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    absent,
    existing,
    field_changes,
    id_of,
    is_managed,
    marked,
    metadata_entry,
    preferred,
    root,
    same_target,
    unknown_action,
)
from reconciler.kinds.discount import coupon_valid, renewed
from reconciler.model import Desired, Moment, PromotionCode, given
from reconciler.plan import (
    INVALID_COUPON_REASON,
    Action,
    ActionReason,
    Plan,
    ResourceChange,
)
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_CATALOG, PHASE_DEFAULTS, PHASE_RETIRE, Step, at, const

__all__ = ["PROMOTION_CODE_FIXED", "PromotionCodeSpec"]

PATH = "/v1/promotion_codes"
PROMOTION_CODE_FIXED = frozenset(
    {"code", "coupon", "customer", "max_redemptions", "expires_at", "restrictions"}
)
"""Fields Stripe's promotion code update does not take."""


def promotion_code_essence(code: PromotionCode) -> Essence:
    return {
        "code": code.code,
        "coupon": code.coupon,
        "customer": code.customer,
        "max_redemptions": code.max_redemptions,
        "expires_at": code.expires_at.text if code.expires_at is not None else None,
        "restrictions": {
            "first_time_transaction": code.first_time_transaction,
            "minimum_amount": code.minimum_amount,
            "minimum_amount_currency": code.minimum_amount_currency,
        },
        "metadata": dict(code.metadata),
        "active": code.active,
    }


def promotion_code_essence_from_stripe(obj: Mapping[str, Any]) -> Essence:
    """A listed code's managed fields; ``active`` as Stripe shows it (false once its
    coupon is no longer valid)."""
    promotion = obj.get("promotion") or {}
    coupon = promotion.get("coupon") if promotion else obj.get("coupon")  # before clover
    restrictions = obj.get("restrictions") or {}
    expires_at = obj.get("expires_at")
    return {
        "code": obj.get("code"),
        "coupon": id_of(coupon),
        "customer": id_of(obj.get("customer")),
        "max_redemptions": obj.get("max_redemptions"),
        "expires_at": Moment.of(int(expires_at)).text if expires_at is not None else None,
        "restrictions": {
            "first_time_transaction": bool(restrictions.get("first_time_transaction", False)),
            "minimum_amount": restrictions.get("minimum_amount"),
            "minimum_amount_currency": restrictions.get("minimum_amount_currency"),
        },
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
    }


def create_params(after: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that create a promotion code of this essence."""
    params: dict[str, Any] = {
        "promotion": {"type": "coupon", "coupon": after["coupon"]},
        "code": after["code"],
        "metadata": dict(after["metadata"]),
    }
    for name in ("customer", "max_redemptions"):
        if after.get(name) is not None:
            params[name] = after[name]
    if after.get("expires_at") is not None:
        params["expires_at"] = Moment.parse(str(after["expires_at"])).at
    restrictions = {k: v for k, v in (after.get("restrictions") or {}).items() if v}
    if restrictions:
        params["restrictions"] = restrictions
    return params


def _renewed_reason(coupon: str) -> str:
    return (
        f"its coupon {coupon} is created anew by this plan: a promotion code belongs to the "
        "coupon object it was made for and goes inactive with it, so a new one takes the code"
    )


_NEW_CODE = (
    "Stripe changes none of these on a promotion code: the old one is deactivated and a new "
    "one takes the code (its redemption count starts again)"
)
_REMADE = (
    "inactive in the account: it was deactivated, or its coupon deleted, and Stripe "
    "reactivates no code of a deleted coupon; a new one takes the code"
)


class PromotionCodeSpec(KindSpec):
    kind = Kind.PROMOTION_CODE
    section = "promotion_codes"
    list_path = PATH
    add_on = True
    read_after = (Kind.COUPON,)
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "code": ("code",),
        "promotion[coupon]": ("coupon",),
        "customer": ("customer",),
        "max_redemptions": ("max_redemptions",),
        "expires_at": ("expires_at",),
        "restrictions[minimum_amount]": ("restrictions", "minimum_amount"),
        "restrictions[minimum_amount_currency]": ("restrictions", "minimum_amount_currency"),
    }

    def build(self, entry: Mapping[str, Any]) -> PromotionCode:
        restrictions = entry.get("restrictions") or {}
        expires_at = entry.get("expires_at")
        return PromotionCode(
            code=entry["code"],
            coupon=entry["coupon"],
            **given(entry, "active", "customer", "max_redemptions"),
            **given(
                restrictions,
                "first_time_transaction",
                "minimum_amount",
                "minimum_amount_currency",
            ),
            expires_at=Moment.parse(expires_at) if expires_at is not None else None,
            metadata=dict(entry.get("metadata", {})),
        )

    def identity(self, declared: PromotionCode) -> str:
        return declared.identity

    def forces_replacement(self, root_field: str) -> bool:
        return root_field in PROMOTION_CODE_FIXED

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        chosen: dict[str, StripeObject] = {}
        for code in objects:
            key = str(code.get("code", "")).lower()
            if preferred(chosen.get(key), code):  # the active one, else the newest
                chosen[key] = code
        return {
            self.section: {
                key: LiveObject(c["id"], promotion_code_essence_from_stripe(c), is_managed(c))
                for key, c in chosen.items()
            }
        }

    def unmanaged(self, desired: Desired, snapshot: Snapshot) -> list[str]:
        declared = {code.identity for code in desired.promotion_codes}
        return [
            self.address_of(live.essence.get("code"))
            for key, live in snapshot.promotion_codes.items()
            if key not in declared and live.active
        ]

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        coupons = {c.id: c for c in desired.coupons}
        changes = []
        for code in desired.promotion_codes:
            coupon = coupons.get(code.coupon)
            made_anew = coupon is not None and renewed(coupon, snapshot.coupons.get(coupon.id))
            valid = coupon_valid(snapshot.coupons.get(code.coupon))
            live = snapshot.promotion_codes.get(code.identity)
            changes.append(self._plan_one(code, live, made_anew=made_anew, valid=valid))
        return changes

    def _plan_one(
        self, code: PromotionCode, live: LiveObject | None, *, made_anew: bool, valid: bool
    ) -> ResourceChange:
        after = promotion_code_essence(code)
        if live is None:
            return absent(code.address, self.kind, code.active, after)
        diffs = field_changes(live.essence, after, after.keys())
        fixed = [d.field for d in diffs if self.forces_replacement(root(d.field))]
        adopted = "" if live.managed else " (adopted: not created by stripe-reconcile)"

        def change(action: Action, reason: str, because: ActionReason) -> ResourceChange:
            target = marked(after) if action is Action.REPLACE else after
            return existing(
                code.address,
                self.kind,
                action,
                reason,
                because,
                live=live,
                after=target,
                diffs=diffs,
            )

        if code.active and made_anew:
            return change(Action.REPLACE, _renewed_reason(code.coupon), ActionReason.CANNOT_UPDATE)
        if code.active and fixed:
            reason = f"fixed at creation: {', '.join(fixed)}{adopted}\n{_NEW_CODE}"
            return change(Action.REPLACE, reason, ActionReason.CANNOT_UPDATE)
        if code.active and not live.active and not valid:
            reason = (
                f"{INVALID_COUPON_REASON}\nStripe shows a code active only while its coupon "
                f"{code.coupon} is valid (before its redeem_by, under its max_redemptions): "
                "declare a new coupon, or this code active: false"
            )
            return change(Action.NOOP, reason, ActionReason.COUPON_NOT_VALID)
        if code.active and not live.active:
            return change(Action.REPLACE, _REMADE, ActionReason.CANNOT_UPDATE)
        updatable = [d for d in diffs if not self.forces_replacement(root(d.field))]
        if live.active and not code.active:
            return change(
                Action.DEACTIVATE, "declared active: false", ActionReason.DECLARED_INACTIVE
            )
        if any(d.field != "active" for d in updatable):
            reason = "changed: " + ", ".join(d.field for d in updatable) + adopted
            because = ActionReason.ADOPTED_CHANGED if adopted else ActionReason.CHANGED
            return change(Action.UPDATE, reason, because)
        if fixed:  # retired: a fixed field of an inactive code is not worth a new code
            return change(Action.NOOP, "inactive; not replaced", ActionReason.INACTIVE_NOT_REPLACED)
        return change(Action.NOOP, "matches", ActionReason.MATCHES)

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        after = change.after or {}
        path = at(f"{PATH}/{old}")
        match action:
            case Action.CREATE:
                return [self._create(change)]
            case Action.REPLACE:
                steps = []
                if (change.before or {}).get("active"):
                    # Before the coupon's writes: the code is free once this one is inactive.
                    steps.append(
                        Step(
                            PHASE_CATALOG, address, "deactivate-old", path, const({"active": False})
                        )
                    )
                return [*steps, self._create(change)]
            case Action.UPDATE:
                update = {"metadata": dict(after["metadata"])}
                return [Step(PHASE_DEFAULTS, address, "update", path, const(update))]
            case Action.DEACTIVATE:
                retire: dict[str, Any] = {"active": False}
                if any(c.field.startswith("metadata.") for c in change.changes):
                    retire["metadata"] = dict(after["metadata"])
                return [Step(PHASE_RETIRE, address, "deactivate", path, const(retire))]
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def _create(self, change: ResourceChange) -> Step:
        """After the coupon's own writes (phase ``PHASE_DEFAULTS`` follows the coupons')."""
        params = create_params(change.after or {})
        return Step(PHASE_DEFAULTS, change.address, "create", at(PATH), const(params))

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Creating the new code of a saved replace whose old code is inactive already
        (deactivated by the plan, or with its coupon deleted by it)."""
        return (
            planned is not None
            and planned.action is Action.REPLACE
            and change.action in (Action.REPLACE, Action.CREATE)
            and change.stripe_id in (None, planned.stripe_id)
            and same_target(planned, change)
        )

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        """Active codes, one per code (an inactive code is retired for good: its coupon
        may be gone, and a code declared again is made anew)."""
        coupons = {c["id"] for c in context.listed.get(Kind.COUPON, ())}
        entries: list[dict[str, Any]] = []
        chosen = self.read(context.listed.get(self.kind, ()), ReadContext())[self.section]
        listed = {c["id"]: c for c in context.listed.get(self.kind, ())}
        for _key, live in sorted(chosen.items()):
            essence = live.essence
            if not live.active:
                continue
            if essence["coupon"] not in coupons:
                context.skipped.append(
                    f"promotion code {essence['code']} ({live.stripe_id}): its coupon "
                    f"{essence['coupon']} is not in the account"
                )
                continue
            entry: dict[str, Any] = {"code": essence["code"], "coupon": essence["coupon"]}
            for name in ("customer", "max_redemptions", "expires_at"):
                if essence[name] is not None:
                    entry[name] = essence[name]
            restrictions = {k: v for k, v in essence["restrictions"].items() if v}
            if restrictions:
                entry["restrictions"] = restrictions
            metadata = metadata_entry(listed[live.stripe_id])
            if metadata:
                entry["metadata"] = metadata
            entries.append(entry)
        return entries
