"""`--target` values: which clinic store to open.

Accepted:
  sqlite:///relative/path.db     relative to the current folder (SQLAlchemy's convention)
  sqlite:////absolute/path.db    four slashes for an absolute path
  clinic.db, ./x/clinic.db, /abs/clinic.db, ~/clinic.db    a plain path: a SQLite file
  postgresql://...               production clinics; the backend comes with the `postgres`
                                 extra and is not in this version yet (`BackendUnavailable`)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from target.base import BackendUnavailable, BadTargetURL, ClinicBackend
from target.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteClinicStore

ACCEPTED_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file path such as "
    "./clinic.db, or postgresql://user@host/database"
)
DEFAULT_TARGET = "sqlite:///clinic.db"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCHEME_NO_SLASHES_RE = re.compile(r"^(sqlite|postgres(?:ql)?(?:\+[a-z0-9]+)?):", re.IGNORECASE)
_PASSWORD_RE = re.compile(r"(//[^/@:]*:)[^/@]*@")


@dataclass(frozen=True, slots=True)
class TargetLocation:
    backend: Literal["sqlite", "postgresql"]
    path: Path | None
    """The SQLite file (None for PostgreSQL)."""
    display: str
    """The URL as it may be shown: any password replaced by ***."""


def redact(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and logs."""
    return _PASSWORD_RE.sub(r"\1***@", url)


def parse_target_url(url: str) -> TargetLocation:
    text = url.strip()
    if not text:
        raise BadTargetURL(f"No clinic store given. Accepted forms: {ACCEPTED_FORMS}.")
    match = _SCHEME_RE.match(text)
    if match is None:
        if _SCHEME_NO_SLASHES_RE.match(text):
            raise BadTargetURL(
                f"Cannot read the target {redact(text)!r}. Accepted forms: {ACCEPTED_FORMS}."
            )
        return TargetLocation("sqlite", Path(text).expanduser(), text)
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        rest = text[len(match.group(0)) :]
        if not rest.startswith("/"):
            raise BadTargetURL(
                f"{text!r}: a SQLite target has three slashes before a relative path "
                "(sqlite:///clinic.db) and four before an absolute one "
                "(sqlite:////srv/clinic.db)."
            )
        raw_path = rest[1:]
        if "?" in raw_path or "#" in raw_path:
            raise BadTargetURL(f"{text!r}: SQLite targets take no options (nothing after '?').")
        if not raw_path or raw_path == ":memory:":
            raise BadTargetURL(
                f"{text!r} names no file: the clinic store is a file. "
                f"Accepted forms: {ACCEPTED_FORMS}."
            )
        path = Path(unquote(raw_path)).expanduser()
        return TargetLocation("sqlite", path, f"sqlite:///{raw_path}")
    if scheme in ("postgresql", "postgres") or scheme.startswith(("postgresql+", "postgres+")):
        return TargetLocation("postgresql", None, redact(text))
    raise BadTargetURL(
        f"Unsupported target {redact(text)!r} ({scheme}). Accepted forms: {ACCEPTED_FORMS}."
    )


def open_target(
    url: str,
    *,
    readonly: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> ClinicBackend:
    """Open the clinic store at `url`, created and migrated to the current schema if needed.

    `readonly=True` changes nothing anywhere (for a plan): a missing SQLite file is an empty
    clinic in memory. Raises `BadTargetURL`, `BackendUnavailable` or another `TargetError`.
    """
    location = parse_target_url(url)
    if location.backend == "postgresql":
        raise BackendUnavailable(
            "The PostgreSQL clinic store backend comes with the `postgres` extra "
            "(cliniko-switch[postgres], psycopg 3) and is not in this version of "
            "cliniko-switch yet. Use a local SQLite file for now, e.g. sqlite:///clinic.db."
        )
    assert location.path is not None
    return SQLiteClinicStore.open(location.path, readonly=readonly, busy_timeout=busy_timeout)
