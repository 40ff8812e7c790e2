"""The emulator's state: Stripe objects as plain JSON dicts, behind one lock.

Objects live in collections keyed by kind (usually the object's ``object``
value: ``"price"``, ``"billing.meter"``) and id, in insertion order; lists
show them newest first, as Stripe does. Kinds starting with ``_`` hold the
emulator's own bookkeeping (idempotency records, meter event sessions) and are
persisted like any other.

Rules for handlers (they run with :attr:`Store.lock` held by the server):

- read with :meth:`Store.get` / :meth:`Store.find` / :meth:`Store.values`;
  these return the live dicts, so never hand them out without copying (the
  renderer copies);
- after creating or changing an object, call :meth:`Store.put` with it, so
  persistence sees the change; remove with :meth:`Store.delete`.

Objects are global to the emulator: every test API key sees the same account.
"""

from __future__ import annotations

import copy
import secrets
import string
import threading
from collections.abc import Collection, Iterator
from typing import Any

from reconciler.emulator.errors import no_such

__all__ = ["JSON", "Store", "new_id"]

JSON = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: ``prefix`` + ``_`` + random base62 (e.g. ``price_1Q...``)."""
    return f"{prefix}_1{''.join(secrets.choice(_ALPHABET) for _ in range(length - 1))}"


class Store:
    """Collections of objects plus a change journal for persistence."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._collections: dict[str, dict[str, JSON]] = {}
        self._changes: dict[tuple[str, str], JSON | None] = {}

    # --- reading ----------------------------------------------------------------------
    def find(self, kind: str, object_id: str) -> JSON | None:
        """The object, or None."""
        return self._collections.get(kind, {}).get(object_id)

    def get(
        self,
        kind: str,
        object_id: str,
        *,
        label: str | None = None,
        param: str = "id",
        status: int = 404,
    ) -> JSON:
        """The object, or Stripe's ``No such <label>: '<id>'`` error."""
        found = self.find(kind, object_id)
        if found is None:
            raise no_such(label or kind.rpartition(".")[2], object_id, param=param, status=status)
        return found

    def values(self, kind: str) -> list[JSON]:
        """Every object of a kind, oldest first."""
        return list(self._collections.get(kind, {}).values())

    def newest_first(self, kind: str) -> list[JSON]:
        """Every object of a kind, newest first (Stripe's list order)."""
        return list(reversed(self._collections.get(kind, {}).values()))

    def iterate(self, kind: str, *, newest_first: bool = False) -> Iterator[JSON]:
        """The live objects of a kind one by one, without copying the collection.

        Do not write the kind while iterating.
        """
        values = self._collections.get(kind, {}).values()
        return reversed(values) if newest_first else iter(values)

    def count(self, kind: str) -> int:
        return len(self._collections.get(kind, {}))

    def kinds(self) -> list[str]:
        return sorted(self._collections)

    def snapshot(self, *, skip: Collection[str] = ()) -> Store:
        """A deep copy of every collection but the kinds in ``skip``, with an empty journal.

        What the copy's handlers write never reaches this store (invoice previews
        run the billing machinery on one and throw it away).
        """
        twin = Store()
        for kind, collection in self._collections.items():
            if kind not in skip:
                twin._collections[kind] = copy.deepcopy(collection)
        return twin

    def restore(self, twin: Store) -> None:
        """Go back to ``twin``, a :meth:`snapshot` of this store taken earlier (taken
        without ``skip``): a refused request is undone. Every object written or deleted
        since is journalled as it is in ``twin``, so persistence undoes it too."""
        for kind, key in list(self._changes):
            self._changes[(kind, key)] = twin._collections.get(kind, {}).get(key)
        self._collections = twin._collections

    # --- writing ----------------------------------------------------------------------
    def put(self, kind: str, obj: JSON, object_id: str | None = None) -> JSON:
        """Insert or replace an object (keeps its place when replacing)."""
        key = object_id if object_id is not None else str(obj["id"])
        self._collections.setdefault(kind, {})[key] = obj
        self._changes[(kind, key)] = obj
        return obj

    def delete(self, kind: str, object_id: str) -> None:
        """Remove an object if present."""
        collection = self._collections.get(kind, {})
        if object_id in collection:
            del collection[object_id]
            self._changes[(kind, object_id)] = None

    def clear(self) -> None:
        """Forget everything (the journal too)."""
        self._collections.clear()
        self._changes.clear()

    # --- persistence support ------------------------------------------------------------
    def take_changes(self) -> dict[tuple[str, str], JSON | None]:
        """The objects written or deleted since the last call (None = deleted)."""
        changes, self._changes = self._changes, {}
        return changes

    def load(self, rows: Iterator[tuple[str, str, JSON]]) -> None:
        """Fill from ``(kind, id, object)`` rows in insertion order, journal untouched."""
        for kind, object_id, obj in rows:
            self._collections.setdefault(kind, {})[object_id] = obj
