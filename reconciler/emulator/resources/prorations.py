"""Prorations: credit and charge lines when a subscription's licensed items change mid-period.

After docs.stripe.com/billing/subscriptions/prorations: a change of price or
quantity in the middle of a period credits the unused time on what the item
had ("Unused time on ...") and charges the remaining time on what it has now
("Remaining time on ..."), to the second: each line is the item's period
amount x ``(period end - proration date) / (period end - period start)``,
rounded half up to a whole cent. "Prorations are created only for licensed
(per-seat) subscriptions": metered items never prorate. The proration date is
the change's time, or ``proration_date`` ("the proration will be calculated as
though the subscription was updated at the given time"; it must fall inside the
current period).

``proration_behavior`` (subscription update, subscription item create, update
and delete; Stripe's default ``create_prorations``):

- ``create_prorations``: the lines wait as pending invoice items and go on the
  subscription's next invoice (before its other lines);
- ``always_invoice``: they, and any still pending, are invoiced at once
  (``billing_reason`` ``subscription_update``) and collected like any invoice:
  with the default ``payment_behavior`` (``allow_incomplete``) a failed payment
  makes the subscription ``past_due``; ``error_if_incomplete`` refuses the
  change with the card's 402 and leaves the subscription as it was;
- ``none``: nothing.

Cancelling (``DELETE /v1/subscriptions/{id}``, docs.stripe.com/api/subscriptions/cancel):
``prorate=true`` credits the unused time of the licensed items; ``invoice_now=true``
invoices at once what is pending and the metered usage of the period so far
(``billing_reason`` ``subscription_update``: UNCONFIRMED, the reference does
not name it); without either, pending prorations are dropped.

Proration lines are ``discountable: false``: a discount on the invoice that
carries them reduces only its other lines ("All invoice items that are
prorations (prorations=true) are set to discountable=false. Discounts applied
to an invoice containing prorations are only applied to [...] invoice line
items that aren't prorations").

A change that moves the subscription between free and paid does not prorate
this way: it resets the billing cycle at once (:mod:`.cycle_reset`, which uses
the credit lines built here).

No prorations during a trial or a period that has not started. Not emulated,
refused: prorating a subscription that carries discounts (flexible billing
mode's ``proration_discounts``: Stripe reflects "any discounts previously
applied to the subscription [...] in the proration invoice item's amount", and
flexible mode credits "the original debited amount", but no document gives the
rounding order or how an amount-off coupon is shared among prorations), a
change of billing interval with prorations, and listing pending items
(``/v1/invoiceitems``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from reconciler.emulator.errors import ApiError, invalid
from reconciler.emulator.resources.billing import (
    SUBSCRIPTION,
    exact_amount,
    is_metered,
    round_cents,
)
from reconciler.emulator.resources.catalog import PRICE, PRODUCT
from reconciler.emulator.resources.collection import forget_invoice, payment_error
from reconciler.emulator.resources.invoices import issue_invoice, line_for, metered_lines
from reconciler.emulator.resources.subscriptions import interval_of
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, new_id

__all__ = [
    "PENDING",
    "PRORATING",
    "ItemState",
    "changed",
    "credit_line",
    "invoice_change",
    "items_state",
    "pend",
    "proration_date",
    "register",
    "take_pending",
]

#: Internal kind of pending proration lines ``{id: ii_..., subscription, line}``.
PENDING = "_pending_proration"
#: What prorates in an item: ``{item id: (price id, quantity)}`` (licensed items only).
ItemState = dict[str, tuple[str, int]]
#: Statuses in which a change prorates (not during a trial, nor once ended or paused).
PRORATING = ("active", "past_due", "unpaid")


def items_state(req: Request, sub: JSON) -> ItemState:
    """The licensed items of ``sub`` as prorations see them."""
    state: ItemState = {}
    for item in sub["items"]["data"]:
        price = req.store.find(PRICE, str(item["price"]))
        if price is not None and not is_metered(price):
            state[item["id"]] = (price["id"], int(item.get("quantity", 1)))
    return state


def take_pending(req: Request, sub: JSON) -> list[JSON]:
    """The pending proration lines of ``sub`` (removed from the pending ones)."""
    lines = []
    for record in req.store.values(PENDING):
        if record["subscription"] == sub["id"]:
            lines.append(record["line"])
            req.store.delete(PENDING, record["id"])
    return lines


def _drop_pending(req: Request, sub: JSON) -> None:
    take_pending(req, sub)


def _date(moment: int) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%d %b %Y")


def _line(
    req: Request,
    sub: JSON,
    item: JSON,
    state: tuple[str, int],
    when: int,
    *,
    credit: bool,
) -> JSON | None:
    price_id, quantity = state
    start, end = int(sub["current_period_start"]), int(sub["current_period_end"])
    price = req.store.get(PRICE, price_id)
    exact = exact_amount(price, quantity) * Decimal(end - when) / Decimal(end - start)
    amount = round_cents(exact)
    if amount == 0:
        return None
    line = line_for(req, sub, item, price, quantity=quantity, period=(when, end))
    product = req.store.find(PRODUCT, str(price["product"]))
    name = product["name"] if product is not None else price["product"]
    what = "Unused time" if credit else "Remaining time"
    signed = -amount if credit else amount
    invoice_item = new_id("ii")
    line.update(
        {
            "amount": signed,
            "amount_excluding_tax": signed,
            "subtotal": signed,
            "description": f"{what} on {quantity} \N{MULTIPLICATION SIGN} {name} after "
            f"{_date(when)}",
            # "All invoice items that are prorations (prorations=true) are set to
            # discountable=false" (docs.stripe.com/billing/subscriptions/prorations).
            "discountable": False,
            "proration": True,
        }
    )
    details = line["parent"]["subscription_item_details"]
    details["proration"] = True
    details["invoice_item"] = invoice_item
    return line


def credit_line(
    req: Request, sub: JSON, item: JSON, state: tuple[str, int], when: int
) -> JSON | None:
    """The "Unused time" credit of ``item`` (``state``: its price and quantity) from
    ``when`` to the end of ``sub``'s current period; None when it comes to $0."""
    return _line(req, sub, item, state, when, credit=True)


def proration_date(req: Request, sub: JSON, params: JSON, now: int) -> int:
    """``params['proration_date']`` (checked to fall inside ``sub``'s current period),
    else ``now``."""
    given = params.get("proration_date")
    if given is None:
        return now
    moment = int(given)
    if not int(sub["current_period_start"]) <= moment < int(sub["current_period_end"]):
        raise invalid(
            "proration_date must be within the subscription's current billing period.",
            param="proration_date",
        )
    return moment


def _refuse_unprorateable(req: Request, sub: JSON, before_cycle: tuple[str, int]) -> None:
    if sub.get("discounts"):
        raise invalid(
            "The emulator does not support prorations on a subscription with discounts (not "
            "emulated); pass proration_behavior=none.",
            param="proration_behavior",
        )
    for item in sub["items"]["data"]:
        price = req.store.get(PRICE, str(item["price"]))
        cycle = (str(price["recurring"]["interval"]), int(price["recurring"]["interval_count"]))
        if cycle != before_cycle:
            raise invalid(
                "The emulator does not support changing the billing interval with prorations "
                "(not emulated: the new billing cycle starting at once); pass "
                "proration_behavior=none.",
                param="proration_behavior",
            )


def changed(
    req: Request,
    sub: JSON,
    saved: JSON,
    params: JSON,
    now: int,
) -> None:
    """Prorate the change from ``saved`` (the subscription before the request) to the
    items it has now, per ``params['proration_behavior']`` (the
    ``subscription.items_changed`` hook, through :func:`.cycle_reset.items_changed`)."""
    behavior = params.get("proration_behavior") or "create_prorations"
    if behavior == "none" or saved["status"] not in PRORATING:
        return
    before, after = items_state(req, saved), items_state(req, sub)
    if before != after:
        try:
            when = proration_date(req, sub, params, now)
            _refuse_unprorateable(req, sub, interval_of(req, saved))
        except ApiError:
            req.store.put(SUBSCRIPTION, saved)  # a refused change leaves the subscription as it was
            raise
        # A removed item is credited with what it had (its tax rates, metadata).
        items = {i["id"]: i for i in saved["items"]["data"]}
        now_items = {i["id"]: i for i in sub["items"]["data"]}
        for item_id in sorted(set(before) | set(after)):
            old, new = before.get(item_id), after.get(item_id)
            if old == new:
                continue
            if old is not None:
                pend(req, sub, _line(req, sub, items[item_id], old, when, credit=True))
            if new is not None:
                pend(req, sub, _line(req, sub, now_items[item_id], new, when, credit=False))
    if behavior != "always_invoice":
        return
    pending = take_pending(req, sub)
    if not pending:
        return
    invoice_change(req, sub, saved, params, lines=pending, pending=pending, period=(now, now))


def invoice_change(
    req: Request,
    sub: JSON,
    saved: JSON,
    params: JSON,
    *,
    lines: list[JSON],
    pending: list[JSON],
    period: tuple[int, int],
    hold: str | None = None,
) -> None:
    """Invoice a subscription change at once (``subscription_update``), paying per
    ``params['payment_behavior']``. With ``error_if_incomplete`` an unpaid invoice undoes
    the change: the subscription is put back as ``saved``, the ``pending`` prorations it
    took are pending again, and the payment error is raised."""
    payment = params.get("payment_behavior")
    invoice = issue_invoice(
        req,
        sub,
        lines,
        reason="subscription_update",
        period=period,
        when=period[1],
        hold=hold,
        attempt=payment != "default_incomplete",
    )
    if invoice["status"] == "open" and payment == "error_if_incomplete":
        # "this parameter does not update the subscription and returns an error instead"
        error = payment_error(req, invoice)
        forget_invoice(req, invoice)
        req.store.put(SUBSCRIPTION, saved)
        for line in pending:
            pend(req, saved, line)
        raise error


def pend(req: Request, sub: JSON, line: JSON | None) -> None:
    """Keep ``line`` pending for ``sub``'s next invoice (nothing when None)."""
    if line is not None:
        record = {"id": line["parent"]["subscription_item_details"]["invoice_item"]}
        req.store.put(PENDING, {**record, "subscription": sub["id"], "line": line})


def cancelled(req: Request, sub: JSON, params: JSON, now: int) -> None:
    """``DELETE /v1/subscriptions/{id}``: ``prorate`` and ``invoice_now`` (the
    ``subscription.cancelling`` hook, before the subscription is canceled)."""
    prorate = bool(params.get("prorate"))
    invoice_now = bool(params.get("invoice_now"))
    if not prorate and not invoice_now:
        _drop_pending(req, sub)
        return
    running = sub["status"] in PRORATING
    if prorate and running and int(sub["current_period_start"]) <= now:
        if sub.get("discounts"):
            raise invalid(
                "The emulator does not support prorations on a subscription with discounts "
                "(not emulated).",
                param="prorate",
            )
        items = {i["id"]: i for i in sub["items"]["data"]}
        for item_id, state in sorted(items_state(req, sub).items()):
            pend(req, sub, _line(req, sub, items[item_id], state, now, credit=True))
    if not invoice_now:
        return
    lines = take_pending(req, sub)
    if running:
        lines += metered_lines(req, sub, int(sub["current_period_start"]), now)
    if lines:
        issue_invoice(req, sub, lines, reason="subscription_update", period=(now, now), when=now)


def register(registry: Registry) -> None:
    # ``changed`` is run by :mod:`.cycle_reset`, which first sees whether the change
    # resets the billing cycle instead.
    registry.add_hook("subscription.cancelling", cancelled)
