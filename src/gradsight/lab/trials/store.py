"""An embedded SQLite store of finished trials (WAL mode); only the driver writes to it.

One row per trial id. A row is written once, when the trial has finished (or failed for good),
in one transaction together with its metrics, timing, host and library versions, so a process
killed at any moment leaves every finished trial complete and nothing half-written:

    trials(id PRIMARY KEY, kind, config, version, status, failure, error, metrics,
           attempts, seconds, started, finished, host, versions)

``status`` is ``"done"`` or ``"failed"``; a failed trial's ``failure`` is ``"diverged"`` (its
loss became non-finite: a property of the config, kept) or ``"raised"`` (an exception, which
may have been the machine's: a later run tries again).

>>> import tempfile, os
>>> store = TrialStore(os.path.join(tempfile.mkdtemp(), "t.sqlite"))
>>> store.put(Record("abc", "sweep", {"lr": 0.1}, "v1", "done", metrics={"acc": 0.9}))
>>> store.get("abc").metrics, len(store)
({'acc': 0.9}, 1)
"""

from __future__ import annotations

import functools
import json
import os
import platform
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError
from gradsight.lab.trials.trial import dumps, plain

__all__ = ["STATUSES", "Record", "TrialStore", "host", "library_versions"]

STATUSES: tuple[str, ...] = ("done", "failed")
FAILURES: tuple[str, ...] = ("diverged", "raised")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id        TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    config    TEXT NOT NULL,
    version   TEXT NOT NULL,
    status    TEXT NOT NULL,
    failure   TEXT,
    error     TEXT,
    metrics   TEXT,
    attempts  INTEGER NOT NULL,
    seconds   REAL NOT NULL,
    started   REAL,
    finished  REAL,
    host      TEXT,
    versions  TEXT
)
"""
_COLUMNS = ("id", "kind", "config", "version", "status", "failure", "error", "metrics",
            "attempts", "seconds", "started", "finished", "host", "versions")


@functools.cache
def host() -> str:
    """Where a trial ran: host name and platform (read once per process)."""
    return f"{socket.gethostname()} ({platform.platform()})"


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that decide a trial's numbers (a new dict each
    call; the package metadata is parsed once per process)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = [("python", platform.python_version())]
    for dist in ("gradsight", "torch", "numpy", "scikit-learn", "mnist1d"):
        try:
            out.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            out.append((dist, None))
    return tuple(out)


@dataclass
class Record:
    """One stored trial (see the module docstring for the fields)."""

    id: str
    kind: str
    config: dict[str, Any]
    version: str
    status: str  # "done" or "failed"
    failure: str | None = None  # failed only: "diverged" or "raised"
    error: str | None = None  # failed only: what went wrong
    metrics: dict[str, Any] | None = None  # what the trial returned (a diverged one: too)
    attempts: int = 1  # runs it took (a failure is retried once)
    seconds: float = 0.0  # wall time of the last attempt, in the worker
    started: float | None = None  # unix time the last attempt started
    finished: float | None = None  # unix time it finished
    host: str | None = None  # where it ran
    versions: dict[str, Any] = field(default_factory=dict)  # python and library versions

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise GradsightError(f"trial status {self.status!r}; allowed: {', '.join(STATUSES)}")
        if self.status == "failed" and self.failure not in FAILURES:
            raise GradsightError(
                f"a failed trial needs failure in {FAILURES!r}, got {self.failure!r}"
            )

    @property
    def reusable(self) -> bool:
        """Whether a later run takes this record as is: done, or diverged (deterministic)."""
        return self.status == "done" or self.failure == "diverged"


class TrialStore:
    """The SQLite file at ``path`` (created with its directory), in WAL mode.

    Open it in the driver only; workers return results and never write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise GradsightError(f"--store {str(self.path)!r} is a directory; expected a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise GradsightError(
                f"{str(self.path)!r} is not a gradsight trial store (SQLite said: {exc})"
            ) from None

    def put(self, record: Record) -> None:
        """Write ``record`` (replacing any row with its id) in one transaction; metrics keep
        their key order (a report iterates over them)."""
        row = (
            record.id, record.kind, dumps(record.config), record.version, record.status,
            record.failure, record.error,
            None if record.metrics is None else json.dumps(record.metrics, default=plain),
            record.attempts, record.seconds, record.started, record.finished, record.host,
            dumps(record.versions),
        )
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO trials ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                row,
            )

    @staticmethod
    def _record(row: tuple[Any, ...]) -> Record:
        d = dict(zip(_COLUMNS, row, strict=True))
        for key in ("config", "metrics", "versions"):
            d[key] = None if d[key] is None else json.loads(d[key])
        d["versions"] = d["versions"] or {}
        return Record(**d)

    def get(self, trial_id: str) -> Record | None:
        """The stored record of ``trial_id``, or None."""
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM trials WHERE id = ?", (trial_id,)
        ).fetchone()
        return None if row is None else self._record(row)

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Every record (of ``kind``), in the order they finished."""
        where, args = ("WHERE kind = ?", (kind,)) if kind is not None else ("", ())
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM trials {where} ORDER BY finished, id", args
        ).fetchall()
        return (self._record(r) for r in rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
