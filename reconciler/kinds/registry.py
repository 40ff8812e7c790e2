"""The registry: every managed kind's spec, in apply order.

The planner plans the kinds in this order, apply builds their steps in it
(within each phase), the live reader lists them, the importer writes their
sections in it, and the renders look a kind's hints up here. Adding a kind
is adding its module and its spec to ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.kinds import Kind
from reconciler.kinds.alert import AlertSpec
from reconciler.kinds.base import KindSpec
from reconciler.kinds.coupon import CouponSpec
from reconciler.kinds.feature import FeatureSpec
from reconciler.kinds.meter import MeterSpec
from reconciler.kinds.portal import PortalSpec
from reconciler.kinds.price import PriceSpec
from reconciler.kinds.product import ProductSpec
from reconciler.kinds.product_feature import ProductFeatureSpec
from reconciler.kinds.promotion_code import PromotionCodeSpec

__all__ = ["IMPORT_ORDER", "READ_ORDER", "REGISTRY", "spec_for"]

REGISTRY: tuple[KindSpec, ...] = (
    ProductSpec(),
    MeterSpec(),
    PriceSpec(),
    AlertSpec(),
    FeatureSpec(),
    PortalSpec(),
    ProductFeatureSpec(),  # after the products and features it attaches
    CouponSpec(),
    PromotionCodeSpec(),
)

_BY_KIND = {spec.kind: spec for spec in REGISTRY}


def spec_for(kind: Kind | str) -> KindSpec | None:
    """The spec of a kind; None for a kind planned elsewhere (migrations)."""
    return _BY_KIND.get(Kind(kind))


def _after(edges: Callable[[KindSpec], tuple[Kind, ...]]) -> tuple[KindSpec, ...]:
    """The registry ordered so each spec comes after those it names (stable otherwise)."""
    ordered: list[KindSpec] = []
    placed: set[Kind] = set()
    while len(ordered) < len(REGISTRY):
        ready = [
            spec
            for spec in REGISTRY
            if spec.kind not in placed and all(k in placed for k in edges(spec))
        ]
        if not ready:
            raise RuntimeError("kind specs name each other in a cycle")
        ordered.append(ready[0])
        placed.add(ready[0].kind)
    return tuple(ordered)


READ_ORDER = _after(lambda spec: spec.read_after)
"""Each kind read after the kinds whose ids it names (meters, then prices ...)."""
IMPORT_ORDER = _after(lambda spec: spec.import_after)
"""Each kind imported after the kinds whose entries decide which of its objects count."""
