"""stripe-reconcile: declarative reconciliation of Stripe usage-based billing.

The package reads ``billing.yaml`` into a desired state, reads the Stripe
account into a snapshot, diffs the two into a plan and applies it.
"""

__all__ = ["__version__"]

from importlib.metadata import PackageNotFoundError, version

try:  # pyproject.toml's version is the one source; the installed metadata carries it
    __version__ = version("stripe-reconcile")
except PackageNotFoundError:  # pragma: no cover - a checkout on sys.path, never installed
    __version__ = "0+unknown"
