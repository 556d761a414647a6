"""The writer's lock: one process writes a staging file at a time.

An exclusive `flock` on `<staging file>.lock`, held while the file is open for writing. It is
separate from SQLite's own locks on purpose: POSIX record locks (SQLite's) are dropped when a
process closes *any* descriptor of the file, so nothing here ever opens the database file.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from staging.errors import StagingLocked, StagingWriteError

log = logging.getLogger(__name__)

FILE_MODE = 0o600


class WriterLock:
    """An exclusive `flock` on `<staging file>.lock`, held while the file is open for writing.

    The lock file is removed on release; an acquirer checks that the file it locked is still
    the one at the path, so a writer that is just releasing cannot let two others in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def acquire(self, staging: Path) -> None:
        for _ in range(10):
            try:
                fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
                )
            except OSError as exc:
                raise StagingWriteError(
                    staging,
                    f"cannot create the lock file {self.path.name} ({exc.strerror}); "
                    "check that the folder is writable",
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (process {holder})" if holder else ""
                raise StagingLocked(
                    staging,
                    f"another cliniko-switch{who} has this staging file open for writing; "
                    "wait for its download to finish or stop it, then try again",
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise StagingLocked(staging, "could not take the writer's lock; try again")

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            log.debug("could not remove %s", self.path)
        os.close(self._fd)
        self._fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
