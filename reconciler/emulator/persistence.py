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

__all__ = ["SqlitePersistence"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


class SqlitePersistence:
    """Writes store changes to a SQLite file and loads them back."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM objects").fetchone()
        self._seq = int(row[0])

    def load_into(self, store: Store) -> None:
        """Fill ``store`` with everything on disk."""
        with self._lock:
            rows = self._db.execute("SELECT kind, id, body FROM objects ORDER BY seq").fetchall()

        def generate() -> Iterator[tuple[str, str, JSON]]:
            for kind, object_id, body in rows:
                yield str(kind), str(object_id), json.loads(body)

        store.load(generate())

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
