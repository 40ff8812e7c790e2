"""Invoices: built by subscriptions, read through ``/v1/invoices``.

One invoice per subscription per billing boundary (``subscription_cycle``),
plus the first one at creation (``subscription_create``):

- licensed items are billed in advance: ``quantity x price`` for the period
  that starts, the line's ``period`` is that new period ($0, "Trial period
  for ...", when that period is a trial);
- metered items are billed in arrears for the period that ended (line
  ``period`` = that period): meter-backed prices use the meter's events for
  the customer (the meter's formula, customer and value payload keys, events
  with ``start <= timestamp < end``), legacy prices the usage records per
  ``aggregate_usage``;
- amounts: see :func:`.billing.line_amount`; then the subscription's
  discounts (percent or amount off, spread over the lines in proportion,
  remainder on the last line) and tax rates (an item's own ``tax_rates``, else
  the subscription's ``default_tax_rates``; exclusive ones add
  ``round_half_up(taxable x pct)`` per line, inclusive ones are carved out).

Each invoice is created as a ``draft`` (``invoice.created``), finalised and
collected by :mod:`.collection` (payments, retries, subscription statuses):
at once for the first invoice of a ``charge_automatically`` subscription and
for changes invoiced at once, an hour later for renewals and the first
invoice of a ``send_invoice`` subscription (docs.stripe.com/subscriptions/invoices,
"Subscription invoice lifecycle").
The invoice's
``period_start`` / ``period_end`` are the usage period (both the creation time
for the first invoice). Since ``2025-03-31.basil`` the invoice's
``subscription`` and ``tax`` and the line's ``price`` / ``subscription_item`` /
``tax_amounts`` moved under ``parent``, ``total_taxes``, ``pricing`` and
``taxes`` (the SDK 16 resources agree; the line keeps ``subscription``):
responses follow the request's version.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from reconciler.emulator.events import emit
from reconciler.emulator.render import matches_created, paginate
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    DISCOUNT,
    INVOICE,
    SUBSCRIPTION,
    TEST_CLOCK,
    exact_amount,
    is_legacy_metered,
    is_metered,
    legacy_usage,
    line_amount,
    round_cents,
    shift,
)
from reconciler.emulator.resources.catalog import PRICE, PRODUCT
from reconciler.emulator.resources.collection import DRAFT_HOUR, collect
from reconciler.emulator.resources.customers import full_address
from reconciler.emulator.resources.meters import METER, aggregate, events_for
from reconciler.emulator.resources.subscriptions import PAYMENT_BEHAVIOR, PRORATION_BEHAVIOR
from reconciler.emulator.resources.tax_and_discounts import discount_applies
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id
from reconciler.emulator.versions import BASIL, version_at_least

__all__ = ["CAPTURE", "issue_invoice", "licensed_lines", "line_for", "metered_lines", "register"]

#: ``req.context`` key: while it holds a list, :func:`issue_invoice` appends a copy of
#: every invoice it builds, as built (a draft, totalled, before collection). Invoice
#: previews (:mod:`.previews`) read the invoice the billing machinery would issue there.
CAPTURE = "invoices.capture"


def _usage(req: Request, sub: JSON, item: JSON, price: JSON, period: tuple[int, int]) -> int:
    start, end = period
    if is_legacy_metered(price):
        aggregate_usage = str(price["recurring"].get("aggregate_usage") or "sum")
        return legacy_usage(req, item["id"], aggregate_usage, start, end)
    meter = req.store.find(METER, str(price["recurring"]["meter"]))
    if meter is None:
        return 0
    events = events_for(req, meter, sub["customer"], start, end)
    return int(aggregate(meter["default_aggregation"]["formula"], events))


def _description(req: Request, price: JSON, quantity: int) -> str:
    product = req.store.find(PRODUCT, str(price["product"]))
    name = product["name"] if product is not None else price["product"]
    return f"{quantity} \N{MULTIPLICATION SIGN} {name}"


def line_for(
    req: Request,
    sub: JSON,
    item: JSON,
    price: JSON,
    *,
    quantity: int,
    period: tuple[int, int],
    trial: bool = False,
) -> JSON:
    amount = 0 if trial else line_amount(price, quantity)
    description = _description(req, price, quantity)
    if trial:
        product = req.store.find(PRODUCT, str(price["product"]))
        description = f"Trial period for {product['name'] if product else price['product']}"
    unit_decimal = price.get("unit_amount_decimal")
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "amount_excluding_tax": amount,
        "currency": price["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": dict(item.get("metadata") or {}),
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "price": price["id"],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": unit_decimal,
        },
        "proration": False,
        "proration_details": {"credited_items": None},
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"],
        "subscription_item": item["id"],
        "subtotal": amount,
        "tax_amounts": [],
        "tax_rates": [dict(rate) for rate in item["tax_rates"]],
        "taxes": [],
        "type": "subscription",
        "unit_amount_excluding_tax": unit_decimal,
    }


def metered_lines(req: Request, sub: JSON, start: int, end: int) -> list[JSON]:
    """Arrears lines for the metered items over ``[start, end)``."""
    lines = []
    for item in sub["items"]["data"]:
        price = req.store.get(PRICE, str(item["price"]))
        if is_metered(price):
            quantity = _usage(req, sub, item, price, (start, end))
            lines.append(line_for(req, sub, item, price, quantity=quantity, period=(start, end)))
    return lines


def licensed_lines(
    req: Request, sub: JSON, start: int, end: int, *, trial: bool = False
) -> list[JSON]:
    """Advance lines for the licensed items over ``[start, end)`` ($0 during a trial)."""
    lines = []
    for item in sub["items"]["data"]:
        price = req.store.get(PRICE, str(item["price"]))
        if not is_metered(price):
            quantity = int(item.get("quantity", 1))
            lines.append(
                line_for(req, sub, item, price, quantity=quantity, period=(start, end), trial=trial)
            )
    return lines


def _credit(amount: int, discount_id: str) -> JSON:
    """A pretax credit amount for a discount (since basil, beside ``discount_amounts``)."""
    return {
        "amount": amount,
        "credit_balance_transaction": None,
        "discount": discount_id,
        "type": "discount",
    }


def _apply_discounts(req: Request, sub: JSON, lines: list[JSON], when: int) -> list[JSON]:
    """Spread each applicable discount over the discountable lines; returns
    ``total_discount_amounts``.

    Change prorations are not discountable (docs.stripe.com/billing/subscriptions/
    prorations, "Prorations and discounts": "All invoice items that are prorations
    (prorations=true) are set to discountable=false. Discounts applied to an invoice
    containing prorations are only applied to [...] invoice line items that aren't
    prorations").
    """
    totals: list[JSON] = []
    lines = [line for line in lines if line.get("discountable", True)]
    subtotal = sum(int(line["amount"]) for line in lines)
    remaining = subtotal
    for discount_id in sub.get("discounts") or []:
        discount = req.store.find(DISCOUNT, str(discount_id))
        if discount is None or not discount_applies(discount, when) or remaining <= 0:
            continue
        coupon = discount["coupon"]
        if coupon.get("percent_off") is not None:
            off = round_cents(Decimal(remaining) * Decimal(str(coupon["percent_off"])) / 100)
        else:
            off = min(int(coupon["amount_off"]), remaining)
        left = off
        base = remaining
        for index, line in enumerate(lines):
            taxable = int(line["amount"]) - sum(d["amount"] for d in line["discount_amounts"])
            if index == len(lines) - 1:
                share = left
            else:
                share = round_cents(Decimal(off) * taxable / base) if base else 0
            share = min(share, left)
            left -= share
            line["discount_amounts"].append({"amount": share, "discount": discount["id"]})
            line["pretax_credit_amounts"].append(_credit(share, discount["id"]))
            line["discounts"].append(discount["id"])
        remaining -= off
        totals.append({"amount": off, "discount": discount["id"]})
        if coupon["duration"] == "once":
            discount["used"] = True
            req.store.put(DISCOUNT, discount)
    return totals


def _apply_taxes(sub: JSON, lines: list[JSON]) -> tuple[int, int, list[JSON]]:
    """Exclusive and inclusive tax totals, and the per-rate totals."""
    exclusive = inclusive = 0
    per_rate: dict[str, JSON] = {}
    for line in lines:
        rates = line["tax_rates"] or sub.get("default_tax_rates") or []
        taxable = int(line["amount"]) - sum(d["amount"] for d in line["discount_amounts"])
        for rate in rates:
            percentage = Decimal(str(rate["percentage"]))
            if rate["inclusive"]:
                amount = taxable - round_cents(Decimal(taxable) / (1 + percentage / 100))
                inclusive += amount
            else:
                amount = round_cents(Decimal(taxable) * percentage / 100)
                exclusive += amount
            line["tax_amounts"].append(
                {
                    "amount": amount,
                    "inclusive": rate["inclusive"],
                    "tax_rate": rate["id"],
                    "taxability_reason": None,
                    "taxable_amount": taxable,
                }
            )
            line["taxes"].append(
                {
                    "amount": amount,
                    "tax_behavior": "inclusive" if rate["inclusive"] else "exclusive",
                    "tax_rate_details": {"tax_rate": rate["id"]},
                    "taxability_reason": "standard_rated",
                    "taxable_amount": taxable,
                    "type": "tax_rate_details",
                }
            )
            entry = per_rate.setdefault(
                rate["id"],
                {
                    "amount": 0,
                    "inclusive": rate["inclusive"],
                    "tax_rate": rate["id"],
                    "taxability_reason": None,
                    "taxable_amount": 0,
                },
            )
            entry["amount"] += amount
            entry["taxable_amount"] += taxable
        line["amount_excluding_tax"] = taxable - sum(
            t["amount"] for t in line["tax_amounts"] if t["inclusive"]
        )
    return exclusive, inclusive, list(per_rate.values())


def issue_invoice(
    req: Request,
    sub: JSON,
    lines: list[JSON],
    *,
    reason: str,
    period: tuple[int, int],
    when: int,
    hold: str | None = None,
    attempt: bool = True,
    draft_for: int = 0,
) -> JSON:
    """Create, total and store an invoice for ``sub`` (its ``latest_invoice``), then collect it.

    With ``draft_for`` seconds the invoice stays a draft that long
    (``automatically_finalizes_at``; a test clock advance finalises and collects
    it, see :func:`.collection.finalize_due`), else it is finalised and collected
    at once (:func:`.collection.collect`). ``hold`` (``pause_collection``):
    ``keep_as_draft`` leaves the draft for good, ``void`` and
    ``mark_uncollectible`` finalise it into that status. ``attempt=False``
    finalises without charging (``default_incomplete``).
    """
    customer = req.store.find(CUSTOMER, sub["customer"]) or {}
    invoice_id = new_id("in")
    for line in lines:
        line["invoice"] = invoice_id
    subtotal = sum(int(line["amount"]) for line in lines)
    discounts = _apply_discounts(req, sub, lines, when)
    discount_total = sum(int(d["amount"]) for d in discounts)
    exclusive, inclusive, per_rate = _apply_taxes(sub, lines)
    total = subtotal - discount_total + exclusive
    invoice: JSON = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": None,
        "account_tax_ids": None,
        "application": None,
        "automatically_finalizes_at": None,
        "custom_fields": None,
        "customer_account": customer.get("customer_account"),
        "customer_address": full_address(customer.get("address")),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt") or "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "from_invoice": None,
        "last_finalization_error": None,
        "latest_revision": None,
        "next_payment_attempt": None,
        "on_behalf_of": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": {
            "amount_tax_display": None,
            "pdf": {"page_size": "auto"},
            "template": None,
            "template_version": None,
        },
        "shipping_cost": None,
        "shipping_details": None,
        "statement_descriptor": None,
        "total_pretax_credit_amounts": [_credit(d["amount"], d["discount"]) for d in discounts],
        "webhooks_delivered_at": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": hold != "keep_as_draft",
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "billing_reason": reason,
        "collection_method": sub["collection_method"],
        "created": when,
        "currency": sub["currency"],
        "customer": sub["customer"],
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "default_tax_rates": [],
        "description": None,
        "discounts": [d["discount"] for d in discounts],
        "due_date": None,
        "effective_at": None,
        "ending_balance": 0,
        "footer": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "number": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "period_end": period[1],
        "period_start": period[0],
        "starting_balance": 0,
        "status": "draft",
        "status_details": None,
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": sub["id"],
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal - inclusive,
        "tax": exclusive + inclusive if per_rate else None,
        "test_clock": sub.get("test_clock"),
        "total": total,
        "total_discount_amounts": discounts,
        "total_excluding_tax": subtotal - discount_total - inclusive,
        "total_tax_amounts": per_rate,
        "total_taxes": [
            {
                "amount": entry["amount"],
                "tax_behavior": "inclusive" if entry["inclusive"] else "exclusive",
                "tax_rate_details": {"tax_rate": entry["tax_rate"]},
                "taxability_reason": "standard_rated",
                "taxable_amount": entry["taxable_amount"],
                "type": "tax_rate_details",
            }
            for entry in per_rate
        ],
    }
    captured = req.context.get(CAPTURE)
    if isinstance(captured, list):
        captured.append(copy.deepcopy(invoice))
    req.store.put(INVOICE, invoice)
    emit(req, "invoice.created", invoice)
    sub["latest_invoice"] = invoice_id
    req.store.put(SUBSCRIPTION, sub)
    if hold == "keep_as_draft":
        return invoice
    if draft_for > 0:
        invoice["automatically_finalizes_at"] = when + draft_for
        req.store.put(INVOICE, invoice)
        return invoice
    collect(req, invoice, when, hold=hold, attempt=attempt)
    return invoice


def _anchor_prorations(req: Request, sub: JSON, lines: list[JSON], start: int, end: int) -> None:
    """A ``billing_cycle_anchor`` after the start: the first, shorter period is prorated.

    docs.stripe.com/billing/subscriptions/billing-cycle: "Stripe creates a
    prorated invoice for the period between the subscription's creation and the
    first full invoice date"; with ``proration_behavior=none`` "the initial
    period up to the first full invoice date is free". The share is to the
    second: (anchor - start) / (the full period ending at the anchor).
    """
    behavior = req.context.get(PRORATION_BEHAVIOR) or "create_prorations"
    if behavior == "none":
        lines.clear()
        return
    interval, count = "month", 1
    for item in sub["items"]["data"]:
        recurring = (req.store.get(PRICE, str(item["price"])).get("recurring")) or {}
        interval, count = str(recurring["interval"]), int(recurring["interval_count"])
    full = end - shift(end, interval, -count)
    for line in lines:
        price = req.store.get(PRICE, str(line["price"]))
        amount = round_cents(exact_amount(price, int(line["quantity"])) * (end - start) / full)
        line.update({"amount": amount, "amount_excluding_tax": amount, "subtotal": amount})
        line["proration"] = True
        line["parent"]["subscription_item_details"]["proration"] = True


def first_invoice(req: Request, sub: JSON) -> None:
    """``subscription_create``: licensed items for the first period, in advance (prorated
    up to a later ``billing_cycle_anchor``)."""
    start, end = int(sub["current_period_start"]), int(sub["current_period_end"])
    trial = sub["status"] == "trialing"
    lines = licensed_lines(req, sub, start, end, trial=trial)
    if not trial and int(sub["billing_cycle_anchor"]) > start:
        _anchor_prorations(req, sub, lines, start, end)
    attempt = req.context.get(PAYMENT_BEHAVIOR) != "default_incomplete"
    # "Finalizes the invoice immediately when collection_method is set to
    # charge_automatically, or one hour later when it's set to send_invoice."
    sent = sub["collection_method"] == "send_invoice"
    issue_invoice(
        req,
        sub,
        lines,
        reason="subscription_create",
        period=(start, start),
        when=start,
        attempt=attempt,
        draft_for=DRAFT_HOUR if sent else 0,
    )


def retrieve(req: Request) -> JSON:
    return req.store.get(INVOICE, req.path_params["id"])


def list_(req: Request) -> JSON:
    params = req.params

    def wanted(invoice: JSON) -> bool:
        for name in ("customer", "subscription", "status", "collection_method"):
            if params.get(name) and invoice[name] != params[name]:
                return False
        return matches_created(invoice, params.get("created"))

    items = [i for i in req.store.newest_first(INVOICE) if wanted(i)]
    return paginate(req, items, "/v1/invoices", label="invoice")


def lines(req: Request) -> JSON:
    invoice = req.store.get(INVOICE, req.path_params["id"])
    return paginate(
        req,
        list(invoice["lines"]["data"]),
        f"/v1/invoices/{invoice['id']}/lines",
        label="line_item",
    )


def _invoice_transform(obj: JSON, version: str) -> None:
    if version_at_least(version, BASIL):
        for name in ("subscription", "tax", "total_tax_amounts"):
            obj.pop(name, None)
    else:
        # Before basil a preview's proration date was a field of the invoice itself.
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        if "subscription_proration_date" in details:
            obj["subscription_proration_date"] = details["subscription_proration_date"]
        for name in ("parent", "total_taxes"):
            obj.pop(name, None)


def _line_transform(obj: JSON, version: str) -> None:
    if version_at_least(version, BASIL):
        for name in (
            "amount_excluding_tax",
            "unit_amount_excluding_tax",
            "price",
            "tax_rates",
            "proration",
            "proration_details",
            "subscription_item",
            "tax_amounts",
            "type",
        ):
            obj.pop(name, None)
    else:
        for name in ("parent", "pricing", "taxes", "pretax_credit_amounts"):
            obj.pop(name, None)


def register(registry: Registry) -> None:
    registry.object_type(
        ObjectType(
            "invoice",
            expandable={
                "customer": CUSTOMER,
                "discounts": DISCOUNT,
                "subscription": SUBSCRIPTION,
                "test_clock": TEST_CLOCK,
            },
            nested=frozenset({"lines"}),
            transform=_invoice_transform,
        )
    )
    registry.object_type(
        ObjectType("line_item", embedded={"price": PRICE}, transform=_line_transform)
    )
    registry.route("GET", "/v1/invoices", list_, params="InvoiceListParams")
    registry.route("GET", "/v1/invoices/{id}", retrieve, params="InvoiceRetrieveParams")
    registry.route("GET", "/v1/invoices/{id}/lines", lines, params="InvoiceLineItemListParams")
    registry.add_hook("subscription.created", first_invoice)
