# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Durable storage: SQLite (WAL, synchronous=FULL) with an in-memory cache of the documents.

Projects, tasks, models and queues are JSON documents keyed by ``(kind, id)``; events are rows. Every API
call runs in one transaction under one lock: documents written by a call are staged and reach the cache
only once the SQLite transaction has committed, so a failed call leaves nothing half-done and a killed
process loses nothing that was answered.
"""

from __future__ import annotations

import copy
import fcntl
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KINDS = ("projects", "tasks", "models", "queues")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    type TEXT NOT NULL,
    iter INTEGER NOT NULL,
    metric TEXT NOT NULL,
    variant TEXT NOT NULL,
    ts INTEGER NOT NULL,
    model_event INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task, type, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (task, type, ts, iter, seq);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def _marks(count: int) -> str:
    return ",".join("?" * count)


class DataDirBusy(RuntimeError):
    """Another server process holds this data directory."""


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle = open(self.data_dir / "server.lock", "a+")  # noqa: SIM115 - held for the lifetime
        try:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_handle.close()
            raise DataDirBusy(f"{self.data_dir} is in use by another d2s-clearml-server") from None
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            str(self.data_dir / "clearml.sqlite3"), check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._cache: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        for kind, doc_id, text in self.db.execute("SELECT kind, id, doc FROM docs ORDER BY rowid"):
            self._cache.setdefault(kind, {})[doc_id] = json.loads(text)
        self._staged: dict[tuple[str, str], dict[str, Any] | None] | None = None

    def close(self) -> None:
        with self.lock:
            self.db.close()
            self._lock_handle.close()

    # -- transactions -------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Store]:
        with self.lock:
            if self._staged is not None:  # nested: join the outer transaction
                yield self
                return
            self._staged = {}
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self
                for (kind, doc_id), doc in self._staged.items():
                    if doc is None:
                        self.db.execute("DELETE FROM docs WHERE kind=? AND id=?", (kind, doc_id))
                    else:
                        # an upsert keeps the rowid: listing order stays creation order across restarts
                        self.db.execute(
                            "INSERT INTO docs (kind, id, doc) VALUES (?, ?, ?) "
                            "ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc",
                            (kind, doc_id, json.dumps(doc, separators=(",", ":"))),
                        )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                for (kind, doc_id), doc in self._staged.items():
                    if doc is None:
                        self._cache[kind].pop(doc_id, None)
                    else:
                        self._cache[kind][doc_id] = doc
            finally:
                self._staged = None

    def _require_tx(self) -> dict[tuple[str, str], dict[str, Any] | None]:
        if self._staged is None:
            raise RuntimeError("store access outside a transaction")
        return self._staged

    # -- documents ----------------------------------------------------------------------------------
    def get(self, kind: str, doc_id: Any) -> dict[str, Any] | None:
        """A private copy of the document (edit it and ``put`` it back), or None."""
        staged = self._require_tx()
        if not isinstance(doc_id, str):
            return None
        doc = staged[(kind, doc_id)] if (kind, doc_id) in staged else self._cache[kind].get(doc_id)
        return copy.deepcopy(doc) if doc is not None else None

    def exists(self, kind: str, doc_id: Any) -> bool:
        staged = self._require_tx()
        if not isinstance(doc_id, str):
            return False
        if (kind, doc_id) in staged:
            return staged[(kind, doc_id)] is not None
        return doc_id in self._cache[kind]

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every document of a kind. Read-only views: never modify them, ``get`` a copy instead."""
        staged = self._require_tx()
        docs = dict(self._cache[kind])
        for (k, doc_id), doc in staged.items():
            if k != kind:
                continue
            if doc is None:
                docs.pop(doc_id, None)
            else:
                docs[doc_id] = doc
        return list(docs.values())

    def put(self, kind: str, doc: dict[str, Any]) -> None:
        self._require_tx()[(kind, doc["id"])] = doc

    def delete(self, kind: str, doc_id: str) -> None:
        self._require_tx()[(kind, doc_id)] = None

    # -- events -------------------------------------------------------------------------------------
    def add_events(self, rows: list[tuple[str, str, int, str, str, int, bool, dict[str, Any]]]) -> None:
        self._require_tx()
        self.db.executemany(
            "INSERT INTO events (task, type, iter, metric, variant, ts, model_event, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    task,
                    etype,
                    it,
                    metric,
                    variant,
                    ts,
                    int(model_event),
                    json.dumps(doc, separators=(",", ":")),
                )
                for task, etype, it, metric, variant, ts, model_event, doc in rows
            ],
        )

    def events(
        self,
        task: str | list[str],
        types: list[str] | None = None,
        model_events: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Events of one or more tasks (or models), in insertion order."""
        self._require_tx()
        tasks = [task] if isinstance(task, str) else list(task)
        if not tasks:
            return []
        # only "?" placeholders are formatted into the SQL text; every value is a bound parameter
        sql = f"SELECT doc FROM events WHERE task IN ({_marks(len(tasks))})"  # noqa: S608
        args: list[Any] = list(tasks)
        if types:
            sql += f" AND type IN ({_marks(len(types))})"
            args.extend(types)
        if model_events is not None:
            sql += " AND model_event=?"
            args.append(int(model_events))
        sql += " ORDER BY seq"
        return [json.loads(row[0]) for row in self.db.execute(sql, args)]

    def events_page(
        self,
        task: str,
        types: list[str] | None,
        metrics: dict[str, list[str] | None] | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 500,
        before_ts: float | None = None,
        after_ts: float | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of a task's events ordered by (timestamp, iteration, arrival), and the total count
        of the matching events (before the timestamp bounds). ``metrics``: {metric: [variants] or None}."""
        self._require_tx()
        where = "task=?"
        args: list[Any] = [task]
        if types:
            where += f" AND type IN ({_marks(len(types))})"
            args.extend(types)
        if metrics:
            clauses = []
            for metric, variants in metrics.items():
                if variants:
                    clauses.append(f"(metric=? AND variant IN ({_marks(len(variants))}))")
                    args.extend([metric, *variants])
                else:
                    clauses.append("metric=?")
                    args.append(metric)
            where += f" AND ({' OR '.join(clauses)})"
        # only "?" placeholders and fixed words are formatted into the SQL text
        total = int(self.db.execute(f"SELECT COUNT(*) FROM events WHERE {where}", args).fetchone()[0])  # noqa: S608
        bounded, bound_args = where, list(args)
        if before_ts is not None:
            bounded += " AND ts<?"
            bound_args.append(before_ts)
        if after_ts is not None:
            bounded += " AND ts>?"
            bound_args.append(after_ts)
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT doc FROM events WHERE {bounded} "  # noqa: S608
            f"ORDER BY ts {direction}, iter {direction}, seq {direction} LIMIT ? OFFSET ?"
        )
        rows = self.db.execute(sql, [*bound_args, int(limit), int(offset)])
        return [json.loads(row[0]) for row in rows], total

    def delete_events(self, task: str, types: list[str] | None = None) -> int:
        self._require_tx()
        sql = "DELETE FROM events WHERE task=?"
        args: list[Any] = [task]
        if types:
            sql += f" AND type IN ({_marks(len(types))})"
            args.extend(types)
        return self.db.execute(sql, args).rowcount

    def count_events(self, task: str) -> int:
        self._require_tx()
        return int(self.db.execute("SELECT COUNT(*) FROM events WHERE task=?", (task,)).fetchone()[0])

    # -- server metadata ----------------------------------------------------------------------------
    def meta_get(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else None

    def meta_set(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
