"""The readable render of an apply's result: markdown for a pull request and a job summary.

:func:`render_apply_markdown` takes the report ``apply --format json`` prints
(ok, summary, done, replayed, failed, error, remaining, requests, retries,
rate limiting, pace) and says what happened first, then lists the steps.
:func:`render_apply_refusal` renders an apply refused before any write (a
stale or mismatched saved plan, a refused key). Pure and deterministic.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.render._lines import printable
from reconciler.render.markdown import _code, _plural

__all__ = ["APPLY_MARKER", "outcome_of", "render_apply_markdown", "render_apply_refusal"]

APPLY_MARKER = "<!-- stripe-reconcile-apply -->"
"""The first line of every apply report, for finding it among a pull request's comments."""

_LISTED = 50
"""Steps listed by name in each list; the rest are counted."""

STALE_ADVICE = (
    "Nothing was written. The saved plan no longer describes the account: plan again, "
    "review it, and apply the new plan."
)
MISMATCH_ADVICE = (
    "Nothing was written. The saved plan differs from what billing.yaml and the account "
    "give (edited, or made by another version): make and review a new plan."
)


_OUTCOME = re.compile(r"^<!-- outcome: ([a-z-]+), steps: (\d+) -->$", re.MULTILINE)


def _outcome(outcome: str, steps: int) -> str:
    """A hidden last line for tools (the GitHub Action): what happened, how many steps."""
    return f"<!-- outcome: {outcome}, steps: {steps} -->"


def outcome_of(markdown: str) -> tuple[str, int]:
    """What a report of this module says happened: (``no-changes``, ``applied``,
    ``stopped``, ``stale``, ``mismatch`` or ``error``; steps done), or ("error", 0)."""
    found = _OUTCOME.findall(markdown)
    if not found:
        return "error", 0
    outcome, steps = found[-1]
    return outcome, int(steps)


def _heading(source: str) -> str:
    return f"### stripe-reconcile apply: {_code(source)}"


def _steps(title: str, steps: Sequence[str]) -> list[str]:
    if not steps:
        return []
    shown = [f"- {_code(step)}" for step in steps[:_LISTED]]
    if len(steps) > _LISTED:
        shown.append(f"- ... and {len(steps) - _LISTED} more")
    summary = f"{title} ({len(steps)})"
    return [f"<details><summary>{summary}</summary>", "", *shown, "", "</details>", ""]


def _quoted(text: str) -> list[str]:
    """Text as a block quote, HTML escaped so a message cannot open a tag."""
    lines = html.escape(text, quote=False).splitlines()
    return [f"> {line}" if line.strip() else ">" for line in lines]


def _traffic(report: Mapping[str, Any]) -> str:
    requests, retries = int(report.get("requests") or 0), int(report.get("retries") or 0)
    text = f"{_plural(requests, 'request')} to Stripe ({retries} retried)"
    limited = int(report.get("rate_limited") or 0)
    if limited:
        text += f", {limited} answered 429"
    pace = report.get("pace")
    if isinstance(pace, Mapping) and pace.get("decreases"):
        text += (
            f"; pace fell to {float(pace['lowest']):.1f}/s under other traffic, "
            f"ended at {float(pace['final']):.1f}/s of {float(pace['configured']):.1f}/s"
        )
    return text + "."


def render_apply_markdown(report: Mapping[str, Any], *, source: str = "billing.yaml") -> str:
    """An apply's JSON report as markdown, starting with :data:`APPLY_MARKER`."""
    done: list[str] = list(report.get("done") or [])
    replayed: list[str] = list(report.get("replayed") or [])
    remaining: list[str] = list(report.get("remaining") or [])
    summary = str(report.get("summary") or "")
    lines = [APPLY_MARKER, _heading(source), ""]
    if report.get("ok"):
        if not done and not replayed and report.get("rounds") in (0, None):
            outcome = "no-changes"
            lines += [f"**No changes.** The account already matches {_code(source)}.", ""]
        else:
            outcome = "applied"
            rounds = int(report.get("rounds") or 1)
            again = f" in {rounds} rounds" if rounds > 1 else ""
            lines += [
                f"**Applied{again}:** {summary}; {_plural(len(done), 'step')} done.",
                "",
            ]
        if replayed:
            lines += [
                f"{_plural(len(replayed), 'step')} answered by an earlier request with the "
                "same key (written before, not again).",
                "",
            ]
    else:
        outcome = "stopped"
        failed = report.get("failed")
        where = f" at {_code(str(failed))}" if failed else ""
        lines += ["> [!CAUTION]", f"> **Apply stopped{where}.**"]
        if report.get("error"):
            lines += [">", *_quoted(str(report["error"]))]
        next_step = str(report.get("advice") or "") or (
            "Plan again: it shows what is left, and apply finishes it."
        )
        lines += [
            "",
            f"{_plural(len(done), 'step')} done, {len(remaining)} not done. {next_step}",
            "",
        ]
    lines += _steps("Steps done", done)
    lines += _steps("Answered by an earlier request", replayed)
    lines += _steps("Not done", remaining)
    lines += [f"<sub>{_traffic(report)}</sub>", "", _outcome(outcome, len(done))]
    return printable("\n".join(lines), keep="\n") + "\n"


def render_apply_refusal(
    error: str, *, source: str = "billing.yaml", reason: str = "error", advice: str = ""
) -> str:
    """An apply refused before any write, as markdown; ``reason`` is ``stale``,
    ``mismatch`` or ``error`` and picks the default advice."""
    default = {"stale": STALE_ADVICE, "mismatch": MISMATCH_ADVICE}.get(reason, "")
    title = {
        "stale": "Refused: the saved plan is stale.",
        "mismatch": "Refused: the saved plan does not match.",
    }.get(reason, "Apply failed before any change.")
    lines = [APPLY_MARKER, _heading(source), "", "> [!CAUTION]", f"> **{title}**", ">"]
    lines += _quoted(error)
    lines.append("")
    if advice or default:
        lines += [advice or default, ""]
    lines.append(_outcome(reason, 0))
    return printable("\n".join(lines), keep="\n") + "\n"
