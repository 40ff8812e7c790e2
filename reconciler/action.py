"""What the GitHub Action (``action.yml``) does, step by step, outside YAML so it is tested.

``stripe-reconcile github run COMMAND`` calls one of these:

- :func:`run_envs` lists the billing files (``envs/*/billing.yaml``, else
  ``billing.yaml``) as a job matrix, with each file's secret and environment.
- :func:`run_plan` plans one file, posts the plan as that file's sticky pull
  request comment and the job summary, and keeps the plan file. A pull request
  from a fork gets no secrets: that is said in the comment, not failed. With the
  ``revenue`` input the plan carries its revenue preview, shown in the comment.
- :func:`run_apply` applies the plan the merged pull request showed (found
  through the API and downloaded), or on ``workflow_dispatch`` plans again and
  applies that; the result goes to the pull request and the job summary as
  markdown, and a stale plan says how to re-plan.
- :func:`run_drift` plans and opens (or updates) the file's drift issue.

The command line itself runs as a subprocess (:class:`Runner`), exactly as a
user runs it; GitHub is reached through :class:`reconciler.github.GitHub`. No
function here prints: lines go to ``say`` and the caller prints them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcileError
from reconciler.github import (
    DEFAULT_FILE,
    GitHub,
    artifact_name,
    download_plan,
    find_reviewed_plan,
    fork_pull_request,
    plan_marker,
    post_pr_comment,
    read_event,
    upsert_drift_issue,
    upsert_pr_comment,
)
from reconciler.planfile import load_plan
from reconciler.render import render_markdown, render_text
from reconciler.render.apply import outcome_of

__all__ = [
    "COMMENT_LIMIT",
    "ActionContext",
    "fit",
    "matrix",
    "run_apply",
    "run_drift",
    "run_envs",
    "run_plan",
]

COMMENT_LIMIT = 65_536
"""GitHub refuses comment and issue bodies longer than this many characters."""
SUMMARY_LIMIT = 1024 * 1024
"""A job summary holds at most 1 MiB per step."""
ENVS_PATTERN = "envs/*/billing.yaml"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Say = Callable[[str], None]


def _run_cli(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it: this interpreter, no colour, the process's
    environment (the workflow step's)."""
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class ActionContext:
    """The workflow's environment, the command line runner and where lines go."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    run: Runner = _run_cli
    say: Say = lambda _line: None
    github: Callable[[], GitHub] | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    def client(self) -> GitHub:
        return self.github() if self.github is not None else GitHub.from_env(self.env)

    @property
    def repo(self) -> str:
        repo = self.env.get("GITHUB_REPOSITORY", "")
        if not repo:
            raise ReconcileError("GITHUB_REPOSITORY is not set: run this inside a workflow")
        return repo

    def output(self, **values: str) -> None:
        """Set step outputs (``plan_file`` is ``plan-file``); :meth:`finish` writes them."""
        self.outputs.update({name.replace("_", "-"): value for name, value in values.items()})

    def finish(self) -> None:
        """Write the step outputs to ``GITHUB_OUTPUT`` once, when there is one."""
        path = self.env.get("GITHUB_OUTPUT")
        if path and self.outputs:
            with open(path, "a", encoding="utf-8") as out:
                out.writelines(f"{name}={value}\n" for name, value in self.outputs.items())

    def summary(self, markdown: str) -> None:
        """Append to the job summary (``GITHUB_STEP_SUMMARY``) when there is one."""
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(fit(markdown, SUMMARY_LIMIT, where=SUMMARY_CUT) + "\n")

    def has_key(self) -> bool:
        return bool(self.env.get("STRIPE_API_KEY", "").strip())


COMMENT_CUT = "the whole text is in the job summary and the plan artifact"
SUMMARY_CUT = "the whole plan is in the plan file (the plan artifact)"


def fit(body: str, limit: int = COMMENT_LIMIT, *, where: str = COMMENT_CUT) -> str:
    """``body`` cut to ``limit`` characters at a line, saying so and ``where`` the rest is,
    with code fences and ``<details>`` closed."""
    if len(body) <= limit:
        return body
    note = f"\n\n**Cut here:** {where}.\n"
    cut = body[: limit - len(note) - 16].rsplit("\n", 1)[0]
    fences = len(re.findall(r"^`{3,}", cut, flags=re.MULTILINE))
    if fences % 2:
        cut += "\n```"
    if cut.count("<details>") > cut.count("</details>"):
        cut += "\n</details>"
    return cut + note


def _fenced(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def _named(title: str, source: str) -> str:
    return title if source == DEFAULT_FILE else f"{title}: `{source}`"


# -- envs ---------------------------------------------------------------------------------


def _secret_suffix(env_name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", env_name.upper()).strip("_")


def matrix(root: Path, files: str = "") -> list[dict[str, str]]:
    """The billing files to run, one matrix entry each.

    ``files`` is a path or glob relative to ``root`` (default: ``envs/*/billing.yaml``,
    and ``billing.yaml`` when no file matches). An entry under ``envs/NAME/`` reads
    the secret ``STRIPE_READ_ONLY_KEY_NAME`` and applies in the environment
    ``stripe-billing-NAME``; any other file uses ``STRIPE_READ_ONLY_KEY`` and
    ``stripe-billing``.
    """
    patterns = [p for p in files.split() if p] or [ENVS_PATTERN]
    found: list[str] = []
    for pattern in patterns:
        found += sorted(
            Path(hit).relative_to(root).as_posix()
            for hit in glob.glob(str(root / pattern))
            if Path(hit).is_file()
        )
    if not found and not files.strip() and (root / DEFAULT_FILE).is_file():
        found = [DEFAULT_FILE]
    entries = []
    for path in dict.fromkeys(found):
        parts = path.split("/")
        name = parts[1] if len(parts) == 3 and parts[0] == "envs" else ""
        suffix = _secret_suffix(name)
        entries.append(
            {
                "file": path,
                "name": name or Path(path).stem,
                "secret": "STRIPE_READ_ONLY_KEY" + (f"_{suffix}" if suffix else ""),
                "environment": "stripe-billing" + (f"-{name}" if name else ""),
                "artifact": artifact_name(path),
            }
        )
    return entries


def run_envs(context: ActionContext, files: str = "") -> int:
    """Write the matrix of billing files to the step output ``matrix``."""
    entries = matrix(Path.cwd(), files)
    if not entries:
        context.say(f"Error: no billing file matches {files or ENVS_PATTERN} or {DEFAULT_FILE}")
        return 1
    for entry in entries:
        context.say(
            f"{entry['file']}: secret {entry['secret']}, environment {entry['environment']}"
        )
    context.output(matrix=json.dumps({"include": entries}, separators=(",", ":")))
    return 0


# -- plan ---------------------------------------------------------------------------------


FORK_NOTE = (
    "**The plan of {source} could not run:** this pull request comes from a fork, and "
    "GitHub gives workflows started by forks no secrets (the Stripe key) and a read-only "
    "token. Nothing failed. A maintainer can run the plan by pushing this branch to the "
    "repository itself, and the merge still applies only a reviewed plan."
)
DEPENDABOT_NOTE = (
    "**The plan of {source} could not run:** Dependabot's pull requests get no Actions "
    "secrets (the Stripe key). Nothing failed; add the key to Dependabot's secrets to plan "
    "them."
)
NO_KEY = (
    "Error: STRIPE_API_KEY is empty: pass the secret as the action's api-key input "
    "(for {source}: {secret})."
)


def _no_secrets_note(event: Mapping[str, Any], env: Mapping[str, str], source: str) -> str | None:
    """The note for a run GitHub gave no secrets (a fork, Dependabot), else None."""
    if fork_pull_request(event):
        return FORK_NOTE.format(source=f"`{source}`")
    if env.get("GITHUB_ACTOR") == "dependabot[bot]" and "pull_request" in event:
        return DEPENDABOT_NOTE.format(source=f"`{source}`")
    return None


def _pr_of(event: Mapping[str, Any]) -> int | None:
    pull_request = event.get("pull_request")
    number = pull_request.get("number") if isinstance(pull_request, dict) else None
    return number if isinstance(number, int) else None


def _comment(context: ActionContext, pr: int | None, body: str, source: str) -> None:
    """The file's sticky plan comment, updated in place; a refusal is a warning, not a
    failure (a fork's token cannot write)."""
    if pr is None:
        return
    try:
        done = upsert_pr_comment(
            context.client(), context.repo, pr, fit(body), marker=plan_marker(source)
        )
    except ReconcileError as exc:
        context.say(f"::warning::could not comment on pull request #{pr}: {exc}")
        return
    context.say(f"plan comment {done} on pull request #{pr}")


def _log_render(context: ActionContext, plan_file: Path, output_format: str, source: str) -> str:
    """The plan in ``output_format`` for the log; returns its markdown for comments."""
    made = load_plan(plan_file)
    markdown = render_markdown(made, source=source)
    match output_format:
        case "json":
            context.say(plan_file.read_text(encoding="utf-8").rstrip("\n"))
        case "markdown":
            context.say(markdown.rstrip("\n"))
        case _:
            context.say(render_text(made, color=False, source=source).rstrip("\n"))
    return markdown


def _titled(markdown: str, source: str) -> str:
    """The plan comment's heading names the file when it is not billing.yaml."""
    if source == DEFAULT_FILE:
        return markdown
    return markdown.replace(
        "### stripe-reconcile plan\n", f"### stripe-reconcile plan: `{source}`\n", 1
    )


def _failure(title: str, result: subprocess.CompletedProcess[str]) -> str:
    detail = (result.stderr or result.stdout or f"exit {result.returncode}").strip()
    return f"> [!CAUTION]\n> **{title}**\n\n{_fenced(detail)}\n"


def run_plan(
    context: ActionContext,
    *,
    source: str = DEFAULT_FILE,
    plan_file: str = "",
    output_format: str = "text",
    revenue: bool = False,
) -> int:
    """Plan ``source``: comment, summary, plan file; exit 0 with or without changes.
    With ``revenue`` the plan carries its revenue preview (``plan --revenue``), which the
    comment and the summary then show."""
    saved = Path(plan_file or "plan.json")
    event = read_event(context.env)
    pr = _pr_of(event)
    context.output(plan_file="", changes="false", exit_code="0", artifact=artifact_name(source))
    if not context.has_key():
        note = _no_secrets_note(event, context.env, source)
        if note is None:
            context.say(NO_KEY.format(source=source, secret=_secret_for(source)))
            context.output(exit_code="1")
            return 1
        body = f"### {_named('stripe-reconcile plan', source)}\n\n{note}\n"
        context.say(f"::notice::{note.replace('**', '')}")
        context.summary(body)
        _comment(context, pr, body, source)
        return 0
    result = context.run(
        ["plan", "-f", source, "--format", "json", "--out", str(saved), "--detailed-exitcode"]
        + (["--revenue"] if revenue else [])
    )
    if result.returncode not in (0, 2):
        context.say(result.stderr.rstrip("\n"))
        body = f"### {_named('stripe-reconcile plan', source)}\n\n" + _failure(
            "The plan failed.", result
        )
        context.summary(body)
        _comment(context, pr, body, source)
        context.output(exit_code="1")
        return 1
    markdown = _titled(_log_render(context, saved, output_format, source), source)
    context.summary(markdown)
    _comment(context, pr, markdown, source)
    context.output(
        plan_file=str(saved),
        changes="true" if result.returncode == 2 else "false",
        exit_code=str(result.returncode),
    )
    return 0


def _secret_for(source: str) -> str:
    parts = source.split("/")
    if len(parts) == 3 and parts[0] == "envs":
        return f"STRIPE_READ_ONLY_KEY_{_secret_suffix(parts[1])}"
    return "STRIPE_READ_ONLY_KEY"


# -- apply --------------------------------------------------------------------------------


DISPATCH_ADVICE = (
    "**To re-plan and apply** what {source} says now: Actions → {workflow} → Run workflow "
    "(`workflow_dispatch`). That run plans against the account as it is, shows the plan in "
    "its summary and applies exactly that plan."
)


def _reviewed_plan(context: ActionContext, source: str, saved: Path, workflow: str) -> int:
    """Download the plan the merged pull request showed; returns its number."""
    github = context.client()
    sha = context.env.get("GITHUB_SHA", "")
    if not sha:
        raise ReconcileError("GITHUB_SHA is not set: run this inside a workflow")
    pr, run_id = find_reviewed_plan(github, context.repo, sha, workflow=workflow)
    context.say(f"pull request #{pr}: plan from run {run_id}")
    try:
        download_plan(github, context.repo, run_id, artifact_name(source), saved)
    except ReconcileError as exc:
        raise _WithPullRequest(str(exc), pr) from None
    return pr


class _WithPullRequest(ReconcileError):
    """An error found after the pull request was: the report still goes to it."""

    def __init__(self, message: str, pr: int) -> None:
        super().__init__(message)
        self.pr = pr


def run_apply(
    context: ActionContext,
    *,
    source: str = DEFAULT_FILE,
    plan_file: str = "",
    mode: str = "test",
    plan_workflow: str = "billing-plan.yml",
) -> int:
    """Apply the reviewed plan of ``source`` (or, dispatched by hand, a fresh one); the log
    shows the report in markdown, as the pull request and the job summary do."""
    if mode not in ("test", "live"):
        context.say(f"Error: mode must be test or live, not {mode!r}")
        return 1
    saved = Path(plan_file or "plan.json")
    workflow = context.env.get("GITHUB_WORKFLOW") or "billing apply"
    title = _named("stripe-reconcile apply", source)
    context.output(plan_file="", changes="false", exit_code="1")
    if not context.has_key():
        context.say(
            f"Error: STRIPE_API_KEY is empty: pass the secret of {source}'s environment as "
            "the action's api-key input."
        )
        return 1
    dispatched = context.env.get("GITHUB_EVENT_NAME") == "workflow_dispatch"
    pr: int | None = None
    if plan_file:
        context.say(f"applying the given plan file {saved}")
    elif dispatched:
        made = context.run(["plan", "-f", source, "--format", "markdown", "--out", str(saved)])
        if made.returncode != 0:
            context.say(made.stderr.rstrip("\n"))
            context.summary(f"### {title}\n\n" + _failure("The plan failed.", made))
            return 1
        context.summary(
            "Re-planned by hand (`workflow_dispatch`): this plan was made now and applied.\n\n"
            + _titled(made.stdout, source)
        )
    else:
        try:
            pr = _reviewed_plan(context, source, saved, plan_workflow)
        except ReconcileError as exc:
            pr = exc.pr if isinstance(exc, _WithPullRequest) else None
            advice = DISPATCH_ADVICE.format(source=f"`{source}`", workflow=workflow)
            body = (
                f"### {title}\n\n> [!CAUTION]\n> **No reviewed plan to apply:** {exc}\n\n"
                f"Nothing was applied. {advice}\n"
            )
            context.say(f"::error::no reviewed plan to apply: {exc}")
            _report(context, pr, body)
            return 1
    live = ["--live"] if mode == "live" else []
    result = context.run(
        ["apply", str(saved), "-f", source, "--auto-approve", "--format", "markdown", *live]
    )
    body = (
        result.stdout
        if result.stdout.strip()
        else f"### {title}\n\n" + _failure("Apply failed.", result)
    )
    outcome, steps = outcome_of(body)
    if outcome == "stale":
        advice = DISPATCH_ADVICE.format(source=f"`{source}`", workflow=workflow)
        body = body.rstrip("\n") + f"\n\n{advice}\n"
        context.say(f"::error::the reviewed plan of {source} is stale: re-plan with Run workflow")
    context.say(body.rstrip("\n"))
    if result.stderr.strip():
        context.say(result.stderr.rstrip("\n"))
    # an environment the merged pull request did not change has nothing to say on it
    _report(context, None if outcome == "no-changes" else pr, body)
    context.output(
        plan_file=str(saved), changes="true" if steps else "false", exit_code=str(result.returncode)
    )
    return result.returncode


def _report(context: ActionContext, pr: int | None, body: str) -> None:
    """The apply's report: the job summary, and a new comment on the merged pull request."""
    context.summary(body)
    if pr is None:
        return
    try:
        post_pr_comment(context.client(), context.repo, pr, fit(body))
    except ReconcileError as exc:
        context.say(f"::warning::could not comment on pull request #{pr}: {exc}")
        return
    context.say(f"apply report posted on pull request #{pr}")


# -- drift --------------------------------------------------------------------------------


def run_drift(
    context: ActionContext,
    *,
    source: str = DEFAULT_FILE,
    plan_file: str = "",
    output_format: str = "text",
) -> int:
    """Plan ``source``; with changes, open or update its drift issue."""
    saved = Path(plan_file or "drift.json")
    context.output(plan_file="", changes="false", exit_code="1")
    if not context.has_key():
        context.say(NO_KEY.format(source=source, secret=_secret_for(source)))
        return 1
    result = context.run(
        ["plan", "-f", source, "--format", "json", "--out", str(saved), "--detailed-exitcode"]
    )
    if result.returncode not in (0, 2):
        context.say(result.stderr.rstrip("\n"))
        context.summary(
            f"### {_named('stripe-reconcile drift', source)}\n\n"
            + _failure("The plan failed.", result)
        )
        return 1
    markdown = _titled(_log_render(context, saved, output_format, source), source)
    context.summary(markdown)
    context.output(
        plan_file=str(saved),
        changes="true" if result.returncode == 2 else "false",
        exit_code=str(result.returncode),
    )
    if result.returncode == 0:
        context.say(f"no drift: the account matches {source}")
        return 0
    done = upsert_drift_issue(context.client(), context.repo, fit(markdown), source=source)
    context.say(f"drift issue {done} for {source}")
    return 0
