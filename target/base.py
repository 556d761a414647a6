"""The clinic store interface: what the planner and the loader may ask of a MyNewClinic store.

The store speaks tables, columns and rows (`target.schema` lists them). One backend per kind
of database implements `ClinicBackend`: SQLite (`target.sqlite`) and PostgreSQL
(`target.postgres`). The interface is narrow and batch-shaped so that the PostgreSQL backend
implements it with COPY and INSERT ... ON CONFLICT:

- rows go in and out as plain dicts keyed by column name, with Python values (str, int, bool,
  Decimal, date, timezone-aware datetime, list/dict for JSON columns); the backend converts;
- every write call is atomic (it lands whole or not at all); `transaction()` groups calls into
  one batch, and a batch commits whole or rolls back whole;
- clinic ids are integers the store allocates (`insert_rows` returns them) and never reuses.

Errors are `TargetError` subclasses with messages meant for the operator. They name files,
tables, columns and ids, never a patient's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self

RunMode = Literal["plan", "load"]

# --- errors ------------------------------------------------------------------------------


class TargetError(Exception):
    """Anything that goes wrong with the clinic store. The message is for the operator."""


class BadTargetURL(TargetError, ValueError):
    """The --target value is not a form we accept."""


class BackendUnavailable(TargetError):
    """The URL names a kind of database this installation cannot open."""


class TargetOpenError(TargetError):
    """The clinic store cannot be opened or created (missing folder, no permission...)."""


class NotAClinicStore(TargetOpenError):
    """The path is a directory, not an SQLite file, or an SQLite file of something else."""


class NewerClinicSchema(TargetError):
    """The clinic store was written by a newer version of MyNewClinic than this tool knows."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class OutdatedClinicSchema(TargetError):
    """A read-only open of a clinic store that needs upgrading first (a load upgrades it)."""


class ClinicLocked(TargetError):
    """Another program holds the clinic store's write lock longer than the busy timeout."""


class TransactionError(TargetError):
    """`transaction()` misused: nested, or a migration inside a batch."""


class SchemaMismatch(TargetError, KeyError):
    """A table or column name that the clinic schema does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class IntegrityViolation(TargetError):
    """A row broke a constraint (NOT NULL, CHECK, foreign key, unique). The call wrote nothing.

    `row_index` is the position in the call's input of the first row that failed, when known.
    """

    def __init__(self, message: str, *, table: str, row_index: int | None) -> None:
        super().__init__(message)
        self.table = table
        self.row_index = row_index


class InvalidValue(TargetError, ValueError):
    """A value of the wrong type or out of range for its column. The call wrote nothing."""

    def __init__(self, message: str, *, table: str, column: str, row_index: int | None) -> None:
        super().__init__(message)
        self.table = table
        self.column = column
        self.row_index = row_index


class ForbiddenWrite(TargetError):
    """A write the import must never make (switching messaging or AI on, queueing a message,
    deleting clinic records, putting free text into the audit log)."""


# --- values ------------------------------------------------------------------------------


class Link(NamedTuple):
    """Where an imported Cliniko record lives in the clinic, as of the last import."""

    target_id: int
    source_hash: str
    """row_hash of the source (mapped) record when it was last imported."""
    target_hash: str
    """row_hash of the clinic row as that import wrote it."""


class LinkRow(NamedTuple):
    """One link to write with `upsert_links` (a plain 4-tuple in this order also works)."""

    source_id: str
    target_id: int
    source_hash: str
    target_hash: str


class Slot(NamedTuple):
    """Time a practitioner is already booked in the clinic."""

    starts_at: datetime
    ends_at: datetime | None
    appointment_id: int
    """Clinic id of the booking, in `table`."""
    table: str = "appointments"
    """`appointments` or `group_appointments`."""


# --- the interface -----------------------------------------------------------------------


class ClinicBackend(Protocol):
    """A MyNewClinic clinic store. Not safe for concurrent use: one thread at a time."""

    @property
    def url(self) -> str:
        """Where the store is, for messages (never with a password)."""
        ...

    # lifecycle and schema
    def schema_version(self) -> int:
        """The schema version the store is at (0 for a store never migrated)."""
        ...

    def migrate(self) -> list[int]:
        """Apply pending migrations, in order, in one transaction; the versions applied."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """One batch: commits on normal exit, rolls back on an exception. Not nestable.

        Write calls made outside a transaction run in one of their own.
        """
        ...

    # rows
    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert rows; returns their new clinic ids in input order.

        `created_at`/`updated_at` default to now. An `id` may be given for every row or none.
        """
        ...

    def update_rows(self, table: str, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> int:
        """Set the given columns of rows by id (`updated_at` defaults to now).

        Returns how many rows were updated: fewer than asked means some ids are gone.
        """
        ...

    def delete_rows(self, table: str, ids: Iterable[int]) -> int:
        """Delete child rows by id (only `invoice_lines`: clinic records are never deleted)."""
        ...

    def fetch_rows(self, table: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Rows by id, all columns; ids that do not exist are absent."""
        ...

    def iter_rows(
        self, table: str, columns: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row of a table in id order (`id` is always included)."""
        ...

    # links
    def load_links(self, source: str, kind: str) -> dict[str, Link]:
        """Every link of one source and kind, by Cliniko id."""
        ...

    def upsert_links(
        self,
        source: str,
        kind: str,
        links: Sequence[LinkRow | tuple[str, int, str, str]],
        run_id: int | None,
    ) -> None:
        """Insert or replace links by (source, kind, source_id)."""
        ...

    # matching
    def name_index(self, table: str, column: str = "match_name") -> dict[str, list[int]]:
        """Ids by the (already folded) value of `column`; rows where it is NULL are left out."""
        ...

    def patient_match_index(self) -> dict[str, list[int]]:
        """Patient ids by `match_key` (folded first | folded last | ISO date of birth)."""
        ...

    def busy_slots(
        self, practitioner_ids: Iterable[int], *, include_imported: bool = True
    ) -> dict[int, list[Slot]]:
        """Booked time per practitioner: appointments not cancelled, and group appointments,
        sorted by start. Every practitioner asked for is a key."""
        ...

    # runs and audit
    def start_import_run(
        self,
        *,
        source: str,
        mode: RunMode,
        staging_path: str | None,
        started_at: datetime | None = None,
    ) -> int: ...

    def finish_import_run(
        self,
        run_id: int,
        outcome: str,
        counts: Mapping[str, int],
        verification: Mapping[str, Any] | None,
        *,
        finished_at: datetime | None = None,
    ) -> None: ...

    def audit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append audit entries: keys `action` (required), `run_id`, `actor`, `kind`,
        `target_id`, `detail` (JSON of ids, codes and field names only), `at`."""
        ...

    # verification
    def table_counts(self) -> dict[str, int]: ...

    def balances(self) -> dict[int, Decimal]:
        """Every patient's balance from the `patient_balances` view (0 when nothing owed)."""
        ...

    def outbox_count(self) -> int: ...

    def settings(self) -> dict[str, Any]:
        """`messaging_enabled`, `ai_enabled` (bools) and `clinic_time_zone`."""
        ...
