"""What can go wrong with a staging file, each with a message the operator can act on.

Every error here is raised *instead of* touching the file: opening never rewrites, truncates or
"repairs" a file it does not recognise, so no error path loses data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StagingError(Exception):
    """Base class: a staging file could not be opened, read or written."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


class StagingMissing(StagingError):
    """The file does not exist and was not to be created."""


class NotAStagingFile(StagingError):
    """The path is not SQLite, or is SQLite but not a cliniko-switch staging file."""


class NewerSchema(StagingError):
    """The file was written by a newer cliniko-switch than this one."""

    def __init__(self, path: Path | str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"staging schema version {found} is newer than this cliniko-switch understands "
            f"(up to {supported}); upgrade cliniko-switch to open it. The file was not changed.",
        )


class OlderSchema(StagingError):
    """A read-only open found a file that needs a migration first."""

    def __init__(self, path: Path | str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"staging schema version {found} is older than this cliniko-switch's ({supported}) "
            "and a read-only open cannot upgrade it; open it once for writing "
            "(`cliniko-switch download --staging FILE`) to upgrade it in place.",
        )


class StagingLocked(StagingError):
    """Another process (or connection) is writing to the file."""


class StagingWriteError(StagingError):
    """The disk is full, the file or its folder is read-only, or an I/O error occurred."""


class CorruptStaging(StagingError):
    """SQLite reports the file as damaged."""


_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_NOT_DB = {"SQLITE_NOTADB"}
_CORRUPT = {"SQLITE_CORRUPT"}


def _base_code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None) or ""
    # Extended codes read like SQLITE_IOERR_WRITE, SQLITE_BUSY_SNAPSHOT, SQLITE_CORRUPT_VTAB.
    return "_".join(name.split("_")[:2])


def translate(exc: sqlite3.Error, path: Path | str) -> StagingError:
    """Map a sqlite3 exception to the staging error the operator can act on."""
    code = _base_code(exc)
    if code in _BUSY:
        return StagingLocked(
            path,
            "another program is writing to this staging file (is a download already "
            "running?); wait for it to finish or stop it, then try again",
        )
    if code in _NOT_DB:
        return NotAStagingFile(
            path, "not a SQLite database (or its header is damaged); choose another file"
        )
    if code in _CORRUPT:
        return CorruptStaging(
            path,
            "SQLite reports the file as damaged; keep it for inspection and download into "
            "a new staging file",
        )
    if code == "SQLITE_FULL":
        return StagingWriteError(path, "the disk is full; free some space and run again")
    if code == "SQLITE_READONLY":
        return StagingWriteError(
            path, "the file or its folder is read-only; check permissions, or choose another path"
        )
    if code == "SQLITE_CANTOPEN":
        return StagingWriteError(
            path, "cannot open the file; check that its folder exists and is writable"
        )
    if code == "SQLITE_IOERR":
        return StagingWriteError(
            path, f"an I/O error occurred ({exc}); check the disk, then run again"
        )
    return StagingWriteError(path, f"SQLite error: {exc}")
