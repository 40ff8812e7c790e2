"""The `stripe-reconcile` command line: the only module that prints or exits.

Each command parses its options, calls the pure core or the gateway, renders
the result and maps errors of :mod:`reconciler.errors` to exit codes:
0 ok / no changes, 1 error, 2 changes present (with ``--detailed-exitcode``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from reconciler import __version__
from reconciler.errors import ConfigErrors, ReconcileError
from reconciler.kinds import Kind

if TYPE_CHECKING:
    from reconciler.demo import Consolidation, Demo, InvoiceView, SeatInvoice
    from reconciler.gateway import Gateway
    from reconciler.model import Desired
    from reconciler.plan import Plan
    from reconciler.snapshot import Snapshot

__all__ = ["main"]

DEFAULT_CONFIG = "billing.yaml"
MAX_REVENUE_LIMIT = 100_000
"""Subscriptions previewed per migration at most (two requests each)."""

# Paths that are read are not checked by click (its refusal is a usage error, exit 2):
# the bounded reader refuses directories, FIFOs and devices with a located message, exit 1.
config_option = click.option(
    "-f",
    "--file",
    "config_file",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The billing.yaml to read.",
)


def _not_built(command: str) -> NoReturn:
    click.echo(f"stripe-reconcile {command}: not built yet in this version.", err=True)
    sys.exit(1)


_NO_COLOR_KEY = "stripe_reconcile.no_color"


def _set_no_color(context: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        context.meta[_NO_COLOR_KEY] = True


def _no_color_option() -> click.Option:
    return click.Option(
        ["--no-color"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_no_color,
        help="Plain text, no colour (also NO_COLOR=1; FORCE_COLOR=1 colours a pipe).",
    )


class _EveryCommandGroup(click.Group):
    """A group whose every command, nested ones included, takes ``--no-color``."""

    group_class = type

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.params.append(_no_color_option())

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: object,
    ) -> click.Context:
        if parent is None:  # FORCE_COLOR: click must keep the colour it would strip from a pipe
            import io

            from reconciler.render import should_color

            if should_color(io.StringIO()):
                extra.setdefault("color", True)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _as_error(exc) from None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _as_error(exc) from None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group) and all(p.name != "no_color" for p in cmd.params):
            cmd.params.append(_no_color_option())
        super().add_command(cmd, name)


def _as_error(usage: click.UsageError) -> click.UsageError:
    """A mistyped command line exits 1, an error like any other: click's own 2 is what
    ``--detailed-exitcode`` means by "changes present", and CI would read a typo as
    drift."""
    usage.exit_code = 1  # type: ignore[misc]
    return usage


def _color(stream: object) -> bool:
    """Whether to colour ``stream``: ``--no-color``, NO_COLOR and FORCE_COLOR decide first."""
    from reconciler.render import should_color

    context = click.get_current_context(silent=True)
    off = bool(context is not None and context.meta.get(_NO_COLOR_KEY))
    return should_color(stream, no_color=off)  # type: ignore[arg-type]


@click.group(cls=_EveryCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stripe-reconcile")
def main() -> None:
    """Declarative reconciliation of Stripe usage-based billing.

    billing.yaml states the meters, products, metered prices, usage alerts and
    subscription migrations an account should have; `plan` shows the
    difference from the live account and `apply` makes exactly those changes.
    """


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--file",
    "config_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help=f"A billing.yaml to check (repeatable; default {DEFAULT_CONFIG}).",
)
def validate(files: tuple[Path, ...], config_files: tuple[Path, ...]) -> None:
    """Check billing.yaml files (FILES and -f, default billing.yaml) against the schema and
    the semantic rules; every file is checked, and the exit is 1 if any fails."""
    failed = 0
    for config_file in dict.fromkeys([*config_files, *files]) or [Path(DEFAULT_CONFIG)]:
        desired = _checked(config_file)
        if desired is None:
            failed += 1
        else:
            click.echo(f"{config_file}: valid ({desired.summary()})")
    if failed:
        sys.exit(1)


def _load(config_file: Path) -> Desired:
    """The checked config, or every error on stderr and exit 1."""
    desired = _checked(config_file)
    if desired is None:
        sys.exit(1)
    return desired


def _checked(config_file: Path) -> Desired | None:
    """The checked config, or None after every error on stderr."""
    from reconciler.config import load_config

    click.get_current_context().meta[_CONFIG_KEY] = str(config_file)
    try:
        return load_config(config_file)
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        from reconciler.config import MAX_ERRORS

        count = len(exc.errors)
        if count > MAX_ERRORS:  # the extra line says the rest were left out
            click.echo(f"{config_file}: more than {MAX_ERRORS} errors", err=True)
        else:
            click.echo(f"{config_file}: {count} error{'s' if count != 1 else ''}", err=True)
        return None


_CONFIG_KEY = "stripe_reconcile.config_file"
_BARE_NAME = re.compile(r"(?<![\w./-])billing\.yaml(?![\w-])")


def _config_name() -> str:
    """The billing file this command read (``-f``), for messages; ``billing.yaml`` if none."""
    context = click.get_current_context(silent=True)
    found = context.meta.get(_CONFIG_KEY) if context is not None else None
    return str(found) if found else DEFAULT_CONFIG


def _naming_the_file(text: str) -> str:
    """The core says ``billing.yaml`` for the file it was given; say the file's own name."""
    name = _config_name()
    return text if name == DEFAULT_CONFIG else _BARE_NAME.sub(lambda _: name, text)


def _fail(error: ReconcileError) -> NoReturn:
    from reconciler.planner import SourcePlanError

    text = str(error)
    if isinstance(error, SourcePlanError):  # with the line and column in the file used
        from reconciler.config import locate

        name = _config_name()
        text = error.located(lambda path: locate(name, path))
    text += _refused_field(error)
    click.echo(f"Error: {_naming_the_file(text)}", err=True)
    sys.exit(1)


def _refused_field(error: ReconcileError) -> str:
    """After a permanent refusal: a line naming where billing.yaml sets the refused field."""
    from reconciler.apply import ApplyResult
    from reconciler.errors import ApplyError

    result = error.result if isinstance(error, ApplyError) else None
    refused = result.refused if isinstance(result, ApplyResult) else None
    if refused is None or refused.field is None:
        return ""
    from reconciler.config import locate_field

    where = locate_field(_config_name(), refused.address, refused.field)
    return f"\n{where}: the field Stripe refused ({refused.param})" if where else ""


def _connect(
    desired: Desired, *, writing: bool, allow_live: bool = False, rate_limit: float | None = None
) -> Gateway:
    """A gateway for STRIPE_API_KEY, after the live-key guard; reads and writes are paced
    at 80% of the mode's limit, leaving the rest to the account's own traffic."""
    from reconciler.gateway import MODE_RATE_LIMITS, Gateway, guard_key_mode

    gateway = Gateway.from_env()
    guard_key_mode(gateway.mode, desired.mode, allow_live=allow_live, writing=writing)
    gateway.set_rate_limit(
        rate_limit if rate_limit is not None else 0.8 * MODE_RATE_LIMITS[gateway.mode]
    )
    return gateway


def _pace_phrase(gateway: Gateway) -> str:
    """`` Pace fell to 5.0/s 2 times (429s from other traffic), ended at 16.0/s.``, or ""."""
    if gateway.pace is None:
        return ""
    report = gateway.pace.report()
    if not report.decreases:
        return ""
    times = "once" if report.decreases == 1 else f"{report.decreases} times"
    return (
        f" Pace fell to {report.lowest:.1f}/s {times} (429s from other traffic on the "
        f"account), ended at {report.final:.1f}/s of {report.configured:.1f}/s."
    )


def _make_plan(
    desired: Desired, gateway: Gateway, *, every_usage: bool = False
) -> tuple[Snapshot, Plan]:
    from reconciler.live import read_snapshot
    from reconciler.planner import build_plan

    snapshot = read_snapshot(gateway, desired, every_usage=every_usage)
    return snapshot, build_plan(desired, snapshot)


def _revenue_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--revenue`` and ``--revenue-limit N`` (which implies it), for plan and status."""
    command = click.option(
        "--revenue-limit",
        type=click.IntRange(1, MAX_REVENUE_LIMIT),
        help="Preview at most N subscriptions per migration, the first in batch order "
        "(default 200; implies --revenue).",
    )(command)
    return click.option(
        "--revenue",
        is_flag=True,
        help="Preview each migrated subscription's next invoice as is and on the new price "
        "(two requests each) and show the monthly recurring revenue before and after.",
    )(command)


def _with_revenue(made: Plan, snapshot: Snapshot, gateway: Gateway, limit: int | None) -> Plan:
    """The plan carrying its revenue preview (the document's ``revenue``, never compared)."""
    from reconciler.live import read_revenue
    from reconciler.revenue import DEFAULT_LIMIT

    preview = read_revenue(gateway, made, snapshot, limit=limit or DEFAULT_LIMIT)
    return dataclasses.replace(made, revenue=preview.to_json())


def _render(plan: Plan, output_format: str) -> str:
    from reconciler.plan import gc_paused
    from reconciler.render import render_json, render_markdown, render_text

    with gc_paused():  # a plan of 20,000 subscriptions renders twice as fast
        match output_format:
            case "json":
                return render_json(plan)
            case "markdown":
                return render_markdown(plan, source=_config_name())
            case _:
                return render_text(plan, color=_color(sys.stdout), source=_config_name())


@main.command()
@config_option
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan here."
)
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text"
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@_revenue_options
def plan(
    *,
    config_file: Path,
    out_file: Path | None,
    output_format: str,
    detailed_exitcode: bool,
    revenue: bool,
    revenue_limit: int | None,
) -> None:
    """Show what apply would change in the Stripe account."""
    desired = _load(config_file)
    try:
        gateway = _connect(desired, writing=False)
        snapshot, made = _make_plan(desired, gateway)
        if revenue or revenue_limit is not None:
            made = _with_revenue(made, snapshot, gateway, revenue_limit)
    except ReconcileError as exc:
        _fail(exc)
    rendered = _render(made, output_format)
    if out_file is not None:  # the plan file is the JSON render: written once for both
        _write_atomically(out_file, rendered if output_format == "json" else made.dumps())
    click.echo(rendered, nl=False)
    if detailed_exitcode and made.has_changes:
        sys.exit(2)


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a plan."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


@main.command()
@click.argument("planfile", required=False, type=click.Path(path_type=Path))
@config_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--live", is_flag=True, help="Allow a live-mode key (billing.yaml must say so too).")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second (default: 80% of the key's mode limit, 20 test / 80 live).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Independent changes written at once.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    help="json: the machine report; markdown: a readable report (pull request, job summary).",
)
def apply(
    *,
    planfile: Path | None,
    config_file: Path,
    auto_approve: bool,
    live: bool,
    rate_limit: float | None,
    concurrency: int,
    output_format: str,
) -> None:
    """Make exactly the planned changes, idempotently.

    With PLANFILE (from `plan --out`), apply that plan: it is refused when it
    was made from another billing.yaml or the account changed since; a plan
    interrupted part-way resumes. Without it, plan now and ask to confirm.
    """
    from reconciler.converge import apply_until_done
    from reconciler.errors import ApplyError
    from reconciler.live import read_snapshot
    from reconciler.planfile import load_plan, resolve_saved_plan

    desired = _load(config_file)
    try:
        saved = load_plan(planfile) if planfile is not None else None
        gateway = _connect(desired, writing=True, allow_live=live, rate_limit=rate_limit)

        def replan() -> tuple[Snapshot, Plan]:
            """The account now, and what is left: of the saved plan, or of billing.yaml."""
            if saved is None:
                return _make_plan(desired, gateway)
            snapshot = read_snapshot(gateway, desired)
            return snapshot, resolve_saved_plan(saved, desired, snapshot)

        snapshot, made = replan()
    except ReconcileError as exc:
        _refused_in_markdown(exc, output_format)
        _fail(exc)
    json_out = output_format != "text"  # json or markdown: one report at the end
    if not json_out:
        click.echo(_render(made, "text"), nl=False)
    if made.has_changes and saved is None and not auto_approve:
        _confirm()
    if not made.has_changes:
        if json_out:
            click.echo(_apply_json(made, None, gateway, ok=True, rounds=0, fmt=output_format))
        return
    try:
        with _progress(enabled=not json_out) as on_step:
            converged = apply_until_done(
                made,
                snapshot,
                gateway,
                replan=replan,
                concurrency=concurrency,
                on_step=on_step,
            )
    except ApplyError as exc:
        if json_out:
            click.echo(
                _apply_json(made, exc.result, gateway, ok=False, rounds=None, fmt=output_format)
            )
        _fail(exc)
    except ReconcileError as exc:
        _refused_in_markdown(exc, output_format)
        _fail(exc)
    result = converged.result
    if json_out:
        click.echo(
            _apply_json(made, result, gateway, ok=True, rounds=converged.rounds, fmt=output_format)
        )
        return
    rounds = f", {converged.rounds} rounds" if converged.rounds > 1 else ""
    replayed = f", {len(result.replayed)} answered by an earlier request" if result.replayed else ""
    click.echo(
        f"Apply complete: {len(result.done)} steps{replayed}, {gateway.stats.requests} requests "
        f"({gateway.stats.retries} retried){rounds}. {made.summary()}.{_pace_phrase(gateway)}"
    )


def _confirm() -> None:
    if not sys.stdin.isatty():
        click.echo("Refusing to apply without a terminal: pass --auto-approve.", err=True)
        sys.exit(1)
    answer = click.prompt("Apply these changes? Only 'yes' is accepted", default="")
    if answer != "yes":
        click.echo("Apply cancelled.")
        sys.exit(1)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on a terminal, a plain line every few seconds otherwise."""
    if not enabled:
        yield None
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TimeElapsedColumn,
        )

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(show_speed=True),
            TimeElapsedColumn(),
            console=Console(no_color=not _color(sys.stdout)),
        ) as bar:
            task = bar.add_task("applying", total=None)

            def advance(label: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=label[:40])

            yield advance
        return
    last = [0.0]

    def report(label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 2:
            last[0] = now
            click.echo(f"  [{done}/{total}] {label}")

    yield report


def _refused_in_markdown(error: ReconcileError, output_format: str) -> None:
    """With ``--format markdown``, say why apply was refused before any write, on stdout."""
    if output_format != "markdown":
        return
    from reconciler.errors import PlanMismatchError, StalePlanError
    from reconciler.render.apply import render_apply_refusal

    reason = (
        "mismatch"
        if isinstance(error, PlanMismatchError)
        else "stale"
        if isinstance(error, StalePlanError)
        else "error"
    )
    text = _naming_the_file(str(error))
    click.echo(render_apply_refusal(text, source=_config_name(), reason=reason), nl=False)


def _apply_json(
    plan: Plan,
    result: object,
    gateway: Gateway,
    *,
    ok: bool,
    rounds: int | None,
    fmt: str = "json",
) -> str:
    """The apply's report: JSON, or (``fmt="markdown"``) its readable render."""
    import json

    from reconciler.apply import ApplyResult

    record = result if isinstance(result, ApplyResult) else ApplyResult()
    report: dict[str, object] = {
        "ok": ok,
        "summary": plan.summary(),
        "done": record.done,
        "replayed": record.replayed,
        "rounds": rounds,
        "failed": record.failed,
        "error": record.error,
        "remaining": record.remaining,
        "advice": _naming_the_file(record.refused.advice()) if record.refused else None,
        "requests": gateway.stats.requests,
        "retries": gateway.stats.retries,
        "rate_limited": gateway.stats.rate_limited,
        "pace": None if gateway.pace is None else dataclasses.asdict(gateway.pace.report()),
    }
    if fmt == "markdown":
        from reconciler.render.apply import render_apply_markdown

        return render_apply_markdown(report, source=_config_name()).rstrip("\n")
    return json.dumps(report, indent=2, sort_keys=True)


@main.command()
@config_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--every-usage",
    is_flag=True,
    help="Check usage parity for every waiting subscription, not only the next batch's "
    "(two reads each).",
)
@_revenue_options
def status(
    *,
    config_file: Path,
    output_format: str,
    every_usage: bool,
    revenue: bool,
    revenue_limit: int | None,
) -> None:
    """Show each migration's subscriptions and their state."""
    from reconciler.render.revenue import preview_of
    from reconciler.render.status import price_amounts, render_status_json, render_status_text

    desired = _load(config_file)
    try:
        gateway = _connect(desired, writing=False)
        with _reading(enabled=output_format == "text"):
            snapshot, made = _make_plan(desired, gateway, every_usage=every_usage)
            if revenue or revenue_limit is not None:
                made = _with_revenue(made, snapshot, gateway, revenue_limit)
    except ReconcileError as exc:
        _fail(exc)
    migrations = [c for c in made.changes if c.kind is Kind.MIGRATION]
    preview = preview_of(made.revenue)
    if output_format == "json":
        click.echo(render_status_json(migrations, revenue=preview), nl=False)
    else:
        prices = price_amounts(made, snapshot)
        text = render_status_text(
            migrations, source=str(config_file), prices=prices, revenue=preview
        )
        click.echo(text, nl=False)


@contextmanager
def _reading(*, enabled: bool) -> Iterator[None]:
    """A spinner on a terminal while the account is read; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True, no_color=not _color(sys.stderr)).status(
        "reading subscriptions from Stripe"
    ):
        yield


GITHUB_BODY_LIMIT = 65_536
"""GitHub refuses comment and issue bodies longer than 65,536 characters."""


def _body(path: Path) -> str:
    """A comment or issue body: a regular file of at most GitHub's limit, UTF-8."""
    from reconciler.inputs import read_text

    return read_text(path, limit=GITHUB_BODY_LIMIT * 4, noun="body file", label="a body file")


@main.group()
def github() -> None:
    """GitOps helpers for the billing-*.yml workflows (need GITHUB_TOKEN)."""


def _repository(repo: str | None) -> str:
    import os

    found = repo or os.environ.get("GITHUB_REPOSITORY")
    if not found:
        click.echo("Error: no --repo given and GITHUB_REPOSITORY is not set", err=True)
        sys.exit(1)
    return found


@github.command()
@click.argument("body_file", type=click.Path(path_type=Path))
@click.option("--repo", help="owner/name (default: GITHUB_REPOSITORY).")
@click.option("--pr", "pr", type=int, help="Pull request number (default: the workflow's).")
def comment(body_file: Path, repo: str | None, pr: int | None) -> None:
    """Post BODY_FILE as the pull request's one plan comment (updated on reruns)."""
    from reconciler.github import GitHub, pull_request_number, upsert_pr_comment

    try:
        number = pr if pr is not None else pull_request_number()
        body = _body(body_file)
        done = upsert_pr_comment(GitHub.from_env(), _repository(repo), number, body)
    except ReconcileError as exc:
        _fail(exc)
    click.echo(f"plan comment {done} on pull request #{number}")


@github.command(name="drift-issue")
@click.argument("body_file", type=click.Path(path_type=Path))
@click.option("--repo", help="owner/name (default: GITHUB_REPOSITORY).")
def drift_issue(body_file: Path, repo: str | None) -> None:
    """Open, or update, the one issue that reports drift, with BODY_FILE."""
    from reconciler.github import GitHub, upsert_drift_issue

    try:
        done = upsert_drift_issue(GitHub.from_env(), _repository(repo), _body(body_file))
    except ReconcileError as exc:
        _fail(exc)
    click.echo(f"drift issue {done}")


@github.command(name="run")
@click.argument("command", type=click.Choice(["plan", "apply", "drift", "envs"]))
@click.option("-f", "--file", "source", default="", help="The billing file (envs: path or glob).")
@click.option("--plan-file", default="", help="Where the plan is kept, or the plan to apply.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    help="How plan and drift show the plan in the log.",
)
@click.option(
    "--mode",
    type=click.Choice(["test", "live"]),
    default="test",
    help="live: apply may write with a live key (adds --live).",
)
@click.option(
    "--plan-workflow",
    default="billing-plan.yml",
    help="The workflow whose pull request run made the reviewed plan.",
)
@click.option(
    "--revenue",
    is_flag=True,
    help="plan: add the revenue preview (plan --revenue) to the plan, its comment and summary.",
)
def run(
    *,
    command: str,
    source: str,
    plan_file: str,
    output_format: str,
    mode: str,
    plan_workflow: str,
    revenue: bool,
) -> None:
    """What the GitHub Action does: COMMAND plan, apply or drift on one billing file, or
    envs (the billing files as a job matrix); outputs go to GITHUB_OUTPUT."""
    from reconciler import action

    context = action.ActionContext(say=click.echo)
    name = source or DEFAULT_CONFIG
    try:
        match command:
            case "envs":
                code = action.run_envs(context, source)
            case "plan":
                code = action.run_plan(
                    context,
                    source=name,
                    plan_file=plan_file,
                    output_format=output_format,
                    revenue=revenue,
                )
            case "apply":
                code = action.run_apply(
                    context,
                    source=name,
                    plan_file=plan_file,
                    mode=mode,
                    plan_workflow=plan_workflow,
                )
            case _:
                code = action.run_drift(
                    context, source=name, plan_file=plan_file, output_format=output_format
                )
    except ReconcileError as exc:
        _fail(exc)
    finally:
        context.finish()
    sys.exit(code)


@main.command(name="import")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output (refuses to overwrite without --force).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def import_(out_file: Path | None, force: bool) -> None:
    """Write a billing.yaml from the live account."""
    from reconciler.config import load_text
    from reconciler.gateway import Gateway
    from reconciler.importer import import_account
    from reconciler.live import list_objects

    if out_file is not None and out_file.exists() and not force:
        click.echo(f"Error: {out_file} exists; pass --force to overwrite it", err=True)
        sys.exit(1)
    try:
        gateway = Gateway.from_env()
        result = import_account(mode=gateway.mode, **list_objects(gateway, every_kind=True))
    except ReconcileError as exc:
        _fail(exc)
    try:
        load_text(result.text, str(out_file or "<import>"))
    except ConfigErrors as exc:
        click.echo("Error: the account holds objects billing.yaml cannot express:", err=True)
        for error in exc.errors:
            click.echo(f"  {error}", err=True)
        sys.exit(1)
    if out_file is None:
        click.echo(result.text, nl=False)
    else:
        _write_atomically(out_file, result.text)
        click.echo(f"wrote {out_file}", err=True)
    if result.proposed_lookup_keys:
        click.echo(
            f"{len(result.proposed_lookup_keys)} prices had no lookup key: one is proposed for "
            "each (with its id); the next plan shows them as updates.",
            err=True,
        )
    for line in result.skipped:
        click.echo(f"not imported: {line}", err=True)


@main.command()
@config_option
@click.option(
    "--use-key",
    is_flag=True,
    help="Run in the Stripe test account of STRIPE_API_KEY instead of an embedded emulator "
    "(test keys only; the catalog must already be applied there).",
)
def simulate(config_file: Path, use_key: bool) -> None:
    """Run each migration end to end on a test clock and check both invoices."""
    from reconciler.apply import apply_plan
    from reconciler.emulator import Emulator
    from reconciler.gateway import Gateway
    from reconciler.simulate import describe_check, simulate_migration

    desired = _load(config_file)
    if not desired.migrations:
        click.echo(f"{config_file} declares no migrations: nothing to simulate.")
        return
    failures = 0
    try:
        with contextlib.ExitStack() as stack:
            if use_key:
                gateway = Gateway.from_env()
                if gateway.mode != "test":
                    click.echo("Error: simulate runs on test keys only.", err=True)
                    sys.exit(1)
            else:
                emulator = stack.enter_context(Emulator(port=0))
                gateway = Gateway("sk_test_simulate_000000", api_base=emulator.url)
                catalog = dataclasses.replace(desired, migrations=())
                snapshot, made = _make_plan(catalog, gateway)
                try:
                    apply_plan(made, snapshot, gateway)
                except ReconcileError as exc:
                    raise ReconcileError(
                        f"{config_file}'s catalog cannot be built on an empty emulator ({exc}); "
                        "rehearse in a test account that holds it instead: --use-key"
                    ) from exc
                click.echo(f"embedded emulator at {emulator.url}: {config_file}'s catalog applied")
            for migration in desired.migrations:
                moves = ", ".join(f"{old} -> {new}" for old, new in migration.pairs)
                click.echo(f"\nmigration {migration.name}: {moves}")
                result = simulate_migration(
                    gateway, desired, migration, say=lambda line: click.echo(f"  {line}")
                )
                for check in result.checks:
                    click.echo("\n".join(f"  {line}" for line in describe_check(check)))
                failures += 0 if result.ok else 1
    except ReconcileError as exc:
        _fail(exc)
    if failures:
        click.echo(f"\n{failures} migration(s) billed differently than expected.", err=True)
        sys.exit(1)
    click.echo("\nEvery migration billed as expected on both sides of the switch.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--db", "db_path", type=click.Path(path_type=Path), help="A SQLite file for state.")
@click.option("--rate-limit", type=float, help="Requests per second (default 25, 0 = off).")
@click.option(
    "--faults",
    help="Fault injection spec, e.g. 'seed=1,500=0.05,429=0.05': kinds 500, 429, 409, lock "
    "(429 lock_timeout), noretry (500 with Stripe-Should-Retry: false), reset, lost, and "
    "latency=P:SECONDS for a slow Stripe.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other than loopback (the emulator accepts any test key: never expose it).",
)
def emulator(
    *,
    host: str,
    port: int,
    db_path: Path | None,
    rate_limit: float | None,
    faults: str | None,
    allow_remote: bool,
) -> None:
    """Serve the local Stripe emulator until stopped (SIGINT or SIGTERM)."""
    from reconciler.emulator import DatabaseUnusable, FaultPlan, serve

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
            allow_remote=allow_remote,
            on_ready=lambda url: click.echo(f"emulator listening on {url}"),
        )
    except DatabaseUnusable as exc:
        click.echo(f"Error: --db {exc}", err=True)
        sys.exit(1)
    except ValueError as exc:
        message = str(exc).replace("allow_remote=True", "--allow-remote")
        raise click.BadParameter(message, param_hint="--host") from None


@main.command()
@click.argument("planfile", type=click.Path(path_type=Path))
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text"
)
def show(planfile: Path, output_format: str) -> None:
    """Render a saved plan (from `plan --out`) without reading billing.yaml or the account.

    The file is checked as apply checks it (schema and input bounds); an invalid or
    tampered one is refused in one line naming it, exit 1.
    """
    from reconciler.planfile import load_plan

    try:
        saved = load_plan(planfile)
    except ReconcileError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(_render(saved, output_format), nl=False)


@main.command()
@click.option(
    "--plan", "plan_schema", is_flag=True, help="The plan file's schema instead of billing.yaml's."
)
def schema(plan_schema: bool) -> None:
    """Print the JSON Schema of billing.yaml (or, with --plan, of a saved plan).

    For editors: `stripe-reconcile schema > billing.schema.json` beside billing.yaml, whose
    first line `# yaml-language-server: $schema=billing.schema.json` points at it.
    """
    from importlib import resources

    name = "plan.schema.json" if plan_schema else "billing.schema.json"
    click.echo(
        resources.files("reconciler").joinpath(f"schemas/{name}").read_text("utf-8"), nl=False
    )


@main.command()
@click.option("--keep", is_flag=True, help="Leave the emulator running afterwards.")
@click.option(
    "-f",
    "--file",
    "config_file",
    type=click.Path(path_type=Path),
    help="The billing.yaml to use (default: the example shipped with the project).",
)
def demo(keep: bool, config_file: Path | None) -> None:
    """The whole story on an embedded emulator, no key needed."""
    from reconciler.demo import DEMO_KEY, prepare, running_demo

    path = config_file or _example_config()
    section = _sections()
    section("Validate billing.yaml")
    desired = _load(path)
    if config_file is None:  # the shipped example: named as a user would know it
        click.get_current_context().meta[_CONFIG_KEY] = path.name
    click.echo(f"{_config_name()}: valid ({desired.summary()})")
    try:
        rehearsal = prepare(desired, _config_name())
        for note in rehearsal.notes:
            click.echo(f"demo: {note}")
        desired = rehearsal.desired
        with running_demo(rehearsal, keep=keep) as story:
            gateway = story.gateway
            section("A legacy account on the emulator")
            account = story.seed()
            own = sum(1 for c in account.customers if c.schedule)
            click.echo(
                f"{story.emulator.url}: {len(account.customers)} customers on test clocks, each "
                f"subscribed to the usage-record price {rehearsal.migration.from_price} ({own} "
                "with a schedule of their own), 10 days of usage reported."
            )
            section("Plan: meters and prices first; the migration waits for parity")
            snapshot, made = _make_plan(desired, gateway)
            click.echo(_render(made, "text"), nl=False)
            click.echo(_migration_status(made), nl=False)
            section("Apply")
            _demo_apply(made, snapshot, gateway)
            section("Dual-write: meter events beside the usage records for a full period")
            sent = story.dual_write_first_period()
            click.echo(f"{sent} meter events sent with the same seconds as the usage records;")
            click.echo("the test clocks crossed into the next period.")
            section("Plan again: parity holds, every subscription gets a schedule")
            snapshot, made = _make_plan(desired, gateway)
            click.echo(_render(made, "text"), nl=False)
            section("Apply the migration")
            _demo_apply(made, snapshot, gateway)
            section("Status")
            from reconciler.render.status import render_status_text

            click.echo(
                render_status_text([c for c in made.changes if c.kind is Kind.MIGRATION]), nl=False
            )
            _, after_apply = _make_plan(desired, gateway)
            migration = [c for c in after_apply.changes if c.kind is Kind.MIGRATION]
            click.echo(render_status_text(migration), nl=False)
            section("Across the switch on the test clocks")
            records, events = story.cross_the_switch()
            click.echo(
                f"period 2: {records} usage records and as many meter events; at its end every "
                f"subscription switched; period 3: {events - records} meter events only."
            )
            section("The last legacy invoice and the first metered one")
            old, new = story.invoices(account.customers[0])
            click.echo(_side_by_side(old, new))
            checked = {"usage records to the meter": [old.checks, new.checks]}
            section("Status and plan once more")
            _, final = _make_plan(desired, gateway)
            click.echo(_migration_status(final))
            click.echo(_render(final, "text"), nl=False)
            increased, raise_checks = _demo_price_increase(story, desired, gateway, section)
            checked["the price increase"] = raise_checks
            moved = _demo_consolidation(story, increased, gateway, section)
            checked["two plans become one"] = [c.checks for c in moved]
            section("Verdict")
            failed = _demo_verdict(checked)
            if keep:
                click.echo(
                    f"\nThe emulator keeps running at {story.emulator.url}. In another shell:\n"
                    f"  export STRIPE_API_BASE={story.emulator.url} STRIPE_API_KEY={DEMO_KEY}\n"
                    "  stripe-reconcile status\nPress Ctrl-C to stop it."
                )
                _wait_for_interrupt()
        if failed:
            raise ReconcileError(
                f"the demo's checks failed: {failed} (see MISMATCH above): what the account "
                "billed is not what the rules worked by hand say"
            )
    except ReconcileError as exc:
        _fail(exc)


def _demo_price_increase(
    story: Demo, desired: Desired, gateway: Gateway, section: Callable[[str], None]
) -> tuple[Desired, list[bool]]:
    """The demo's second act: the meter price 20% up, its subscriptions moved at renewal
    (``existing_subscriptions: migrate``), the old price retired once they all have."""
    from reconciler.demo import raised

    section("A price increase at the next renewal")
    old_id = _make_plan(desired, gateway)[0].prices[story.rehearsal.migration.to_price].stripe_id
    increased, price = raised(story.rehearsal)
    click.echo(
        f"billing.yaml: {price.lookup_key} with every amount 20% up, and "
        "existing_subscriptions: migrate (its subscriptions move to the new price at renewal)"
    )
    _demo_plan_and_apply(increased, gateway)
    section("Across the renewal on the test clocks")
    sent = story.cross_the_raise()
    click.echo(
        f"{sent} meter events over two periods: the last on the old price, the first on the "
        "raised one."
    )
    section("The last invoice before the increase and the first after")
    new_id = _make_plan(increased, gateway)[0].prices[price.lookup_key].stripe_id
    before, after = story.raise_invoices(story.customers[0], old_id, new_id)
    click.echo(_side_by_side(before, after))
    section("Plan: the old price retired, nothing left on it")
    _demo_plan_and_apply(increased, gateway)
    _, final = _make_plan(increased, gateway)
    click.echo(_render(final, "text"), nl=False)
    return increased, [before.checks, after.checks]


def _demo_consolidation(
    story: Demo, desired: Desired, gateway: Gateway, section: Callable[[str], None]
) -> tuple[Consolidation, ...]:
    """The demo's third act: two legacy licensed plans consolidated into one price by a
    migration with ``prices:``, each subscription's seat lines checked across the switch."""
    import textwrap

    from reconciler.demo import CONSOLIDATION, STUDIO_KEY, consolidated
    from reconciler.render.status import render_status_text

    section("Two legacy plans become one")
    holders = story.seat_holders
    both = sum(1 for c in holders if c.platform_item and c.priority_item)
    platform = sum(1 for c in holders if c.platform_item and not c.priority_item)
    click.echo(
        f"{len(holders)} subscriptions hold the legacy seat plans: {both} both platform_fee "
        f"and priority_rendering, {platform} platform_fee only, "
        f"{len(holders) - both - platform} priority_rendering only. billing.yaml gains:\n"
    )
    merged, added = consolidated(desired, story.rehearsal)
    click.echo(textwrap.indent(added, "  "))
    _demo_plan_and_apply(merged, gateway)
    section("Across the consolidation on the test clocks")
    renewed = story.cross_the_consolidation()
    click.echo(
        f"{renewed} subscriptions renewed at the end of the period their switch was "
        f"scheduled at; their first invoice on {STUDIO_KEY} came with it."
    )
    section("The last invoice on the two plans and the first on one")
    snapshot, final = _make_plan(merged, gateway)
    moved = story.consolidations(snapshot.prices[STUDIO_KEY].stripe_id)
    shown = next((c for c in moved if c.platform_seats and c.priority_seats), moved[0])
    if shown.before is not None and shown.after is not None:
        click.echo(_side_by_side(shown.before, shown.after))
        click.echo()
    for consolidation in moved:
        click.echo(f"  {consolidation.summary()}")
    section("Status and plan: both plans moved, nothing left to change")
    click.echo(
        render_status_text([c for c in final.changes if c.address == f"migration.{CONSOLIDATION}"])
    )
    click.echo(_render(final, "text"), nl=False)
    return moved


def _demo_verdict(checked: dict[str, list[bool]]) -> str:
    """Each act's checks, one line each; returns what failed ("" when every check holds)."""
    failed = []
    for act, checks in checked.items():
        bad = checks.count(False)
        unit = "subscriptions" if act == "two plans become one" else "invoices"
        click.echo(f"{act}: {len(checks)} {unit} checked, " + (f"{bad} MISMATCH" if bad else "ok"))
        if bad:
            failed.append(f"{act} ({bad} of {len(checks)})")
    if failed:
        click.echo(f"{len(failed)} of {len(checked)} acts failed their checks.")
    else:
        click.echo("Every check holds.")
    return ", ".join(failed)


def _migration_status(plan: Plan) -> str:
    from reconciler.render.status import render_status_text

    return render_status_text([c for c in plan.changes if c.kind is Kind.MIGRATION])


def _example_config() -> Path:
    """The example billing.yaml: the checkout's own in a checkout, else the one in the wheel."""
    checkout = Path(__file__).resolve().parents[1] / "billing.yaml"
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parent / "examples" / "billing.yaml"


def _sections() -> Callable[[str], None]:
    counter = [0]

    def section(title: str) -> None:
        counter[0] += 1
        heading = f"{counter[0]}. {title}"
        click.echo(f"\n{heading}\n{'=' * len(heading)}")

    return section


def _demo_plan_and_apply(desired: Desired, gateway: Gateway) -> None:
    """Plan ``desired``, show the plan, and apply it."""
    snapshot, made = _make_plan(desired, gateway)
    click.echo(_render(made, "text"), nl=False)
    _demo_apply(made, snapshot, gateway)


def _demo_apply(plan: Plan, snapshot: Snapshot, gateway: Gateway) -> None:
    from reconciler.apply import apply_plan

    with _progress(enabled=plan.has_changes) as on_step:
        result = apply_plan(plan, snapshot, gateway, on_step=on_step)
    click.echo(f"Apply complete: {len(result.done)} steps. {plan.summary()}.")


def _side_by_side(old: InvoiceView | SeatInvoice, new: InvoiceView | SeatInvoice) -> str:
    from datetime import UTC, datetime

    def day(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")

    def column(view: InvoiceView | SeatInvoice) -> list[str]:
        rows = [view.title, f"period {day(view.period[0])} to {day(view.period[1])}", ""]
        rows += [f"{text[:30]:<30} {amount / 100:>9.2f}" for text, amount in view.lines]
        rows += ["", f"{'subtotal':<30} {view.subtotal / 100:>9.2f}"]
        rows += [f"{'total (after coupon and tax)':<30} {view.total / 100:>9.2f}"]
        rows += ["", *view.check_rows()]
        return rows

    left, right = column(old), column(new)
    width = max(len(r) for r in left) + 4
    height = max(len(left), len(right))
    left += [""] * (height - len(left))
    right += [""] * (height - len(right))
    return "\n".join(f"  {a:<{width}}{b}".rstrip() for a, b in zip(left, right, strict=True))


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopped")
