"""A move between free and paid inside a period: the billing cycle resets at once.

The API reference ("Update a subscription"): "Switching prices does not
normally change the billing date or generate an immediate charge unless: the
billing interval is changed; the subscription moves from free to paid, or paid
to free; a trial starts or ends. In these cases, we apply a credit for the
unused time on the previous price, immediately charge the customer using the
new price, and reset the billing date." A schedule phase entered inside a
period (phase ``billing_cycle_anchor`` ``automatic``, the default) behaves the
same: entering a phase updates the subscription.

*Paid* (the rule the planner uses too): at least one licensed item
(``recurring.usage_type`` ``licensed``) whose price comes to more than $0 for
the item's quantity (unit amount, decimal or not, times the quantity, or what
the tiers give for it); otherwise *free*. Metered items never make a
subscription paid.

This module is the ``subscription.items_changed`` hook (a subscription update
with ``items``, the item endpoints, a schedule phase entered between period
boundaries): a change that moves a running (``active``, ``past_due``,
``unpaid``) subscription between free and paid resets its cycle at ``now``
(:func:`reset_cycle`); any other change prorates (:func:`.prorations.changed`).
At a period boundary a phase switches with the renewal, which starts the new
period already (:mod:`.renewals`); trials do not reset (no prorations during a
trial either).

The reset issues one invoice at once (``billing_reason``
``subscription_update``, the same reason as other changes invoiced at once),
for the period that closes (``period_start`` to ``now``):

- the pending prorations;
- with ``proration_behavior`` ``create_prorations`` (the default) or
  ``always_invoice``, the credit for the unused time of every previous
  licensed item (Stripe's "credit for the unused time on the previous price",
  the arithmetic of :mod:`.prorations`, from ``proration_date`` when given);
  with ``none``, no credit;
- the metered usage from the period's start to ``now``, on the items as they
  were;
- the licensed items as they are now, in advance for the new period.

``billing_cycle_anchor`` becomes ``now`` and the current period runs from
``now`` to the next boundary of that anchor (on the new items' interval, so a
move that changes the interval too needs no refusal, unlike a proration); a
``cancel_at_period_end`` moves with the period's end. The invoice is collected
like any invoiced change (``payment_behavior``: ``error_if_incomplete`` refuses
the change with the card's error and leaves the subscription as it was;
``default_incomplete`` finalises it without charging), and ``pause_collection``
holds it as it holds a renewal.

Not emulated, refused: a credit on a subscription with discounts (as in
:mod:`.prorations`).
"""

from __future__ import annotations

from reconciler.emulator.errors import ApiError, invalid
from reconciler.emulator.resources.billing import (
    SUBSCRIPTION,
    exact_amount,
    is_metered,
    next_boundary,
)
from reconciler.emulator.resources.catalog import PRICE
from reconciler.emulator.resources.invoices import licensed_lines, metered_lines
from reconciler.emulator.resources.prorations import (
    PRORATING,
    changed,
    credit_line,
    invoice_change,
    items_state,
    proration_date,
    take_pending,
)
from reconciler.emulator.resources.subscriptions import interval_of, set_period
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["is_paid", "items_changed", "register", "reset_cycle"]


def is_paid(req: Request, sub: JSON) -> bool:
    """Whether a licensed item of ``sub`` costs more than $0 for its quantity."""
    for item in sub["items"]["data"]:
        price = req.store.find(PRICE, str(item["price"]))
        if price is None or is_metered(price):
            continue
        if exact_amount(price, int(item.get("quantity", 1))) > 0:
            return True
    return False


def items_changed(req: Request, sub: JSON, saved: JSON, params: JSON, now: int) -> None:
    """Reset the cycle on a move between free and paid; prorate any other change."""
    if saved["status"] in PRORATING and is_paid(req, saved) != is_paid(req, sub):
        reset_cycle(req, sub, saved, params, now)
    else:
        changed(req, sub, saved, params, now)


def _credits(req: Request, sub: JSON, saved: JSON, params: JSON, now: int) -> list[JSON]:
    """The unused time of the previous licensed items (none with ``proration_behavior=none``)."""
    if (params.get("proration_behavior") or "create_prorations") == "none":
        return []
    when = proration_date(req, saved, params, now)
    items = {item["id"]: item for item in saved["items"]["data"]}
    lines = [
        line
        for item_id, state in sorted(items_state(req, saved).items())
        if (line := credit_line(req, saved, items[item_id], state, when)) is not None
    ]
    if lines and sub.get("discounts"):
        raise invalid(
            "The emulator does not support prorations on a subscription with discounts (not "
            "emulated); pass proration_behavior=none.",
            param="proration_behavior",
        )
    return lines


def reset_cycle(req: Request, sub: JSON, saved: JSON, params: JSON, now: int) -> None:
    """Close the period at ``now``, invoice it with the new period, re-anchor the cycle.

    ``saved`` is the subscription before the change (its items and period);
    ``params`` the change's ``proration_behavior``, ``proration_date`` and
    ``payment_behavior``.
    """
    try:
        credits = _credits(req, sub, saved, params, now)
    except ApiError:
        req.store.put(SUBSCRIPTION, saved)  # a refused change leaves the subscription as it was
        raise
    start = int(saved["current_period_start"])
    pending = take_pending(req, sub)
    lines = pending + credits + metered_lines(req, saved, start, now)
    interval, count = interval_of(req, sub)
    end = next_boundary(now, interval, count, now)
    sub["billing_cycle_anchor"] = now
    set_period(sub, now, end)
    if sub.get("cancel_at_period_end"):
        sub["cancel_at"] = end
    lines += licensed_lines(req, sub, now, end)
    pause = sub.get("pause_collection")
    invoice_change(
        req,
        sub,
        saved,
        params,
        lines=lines,
        pending=pending,
        period=(start, now),
        hold=str(pause["behavior"]) if pause else None,
    )


def register(registry: Registry) -> None:
    registry.add_hook("subscription.items_changed", items_changed)
