"""Coupons: identified by the id billing.yaml gives them; name, metadata and currency
options change in place; anything else only by deleting the coupon and creating it
again under the same id; retired by deleting.

After docs.stripe.com/api/coupons: the update "updates the metadata of a coupon.
Other coupon details (currency, duration, amount_off) are, by design, not
editable" (it takes ``name``, ``metadata`` and ``currency_options``). A coupon
cannot be archived, only deleted: "deleting a coupon does not affect any
customers who have already applied the coupon; it means that new customers
can't redeem the coupon", and its id is free again for a new coupon. So a
change to a fixed field is a replace that deletes first (the id is taken until
then): the plan says so, and the renders show it as destructive. The new
coupon's redemption count starts at zero, and promotion codes of the old one
go inactive for good (the promotion code kind plans their new ones).

Crash safety: a crash between the delete and the create leaves the coupon
absent, and the next plan creates it; a saved replace re-applied then takes
that create as its own tail (:meth:`CouponSpec.owed`). Two applies at once:
the second's delete finds the coupon gone (a 404 counts as done) and its create
is Stripe's replay of the first's (same key). An add-on kind: coupons are read
only when billing.yaml declares one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    absent,
    changed_params,
    existing,
    field_changes,
    is_managed,
    marked,
    metadata_entry,
    same_target,
    unknown_action,
)
from reconciler.kinds.discount import (
    COUPON_FIXED,
    coupon_essence,
    coupon_essence_from_stripe,
    fixed_coupon_fields,
)
from reconciler.model import Coupon, Desired, Moment, given
from reconciler.plan import Action, ActionReason, FieldChange, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_PRICES, PHASE_RETIRE, Step, at, const

__all__ = ["CouponSpec"]

PATH = "/v1/coupons"
RECREATED = (
    "Stripe changes none of these on a coupon and cannot archive one: it is deleted and "
    "created again under the same id; discounts already given keep working, but its "
    "redemption count restarts, the old coupon object is gone and its promotion codes go "
    "inactive"
)
DELETED = (
    "a coupon cannot be archived: it is deleted; discounts already given keep working, new "
    "redemptions are refused, the coupon object is gone and its promotion codes go inactive"
)


def create_params(coupon_id: str, after: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that create the coupon ``coupon_id`` with this essence."""
    params: dict[str, Any] = {
        "id": coupon_id,
        "duration": after["duration"],
        "metadata": dict(after["metadata"]),
    }
    for name in ("name", "percent_off", "amount_off", "currency", "duration_in_months"):
        if after.get(name) is not None:
            params[name] = after[name]
    if after.get("currency_options"):
        params["currency_options"] = dict(after["currency_options"])
    if after.get("max_redemptions") is not None:
        params["max_redemptions"] = after["max_redemptions"]
    if after.get("redeem_by") is not None:
        moment = Moment.parse(str(after["redeem_by"]))
        params["redeem_by"] = moment.at
    if after.get("applies_to") is not None:
        params["applies_to"] = {"products": list(after["applies_to"])}
    return params


def _update_params(change: ResourceChange) -> dict[str, Any]:
    """Name and metadata as :func:`changed_params` gives them; the currency options added
    or changed (a removed one never reaches an update: it recreates the coupon)."""
    params = changed_params(change, ("name",))
    before = (change.before or {}).get("currency_options") or {}
    after = (change.after or {}).get("currency_options") or {}
    options = {code: option for code, option in after.items() if before.get(code) != option}
    if options:
        params["currency_options"] = options
    return params


class CouponSpec(KindSpec):
    kind = Kind.COUPON
    section = "coupons"
    list_path = PATH
    list_params: ClassVar[Mapping[str, Any]] = {
        "expand": ["data.applies_to", "data.currency_options"]
    }  # both are left out of a coupon unless expanded
    add_on = True
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "id": ("id",),
        "name": ("name",),
        "percent_off": ("percent_off",),
        "amount_off": ("amount_off",),
        "currency": ("currency",),
        "duration": ("duration",),
        "duration_in_months": ("duration_in_months",),
        "max_redemptions": ("max_redemptions",),
        "redeem_by": ("redeem_by",),
        "applies_to": ("applies_to",),
    }

    def build(self, entry: Mapping[str, Any]) -> Coupon:
        percent = entry.get("percent_off")
        applies_to = entry.get("applies_to")
        redeem_by = entry.get("redeem_by")
        return Coupon(
            id=entry["id"],
            **given(
                entry,
                *("duration", "name", "amount_off", "currency"),
                *("duration_in_months", "max_redemptions", "active"),
            ),
            percent_off=Decimal(str(percent)) if percent is not None else None,
            currency_options={
                currency: option["amount_off"]
                for currency, option in (entry.get("currency_options") or {}).items()
            },
            redeem_by=Moment.parse(redeem_by) if redeem_by is not None else None,
            applies_to=tuple(applies_to["products"]) if applies_to is not None else None,
            metadata=dict(entry.get("metadata", {})),
        )

    def identity(self, declared: Coupon) -> str:
        return declared.id

    def forces_replacement(self, root_field: str) -> bool:
        return root_field in COUPON_FIXED

    def param_field(self, param: str) -> tuple[str | int, ...] | None:
        if param.startswith("currency_options["):
            return ("currency_options",)
        if param.startswith("applies_to["):
            return ("applies_to", "products")
        return super().param_field(param)

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        return {
            self.section: {
                c["id"]: LiveObject(c["id"], coupon_essence_from_stripe(c), is_managed(c))
                for c in objects
            }
        }

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        return [self._plan_one(c, snapshot.coupons.get(c.id)) for c in desired.coupons]

    def _plan_one(self, coupon: Coupon, live: LiveObject | None) -> ResourceChange:
        after = coupon_essence(coupon)
        if live is None:
            return absent(coupon.address, self.kind, coupon.active, after)
        if not coupon.active:
            return existing(
                coupon.address,
                self.kind,
                Action.DELETE,
                f"declared active: false\n{DELETED}",
                ActionReason.DECLARED_INACTIVE,
                live=live,
                after=after,
                diffs=(FieldChange("active", True, False),),
            )
        diffs = field_changes(live.essence, after, after.keys())
        fixed = fixed_coupon_fields(diffs)
        adopted = "" if live.managed else " (adopted: not created by stripe-reconcile)"
        if fixed:
            reason = f"fixed at creation: {', '.join(fixed)}{adopted}\n{RECREATED}"
            return existing(
                coupon.address,
                self.kind,
                Action.REPLACE,
                reason,
                ActionReason.CANNOT_UPDATE,
                live=live,
                after=marked(after),  # the new coupon is one stripe-reconcile creates
                diffs=diffs,
            )
        if not diffs:
            action, reason, because = Action.NOOP, "matches", ActionReason.MATCHES
        else:
            action, reason = Action.UPDATE, "changed: " + ", ".join(d.field for d in diffs)
            reason += adopted
            because = ActionReason.ADOPTED_CHANGED if adopted else ActionReason.CHANGED
        return existing(
            coupon.address, self.kind, action, reason, because, live=live, after=after, diffs=diffs
        )

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        match action:
            case Action.CREATE:
                return [self._create(change)]
            case Action.REPLACE:  # the id is the old coupon's until it is deleted
                return [_delete(PHASE_PRICES, address, old), self._create(change)]
            case Action.UPDATE:
                update = _update_params(change)
                return [Step(PHASE_PRICES, address, "update", at(f"{PATH}/{old}"), const(update))]
            case Action.DELETE:
                return [_delete(PHASE_RETIRE, address, old)]
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def _create(self, change: ResourceChange) -> Step:
        """Coupons are written with the prices: after the products they may apply to."""
        params = create_params(self.named(change.address), change.after or {})
        return Step(PHASE_PRICES, change.address, "create", at(PATH), const(params))

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Creating the coupon of a saved replace that deleted it already (the apply
        stopped between the two)."""
        return (
            planned is not None
            and planned.action is Action.REPLACE
            and change.action is Action.CREATE
            and same_target(planned, change)
        )

    def deletes(self, change: ResourceChange) -> str | None:
        match change.action:
            case Action.REPLACE:
                return "deletes the coupon, then creates it again under the same id"
            case Action.DELETE:
                return "deletes the coupon"
            case _:
                return None

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        """Every coupon, valid or not: one past its ``redeem_by`` or redeemed its
        ``max_redemptions`` times is still an object billing.yaml can name."""
        entries: list[dict[str, Any]] = []
        for coupon in sorted(context.listed.get(self.kind, ()), key=lambda c: c["id"]):
            essence = coupon_essence_from_stripe(coupon)
            entry: dict[str, Any] = {"id": coupon["id"]}
            for name in ("name", "amount_off", "currency"):
                if essence[name] is not None:
                    entry[name] = essence[name]
            if essence["percent_off"] is not None:
                entry["percent_off"] = _number(essence["percent_off"])
            if essence["currency_options"]:
                entry["currency_options"] = essence["currency_options"]
            entry["duration"] = essence["duration"]
            for name in ("duration_in_months", "max_redemptions", "redeem_by"):
                if essence[name] is not None:
                    entry[name] = essence[name]
            if essence["applies_to"] is not None:
                entry["applies_to"] = {"products": essence["applies_to"]}
                for product in essence["applies_to"]:
                    context.use(Kind.PRODUCT, product)
            metadata = metadata_entry(coupon)
            if metadata:
                entry["metadata"] = metadata
            entries.append(entry)
        return entries


def _delete(phase: int, address: str, coupon_id: str | None) -> Step:
    return Step(phase, address, "delete", at(f"{PATH}/{coupon_id}"), const({}), method="delete")


def _number(text: str) -> int | float:
    """``"25"`` -> 25, ``"25.5"`` -> 25.5: a percentage as billing.yaml writes it."""
    value = float(text)
    return int(value) if value.is_integer() else value
