"""Records that could not be parsed: kept with the reason, never dropped silently.

Rows are written by the page writer in the same transaction as the page they came from. The
same malformed record seen again (a resumed page) updates its row instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

INSERT_SQL = (
    "INSERT INTO _quarantine (resource, variant, record_id, reason, raw, digest, run_id, at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(resource, variant, digest) DO UPDATE SET"
    " record_id = excluded.record_id, reason = excluded.reason,"
    " run_id = excluded.run_id, at = excluded.at"
)

QuarantineParams = tuple[str, str, str | None, str, str, str, int, str]


def raw_text(record: object) -> str:
    """The record as storable text, whatever it is (lone surrogates are escaped)."""
    try:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=repr)
    except (ValueError, TypeError, RecursionError):
        return repr(record)


def params(
    resource: str,
    variant: str,
    record: object,
    reason: str,
    record_id: str | None,
    run_id: int,
    at: str,
) -> QuarantineParams:
    raw = raw_text(record)
    digest = hashlib.sha256(raw.encode("utf-8", "backslashreplace")).hexdigest()[:32]
    return (resource, variant, record_id, reason, raw, digest, run_id, at)


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    id: int
    resource: str
    variant: str
    record_id: str | None
    reason: str
    raw: str
    run_id: int | None
    at: str | None


def rows(
    conn: sqlite3.Connection,
    resource: str | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
) -> list[QuarantineRow]:
    cur = conn.execute(
        "SELECT id, resource, variant, record_id, reason, raw, run_id, at FROM _quarantine"
        " WHERE ? IS NULL OR resource = ? ORDER BY id LIMIT ? OFFSET ?",
        [resource, resource, limit, offset],
    )
    return [QuarantineRow(*r) for r in cur]


def counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Quarantined records per (resource, reason)."""
    cur = conn.execute(
        "SELECT resource, reason, count(*) FROM _quarantine GROUP BY resource, reason"
    )
    return {(r, reason): n for r, reason, n in cur}
