"""Collecting invoices: finalisation, payment attempts, Smart Retries, subscription statuses.

How an invoice built by :mod:`.invoices` gets paid, after Stripe's Billing docs:

- finalising (docs.stripe.com/invoicing/overview, "Invoice lifecycle") gives
  the invoice its ``number`` and makes it ``open``; an invoice with nothing
  to pay (``amount_due`` 0) is ``paid`` at once. ``send_invoice`` invoices
  stay ``open`` with ``due_date`` = finalisation + ``days_until_due`` days
  (30 when the subscription names none), and are never charged by Stripe;
  the subscription turns ``past_due`` when its latest one passes that date
  unpaid.
  A renewal invoice (and the first one of a ``send_invoice`` subscription)
  stays a draft for an hour (``automatically_finalizes_at``), then a test
  clock advance finalises and collects it;
- ``charge_automatically`` invoices are charged at once with the first
  payment method in Stripe's order (docs.stripe.com/billing/subscriptions/
  payment-methods-setting, "payment method priority"): the subscription's
  ``default_payment_method``, then the customer's
  ``invoice_settings.default_payment_method`` (sources are not emulated).
  A test card from :mod:`.payment_methods` decides the outcome:
  ``pm_card_chargeCustomerFail`` is declined, the brand cards pay;
- a failed attempt (``invoice.payment_failed``) counts in ``attempt_count``;
  Smart Retries then retry (docs.stripe.com/billing/revenue-recovery/
  smart-retries: "The recommended default is 8 tries within 2 weeks"; Stripe
  does not retry when no payment method is available or on a hard decline).
  Smart Retries choose their own moments; the emulator retries
  deterministically, on the days of :data:`DEFAULT_RETRY_DAYS` after the
  first attempt (``next_payment_attempt``), on test clock advances, each
  time with the payment method the subscription or customer has then;
- subscription statuses (docs.stripe.com/billing/subscriptions/overview,
  "Subscription statuses"): a first invoice that is not paid makes the
  subscription ``incomplete`` (``payment_behavior`` ``allow_incomplete``,
  the default, and ``default_incomplete``, which does not even try;
  ``error_if_incomplete`` refuses the create with the card's 402 instead);
  ``incomplete`` becomes ``incomplete_expired`` 23 hours after creation
  when still unpaid, voiding the invoice (:data:`INCOMPLETE_EXPIRES`); a
  failed renewal makes an ``active`` subscription ``past_due``; paying the
  subscription's latest invoice (a retry, or ``POST /v1/invoices/{id}/pay``)
  makes it ``active`` again. When the last retry fails, the account's
  setting decides (Dashboard: Billing > Revenue recovery > Retries, "If all
  retries for a payment fail"): ``canceled`` (the emulator's default, with
  ``cancellation_details.reason`` ``payment_failed``), ``unpaid`` (invoices
  go on being created and stay open, no payment is attempted) or
  ``past_due`` (left as it is). Change it, and the retry days, with the
  control endpoint ``POST /_emulator/billing_settings``
  (``{"after_retries": "unpaid", "retry_days": [1, 3]}``);
- ``POST /v1/invoices/{id}/pay`` (docs.stripe.com/api/invoices/pay): pays an
  ``open`` or ``uncollectible`` invoice (a ``draft`` is finalised first) with
  ``payment_method`` (one attached to the customer) or the default one;
  ``paid_out_of_band`` marks it paid without a charge; a decline is Stripe's
  402 ``card_error`` (the failed attempt and its event stay). ``source`` and
  ``mandate`` are not emulated.

PaymentIntents, charges, SetupIntents and invoice items (pending prorations
are kept internally, see :mod:`.prorations`) are not emulated: their
endpoints answer with a "not emulated" refusal, and invoices keep Stripe's empty
payment fields (the ``payments`` list is not included).
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.errors import ApiError, invalid
from reconciler.emulator.events import commit, emit
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    DISCOUNT,
    INVOICE,
    SUBSCRIPTION,
    customer_now,
)
from reconciler.emulator.resources.payment_methods import (
    DECLINES,
    PAYMENT_METHOD,
    card_error,
    charge_decline,
    customer_payment_method,
)
from reconciler.emulator.resources.subscriptions import cancel_subscription
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, Store

__all__ = [
    "AFTER_RETRIES",
    "DEFAULT_RETRY_DAYS",
    "DRAFT_HOUR",
    "INCOMPLETE_EXPIRES",
    "NO_PAYMENT_METHOD",
    "SETTINGS_KIND",
    "billing_settings",
    "collect",
    "expire_incomplete",
    "finalize",
    "finalize_due",
    "forget_invoice",
    "overdue",
    "payment_error",
    "payment_method_of",
    "refuse_incomplete",
    "register",
    "retry_due",
    "set_billing_settings",
    "settle",
]

DAY = 86400
#: How long a subscription's renewal invoice (and a ``send_invoice`` first invoice) stays
#: a draft: "Stripe waits an hour after receiving a successful response to the
#: invoice.created event before attempting payment" (docs.stripe.com/billing/subscriptions/
#: webhooks); test clocks show the same hour.
DRAFT_HOUR = 3600
#: Days after the first failed attempt on which Smart Retries try again (8 tries in 2 weeks).
DEFAULT_RETRY_DAYS = (2, 4, 6, 8, 10, 12, 14)
#: What may become of a subscription once every retry failed.
AFTER_RETRIES = ("canceled", "unpaid", "past_due")
#: An ``incomplete`` subscription expires this long after its creation.
INCOMPLETE_EXPIRES = 23 * 3600
#: ``days_until_due`` of a ``send_invoice`` invoice when the subscription names none.
DEFAULT_DAYS_UNTIL_DUE = 30
SETTINGS_KIND = "_billing_settings"
_SETTINGS_ID = "account"
#: The internal outcome of an attempt without any payment method.
NO_PAYMENT_METHOD = "no_payment_method"
_RECOVERABLE = ("past_due", "unpaid", "incomplete", "paused")


# --- account settings ----------------------------------------------------------------------
def billing_settings(store: Store) -> JSON:
    """The account's retry settings (the emulator's defaults unless changed)."""
    found = store.find(SETTINGS_KIND, _SETTINGS_ID)
    return {
        "after_retries": found["after_retries"] if found else AFTER_RETRIES[0],
        "retry_days": list(found["retry_days"]) if found else list(DEFAULT_RETRY_DAYS),
    }


def set_billing_settings(store: Store, data: dict[str, Any]) -> JSON:
    """Change the retry settings (``after_retries``, ``retry_days``); ValueError when wrong."""
    unknown = sorted(set(data) - {"after_retries", "retry_days"})
    if unknown:
        raise ValueError(f"unknown billing setting: {unknown[0]}")
    current = billing_settings(store)
    if "after_retries" in data:
        if data["after_retries"] not in AFTER_RETRIES:
            raise ValueError(f"after_retries must be one of {', '.join(AFTER_RETRIES)}")
        current["after_retries"] = data["after_retries"]
    if "retry_days" in data:
        days = data["retry_days"]
        valid = isinstance(days, list) and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in days
        )
        if not valid or days != sorted(set(days)) or len(days) > 7 or (days and days[-1] > 60):
            raise ValueError(
                "retry_days must be increasing whole days after the first attempt, at most 7 "
                "of them, within 60 days (Smart Retries: up to 8 tries within 2 months)"
            )
        current["retry_days"] = days
    store.put(SETTINGS_KIND, {"id": _SETTINGS_ID, **current})
    return current


# --- the invoice's steps ---------------------------------------------------------------------
def _subscription(req: Request, invoice: JSON) -> JSON | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    sub_id = details.get("subscription") or invoice.get("subscription")
    return req.store.find(SUBSCRIPTION, str(sub_id)) if sub_id else None


def finalize(req: Request, invoice: JSON, when: int) -> None:
    """``draft`` -> ``open``: number, ``effective_at``, ``due_date`` for ``send_invoice``."""
    customer = req.store.find(CUSTOMER, str(invoice["customer"])) or {}
    sequence = int(customer.get("next_invoice_sequence") or 1)
    if customer:
        customer["next_invoice_sequence"] = sequence + 1
        req.store.put(CUSTOMER, customer)
    invoice["number"] = f"{customer.get('invoice_prefix', 'EMU')}-{sequence:04d}"
    invoice["status"] = "open"
    invoice["effective_at"] = when
    invoice["status_transitions"]["finalized_at"] = when
    if invoice["collection_method"] == "send_invoice":
        sub = _subscription(req, invoice)
        days = (sub or {}).get("days_until_due")
        invoice["due_date"] = when + DAY * int(days if days is not None else DEFAULT_DAYS_UNTIL_DUE)
        invoice["auto_advance"] = False
    else:
        invoice["auto_advance"] = True
    req.store.put(INVOICE, invoice)
    emit(req, "invoice.finalized", invoice)


def _mark_paid(req: Request, invoice: JSON, when: int, *, attempted: bool) -> None:
    invoice["status"] = "paid"
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["attempted"] = invoice["attempted"] or attempted
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    invoice["status_transitions"]["paid_at"] = when
    req.store.put(INVOICE, invoice)
    emit(req, "invoice.paid", invoice)
    emit(req, "invoice.payment_succeeded", invoice)
    sub = _subscription(req, invoice)
    if sub is not None and sub["status"] in _RECOVERABLE and sub["latest_invoice"] == invoice["id"]:
        paused = sub["status"] == "paused"  # resumed once its resumption invoice is paid
        trialing = sub.get("trial_end") is not None and int(sub["trial_end"]) > when
        sub["status"] = "trialing" if trialing else "active"
        req.store.put(SUBSCRIPTION, sub)
        emit(req, "customer.subscription.updated", sub)
        if paused:
            emit(req, "customer.subscription.resumed", sub)


def _payment_method(req: Request, invoice: JSON) -> JSON | None:
    """The first usable payment method in Stripe's order (subscription, then customer)."""
    return payment_method_of(req, _subscription(req, invoice), str(invoice["customer"]))


def payment_method_of(req: Request, sub: JSON | None, customer_id: str) -> JSON | None:
    """The payment method a subscription's (or customer's) invoices are charged to."""
    customer = req.store.find(CUSTOMER, customer_id) or {}
    candidates = [
        (sub or {}).get("default_payment_method"),
        (customer.get("invoice_settings") or {}).get("default_payment_method"),
    ]
    for pm_id in candidates:
        pm = req.store.find(PAYMENT_METHOD, str(pm_id)) if pm_id else None
        if pm is not None and pm.get("customer") == customer_id:
            return pm
    return None


def _fail(req: Request, invoice: JSON, when: int, decline: str) -> None:
    """A failed attempt: count it, schedule the next retry, move the subscription on."""
    settings = billing_settings(req.store)
    invoice["attempted"] = True
    invoice["attempt_count"] = int(invoice["attempt_count"]) + 1
    # No retries without a payment method or after a hard decline (Smart Retries docs),
    # nor for a first invoice: the subscription is incomplete until paid or expired.
    retryable = (
        decline != NO_PAYMENT_METHOD
        and not DECLINES[decline][2]
        and invoice["billing_reason"] != "subscription_create"
    )
    days: list[int] = settings["retry_days"]
    finalized = int(invoice["status_transitions"]["finalized_at"] or when)
    retries_done = int(invoice["attempt_count"]) - 1
    upcoming = [finalized + d * DAY for d in days[retries_done:] if finalized + d * DAY > when]
    invoice["next_payment_attempt"] = upcoming[0] if retryable and upcoming else None
    req.store.put(INVOICE, invoice)
    emit(req, "invoice.payment_failed", invoice)
    sub = _subscription(req, invoice)
    if sub is None or sub["status"] in ("canceled", "incomplete_expired"):
        return
    before = sub["status"]
    if invoice["billing_reason"] == "subscription_create" and sub["status"] in (
        "active",
        "trialing",
        "incomplete",
    ):
        sub["status"] = "incomplete"
    elif sub["status"] == "active":
        sub["status"] = "past_due"
    exhausted = retryable and not upcoming
    if exhausted and sub["status"] == "past_due" and sub["latest_invoice"] == invoice["id"]:
        if settings["after_retries"] == "canceled":
            cancel_subscription(req, sub, when, "payment_failed")
            return
        if settings["after_retries"] == "unpaid":
            sub["status"] = "unpaid"
    if sub["status"] != before:  # Stripe sends an update only when something changed
        req.store.put(SUBSCRIPTION, sub)
        emit(req, "customer.subscription.updated", sub)


def _attempt(req: Request, invoice: JSON, when: int, pm: JSON | None = None) -> str | None:
    """Charge the invoice; the decline code when it failed (None = paid)."""
    method = pm if pm is not None else _payment_method(req, invoice)
    decline = NO_PAYMENT_METHOD if method is None else charge_decline(method)
    if decline is None:
        _mark_paid(req, invoice, when, attempted=True)
        return None
    _fail(req, invoice, when, decline)
    return decline


def settle(req: Request, invoice: JSON, when: int, *, attempt: bool = True) -> None:
    """After finalising: pay $0, leave ``send_invoice`` open, else charge (unless ``attempt``
    is False: ``default_incomplete`` waits for the payment to be confirmed)."""
    if int(invoice["amount_due"]) <= 0:
        _mark_paid(req, invoice, when, attempted=True)
        return
    if invoice["collection_method"] == "send_invoice":
        return
    sub = _subscription(req, invoice)
    if sub is not None and sub["status"] == "unpaid":
        return  # unpaid: invoices are created and left open, payments are not attempted
    if not attempt:
        # default_incomplete: a first invoice leaves the subscription incomplete, a later
        # one (an update invoiced at once) past_due, until the payment is confirmed.
        if sub is not None and invoice["billing_reason"] == "subscription_create":
            sub["status"] = "incomplete"
            req.store.put(SUBSCRIPTION, sub)
        elif sub is not None and sub["status"] == "active":
            sub["status"] = "past_due"
            req.store.put(SUBSCRIPTION, sub)
            emit(req, "customer.subscription.updated", sub)
        return
    _attempt(req, invoice, when)


def collect(
    req: Request, invoice: JSON, when: int, *, hold: str | None = None, attempt: bool = True
) -> None:
    """Finalise a draft and collect it; ``hold`` (``pause_collection``: ``void``,
    ``mark_uncollectible``) finalises it into that status instead."""
    finalize(req, invoice, when)
    if hold == "void":
        invoice["status"] = "void"
        invoice["auto_advance"] = False
        invoice["status_transitions"]["voided_at"] = when
        req.store.put(INVOICE, invoice)
        emit(req, "invoice.voided", invoice)
    elif hold == "mark_uncollectible":
        invoice["status"] = "uncollectible"
        invoice["auto_advance"] = False
        invoice["status_transitions"]["marked_uncollectible_at"] = when
        req.store.put(INVOICE, invoice)
        emit(req, "invoice.marked_uncollectible", invoice)
    else:
        settle(req, invoice, when, attempt=attempt)


# --- what the test clock sets off ---------------------------------------------------------------
def finalize_due(req: Request, customers: set[str], when: int) -> None:
    """Finalise and collect the drafts of these customers due at ``when``
    (``automatically_finalizes_at``), honouring a ``pause_collection`` set meanwhile."""
    for invoice in list(req.store.values(INVOICE)):
        if (
            invoice["customer"] in customers
            and invoice["status"] == "draft"
            and invoice.get("automatically_finalizes_at") == when
        ):
            sub = _subscription(req, invoice)
            pause = (sub or {}).get("pause_collection") or {}
            if pause.get("behavior") == "keep_as_draft":
                invoice["auto_advance"] = False
                req.store.put(INVOICE, invoice)
                continue
            collect(req, invoice, when, hold=pause.get("behavior"))


def retry_due(req: Request, customers: set[str], when: int) -> None:
    """Retry every open invoice of these customers whose next attempt is ``when``."""
    for invoice in list(req.store.values(INVOICE)):
        if (
            invoice["customer"] in customers
            and invoice["status"] == "open"
            and invoice.get("next_payment_attempt") == when
        ):
            _attempt(req, invoice, when)


def overdue(req: Request, customers: set[str], when: int) -> None:
    """A ``send_invoice`` subscription whose latest invoice passes its ``due_date`` unpaid
    becomes ``past_due`` (docs.stripe.com/billing/subscriptions/overview: "past_due:
    payment on the latest finalized invoice either failed or wasn't attempted")."""
    for invoice in list(req.store.values(INVOICE)):
        if (
            invoice["customer"] not in customers
            or invoice["status"] != "open"
            or invoice.get("due_date") != when
        ):
            continue
        sub = _subscription(req, invoice)
        if sub is not None and sub["status"] == "active" and sub["latest_invoice"] == invoice["id"]:
            sub["status"] = "past_due"
            req.store.put(SUBSCRIPTION, sub)
            emit(req, "customer.subscription.updated", sub)


def expire_incomplete(req: Request, sub: JSON, when: int) -> None:
    """``incomplete`` 23 hours after creation: ``incomplete_expired``, the invoice voided."""
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = when
    invoice = req.store.find(INVOICE, str(sub.get("latest_invoice") or ""))
    if invoice is not None and invoice["status"] == "open":
        invoice["status"] = "void"
        invoice["next_payment_attempt"] = None
        invoice["auto_advance"] = False
        invoice["status_transitions"]["voided_at"] = when
        req.store.put(INVOICE, invoice)
        emit(req, "invoice.voided", invoice)
    req.store.put(SUBSCRIPTION, sub)
    emit(req, "customer.subscription.updated", sub)


def payment_error(req: Request, invoice: JSON) -> ApiError:
    """Why the invoice could not be paid, as Stripe answers it: the card's 402, or the
    missing payment method."""
    pm = _payment_method(req, invoice)
    decline = charge_decline(pm) if pm is not None else None
    if decline is not None:
        return card_error(decline)
    return invalid(_NO_PAYMENT_METHOD_MESSAGE)


def forget_invoice(req: Request, invoice: JSON) -> None:
    """Remove an invoice a refused request made (and give its number back)."""
    customer = req.store.find(CUSTOMER, str(invoice["customer"]))
    if customer is not None and invoice["number"] is not None:
        customer["next_invoice_sequence"] = int(customer["next_invoice_sequence"]) - 1
        req.store.put(CUSTOMER, customer)
    req.store.delete(INVOICE, invoice["id"])


def refuse_incomplete(req: Request, sub: JSON) -> None:
    """``error_if_incomplete``: undo the subscription and its first invoice, answer the 402.

    Docs (``payment_behavior``): "Use error_if_incomplete if you want Stripe to
    return an HTTP 402 status code if a subscription's first invoice can't be
    paid"; nothing is created.
    """
    invoice = req.store.find(INVOICE, str(sub.get("latest_invoice") or ""))
    error = (
        payment_error(req, invoice) if invoice is not None else invalid(_NO_PAYMENT_METHOD_MESSAGE)
    )
    if invoice is not None:
        forget_invoice(req, invoice)
    for discount in req.store.values(DISCOUNT):
        if discount.get("subscription") == sub["id"]:
            req.store.delete(DISCOUNT, discount["id"])
    req.store.delete(SUBSCRIPTION, sub["id"])
    raise error


_NO_PAYMENT_METHOD_MESSAGE = (
    "This customer has no attached payment source or default payment method. Please "
    "consider adding a default payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
    "#payment-method-priority."
)


# --- POST /v1/invoices/{id}/pay ------------------------------------------------------------------
def pay(req: Request) -> JSON:
    invoice = req.store.get(INVOICE, req.path_params["id"])
    params = req.params
    for name in ("source", "mandate"):
        if params.get(name) is not None:
            raise invalid(
                f"The emulator does not support `{name}` when paying an invoice (not emulated).",
                param=name,
            )
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid", param="id")
    if invoice["status"] == "void":
        raise invalid("This invoice has been voided and can no longer be paid.", param="id")
    when = _now_for(req, invoice)
    if invoice["status"] == "draft":
        finalize(req, invoice, when)
        if int(invoice["amount_due"]) <= 0:
            _mark_paid(req, invoice, when, attempted=True)
            return invoice
    if params.get("paid_out_of_band"):
        invoice["amount_paid_off_stripe"] = invoice["amount_due"]
        _mark_paid(req, invoice, when, attempted=False)
        return invoice
    pm: JSON | None = None
    pm_id = params.get("payment_method")
    if pm_id is not None:
        # "The PaymentMethod must be the ID of a PaymentMethod belonging to the customer
        # associated with the invoice being paid." (docs.stripe.com/api/invoices/pay)
        pm = customer_payment_method(req, str(pm_id), str(invoice["customer"]), "payment_method")
    elif _payment_method(req, invoice) is None:
        raise invalid(_NO_PAYMENT_METHOD_MESSAGE)
    decline = _attempt(req, invoice, when, pm)
    if decline is not None and decline != NO_PAYMENT_METHOD:
        _refuse_with_events(req, card_error(decline))
    return invoice


def _refuse_with_events(req: Request, error: ApiError) -> None:
    """Raise ``error`` keeping the events of the failed attempt (Stripe sends them)."""
    commit(req)
    raise error


def _now_for(req: Request, invoice: JSON) -> int:
    return customer_now(req, str(invoice["customer"]))


# --- refused: what is not emulated ------------------------------------------------------------
def _not_emulated(req: Request) -> JSON:
    raise invalid(
        f"The emulator does not serve {req.method} {req.route.pattern} (not emulated): "
        "invoices are paid from the subscription's or customer's default payment method "
        "(test cards such as pm_card_visa) or with POST /v1/invoices/{id}/pay."
    )


_REFUSED = (
    ("POST", "/v1/payment_intents", "PaymentIntentCreateParams"),
    ("GET", "/v1/payment_intents", "PaymentIntentListParams"),
    ("GET", "/v1/payment_intents/{id}", "PaymentIntentRetrieveParams"),
    ("POST", "/v1/payment_intents/{id}", "PaymentIntentUpdateParams"),
    ("POST", "/v1/payment_intents/{id}/confirm", "PaymentIntentConfirmParams"),
    ("POST", "/v1/payment_intents/{id}/cancel", "PaymentIntentCancelParams"),
    ("GET", "/v1/charges", "ChargeListParams"),
    ("GET", "/v1/charges/{id}", "ChargeRetrieveParams"),
    ("POST", "/v1/setup_intents", "SetupIntentCreateParams"),
    ("GET", "/v1/setup_intents/{id}", "SetupIntentRetrieveParams"),
    ("GET", "/v1/invoiceitems", "InvoiceItemListParams"),
    ("POST", "/v1/invoiceitems", "InvoiceItemCreateParams"),
    ("GET", "/v1/invoiceitems/{id}", "InvoiceItemRetrieveParams"),
)


def _control(store: Store, method: str, data: dict[str, Any]) -> JSON:
    """``GET`` / ``POST /_emulator/billing_settings`` (JSON): read or change the settings."""
    if method == "POST":
        return set_billing_settings(store, data)
    return billing_settings(store)


def register(registry: Registry) -> None:
    registry.add_hook("control /_emulator/billing_settings", _control)
    registry.route("POST", "/v1/invoices/{id}/pay", pay, params="InvoicePayParams")
    registry.add_hook("subscription.error_if_incomplete", refuse_incomplete)
    for method, pattern, params in _REFUSED:
        registry.route(method, pattern, _not_emulated, params=params)
