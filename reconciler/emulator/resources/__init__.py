"""The Stripe resources the emulator serves, one module per resource family.

Each module exposes ``register(registry: Registry) -> None`` that declares its
routes, object types and hooks; :func:`build_registry` calls them in the order
of :data:`RESOURCE_MODULES`. To add a resource, write a module with a
``register`` function and append it there.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from reconciler.emulator.resources import alerts as alerts
from reconciler.emulator.resources import billing_portal as billing_portal
from reconciler.emulator.resources import collection as collection
from reconciler.emulator.resources import customers as customers
from reconciler.emulator.resources import cycle_reset as cycle_reset
from reconciler.emulator.resources import entitlements as entitlements
from reconciler.emulator.resources import events as events
from reconciler.emulator.resources import invoices as invoices
from reconciler.emulator.resources import meter_events as meter_events
from reconciler.emulator.resources import meters as meters
from reconciler.emulator.resources import payment_methods as payment_methods
from reconciler.emulator.resources import previews as previews
from reconciler.emulator.resources import prices as prices
from reconciler.emulator.resources import products as products
from reconciler.emulator.resources import promotion_codes as promotion_codes
from reconciler.emulator.resources import prorations as prorations
from reconciler.emulator.resources import renewals as renewals
from reconciler.emulator.resources import schedules as schedules
from reconciler.emulator.resources import subscription_items as subscription_items
from reconciler.emulator.resources import subscriptions as subscriptions
from reconciler.emulator.resources import tax_and_discounts as tax_and_discounts
from reconciler.emulator.resources import test_clocks as test_clocks
from reconciler.emulator.resources import usage_records as usage_records
from reconciler.emulator.router import Registry

__all__ = ["RESOURCE_MODULES", "build_registry"]

RESOURCE_MODULES: list[ModuleType] = [
    products,
    prices,
    meters,
    meter_events,
    customers,
    payment_methods,
    test_clocks,
    alerts,
    tax_and_discounts,
    entitlements,
    promotion_codes,
    billing_portal,
    subscriptions,
    subscription_items,
    usage_records,
    schedules,
    previews,
    invoices,
    collection,
    prorations,
    cycle_reset,
    renewals,
    events,
]


def build_registry(extra: list[Callable[[Registry], None]] | None = None) -> Registry:
    """A registry with every resource module registered (plus ``extra`` registrars)."""
    registry = Registry()
    for module in RESOURCE_MODULES:
        module.register(registry)
    for registrar in extra or []:
        registrar(registry)
    return registry
