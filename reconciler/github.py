"""The GitOps seam to GitHub: one sticky plan comment per pull request, one drift issue.

The workflows in ``.github/workflows/billing-*.yml`` call these through
``stripe-reconcile github ...`` (the action in ``action.yml`` runs them). Finding
the comment or issue to update is pure (:func:`find_marked`); the HTTP calls go
through a small client with an injectable transport, so the marker logic is
tested without the network. Each billing file has its own comment and issue
(:func:`plan_marker`, :func:`drift_marker`): ``envs/test/billing.yaml`` and
``envs/live/billing.yaml`` never overwrite each other.
"""

from __future__ import annotations

import io
import json
import os
import re
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcileError
from reconciler.inputs import read_json
from reconciler.redaction import clean_secret, redact
from reconciler.render.markdown import MARKER

__all__ = [
    "DRIFT_LABEL",
    "DRIFT_MARKER",
    "GitHub",
    "artifact_name",
    "download_plan",
    "drift_marker",
    "find_marked",
    "find_reviewed_plan",
    "fork_pull_request",
    "plan_marker",
    "post_pr_comment",
    "pull_request_number",
    "read_event",
    "upsert_drift_issue",
    "upsert_pr_comment",
]

DRIFT_MARKER = "<!-- stripe-reconcile-drift -->"
DRIFT_LABEL = "stripe-reconcile-drift"
DRIFT_TITLE = "Stripe billing has drifted from billing.yaml"
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_EVENT_BYTES = 32 * 1024 * 1024
"""GitHub's webhook payloads are capped at 25 MB; an event file is one of them."""
MAX_ARTIFACT_BYTES = 128 * 1024 * 1024
"""A plan artifact: the plan file (at most 64 MiB) and its markdown, zipped."""
DEFAULT_FILE = "billing.yaml"

Transport = Callable[[str, str, Mapping[str, Any] | None], Any]
Fetch = Callable[[str], bytes]


def _file_label(source: str) -> str:
    """A billing file's path as it may stand inside an HTML comment: no ``--`` or ``>``."""
    return re.sub(r"-*>[->]*|-{2,}", "-", " ".join(source.split()))


def plan_marker(source: str = DEFAULT_FILE) -> str:
    """The hidden first line of the plan comment for ``source``; billing.yaml keeps the
    plain marker, so comments made before files had their own are still found."""
    if source == DEFAULT_FILE:
        return MARKER
    return f"<!-- stripe-reconcile-plan {_file_label(source)} -->"


def drift_marker(source: str = DEFAULT_FILE) -> str:
    """The hidden first line of the drift issue for ``source`` (as :func:`plan_marker`)."""
    if source == DEFAULT_FILE:
        return DRIFT_MARKER
    return f"<!-- stripe-reconcile-drift {_file_label(source)} -->"


def artifact_name(source: str = DEFAULT_FILE) -> str:
    """The workflow artifact that keeps the reviewed plan of ``source``."""
    if source == DEFAULT_FILE:
        return "billing-plan"
    return "billing-plan-" + re.sub(r"[^A-Za-z0-9._]+", "-", source).strip("-")


def find_marked(items: Iterable[Mapping[str, Any]], marker: str) -> Mapping[str, Any] | None:
    """The first comment or issue whose body starts with ``marker`` (ours), else None."""
    for item in items:
        if str(item.get("body") or "").lstrip().startswith(marker):
            return item
    return None


def _with_marker(body: str, marker: str) -> str:
    return body if body.lstrip().startswith(marker) else f"{marker}\n{body}"


@dataclass
class GitHub:
    """A minimal GitHub REST client: ``transport(method, path, payload) -> JSON``."""

    transport: Transport
    fetch: Fetch | None = None
    """Bytes behind an API path that redirects (artifact archives); None when not needed."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHub:
        env = os.environ if environ is None else environ
        name = "GITHUB_TOKEN" if (env.get("GITHUB_TOKEN") or "").strip() else "GH_TOKEN"
        token = (env.get(name) or "").strip()
        if not token:
            raise ReconcileError("GITHUB_TOKEN is not set")
        token = clean_secret(name, token)
        api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        return cls(_urllib_transport(api, token), _urllib_fetch(api, token))

    def get_all(self, path: str) -> list[Mapping[str, Any]]:
        """Every item of a list endpoint, 100 a page."""
        found: list[Mapping[str, Any]] = []
        page = 1
        while True:
            sep = "&" if "?" in path else "?"
            batch = self.transport("GET", f"{path}{sep}per_page=100&page={page}", None)
            found += batch
            if len(batch) < 100:
                return found
            page += 1


def _urllib_transport(api: str, token: str) -> Transport:
    def send(method: str, path: str, payload: Mapping[str, Any] | None) -> Any:
        request = urllib.request.Request(
            f"{api}{path}",
            method=method,
            data=json.dumps(payload).encode() if payload is not None else None,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, ValueError) as exc:  # ValueError: a header http.client refuses
            raise ReconcileError(f"GitHub {method} {path}: {redact(str(exc), token)}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise ReconcileError(f"GitHub {method} {path}: answer larger than expected")
        try:
            return json.loads(body or b"null")
        except (ValueError, RecursionError):
            raise ReconcileError(f"GitHub {method} {path}: the answer is not JSON") from None

    return send


def _urllib_fetch(api: str, token: str) -> Fetch:
    """GET bytes, following redirects without the token: an artifact archive redirects to
    signed storage, which must not see it (an unredirected header stays behind)."""

    def get(path: str) -> bytes:
        request = urllib.request.Request(f"{api}{path}", method="GET")
        request.add_unredirected_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body: bytes = response.read(MAX_ARTIFACT_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise ReconcileError(f"GitHub GET {path}: {redact(str(exc), token)}") from None
        if len(body) > MAX_ARTIFACT_BYTES:
            raise ReconcileError(f"GitHub GET {path}: larger than a plan artifact can be")
        return body

    return get


def read_event(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The running workflow's event (``GITHUB_EVENT_PATH``), or {} outside a workflow."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    event = read_json(path, limit=MAX_EVENT_BYTES, noun="event file", label="a workflow event")
    if not isinstance(event, dict):
        raise ReconcileError(f"{path}: the workflow event is not a JSON object")
    return event


def fork_pull_request(event: Mapping[str, Any]) -> bool:
    """Whether the event is a pull request from another repository (a fork): GitHub gives
    such runs no secrets and a read-only token."""
    pull_request = event.get("pull_request")
    if not isinstance(pull_request, dict):
        return False
    head = pull_request.get("head")
    head_repo = head.get("repo") if isinstance(head, dict) else None
    base_repo = event.get("repository")
    if not isinstance(head_repo, dict):  # the fork was deleted
        return True
    if not isinstance(base_repo, dict):
        return bool(head_repo.get("fork"))
    return head_repo.get("full_name") != base_repo.get("full_name")


def pull_request_number(environ: Mapping[str, str] | None = None) -> int:
    """The pull request of the running workflow, from ``GITHUB_EVENT_PATH``."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise ReconcileError("no --pr given and GITHUB_EVENT_PATH is not set")
    event = read_json(path, limit=MAX_EVENT_BYTES, noun="event file", label="a workflow event")
    if not isinstance(event, dict):
        raise ReconcileError(f"{path}: the workflow event is not a JSON object")
    pull_request = event.get("pull_request")
    number = pull_request.get("number") if isinstance(pull_request, dict) else None
    number = number or event.get("number")
    if not isinstance(number, int):
        raise ReconcileError("the workflow event is not a pull request; pass --pr")
    return number


def upsert_pr_comment(
    github: GitHub, repo: str, pr: int, body: str, *, marker: str = MARKER
) -> str:
    """Update our plan comment on the pull request, or add it; returns "updated" or "created".
    ``marker`` picks the comment (:func:`plan_marker` of the billing file)."""
    text = _with_marker(body, marker)
    ours = find_marked(github.get_all(f"/repos/{repo}/issues/{pr}/comments"), marker)
    if ours is not None:
        github.transport("PATCH", f"/repos/{repo}/issues/comments/{ours['id']}", {"body": text})
        return "updated"
    github.transport("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": text})
    return "created"


def post_pr_comment(github: GitHub, repo: str, pr: int, body: str) -> None:
    """Add a new comment (an apply's result: each apply is its own event)."""
    github.transport("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": body})


def upsert_drift_issue(github: GitHub, repo: str, body: str, *, source: str = DEFAULT_FILE) -> str:
    """Update the open drift issue of ``source``, or open one; returns "updated" or
    "created"."""
    marker = drift_marker(source)
    text = _with_marker(body, marker)
    issues = github.get_all(f"/repos/{repo}/issues?state=open&labels={DRIFT_LABEL}")
    ours = find_marked(issues, marker)
    if ours is not None:
        github.transport("PATCH", f"/repos/{repo}/issues/{ours['number']}", {"body": text})
        return "updated"
    title = DRIFT_TITLE if source == DEFAULT_FILE else f"Stripe billing has drifted from {source}"
    github.transport(
        "POST", f"/repos/{repo}/issues", {"title": title, "body": text, "labels": [DRIFT_LABEL]}
    )
    return "created"


def find_reviewed_plan(
    github: GitHub, repo: str, sha: str, *, workflow: str = "billing-plan.yml"
) -> tuple[int, int]:
    """The pull request that merged ``sha`` and the newest successful run of ``workflow``
    on its head commit: the run that showed reviewers the plan."""
    pulls = github.transport("GET", f"/repos/{repo}/commits/{sha}/pulls", None)
    merged = [p for p in pulls or [] if isinstance(p, dict) and p.get("merged_at")]
    chosen = (merged or [p for p in pulls or [] if isinstance(p, dict)])[:1]
    if not chosen or not isinstance(chosen[0].get("number"), int):
        raise ReconcileError(
            f"no pull request merged commit {sha[:12]}: billing changes go through review"
        )
    pr: int = chosen[0]["number"]
    head = chosen[0].get("head")
    head_sha = head.get("sha") if isinstance(head, dict) else None
    if not isinstance(head_sha, str):
        raise ReconcileError(f"pull request #{pr} has no head commit")
    runs = github.transport(
        "GET",
        f"/repos/{repo}/actions/workflows/{workflow}/runs"
        f"?head_sha={head_sha}&status=success&per_page=20",
        None,
    )
    found = runs.get("workflow_runs") if isinstance(runs, dict) else None
    ids = [r["id"] for r in found or [] if isinstance(r, dict) and isinstance(r.get("id"), int)]
    if not ids:
        raise ReconcileError(
            f"no successful {workflow} run for pull request #{pr} ({head_sha[:12]})"
        )
    return pr, max(ids)


def download_plan(github: GitHub, repo: str, run_id: int, artifact: str, destination: Path) -> None:
    """Extract the plan (``plan.json``, or the one JSON file) from the run's artifact named
    ``artifact`` to ``destination``."""
    listed = github.transport(
        "GET", f"/repos/{repo}/actions/runs/{run_id}/artifacts?name={artifact}&per_page=100", None
    )
    artifacts = listed.get("artifacts") if isinstance(listed, dict) else None
    usable = [
        a
        for a in artifacts or []
        if isinstance(a, dict) and a.get("name") == artifact and not a.get("expired")
    ]
    if not usable:
        raise ReconcileError(f"run {run_id} kept no artifact {artifact!r} (or it expired)")
    if github.fetch is None:
        raise ReconcileError("this GitHub client cannot download artifacts")
    archive = github.fetch(f"/repos/{repo}/actions/artifacts/{usable[0]['id']}/zip")
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            names = [n for n in bundle.namelist() if n.endswith(".json") and "/" not in n]
            info = bundle.getinfo("plan.json" if "plan.json" in names else "".join(names[:1]))
            if info.file_size > MAX_ARTIFACT_BYTES:
                raise ReconcileError(f"artifact {artifact!r}: plan.json is too large")
            data = bundle.read(info)
    except (zipfile.BadZipFile, KeyError):
        raise ReconcileError(f"artifact {artifact!r} holds no plan.json") from None
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)
