"""Read-only queries over a staging file: the TUI's review screen, the CLI, and the load phase.

Nothing here writes. Resource names are checked against the catalogue before they reach SQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from engine.resources import BY_NAME, RESOURCES, Resource, UnknownSelection, resources_for
from staging import quarantine
from staging.schema import MARKERS, VARIANTS, q, ref_column

REF_TARGETS: dict[str, tuple[str, ...]] = {
    "patient": ("patients",),
    "practitioner": ("practitioners",),
    "appointment_type": ("appointment_types",),
    "business": ("businesses",),
    "booking": ("individual_appointments", "group_appointments"),
    "invoice": ("invoices",),
    "billable_item": ("billable_items",),
    "tax": ("taxes",),
    "concession_type": ("concession_types",),
    "referring_doctor": ("contacts",),
    "merged_with_patient": ("patients",),
    "treatment_note_template": ("treatment_note_templates",),
    "user": ("users",),
    "referral_source_type": ("referral_source_types",),
    "referrer": ("patients", "contacts"),
    "default_appointment_type": ("appointment_types",),
    "product": (),  # products are not downloaded
    "appointment": ("individual_appointments",),
}
"""Which staged table(s) a ref points into (any one of them is enough)."""


def _resource(name: str) -> Resource:
    resource = BY_NAME.get(name)
    if resource is None:
        raise ValueError(f"unknown resource {name!r}")
    return resource


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({q(table)})"))


# ---------------------------------------------------------------------------------------------
# Counts


@dataclass(frozen=True, slots=True)
class ResourceCount:
    resource: str
    total: int
    by_state: dict[str, int]
    by_variant: dict[str, int]
    """Rows seen in each list (a row seen in two lists counts in both)."""
    quarantined: int


def table_counts(conn: sqlite3.Connection) -> dict[str, ResourceCount]:
    """Per resource, in catalogue order: rows, rows per state and per variant, quarantined."""
    tables = _tables(conn)
    quarantined: dict[str, int] = {}
    for (name, _reason), n in quarantine.counts(conn).items():
        quarantined[name] = quarantined.get(name, 0) + n
    out: dict[str, ResourceCount] = {}
    for resource in RESOURCES:
        by_state: dict[str, int] = {}
        by_variant: dict[str, int] = {}
        total = 0
        if resource.name in tables:
            cur = conn.execute(
                f"SELECT state, variants, count(*) FROM {q(resource.name)}"  # noqa: S608
                " GROUP BY state, variants"
            )
            for state, variants, n in cur:
                total += n
                by_state[state] = by_state.get(state, 0) + n
                for v in variants.split(","):
                    by_variant[v] = by_variant.get(v, 0) + n
        out[resource.name] = ResourceCount(
            resource.name, total, by_state, by_variant, quarantined.get(resource.name, 0)
        )
    return out


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True, slots=True)
class StagedRow:
    resource: str
    id: str
    state: str
    variants: tuple[str, ...]
    created_at: str | None
    updated_at: str | None
    markers: dict[str, str | None]
    """deleted_at, archived_at, cancelled_at as staged (a stub's marker survives here even
    where the kept full `raw` predates it)."""
    refs: dict[str, str | None] = field(default_factory=dict)
    """`{ref: id}` for each of the resource's refs."""
    run_id: int | None = None
    raw: str = "{}"

    def data(self) -> dict[str, object]:
        """The record as Cliniko sent it."""
        value = json.loads(self.raw)
        return value if isinstance(value, dict) else {"value": value}


def _select(resource: Resource) -> str:
    refs = "".join(f", {q(ref_column(r))}" for r in resource.refs)
    markers = "".join(f", {q(m)}" for m in MARKERS)
    return (
        f"SELECT id, state, variants, created_at, updated_at{markers}{refs}, run_id, raw"  # noqa: S608
        f" FROM {q(resource.name)}"
    )


def _row(resource: Resource, r: tuple[object, ...]) -> StagedRow:
    n_markers, n_refs = len(MARKERS), len(resource.refs)
    markers = r[5 : 5 + n_markers]
    refs = r[5 + n_markers : 5 + n_markers + n_refs]
    return StagedRow(
        resource=resource.name,
        id=str(r[0]),
        state=str(r[1]),
        variants=tuple(str(r[2]).split(",")),
        created_at=r[3],  # type: ignore[arg-type]
        updated_at=r[4],  # type: ignore[arg-type]
        markers=dict(zip(MARKERS, markers, strict=True)),  # type: ignore[arg-type]
        refs=dict(zip(resource.refs, refs, strict=True)),  # type: ignore[arg-type]
        run_id=r[-2],  # type: ignore[arg-type]
        raw=str(r[-1]),
    )


def _casefold_contains(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle in haystack.casefold()


def _search_clause(conn: sqlite3.Connection, search: str | None) -> tuple[str, list[object]]:
    if not search:
        return "", []
    if search.isascii():
        # LIKE is case-insensitive for ASCII and runs in SQLite's C code: fast on big tables.
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return " WHERE raw LIKE ? ESCAPE '\\'", [f"%{escaped}%"]
    # Beyond ASCII (accented names ...), fold case in Python, as `str.casefold` does.
    conn.create_function("staging_contains", 2, _casefold_contains, deterministic=True)
    return " WHERE staging_contains(raw, ?)", [search.casefold()]


def rows(
    conn: sqlite3.Connection,
    resource_name: str,
    *,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[StagedRow]:
    """A page of staged rows in download order; `search` matches the raw JSON, any case."""
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return []
    where, args = _search_clause(conn, search)
    cur = conn.execute(
        f"{_select(resource)}{where} ORDER BY rowid LIMIT ? OFFSET ?", [*args, limit, offset]
    )
    return [_row(resource, r) for r in cur]


def count_rows(conn: sqlite3.Connection, resource_name: str, *, search: str | None = None) -> int:
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return 0
    where, args = _search_clause(conn, search)
    return int(
        conn.execute(f"SELECT count(*) FROM {q(resource.name)}{where}", args).fetchone()[0]  # noqa: S608
    )


def row(conn: sqlite3.Connection, resource_name: str, row_id: str | int) -> StagedRow | None:
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return None
    key = str(row_id)
    if key.isascii() and key.isdigit():
        key = str(int(key))
    found = conn.execute(f"{_select(resource)} WHERE id = ?", [key]).fetchone()
    return _row(resource, found) if found else None


def iter_records(conn: sqlite3.Connection, resource_name: str) -> Iterator[StagedRow]:
    """Every row of a resource in download order, streamed (bounded memory)."""
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return
    for r in conn.execute(f"{_select(resource)} ORDER BY rowid"):
        yield _row(resource, r)


def iter_raw(conn: sqlite3.Connection, resource_name: str) -> Iterator[dict[str, object]]:
    """Every staged record of a resource as Cliniko sent it, streamed."""
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return
    for (raw,) in conn.execute(f"SELECT raw FROM {q(resource.name)} ORDER BY rowid"):  # noqa: S608
        yield json.loads(raw)


def staged_ids(conn: sqlite3.Connection, resource_name: str, variant: str) -> set[str]:
    """Ids of the rows seen in one list (`variant`) of a resource."""
    resource = _resource(resource_name)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    if resource.name not in _tables(conn):
        return set()
    cur = conn.execute(
        f"SELECT id FROM {q(resource.name)}"  # noqa: S608
        " WHERE instr(',' || variants || ',', ?) > 0",
        [f",{variant},"],
    )
    return {r[0] for r in cur}


def ids_updated_since(conn: sqlite3.Connection, resource_name: str, since: str | None) -> list[str]:
    """Ids of rows with `updated_at >= since` (every id if `since` is None), in id order."""
    resource = _resource(resource_name)
    if resource.name not in _tables(conn):
        return []
    cur = conn.execute(
        f"SELECT id FROM {q(resource.name)}"  # noqa: S608
        " WHERE ? IS NULL OR updated_at >= ? ORDER BY length(id), id",
        [since, since],
    )
    return [r[0] for r in cur]


# ---------------------------------------------------------------------------------------------
# Anomalies


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: Literal["missing_reference", "quarantined"]
    resource: str
    detail: str
    """The ref column (`patient_id`) or the quarantine reason."""
    count: int
    """Rows that reference a missing record, or records quarantined."""
    targets: tuple[str, ...] = ()
    """Tables searched for the referenced id."""
    distinct: int = 0
    """Distinct missing ids (missing_reference only)."""
    sample_ids: tuple[str, ...] = ()
    """A few missing ids, or quarantined record ids (ids only: safe to show and log)."""


def downloaded_resources(conn: sqlite3.Connection) -> set[str]:
    """Resources some run selected, plus any table holding rows."""
    names: set[str] = set()
    for (selection,) in conn.execute("SELECT selection FROM _runs"):
        try:
            items = json.loads(selection or "[]")
        except ValueError:
            continue
        for item in items if isinstance(items, list) else []:
            try:
                names.update(r.name for r in resources_for([str(item)]))
            except UnknownSelection:
                continue
    tables = _tables(conn)
    for resource in RESOURCES:
        if resource.name in tables and resource.name not in names:
            has_rows = conn.execute(f"SELECT 1 FROM {q(resource.name)} LIMIT 1").fetchone()  # noqa: S608
            if has_rows:
                names.add(resource.name)
    return names


def anomalies(conn: sqlite3.Connection, *, sample: int = 5) -> list[Anomaly]:
    """References to records that are not staged (only into tables that were downloaded),
    then quarantined records grouped by reason."""
    tables = _tables(conn)
    downloaded = downloaded_resources(conn) & tables
    found: list[Anomaly] = []
    for resource in RESOURCES:
        if resource.name not in tables:
            continue
        for ref in resource.refs:
            targets = tuple(t for t in REF_TARGETS.get(ref, ()) if t in downloaded)
            column = ref_column(ref)
            if not targets or not _has_column(conn, resource.name, column):
                continue
            missing = " AND ".join(
                f"NOT EXISTS (SELECT 1 FROM {q(t)} WHERE {q(t)}.id = s.{q(column)})"  # noqa: S608
                for t in targets
            )
            cur = conn.execute(
                f"SELECT s.{q(column)}, count(*) FROM {q(resource.name)} AS s"  # noqa: S608
                f" WHERE s.{q(column)} IS NOT NULL AND {missing}"
                f" GROUP BY s.{q(column)} ORDER BY count(*) DESC, s.{q(column)}"
            )
            total = distinct = 0
            missing_ids: list[str] = []
            for missing_id, n in cur:
                total += n
                distinct += 1
                if len(missing_ids) < sample:
                    missing_ids.append(missing_id)
            if total:
                found.append(
                    Anomaly(
                        "missing_reference",
                        resource.name,
                        column,
                        total,
                        targets=targets,
                        distinct=distinct,
                        sample_ids=tuple(missing_ids),
                    )
                )
    groups = conn.execute(
        "SELECT resource, reason, count(*) FROM _quarantine"
        " GROUP BY resource, reason ORDER BY resource, reason"
    ).fetchall()
    for resource_name, reason, n in groups:
        ids = conn.execute(
            "SELECT record_id FROM _quarantine WHERE resource = ? AND reason = ?"
            " AND record_id IS NOT NULL ORDER BY id LIMIT ?",
            [resource_name, reason, sample],
        )
        sample_ids = tuple(str(i) for (i,) in ids)
        found.append(Anomaly("quarantined", resource_name, reason, n, sample_ids=sample_ids))
    return found
