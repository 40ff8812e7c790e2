"""Stripe-shaped API errors raised by emulator handlers.

A handler raises :class:`ApiError`; the server turns it into Stripe's error
body ``{"error": {"type", "code", "message", "param", "doc_url"}}`` with the
HTTP status it carries. The helpers below build the errors Stripe returns
most often, with Stripe's wording.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "already_exists",
    "invalid",
    "missing_param",
    "no_such",
    "unknown_param",
]

DOC_BASE = "https://stripe.com/docs/error-codes/"


class ApiError(Exception):
    """An error response: HTTP status plus Stripe's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        store_idempotent: bool = True,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        # Stripe saves an idempotent result only once an endpoint began
        # executing: parameter validation failures are not replayed.
        self.store_idempotent = store_idempotent
        # Card errors (``type: card_error``, HTTP 402) name the issuer's reason too.
        self.decline_code = decline_code

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends for this error."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, param=param, code=code)


def unknown_param(name: str) -> ApiError:
    """Stripe's answer to a parameter the endpoint does not take."""
    return ApiError(
        400,
        f"Received unknown parameter: {name}",
        code="parameter_unknown",
        param=name,
        store_idempotent=False,
    )


def missing_param(name: str, message: str | None = None) -> ApiError:
    """Stripe's answer to a required parameter left out."""
    return ApiError(
        400,
        message or f"Missing required param: {name}.",
        code="parameter_missing",
        param=name,
        store_idempotent=False,
    )


def no_such(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> ApiError:
    """``No such price: 'price_123'`` (404 on the object's own URL, 400 when referenced)."""
    return ApiError(
        status,
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def already_exists(message: str, *, param: str = "id") -> ApiError:
    """A 400 ``resource_already_exists``."""
    return ApiError(400, message, code="resource_already_exists", param=param)
