"""The PostgreSQL clinic store: one clinic in one schema of a PostgreSQL database (psycopg 3).

The same interface, schema version, validation and results as the SQLite store
(`target.sqlite`); what differs is how it gets there:

- One connection (autocommit; the store issues its own transactions). Its `search_path` is
  the clinic's schema, its time zone UTC, `lock_timeout` the busy timeout, its client
  encoding UTF-8. The database must exist (a clear message says how to create it); the
  schema is created by the first load if it is missing (a plan treats a missing schema as an
  empty clinic and creates nothing).
- An existing schema is checked before anything is written to it: a schema with tables but
  no clinic store marker (another application's), or a clinic store of a newer schema
  version, is refused and left untouched.
- Rows are validated and converted by the same encoders as SQLite's (booleans stay bool), so
  both stores accept and refuse exactly the same rows. Inserts go in with COPY, ids drawn from
  the table's identity sequence first so that they come back in input order; updates are
  pipelined; links are upserted with one `INSERT ... ON CONFLICT` per call.
- `transaction()` is one PostgreSQL transaction; each write call inside it is a savepoint
  (atomic on its own). Write transactions take a transaction-level advisory lock on the
  clinic (one loader writes at a time, like SQLite's write lock; `ClinicLocked` after the
  busy timeout) and arm the schema's guard triggers (`target.pg_schema`).
- A refused row is found again (the COPY line, or the call's rows one by one in a
  transaction rolled back at the end) so that the error names its input row, as SQLite does.
  Messages never hold a row's values or a password.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from target.base import (
    BadTargetURL,
    ClinicLocked,
    ForbiddenWrite,
    IntegrityViolation,
    InvalidValue,
    Link,
    LinkRow,
    NewerClinicSchema,
    NotAClinicStore,
    OutdatedClinicSchema,
    RunMode,
    SchemaMismatch,
    Slot,
    TargetError,
    TargetOpenError,
    TransactionError,
)
from target.hashing import format_timestamp
from target.pg_schema import (
    FORBIDDEN_SQLSTATE,
    IMPORT_SETTING,
    PG_META_STATEMENTS,
    PG_MIGRATIONS,
    STORE_MARKER,
)
from target.schema import CURRENT_VERSION, DELETABLE_TABLES, TABLES, ColumnType, Table
from target.sqlite import (
    DEFAULT_BUSY_TIMEOUT,
    ENCODERS,
    Decoder,
    Encoder,
    _decode,
    _dumps,
    _enc_integer,
    _getter,
    _tidy,
    _WritePlan,
    audit_params,
)
from target.url import TargetLocation, parse_target_url

MIN_SERVER_VERSION = 110000
"""PostgreSQL 11: identity columns (10) and `EXECUTE FUNCTION` triggers (11)."""
_LOCK_CLASS = 0x4D4E43
"""First key of the clinic's advisory lock ("MNC"); the second is hashtext(schema)."""
_CHUNK = 10_000
"""Ids per `= ANY(...)` query."""
_PAGE = 5_000
"""Rows per page of `iter_rows`."""
_COPY_LINE_RE = re.compile(r"^COPY \w+, line (\d+)(?:, column (\w+))?", re.MULTILINE)
_SQLSTATE_WORDS = {
    "23502": "NOT NULL",
    "23503": "FOREIGN KEY",
    "23505": "UNIQUE",
    "23514": "CHECK",
}
"""Integrity errors worded as SQLite words them, so messages read alike on both stores."""


# --- value conversion -------------------------------------------------------------------
# SQLite's encoders validate and convert; PostgreSQL parses their text (decimal, date,
# timestamp, JSON) into its native types. Only booleans differ: bool, not 0/1.


def _enc_boolean(v: Any) -> Any:
    if v is None or v is True or v is False:
        return v
    if type(v) is int and v in (0, 1):
        return bool(v)
    raise TypeError(f"a boolean column needs bool, not {type(v).__name__}")


def _dec_timestamp(v: Any) -> Any:
    if v is None or v.tzinfo is UTC:
        return v
    return v.astimezone(UTC)


ENCODERS_PG: dict[ColumnType, Encoder] = {**ENCODERS, "boolean": _enc_boolean}
DECODERS_PG: dict[ColumnType, Decoder | None] = {
    "integer": None,
    "text": None,
    "boolean": None,
    "decimal": None,  # NUMERIC -> Decimal, scale kept
    "date": None,
    "timestamp": _dec_timestamp,  # TIMESTAMPTZ -> aware datetime, normalised to datetime.UTC
    "json": None,  # JSONB -> list/dict (json.loads, as SQLite's decoder)
}


def _describe_value_error(state: str) -> str:
    """What PostgreSQL refused, by SQLSTATE (never its message: that may quote the value)."""
    if state in ("22021", "22P05", "22P02") or state.startswith("22P0"):
        return "text PostgreSQL cannot store (a NUL character, or an escape it refuses)"
    if state == "22003":
        return "a number out of range"
    if state in ("22007", "22008"):
        return "a date or time out of range"
    return f"a value PostgreSQL refused (SQLSTATE {state})"


# --- the store --------------------------------------------------------------------------


class PostgresClinicStore:
    """A clinic store in one schema of a PostgreSQL database. Use `open()` or
    `target.open_target("postgresql://...")`."""

    def __init__(
        self,
        conn: psycopg.Connection[tuple[Any, ...]] | None,
        location: TargetLocation,
        *,
        busy_timeout: float,
        readonly: bool,
        empty: bool = False,
    ) -> None:
        assert location.schema is not None
        self._conn_or_none = conn
        self._location = location
        self._schema = location.schema
        self._busy_timeout = busy_timeout
        self._readonly = readonly
        self._empty = empty
        """Read-only open of a schema that does not exist yet: an empty clinic."""
        self._in_tx = False
        self._insert_plans: dict[tuple[str, tuple[str, ...]], tuple[_WritePlan, str]] = {}
        self._update_plans: dict[tuple[str, tuple[str, ...]], _WritePlan] = {}
        self._decoders: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, Decoder], ...]] = {}
        self._sequences: dict[str, str] = {}

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: str | TargetLocation,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        readonly: bool = False,
        migrate: bool = True,
    ) -> PostgresClinicStore:
        """Connect to the clinic at `target` (a postgresql:// URL), migrated to the current
        schema (created first if the schema is missing).

        `readonly=True` writes nothing anywhere: a missing (or empty) schema is planned
        against as an empty clinic; an existing store must already be at the current version
        (`OutdatedClinicSchema` otherwise).
        """
        location = parse_target_url(target) if isinstance(target, str) else target
        if location.backend != "postgresql" or location.conninfo is None:
            raise BadTargetURL(f"{location.display!r} is not a postgresql:// target")
        conn = _connect(location, busy_timeout=busy_timeout)
        store = cls(conn, location, busy_timeout=busy_timeout, readonly=readonly)
        try:
            found = store._check_identity()
            if readonly:
                if found is None:
                    conn.close()
                    store._conn_or_none = None
                    store._empty = True
                    return store
                if found < CURRENT_VERSION:
                    raise OutdatedClinicSchema(
                        f"The clinic store {store.url} is at schema version {found} and needs "
                        f"upgrading to {CURRENT_VERSION}; a load upgrades it."
                    )
                with store._errors():
                    conn.execute("SET default_transaction_read_only = on")
                conn.read_only = True
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            elif migrate:
                store.migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @property
    def _conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._conn_or_none
        if conn is None:  # only an empty read-only clinic has none, and it never asks
            raise TargetError(f"the clinic store {self.url} is not connected")
        return conn

    def _check_identity(self) -> int | None:
        """The schema version of the clinic store in the schema; None if the schema is
        missing or empty. Refuses anything else, and stores of a newer version."""
        with self._errors():
            row = self._conn.execute(
                "SELECT n.oid IS NOT NULL, "
                "obj_description(to_regclass(format('%%I.schema_migrations', q.name)), "
                "'pg_class'), "
                "ARRAY(SELECT c.relname::text FROM pg_class AS c WHERE c.relnamespace = n.oid "
                "AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname LIMIT 4) "
                "FROM (SELECT %s::text AS name) AS q "
                "LEFT JOIN pg_namespace AS n ON n.nspname = q.name",
                (self._schema,),
            ).fetchone()
        assert row is not None
        exists, marker, names = row
        if not exists:
            return None
        if marker == STORE_MARKER:
            found = self.schema_version()
            if found > CURRENT_VERSION:
                raise NewerClinicSchema(
                    f"The clinic store {self.url} is at schema version {found}, newer than "
                    f"this cliniko-switch understands (up to {CURRENT_VERSION}). Update "
                    "cliniko-switch; the schema was left untouched.",
                    found=found,
                    supported=CURRENT_VERSION,
                )
            return found
        if names:
            raise NotAClinicStore(
                f"The schema {self._schema!r} of {self.url} is not a clinic store (it has "
                f"tables such as {', '.join(names)}); it was left untouched. Name another "
                "schema with ?schema=... (one clinic per schema)."
            )
        return None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._location.display

    @property
    def schema(self) -> str:
        return self._schema

    def close(self) -> None:
        if self._conn_or_none is not None:
            self._conn_or_none.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = " (missing: an empty clinic)" if self._empty else ""
        return f"<PostgresClinicStore {self.url}{where}>"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """PostgreSQL's errors as `TargetError`s that say what to do. Constraint and value
        errors pass through: the write calls turn them into IntegrityViolation/InvalidValue
        naming the input row."""
        try:
            yield
        except (pg_errors.IntegrityError, pg_errors.DataError):
            raise
        except psycopg.Error as e:
            raise self._translate(e) from e

    def _translate(self, e: psycopg.Error) -> Exception:
        state = e.sqlstate or ""
        primary = e.diag.message_primary or _first_line(str(e))
        if state == "55P03":
            return ClinicLocked(
                f"The clinic store {self.url} is locked by another program (waited "
                f"{self._busy_timeout:g}s): another load into the same clinic, or the "
                "MyNewClinic app holding rows this load writes. Let it finish, then try again."
            )
        if state == FORBIDDEN_SQLSTATE:
            return ForbiddenWrite(primary)
        if state == "25006":
            return TargetError(
                f"The clinic store {self.url} was opened read-only (or the server is a "
                "read-only standby): nothing can be written to it."
            )
        if state == "42501":
            return TargetError(
                f"The database user may not do this in the clinic store {self.url} "
                f"({primary}). Ask the database's owner to grant it, for example: GRANT ALL ON "
                f"SCHEMA {self._schema} TO <user>; GRANT ALL ON ALL TABLES IN SCHEMA "
                f"{self._schema} TO <user>; GRANT ALL ON ALL SEQUENCES IN SCHEMA "
                f"{self._schema} TO <user>;"
            )
        if state in ("40P01", "40001"):
            return TargetError(
                f"The clinic store {self.url} aborted a batch to resolve a conflict with another "
                "program (deadlock or serialization). Every committed batch is in the clinic "
                "with its links: run the same command again."
            )
        if isinstance(e, psycopg.OperationalError):
            return TargetError(
                f"Lost the connection to the PostgreSQL clinic store {self.url} "
                f"({_first_line(str(e))}). Every committed batch is in the clinic with its "
                "links: run the same command again."
            )
        return e

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        if self._empty:
            return CURRENT_VERSION
        with self._errors():
            row = self._conn.execute(
                "SELECT to_regclass(format('%%I.schema_migrations', %s::text)) IS NOT NULL",
                (self._schema,),
            ).fetchone()
            if not row or not row[0]:
                return 0
            got = self._conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(got[0] or 0) if got else 0

    def migrate(self) -> list[int]:
        if self._in_tx:
            raise TransactionError("migrate() cannot run inside a transaction()")
        if self.schema_version() == CURRENT_VERSION:
            return []
        if self._readonly:
            raise OutdatedClinicSchema(f"{self.url} is open read-only and cannot be upgraded")
        applied: list[int] = []
        conn = self._conn
        schema = sql.Identifier(self._schema)
        with self._errors(), conn.transaction():
            # Two programs creating the same clinic at once: one waits for the other.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self._schema)
            )
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s), "
                "to_regclass(format('%%I.schema_migrations', %s::text)) IS NOT NULL",
                (self._schema, self._schema),
            ).fetchone()
            assert row is not None
            has_schema, has_history = row
            if not has_schema:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            if not has_history:
                for statement in PG_META_STATEMENTS:
                    conn.execute(statement)
            found = self.schema_version()  # again, now that we hold the lock
            if found > CURRENT_VERSION:
                raise NewerClinicSchema(
                    f"The clinic store {self.url} is at schema version {found}, newer than this "
                    f"cliniko-switch understands (up to {CURRENT_VERSION}).",
                    found=found,
                    supported=CURRENT_VERSION,
                )
            for migration in PG_MIGRATIONS:
                if migration.version <= found:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) "
                    "VALUES (%s, %s, now())",
                    (migration.version, migration.description),
                )
                applied.append(migration.version)
        return applied

    def _table(self, name: str) -> Table:
        try:
            return TABLES[name]
        except KeyError:
            raise SchemaMismatch(f"the clinic schema has no table {name!r}") from None

    def _check_columns(self, table: Table, keys: Iterable[str]) -> None:
        names = table.column_names
        unknown = [k for k in keys if k not in names]
        if unknown:
            raise SchemaMismatch(
                f"table {table.name} has no column(s) {', '.join(map(repr, unknown))}"
            )

    def _refuse_if_readonly(self) -> None:
        if self._readonly:
            raise TargetError(
                f"The clinic store {self.url} was opened read-only: nothing can be written to it."
            )

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            raise TransactionError("transaction() is not nestable: one batch is one transaction")
        self._in_tx = True
        try:
            if self._empty:
                yield
                return
            conn = self._conn
            with self._errors(), conn.transaction():
                if not self._readonly:
                    conn.execute(
                        "SELECT set_config(%s, 'on', true), "
                        "pg_advisory_xact_lock(%s, hashtext(%s))",
                        (IMPORT_SETTING, _LOCK_CLASS, self._schema),
                    )
                yield
        finally:
            self._in_tx = False

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One write call: all or nothing, in the caller's batch or a transaction of its own."""
        self._refuse_if_readonly()
        if not self._in_tx:
            with self.transaction():
                yield
            return
        with self._errors(), self._conn.transaction():  # a savepoint
            yield

    # -- finding and wording refusals -----------------------------------------------------

    def _locate(
        self, statement: str | sql.Composed, params: Sequence[Sequence[Any]], indexes: list[int]
    ) -> tuple[int | None, psycopg.Error | None]:
        """After a failed call (already undone): its rows one by one, in a transaction rolled
        back at the end; the input index of the first that fails, and its error."""
        conn = self._conn
        try:
            with conn.transaction(force_rollback=True):
                for p, i in zip(params, indexes, strict=True):
                    try:
                        conn.execute(statement, p)
                    except (pg_errors.IntegrityError, pg_errors.DataError) as e:
                        return i, e
        except psycopg.Error:  # e.g. locked: the index is a nicety, not worth failing over
            return None, None
        return None, None

    def _refused(
        self,
        table: str,
        error: psycopg.Error,
        row_index: int | None,
        column: str | None,
        row: Sequence[Any] | None,
        columns: Sequence[str],
    ) -> TargetError:
        where = f" (input row {row_index})" if row_index is not None else ""
        state = error.sqlstate or ""
        if isinstance(error, pg_errors.IntegrityError):
            words = _SQLSTATE_WORDS.get(state, "a")
            primary = error.diag.message_primary or "a constraint failed"
            return IntegrityViolation(
                f"{table}: {words} constraint failed ({primary}){where}; nothing from this "
                "call was written",
                table=table,
                row_index=row_index,
            )
        if not column:
            column = error.diag.column_name or ""
        if not column and row is not None:  # a NUL character is refused before it is sent
            for name, value in zip(columns, row, strict=False):
                if isinstance(value, str) and "\x00" in value:
                    column = name
                    break
        what = (
            "text PostgreSQL cannot store (a NUL character)"
            if not state
            else _describe_value_error(state)
        )
        return InvalidValue(
            f"{table}.{column or '?'}: {what}{where}; nothing from this call was written",
            table=table,
            column=column,
            row_index=row_index,
        )

    # -- rows -----------------------------------------------------------------------------

    def _insert_plan(self, table: Table, keys: tuple[str, ...]) -> tuple[_WritePlan, str]:
        cache_key = (table.name, keys)
        found = self._insert_plans.get(cache_key)
        if found is None:
            self._check_columns(table, keys)
            names = table.column_names
            missing_stamps = tuple(
                s for s in ("created_at", "updated_at") if s not in keys and s in names
            )
            value_cols = (
                (*keys, *missing_stamps) if "id" in keys else (*keys, *missing_stamps, "id")
            )
            columns = ", ".join(value_cols)
            copy = f"COPY {table.name} ({columns}) FROM STDIN"
            insert = (
                f"INSERT INTO {table.name} ({columns}) "  # noqa: S608 - names from the catalogue
                f"VALUES ({', '.join(['%s'] * len(value_cols))})"
            )
            encoders = tuple((i, ENCODERS_PG[table.column(k).type]) for i, k in enumerate(keys))
            found = (
                _WritePlan(copy, value_cols, _getter(keys), encoders, len(missing_stamps)),
                insert,
            )
            self._insert_plans[cache_key] = found
        return found

    def _encode(
        self, table: Table, plan: _WritePlan, row: Mapping[str, Any], index: int, now: str
    ) -> list[Any]:
        try:
            return plan.params(row, now)
        except KeyError as e:
            raise SchemaMismatch(
                f"{table.name}: input row {index} lacks column {e.args[0]!r}"
            ) from None
        except (TypeError, ValueError) as e:
            for i, _ in plan.encoders:
                key = plan.keys[i]
                try:
                    ENCODERS_PG[table.column(key).type](row[key])
                except (TypeError, ValueError) as col_error:
                    raise InvalidValue(
                        f"{table.name}.{key}: {col_error} (input row {index})",
                        table=table.name,
                        column=key,
                        row_index=index,
                    ) from None
            raise InvalidValue(
                f"{table.name}: {e} (input row {index})",
                table=table.name,
                column="",
                row_index=index,
            ) from None

    def _guard(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        if table == "message_outbox":
            raise ForbiddenWrite("the import never queues messages to patients")
        if table == "clinic_settings":
            for row in rows:
                if row.get("messaging_enabled") or row.get("ai_enabled"):
                    raise ForbiddenWrite(
                        "the import never switches messaging or AI on (that is go-live)"
                    )

    def _sequence(self, table: str) -> str:
        name = self._sequences.get(table)
        if name is None:
            with self._errors():
                row = self._conn.execute(
                    "SELECT pg_get_serial_sequence(format('%%I.%%I', %s::text, %s::text), 'id')",
                    (self._schema, table),
                ).fetchone()
            if not row or not row[0]:
                raise TargetError(f"{self.url}: table {table} has no id sequence")
            name = str(row[0])
            self._sequences[table] = name
        return name

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        if not rows:
            return []
        t = self._table(table)
        self._guard(table, rows)
        self._refuse_if_readonly()
        given_ids = "id" in rows[0]
        if any(("id" in row) != given_ids for row in rows):
            raise SchemaMismatch(f"{table}: give an id for every row or for none")
        if given_ids and any(type(row["id"]) is not int for row in rows):
            raise InvalidValue(
                f"{table}.id: ids must be int", table=table, column="id", row_index=None
            )
        now = format_timestamp(datetime.now(UTC))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(tuple(row), []).append(i)
        plans = [(self._insert_plan(t, keys), indexes) for keys, indexes in groups.items()]
        # Rows are checked and converted as they are sent, so that the server works on the
        # first while the next are converted; a bad value aborts the COPY (nothing written)
        # and names its row and column.
        batches: list[tuple[list[list[Any]], list[int]]] = [([], ix) for _, ix in plans]
        conn = self._conn
        current: int | None = None
        try:
            with self._atomic():
                ids = [r["id"] for r in rows] if given_ids else self._allocate(table, len(rows))
                cursor = conn.cursor()
                for current, ((plan, _), indexes) in enumerate(plans):
                    params = batches[current][0]
                    encode = self._encode
                    with cursor.copy(plan.sql) as copy:
                        write = copy.write_row
                        for i in indexes:
                            p = encode(t, plan, rows[i], i, now)
                            if not given_ids:
                                p.append(ids[i])
                            params.append(p)
                            write(p)
                current = None
                if given_ids:
                    self._advance_sequence(table, max(ids))
        except (pg_errors.IntegrityError, pg_errors.DataError) as e:
            raise self._insert_failed(table, e, plans, batches, current) from None
        return ids

    def _insert_failed(
        self,
        table: str,
        error: psycopg.Error,
        plans: Sequence[tuple[tuple[_WritePlan, str], list[int]]],
        batches: Sequence[tuple[list[list[Any]], list[int]]],
        failed: int | None,
    ) -> TargetError:
        if failed is not None:
            match = _COPY_LINE_RE.search(error.diag.context or "")
            if match is not None:
                params, indexes = batches[failed]
                n = int(match.group(1)) - 1
                if 0 <= n < len(indexes):
                    return self._refused(
                        table,
                        error,
                        indexes[n],
                        match.group(2),
                        params[n],
                        plans[failed][0][0].keys,
                    )
        # Rows one by one, in input order across the groups, rolled back at the end.
        order: list[tuple[int, str, list[Any], tuple[str, ...]]] = []
        for ((plan, insert), _), (params, indexes) in zip(plans, batches, strict=True):
            for p, i in zip(params, indexes, strict=True):
                order.append((i, insert, p, plan.keys))
        order.sort(key=lambda x: x[0])
        conn = self._conn
        try:
            with conn.transaction(force_rollback=True):
                for i, insert, p, keys in order:
                    try:
                        conn.execute(insert, p)
                    except (pg_errors.IntegrityError, pg_errors.DataError) as e:
                        return self._refused(table, e, i, None, p, keys)
        except psycopg.Error:
            pass
        return self._refused(table, error, None, None, None, ())

    def _allocate(self, table: str, n: int) -> list[int]:
        """`n` new ids from the table's identity sequence, ascending (never reused)."""
        with self._errors():
            got = self._conn.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                (self._sequence(table), n),
            ).fetchall()
        return sorted(r[0] for r in got)

    def _advance_sequence(self, table: str, at_least: int) -> None:
        """After rows with given ids: the sequence goes past them (ids are never reused)."""
        seq = self._sequence(table)
        row = self._conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.SQL(".").join(sql.Identifier(p) for p in _split_qualified(seq))
            )
        ).fetchone()
        assert row is not None
        last, called = row
        if at_least >= 1 and (not called or last < at_least):
            self._conn.execute("SELECT setval(%s::regclass, %s)", (seq, at_least))

    def _update_plan(self, table: Table, keys: tuple[str, ...]) -> _WritePlan:
        cache_key = (table.name, keys)
        plan = self._update_plans.get(cache_key)
        if plan is None:
            self._check_columns(table, keys)
            if "id" in keys:
                raise SchemaMismatch(f"{table.name}: a row's id cannot be changed")
            stamp = (
                ()
                if "updated_at" in keys or "updated_at" not in table.column_names
                else ("updated_at",)
            )
            sets = ", ".join(f"{k} = %s" for k in (*keys, *stamp))
            statement = f"UPDATE {table.name} SET {sets} WHERE id = %s"  # noqa: S608 - catalogue names
            encoders = tuple((i, ENCODERS_PG[table.column(k).type]) for i, k in enumerate(keys))
            plan = _WritePlan(statement, keys, _getter(keys), encoders, len(stamp))
            self._update_plans[cache_key] = plan
        return plan

    def update_rows(self, table: str, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> int:
        if not updates:
            return 0
        t = self._table(table)
        self._guard(table, (values for _, values in updates))
        self._refuse_if_readonly()
        now = format_timestamp(datetime.now(UTC))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (row_id, values) in enumerate(updates):
            if type(row_id) is not int:
                raise InvalidValue(
                    f"{table}.id: ids must be int (input row {i})",
                    table=table,
                    column="id",
                    row_index=i,
                )
            if values:
                groups.setdefault(tuple(values), []).append(i)
        batches: list[tuple[_WritePlan, list[list[Any]], list[int]]] = []
        for keys, indexes in groups.items():
            plan = self._update_plan(t, keys)
            params = []
            for i in indexes:
                p = self._encode(t, plan, updates[i][1], i, now)
                p.append(updates[i][0])
                params.append(p)
            batches.append((plan, params, indexes))
        return self._execute_many(table, [(p.sql, params, ix, p.keys) for p, params, ix in batches])

    def _execute_many(
        self,
        table: str,
        batches: Sequence[tuple[str, list[list[Any]], list[int], Sequence[str]]],
    ) -> int:
        """Execute (statement, params, input indexes, columns) batches atomically; rows changed."""
        changed = 0
        try:
            with self._atomic():
                cursor = self._conn.cursor()
                for statement, params, _, _ in batches:
                    if len(params) == 1:
                        cursor.execute(statement, params[0])
                    else:
                        cursor.executemany(statement, params)
                    changed += max(cursor.rowcount, 0)
        except (pg_errors.IntegrityError, pg_errors.DataError) as e:
            raise self._many_failed(table, e, batches) from None
        return changed

    def _many_failed(
        self,
        table: str,
        error: psycopg.Error,
        batches: Sequence[tuple[str, list[list[Any]], list[int], Sequence[str]]],
    ) -> TargetError:
        order = sorted(
            (
                (i, statement, p, columns)
                for statement, params, indexes, columns in batches
                for p, i in zip(params, indexes, strict=True)
            ),
            key=lambda x: x[0],
        )
        conn = self._conn
        try:
            with conn.transaction(force_rollback=True):
                for i, statement, p, columns in order:
                    try:
                        conn.execute(statement, p)
                    except (pg_errors.IntegrityError, pg_errors.DataError) as e:
                        return self._refused(table, e, i, None, p, columns)
        except psycopg.Error:
            pass
        return self._refused(table, error, None, None, None, ())

    def delete_rows(self, table: str, ids: Iterable[int]) -> int:
        self._table(table)
        if table not in DELETABLE_TABLES:
            raise ForbiddenWrite(f"the import never deletes from {table}")
        wanted = list(ids)
        if not wanted:
            return 0
        self._refuse_if_readonly()
        statement = f"DELETE FROM {table} WHERE id = ANY(%s)"  # noqa: S608 - a catalogue name
        changed = 0
        try:
            with self._atomic():
                for start in range(0, len(wanted), _CHUNK):
                    cur = self._conn.execute(statement, (wanted[start : start + _CHUNK],))
                    changed += max(cur.rowcount, 0)
        except (pg_errors.IntegrityError, pg_errors.DataError) as e:
            raise self._refused(table, e, None, None, None, ()) from None
        return changed

    def _row_decoders(
        self, table: Table, columns: tuple[str, ...]
    ) -> tuple[tuple[int, Decoder], ...]:
        key = (table.name, columns)
        decoders = self._decoders.get(key)
        if decoders is None:
            decoders = tuple(
                (i, dec)
                for i, c in enumerate(columns)
                if (dec := DECODERS_PG[table.column(c).type]) is not None
            )
            self._decoders[key] = decoders
        return decoders

    def _columns(self, table: Table, columns: Sequence[str] | None) -> tuple[str, ...]:
        if columns is None:
            return table.column_names
        cols = tuple(columns)
        self._check_columns(table, cols)
        return cols if "id" in cols else ("id", *cols)

    def fetch_rows(self, table: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        t = self._table(table)
        cols = t.column_names
        decoders = self._row_decoders(t, cols)
        wanted = list(dict.fromkeys(ids))
        out: dict[int, dict[str, Any]] = {}
        if self._empty or not wanted:
            return out
        statement = f"SELECT {', '.join(cols)} FROM {table} WHERE id = ANY(%s)"  # noqa: S608
        with self._errors():
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                for raw in self._conn.execute(statement, (chunk,)).fetchall():
                    row = _decode(raw, decoders)
                    out[row[0]] = dict(zip(cols, row, strict=True))
        return out

    def iter_rows(
        self, table: str, columns: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row in id order (read in pages by id). Do not write to the same table while
        iterating."""
        t = self._table(table)
        cols = self._columns(t, columns)
        decoders = self._row_decoders(t, cols)
        if self._empty:
            return
        id_at = cols.index("id")
        names = ", ".join(cols)
        first = f"SELECT {names} FROM {table} ORDER BY id LIMIT {_PAGE}"  # noqa: S608
        after = f"SELECT {names} FROM {table} WHERE id > %s ORDER BY id LIMIT {_PAGE}"  # noqa: S608
        last: int | None = None
        while True:
            with self._errors():
                if last is None:
                    page = self._conn.execute(first).fetchall()
                else:
                    page = self._conn.execute(after, (last,)).fetchall()
            for raw in page:
                yield dict(zip(cols, _decode(raw, decoders), strict=True))
            if len(page) < _PAGE:
                return
            last = page[-1][id_at]

    # -- links --------------------------------------------------------------------------

    def load_links(self, source: str, kind: str) -> dict[str, Link]:
        if self._empty:
            return {}
        with self._errors():
            cursor = self._conn.execute(
                "SELECT source_id, target_id, source_hash, target_hash FROM import_links "
                "WHERE source = %s AND kind = %s",
                (source, kind),
            )
            return {r[0]: Link(r[1], r[2], r[3]) for r in cursor.fetchall()}

    _UPSERT_LINKS = (
        "INSERT INTO import_links (source, kind, source_id, target_id, source_hash, "
        "target_hash, run_id, created_at, updated_at) "
        "SELECT %s, %s, u.source_id, u.target_id, u.source_hash, u.target_hash, %s::bigint, "
        "%s::timestamptz, %s::timestamptz "
        "FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[]) "
        "AS u (source_id, target_id, source_hash, target_hash) "
        "ON CONFLICT (source, kind, source_id) DO UPDATE SET "
        "target_id = excluded.target_id, source_hash = excluded.source_hash, "
        "target_hash = excluded.target_hash, run_id = excluded.run_id, "
        "updated_at = excluded.updated_at"
    )

    def upsert_links(
        self,
        source: str,
        kind: str,
        links: Sequence[LinkRow | tuple[str, int, str, str]],
        run_id: int | None,
    ) -> None:
        if not links:
            return
        self._refuse_if_readonly()
        now = format_timestamp(datetime.now(UTC))
        latest: dict[str, tuple[int, int, str, str]] = {}
        for i, (source_id, target_id, source_hash, target_hash) in enumerate(links):
            if type(source_id) is not str or type(target_id) is not int:
                raise InvalidValue(
                    f"import_links: source_id must be str and target_id int (input row {i})",
                    table="import_links",
                    column="source_id" if type(source_id) is not str else "target_id",
                    row_index=i,
                )
            latest.pop(source_id, None)  # the last of duplicates wins, as one by one would
            latest[source_id] = (i, target_id, source_hash, target_hash)
        _enc_integer(run_id)
        columns = [
            list(latest),
            [v[1] for v in latest.values()],
            [v[2] for v in latest.values()],
            [v[3] for v in latest.values()],
        ]
        try:
            with self._atomic():
                self._conn.execute(self._UPSERT_LINKS, (source, kind, run_id, now, now, *columns))
        except (pg_errors.IntegrityError, pg_errors.DataError) as e:
            one_by_one = [
                [source, kind, run_id, now, now, [sid], [v[1]], [v[2]], [v[3]]]
                for sid, v in latest.items()
            ]
            indexes = [v[0] for v in latest.values()]
            found, found_error = self._locate(self._UPSERT_LINKS, one_by_one, indexes)
            raise self._refused("import_links", found_error or e, found, None, None, ()) from None

    # -- matching -----------------------------------------------------------------------

    def name_index(self, table: str, column: str = "match_name") -> dict[str, list[int]]:
        t = self._table(table)
        self._check_columns(t, (column,))
        index: dict[str, list[int]] = {}
        if self._empty:
            return index
        statement = f"SELECT {column}, id FROM {table} WHERE {column} IS NOT NULL ORDER BY id"  # noqa: S608
        with self._errors():
            for value, row_id in self._conn.execute(statement).fetchall():
                index.setdefault(value, []).append(row_id)
        return index

    def patient_match_index(self) -> dict[str, list[int]]:
        return self.name_index("patients", "match_key")

    def busy_slots(
        self, practitioner_ids: Iterable[int], *, include_imported: bool = True
    ) -> dict[int, list[Slot]]:
        wanted = list(dict.fromkeys(practitioner_ids))
        slots: dict[int, list[Slot]] = {p: [] for p in wanted}
        if self._empty or not wanted:
            return slots
        imported = "" if include_imported else " AND NOT imported_history"
        with self._errors():
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                for table, status in (
                    ("appointments", " AND status <> 'cancelled'"),
                    ("group_appointments", ""),
                ):
                    statement = (
                        f"SELECT practitioner_id, starts_at, ends_at, id FROM {table} "  # noqa: S608
                        f"WHERE practitioner_id = ANY(%s){status}{imported}"
                    )
                    rows = self._conn.execute(statement, (chunk,)).fetchall()
                    for pid, starts, ends, row_id in rows:
                        slots[pid].append(
                            Slot(_dec_timestamp(starts), _dec_timestamp(ends), row_id, table)
                        )
        for booked in slots.values():
            booked.sort(key=lambda s: (s.starts_at, s.appointment_id))
        return slots

    # -- runs and audit -----------------------------------------------------------------

    def start_import_run(
        self,
        *,
        source: str,
        mode: RunMode,
        staging_path: str | None,
        started_at: datetime | None = None,
    ) -> int:
        self._refuse_if_readonly()
        started = format_timestamp(started_at or datetime.now(UTC))
        try:
            with self._atomic():
                row = self._conn.execute(
                    "INSERT INTO import_runs (started_at, staging_path, source, mode) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (started, staging_path, source, mode),
                ).fetchone()
        except (pg_errors.IntegrityError, pg_errors.DataError) as e:
            raise self._refused("import_runs", e, 0, None, None, ()) from None
        assert row is not None
        return int(row[0])

    def finish_import_run(
        self,
        run_id: int,
        outcome: str,
        counts: Mapping[str, int],
        verification: Mapping[str, Any] | None,
        *,
        finished_at: datetime | None = None,
    ) -> None:
        self._refuse_if_readonly()
        finished = format_timestamp(finished_at or datetime.now(UTC))
        with self._atomic():
            cur = self._conn.execute(
                "UPDATE import_runs SET finished_at = %s, outcome = %s, counts = %s, "
                "verification = %s WHERE id = %s",
                (
                    finished,
                    outcome,
                    _dumps(dict(counts)),
                    None if verification is None else _dumps(dict(verification)),
                    run_id,
                ),
            )
            if cur.rowcount != 1:
                raise TargetError(f"there is no import run {run_id} to finish")

    def audit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        if not entries:
            return
        self._refuse_if_readonly()
        params = audit_params(entries)
        statement = (
            "INSERT INTO audit_log (at, run_id, actor, action, kind, target_id, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        columns = ("at", "run_id", "actor", "action", "kind", "target_id", "detail")
        self._execute_many("audit_log", [(statement, params, list(range(len(params))), columns)])

    # -- verification -------------------------------------------------------------------

    def table_counts(self) -> dict[str, int]:
        if self._empty:
            return {name: (1 if name == "clinic_settings" else 0) for name in TABLES}
        counts = ", ".join(f"(SELECT count(*) FROM {n})" for n in TABLES)  # noqa: S608
        statement = f"SELECT {counts}"
        with self._errors():
            row = self._conn.execute(statement).fetchone()
        assert row is not None
        return {name: int(n) for name, n in zip(TABLES, row, strict=True)}

    def balances(self) -> dict[int, Decimal]:
        if self._empty:
            return {}
        with self._errors():
            rows = self._conn.execute("SELECT patient_id, balance FROM patient_balances").fetchall()
        return {patient_id: _tidy(balance) for patient_id, balance in rows}

    def outbox_count(self) -> int:
        if self._empty:
            return 0
        with self._errors():
            row = self._conn.execute("SELECT count(*) FROM message_outbox").fetchone()
        return int(row[0]) if row else 0

    def settings(self) -> dict[str, Any]:
        row = None
        if not self._empty:
            with self._errors():
                row = self._conn.execute(
                    "SELECT messaging_enabled, ai_enabled, clinic_time_zone FROM clinic_settings "
                    "WHERE id = 1"
                ).fetchone()
        if row is None:
            return {"messaging_enabled": False, "ai_enabled": False, "clinic_time_zone": None}
        return {
            "messaging_enabled": bool(row[0]),
            "ai_enabled": bool(row[1]),
            "clinic_time_zone": row[2],
        }


# --- connecting -------------------------------------------------------------------------


def _first_line(text: str) -> str:
    """libpq's message on one line (it names hosts, ports, users and databases, never a
    password)."""
    text = text.removeprefix("connection failed: ")
    return " ".join(text.split())


def _split_qualified(name: str) -> list[str]:
    """'"schema"."table_id_seq"' or 'schema.table_id_seq' -> [schema, table_id_seq]."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^.]+)', name)
    return [quoted.replace('""', '"') if quoted else plain for quoted, plain in parts]


def _where(location: TargetLocation) -> tuple[str, str, str, str]:
    """(server, user, database, createdb command) the URL and libpq's environment point at,
    for messages."""
    assert location.conninfo is not None
    try:
        params = conninfo_to_dict(location.conninfo)
    except psycopg.Error:
        params = {}
    host = str(params.get("host") or os.environ.get("PGHOST") or "")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    if not host or host.startswith("/"):
        server = f"the local socket {host or '(default folder)'}, port {port}"
    else:
        server = f"{host}:{port}"
    user = str(params.get("user") or os.environ.get("PGUSER") or _login())
    database = str(params.get("dbname") or os.environ.get("PGDATABASE") or user)
    where = ["-h", host] if host else []
    createdb = " ".join(["createdb", *where, "-p", port, "-U", user, "-E", "UTF8", database])
    return server, user, database, createdb


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid
        return "(your login)"


def _connect(location: TargetLocation, *, busy_timeout: float) -> psycopg.Connection[Any]:
    assert location.conninfo is not None and location.schema is not None
    try:
        given = conninfo_to_dict(location.conninfo)
    except psycopg.ProgrammingError as e:
        raise BadTargetURL(
            f"Cannot read the target {location.display!r}: {_first_line(str(e))}."
        ) from None
    options: dict[str, Any] = {"client_encoding": "UTF8"}
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = 10
    if "application_name" not in given and "PGAPPNAME" not in os.environ:
        options["application_name"] = "cliniko-switch"
    try:
        conn = psycopg.connect(location.conninfo, autocommit=True, **options)
    except psycopg.Error as e:
        raise _connect_error(e, location) from None
    try:
        if conn.info.server_version < MIN_SERVER_VERSION:
            raise TargetOpenError(
                f"{location.display}: the server runs PostgreSQL "
                f"{conn.info.server_version // 10000}; clinic stores need PostgreSQL 11 or newer."
            )
        encoding = conn.info.parameter_status("server_encoding")
        if encoding and encoding.upper() not in ("UTF8", "UTF-8"):
            raise TargetOpenError(
                f"The database of {location.display} uses the {encoding} encoding; a clinic "
                "store needs UTF8 (names in every script). Create the database with "
                "ENCODING 'UTF8'."
            )
        conn.execute(
            "SELECT set_config('search_path', %s, false), "
            "set_config('lock_timeout', %s, false), set_config('TimeZone', 'UTC', false)",
            (
                sql.Identifier(location.schema).as_string(conn),
                f"{max(1, round(busy_timeout * 1000))}ms",
            ),
        )
    except psycopg.Error as e:
        conn.close()
        raise TargetOpenError(
            f"Cannot use the PostgreSQL clinic store {location.display}: {_first_line(str(e))}"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_error(e: psycopg.Error, location: TargetLocation) -> TargetError:
    """A failed connection as a message that says what to do (never with a password)."""
    text = _first_line(str(e))
    low = text.lower()
    shown = location.display
    server, user, database, createdb = _where(location)
    if "password authentication failed" in low or "authentication failed" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} refused the login of user {user!r} (wrong "
            "password, or no such user). Give the password in the PGPASSWORD environment "
            "variable or in ~/.pgpass (host:port:database:user:password, mode 0600), then try "
            f"again. Target: {shown}"
        )
    if "no password supplied" in low or "password is required" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} asks for user {user!r}'s password and none was "
            "given: set PGPASSWORD, or add a line to ~/.pgpass "
            "(host:port:database:user:password, mode 0600), then try again. "
            f"Target: {shown}"
        )
    if "role" in low and "does not exist" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} has no user {user!r}: give the right user in the "
            f"URL (postgresql://USER@host/database), or create it. Target: {shown}"
        )
    if "database" in low and "does not exist" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} has no database {database!r}. Create it first, "
            f'as a user allowed to ({createdb}, or in psql: CREATE DATABASE "{database}" '
            "ENCODING 'UTF8';), or fix the database name in --target; then try again. The "
            f"load creates the clinic's schema and tables itself. Target: {shown}"
        )
    if "connection refused" in low:
        return TargetOpenError(
            f"Nothing accepted the connection at {server}: is PostgreSQL running there, and "
            f"accepting TCP/IP connections on that port? Check the host and port in --target. "
            f"Target: {shown}"
        )
    if "no such file or directory" in low and "socket" in low:
        return TargetOpenError(
            f"No PostgreSQL server is listening at {server}: is it running? Give the host "
            f"(and port) in --target, e.g. postgresql://user@db.example.org/clinic. "
            f"Target: {shown}"
        )
    if "translate host name" in low or "name or service not known" in low:
        return TargetOpenError(
            f"The host of {shown} cannot be found ({server}): check its spelling, or your "
            "network and DNS."
        )
    if "timeout expired" in low or "timed out" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} did not answer in time: check the host, the "
            f"port and any firewall between here and there. Target: {shown}"
        )
    if "ssl" in low or "certificate" in low:
        return TargetOpenError(
            f"The secure (SSL/TLS) connection to {server} failed: {text}. Check sslmode in "
            "--target (require, verify-ca or verify-full need a server with TLS; verify-ca and "
            "verify-full also need its CA certificate, sslrootcert=/path/to/ca.crt). "
            f"Target: {shown}"
        )
    if "pg_hba.conf" in low:
        return TargetOpenError(
            f"The PostgreSQL server at {server} does not let user {user!r} in from here "
            f"(pg_hba.conf): {text}. Ask its administrator to allow this host, or use "
            f"sslmode=require if the server only takes encrypted connections. Target: {shown}"
        )
    if "invalid" in low and ("uri" in low or "option" in low or "value" in low):
        return BadTargetURL(f"Cannot read the target {shown!r}: {text}.")
    return TargetOpenError(f"Cannot connect to the PostgreSQL clinic store {shown}: {text}")


__all__ = ["PostgresClinicStore"]
