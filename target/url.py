"""`--target` values: which clinic store to open.

Accepted:
  sqlite:///relative/path.db     relative to the current folder (SQLAlchemy's convention)
  sqlite:////absolute/path.db    four slashes for an absolute path
  clinic.db, ./x/clinic.db, /abs/clinic.db, ~/clinic.db    a plain path: a SQLite file
  postgresql://[user[:password]@][host][:port]/database[?schema=name&sslmode=...&...]
                                 a clinic in a PostgreSQL database (production clinics): one
                                 clinic per schema, `schema` (default `public`); any other
                                 libpq parameter passes through (sslmode, sslrootcert,
                                 connect_timeout, host=/socket/dir...). Also postgres:// and
                                 postgresql+psycopg://. Needs the `postgres` extra (psycopg 3).
                                 The password is best left to PGPASSWORD or ~/.pgpass; one in
                                 the URL is never shown (`redact`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from target.base import BackendUnavailable, BadTargetURL, ClinicBackend
from target.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteClinicStore

ACCEPTED_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file path such as "
    "./clinic.db, or postgresql://user@host/database?schema=clinic"
)
DEFAULT_TARGET = "sqlite:///clinic.db"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCHEME_NO_SLASHES_RE = re.compile(r"^(sqlite|postgres(?:ql)?(?:\+[a-z0-9]+)?):", re.IGNORECASE)
_PASSWORD_RE = re.compile(r"(//[^/@:]*:)[^/@]*@")
_QUERY_PASSWORD_RE = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
SCHEMA_OPTION = "schema"
"""The URL option naming the clinic's schema in a PostgreSQL database."""
DEFAULT_SCHEMA = "public"
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class TargetLocation:
    backend: Literal["sqlite", "postgresql"]
    path: Path | None
    """The SQLite file (None for PostgreSQL)."""
    display: str
    """The URL as it may be shown: any password replaced by ***."""
    conninfo: str | None = field(default=None, repr=False)
    """PostgreSQL: the libpq URL to connect with (`schema` taken out; may hold a password)."""
    schema: str | None = None
    """PostgreSQL: the clinic's schema."""


def redact(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and logs."""
    return _QUERY_PASSWORD_RE.sub(r"\1***", _PASSWORD_RE.sub(r"\1***@", url))


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
        return _postgresql_location(text)
    raise BadTargetURL(
        f"Unsupported target {redact(text)!r} ({scheme}). Accepted forms: {ACCEPTED_FORMS}."
    )


def _postgresql_location(text: str) -> TargetLocation:
    shown = redact(text)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise BadTargetURL(
            f"Cannot read the target {shown!r}. Accepted forms: {ACCEPTED_FORMS}."
        ) from None
    if parts.fragment:
        raise BadTargetURL(f"{shown!r}: a PostgreSQL target has no '#' part.")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == SCHEMA_OPTION]
    if len(schemas) > 1:
        raise BadTargetURL(f"{shown!r}: give the option {SCHEMA_OPTION}= once.")
    schema = schemas[0] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_RE.fullmatch(schema) or schema.startswith("pg_"):
        raise BadTargetURL(
            f"{shown!r}: the clinic's schema {schema!r} must be a plain lower-case name "
            "(letters, digits and _, not starting with a digit or pg_, at most 63 "
            "characters), e.g. ?schema=clinic_main."
        )
    for key, value in query:
        if key == "sslmode" and value not in _SSLMODES:
            raise BadTargetURL(
                f"{shown!r}: sslmode={value!r} is not one of {', '.join(_SSLMODES)}."
            )
    rest = [(k, v) for k, v in query if k != SCHEMA_OPTION]
    encoded = urlencode(rest)
    conninfo = f"postgresql://{parts.netloc}{parts.path}" + (f"?{encoded}" if encoded else "")
    return TargetLocation("postgresql", None, shown, conninfo=conninfo, schema=schema)


def open_target(
    url: str,
    *,
    readonly: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> ClinicBackend:
    """Open the clinic store at `url`, created and migrated to the current schema if needed.

    `readonly=True` changes nothing anywhere (for a plan): a missing SQLite file, or a
    PostgreSQL schema that does not exist yet, is an empty clinic. Raises `BadTargetURL`,
    `BackendUnavailable` or another `TargetError`.
    """
    location = parse_target_url(url)
    if location.backend == "postgresql":
        try:
            importlib.import_module("psycopg")
        except ImportError:
            raise BackendUnavailable(
                "A PostgreSQL clinic store needs the `postgres` extra (psycopg 3), which is "
                "not installed: pip install 'cliniko-switch[postgres]' (in this checkout: "
                ".venv/bin/pip install -e '.[postgres]'). Or use a local SQLite file, e.g. "
                "sqlite:///clinic.db."
            ) from None
        from target.postgres import PostgresClinicStore

        return PostgresClinicStore.open(location, readonly=readonly, busy_timeout=busy_timeout)
    assert location.path is not None
    return SQLiteClinicStore.open(location.path, readonly=readonly, busy_timeout=busy_timeout)
