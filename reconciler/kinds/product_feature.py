"""The features attached to each product: ``features: [<lookup key>, ...]`` on a product.

After docs.stripe.com/api/product-feature: an attachment (a ``product_feature``)
links one entitlement feature to one product; it is created with
``entitlement_feature`` (the feature's id), listed per product, and deleted;
it has no update and no metadata, and Stripe refuses the same feature twice on
one product. So each declared pair is its own object: attached when absent,
detached (DELETE; one already gone counts as done) when the product no longer
lists it. Only a product that declares ``features:`` has its attachments read
and planned: a product without the key leaves them as they are, so adopting a
catalog writes nothing it does not declare. Its address is
``product_feature.<product id>/<feature lookup key>``.

Order: attachments are made once the products and features of the same apply
exist (the feature's id resolved late), and detached before anything is
archived. An archived feature may stay attached in Stripe ("Inactive features
cannot be attached to new products", FeatureUpdateParams.active, says nothing
of existing attachments), and its lookup key is free for a new feature, so a
feature being archived is detached first: validate refuses a product listing
a feature declared ``active: false``, and the detach runs in the phase before
the archive. An attachment read whose feature is not among the active
features (archived since) is keyed by the feature's id, which no declaration
names: on a product that declares ``features:`` it is detached.

An add-on kind: read, one list request per product declaring ``features:``,
only then (nothing when billing.yaml declares none), and by ``import`` for
every product when the key can read entitlements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from reconciler.errors import ReconcileError, StripeCallError
from reconciler.kinds import Kind
from reconciler.kinds.base import (
    Essence,
    ImportContext,
    KindSpec,
    Lister,
    ReadContext,
    StripeObject,
    absent,
    existing,
    id_of,
    unknown_action,
)
from reconciler.model import Desired, ProductFeature
from reconciler.plan import Action, ActionReason, FieldChange, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import (
    PHASE_DEFAULTS,
    PHASE_UNSET_DEFAULTS,
    Ids,
    Resolver,
    Step,
    at,
    const,
)

__all__ = ["ProductFeatureSpec", "attachment_essence"]

PHASE_ATTACH = PHASE_DEFAULTS
"""Once every product and feature exists, as products point at their default price."""
PHASE_DETACH = PHASE_UNSET_DEFAULTS
"""What lets go of an object before anything is archived (a feature's archive included)."""


def attachment_essence(product: str, feature: str, *, attached: bool = True) -> Essence:
    """``feature`` is the lookup key (or, for a feature no longer active, its id)."""
    return {"product": product, "feature": feature, "attached": attached}


def _path(product: str) -> str:
    return f"/v1/products/{product}/features"


def _split(identity: str) -> tuple[str, str]:
    """``prod_x/hd_export`` -> (``prod_x``, ``hd_export``): a product id has no ``/``."""
    product, slash, feature = identity.partition("/")
    if not (product and slash and feature):
        raise ReconcileError(
            f"product_feature.{identity}: not <product id>/<feature lookup key>; plan again"
        )
    return product, feature


class ProductFeatureSpec(KindSpec):
    kind = Kind.PRODUCT_FEATURE
    section = "product_features"
    list_path = "/v1/products/{product}/features"
    read_after = (Kind.FEATURE,)
    add_on = True
    nested = True

    def declared(self, desired: Desired) -> tuple[ProductFeature, ...]:
        return tuple(
            ProductFeature(product.id, feature)
            for product in desired.products
            for feature in product.features or ()
        )

    def reads(self, desired: Desired) -> bool:
        return any(product.features is not None for product in desired.products)

    def listing(self, list_all: Lister, desired: Desired | None) -> Iterator[dict[str, Any]]:
        """Each product's attachments, marked with the product (Stripe's attachment does
        not name it): the products declaring ``features:``, or every product."""
        if desired is None:
            products: Iterable[str] = (p["id"] for p in list_all("/v1/products", {}))
        else:
            products = [p.id for p in desired.products if p.features is not None]
        for product in products:
            try:
                for attachment in list_all(_path(product), {}):
                    yield {**attachment, "product": product}
            except StripeCallError as exc:
                if exc.http_status != 404:  # a product not made yet has no attachments
                    raise

    def build(self, entry: Mapping[str, Any]) -> ProductFeature:
        """A pair given as ``{product, feature}`` (billing.yaml spells them inside each
        product, see ``declared``)."""
        return ProductFeature(product=entry["product"], feature=entry["feature"])

    def identity(self, declared: ProductFeature) -> str:
        return declared.identity

    def forces_replacement(self, root_field: str) -> bool:
        return False  # nothing to change: an attachment is there or not

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        found: dict[str, LiveObject] = {}
        for attachment in objects:
            product = str(attachment["product"])
            feature = context.name(Kind.FEATURE, str(id_of(attachment["entitlement_feature"])))
            found.setdefault(
                f"{product}/{feature}",
                LiveObject(attachment["id"], attachment_essence(product, feature)),
            )
        return {self.section: found}

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        for product in desired.products:
            if product.features is None:
                continue
            for key in product.features:
                pair = ProductFeature(product.id, key)
                after = attachment_essence(product.id, key)
                live = snapshot.product_features.get(pair.identity)
                if live is None:
                    changes.append(absent(pair.address, self.kind, True, after))
                else:
                    changes.append(
                        existing(
                            pair.address,
                            self.kind,
                            Action.NOOP,
                            "matches",
                            ActionReason.MATCHES,
                            live=live,
                            after=after,
                            diffs=(),
                        )
                    )
            declared = {f"{product.id}/{key}" for key in product.features}
            for identity, live in sorted(snapshot.product_features.items()):
                owner, feature = _split(identity)
                if owner != product.id or identity in declared:
                    continue
                changes.append(
                    existing(
                        self.address_of(identity),
                        self.kind,
                        Action.ARCHIVE,
                        f"not among {product.address}'s features: detach it",
                        ActionReason.UNDECLARED,
                        live=live,
                        after=attachment_essence(owner, feature, attached=False),
                        diffs=(FieldChange("attached", True, False),),
                    )
                )
        return changes

    def unmanaged(self, desired: Desired, snapshot: Snapshot) -> list[str]:
        return []  # only declaring products are read, and each of theirs is planned

    def steps(self, change: ResourceChange) -> list[Step]:
        match change.action:
            case Action.CREATE:
                product, feature = _split(self.named(change.address))
                return [
                    Step(
                        PHASE_ATTACH,
                        change.address,
                        "attach",
                        at(_path(product)),
                        _attach_params(feature),
                    )
                ]
            case Action.ARCHIVE:
                product, _feature = _split(self.named(change.address))
                return [
                    Step(
                        PHASE_DETACH,
                        change.address,
                        "detach",
                        at(f"{_path(product)}/{change.stripe_id}"),
                        const({}),
                        method="delete",
                    )
                ]
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def finished(self, planned: ResourceChange, snapshot: Snapshot) -> bool:
        """A saved detach whose attachment is gone was done (by this plan or another)."""
        gone = self.named(planned.address) not in snapshot.product_features
        return planned.action is Action.ARCHIVE and gone

    def prepare_import(self, context: ImportContext) -> None:
        """Each product's ``features:``, when every feature attached to it is an active
        one billing.yaml can name; a product with an archived feature attached keeps
        no ``features:`` (so plan leaves its attachments alone) and is listed as skipped."""
        features = context.names.get(Kind.FEATURE, {})
        by_product: dict[str, list[str]] = {}
        archived: dict[str, list[str]] = {}
        for attachment in context.listed.get(self.kind, ()):
            product = str(attachment["product"])
            feature_id = str(id_of(attachment["entitlement_feature"]))
            if feature_id in features:
                by_product.setdefault(product, []).append(features[feature_id])
            else:
                archived.setdefault(product, []).append(feature_id)
        for product, ids in sorted(archived.items()):
            context.skipped.append(
                f"the features of product {product}: archived feature "
                f"{', '.join(sorted(ids))} still attached (billing.yaml cannot name it)"
            )
        context.fields[Kind.PRODUCT] = {
            product: {"features": sorted(keys)}
            for product, keys in by_product.items()
            if product not in archived
        }

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        return []  # written into each product's entry (see prepare_import)


def _attach_params(feature: str) -> Resolver:
    """The feature's id, known from the account or from its creation earlier in the apply."""

    def resolve(ids: Ids) -> Mapping[str, Any]:
        return {"entitlement_feature": ids.of(Kind.FEATURE, feature)}

    return resolve
