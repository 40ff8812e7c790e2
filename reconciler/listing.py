"""One paged list per request, however many readers ask for it.

A read of the account lists each kind once, but a kind listed per object of
another (each product's attached features, on an import) needs that other
kind's objects too. :func:`shared` wraps a lister so the same path with the
same parameters is requested once: the first reader to get further pulls the
next page, and every other reader is handed what was already listed. A
failure is kept and raised to each reader that reaches it, so no reader
mistakes a failed listing for a short one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.kinds.base import Lister

__all__ = ["shared"]


class _Listing:
    """One listing, read lazily and remembered, for any number of readers."""

    def __init__(self, source: Iterator[dict[str, Any]]) -> None:
        self._source = source
        self._seen: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._done = False
        self._lock = threading.Lock()

    def _fetch(self, index: int) -> bool:
        """Whether the ``index``-th object exists, pulling from the source if needed."""
        with self._lock:
            while index >= len(self._seen):
                if self._error is not None:
                    raise self._error
                if self._done:
                    return False
                try:
                    self._seen.append(next(self._source))
                except StopIteration:
                    self._done = True
                except BaseException as exc:
                    self._error = exc
                    raise
            return True

    def reader(self) -> Iterator[dict[str, Any]]:
        index = 0
        while self._fetch(index):
            yield self._seen[index]
            index += 1


def shared(list_all: Lister) -> Lister:
    """``list_all``, with each distinct request (path and parameters) made once."""
    listings: dict[str, _Listing] = {}
    lock = threading.Lock()

    def listed(path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        key = json.dumps([path, params], sort_keys=True, default=str)
        with lock:
            if key not in listings:
                listings[key] = _Listing(list_all(path, params))
            listing = listings[key]
        return listing.reader()

    return listed
