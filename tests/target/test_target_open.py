"""Opening and creating the SQLite clinic store: files, modes, migrations, refusals, locks."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import target.sqlite as sqlite_backend
from target import (
    ClinicLocked,
    NewerClinicSchema,
    NotAClinicStore,
    OutdatedClinicSchema,
    SQLiteClinicStore,
    TargetError,
    TargetOpenError,
    open_target,
)
from target.schema import APPLICATION_ID, CURRENT_VERSION, MIGRATIONS, TABLES, VIEWS, Migration

BACKENDS = ("sqlite",)  # files, modes and locks of SQLite; PostgreSQL: test_target_postgres.py


@contextmanager
def _raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection that commits and closes (sqlite3's own `with` only commits)."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _names(path: Path, kind: str) -> set[str]:
    with _raw(path) as conn:
        return {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))
        }


def test_fresh_store_has_every_table_at_the_current_version(db_path: Path) -> None:
    with SQLiteClinicStore.open(db_path) as store:
        assert store.schema_version() == CURRENT_VERSION
        assert store.table_counts() == {
            name: (1 if name == "clinic_settings" else 0) for name in TABLES
        }
    assert set(TABLES) <= _names(db_path, "table")
    assert set(VIEWS) <= _names(db_path, "view")
    with _raw(db_path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        history = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [v for (v,) in history] == [m.version for m in MIGRATIONS]


def test_files_are_private_0600_even_with_a_loose_umask(db_path: Path) -> None:
    old = os.umask(0o000)
    try:
        store = SQLiteClinicStore.open(db_path)
        store.insert_rows("locations", [{"name": "A", "time_zone": "UTC"}])
        siblings = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
        assert {p.name for p in siblings} >= {"clinic.db", "clinic.db-wal", "clinic.db-shm"}
        for p in siblings:
            assert _mode(p) == 0o600, p.name
        store.close()
    finally:
        os.umask(old)
    assert _mode(db_path) == 0o600


def test_foreign_keys_are_enforced_on_every_connection(store: SQLiteClinicStore) -> None:
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopening_is_a_no_op(db_path: Path) -> None:
    SQLiteClinicStore.open(db_path).close()
    before = _digest(db_path)
    with SQLiteClinicStore.open(db_path) as store:
        assert store.migrate() == []
        assert store.schema_version() == CURRENT_VERSION
    assert _digest(db_path) == before
    with _raw(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            MIGRATIONS
        )


def _with_extra_migrations(monkeypatch: pytest.MonkeyPatch, *extra: Migration) -> None:
    migrations = [*MIGRATIONS, *extra]
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", migrations)
    monkeypatch.setattr(sqlite_backend, "CURRENT_VERSION", migrations[-1].version)


def test_pending_migrations_apply_in_order_then_reopen_is_a_no_op(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteClinicStore.open(db_path).close()
    v = CURRENT_VERSION
    _with_extra_migrations(
        monkeypatch,
        # v+2 only works after v+1: order matters.
        Migration(v + 1, "add a column", ("ALTER TABLE patients ADD COLUMN pronouns TEXT",)),
        Migration(v + 2, "use it", ("CREATE INDEX ix_patients_pronouns ON patients (pronouns)",)),
    )
    with SQLiteClinicStore.open(db_path) as store:
        assert store.schema_version() == v + 2
        assert store.migrate() == []
    with SQLiteClinicStore.open(db_path) as store:
        assert store.migrate() == []
    with _raw(db_path) as conn:
        rows = conn.execute("SELECT version, description FROM schema_migrations").fetchall()
    assert rows[-2:] == [(v + 1, "add a column"), (v + 2, "use it")]


def test_a_failing_migration_leaves_the_store_as_it_was(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteClinicStore.open(db_path).close()
    v = CURRENT_VERSION
    _with_extra_migrations(
        monkeypatch,
        Migration(v + 1, "fine", ("ALTER TABLE patients ADD COLUMN pronouns TEXT",)),
        Migration(v + 2, "broken", ("ALTER TABLE no_such_table ADD COLUMN x TEXT",)),
    )
    with pytest.raises(sqlite3.OperationalError):
        SQLiteClinicStore.open(db_path)
    with _raw(db_path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(patients)")]
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    assert "pronouns" not in columns
    assert version == v


def test_a_newer_store_is_refused_and_left_untouched(db_path: Path) -> None:
    SQLiteClinicStore.open(db_path).close()
    with _raw(db_path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
            (CURRENT_VERSION + 5,),
        )
    before = _digest(db_path)
    with pytest.raises(NewerClinicSchema) as info:
        open_target(str(db_path))
    message = str(info.value)
    assert f"version {CURRENT_VERSION + 5}" in message
    assert f"up to {CURRENT_VERSION}" in message
    assert "Update cliniko-switch" in message
    assert info.value.found == CURRENT_VERSION + 5
    assert _digest(db_path) == before
    assert not Path(f"{db_path}-wal").exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAClinicStore, match="is a directory"):
        open_target(f"sqlite:///{tmp_path}")


def test_a_file_that_is_not_sqlite_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("dear diary\n" * 100)
    before = _digest(path)
    with pytest.raises(NotAClinicStore, match="not an SQLite database"):
        open_target(str(path))
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_another_sqlite_file_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "download.staging"
    with _raw(path) as conn:
        conn.execute("CREATE TABLE _runs (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE patients (id TEXT PRIMARY KEY, raw TEXT)")
    before = _digest(path)
    with pytest.raises(NotAClinicStore, match="staging file") as info:
        open_target(str(path))
    assert "_runs" in str(info.value)
    assert _digest(path) == before


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TargetOpenError, match="does not exist"):
        open_target(f"sqlite:///{tmp_path}/nowhere/clinic.db")
    assert not (tmp_path / "nowhere").exists()


def test_an_empty_file_becomes_a_private_clinic_store(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    path.touch(mode=0o644)
    with open_target(str(path)) as store:
        assert store.schema_version() == CURRENT_VERSION
    assert _mode(path) == 0o600


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE clinic_settings SET clinic_time_zone = 'UTC'")
    return other


def test_a_write_lock_held_elsewhere_is_clinic_locked_after_the_busy_timeout(
    db_path: Path, rows: Any
) -> None:
    store = SQLiteClinicStore.open(db_path, busy_timeout=0.3)
    other = _hold_write_lock(db_path)
    try:
        started = time.monotonic()
        with pytest.raises(ClinicLocked) as info:
            store.insert_rows("patients", [rows.patient()])
        waited = time.monotonic() - started
        assert 0.25 <= waited < 3
        assert str(db_path) in str(info.value)
        assert "locked by another program" in str(info.value)
        with pytest.raises(ClinicLocked), store.transaction():
            pass  # pragma: no cover - BEGIN IMMEDIATE fails first
        # Reads still work (WAL), and nothing is left half-open.
        assert store.table_counts()["patients"] == 0
        assert not store._in_tx
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.insert_rows("patients", [rows.patient()]) == [1]
    store.close()


def test_opening_while_locked_exclusively_is_clinic_locked(db_path: Path) -> None:
    SQLiteClinicStore.open(db_path).close()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ClinicLocked):
            SQLiteClinicStore.open(db_path, busy_timeout=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_readonly_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    with open_target(str(path), readonly=True) as store:
        assert store.schema_version() == CURRENT_VERSION
        assert store.table_counts()["patients"] == 0
        assert store.balances() == {}
        assert store.settings()["messaging_enabled"] is False
        with pytest.raises(TargetError, match="read-only"):
            store.insert_rows("locations", [{"name": "A", "time_zone": "UTC"}])
    assert list(tmp_path.iterdir()) == []


def test_readonly_on_an_existing_store_writes_nothing(db_path: Path, rows: Any) -> None:
    with SQLiteClinicStore.open(db_path) as store:
        store.insert_rows("patients", [rows.patient()])
    before = _digest(db_path)
    with open_target(str(db_path), readonly=True) as store:
        assert store.table_counts()["patients"] == 1
        with pytest.raises(TargetError, match="read-only"):
            store.update_rows("patients", [(1, {"first_name": "X"})])
    assert _digest(db_path) == before


def test_readonly_on_an_outdated_store_says_a_load_upgrades_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteClinicStore.open(db_path).close()
    v = CURRENT_VERSION
    _with_extra_migrations(monkeypatch, Migration(v + 1, "x", ("CREATE TABLE x (id INTEGER)",)))
    with pytest.raises(OutdatedClinicSchema, match="a load upgrades it"):
        SQLiteClinicStore.open(db_path, readonly=True)
