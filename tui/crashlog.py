"""A crash report that is safe to send around: where it broke, never what it was holding.

Textual's own crash screen prints local variables, and an exception's message can quote a
record (a validation error echoes its input). So the report keeps only the exception's type
and the stack's file, line and function names, plus the tool and library versions.
"""

from __future__ import annotations

import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

SAFE_MESSAGE_TYPES = ("OSError", "PermissionError", "FileNotFoundError", "TimeoutError")


def crash_report(error: BaseException) -> str:
    """The report's text: exception types and frames, no values."""
    lines = [
        f"cliniko-switch crash report, {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"python {platform.python_version()} on {sys.platform}",
        _versions(),
        "",
    ]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines.append(f"{type(current).__module__}.{type(current).__qualname__}")
        for frame in traceback.extract_tb(current.__traceback__):
            lines.append(f"  {_short(frame.filename)}:{frame.lineno} in {frame.name}")
        current = current.__cause__ or current.__context__
        if current is not None:
            lines.append("caused by / while handling:")
    lines.append("")
    lines.append("Values and messages are left out on purpose: they can hold patient data.")
    return "\n".join(lines) + "\n"


def write_crash_log(error: BaseException, path: Path) -> Path | None:
    """Write the report to `path` (mode 0600); None if it could not be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(crash_report(error))
    except OSError:
        return None
    return path


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("tui", "engine", "staging", "target", "sandbox", "textual", "site-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return Path(filename).name


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("cliniko-switch", "textual", "httpx", "anyio", "sqlite-utils"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)
