"""Opening and creating a staging file safely (DESIGN.md section 4).

* A new file is created with mode 0600 by `os.open` before SQLite ever touches it (it holds
  health records); existing files, and SQLite's `-wal`/`-shm`/`-journal` files, are tightened to
  0600 when opened for writing.
* One writer at a time: a writable open takes an exclusive advisory lock on `<file>.lock` and
  then probes SQLite's own write lock with `BEGIN IMMEDIATE` (which also catches a `sqlite3`
  shell holding a write transaction). Read-only opens (the review screen, while a download
  runs) take neither and never write.
* Nothing is written before the file is recognised: not SQLite, not a staging file, a newer
  schema, damage found by `PRAGMA quick_check` -> an error with advice, file untouched.
* WAL journal, `synchronous=NORMAL`: a crash loses at most the last transactions, never
  consistency, and readers never block the writer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType

from sqlite_utils import Database

from engine.resources import Resource
from staging import quarantine, review, runs
from staging.errors import (
    CorruptStaging,
    NewerSchema,
    NotAStagingFile,
    OlderSchema,
    StagingError,
    StagingMissing,
    StagingWriteError,
)
from staging.lock import WriterLock
from staging.runs import Outcome, RunCounters, RunInfo, RunMode, SavedCheckpoint
from staging.schema import (
    FORMAT,
    SCHEMA_VERSION,
    defer_indexes,
    migrate,
    missing_indexes,
    set_meta,
    stored_version,
    sync_catalogue,
)
from staging.sql import immediate, raise_translated, utc_now
from staging.writer import PageWriter, WriteResult

log = logging.getLogger(__name__)

FILE_MODE = 0o600
LOCK_SUFFIX = ".lock"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
CACHE_KIB = 32 * 1024
"""SQLite page cache for a writer: enough for the indexes' hot pages, bounded."""
PAGE_SIZE = 16384
"""For new files. Records are 1-3 KB of JSON: 16 KiB pages mean a quarter of the write calls
and WAL frames of 4 KiB pages (measured: ~1.5x the ingest rate), and ~20% less space."""
WAL_AUTOCHECKPOINT_PAGES = 4096
"""Checkpoint (copy the WAL into the file, and fsync) every 64 MiB of WAL rather than SQLite's
default 1000 pages: checkpoints and their fsyncs are most of a commit's cost."""
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def tool_version() -> str:
    try:
        return metadata.version("cliniko-switch")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# The open file.


class StagingDB:
    """An open staging file. Use one instance from one thread at a time; close it when done
    (or use it as a context manager). Open a second, read-only instance to browse a file
    while a download writes to it."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        readonly: bool,
        lock: WriterLock | None,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._db = Database(conn, execute_plugins=False, recursive_triggers=False)
        self._lock = lock

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        """The sqlite-utils view of the file, for reads."""
        return self._db

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    @property
    def schema_version(self) -> int:
        return stored_version(self._db)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> StagingDB:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _writable(self) -> None:
        if self.readonly:
            raise StagingWriteError(self.path, "opened read-only; open it for writing to change it")

    # -- meta ---------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT key, value FROM _meta")}

    def get_meta(self, key: str) -> str | None:
        found = self._conn.execute("SELECT value FROM _meta WHERE key = ?", [key]).fetchone()
        return None if found is None else str(found[0])

    def set_meta(self, key: str, value: str) -> None:
        self._writable()
        with immediate(self._conn, self.path):
            set_meta(self._db, key, value)

    def delete_meta(self, key: str) -> None:
        self._writable()
        with immediate(self._conn, self.path):
            self._conn.execute("DELETE FROM _meta WHERE key = ?", [key])

    # -- writing ------------------------------------------------------------------------------

    def writer(self, run_id: int) -> PageWriter:
        self._writable()
        return PageWriter(self._conn, self.path, run_id)

    def set_single(self, resource: Resource, obj: object, run_id: int) -> WriteResult:
        """Stage `/user` or `/settings` (see `PageWriter.set_single`)."""
        return self.writer(run_id).set_single(resource, obj)

    # -- runs and checkpoints -----------------------------------------------------------------

    def start_run(
        self,
        *,
        mode: RunMode,
        selection: Sequence[str],
        shard: str | None = None,
        api_base_host: str | None = None,
    ) -> int:
        """A new run, `running` until `finish_run`. `selection` is the parts/resources asked
        for; `shard` and `api_base_host` say where from (never the key)."""
        self._writable()
        run_id = runs.start_run(
            self._conn,
            self.path,
            mode=mode,
            selection=selection,
            shard=shard,
            api_base_host=api_base_host,
            tool_version=tool_version(),
        )
        with immediate(self._conn, self.path):
            if shard:
                set_meta(self._db, "shard", shard)
            deferred = defer_indexes(self._db)
        if deferred:
            log.info("indexes of %d empty table(s) deferred to the end of the run", len(deferred))
        return run_id

    def finish_run(
        self,
        run_id: int,
        outcome: Outcome,
        counters: RunCounters | None = None,
        *,
        error: str | None = None,
    ) -> None:
        self._writable()
        runs.finish_run(self._conn, self.path, run_id, outcome, counters, error=error)
        self.build_indexes()

    def build_indexes(self) -> list[str]:
        """Build any index `start_run` deferred (also done by every writable open)."""
        self._writable()
        if not missing_indexes(self._db):
            return []
        with immediate(self._conn, self.path):
            return sync_catalogue(self._db)

    def runs(self) -> list[RunInfo]:
        return runs.runs(self._conn)

    def last_complete_run(self) -> RunInfo | None:
        return runs.last_complete_run(self._conn)

    def incomplete_run(self) -> RunInfo | None:
        return runs.incomplete_run(self._conn)

    def get_checkpoints(self, scope: str) -> dict[tuple[str, str], SavedCheckpoint]:
        """The checkpoints of one scope, by (resource, variant)."""
        return runs.get_checkpoints(self._conn, scope)

    def checkpoints_under(self, prefix: str) -> dict[str, dict[tuple[str, str], SavedCheckpoint]]:
        """Checkpoints of every scope starting with `prefix` ("crawl:" ...), by scope."""
        return runs.checkpoints_under(self._conn, prefix)

    def clear_checkpoints(self, scope: str, *, prefix: bool = False) -> int:
        self._writable()
        return runs.clear_checkpoints(self._conn, self.path, scope, prefix=prefix)

    # -- review (read-only) -------------------------------------------------------------------

    def table_counts(self) -> dict[str, review.ResourceCount]:
        return review.table_counts(self._conn)

    def rows(
        self, resource: str, *, search: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[review.StagedRow]:
        return review.rows(self._conn, resource, search=search, limit=limit, offset=offset)

    def count_rows(self, resource: str, *, search: str | None = None) -> int:
        return review.count_rows(self._conn, resource, search=search)

    def row(self, resource: str, row_id: str | int) -> review.StagedRow | None:
        return review.row(self._conn, resource, row_id)

    def anomalies(self, *, sample: int = 5) -> list[review.Anomaly]:
        return review.anomalies(self._conn, sample=sample)

    def quarantine_rows(
        self, resource: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[quarantine.QuarantineRow]:
        return quarantine.rows(self._conn, resource, limit=limit, offset=offset)

    def staged_ids(self, resource: str, variant: str) -> set[str]:
        return review.staged_ids(self._conn, resource, variant)

    def iter_raw(self, resource: str) -> Iterator[dict[str, object]]:
        return review.iter_raw(self._conn, resource)

    def iter_records(self, resource: str) -> Iterator[review.StagedRow]:
        return review.iter_records(self._conn, resource)

    def ids_updated_since(self, resource: str, since: str | None) -> list[str]:
        return review.ids_updated_since(self._conn, resource, since)


# ---------------------------------------------------------------------------------------------
# Opening.


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


def open_staging(
    path: str | os.PathLike[str],
    *,
    create: bool,
    readonly: bool = False,
    busy_timeout_ms: int = 1000,
    check: bool = True,
) -> StagingDB:
    """Open a staging file.

    `create=True`: create it (mode 0600) if it does not exist, else open it (a download).
    `create=False`: it must exist (review, plan, load). `readonly=True`: no lock, no writes,
    safe while a download writes the same file. `check`: run `PRAGMA quick_check` first.

    Raises a `StagingError` subclass with advice for the operator; on any error the file is
    left as it was.
    """
    if readonly and create:
        raise ValueError("a read-only open cannot create the file")
    p = Path(path)
    if p.is_dir():
        raise NotAStagingFile(p, "is a folder; give the path of a staging file")
    created = False
    if not p.exists():
        if not create:
            raise StagingMissing(p, "no such file; check the path, or run a download first")
        created = _create_private(p)
    lock = None if readonly else WriterLock(lock_path(p))
    try:
        if lock is not None:
            lock.acquire(p)
        return _open(p, lock, create=create, busy_timeout_ms=busy_timeout_ms, check=check)
    except BaseException:
        if lock is not None:
            lock.release()
        if created:
            _remove_if_empty(p)
        raise


def _create_private(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False  # someone else just created it: open it as an existing file
    except OSError as exc:
        raise StagingWriteError(
            path,
            f"cannot create the file ({exc.strerror}); check the folder exists and is writable",
        ) from exc
    os.close(fd)
    return True


def _remove_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
            for suffix in SQLITE_SIDE_FILES:
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    except OSError:
        log.debug("could not remove the empty file %s", path)


def _open(
    path: Path, lock: WriterLock | None, *, create: bool, busy_timeout_ms: int, check: bool
) -> StagingDB:
    readonly = lock is None
    try:
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,  # transactions are always explicit
            check_same_thread=False,  # the engine writes from a worker thread
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise_translated(exc, path)
    try:
        version = _identify(conn, path)
        if version == 0 and not create:
            raise NotAStagingFile(path, "is an empty database, not a staging file")
        if check:
            _quick_check(conn, path)
        if version > SCHEMA_VERSION:
            raise NewerSchema(path, version, SCHEMA_VERSION)
        if readonly:
            if version < SCHEMA_VERSION:
                raise OlderSchema(path, version, SCHEMA_VERSION)
            conn.execute("PRAGMA query_only = ON")
            return StagingDB(path, conn, readonly=True, lock=None)
        _configure_writer(conn, path)
        staging = StagingDB(path, conn, readonly=False, lock=lock)
        _prepare_schema(staging, version)
        _secure_files(path)
        return staging
    except BaseException:
        conn.close()
        raise


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; 0 for an empty database. Refuses anything else."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return 0
        fmt = None
        if "_meta" in tables:
            found = conn.execute("SELECT value FROM _meta WHERE key = 'format'").fetchone()
            fmt = found[0] if found else None
    except sqlite3.Error as exc:
        raise_translated(exc, path)
    if fmt != FORMAT:
        raise NotAStagingFile(
            path,
            "is a SQLite database but not a cliniko-switch staging file; "
            "choose another path (it was not changed)",
        )
    version = conn.execute("SELECT value FROM _meta WHERE key = 'schema_version'").fetchone()
    return int(version[0]) if version and str(version[0]).isdigit() else 0


def _quick_check(conn: sqlite3.Connection, path: Path) -> None:
    try:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.Error as exc:
        raise_translated(exc, path)
    if problems != ["ok"]:
        raise CorruptStaging(
            path,
            f"SQLite's integrity check failed ({problems[0]}); keep the file for inspection "
            "and download into a new staging file",
        )


def _configure_writer(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # Only takes effect on a new, empty file (before the first table and before WAL).
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    except sqlite3.Error as exc:
        raise_translated(exc, path)
    if str(mode).lower() != "wal":
        log.warning("staging file is in %s journal mode, not WAL", mode)


def _prepare_schema(staging: StagingDB, version: int) -> None:
    """Create or upgrade the schema; this transaction is also the write-lock probe."""
    db, conn = staging.db, staging.conn
    with immediate(conn, staging.path):
        applied = migrate(db)
        if version == 0:
            set_meta(db, "format", FORMAT)
            set_meta(db, "created_at", utc_now())
            set_meta(db, "tool_version", tool_version())
        added = sync_catalogue(db)
        set_meta(db, "last_writer_version", tool_version())
        dead = runs.mark_dead_runs_interrupted(conn)
    if applied:
        log.info("staging schema: applied %s", ", ".join(applied))
    if added and version:
        log.info("staging schema: added %s", ", ".join(added))
    if dead:
        log.info("marked %d run(s) left running by a stopped process as interrupted", dead)


def _secure_files(path: Path) -> None:
    for p in (path, *(Path(f"{path}{s}") for s in SQLITE_SIDE_FILES)):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                os.chmod(p, FILE_MODE)
                log.warning("tightened %s from %o to 600 (it holds health records)", p.name, mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not make %s private: %s", p.name, exc.strerror)


__all__ = ["StagingDB", "StagingError", "lock_path", "open_staging", "tool_version"]
