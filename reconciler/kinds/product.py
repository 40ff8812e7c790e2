"""Products: identified by their Stripe id (given on create, or an existing one to
adopt); everything billing.yaml manages changes in place; retired by archiving.

A product also points at its default price: once every price exists, each
product whose declared default moved is pointed at it, and before a default
price is archived its product lets go of it. The features it grants
(``features:``) are planned as their own kind (``product_feature.py``); import
writes them into its entry.
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
    archivable,
    id_of,
    is_managed,
    metadata_entry,
    same_target,
    unknown_action,
    update_then_archive,
)
from reconciler.model import Desired, Product, carries_marker, given
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import (
    PHASE_CATALOG,
    PHASE_DEFAULTS,
    PHASE_RETIRE,
    Resolver,
    Step,
    at,
    const,
)

__all__ = [
    "PRODUCT_UPDATABLE",
    "ProductSpec",
    "product_essence",
    "product_essence_from_stripe",
]

PRODUCT_UPDATABLE = frozenset({"name", "description", "metadata", "active", "default_price"})


def product_essence(product: Product, default_price: str | None) -> Essence:
    """``default_price`` is the lookup key of the declared default price, if any."""
    out: Essence = {
        "name": product.name,
        "description": product.description,
        "metadata": dict(product.metadata),
        "active": product.active,
    }
    if default_price is not None:
        out["default_price"] = default_price
    return out


def product_essence_from_stripe(obj: Mapping[str, Any], default_price: str | None) -> Essence:
    """``default_price`` is the lookup key (or id) of the product's default price."""
    return {
        "name": obj.get("name"),
        "description": obj.get("description") or None,
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
        "default_price": default_price,
    }


def _default_price_params(lookup_key: str) -> Resolver:
    return lambda ids: {"default_price": ids.of(Kind.PRICE, lookup_key)}


class ProductSpec(KindSpec):
    kind = Kind.PRODUCT
    section = "products"
    list_path = "/v1/products"
    read_after = (Kind.PRICE,)
    import_after = (Kind.PRICE, Kind.COUPON)
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "name": ("name",),
        "description": ("description",),
        "id": ("id",),
    }

    def build(self, entry: Mapping[str, Any]) -> Product:
        features = entry.get("features")
        return Product(
            id=entry["id"],
            name=entry["name"],
            metadata=dict(entry.get("metadata", {})),
            features=None if features is None else tuple(features),
            **given(entry, "description", "active"),
        )

    def identity(self, declared: Product) -> str:
        return declared.id

    def forces_replacement(self, root_field: str) -> bool:
        return False  # every managed field changes in place

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        products: dict[str, LiveObject] = {}
        for product in objects:
            default_id = id_of(product.get("default_price"))
            default_key = context.name(Kind.PRICE, default_id) if default_id else None
            products[product["id"]] = LiveObject(
                product["id"],
                product_essence_from_stripe(product, default_key),
                is_managed(product),
            )
        return {"products": products}

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        defaults = desired.default_prices()
        return [
            archivable(
                product.address,
                self.kind,
                snapshot.products.get(product.id),
                product_essence(product, defaults.get(product.id)),
            )
            for product in desired.products
        ]

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        after = change.after or {}
        match action:
            case Action.CREATE:
                params = {
                    "id": self.named(address),
                    "name": after["name"],
                    "metadata": dict(after["metadata"]),
                }
                if after.get("description"):
                    params["description"] = after["description"]
                return [Step(PHASE_CATALOG, address, "create", at("/v1/products"), const(params))]
            case Action.UPDATE | Action.ARCHIVE:
                return update_then_archive(
                    change,
                    f"/v1/products/{old}",
                    ("name", "description", "active"),
                    phases=(PHASE_CATALOG, PHASE_RETIRE),
                )
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """A created product whose default price is still to be pointed at, or a product
        whose default moves to the replacement of a price the plan replaced."""
        if change.action is not Action.UPDATE:
            return False
        only_default = all(c.field == "default_price" for c in change.changes)
        if planned is not None and planned.action is Action.CREATE and same_target(planned, change):
            return carries_marker((change.before or {}).get("metadata")) and only_default
        product = self.named(change.address)
        moves_default = {
            c.details.get("default_of") for c in saved.actionable if c.action is Action.REPLACE
        }
        return product in moves_default and only_default

    def plan_steps(self, plan: Plan) -> list[Step]:
        """Point each product at its declared default price once every price exists (a
        replaced default price's product at its replacement)."""
        wanted = {
            str(c.details["default_of"]): c.address.removeprefix(f"{c.kind}.")
            for c in plan.actionable
            if c.kind is Kind.PRICE and c.action is Action.REPLACE and c.details.get("default_of")
        }
        for change in plan.actionable:
            if change.kind is not self.kind or change.action is Action.ARCHIVE:
                continue
            product = self.named(change.address)
            lookup_key = (change.after or {}).get("default_price")
            moved = change.action is Action.CREATE or any(
                c.field == "default_price" for c in change.changes
            )
            if lookup_key and moved:
                wanted[product] = lookup_key
        return [
            Step(
                PHASE_DEFAULTS,
                self.address_of(product),
                "default-price",
                at(f"/v1/products/{product}"),
                _default_price_params(lookup_key),
            )
            for product, lookup_key in sorted(wanted.items())
        ]

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for product in sorted(context.listed.get(self.kind, ()), key=lambda p: p["id"]):
            active = product.get("active", True)
            if not active and not context.uses(self.kind, product["id"]):
                continue
            entry: dict[str, Any] = {"id": product["id"], "name": product.get("name")}
            if product.get("description"):
                entry["description"] = product["description"]
            metadata = metadata_entry(product)
            if metadata:
                entry["metadata"] = metadata
            entry.update(context.fields_of(self.kind, product["id"]))
            if not active:
                entry["active"] = False
            entries.append(entry)
        return entries
