"""The staging file's shape: one table per catalogue resource, internal tables, privacy, WAL,
migrations, and the package's isolation from the UI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database
from staging_records import patient, res

from engine.resources import RESOURCES, Resource
from staging import SCHEMA_VERSION, StagingDB, lock_path, open_staging
from staging.schema import (
    MIGRATIONS,
    Migration,
    data_columns,
    indexed_columns,
    migrate,
    stored_version,
    sync_catalogue,
)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    # table_xinfo, not table_info: it also lists the generated `state` column.
    return [r[1] for r in conn.execute(f'PRAGMA table_xinfo("{table}")')]


def _indexes(conn: sqlite3.Connection, table: str) -> dict[str, list[str]]:
    out = {}
    for r in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
        out[r[1]] = [c[2] for c in conn.execute(f'PRAGMA index_info("{r[1]}")')]
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_catalogue_resource_has_its_table(staging: StagingDB) -> None:
    conn = staging.conn
    for resource in RESOURCES:
        columns = _columns(conn, resource.name)
        assert columns[0] == "id"
        for ref in resource.refs:
            assert f"{ref}_id" in columns
        assert set(columns) == {*data_columns(resource), "state"}
        pk = [r[1] for r in conn.execute(f'PRAGMA table_info("{resource.name}")') if r[5]]
        assert pk == ["id"]
        indexed = {tuple(cols) for cols in _indexes(conn, resource.name).values()}
        for column in indexed_columns(resource):
            assert (column,) in indexed, f"{resource.name}.{column} is not indexed"


def test_internal_tables_and_meta(staging: StagingDB) -> None:
    conn = staging.conn
    assert {"_runs", "_checkpoints", "_quarantine", "_meta"} <= set(staging.db.table_names())
    assert [r[1] for r in conn.execute("PRAGMA table_info(_checkpoints)") if r[5]] == [
        "resource",
        "variant",
        "scope",
    ]
    for column in ("run_id", "started_at", "finished_at", "shard", "api_base_host", "selection"):
        assert column in _columns(conn, "_runs")
    for column in ("mode", "outcome", "requests", "retries", "rate_limited", "records", "error"):
        assert column in _columns(conn, "_runs")
    for column in ("resource", "variant", "record_id", "reason", "raw", "run_id", "at"):
        assert column in _columns(conn, "_quarantine")
    meta = staging.meta()
    assert meta["format"] == "cliniko-switch staging"
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "1"
    assert meta["tool_version"]
    assert meta["created_at"].endswith("Z")
    # Nothing in the file can hold a key: no column is named for one.
    for table in staging.db.table_names():
        assert not any("key" in c and c != "key" for c in _columns(conn, table)), table


def test_new_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "private.staging"
    old = os.umask(0)
    try:
        with open_staging(path, create=True) as staging:
            writer = staging.writer(staging.start_run(mode="full", selection=[]))
            writer.write_page(res("patients"), "active", [patient(1)])
            assert _mode(path) == 0o600
            for suffix in ("-wal", "-shm"):
                side = Path(f"{path}{suffix}")
                assert side.exists(), suffix
                assert _mode(side) == 0o600, suffix
            assert _mode(lock_path(path)) == 0o600
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_an_existing_world_readable_staging_file_is_tightened(staging_path: Path) -> None:
    open_staging(staging_path, create=True).close()
    os.chmod(staging_path, 0o644)
    with open_staging(staging_path, create=False):
        assert _mode(staging_path) == 0o600


def test_wal_and_synchronous_normal(staging: StagingDB) -> None:
    assert staging.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert staging.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_readable_with_plain_sqlite(staging_path: Path) -> None:
    with open_staging(staging_path, create=True) as staging:
        writer = staging.writer(staging.start_run(mode="full", selection=[]))
        writer.write_page(res("patients"), "active", [patient("7")])
    conn = sqlite3.connect(staging_path)
    assert conn.execute("SELECT id, state, variants FROM patients").fetchall() == [
        ("7", "active", "active")
    ]
    conn.close()
    cli = shutil.which("sqlite3")
    if cli:
        out = subprocess.run(
            [cli, str(staging_path), "SELECT id || ' ' || state FROM patients"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "7 active"


# ---------------------------------------------------------------------------------------------
# Migrations


def _v1_file(path: Path) -> None:
    with open_staging(path, create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["patients"])
        staging.writer(run_id).write_page(res("patients"), "active", [patient(1)])
        staging.finish_run(run_id, "complete")


def _add_run_note(db: Database) -> None:
    db.execute("ALTER TABLE _runs ADD COLUMN note TEXT")
    db.execute("UPDATE _runs SET note = 'migrated'")


def test_a_registered_migration_is_applied_once_in_order(staging_path: Path) -> None:
    _v1_file(staging_path)
    registry = (*MIGRATIONS, Migration(2, "0002_run_note", _add_run_note))
    conn = sqlite3.connect(staging_path, isolation_level=None)
    db = Database(conn, execute_plugins=False)
    assert stored_version(db) == 1
    conn.execute("BEGIN IMMEDIATE")
    assert migrate(db, registry) == ["0002_run_note"]
    conn.execute("COMMIT")
    assert stored_version(db) == 2
    assert conn.execute("SELECT note FROM _runs").fetchall() == [("migrated",)]
    assert conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 1
    # Applying again is a no-op.
    assert migrate(db, registry) == []
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == ["0001_initial", "0002_run_note"]
    conn.close()


def test_a_failing_migration_changes_nothing(staging_path: Path) -> None:
    _v1_file(staging_path)

    def broken(db: Database) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration bug")

    registry = (*MIGRATIONS, Migration(2, "0002_broken", broken))
    conn = sqlite3.connect(staging_path, isolation_level=None)
    db = Database(conn, execute_plugins=False)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(RuntimeError):
        migrate(db, registry)
    conn.execute("ROLLBACK")
    assert stored_version(db) == 1
    assert "half_done" not in db.table_names()
    conn.close()
    with open_staging(staging_path, create=False) as staging:
        assert staging.schema_version == 1


def test_migration_versions_must_be_consecutive() -> None:
    db = Database(memory=True)
    with pytest.raises(ValueError, match=r"1\.\.n"):
        migrate(db, (Migration(2, "two", lambda d: None),))


def test_catalogue_additions_need_no_migration(staging: StagingDB) -> None:
    """A ref (or a resource) added to the catalogue later is added on the next open."""
    grown = Resource("patients", "/patients", "patients", refs=("concession_type", "family"))
    added = sync_catalogue(staging.db, [grown])
    assert added == ["patients.family_id", "idx_patients_family_id"]
    assert "family_id" in _columns(staging.conn, "patients")
    assert sync_catalogue(staging.db, [grown]) == []


def test_deferred_indexes_are_built_when_the_run_finishes(staging: StagingDB) -> None:
    run_id = staging.start_run(mode="full", selection=["patients"])
    # Empty tables are filled unindexed (it is twice as fast) ...
    assert "idx_patients_updated_at" not in _indexes(staging.conn, "patients")
    staging.writer(run_id).write_page(res("patients"), "active", [patient(1)])
    staging.finish_run(run_id, "complete")
    # ... and indexed when the run ends.
    assert "idx_patients_updated_at" in _indexes(staging.conn, "patients")


def test_deferred_indexes_are_built_on_the_next_open_after_a_crash(staging_path: Path) -> None:
    staging = open_staging(staging_path, create=True)
    run_id = staging.start_run(mode="full", selection=["patients"])
    staging.writer(run_id).write_page(res("patients"), "active", [patient(1)])
    staging.close()  # no finish_run: the process "died"
    with open_staging(staging_path, create=False) as reopened:
        indexes = _indexes(reopened.conn, "patients")
        assert "idx_patients_updated_at" in indexes
        assert "idx_patients_concession_type_id" in indexes


def test_staging_imports_no_ui_and_only_the_catalogue_from_the_engine() -> None:
    code = (
        "import sys, staging, staging.db, staging.review, staging.writer;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')];"
        "eng = sorted(m for m in sys.modules if m.split('.')[0] == 'engine');"
        "print(bad, eng)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ['engine', 'engine.resources']"
