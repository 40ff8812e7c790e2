"""stripe-reconcile: declarative reconciliation of Stripe usage-based billing.

The package reads ``billing.yaml`` into a desired state, reads the Stripe
account into a snapshot, diffs the two into a plan and applies it.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
