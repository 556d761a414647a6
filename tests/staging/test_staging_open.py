"""Opening a staging file: every refusal leaves the file exactly as it was."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from staging_records import appointment, digest, patient, res

from staging import (
    CorruptStaging,
    NewerSchema,
    NotAStagingFile,
    StagingDB,
    StagingLocked,
    StagingMissing,
    StagingWriteError,
    lock_path,
    open_staging,
)


def _filled(path: Path, patients: int = 2000) -> None:
    with open_staging(path, create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["patients"])
        writer = staging.writer(run_id)
        for start in range(1, patients + 1, 100):
            page = [patient(i, notes="x" * 300) for i in range(start, start + 100)]
            writer.write_page(res("patients"), "active", page, ("crawl", "{}", False))
        staging.finish_run(run_id, "complete")


def test_a_missing_file_is_not_created_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "nope.staging"
    with pytest.raises(StagingMissing, match="no such file"):
        open_staging(path, create=False)
    assert not path.exists()
    assert not lock_path(path).exists()


def test_create_true_opens_an_existing_file(staging_path: Path) -> None:
    _filled(staging_path, 100)
    with open_staging(staging_path, create=True) as staging:
        assert staging.count_rows("patients") == 100


def test_a_text_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Dear diary, today I migrated a clinic.\n" * 50)
    before = digest(path)
    for create in (True, False):
        with pytest.raises(NotAStagingFile, match="not a SQLite database"):
            open_staging(path, create=create)
    with pytest.raises(NotAStagingFile):
        open_staging(path, create=False, readonly=True)
    assert digest(path) == before
    assert not lock_path(path).exists()


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
    conn.execute("INSERT INTO invoices VALUES (1, '50.0')")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(NotAStagingFile, match="not a cliniko-switch staging file"):
        open_staging(path, create=True)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_an_empty_file_is_only_initialised_when_creating(tmp_path: Path) -> None:
    path = tmp_path / "empty.staging"
    path.touch()
    with pytest.raises(NotAStagingFile, match="empty"):
        open_staging(path, create=False)
    assert path.stat().st_size == 0
    with open_staging(path, create=True) as staging:
        assert staging.schema_version == 1


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAStagingFile, match="folder"):
        open_staging(tmp_path, create=True)


def test_a_newer_schema_is_refused_before_anything_is_written(staging_path: Path) -> None:
    _filled(staging_path, 10)
    conn = sqlite3.connect(staging_path)
    conn.execute("UPDATE _meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = digest(staging_path)
    with pytest.raises(NewerSchema, match="upgrade cliniko-switch") as info:
        open_staging(staging_path, create=True)
    assert (info.value.found, info.value.supported) == (99, 1)
    with pytest.raises(NewerSchema):
        open_staging(staging_path, create=False, readonly=True)
    assert digest(staging_path) == before


# ---------------------------------------------------------------------------------------------
# One writer at a time


def test_a_second_writer_in_this_process_is_refused(staging: StagingDB) -> None:
    with pytest.raises(StagingLocked, match="open for writing"):
        open_staging(staging.path, create=True)
    # The first writer is unaffected.
    staging.writer(staging.start_run(mode="full", selection=[])).write_page(
        res("patients"), "active", [patient(1)]
    )


@pytest.fixture
def other_process_writer(staging_path: Path) -> Iterator[subprocess.Popen[str]]:
    open_staging(staging_path, create=True).close()
    code = textwrap.dedent(
        f"""
        import sys
        from staging import open_staging
        db = open_staging({str(staging_path)!r}, create=False)
        print("open", flush=True)
        sys.stdin.readline()
        db.close()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_writer_in_another_process_is_refused(
    staging_path: Path, other_process_writer: subprocess.Popen[str]
) -> None:
    with pytest.raises(StagingLocked, match=f"process {other_process_writer.pid}"):
        open_staging(staging_path, create=True)
    # Reading while it writes is fine.
    with open_staging(staging_path, create=False, readonly=True) as reader:
        assert reader.count_rows("patients") == 0


def test_the_lock_is_released_on_close(staging_path: Path) -> None:
    open_staging(staging_path, create=True).close()
    assert not lock_path(staging_path).exists()
    with open_staging(staging_path, create=False):
        pass


def test_a_foreign_write_transaction_is_detected_by_the_probe(staging_path: Path) -> None:
    """A `sqlite3` shell (no lock file) holding a write transaction."""
    open_staging(staging_path, create=True).close()
    other = sqlite3.connect(staging_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StagingLocked, match="another program is writing"):
            open_staging(staging_path, create=False, busy_timeout_ms=50)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not lock_path(staging_path).exists()


def test_a_page_blocked_by_a_foreign_writer_fails_whole(staging_path: Path) -> None:
    with open_staging(staging_path, create=True, busy_timeout_ms=50) as staging:
        writer = staging.writer(staging.start_run(mode="full", selection=[]))
        other = sqlite3.connect(staging_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StagingLocked):
                writer.write_page(res("patients"), "active", [patient(1)], ("crawl", "{}", False))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert staging.count_rows("patients") == 0
        assert staging.get_checkpoints("crawl") == {}
        writer.write_page(res("patients"), "active", [patient(1)], ("crawl", "{}", False))
        assert staging.count_rows("patients") == 1


def test_a_reader_sees_committed_pages_and_cannot_write(staging: StagingDB, run_id: int) -> None:
    staging.writer(run_id).write_page(res("patients"), "active", [patient(1), patient(2)])
    with open_staging(staging.path, create=False, readonly=True) as reader:
        assert reader.readonly
        assert reader.count_rows("patients") == 2
        with pytest.raises(StagingWriteError, match="read-only"):
            reader.writer(run_id)
        with pytest.raises(StagingWriteError, match="read-only"):
            reader.set_meta("x", "y")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("DELETE FROM patients")
        staging.writer(run_id).write_page(res("patients"), "active", [patient(3)])
        assert reader.count_rows("patients") == 3


def test_read_only_opens_cannot_create() -> None:
    with pytest.raises(ValueError, match="cannot create"):
        open_staging("x.staging", create=True, readonly=True)


# ---------------------------------------------------------------------------------------------
# Damage and disk trouble


def test_a_garbled_copy_is_reported_corrupt(staging_path: Path, tmp_path: Path) -> None:
    _filled(staging_path)
    damaged = tmp_path / "damaged.staging"
    shutil.copy(staging_path, damaged)
    data = bytearray(damaged.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40_000] = bytes(range(256)) * 156 + bytes(64)
    damaged.write_bytes(bytes(data))
    before = digest(damaged)
    with pytest.raises(CorruptStaging, match="download into a new staging file"):
        open_staging(damaged, create=False)
    assert digest(damaged) == before
    with open_staging(staging_path, create=False) as original:
        assert original.count_rows("patients") == 2000


def test_a_truncated_copy_is_reported_corrupt(staging_path: Path, tmp_path: Path) -> None:
    _filled(staging_path)
    damaged = tmp_path / "truncated.staging"
    shutil.copy(staging_path, damaged)
    with damaged.open("r+b") as f:
        f.truncate(damaged.stat().st_size // 2)
    with pytest.raises(CorruptStaging):
        open_staging(damaged, create=False, readonly=True)


def test_disk_full_rolls_the_page_back(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    writer.write_page(res("patients"), "active", [patient(1)], ("crawl", '{"page": 1}', False))
    pages = staging.conn.execute("PRAGMA page_count").fetchone()[0]
    staging.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now "full"
    big = [patient(i, notes="n" * 20_000) for i in range(2, 102)]
    with pytest.raises(StagingWriteError, match="disk is full"):
        writer.write_page(res("patients"), "active", big, ("crawl", '{"page": 2}', False))
    assert staging.staged_ids("patients", "active") == {"1"}
    assert staging.get_checkpoints("crawl")[("patients", "active")].state == '{"page": 1}'
    staging.conn.execute("PRAGMA max_page_count = 1073741823")  # space was freed
    writer.write_page(res("patients"), "active", big, ("crawl", '{"page": 2}', False))
    assert staging.count_rows("patients") == 101


def test_a_run_left_running_by_a_dead_process_becomes_interrupted(staging_path: Path) -> None:
    staging = open_staging(staging_path, create=True)
    run_id = staging.start_run(mode="full", selection=["appointment_history"])
    staging.writer(run_id).write_page(
        res("individual_appointments"), "active", [appointment(1)], ("crawl", "{}", False)
    )
    staging.close()  # killed before finish_run
    with open_staging(staging_path, create=False, readonly=True) as reader:
        running = reader.incomplete_run()
        assert running is not None
        assert running.outcome == "running"  # a reader does not judge
    with open_staging(staging_path, create=False) as reopened:
        interrupted = reopened.incomplete_run()
        assert interrupted is not None
        assert (interrupted.run_id, interrupted.outcome) == (run_id, "interrupted")
        assert reopened.get_checkpoints("crawl") == {
            ("individual_appointments", "active"): ("{}", False)
        }


def test_a_reader_does_not_upgrade_an_older_file(
    staging_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from staging import OlderSchema
    from staging import db as db_module

    _filled(staging_path, 10)
    monkeypatch.setattr(db_module, "SCHEMA_VERSION", 2)
    before = digest(staging_path)
    with pytest.raises(OlderSchema, match="open it once for writing"):
        open_staging(staging_path, create=False, readonly=True)
    assert digest(staging_path) == before
