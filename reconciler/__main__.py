"""``python -m reconciler`` runs the stripe-reconcile command line."""

from reconciler.cli import main

main(prog_name="stripe-reconcile")
