"""The error tree of stripe-reconcile.

Every failure a user can meet is one of these; the CLI turns them into a
message and an exit code, never a traceback. Messages never carry an API key.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ApplyError",
    "ConfigError",
    "ConfigErrors",
    "LiveKeyRefused",
    "PlanError",
    "PlanMismatchError",
    "ReconcileError",
    "StalePlanError",
    "StripeCallError",
]


class ReconcileError(Exception):
    """Base of every error this package raises on purpose."""


@dataclass(frozen=True, order=True)
class ConfigError:
    """One problem in a billing.yaml, located as precisely as the source allows.

    ``line`` and ``column`` are 1-based; 0 means "unknown" (for example a file
    that could not be read at all). ``path`` is the YAML path in the
    ``prices[2].recurring.meter`` notation, empty for the document root.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where = f"{where}:{self.line}:{self.column}"
        subject = f"{self.path}: " if self.path else ""
        return f"{where}: {subject}{self.message}"


class ConfigErrors(ReconcileError):
    """A billing.yaml that cannot be used; carries every problem found, sorted."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class PlanError(ReconcileError):
    """The account and the config cannot be reconciled without a human decision."""


class StalePlanError(ReconcileError):
    """A saved plan no longer matches the account (or the config) it was made from.

    ``detail`` is what changed, without what to do: an apply that finds it after some
    writes says what it wrote instead of the message's "Nothing was written".
    """

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message


class PlanMismatchError(StalePlanError):
    """A saved plan differs from what billing.yaml and the account give: edited, or
    made by another version. Nothing was written; the message names the first
    differing entry."""


class ApplyError(ReconcileError):
    """An apply stopped part-way; the message says what was done and what was not.

    ``result`` is the apply's record (steps done, the failed one, the rest).
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class LiveKeyRefused(ReconcileError):
    """A live key without ``--live`` and ``mode: live``, or a test key on a live config."""


class StripeCallError(ReconcileError):
    """Stripe refused a request, or could not be reached after retries.

    Carries Stripe's own error fields; the message never holds the API key.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.http_status = http_status
        self.code = code
        self.param = param
        self.error_type = error_type
        status = f" ({http_status}{' ' + code if code else ''})" if http_status else ""
        super().__init__(f"{method.upper()} {path}{status}: {message}")
