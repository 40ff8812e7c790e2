"""Customers: ``/v1/customers`` create, retrieve, update, list, delete.

Enough of the customer for billing: contact fields, metadata and the
``test_clock`` it lives on (which must exist; it cannot change later).

Payment methods (docs.stripe.com/api/customers/create): ``payment_method``
on create attaches that PaymentMethod (a test card such as ``pm_card_visa``
becomes a new ``pm_`` attached to the customer, see :mod:`.payment_methods`);
``invoice_settings.default_payment_method`` must name one attached to the
customer, or the test card given as ``payment_method`` in the same request
(Stripe's own Billing quickstart creates customers this way). Sources
(``source``, ``default_source``) and the other ``invoice_settings`` keys
beyond ``default_payment_method``, ``footer``, ``custom_fields`` and
``rendering_options`` are not emulated.
"""

from __future__ import annotations

import secrets

from reconciler.emulator.errors import invalid
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, matches_created, paginate
from reconciler.emulator.resources._common import copy_fields, deleted
from reconciler.emulator.resources.payment_methods import (
    attach_to,
    check_attach,
    customer_payment_method,
)
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
    if params.get("source") is not None:
        raise invalid("The emulator does not support sources (not emulated).", param="source")
    # Refused before anything is created: a payment method that cannot be attached,
    # a default payment method that is not the one attached here.
    if params.get("payment_method") is not None:
        check_attach(req, str(params["payment_method"]), None, param="payment_method")
    settings = params.get("invoice_settings") or {}
    default_pm = settings.get("default_payment_method")
    if default_pm is not None and default_pm != params.get("payment_method"):
        customer_payment_method(
            req, str(default_pm), customer["id"], "invoice_settings[default_payment_method]"
        )
    _invoice_settings(
        req,
        dict(customer),
        {k: v for k, v in settings.items() if k != "default_payment_method"},
        params,
        None,
    )
    req.store.put(CUSTOMER, customer)
    emit(req, "customer.created", customer)
    attached: JSON | None = None
    if params.get("payment_method") is not None:
        pm_id = str(params["payment_method"])
        attached = attach_to(req, pm_id, customer, param="payment_method", when=req.now())
    if params.get("invoice_settings") is not None:
        _invoice_settings(req, customer, params["invoice_settings"], params, attached)
        req.store.put(CUSTOMER, customer)
        emit(req, "customer.updated", customer)  # folds into customer.created
    return customer


def _invoice_settings(
    req: Request, customer: JSON, given: JSON | None, params: JSON, attached: JSON | None
) -> None:
    """Apply ``invoice_settings`` (the default payment method must be the customer's)."""
    if given is None:
        return
    settings = dict(customer["invoice_settings"])
    for key, value in given.items():
        if key not in settings:
            raise invalid(
                f"The emulator does not support invoice_settings[{key}] (not emulated).",
                param=f"invoice_settings[{key}]",
            )
        settings[key] = value
    pm_id = given.get("default_payment_method")
    if pm_id is not None:
        if attached is not None and pm_id == params.get("payment_method"):
            settings["default_payment_method"] = attached["id"]
        else:
            param = "invoice_settings[default_payment_method]"
            customer_payment_method(req, str(pm_id), customer["id"], param)
    customer["invoice_settings"] = settings


def retrieve(req: Request) -> JSON:
    return req.store.get(CUSTOMER, req.path_params["id"])


def update(req: Request) -> JSON:
    customer = req.store.get(CUSTOMER, req.path_params["id"])
    params = req.params
    copy_fields(customer, params, SIMPLE_FIELDS)
    _normalise(customer)
    if "metadata" in params:
        customer["metadata"] = apply_metadata(customer["metadata"], params["metadata"])
    if params.get("source") is not None:
        raise invalid("The emulator does not support sources (not emulated).", param="source")
    _invoice_settings(req, customer, params.get("invoice_settings"), params, None)
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
