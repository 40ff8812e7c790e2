"""The GitOps seam to GitHub: one sticky plan comment per pull request, one drift issue.

The workflows in ``.github/workflows/billing-*.yml`` call these through
``stripe-reconcile github ...``. Finding the comment or issue to update is
pure (:func:`find_marked`); the HTTP calls go through a small client with an
injectable transport, so the marker logic is tested without the network.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcileError
from reconciler.inputs import read_json
from reconciler.redaction import clean_secret, redact
from reconciler.render.markdown import MARKER

__all__ = [
    "DRIFT_LABEL",
    "DRIFT_MARKER",
    "GitHub",
    "find_marked",
    "pull_request_number",
    "upsert_drift_issue",
    "upsert_pr_comment",
]

DRIFT_MARKER = "<!-- stripe-reconcile-drift -->"
DRIFT_LABEL = "stripe-reconcile-drift"
DRIFT_TITLE = "Stripe billing has drifted from billing.yaml"
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_EVENT_BYTES = 32 * 1024 * 1024
"""GitHub's webhook payloads are capped at 25 MB; an event file is one of them."""

Transport = Callable[[str, str, Mapping[str, Any] | None], Any]


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHub:
        env = os.environ if environ is None else environ
        name = "GITHUB_TOKEN" if (env.get("GITHUB_TOKEN") or "").strip() else "GH_TOKEN"
        token = (env.get(name) or "").strip()
        if not token:
            raise ReconcileError("GITHUB_TOKEN is not set")
        token = clean_secret(name, token)
        api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        return cls(_urllib_transport(api, token))

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


def upsert_pr_comment(github: GitHub, repo: str, pr: int, body: str) -> str:
    """Update our plan comment on the pull request, or add it; returns "updated" or "created"."""
    text = _with_marker(body, MARKER)
    ours = find_marked(github.get_all(f"/repos/{repo}/issues/{pr}/comments"), MARKER)
    if ours is not None:
        github.transport("PATCH", f"/repos/{repo}/issues/comments/{ours['id']}", {"body": text})
        return "updated"
    github.transport("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": text})
    return "created"


def upsert_drift_issue(github: GitHub, repo: str, body: str) -> str:
    """Update the open drift issue, or open one; returns "updated" or "created"."""
    text = _with_marker(body, DRIFT_MARKER)
    issues = github.get_all(f"/repos/{repo}/issues?state=open&labels={DRIFT_LABEL}")
    ours = find_marked(issues, DRIFT_MARKER)
    if ours is not None:
        github.transport("PATCH", f"/repos/{repo}/issues/{ours['number']}", {"body": text})
        return "updated"
    github.transport(
        "POST",
        f"/repos/{repo}/issues",
        {"title": DRIFT_TITLE, "body": text, "labels": [DRIFT_LABEL]},
    )
    return "created"
