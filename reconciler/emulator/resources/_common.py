"""Small helpers shared by the resource modules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.emulator.errors import invalid
from reconciler.emulator.store import JSON

__all__ = ["copy_fields", "deleted", "require_text"]


def copy_fields(target: JSON, params: JSON, names: Iterable[str]) -> None:
    """Copy each given parameter onto the object (None = unset)."""
    for name in names:
        if name in params:
            target[name] = params[name]


def require_text(params: JSON, name: str, *, max_length: int | None = None) -> str:
    """A string parameter that may not be unset; Stripe's length limit when given."""
    value: Any = params.get(name)
    if value is None:
        raise invalid(f"You must provide a non-empty value for {name}.", param=name)
    text = str(value)
    if max_length is not None and len(text) > max_length:
        raise invalid(
            f"{name} must be at most {max_length} characters long (it currently is {len(text)}).",
            param=name,
        )
    return text


def deleted(object_name: str, object_id: str) -> JSON:
    """Stripe's answer to a delete."""
    return {"id": object_id, "object": object_name, "deleted": True}
