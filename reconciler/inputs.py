"""Every file the reconciler reads comes in here first, bounded before it is trusted.

billing.yaml and saved plan files are edited by whoever can open a pull
request, so each is read the same careful way: only a regular file (never a
FIFO, a device such as ``/dev/zero``, or a directory, each refused by name
without blocking), at most ``limit + 1`` bytes read whatever the file claims,
strict UTF-8, and, for JSON, nesting depth measured on the bytes and integers
bounded before :func:`json.loads` builds anything. YAML is bounded event by
event in :mod:`reconciler.yamlsource`. A refusal is an :class:`InputError`
whose ``problem`` names the file, line, column and field, like every
``ConfigError``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, ReconcileError

__all__ = [
    "MAX_INTEGER",
    "MAX_JSON_DEPTH",
    "InputError",
    "IntegerTooLarge",
    "bounded_int",
    "parse_json",
    "read_json",
    "read_text",
]

MAX_INTEGER = 2**63 - 1
"""The largest whole number Stripe takes (a signed 64-bit integer, 19 digits)."""
MAX_JSON_DEPTH = 64
_MAX_INT_CHARS = len(str(MAX_INTEGER)) + 2  # room for a 0x / 0o / 0b prefix

_CHUNK = 1 << 16
_KINDS = (
    (stat.S_ISDIR, "is a directory, not a file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
_BRACKETED_STRING = re.compile(rb'"[^"]*+"')
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[{]++|[\]}]++', re.DOTALL)


class InputError(ReconcileError):
    """A file refused before it was parsed; ``problem`` says where and why."""

    def __init__(self, problem: ConfigError) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _refuse(source: str, message: str, line: int = 0, column: int = 0) -> InputError:
    return InputError(ConfigError(source, line, column, "", message))


def read_text(path: Path | str, *, limit: int, noun: str = "file", label: str = "it") -> str:
    """The UTF-8 text of the regular file ``path``, at most ``limit`` bytes, BOM removed.

    ``noun`` names the file in messages ("file not found", "plan file not
    found"); ``label`` names the limit ("billing.yaml is limited to ...").
    """
    source = str(path)
    raw = _read_bytes(source, limit=limit, noun=noun, label=label)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded"
        raise _refuse(source, message, line, column) from None
    return text.removeprefix("\ufeff")


def _read_bytes(source: str, *, limit: int, noun: str, label: str) -> bytes:
    try:
        before = os.stat(source)
        _check_kind(source, before.st_mode)
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refuse(source, f"{noun} not found") from None
    except IsADirectoryError:
        raise _refuse(source, "is a directory, not a file") from None
    except OSError as exc:
        raise _refuse(source, f"cannot read: {exc.strerror or exc}") from None
    try:
        opened = os.fstat(fd)
        _check_kind(source, opened.st_mode)
        too_big = f"{noun} is {{}} bytes; {label} is limited to {limit} bytes"
        if opened.st_size > limit:
            raise _refuse(source, too_big.format(opened.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise _refuse(source, too_big.format(f"more than {limit}"))
        return b"".join(chunks)
    except OSError as exc:
        raise _refuse(source, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _check_kind(source: str, mode: int) -> None:
    for test, message in _KINDS:
        if test(mode):
            raise _refuse(source, message)
    if not stat.S_ISREG(mode):
        raise _refuse(source, "is not a regular file")


class IntegerTooLarge(ValueError):
    """A whole number beyond what Stripe takes; the message says so without printing it."""


def bounded_int(text: str, convert: Callable[[str], int] = int) -> int:
    """``convert(text)``, or IntegerTooLarge beyond Stripe's 64-bit range.

    Judged on the text first, so a 5,000-digit number is never converted.
    """
    digits = text.strip().lstrip("+-").replace("_", "")
    if len(digits) > _MAX_INT_CHARS:
        raise IntegerTooLarge(
            f"a whole number of {len(digits)} digits is too large; "
            f"Stripe takes whole numbers up to {MAX_INTEGER}"
        )
    value = convert(text)
    if abs(value) > MAX_INTEGER:
        raise IntegerTooLarge(
            f"{value} is too large; Stripe takes whole numbers up to {MAX_INTEGER}"
        )
    return value


class _RefusedNumber(Exception):
    def __init__(self, text: str, message: str) -> None:
        super().__init__(message)
        self.text = text
        self.message = message


def _json_int(text: str) -> int:
    try:
        return bounded_int(text)
    except IntegerTooLarge as exc:
        raise _RefusedNumber(text, str(exc)) from None


def _json_constant(name: str) -> Any:
    raise _RefusedNumber(name, f"{name} is not JSON")


def read_json(
    path: Path | str,
    *,
    limit: int,
    noun: str = "file",
    label: str = "it",
    depth: int = MAX_JSON_DEPTH,
) -> Any:
    """The JSON value in the regular file ``path``, with :func:`read_text`'s bounds."""
    return parse_json(read_text(path, limit=limit, noun=noun, label=label), str(path), depth=depth)


def parse_json(text: str, source: str, *, depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON text, refusing nesting deeper than ``depth`` before decoding starts.

    The depth is measured on the bytes (strings and escapes set aside) without
    recursion; integers beyond Stripe's 64-bit range, NaN and Infinity are refused.
    """
    if _deepest(text.encode("utf-8", "surrogatepass")) > depth:
        line, column = _where_deeper(text, depth)
        raise _refuse(source, f"nests deeper than {depth} levels; refused", line, column)
    try:
        return json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise _refuse(source, f"not JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except _RefusedNumber as exc:
        line, column = _where_number(text, exc.text)
        raise _refuse(source, exc.message, line, column) from None


def _deepest(raw: bytes) -> int:
    """The deepest bracket nesting outside strings, in C-speed passes over the bytes."""
    if b"\\" in raw:  # escaped backslashes first, then escaped quotes: what is left delimits
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = _BRACKETED_STRING.sub(b"", structure)
    return max(accumulate(map(_STEP.__getitem__, structure)), default=0)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _where_deeper(text: str, depth: int) -> tuple[int, int]:
    level = 0
    for token in _TOKEN.finditer(text):
        run = token.group()
        if run[0] in "[{":
            if level + len(run) > depth:
                return _position(text, token.start() + depth - level)
            level += len(run)
        elif run[0] in "]}":
            level -= len(run)
    return 1, 1


def _where_number(text: str, number: str) -> tuple[int, int]:
    found = re.search(rf"(?<![\w.\"+-]){re.escape(number)}(?![\w.])", text)
    return _position(text, found.start()) if found else (1, 1)
