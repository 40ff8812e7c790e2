"""Request decoding: Stripe's bracketed form encoding and v2 JSON bodies.

v1 bodies (``application/x-www-form-urlencoded``) and every query string use
bracket notation: ``a[b][0][c]=v``, ``expand[]=x``, ``metadata[k]=v``. They
decode into nested dicts whose leaves are strings; a ``[]`` segment appends to
a list, a numeric segment stays a string key (``{"0": ...}``) until the
parameter schema (:mod:`reconciler.emulator.params`) says the field is a list.
v2 bodies are JSON objects and decode as such.

Whatever comes in is checked the way Stripe checks it: percent-escapes must
decode to UTF-8 (no silent U+FFFD), ids in paths and id parameters are 1 to
255 printable ASCII characters, and no string is longer than 5,000 characters.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote

from reconciler.emulator.errors import ApiError

__all__ = ["MAX_STRING", "check_id", "check_params", "decode_form", "decode_json", "decode_path_id"]

MAX_STRING = 5000
"""Stripe's limit on a string parameter."""
MAX_FIELDS = 10_000
MAX_SEGMENTS = 16
ID_PARAMS = frozenset(
    {
        "id",
        "ids",
        "product",
        "price",
        "customer",
        "default_price",
        "subscription",
        "subscription_item",
        "schedule",
        "from_subscription",
        "test_clock",
        "meter",
        "invoice",
        "coupon",
        "promotion_code",
        "starting_after",
        "ending_before",
    }
)
"""Top-level parameters that name an object: checked as ids."""

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_ID = re.compile(r"[!-~]{1,255}")


def _split_key(key: str) -> list[str]:
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    segments = [head]
    tail = "[" + rest
    position = 0
    for match in _SEGMENT.finditer(tail):
        if match.start() != position:
            raise _malformed(key)
        segments.append(match.group(1))
        position = match.end()
    if position != len(tail) or not head or len(segments) > MAX_SEGMENTS:
        raise _malformed(key)
    return segments


def _malformed(key: str) -> ApiError:
    return ApiError(400, f"Invalid parameter name: {key}", param=key, store_idempotent=False)


def _insert(root: dict[str, Any], segments: list[str], value: str, key: str) -> None:
    node: Any = root
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        following = None if last else segments[index + 1]
        if isinstance(node, list):
            if segment != "":
                raise _malformed(key)
            if last:
                node.append(value)
                return
            child: Any = [] if following == "" else {}
            node.append(child)
            node = child
            continue
        if not isinstance(node, dict):
            raise _malformed(key)
        if last:
            if segment in node and node[segment] != value:
                raise ApiError(
                    400,
                    f"Parameter {key} was given more than once.",
                    param=key,
                    store_idempotent=False,
                )
            node[segment] = value
            return
        existing = node.get(segment)
        if existing is None or existing == "":
            existing = [] if following == "" else {}
            node[segment] = existing
        elif following == "" and not isinstance(existing, list):
            raise _malformed(key)
        node = existing


def decode_form(text: str) -> dict[str, Any]:
    """Decode a form body or query string into nested dicts and lists of strings."""
    result: dict[str, Any] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise _invalid("Invalid request: percent-encoded parameters must be UTF-8.") from None
    except ValueError:
        raise _invalid(f"Invalid request: more than {MAX_FIELDS} parameters.") from None
    for key, value in pairs:
        _insert(result, _split_key(key), value, key)
    return result


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, store_idempotent=False)


def check_id(value: str, param: str) -> str:
    """``value`` if it can be a Stripe id: 1 to 255 printable ASCII characters, no spaces."""
    if not _ID.fullmatch(value):
        raise _invalid(
            f"Invalid {param}: ids are 1 to 255 printable ASCII characters without spaces "
            "or control characters.",
            param,
        )
    return value


def decode_path_id(segment: str, param: str) -> str:
    """A path parameter, percent-decoded (strictly) and checked as an id."""
    try:
        value = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise _invalid(f"Invalid {param}: the path is not UTF-8.", param) from None
    return check_id(value, param)


def check_params(params: dict[str, Any]) -> None:
    """Refuse id parameters that cannot be ids and strings over MAX_STRING characters."""
    for name in ID_PARAMS & params.keys():
        value = params[name]
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item:
                check_id(item, name)
    pending: list[tuple[str, Any]] = list(params.items())
    while pending:
        name, value = pending.pop()
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise _invalid(
                f"Invalid string: {value[:20]!r}...; must be at most {MAX_STRING} characters",
                name,
            )
        if isinstance(value, dict):
            pending += [(f"{name}[{key}]", item) for key, item in value.items()]
        elif isinstance(value, list):
            pending += [(f"{name}[{index}]", item) for index, item in enumerate(value)]


def decode_json(body: bytes) -> dict[str, Any]:
    """Decode a v2 JSON body; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "Invalid JSON in the request body.", store_idempotent=False) from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "The request body must be a JSON object.", store_idempotent=False)
    return decoded
