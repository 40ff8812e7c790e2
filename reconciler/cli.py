"""The `stripe-reconcile` command line: the only module that prints or exits.

Each command parses its options, calls the pure core or the gateway, renders
the result and maps errors of :mod:`reconciler.errors` to exit codes:
0 ok / no changes, 1 error, 2 changes present (with ``--detailed-exitcode``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from reconciler import __version__
from reconciler.errors import ConfigErrors

__all__ = ["main"]

DEFAULT_CONFIG = "billing.yaml"

config_option = click.option(
    "-f",
    "--file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The billing.yaml to read.",
)


def _not_built(command: str) -> NoReturn:
    click.echo(f"stripe-reconcile {command}: not built yet in this version.", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stripe-reconcile")
def main() -> None:
    """Declarative reconciliation of Stripe usage-based billing.

    billing.yaml states the meters, products, metered prices, usage alerts and
    subscription migrations an account should have; `plan` shows the
    difference from the live account and `apply` makes exactly those changes.
    """


@main.command()
@config_option
def validate(config_file: Path) -> None:
    """Check billing.yaml against the schema and the semantic rules."""
    from reconciler.config import load_config

    try:
        desired = load_config(config_file)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        count = len(exc.errors)
        click.echo(f"{config_file}: {count} error{'s' if count != 1 else ''}", err=True)
        sys.exit(1)
    click.echo(f"{config_file}: valid ({desired.summary()})")


@main.command()
@config_option
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text"
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
def plan(
    config_file: Path, out_file: Path | None, output_format: str, detailed_exitcode: bool
) -> None:
    """Show what apply would change in the Stripe account (not built yet)."""
    _not_built("plan")


@main.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--live", is_flag=True, help="Allow a live-mode key (billing.yaml must say so too).")
def apply(planfile: Path | None, config_file: Path, auto_approve: bool, live: bool) -> None:
    """Make exactly the planned changes, idempotently (not built yet)."""
    _not_built("apply")


@main.command()
@config_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def status(config_file: Path, output_format: str) -> None:
    """Show each migration's subscriptions and their state (not built yet)."""
    _not_built("status")


@main.command(name="import")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path))
def import_(out_file: Path | None) -> None:
    """Write a billing.yaml from the live account (not built yet)."""
    _not_built("import")


@main.command()
@config_option
def simulate(config_file: Path) -> None:
    """Run the migrations end to end on test clocks (not built yet)."""
    _not_built("simulate")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rate-limit", type=float, help="Requests per second (default 25, 0 = off).")
@click.option("--faults", help="Fault injection spec, e.g. 'seed=1,500=0.05,429=0.05'.")
def emulator(
    host: str, port: int, db_path: Path | None, rate_limit: float | None, faults: str | None
) -> None:
    """Serve the local Stripe emulator until stopped (SIGINT or SIGTERM)."""
    from reconciler.emulator import FaultPlan, serve

    if faults:
        try:
            FaultPlan.parse(faults)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        serve(
            host=host,
            port=port,
            db_path=db_path,
            rate_limit=25.0 if rate_limit is None else (rate_limit or None),
            faults=faults,
            on_ready=lambda url: click.echo(f"emulator listening on {url}"),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None


@main.command()
@click.option("--keep", is_flag=True, help="Leave the emulator running afterwards.")
def demo(keep: bool) -> None:
    """The whole story on an embedded emulator, no key needed (not built yet)."""
    _not_built("demo")
