"""Run history (`_runs`) and crawl checkpoints (`_checkpoints`).

A run is one download: full, top-up or resume. Its row is written when it starts and
completed when it ends; a row still `running` when the file is next opened for writing belongs
to a process that died (the writer holds the file's lock), so it is marked `interrupted`.
The API key is never an argument here, so it cannot be stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from staging.sql import immediate, utc_now

RunMode = Literal["full", "topup", "resume"]
Outcome = Literal["running", "complete", "interrupted", "failed"]

_COLUMNS = (
    "run_id, started_at, finished_at, shard, api_base_host, selection, mode, outcome,"
    " requests, retries, rate_limited, records, quarantined, error, tool_version"
)


@dataclass(frozen=True, slots=True)
class RunCounters:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    records: int = 0
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: int
    started_at: str
    finished_at: str | None
    shard: str | None
    api_base_host: str | None
    selection: tuple[str, ...]
    mode: str
    outcome: str
    requests: int
    retries: int
    rate_limited: int
    records: int
    quarantined: int
    error: str | None
    tool_version: str | None

    @classmethod
    def from_row(cls, row: Sequence[object]) -> RunInfo:
        values = list(row)
        selection = values[5]
        values[5] = tuple(json.loads(selection)) if isinstance(selection, str) else ()
        return cls(*values)  # type: ignore[arg-type]


class SavedCheckpoint(NamedTuple):
    state: str
    done: bool


def start_run(
    conn: sqlite3.Connection,
    path: Path,
    *,
    mode: RunMode,
    selection: Sequence[str],
    shard: str | None,
    api_base_host: str | None,
    tool_version: str,
) -> int:
    if mode not in get_args(RunMode):
        raise ValueError(f"unknown run mode {mode!r}")
    with immediate(conn, path):
        cur = conn.execute(
            "INSERT INTO _runs (started_at, shard, api_base_host, selection, mode, outcome,"
            " tool_version) VALUES (?, ?, ?, ?, ?, 'running', ?)",
            [utc_now(), shard, api_base_host, json.dumps(list(selection)), mode, tool_version],
        )
    run_id = cur.lastrowid
    assert run_id is not None
    return run_id


def finish_run(
    conn: sqlite3.Connection,
    path: Path,
    run_id: int,
    outcome: Outcome,
    counters: RunCounters | None = None,
    *,
    error: str | None = None,
) -> None:
    """Record how a run ended. `error` is the operator-facing message (never the key)."""
    if outcome not in get_args(Outcome) or outcome == "running":
        raise ValueError(f"a run cannot finish as {outcome!r}")
    c = counters or RunCounters()
    with immediate(conn, path):
        cur = conn.execute(
            "UPDATE _runs SET finished_at = ?, outcome = ?, requests = ?, retries = ?,"
            " rate_limited = ?, records = ?, quarantined = ?, error = ? WHERE run_id = ?",
            [
                utc_now(),
                outcome,
                c.requests,
                c.retries,
                c.rate_limited,
                c.records,
                c.quarantined,
                error,
                run_id,
            ],
        )
        if cur.rowcount != 1:
            raise ValueError(f"no run {run_id} in this staging file")
        if outcome == "complete":
            started = conn.execute(
                "SELECT started_at FROM _runs WHERE run_id = ?", [run_id]
            ).fetchone()[0]
            _set_meta(conn, "last_complete_run_started_at", started)


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO _meta (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def mark_dead_runs_interrupted(conn: sqlite3.Connection) -> int:
    """Inside the open's transaction: runs left `running` by a process that died."""
    cur = conn.execute(
        "UPDATE _runs SET outcome = 'interrupted',"
        " error = COALESCE(error, 'the process stopped before the run finished')"
        " WHERE outcome = 'running'"
    )
    return cur.rowcount


def runs(conn: sqlite3.Connection) -> list[RunInfo]:
    """Every run, oldest first."""
    cur = conn.execute(f"SELECT {_COLUMNS} FROM _runs ORDER BY run_id")  # noqa: S608
    return [RunInfo.from_row(r) for r in cur]


def get_run(conn: sqlite3.Connection, run_id: int) -> RunInfo | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM _runs WHERE run_id = ?",  # noqa: S608
        [run_id],
    ).fetchone()
    return RunInfo.from_row(row) if row else None


def last_complete_run(conn: sqlite3.Connection) -> RunInfo | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM _runs WHERE outcome = 'complete'"  # noqa: S608
        " ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    return RunInfo.from_row(row) if row else None


def incomplete_run(conn: sqlite3.Connection) -> RunInfo | None:
    """The latest run, if it did not complete: what a new download should resume."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM _runs ORDER BY run_id DESC LIMIT 1"  # noqa: S608
    ).fetchone()
    if row is None:
        return None
    run = RunInfo.from_row(row)
    return None if run.outcome == "complete" else run


def get_checkpoints(conn: sqlite3.Connection, scope: str) -> dict[tuple[str, str], SavedCheckpoint]:
    cur = conn.execute(
        "SELECT resource, variant, state, done FROM _checkpoints WHERE scope = ?", [scope]
    )
    return {(r, v): SavedCheckpoint(state, bool(done)) for r, v, state, done in cur}


def checkpoints_under(
    conn: sqlite3.Connection, prefix: str
) -> dict[str, dict[tuple[str, str], SavedCheckpoint]]:
    """Every checkpoint whose scope starts with `prefix`, by scope, then (resource, variant)."""
    cur = conn.execute(
        "SELECT scope, resource, variant, state, done FROM _checkpoints"
        " WHERE substr(scope, 1, length(?)) = ?",
        [prefix, prefix],
    )
    out: dict[str, dict[tuple[str, str], SavedCheckpoint]] = {}
    for scope, r, v, state, done in cur:
        out.setdefault(scope, {})[(r, v)] = SavedCheckpoint(state, bool(done))
    return out


def clear_checkpoints(
    conn: sqlite3.Connection, path: Path, scope: str, *, prefix: bool = False
) -> int:
    """Forget a scope's checkpoints (every scope starting with `scope` if `prefix`)."""
    with immediate(conn, path):
        if prefix:
            sql = "DELETE FROM _checkpoints WHERE substr(scope, 1, length(?)) = ?"
            return conn.execute(sql, [scope, scope]).rowcount
        return conn.execute("DELETE FROM _checkpoints WHERE scope = ?", [scope]).rowcount
