"""The MyNewClinic clinic store: schema, migrations and backends (DESIGN.md section 5).

The engine imports this package, never the other way round: it speaks tables, columns and
rows. `open_target(url)` is the way in.
"""

from target.base import (
    BackendUnavailable,
    BadTargetURL,
    ClinicBackend,
    ClinicLocked,
    ForbiddenWrite,
    IntegrityViolation,
    InvalidValue,
    Link,
    LinkRow,
    NewerClinicSchema,
    NotAClinicStore,
    OutdatedClinicSchema,
    SchemaMismatch,
    Slot,
    TargetError,
    TargetOpenError,
    TransactionError,
)
from target.hashing import row_hash
from target.schema import CURRENT_VERSION, KIND_TABLES, TABLES
from target.sqlite import SQLiteClinicStore
from target.url import DEFAULT_TARGET, open_target, parse_target_url, redact

__all__ = [
    "CURRENT_VERSION",
    "DEFAULT_TARGET",
    "KIND_TABLES",
    "TABLES",
    "BackendUnavailable",
    "BadTargetURL",
    "ClinicBackend",
    "ClinicLocked",
    "ForbiddenWrite",
    "IntegrityViolation",
    "InvalidValue",
    "Link",
    "LinkRow",
    "NewerClinicSchema",
    "NotAClinicStore",
    "OutdatedClinicSchema",
    "SQLiteClinicStore",
    "SchemaMismatch",
    "Slot",
    "TargetError",
    "TargetOpenError",
    "TransactionError",
    "open_target",
    "parse_target_url",
    "redact",
    "row_hash",
]
