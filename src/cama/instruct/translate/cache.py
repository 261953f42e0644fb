"""The translation cache and budget ledger: one SQLite file in WAL mode, shared by every job.

``responses`` holds every answer the API gave, keyed by the SHA-256 of (model, messages,
parameters): a rerun sends nothing it already has, and a ``kill -9`` loses at most the
requests in flight (each answer is committed as it arrives; WAL keeps the file consistent).
Rejected answers are kept too, so a rerun does not pay for them again.

The budget is what the rows record (tokens in and out, cost), plus ``reservations``: before
a request is sent, its worst case (the prompt's bytes as tokens, plus ``max_tokens``) is
reserved inside one ``BEGIN IMMEDIATE`` transaction that first checks the cap; the answer
replaces the reservation with what it really used. So the cap holds across processes
(translation jobs of several sources run at once) and across restarts: reservations of
processes that no longer run are dropped when a translator opens the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    content TEXT,
    finish_reason TEXT,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost REAL NOT NULL
);
"""


def request_key(model: str, messages: list[dict], params: dict) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Cached:
    content: str | None
    finish_reason: str | None
    tokens_in: int
    tokens_out: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Cache:
    """Answers by request key, and the token and money ledger of the budget."""

    def __init__(self, path: str | os.PathLike):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.pid = os.getpid()
        stale = [
            pid
            for (pid,) in self.db.execute("SELECT DISTINCT pid FROM reservations")
            if not _alive(pid)
        ]
        for pid in stale:
            self.db.execute("DELETE FROM reservations WHERE pid = ?", (pid,))

    def get(self, key: str) -> Cached | None:
        row = self.db.execute(
            "SELECT content, finish_reason, tokens_in, tokens_out FROM responses WHERE key = ?",
            (key,),
        ).fetchone()
        return Cached(*row) if row else None

    def spent(self) -> tuple[int, float]:
        """Tokens (in + out) and cost of every answer so far, and of what is reserved."""
        t, c = self.db.execute(
            "SELECT COALESCE(SUM(tokens_in + tokens_out), 0), COALESCE(SUM(cost), 0) FROM responses"
        ).fetchone()
        rt, rc = self.db.execute(
            "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(cost), 0) FROM reservations"
        ).fetchone()
        return int(t + rt), float(c + rc)

    def reserve(
        self, tokens: int, cost: float, max_tokens: int | None, max_cost: float | None
    ) -> int | None:
        """Reserve a request's worst case if it fits under the caps; its id, or None at the cap."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            spent_t, spent_c = self.spent()
            if (max_tokens is not None and spent_t + tokens > max_tokens) or (
                max_cost is not None and spent_c + cost > max_cost + 1e-12
            ):
                self.db.execute("COMMIT")
                return None
            cur = self.db.execute(
                "INSERT INTO reservations (pid, tokens, cost) VALUES (?, ?, ?)",
                (self.pid, tokens, cost),
            )
            self.db.execute("COMMIT")
            return int(cur.lastrowid)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def release(self, reservation: int | None) -> None:
        if reservation is not None:
            self.db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))

    def put(
        self,
        key: str,
        model: str,
        request: dict,
        content: str | None,
        finish_reason: str | None,
        tokens_in: int,
        tokens_out: int,
        cost: float,
        reservation: int | None = None,
    ) -> None:
        """Store an answer and drop its reservation, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    json.dumps(request, ensure_ascii=False),
                    content,
                    finish_reason,
                    tokens_in,
                    tokens_out,
                    cost,
                    time.time(),
                ),
            )
            if reservation is not None:
                self.db.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def keys(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM responses")}

    def close(self) -> None:
        self.db.execute("DELETE FROM reservations WHERE pid = ?", (self.pid,))
        self.db.close()
