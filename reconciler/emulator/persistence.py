"""Optional SQLite persistence of the store (stdlib ``sqlite3``).

One table of ``(kind, id, seq, body)`` rows. At start the store is loaded in
``seq`` order (so list order survives a restart); after every request that
wrote something, the server calls :meth:`SqlitePersistence.flush` while it
still holds the store lock and before it sends the response: the request's
changes go to disk in one transaction. A restarted emulator therefore has every
object and idempotency record a client was ever told about.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from reconciler.emulator.store import JSON, Store

__all__ = ["DatabaseUnusable", "SqlitePersistence"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


class DatabaseUnusable(Exception):
    """The ``--db`` path cannot hold the emulator's state; the message says why, in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot be used as the emulator's database: {reason}")


class SqlitePersistence:
    """Writes store changes to a SQLite file and loads them back.

    A path that is not a writable SQLite file (a directory, a device, another
    kind of file, a read-only place) is refused at once with DatabaseUnusable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise DatabaseUnusable(self.path, "it is a directory")
        if self.path.exists() and not self.path.is_file():
            raise DatabaseUnusable(self.path, "it is not a regular file")
        try:
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise DatabaseUnusable(self.path, str(exc)) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM objects").fetchone()
            self._seq = int(row[0])
        except (sqlite3.Error, TypeError, ValueError) as exc:
            self._db.close()
            raise DatabaseUnusable(self.path, str(exc)) from None

    def load_into(self, store: Store) -> None:
        """Fill ``store`` with everything on disk."""
        with self._lock:
            rows = self._db.execute("SELECT kind, id, body FROM objects ORDER BY seq").fetchall()

        def generate() -> Iterator[tuple[str, str, JSON]]:
            for kind, object_id, body in rows:
                obj = json.loads(body)
                if not isinstance(obj, dict):
                    raise ValueError(f"row {kind} {object_id} is not a JSON object")
                yield str(kind), str(object_id), obj

        try:
            store.load(generate())
        except (ValueError, RecursionError) as exc:
            self.close()
            raise DatabaseUnusable(self.path, f"unreadable row: {exc}") from None

    def flush(self, store: Store) -> None:
        """Write the store's pending changes in one transaction."""
        changes = store.take_changes()
        if not changes:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for (kind, object_id), obj in changes.items():
                    if obj is None:
                        self._db.execute(
                            "DELETE FROM objects WHERE kind = ? AND id = ?", (kind, object_id)
                        )
                        continue
                    body = json.dumps(obj, separators=(",", ":"))
                    updated = self._db.execute(
                        "UPDATE objects SET body = ? WHERE kind = ? AND id = ?",
                        (body, kind, object_id),
                    )
                    if updated.rowcount == 0:
                        self._seq += 1
                        self._db.execute(
                            "INSERT INTO objects (kind, id, seq, body) VALUES (?, ?, ?, ?)",
                            (kind, object_id, self._seq, body),
                        )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def clear(self) -> None:
        """Delete every row."""
        with self._lock:
            self._db.execute("DELETE FROM objects")
            self._seq = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
