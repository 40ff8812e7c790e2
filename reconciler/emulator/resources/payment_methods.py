"""Payment methods: Stripe's test cards, attach, detach, retrieve and list.

Stripe's test mode has no card numbers to post: integrations use the test
PaymentMethod ids its testing page documents (docs.stripe.com/testing,
"Test cards" and "Declined payments"), e.g. ``pm_card_visa``. Each use of
such an id makes a new PaymentMethod (``pm_...``); attaching one to a
customer (``POST /v1/payment_methods/{id}/attach``,
docs.stripe.com/api/payment_methods/attach) stores that copy there.

Emulated here:

- the brand cards (:data:`TEST_CARDS`): ``pm_card_visa``,
  ``pm_card_visa_debit``, ``pm_card_mastercard``, ``pm_card_mastercard_debit``,
  ``pm_card_mastercard_prepaid``, ``pm_card_amex``, ``pm_card_discover``,
  ``pm_card_diners``, ``pm_card_jcb``, ``pm_card_unionpay``;
- ``pm_card_chargeCustomerFail`` (4000000000000341): "attaching this card to a
  Customer object succeeds, but attempts to charge the customer fail" -- the
  card for failed renewals and failed first invoices;
- the decline cards (``pm_card_chargeDeclined``, ``pm_card_visa_chargeDeclined``,
  ``pm_card_chargeDeclinedInsufficientFunds``,
  ``pm_card_visa_chargeDeclinedInsufficientFunds``,
  ``pm_card_visa_chargeDeclinedLostCard``, ``pm_card_visa_chargeDeclinedStolenCard``,
  ``pm_card_chargeDeclinedFraudulent``, ``pm_card_chargeDeclinedExpiredCard``,
  ``pm_card_chargeDeclinedIncorrectCvc``, ``pm_card_chargeDeclinedProcessingError``):
  Stripe checks a card when it is attached, so these cannot be attached: the
  attach (or a customer create naming one) is a 402 ``card_error`` with the
  card's ``code`` and ``decline_code`` (docs.stripe.com/declines/codes). Used
  directly to pay an invoice (``POST /v1/invoices/{id}/pay`` with
  ``payment_method``), they decline the same way.

Any other ``pm_card_...`` id is ``No such PaymentMethod``. Creating payment
methods from raw card data (``POST /v1/payment_methods``), SetupIntents and
PaymentIntents are not emulated (refused, see :mod:`.collection`).

Rules: a PaymentMethod attaches to one customer; attaching it again to the
same customer returns it unchanged, to another is refused; a detached one
cannot be used again. Detaching a customer's default payment method clears
``invoice_settings.default_payment_method`` and the ``default_payment_method``
of the customer's subscriptions. Events: ``payment_method.attached``,
``payment_method.detached`` (and ``customer.updated`` /
``customer.subscription.updated`` for the cleared defaults).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.emulator.errors import ApiError, invalid, missing_param, no_such
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, paginate
from reconciler.emulator.resources.billing import CUSTOMER, SUBSCRIPTION
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = [
    "DECLINES",
    "PAYMENT_METHOD",
    "TEST_CARDS",
    "SimulatedCard",
    "attach_to",
    "card_error",
    "charge_decline",
    "check_attach",
    "customer_payment_method",
    "register",
]

PAYMENT_METHOD = "payment_method"
LABEL = "PaymentMethod"


@dataclass(frozen=True)
class SimulatedCard:
    """One of Stripe's test PaymentMethods: the card it stands for and how it behaves."""

    brand: str
    last4: str
    funding: str = "credit"
    #: Declined when attached (Stripe checks the card then): the decline code.
    attach_decline: str | None = None
    #: Attaches, then every charge is declined: the decline code.
    charge_decline: str | None = None


TEST_CARDS: dict[str, SimulatedCard] = {
    "pm_card_visa": SimulatedCard("visa", "4242"),
    "pm_card_visa_debit": SimulatedCard("visa", "5556", "debit"),
    "pm_card_mastercard": SimulatedCard("mastercard", "4444"),
    "pm_card_mastercard_debit": SimulatedCard("mastercard", "8210", "debit"),
    "pm_card_mastercard_prepaid": SimulatedCard("mastercard", "5100", "prepaid"),
    "pm_card_amex": SimulatedCard("amex", "8431"),
    "pm_card_discover": SimulatedCard("discover", "1117"),
    "pm_card_diners": SimulatedCard("diners", "0004"),
    "pm_card_jcb": SimulatedCard("jcb", "0505"),
    "pm_card_unionpay": SimulatedCard("unionpay", "0005"),
    "pm_card_chargeCustomerFail": SimulatedCard("visa", "0341", charge_decline="generic_decline"),
    "pm_card_chargeDeclined": SimulatedCard("visa", "0002", attach_decline="generic_decline"),
    "pm_card_visa_chargeDeclined": SimulatedCard("visa", "0002", attach_decline="generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": SimulatedCard(
        "visa", "9995", attach_decline="insufficient_funds"
    ),
    "pm_card_visa_chargeDeclinedInsufficientFunds": SimulatedCard(
        "visa", "9995", attach_decline="insufficient_funds"
    ),
    "pm_card_visa_chargeDeclinedLostCard": SimulatedCard(
        "visa", "9987", attach_decline="lost_card"
    ),
    "pm_card_visa_chargeDeclinedStolenCard": SimulatedCard(
        "visa", "9979", attach_decline="stolen_card"
    ),
    "pm_card_chargeDeclinedFraudulent": SimulatedCard("visa", "0019", attach_decline="fraudulent"),
    "pm_card_chargeDeclinedExpiredCard": SimulatedCard(
        "visa", "0069", attach_decline="expired_card"
    ),
    "pm_card_chargeDeclinedIncorrectCvc": SimulatedCard(
        "visa", "0127", attach_decline="incorrect_cvc"
    ),
    "pm_card_chargeDeclinedProcessingError": SimulatedCard(
        "visa", "0119", attach_decline="processing_error"
    ),
}

#: decline code -> (error ``code``, message, hard decline: Smart Retries do not retry it).
#: Messages and codes: docs.stripe.com/declines/codes; hard declines:
#: docs.stripe.com/billing/revenue-recovery/smart-retries ("non-retryable decline codes").
DECLINES: dict[str, tuple[str, str, bool]] = {
    "generic_decline": ("card_declined", "Your card was declined.", False),
    "insufficient_funds": ("card_declined", "Your card has insufficient funds.", False),
    "lost_card": ("card_declined", "Your card was declined.", True),
    "stolen_card": ("card_declined", "Your card was declined.", True),
    "fraudulent": ("card_declined", "Your card was declined.", True),
    "expired_card": ("expired_card", "Your card has expired.", False),
    "incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect.", False),
    "processing_error": (
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
        False,
    ),
}


def card_error(decline_code: str, *, param: str | None = None) -> ApiError:
    """Stripe's 402 ``card_error`` for a decline."""
    code, message, _ = DECLINES[decline_code]
    return ApiError(
        402,
        message,
        type_="card_error",
        code=code,
        param=param,
        decline_code=decline_code,
    )


def _card(token: str, card: SimulatedCard, created: int) -> JSON:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": None,
        },
        "country": "US",
        "display_brand": card.brand,
        "exp_month": moment.month,
        "exp_year": moment.year + 3,
        "fingerprint": hashlib.sha256(token.encode()).hexdigest()[:16],
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def _payment_method(token: str, card: SimulatedCard, pm_id: str, created: int) -> JSON:
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": _card(token, card, created),
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        # Internal: which test card this copy came from (not rendered).
        "_test_card": token,
    }


def _public(pm: JSON) -> JSON:
    return {k: v for k, v in pm.items() if not k.startswith("_")}


def _no_such(pm_id: str, param: str = "payment_method", status: int = 404) -> ApiError:
    return no_such(LABEL, pm_id, param=param, status=status)


def charge_decline(pm: JSON) -> str | None:
    """The decline code a charge on this stored PaymentMethod gets (None = it succeeds)."""
    card = TEST_CARDS.get(str(pm.get("_test_card")))
    if card is None:
        return None
    return card.charge_decline or card.attach_decline


def check_attach(req: Request, pm_id: str, customer_id: str | None, *, param: str) -> None:
    """Refuse, without changing anything, what :func:`attach_to` would refuse."""
    card = TEST_CARDS.get(pm_id)
    if card is not None:
        if card.attach_decline is not None:
            raise card_error(card.attach_decline, param=param)
        return
    found = req.store.find(PAYMENT_METHOD, pm_id)
    if found is None:
        raise _no_such(pm_id, param, 404 if param == "id" else 400)
    if found.get("customer") is not None and found["customer"] != customer_id:
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            param=param,
        )
    if found.get("_detached"):
        raise invalid(
            "This PaymentMethod was previously used without being attached to a Customer "
            "or was detached from a Customer, and may not be used again.",
            param=param,
        )


def attach_to(req: Request, pm_id: str, customer: JSON, *, param: str, when: int) -> JSON:
    """Attach a test card (a new copy) or a stored PaymentMethod to ``customer``."""
    check_attach(req, pm_id, customer["id"], param=param)
    card = TEST_CARDS.get(pm_id)
    if card is not None:
        pm = _payment_method(pm_id, card, new_id("pm"), when)
    else:
        pm = req.store.get(PAYMENT_METHOD, pm_id)
        if pm.get("customer") == customer["id"]:
            return pm
    pm["customer"] = customer["id"]
    req.store.put(PAYMENT_METHOD, pm)
    emit(req, "payment_method.attached", _public(pm))
    return pm


def customer_payment_method(req: Request, pm_id: str, customer_id: str, param: str) -> JSON:
    """A PaymentMethod attached to the customer, or Stripe's refusal naming ``param``."""
    pm = req.store.find(PAYMENT_METHOD, pm_id)
    if pm is None or pm.get("customer") != customer_id:
        raise ApiError(
            400,
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            code="resource_missing",
            param=param,
        )
    return pm


def retrieve(req: Request) -> JSON:
    pm_id = req.path_params["id"]
    card = TEST_CARDS.get(pm_id)
    if card is not None:
        return _public(_payment_method(pm_id, card, pm_id, req.now()))
    pm = req.store.find(PAYMENT_METHOD, pm_id)
    if pm is None:
        raise _no_such(pm_id, "id")
    return _public(pm)


def update(req: Request) -> JSON:
    pm = req.store.find(PAYMENT_METHOD, req.path_params["id"])
    if pm is None:
        raise _no_such(req.path_params["id"], "id")
    for name in ("billing_details", "card", "link", "allow_redisplay", "us_bank_account"):
        if req.params.get(name) is not None:
            raise invalid(
                f"The emulator does not support updating `{name}` on payment methods "
                "(not emulated); only metadata changes.",
                param=name,
            )
    if "metadata" in req.params:
        pm["metadata"] = apply_metadata(pm["metadata"], req.params["metadata"])
    req.store.put(PAYMENT_METHOD, pm)
    emit(req, "payment_method.updated", _public(pm))
    return _public(pm)


def attach(req: Request) -> JSON:
    customer_id = req.params.get("customer")
    if customer_id is None:
        raise missing_param("customer")
    customer = req.store.get(CUSTOMER, str(customer_id), param="customer", status=400)
    pm = attach_to(req, req.path_params["id"], customer, param="id", when=req.now())
    return _public(pm)


def detach(req: Request) -> JSON:
    pm_id = req.path_params["id"]
    pm = req.store.find(PAYMENT_METHOD, pm_id)
    if pm is None:
        raise _no_such(pm_id, "id")
    customer_id = pm.get("customer")
    if customer_id is None:
        raise invalid(
            f"The payment method {pm_id} is not attached to a customer so detachment is "
            "impossible.",
            param="id",
        )
    pm["customer"] = None
    pm["_detached"] = True
    req.store.put(PAYMENT_METHOD, pm)
    customer = req.store.find(CUSTOMER, str(customer_id))
    if customer is not None and customer["invoice_settings"].get("default_payment_method") == pm_id:
        customer["invoice_settings"]["default_payment_method"] = None
        req.store.put(CUSTOMER, customer)
        emit(req, "customer.updated", customer)
    for sub in req.store.values(SUBSCRIPTION):
        if sub["customer"] == customer_id and sub.get("default_payment_method") == pm_id:
            sub["default_payment_method"] = None
            req.store.put(SUBSCRIPTION, sub)
            emit(req, "customer.subscription.updated", sub)
    emit(req, "payment_method.detached", _public(pm))
    return _public(pm)


def _listing(req: Request, customer_id: str, url: str) -> JSON:
    kind = req.params.get("type")
    items = [
        _public(pm)
        for pm in req.store.newest_first(PAYMENT_METHOD)
        if pm.get("customer") == customer_id and kind in (None, pm["type"])
    ]
    return paginate(req, items, url, label=LABEL)


def list_for_customer(req: Request) -> JSON:
    customer = req.store.get(CUSTOMER, req.path_params["id"])
    return _listing(req, customer["id"], f"/v1/customers/{customer['id']}/payment_methods")


def list_(req: Request) -> JSON:
    customer_id = req.params.get("customer")
    if customer_id is None:
        raise invalid(
            "The emulator lists payment methods per customer only: pass `customer` "
            "(listing every payment method of the account is not emulated).",
            param="customer",
        )
    req.store.get(CUSTOMER, str(customer_id), param="customer", status=400)
    return _listing(req, str(customer_id), "/v1/payment_methods")


def create(req: Request) -> JSON:
    raise invalid(
        "The emulator does not create payment methods from card details (not emulated): use "
        "Stripe's test PaymentMethods such as `pm_card_visa` (docs.stripe.com/testing).",
        param="type",
    )


def _strip_internal(obj: JSON, version: str) -> None:
    for name in [name for name in obj if name.startswith("_")]:
        del obj[name]


def register(registry: Registry) -> None:
    registry.object_type(
        ObjectType("payment_method", expandable={"customer": CUSTOMER}, transform=_strip_internal)
    )
    base = "/v1/payment_methods"
    registry.route("POST", base, create, params="PaymentMethodCreateParams")
    registry.route("GET", base, list_, params="PaymentMethodListParams")
    registry.route("GET", base + "/{id}", retrieve, params="PaymentMethodRetrieveParams")
    registry.route("POST", base + "/{id}", update, params="PaymentMethodUpdateParams")
    registry.route("POST", base + "/{id}/attach", attach, params="PaymentMethodAttachParams")
    registry.route("POST", base + "/{id}/detach", detach, params="PaymentMethodDetachParams")
    registry.route(
        "GET",
        "/v1/customers/{id}/payment_methods",
        list_for_customer,
        params="CustomerListPaymentMethodsParams",
    )
