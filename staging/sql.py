"""Small helpers shared by the staging modules: write transactions and timestamps."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from staging.errors import translate


def utc_now() -> str:
    """Now in UTC, Cliniko's format, floored to the second (`2016-07-21T03:45:00Z`).

    Flooring matters: a run's start time becomes the next top-up's `updated_at >=` mark, and
    an earlier mark is safe where a later one could miss a change.
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # SQLite may already have rolled back (e.g. on SQLITE_FULL): then nothing is left.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextmanager
def immediate(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """One write transaction: `BEGIN IMMEDIATE` ... `COMMIT`, or a full rollback.

    IMMEDIATE takes the write lock up front, so a second writer fails fast with
    `StagingLocked` (after the connection's busy timeout) instead of halfway through a batch.
    SQLite errors become the staging errors the operator can act on.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise_translated(exc, path)
    try:
        yield
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise_translated(exc, path)
    except BaseException:
        _rollback(conn)
        raise


def raise_translated(exc: sqlite3.Error, path: Path) -> NoReturn:
    """Re-raise a SQLite error as a staging error; an error SQLite did not report (a misuse of
    the sqlite3 module: a bug here, not a problem with the file) is re-raised unchanged."""
    if getattr(exc, "sqlite_errorname", None):
        raise translate(exc, path) from exc
    raise exc
