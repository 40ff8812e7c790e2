"""Stripe's per-subscription limits on new invoices and quantity updates.

docs.stripe.com/rate-limits, Subscriptions API: "10 new invoices per
subscription, per minute", "20 new invoices per subscription, per day", "200
quantity updates per subscription, per hour". Exceeding one answers HTTP 429
(the SDK raises ``RateLimitError``), code ``rate_limit``.

What counts, per subscription, at the subscription's present (its test
clock's time, else the emulator's time):

- every invoice an API request creates for it: a subscription create's first
  invoice, an update invoiced at once (``always_invoice``, a free <-> paid
  reset, :mod:`.cycle_reset`), a schedule write that enters a phase at once,
  a resume, a cancel with ``invoice_now``;
- every API request that changes the quantity of one of its items
  (a subscription update, the item endpoints, a schedule write entering a
  phase).

A request that would make the 11th invoice within 60 seconds, the 21st within
86,400 seconds or the 201st quantity update within 3,600 seconds is refused
with 429 ``invalid_request_error`` ``rate_limit`` naming the limit, and changes
nothing: the store goes back to its state before the request. Like the
emulator's other 429s the refusal saves no idempotent result, so the same
request may be sent again once the window has passed (UNCONFIRMED: Stripe does
not document whether it replays these). Invoices a test clock advance makes
(renewals, phase transitions, retries) are Stripe's own doing: never counted,
never refused. Invoice previews run the handlers on a copy, outside these
limits. ``Emulator.reset()`` clears the counts (they are kept in the store).

The routes that can add to a count wrap their handlers with :func:`limited`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reconciler.emulator.errors import ApiError
from reconciler.emulator.resources.billing import INVOICE, SUBSCRIPTION, customer_now
from reconciler.emulator.router import Handler, Reply, Request
from reconciler.emulator.store import JSON, Store

__all__ = ["LIMITS", "Limit", "limited"]

#: Internal kind: ``{id: subscription id, invoices: [times], quantity_updates: [times]}``.
COUNTS = "_subscription_limits"
#: What names the subscription a request acts on (None: none yet, e.g. a create).
Target = Callable[[Request], str | None]


@dataclass(frozen=True)
class Limit:
    """At most ``most`` of ``what`` within ``seconds``."""

    what: str
    most: int
    seconds: int
    label: str
    per: str

    def count(self, times: list[int], now: int) -> int:
        return sum(1 for moment in times if moment > now - self.seconds)

    def refusal(self, sub_id: str) -> ApiError:
        noun = "new invoices" if self.what == "invoices" else "quantity updates"
        return ApiError(
            429,
            f"This subscription ({sub_id}) has had {self.most} {noun} in the last {self.label}, "
            f"Stripe's limit per subscription ({self.most} {self.per}): retry later.",
            code="rate_limit",
            store_idempotent=False,
        )


LIMITS = (
    Limit("invoices", 10, 60, "minute", "a minute"),
    Limit("invoices", 20, 86400, "day", "a day"),
    Limit("quantity_updates", 200, 3600, "hour", "an hour"),
)
#: The most one request adds to a count of one subscription (an invoice, or a
#: quantity update): a subscription this close to a limit is copied before the
#: request, so a refusal can undo it.
_HEADROOM = 2


def _record(store: Store, sub_id: str) -> JSON:
    return store.find(COUNTS, sub_id) or {"id": sub_id, "invoices": [], "quantity_updates": []}


def _near(req: Request, sub: JSON) -> bool:
    record = _record(req.store, str(sub["id"]))
    now = customer_now(req, sub["customer"])
    return any(limit.count(record[limit.what], now) + _HEADROOM > limit.most for limit in LIMITS)


def _quantities(sub: JSON | None) -> dict[str, int]:
    if sub is None:
        return {}
    return {
        item["id"]: int(item["quantity"]) for item in sub["items"]["data"] if "quantity" in item
    }


def _quantity_changed(before: dict[str, int], sub: JSON | None) -> bool:
    after = _quantities(sub)
    return any(item in after and after[item] != quantity for item, quantity in before.items())


def _count(req: Request, added: dict[str, dict[str, int]]) -> None:
    """Add ``added`` (``{subscription: {what: n}}``), or refuse when a limit would pass."""
    records: list[JSON] = []
    for sub_id, counts in sorted(added.items()):
        sub = req.store.find(SUBSCRIPTION, sub_id)
        if sub is None:
            continue
        now = customer_now(req, sub["customer"])
        record = _record(req.store, sub_id)
        for limit in LIMITS:
            if limit.count(record[limit.what], now) + counts.get(limit.what, 0) > limit.most:
                raise limit.refusal(sub_id)
        longest = max(limit.seconds for limit in LIMITS)
        for what in ("invoices", "quantity_updates"):
            kept = [moment for moment in record[what] if moment > now - longest]
            record[what] = kept + [now] * counts.get(what, 0)
        records.append(record)
    for record in records:
        req.store.put(COUNTS, record)


def limited(handler: Handler, target: Target) -> Handler:
    """``handler`` counted against the limits of the subscriptions it invoices (and of
    ``target``'s subscription, whose quantity updates count), refused past them."""

    def run(req: Request) -> JSON | Reply:
        sub_id = target(req)
        sub = req.store.find(SUBSCRIPTION, sub_id) if sub_id else None
        before = _quantities(sub)
        invoices = {str(invoice["id"]) for invoice in req.store.iterate(INVOICE)}
        # Copying the whole store is costly: only when a refusal may have to undo the request.
        twin = req.store.snapshot() if sub is not None and _near(req, sub) else None
        result = handler(req)
        added: dict[str, dict[str, int]] = {}
        for invoice in req.store.iterate(INVOICE):
            if str(invoice["id"]) not in invoices and invoice.get("subscription"):
                counts = added.setdefault(str(invoice["subscription"]), {})
                counts["invoices"] = counts.get("invoices", 0) + 1
        if sub_id and _quantity_changed(before, req.store.find(SUBSCRIPTION, sub_id)):
            added.setdefault(sub_id, {})["quantity_updates"] = 1
        try:
            _count(req, added)
        except ApiError:
            if twin is not None:
                req.store.restore(twin)
            raise
        return result

    return run
