"""A shared lister makes each distinct list request once, for every reader of it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import zip_longest
from typing import Any

import pytest

from reconciler.errors import StripeCallError
from reconciler.listing import shared


class Pages:
    """A lister over fixed objects that counts the listings it starts and the objects
    it hands out, and fails after ``fail_after`` objects when asked."""

    def __init__(self, objects: int, fail_after: int | None = None) -> None:
        self.objects = [{"id": f"prod_{n}"} for n in range(objects)]
        self.fail_after = fail_after
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.handed = 0

    def __call__(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        self.started.append((path, dict(params)))
        for index, obj in enumerate(self.objects):
            if index == self.fail_after:
                raise StripeCallError("boom", method="get", path=path, http_status=500)
            self.handed += 1
            yield obj


def test_the_same_request_twice_is_listed_once_and_both_readers_see_every_object() -> None:
    pages = Pages(250)
    list_all = shared(pages)
    first = list(list_all("/v1/products", {}))
    second = list(list_all("/v1/products", {}))
    assert first == second == pages.objects
    assert pages.started == [("/v1/products", {})]
    assert pages.handed == 250


def test_readers_taking_turns_pull_each_object_once() -> None:
    pages = Pages(5)
    list_all = shared(pages)
    pairs = list(zip_longest(list_all("/v1/products", {}), list_all("/v1/products", {})))
    assert pairs == [(obj, obj) for obj in pages.objects]
    assert (len(pages.started), pages.handed) == (1, 5)


def test_different_parameters_or_paths_are_different_requests() -> None:
    pages = Pages(2)
    list_all = shared(pages)
    list(list_all("/v1/products", {}))
    list(list_all("/v1/products", {"active": True}))
    list(list_all("/v1/prices", {}))
    list(list_all("/v1/products", {"active": True}))
    assert pages.started == [
        ("/v1/products", {}),
        ("/v1/products", {"active": True}),
        ("/v1/prices", {}),
    ]


def test_nothing_is_requested_until_a_reader_reads() -> None:
    pages = Pages(3)
    reader = shared(pages)("/v1/products", {})
    assert pages.started == []
    assert next(reader) == {"id": "prod_0"}
    assert pages.handed == 1


def test_a_failed_listing_fails_every_reader_that_reaches_the_failure() -> None:
    pages = Pages(5, fail_after=3)
    list_all = shared(pages)
    first = list_all("/v1/products", {})
    assert [next(first)["id"] for _ in range(3)] == ["prod_0", "prod_1", "prod_2"]
    with pytest.raises(StripeCallError, match="boom"):
        next(first)
    later: list[dict[str, Any]] = []
    with pytest.raises(StripeCallError, match="boom"):
        later.extend(list_all("/v1/products", {}))
    # The second reader is handed what was listed, then the failure: never a short list.
    assert later == pages.objects[:3]
    assert len(pages.started) == 1
