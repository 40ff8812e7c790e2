"""Entitlement features (``/v1/entitlements/features``) and product features
(``/v1/products/{product}/features``).

Features (docs.stripe.com/api/entitlements/feature; the SDK's
``entitlements.Feature*Params``):

- create takes ``lookup_key`` and ``name`` (each "may be up to 80
  characters") and ``metadata``; the lookup key is the feature's identity,
  unique among active features (Stripe: "A unique key you provide as your own
  system identifier"); a taken key is ``resource_already_exists``;
- update takes ``name``, ``metadata`` and ``active`` only (anything else is
  ``parameter_unknown``). ``active=false`` archives: "Inactive features cannot
  be attached to new products and will not be returned from the features list
  endpoint" (``FeatureUpdateParams.active``). Archiving is final: an archived
  feature is neither edited nor reactivated, archiving it again changes nothing
  (the cautious reading; providers
  built on the API say "Archived features cannot be edited or unarchived", and
  an archived lookup key can be used again by a new feature);
- list, newest first, leaves archived features out unless ``archived=true``
  (which lists only those); ``lookup_key`` filters on the key;
- there is no delete and no event (the SDK's event types name none for features).

Product features (docs.stripe.com/api/product-feature; the SDK's
``ProductFeature*Params``): attach (``entitlement_feature``), list, retrieve
and delete; no update. The feature must exist (400 ``resource_missing`` on
``entitlement_feature``), be active, and not be attached to the product
already. A product feature shows its ``entitlement_feature`` as the whole
feature object, as it is now. No events: the SDK's event types have none for
product features, and attaching changes no field of the product object.
"""

from __future__ import annotations

import secrets
import string

from reconciler.emulator.errors import already_exists, invalid, no_such
from reconciler.emulator.render import apply_metadata, paginate
from reconciler.emulator.resources._common import deleted, require_text
from reconciler.emulator.resources.catalog import PRODUCT
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["FEATURE", "PRODUCT_FEATURE", "register"]

FEATURE = "entitlements.feature"
PRODUCT_FEATURE = "product_feature"
#: "This may be up to 80 characters" (lookup_key); the name has the same limit.
MAX_LOOKUP_KEY = 80
MAX_NAME = 80
_ALPHABET = string.ascii_letters + string.digits


def _feature_id() -> str:
    """Stripe's test-mode feature ids look like ``feat_test_61QGU1MWyFMSP9YBZ41ClCIKljWvsTgu``."""
    return "feat_test_61" + "".join(secrets.choice(_ALPHABET) for _ in range(30))


def _active_with_key(req: Request, lookup_key: str) -> JSON | None:
    for feature in req.store.values(FEATURE):
        if feature["active"] and feature["lookup_key"] == lookup_key:
            return feature
    return None


def _get_feature(req: Request, feature_id: str) -> JSON:
    return req.store.get(FEATURE, feature_id, label="feature")


# --- features ----------------------------------------------------------------------------------
def create_feature(req: Request) -> JSON:
    params = req.params
    lookup_key = require_text(params, "lookup_key", max_length=MAX_LOOKUP_KEY)
    name = require_text(params, "name", max_length=MAX_NAME)
    holder = _active_with_key(req, lookup_key)
    if holder is not None:
        raise already_exists(
            f"A feature with lookup_key '{lookup_key}' already exists ({holder['id']}); "
            "lookup keys are unique among active features.",
            param="lookup_key",
        )
    feature: JSON = {
        "id": _feature_id(),
        "object": "entitlements.feature",
        "active": True,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "name": name,
    }
    return req.store.put(FEATURE, feature)


def retrieve_feature(req: Request) -> JSON:
    return _get_feature(req, req.path_params["id"])


def update_feature(req: Request) -> JSON:
    feature = _get_feature(req, req.path_params["id"])
    params = req.params
    changes: set[str] = {name for name in ("name", "metadata") if name in params}
    if params.get("active") is True:
        changes.add("active")
    if not feature["active"] and changes:
        raise invalid(
            f"The feature {feature['id']} is archived; archived features cannot be updated "
            "or reactivated. Create a new feature (the lookup key is free again).",
            param="active" if "active" in params else sorted(changes)[0],
        )
    if "name" in params:
        feature["name"] = require_text(params, "name", max_length=MAX_NAME)
    if "metadata" in params:
        feature["metadata"] = apply_metadata(feature["metadata"], params["metadata"])
    if params.get("active") is False:
        feature["active"] = False
    return req.store.put(FEATURE, feature)


def list_features(req: Request) -> JSON:
    params = req.params
    archived = params.get("archived") is True
    lookup_key = params.get("lookup_key")
    items = [
        feature
        for feature in req.store.newest_first(FEATURE)
        if feature["active"] is not archived
        and (lookup_key is None or feature["lookup_key"] == lookup_key)
    ]
    return paginate(req, items, "/v1/entitlements/features", label="feature")


# --- product features --------------------------------------------------------------------------
def _product(req: Request) -> JSON:
    return req.store.get(PRODUCT, req.path_params["product"], param="product")


def _attachments(req: Request, product_id: str) -> list[JSON]:
    return [pf for pf in req.store.newest_first(PRODUCT_FEATURE) if pf["product"] == product_id]


def attach_feature(req: Request) -> JSON:
    product = _product(req)
    feature_id = str(req.params["entitlement_feature"])
    feature = req.store.get(
        FEATURE, feature_id, label="feature", param="entitlement_feature", status=400
    )
    if not feature["active"]:
        raise invalid(
            f"The feature {feature_id} is archived; inactive features cannot be attached to "
            "products.",
            param="entitlement_feature",
        )
    for existing in _attachments(req, product["id"]):
        if existing["entitlement_feature"] == feature_id:
            raise already_exists(
                f"The feature {feature_id} is already attached to the product {product['id']} "
                f"({existing['id']}).",
                param="entitlement_feature",
            )
    attachment: JSON = {
        "id": new_id("prodft", 14),
        "object": "product_feature",
        "entitlement_feature": feature_id,
        "livemode": False,
        # Emulator bookkeeping (not a Stripe field; dropped when rendered).
        "product": product["id"],
    }
    return req.store.put(PRODUCT_FEATURE, attachment)


def _attachment(req: Request) -> JSON:
    product = _product(req)
    attachment_id = req.path_params["id"]
    found = req.store.find(PRODUCT_FEATURE, attachment_id)
    if found is None or found["product"] != product["id"]:
        raise no_such("product_feature", attachment_id)
    return found


def retrieve_product_feature(req: Request) -> JSON:
    return _attachment(req)


def list_product_features(req: Request) -> JSON:
    product = _product(req)
    return paginate(
        req,
        _attachments(req, product["id"]),
        f"/v1/products/{product['id']}/features",
        label="product_feature",
    )


def detach_feature(req: Request) -> JSON:
    attachment = _attachment(req)
    req.store.delete(PRODUCT_FEATURE, attachment["id"])
    return deleted("product_feature", attachment["id"])


def _product_feature_transform(obj: JSON, version: str) -> None:
    obj.pop("product", None)


def register(registry: Registry) -> None:
    registry.object_type(ObjectType(FEATURE))
    registry.object_type(
        ObjectType(
            PRODUCT_FEATURE,
            embedded={"entitlement_feature": FEATURE},
            transform=_product_feature_transform,
        )
    )
    base = "/v1/entitlements/features"
    registry.route("POST", base, create_feature, params="entitlements.FeatureCreateParams")
    registry.route("GET", base, list_features, params="entitlements.FeatureListParams")
    registry.route(
        "GET", base + "/{id}", retrieve_feature, params="entitlements.FeatureRetrieveParams"
    )
    registry.route(
        "POST", base + "/{id}", update_feature, params="entitlements.FeatureUpdateParams"
    )
    attached = "/v1/products/{product}/features"
    registry.route("POST", attached, attach_feature, params="ProductFeatureCreateParams")
    registry.route("GET", attached, list_product_features, params="ProductFeatureListParams")
    registry.route(
        "GET", attached + "/{id}", retrieve_product_feature, params="ProductFeatureRetrieveParams"
    )
    registry.route(
        "DELETE", attached + "/{id}", detach_feature, params="ProductFeatureDeleteParams"
    )
