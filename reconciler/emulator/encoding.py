"""Request decoding: Stripe's bracketed form encoding and v2 JSON bodies.

v1 bodies (``application/x-www-form-urlencoded``) and every query string use
bracket notation: ``a[b][0][c]=v``, ``expand[]=x``, ``metadata[k]=v``. They
decode into nested dicts whose leaves are strings; a ``[]`` segment appends to
a list, a numeric segment stays a string key (``{"0": ...}``) until the
parameter schema (:mod:`reconciler.emulator.params`) says the field is a list.
v2 bodies are JSON objects and decode as such.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from reconciler.emulator.errors import ApiError

__all__ = ["decode_form", "decode_json"]

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


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
    if position != len(tail) or not head:
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
    for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        _insert(result, _split_key(key), value, key)
    return result


def decode_json(body: bytes) -> dict[str, Any]:
    """Decode a v2 JSON body; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Invalid JSON in the request body.", store_idempotent=False) from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "The request body must be a JSON object.", store_idempotent=False)
    return decoded
