"""Customers: ``/v1/customers`` create, retrieve, update, list, delete.

Enough of the customer for billing: contact fields, metadata and the
``test_clock`` it lives on (which must exist; it cannot change later).
"""

from __future__ import annotations

import secrets

from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, matches_created, paginate
from reconciler.emulator.resources._common import copy_fields, deleted
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = ["ADDRESS_KEYS", "CUSTOMER", "full_address", "register"]

CUSTOMER = "customer"
TEST_CLOCK = "test_helpers.test_clock"
SIMPLE_FIELDS = (
    "address",
    "balance",
    "business_name",
    "individual_name",
    "description",
    "email",
    "name",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
    "next_invoice_sequence",
    "invoice_prefix",
)


ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def full_address(given: JSON | None) -> JSON | None:
    """An address as Stripe returns it: every key, ``null`` where nothing was given."""
    if given is None:
        return None
    return {key: given.get(key) for key in ADDRESS_KEYS}


def _normalise(customer: JSON) -> None:
    customer["address"] = full_address(customer.get("address"))
    shipping = customer.get("shipping")
    if shipping is not None:
        customer["shipping"] = {
            "address": full_address(shipping.get("address") or {}),
            "name": shipping.get("name"),
            "phone": shipping.get("phone"),
        }
    if customer["preferred_locales"] is None:
        customer["preferred_locales"] = []
    if customer["tax_exempt"] is None:
        customer["tax_exempt"] = "none"


def create(req: Request) -> JSON:
    params = req.params
    clock_id = params.get("test_clock")
    if clock_id is not None:
        req.store.get(TEST_CLOCK, str(clock_id), label="test_clock", param="test_clock", status=400)
    customer: JSON = {
        "id": new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": req.now(),
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "individual_name": None,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock_id,
    }
    copy_fields(customer, params, SIMPLE_FIELDS)
    _normalise(customer)
    req.store.put(CUSTOMER, customer)
    emit(req, "customer.created", customer)
    return customer


def retrieve(req: Request) -> JSON:
    return req.store.get(CUSTOMER, req.path_params["id"])


def update(req: Request) -> JSON:
    customer = req.store.get(CUSTOMER, req.path_params["id"])
    params = req.params
    copy_fields(customer, params, SIMPLE_FIELDS)
    _normalise(customer)
    if "metadata" in params:
        customer["metadata"] = apply_metadata(customer["metadata"], params["metadata"])
    if "invoice_settings" in params and params["invoice_settings"] is not None:
        settings = dict(customer["invoice_settings"])
        settings.update({k: v for k, v in params["invoice_settings"].items() if k in settings})
        customer["invoice_settings"] = settings
    req.store.put(CUSTOMER, customer)
    emit(req, "customer.updated", customer)
    return customer


def list_(req: Request) -> JSON:
    params = req.params
    items = [
        customer
        for customer in req.store.newest_first(CUSTOMER)
        if (not params.get("email") or customer["email"] == params["email"])
        and (not params.get("test_clock") or customer["test_clock"] == params["test_clock"])
        and matches_created(customer, params.get("created"))
    ]
    return paginate(req, items, "/v1/customers", label="customer")


def delete(req: Request) -> JSON:
    customer = req.store.get(CUSTOMER, req.path_params["id"])
    emit(req, "customer.deleted", customer)
    req.store.delete(CUSTOMER, customer["id"])
    return deleted("customer", customer["id"])


def register(registry: Registry) -> None:
    registry.object_type(ObjectType("customer", expandable={"test_clock": TEST_CLOCK}))
    registry.route("POST", "/v1/customers", create, params="CustomerCreateParams")
    registry.route("GET", "/v1/customers", list_, params="CustomerListParams")
    registry.route("GET", "/v1/customers/{id}", retrieve, params="CustomerRetrieveParams")
    registry.route("POST", "/v1/customers/{id}", update, params="CustomerUpdateParams")
    registry.route("DELETE", "/v1/customers/{id}", delete, params="CustomerDeleteParams")
