"""Turning stored objects into responses: copies, ``expand[]``, hidden fields, lists.

:func:`render` is what the server applies to every handler result; handlers
use :func:`paginate` for list endpoints and the small helpers below for
Stripe's common parameter conventions (``created`` filters, metadata merge).
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.emulator.errors import ApiError, invalid, no_such
from reconciler.emulator.router import Request
from reconciler.emulator.store import JSON

__all__ = [
    "apply_metadata",
    "matches_created",
    "page_cursors",
    "page_limit",
    "paginate",
    "render",
]

MAX_EXPAND_DEPTH = 4


def _tree(paths: list[str]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH:
            raise invalid(
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property ({path}).",
                param="expand",
            )
        node = root
        for part in parts:
            node = node.setdefault(part, {})
    return root


def render(req: Request, obj: JSON, expand: list[str] | None = None) -> JSON:
    """A response copy of ``obj`` with ``expand`` applied (default: the request's)."""
    tree = _tree(req.expand if expand is None else expand)
    return _apply(req, copy.deepcopy(obj), tree, "")


def _apply(req: Request, obj: JSON, tree: dict[str, Any], prefix: str) -> JSON:
    if obj.get("object") == "list" and isinstance(obj.get("data"), list):
        for name in tree:
            if name != "data":
                raise _not_expandable(prefix + name)
        sub = tree.get("data", {})
        obj["data"] = [_apply(req, item, sub, prefix + "data.") for item in obj["data"]]
        return obj
    spec = req.registry.types.get(str(obj.get("object")))
    if spec is not None:
        for name in spec.hidden:
            if name not in tree:
                obj.pop(name, None)
        if spec.transform is not None:
            spec.transform(obj, req.api_version)
        if spec.complete is not None:
            spec.complete(req, obj)
        if spec.embedded or spec.nested:
            tree = {**{name: {} for name in (*spec.embedded, *spec.nested)}, **tree}
    for name, sub in tree.items():
        if spec is not None and name in spec.hidden:
            continue
        kind = None
        if spec is not None:
            kind = spec.expandable.get(name) or spec.embedded.get(name)
        if spec is None or (kind is None and name not in spec.nested):
            raise _not_expandable(prefix + name)
        value = obj.get(name)
        if isinstance(value, str) and kind is not None:
            target = req.store.find(kind, value)
            if target is not None:
                obj[name] = _apply(req, copy.deepcopy(target), sub, prefix + name + ".")
        elif isinstance(value, dict):
            obj[name] = _apply(req, value, sub, prefix + name + ".")
        elif isinstance(value, list):
            obj[name] = [_apply_item(req, item, kind, sub, prefix + name + ".") for item in value]
    return obj


def _apply_item(
    req: Request, item: Any, kind: str | None, tree: dict[str, Any], prefix: str
) -> Any:
    """One element of a list field: an id to expand (lists of ids), or an object to render."""
    if isinstance(item, str) and kind is not None:
        target = req.store.find(kind, item)
        return _apply(req, copy.deepcopy(target), tree, prefix) if target is not None else item
    if isinstance(item, dict):
        return _apply(req, item, tree, prefix)
    return item


def _not_expandable(path: str) -> ApiError:
    return invalid(f"This property cannot be expanded ({path}).", param="expand")


def page_limit(req: Request) -> int:
    """The request's ``limit`` (default 10), or Stripe's refusal when outside 1-100."""
    limit = req.params.get("limit")
    if limit is None:
        return 10
    if not isinstance(limit, int) or limit < 1 or limit > 100:
        raise invalid(
            f"This value must be between 1 and 100 (it currently is '{limit}').", param="limit"
        )
    return limit


def page_cursors(req: Request) -> tuple[str | None, str | None]:
    """``(starting_after, ending_before)``; Stripe refuses both at once."""
    after = req.params.get("starting_after")
    before = req.params.get("ending_before")
    if after and before:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    return (str(after) if after else None), (str(before) if before else None)


def paginate(req: Request, items: list[JSON], url: str, *, label: str = "object") -> JSON:
    """One page of ``items`` (newest first) per ``limit``, ``starting_after``, ``ending_before``."""
    limit = page_limit(req)
    after, before = page_cursors(req)
    ids = [str(item["id"]) for item in items]
    if after:
        if after not in ids:
            raise no_such(label, str(after), param="starting_after", status=400)
        start = ids.index(after) + 1
        page = items[start : start + limit]
        has_more = start + limit < len(items)
    elif before:
        if before not in ids:
            raise no_such(label, str(before), param="ending_before", status=400)
        end = ids.index(before)
        begin = max(0, end - limit)
        page = items[begin:end]
        has_more = begin > 0
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def matches_created(obj: JSON, created: Any, field: str = "created") -> bool:
    """Stripe's ``created`` filter: an exact int or a ``{gt, gte, lt, lte}`` range."""
    if created is None:
        return True
    value = int(obj.get(field) or 0)
    if isinstance(created, int):
        return value == created
    checks = {
        "gt": lambda bound: value > bound,
        "gte": lambda bound: value >= bound,
        "lt": lambda bound: value < bound,
        "lte": lambda bound: value <= bound,
    }
    return all(checks[op](int(bound)) for op, bound in created.items() if bound is not None)


MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500


def apply_metadata(current: JSON | None, update: Any) -> JSON:
    """Stripe's metadata semantics: merge; an empty value unsets a key, empty metadata all keys."""
    merged = dict(current or {})
    if update is None:
        return {}
    for key, value in update.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid(
                f"Metadata keys can have up to {MAX_METADATA_KEY} characters.",
                param=f"metadata[{key}]",
            )
        if value is None:
            merged.pop(key, None)
            continue
        if len(str(value)) > MAX_METADATA_VALUE:
            raise invalid(
                f"Metadata values can have up to {MAX_METADATA_VALUE} characters.",
                param=f"metadata[{key}]",
            )
        merged[key] = str(value)
    if len(merged) > MAX_METADATA_KEYS:
        raise invalid(f"Metadata can have up to {MAX_METADATA_KEYS} keys.", param="metadata")
    return merged
