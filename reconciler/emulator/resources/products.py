"""Products: ``/v1/products`` create, retrieve, update, list, delete.

A caller may choose the id on create (deterministic identity for the
reconciler); a taken id is ``resource_already_exists``. ``default_price``
must be an active price of the product; a product with prices cannot be
deleted (archive it with ``active=false``).
"""

from __future__ import annotations

from reconciler.emulator.errors import invalid
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, matches_created, paginate
from reconciler.emulator.resources._common import copy_fields, deleted, require_text
from reconciler.emulator.resources.catalog import (
    PRICE,
    PRODUCT,
    PRODUCT_FIELDS,
    build_price,
    make_product,
    move_lookup_key,
)
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["register"]


def create(req: Request) -> JSON:
    params = req.params
    product = make_product(req, params)
    default_price_data = params.get("default_price_data")
    if default_price_data is not None:
        price, holder = build_price(req, default_price_data, product["id"])
        move_lookup_key(req, holder)
        req.store.put(PRICE, price)
        product["default_price"] = price["id"]
    req.store.put(PRODUCT, product)
    emit(req, "product.created", product)
    if default_price_data is not None:
        emit(req, "price.created", req.store.get(PRICE, str(product["default_price"])))
    return product


def retrieve(req: Request) -> JSON:
    return req.store.get(PRODUCT, req.path_params["id"])


def update(req: Request) -> JSON:
    product = req.store.get(PRODUCT, req.path_params["id"])
    params = req.params
    if "name" in params:
        product["name"] = require_text(params, "name")
    if "active" in params:
        product["active"] = params["active"] is not False
    if "metadata" in params:
        product["metadata"] = apply_metadata(product["metadata"], params["metadata"])
    if "default_price" in params:
        price_id = params["default_price"]
        if price_id is not None:
            price = req.store.get(PRICE, str(price_id), param="default_price", status=400)
            if price["product"] != product["id"]:
                raise invalid(
                    f"The price {price_id} belongs to another product; the default price must "
                    "be a price of this product.",
                    param="default_price",
                )
            if not price["active"]:
                raise invalid(
                    f"The price {price_id} is archived; the default price must be active.",
                    param="default_price",
                )
        product["default_price"] = price_id
    copy_fields(product, params, [f for f in PRODUCT_FIELDS if f not in ("images",)])
    if "images" in params:
        product["images"] = params["images"] or []
    if "tax_details" in params:
        product["tax_details"] = params["tax_details"]
    product["updated"] = req.now()
    req.store.put(PRODUCT, product)
    emit(req, "product.updated", product)
    return product


def list_(req: Request) -> JSON:
    params = req.params
    ids = set(params.get("ids") or [])
    items = [
        product
        for product in req.store.newest_first(PRODUCT)
        if ("active" not in params or product["active"] == params["active"])
        and (not ids or product["id"] in ids)
        and ("shippable" not in params or product["shippable"] == params["shippable"])
        and ("type" not in params or product["type"] == params["type"])
        and ("url" not in params or product["url"] == params["url"])
        and matches_created(product, params.get("created"))
    ]
    return paginate(req, items, "/v1/products", label="product")


def delete(req: Request) -> JSON:
    product = req.store.get(PRODUCT, req.path_params["id"])
    if any(price["product"] == product["id"] for price in req.store.values(PRICE)):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices; "
            "archive it with `active=false` instead."
        )
    emit(req, "product.deleted", product)
    req.store.delete(PRODUCT, product["id"])
    return deleted("product", product["id"])


def register(registry: Registry) -> None:
    registry.object_type(ObjectType("product", expandable={"default_price": PRICE}))
    registry.route("POST", "/v1/products", create, params="ProductCreateParams")
    registry.route("GET", "/v1/products", list_, params="ProductListParams")
    registry.route("GET", "/v1/products/{id}", retrieve, params="ProductRetrieveParams")
    registry.route("POST", "/v1/products/{id}", update, params="ProductUpdateParams")
    registry.route("DELETE", "/v1/products/{id}", delete, params="ProductDeleteParams")
