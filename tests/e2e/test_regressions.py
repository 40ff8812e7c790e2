"""Named regressions: each is a counterexample a property test once found, replayed exactly."""

from __future__ import annotations

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan

DEFAULT_MOVED_FIRST = """
version: 1
mode: test
products:
  - {id: prod_x00, name: Old home}
  - {id: prod_x0, name: New home}
prices:
  - lookup_key: x0
    product: prod_x00
    currency: usd
    unit_amount: 100
    default: true
"""

DEFAULT_MOVED_SECOND = """
version: 1
mode: test
products:
  - {id: prod_x0, name: New home}
prices:
  - lookup_key: x0
    product: prod_x0
    currency: usd
    unit_amount: 100
"""


def test_a_default_price_moved_to_another_product_is_archived_after_its_old_product_lets_go(
    gateway: Gateway,
) -> None:
    """x0 was the default of prod_x00; then x0 moves to prod_x0 and prod_x00 is no longer
    declared. The replace must unset prod_x00's default (shown in the plan) before it
    archives the old price, or Stripe refuses the archive on every run."""
    for text in (DEFAULT_MOVED_FIRST, DEFAULT_MOVED_SECOND):
        snapshot = read_snapshot(gateway)
        plan = build_plan(load_text(text), snapshot)
        apply_plan(plan, snapshot, gateway)
    replace = next(c for c in plan.actionable if c.address == "price.x0")
    assert replace.details.get("unset_default_of") == "prod_x00"
    assert not build_plan(load_text(DEFAULT_MOVED_SECOND), read_snapshot(gateway)).has_changes
    old_home = gateway.get("/v1/products/prod_x00")
    assert old_home["default_price"] is None
