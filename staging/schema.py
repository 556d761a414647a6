"""The staging file's tables, indexes, schema version and migrations (DESIGN.md section 4).

Two layers:

* Migrations (`MIGRATIONS`): numbered, ordered, each applied once inside the open's write
  transaction through sqlite-utils' `Migrations`, which records them in `_sqlite_migrations`;
  `_meta.schema_version` is the number of the last one applied. A file whose version is higher
  than ours is refused before anything is written (`NewerSchema`).
* The catalogue sync (`sync_catalogue`): one table per `engine.resources.RESOURCES` entry, with
  one `<ref>_id` column per ref. It only ever *adds* (tables, ref columns, indexes), so a
  resource or ref added to the catalogue later needs no migration; anything that changes or
  removes structure does.

Every resource table has the same shape::

    id            TEXT PRIMARY KEY   Cliniko's id as canonical decimal text (or the key_from key)
    <ref>_id      TEXT               one per ref, recovered from the record link's path
    created_at    TEXT
    updated_at    TEXT
    deleted_at    TEXT               lifecycle markers; "" and null are stored as NULL
    archived_at   TEXT
    cancelled_at  TEXT
    variants      TEXT NOT NULL      sorted, comma-joined lists the row was seen in
    state         TEXT (generated)   deleted > archived > cancelled > inactive > active
    run_id        INTEGER            the run that last wrote the row
    raw           TEXT NOT NULL      the record as Cliniko sent it (the fullest version seen)

`state` is a generated column so it can never disagree with the markers and variants it is
derived from (SQLite >= 3.31; `sqlite3`, sqlite-utils and Datasette all read it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from sqlite_utils import Database
from sqlite_utils.db import quote_identifier
from sqlite_utils.migrations import Migrations

from engine.resources import RESOURCES, Resource, Variant

FORMAT = "cliniko-switch staging"
"""`_meta.format`: what tells a staging file from any other SQLite file."""

MIGRATION_SET = "cliniko_switch_staging"

MARKERS: tuple[str, ...] = ("deleted_at", "archived_at", "cancelled_at")
VARIANTS: tuple[str, ...] = tuple(sorted(get_args(Variant)))
"""Every variant name, in the order `variants` lists them."""

RUNS = "_runs"
CHECKPOINTS = "_checkpoints"
QUARANTINE = "_quarantine"
META = "_meta"
INTERNAL_TABLES = (RUNS, CHECKPOINTS, QUARANTINE, META)

STATE_SQL = (
    "CASE"
    " WHEN NULLIF(deleted_at, '') IS NOT NULL THEN 'deleted'"
    " WHEN NULLIF(archived_at, '') IS NOT NULL THEN 'archived'"
    " WHEN NULLIF(cancelled_at, '') IS NOT NULL THEN 'cancelled'"
    " WHEN variants = 'inactive' THEN 'inactive'"
    " ELSE 'active' END"
)


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return quote_identifier(name)


def ref_column(ref: str) -> str:
    return f"{ref}_id"


def data_columns(resource: Resource) -> list[str]:
    """The columns the writer sets, in table order (`state` is generated, so not here)."""
    return [
        "id",
        *(ref_column(r) for r in resource.refs),
        "created_at",
        "updated_at",
        *MARKERS,
        "variants",
        "run_id",
        "raw",
    ]


def indexed_columns(resource: Resource) -> list[str]:
    return [*(ref_column(r) for r in resource.refs), "updated_at"]


def _index_name(table: str, column: str) -> str:
    return f"idx_{table}_{column}"


# ---------------------------------------------------------------------------------------------
# Catalogue sync: resource tables follow engine.resources.


def _create_resource_table(db: Database, resource: Resource) -> None:
    refs = "".join(f"    {q(ref_column(r))} TEXT,\n" for r in resource.refs)
    markers = "".join(f"    {q(m)} TEXT,\n" for m in MARKERS)
    # Written by hand rather than with Table.create(): sqlite-utils cannot declare a generated
    # column, and `state` must be one.
    db.execute(
        f"CREATE TABLE {q(resource.name)} (\n"
        "    id TEXT PRIMARY KEY NOT NULL,\n"
        f"{refs}"
        "    created_at TEXT,\n"
        "    updated_at TEXT,\n"
        f"{markers}"
        "    variants TEXT NOT NULL,\n"
        f"    state TEXT GENERATED ALWAYS AS ({STATE_SQL}) VIRTUAL,\n"
        "    run_id INTEGER,\n"
        "    raw TEXT NOT NULL\n"
        ")"
    )


def sync_catalogue(db: Database, resources: Sequence[Resource] = RESOURCES) -> list[str]:
    """Create missing resource tables, ref columns and indexes. Returns what was added."""
    added: list[str] = []
    existing = set(db.table_names())
    indexes = {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    }
    for resource in resources:
        table = db.table(resource.name)
        if resource.name not in existing:
            _create_resource_table(db, resource)
            added.append(resource.name)
        else:
            have = {c.name for c in table.columns}
            for ref in resource.refs:
                if ref_column(ref) not in have:
                    table.add_column(ref_column(ref), str)
                    added.append(f"{resource.name}.{ref_column(ref)}")
        for column in indexed_columns(resource):
            name = _index_name(resource.name, column)
            if name not in indexes:
                table.create_index([column], index_name=name)
                added.append(name)
    return added


def defer_indexes(db: Database, resources: Sequence[Resource] = RESOURCES) -> list[str]:
    """Drop the secondary indexes of empty resource tables; `sync_catalogue` rebuilds them.

    Filling an empty table and indexing it afterwards is about twice as fast as keeping the
    indexes up to date row by row: random keys (patient ids, updated_at) dirty a whole index
    page per row, tripling what each commit writes (measured 5 KB of WAL per 1.4 KB record).
    Returns the tables whose indexes were dropped.
    """
    deferred: list[str] = []
    existing = set(db.table_names())
    for resource in resources:
        if resource.name not in existing:
            continue
        empty = db.execute(f"SELECT 1 FROM {q(resource.name)} LIMIT 1").fetchone() is None  # noqa: S608
        if not empty:
            continue
        for column in indexed_columns(resource):
            db.execute(f"DROP INDEX IF EXISTS {q(_index_name(resource.name, column))}")
        deferred.append(resource.name)
    return deferred


def missing_indexes(db: Database, resources: Sequence[Resource] = RESOURCES) -> list[str]:
    have = {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    }
    return [
        _index_name(r.name, c)
        for r in resources
        for c in indexed_columns(r)
        if _index_name(r.name, c) not in have
    ]


# ---------------------------------------------------------------------------------------------
# Migrations.


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Database], None]


def _m0001_internal_tables(db: Database) -> None:
    db.table(META).create({"key": str, "value": str}, pk="key", not_null=["key"])
    db.table(RUNS).create(
        {
            "run_id": int,
            "started_at": str,
            "finished_at": str,
            "shard": str,
            "api_base_host": str,
            "selection": str,
            "mode": str,
            "outcome": str,
            "requests": int,
            "retries": int,
            "rate_limited": int,
            "records": int,
            "quarantined": int,
            "error": str,
            "tool_version": str,
        },
        pk="run_id",
        not_null=["started_at", "mode", "outcome"],
        defaults={"requests": 0, "retries": 0, "rate_limited": 0, "records": 0, "quarantined": 0},
    )
    db.table(CHECKPOINTS).create(
        {
            "resource": str,
            "variant": str,
            "scope": str,
            "state": str,
            "done": int,
            "updated_at": str,
            "run_id": int,
        },
        pk=("resource", "variant", "scope"),
        not_null=["resource", "variant", "scope", "state", "done"],
    )
    quarantine = db.table(QUARANTINE).create(
        {
            "id": int,
            "resource": str,
            "variant": str,
            "record_id": str,
            "reason": str,
            "raw": str,
            "digest": str,
            "run_id": int,
            "at": str,
        },
        pk="id",
        not_null=["resource", "variant", "reason", "raw", "digest"],
    )
    # The same malformed record fetched again (a resumed page) is one quarantine row, not two.
    quarantine.create_index(["resource", "variant", "digest"], unique=True)
    sync_catalogue(db)


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "0001_initial", _m0001_internal_tables),)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _check_registry(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")


def stored_version(db: Database) -> int:
    """The schema version recorded in the file (0: not initialised)."""
    if META not in db.table_names():
        return 0
    row = db.execute("SELECT value FROM _meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 0


def set_meta(db: Database, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO _meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply pending migrations in order; returns the names applied.

    The caller holds the write transaction, so a failing migration leaves the file exactly as
    it was (sqlite-utils runs each one in a savepoint, and the caller rolls back the rest).
    """
    _check_registry(migrations)
    registry = Migrations(MIGRATION_SET)
    applied: list[str] = []

    def register(m: Migration) -> None:
        def step(database: Database) -> None:
            m.apply(database)
            set_meta(database, "schema_version", str(m.version))
            applied.append(m.name)

        step.__name__ = m.name
        registry(name=m.name)(step)

    for m in migrations:
        register(m)
    registry.apply(db)
    return applied
