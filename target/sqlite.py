"""The SQLite clinic store: one local file, the embedded default (stdlib sqlite3).

- The file is created 0600 with os.open before SQLite opens it (SQLite never creates it, and
  gives its -wal and -shm files the same mode). WAL journal, synchronous=FULL (a committed
  batch survives a power cut; at ~2,000 rows per commit it costs nothing measurable),
  foreign keys on.
- An existing file is checked before anything is written to it: a directory, a file that is
  not SQLite, an SQLite file of another application (the staging file, say), or a clinic store
  of a newer schema is refused with a clear error and left untouched.
- Writes take the write lock up front (BEGIN IMMEDIATE); if another program holds it longer
  than the busy timeout, `ClinicLocked`. Each write call is atomic (a savepoint inside a batch).
- Rows are converted by the catalogue's column types (see `target.schema`): Decimal <-> exact
  text, timezone-aware datetime <-> UTC text, date <-> ISO text, list/dict <-> JSON text,
  bool <-> 0/1; a value of the wrong type is refused (`InvalidValue`) rather than coerced.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from target.base import (
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
from target.schema import (
    APPLICATION_ID,
    CURRENT_VERSION,
    DECIMAL_LIMIT,
    DECIMAL_PLACES,
    DELETABLE_TABLES,
    META_STATEMENTS,
    MIGRATIONS,
    TABLES,
    ColumnType,
    Table,
)

DEFAULT_BUSY_TIMEOUT = 5.0
"""Seconds to wait for another program's write lock before `ClinicLocked`."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_CHUNK = 500
"""Ids per `IN (...)` query."""
_MICRO = Decimal(1).scaleb(-DECIMAL_PLACES)
_CENTS = Decimal("0.01")

# --- value conversion -------------------------------------------------------------------
# Encoders take a Python value and return what SQLite stores; they raise TypeError or
# ValueError with a message that never contains the value itself.

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _enc_integer(v: Any) -> Any:
    if v is None or type(v) is int:
        return v
    if isinstance(v, bool):
        raise TypeError("a boolean for an integer column")
    if isinstance(v, int):
        return int(v)
    raise TypeError(f"an integer column needs int, not {type(v).__name__}")


def _enc_text(v: Any) -> Any:
    if v is None or type(v) is str:
        return v
    if isinstance(v, str):
        return "" + v
    raise TypeError(f"a text column needs str, not {type(v).__name__}")


def _enc_boolean(v: Any) -> Any:
    if v is None:
        return None
    if v is True or v is False:
        return int(v)
    if type(v) is int and v in (0, 1):
        return v
    raise TypeError(f"a boolean column needs bool, not {type(v).__name__}")


def _enc_decimal(v: Any) -> Any:
    if v is None:
        return None
    if type(v) is not Decimal:
        if isinstance(v, bool | float):
            raise TypeError(f"a decimal column needs Decimal, not {type(v).__name__}")
        if isinstance(v, int):
            v = Decimal(v)
        elif isinstance(v, str):
            try:
                v = Decimal(v)
            except InvalidOperation:
                raise ValueError("text that is not a decimal number") from None
        else:
            raise TypeError(f"a decimal column needs Decimal, not {type(v).__name__}")
    if not v.is_finite():
        raise ValueError("a decimal that is not finite")
    exponent = v.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_PLACES and v != v.quantize(_MICRO):
        raise ValueError(f"a decimal with more than {DECIMAL_PLACES} decimal places")
    if abs(v) >= DECIMAL_LIMIT:
        raise ValueError("a decimal out of range")
    return format(v, "f")


def _enc_date(v: Any) -> Any:
    if v is None:
        return None
    if type(v) is date:
        return v.isoformat()
    if isinstance(v, datetime):
        raise TypeError("a date column needs date, not datetime")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, str):
        try:
            return date.fromisoformat(v).isoformat()
        except ValueError:
            raise ValueError("text that is not an ISO date") from None
    raise TypeError(f"a date column needs date, not {type(v).__name__}")


def _enc_timestamp(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError("text that is not an ISO timestamp") from None
    if not isinstance(v, datetime):
        raise TypeError(f"a timestamp column needs datetime, not {type(v).__name__}")
    return format_timestamp(v)  # refuses naive datetimes


def _json_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, datetime):
        return format_timestamp(v)
    if isinstance(v, date):
        return v.isoformat()
    raise TypeError(f"cannot store a {type(v).__name__} as JSON")


def _dumps(v: Any) -> str:
    return json.dumps(
        v, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
    )


def _enc_json(v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, list | tuple | dict | Mapping):
        # Text here is most likely JSON already serialised: it would be stored twice over.
        raise TypeError(f"a JSON column needs a list or dict, not {type(v).__name__}")
    return _dumps(v)


def _dec_boolean(v: Any) -> Any:
    return None if v is None else bool(v)


def _dec_decimal(v: Any) -> Any:
    if v is None:
        return None
    return Decimal(v) if type(v) is str else Decimal(str(v))


def _dec_date(v: Any) -> Any:
    return None if v is None else date.fromisoformat(v)


def _dec_timestamp(v: Any) -> Any:
    if v is None:
        return None
    d = datetime.fromisoformat(v)
    if d.tzinfo is UTC:
        return d
    if d.tzinfo is None:  # written by something that did not say: UTC by convention
        return d.replace(tzinfo=UTC)
    return d.astimezone(UTC)


def _dec_json(v: Any) -> Any:
    return None if v is None else json.loads(v)


ENCODERS: dict[ColumnType, Encoder] = {
    "integer": _enc_integer,
    "text": _enc_text,
    "boolean": _enc_boolean,
    "decimal": _enc_decimal,
    "date": _enc_date,
    "timestamp": _enc_timestamp,
    "json": _enc_json,
}
DECODERS: dict[ColumnType, Decoder | None] = {
    "integer": None,
    "text": None,
    "boolean": _dec_boolean,
    "decimal": _dec_decimal,
    "date": _dec_date,
    "timestamp": _dec_timestamp,
    "json": _dec_json,
}


def _tidy(value: Decimal) -> Decimal:
    """Money as cents when it is whole cents, otherwise without trailing zeros."""
    cents = value.quantize(_CENTS)
    return cents if cents == value else value.normalize()


# --- audit detail guard -----------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9_.:/+\-]{0,200}")


def _check_detail(value: Any, depth: int = 0) -> None:
    """Audit details hold ids, codes and field names: no whitespace, no free text."""
    if depth > 8:
        raise ForbiddenWrite("audit detail nested too deeply")
    if value is None or isinstance(value, bool | int | float | Decimal):
        return
    if isinstance(value, str):
        if not _TOKEN_RE.fullmatch(value):
            raise ForbiddenWrite(
                "audit detail holds free text; the audit log takes ids, codes and field "
                "names only (no spaces), never patient data"
            )
        return
    if isinstance(value, list | tuple):
        for v in value:
            _check_detail(v, depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ForbiddenWrite("audit detail keys must be text")
            _check_detail(k, depth + 1)
            _check_detail(v, depth + 1)
        return
    raise ForbiddenWrite(f"audit detail cannot hold a {type(value).__name__}")


_AUDIT_KEYS = frozenset({"at", "run_id", "actor", "action", "kind", "target_id", "detail"})

# --- prepared statements ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WritePlan:
    """One statement for rows with one set of keys: the SQL and how to build parameters."""

    sql: str
    keys: tuple[str, ...]
    getter: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    encoders: tuple[tuple[int, Encoder], ...]
    tail_stamps: int
    """How many `now` values follow the row's own values (created_at/updated_at not given)."""

    def params(self, row: Mapping[str, Any], now: str, last: Any = None) -> list[Any]:
        values = list(self.getter(row))
        for i, enc in self.encoders:
            values[i] = enc(values[i])
        if self.tail_stamps:
            values.extend([now] * self.tail_stamps)
        if last is not None:
            values.append(last)
        return values


def _getter(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not keys:
        return lambda row: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return itemgetter(*keys)


# --- the store --------------------------------------------------------------------------


class SQLiteClinicStore:
    """A clinic store in one SQLite file. Use `open()` (or `target.open_target`)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        busy_timeout: float,
        readonly: bool,
        in_memory: bool = False,
    ) -> None:
        self._conn = conn
        self._path = path
        self._busy_timeout = busy_timeout
        self._readonly = readonly
        self._in_memory = in_memory
        self._in_tx = False
        self._savepoints = 0
        self._insert_plans: dict[tuple[str, tuple[str, ...]], _WritePlan] = {}
        self._update_plans: dict[tuple[str, tuple[str, ...]], _WritePlan] = {}
        self._decoders: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, Decoder], ...]] = {}

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        readonly: bool = False,
        migrate: bool = True,
    ) -> SQLiteClinicStore:
        """Open (creating it 0600 if missing) the clinic store at `path`, migrated to the
        current schema.

        `readonly=True` writes nothing anywhere: a missing file is planned against as an
        empty clinic held in memory; an existing store must already be at the current
        version (`OutdatedClinicSchema` otherwise).
        """
        p = Path(path).expanduser()
        if p.is_dir():
            raise NotAClinicStore(f"{p} is a directory, not a clinic store file")
        fresh = not p.exists()
        if fresh:
            if not p.parent.is_dir():
                hint = ""
                if not p.is_absolute() and len(p.parts) > 1 and (Path("/") / p.parts[0]).is_dir():
                    hint = (
                        f" (did you mean /{p}? an absolute path takes four slashes: sqlite:////{p})"
                    )
                raise TargetOpenError(
                    f"cannot create the clinic store {p}: the folder {p.parent} does not "
                    f"exist{hint}"
                )
            if readonly:
                return cls._empty_in_memory(p, busy_timeout)
            _create_private_file(p)
        else:
            _check_sqlite_header(p)
        conn = _connect(p, readonly=readonly, busy_timeout=busy_timeout)
        store = cls(conn, p, busy_timeout=busy_timeout, readonly=readonly)
        try:
            empty = store._check_identity()
            if readonly:
                if empty:
                    conn.close()
                    return cls._empty_in_memory(p, busy_timeout)
                if store.schema_version() < CURRENT_VERSION:
                    raise OutdatedClinicSchema(
                        f"The clinic store {p} is at schema version {store.schema_version()} "
                        f"and needs upgrading to {CURRENT_VERSION}; a load upgrades it."
                    )
                with store._errors():
                    conn.execute("PRAGMA query_only = ON")
            else:
                with store._errors():
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("PRAGMA synchronous = FULL")
                if migrate:
                    store.migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _empty_in_memory(cls, path: Path, busy_timeout: float) -> SQLiteClinicStore:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        store = cls(conn, path, busy_timeout=busy_timeout, readonly=False, in_memory=True)
        store.migrate()
        conn.execute("PRAGMA query_only = ON")
        store._readonly = True
        return store

    def _check_identity(self) -> bool:
        """Refuse anything but a clinic store we understand. True for an empty database."""
        with self._errors():
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id == APPLICATION_ID:
                found = self.schema_version()
                if found > CURRENT_VERSION:
                    raise NewerClinicSchema(
                        f"The clinic store {self._path} is at schema version {found}, newer "
                        f"than this cliniko-switch understands (up to {CURRENT_VERSION}). "
                        "Update cliniko-switch; the file was left untouched.",
                        found=found,
                        supported=CURRENT_VERSION,
                    )
                return False
            names = [
                r[0]
                for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "ORDER BY name LIMIT 4"
                )
            ]
        if app_id != 0:
            raise NotAClinicStore(
                f"{self._path} is an SQLite database of another application "
                f"(application_id {app_id:#x}), not a clinic store; it was left untouched."
            )
        if names:
            raise NotAClinicStore(
                f"{self._path} is an SQLite database but not a clinic store (it has tables "
                f"such as {', '.join(names)}: is it the staging file?); it was left untouched."
            )
        return True

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}"

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        self._conn.close()

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
        where = " (missing: an empty clinic in memory)" if self._in_memory else ""
        return f"<SQLiteClinicStore {self._path}{where}>"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's low-level errors as `TargetError`s that say what to do."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as e:
            code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF
            if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
                raise ClinicLocked(
                    f"The clinic store {self._path} is locked by another program (waited "
                    f"{self._busy_timeout:g}s). Close the MyNewClinic app or the other load "
                    "using it, then try again."
                ) from e
            if code == _SQLITE_READONLY:
                raise TargetError(
                    f"The clinic store {self._path} was opened read-only (or its file is not "
                    "writable): nothing can be written to it."
                ) from e
            if code in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
                raise NotAClinicStore(f"{self._path} is not a usable SQLite database ({e}).") from e
            raise

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._errors():
            has = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not has:
                return 0
            row = self._conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> list[int]:
        if self._in_tx:
            raise TransactionError("migrate() cannot run inside a transaction()")
        if self.schema_version() == CURRENT_VERSION:
            return []
        if self._readonly:
            raise OutdatedClinicSchema(f"{self._path} is open read-only and cannot be upgraded")
        applied: list[int] = []
        now = format_timestamp(datetime.now(UTC))
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in META_STATEMENTS:
                    self._conn.execute(statement)
                found = self.schema_version()  # again, now that we hold the lock
                if found > CURRENT_VERSION:
                    raise NewerClinicSchema(
                        f"The clinic store {self._path} is at schema version {found}, newer "
                        f"than this cliniko-switch understands (up to {CURRENT_VERSION}).",
                        found=found,
                        supported=CURRENT_VERSION,
                    )
                for migration in MIGRATIONS:
                    if migration.version <= found:
                        continue
                    for statement in migration.statements:
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations (version, description, applied_at) "
                        "VALUES (?, ?, ?)",
                        (migration.version, migration.description, now),
                    )
                    applied.append(migration.version)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
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

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            raise TransactionError("transaction() is not nestable: one batch is one transaction")
        with self._errors():
            self._conn.execute("BEGIN" if self._readonly else "BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield
            with self._errors():
                self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """One write call: all or nothing, in the caller's batch or a transaction of its own."""
        if not self._in_tx:
            with self.transaction(), self._errors():
                yield
            return
        self._savepoints += 1
        name = f"write_call_{self._savepoints}"
        try:
            with self._errors():
                self._conn.execute(f"SAVEPOINT {name}")
            try:
                with self._errors():
                    yield
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            with self._errors():
                self._conn.execute(f"RELEASE {name}")
        finally:
            self._savepoints -= 1

    def _run(self, table: str, batches: Sequence[tuple[str, list[list[Any]], list[int]]]) -> int:
        """Execute (sql, params, input indexes) batches atomically; total rows changed."""
        changed = 0
        try:
            with self._atomic():
                cur = self._conn.cursor()
                for sql, params, _ in batches:
                    cur.executemany(sql, params)
                    changed += max(cur.rowcount, 0)
        except sqlite3.IntegrityError as e:
            index = self._locate_failure(batches)
            where = f" (input row {index})" if index is not None else ""
            raise IntegrityViolation(
                f"{table}: {e}{where}; nothing from this call was written",
                table=table,
                row_index=index,
            ) from None
        return changed

    def _locate_failure(
        self, batches: Sequence[tuple[str, list[list[Any]], list[int]]]
    ) -> int | None:
        """After a failed call (already undone): the input index of the first failing row."""
        found: int | None = None
        try:
            with self._atomic():
                for sql, params, indexes in batches:
                    for p, i in zip(params, indexes, strict=True):
                        try:
                            self._conn.execute(sql, p)
                        except sqlite3.IntegrityError:
                            found = i
                            break
                    if found is not None:
                        break
                raise _Undo
        except _Undo:
            pass
        except TargetError:  # e.g. locked: the index is a nicety, not worth failing over
            return None
        return found

    # -- rows -----------------------------------------------------------------------------

    def _insert_plan(self, table: Table, keys: tuple[str, ...]) -> _WritePlan:
        cache_key = (table.name, keys)
        plan = self._insert_plans.get(cache_key)
        if plan is None:
            self._check_columns(table, keys)
            names = table.column_names
            missing_stamps = tuple(
                s for s in ("created_at", "updated_at") if s not in keys and s in names
            )
            # Without ids in the rows, the allocated id is the last parameter.
            value_cols = (
                (*keys, *missing_stamps) if "id" in keys else (*keys, *missing_stamps, "id")
            )
            placeholders = ", ".join("?" * len(value_cols))
            sql = (
                f"INSERT INTO {table.name} ({', '.join(value_cols)}) "  # noqa: S608 - names from the catalogue
                f"VALUES ({placeholders})"
            )
            encoders = tuple((i, ENCODERS[table.column(k).type]) for i, k in enumerate(keys))
            plan = _WritePlan(sql, keys, _getter(keys), encoders, len(missing_stamps))
            self._insert_plans[cache_key] = plan
        return plan

    def _encode(
        self,
        table: Table,
        plan: _WritePlan,
        row: Mapping[str, Any],
        index: int,
        now: str,
        last: Any,
    ) -> list[Any]:
        try:
            return plan.params(row, now, last)
        except KeyError as e:
            raise SchemaMismatch(
                f"{table.name}: input row {index} lacks column {e.args[0]!r}"
            ) from None
        except (TypeError, ValueError) as e:
            for key in plan.keys:
                try:
                    ENCODERS[table.column(key).type](row[key])
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

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        if not rows:
            return []
        t = self._table(table)
        self._guard(table, rows)
        given_ids = "id" in rows[0]
        if any(("id" in row) != given_ids for row in rows):
            raise SchemaMismatch(f"{table}: give an id for every row or for none")
        now = format_timestamp(datetime.now(UTC))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(tuple(row), []).append(i)
        plans = {keys: self._insert_plan(t, keys) for keys in groups}
        with self._atomic():
            if given_ids:
                ids = [rows[i]["id"] for i in range(len(rows))]
                if any(type(x) is not int for x in ids):
                    raise InvalidValue(
                        f"{table}.id: ids must be int", table=table, column="id", row_index=None
                    )
            else:
                start = self._next_id(table)
                ids = list(range(start, start + len(rows)))
            batches = []
            for keys, indexes in groups.items():
                plan = plans[keys]
                params = [
                    self._encode(t, plan, rows[i], i, now, None if given_ids else ids[i])
                    for i in indexes
                ]
                batches.append((plan.sql, params, indexes))
            self._run(table, batches)
        return ids

    def _next_id(self, table: str) -> int:
        row = self._conn.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "  # noqa: S608 - a catalogue name
            f"coalesce((SELECT max(id) FROM {table}), 0))",
            (table,),
        ).fetchone()
        return int(row[0]) + 1

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
            sets = ", ".join(f"{k} = ?" for k in (*keys, *stamp))
            sql = f"UPDATE {table.name} SET {sets} WHERE id = ?"  # noqa: S608 - catalogue names
            encoders = tuple((i, ENCODERS[table.column(k).type]) for i, k in enumerate(keys))
            plan = _WritePlan(sql, keys, _getter(keys), encoders, len(stamp))
            self._update_plans[cache_key] = plan
        return plan

    def update_rows(self, table: str, updates: Sequence[tuple[int, Mapping[str, Any]]]) -> int:
        if not updates:
            return 0
        t = self._table(table)
        self._guard(table, (values for _, values in updates))
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
        batches = []
        for keys, indexes in groups.items():
            plan = self._update_plan(t, keys)
            params = [self._encode(t, plan, updates[i][1], i, now, updates[i][0]) for i in indexes]
            batches.append((plan.sql, params, indexes))
        return self._run(table, batches)

    def delete_rows(self, table: str, ids: Iterable[int]) -> int:
        self._table(table)
        if table not in DELETABLE_TABLES:
            raise ForbiddenWrite(f"the import never deletes from {table}")
        params = [[i] for i in ids]
        if not params:
            return 0
        sql = f"DELETE FROM {table} WHERE id = ?"  # noqa: S608 - a catalogue name
        return self._run(table, [(sql, params, list(range(len(params))))])

    def _row_decoders(
        self, table: Table, columns: tuple[str, ...]
    ) -> tuple[tuple[int, Decoder], ...]:
        key = (table.name, columns)
        decoders = self._decoders.get(key)
        if decoders is None:
            decoders = tuple(
                (i, dec)
                for i, c in enumerate(columns)
                if (dec := DECODERS[table.column(c).type]) is not None
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
        select = f"SELECT {', '.join(cols)} FROM {table} WHERE id IN "  # noqa: S608
        with self._errors():
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                sql = select + f"({', '.join('?' * len(chunk))})"
                for raw in self._conn.execute(sql, chunk):
                    row = _decode(raw, decoders)
                    out[row[0]] = dict(zip(cols, row, strict=True))
        return out

    def iter_rows(
        self, table: str, columns: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row in id order. Do not write to the same table while iterating."""
        t = self._table(table)
        cols = self._columns(t, columns)
        decoders = self._row_decoders(t, cols)
        sql = f"SELECT {', '.join(cols)} FROM {table} ORDER BY id"  # noqa: S608
        with self._errors():
            cursor = self._conn.execute(sql)
        while True:
            with self._errors():
                chunk = cursor.fetchmany(1000)
            if not chunk:
                return
            for raw in chunk:
                yield dict(zip(cols, _decode(raw, decoders), strict=True))

    # -- links --------------------------------------------------------------------------

    def load_links(self, source: str, kind: str) -> dict[str, Link]:
        with self._errors():
            cursor = self._conn.execute(
                "SELECT source_id, target_id, source_hash, target_hash FROM import_links "
                "WHERE source = ? AND kind = ?",
                (source, kind),
            )
            return {r[0]: Link(r[1], r[2], r[3]) for r in cursor}

    def upsert_links(
        self,
        source: str,
        kind: str,
        links: Sequence[LinkRow | tuple[str, int, str, str]],
        run_id: int | None,
    ) -> None:
        if not links:
            return
        now = format_timestamp(datetime.now(UTC))
        params: list[list[Any]] = []
        for i, (source_id, target_id, source_hash, target_hash) in enumerate(links):
            if type(source_id) is not str or type(target_id) is not int:
                raise InvalidValue(
                    f"import_links: source_id must be str and target_id int (input row {i})",
                    table="import_links",
                    column="source_id" if type(source_id) is not str else "target_id",
                    row_index=i,
                )
            params.append(
                [source, kind, source_id, target_id, source_hash, target_hash, run_id, now, now]
            )
        sql = (
            "INSERT INTO import_links (source, kind, source_id, target_id, source_hash, "
            "target_hash, run_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (source, kind, source_id) DO UPDATE SET "
            "target_id = excluded.target_id, source_hash = excluded.source_hash, "
            "target_hash = excluded.target_hash, run_id = excluded.run_id, "
            "updated_at = excluded.updated_at"
        )
        self._run("import_links", [(sql, params, list(range(len(params))))])

    # -- matching -----------------------------------------------------------------------

    def name_index(self, table: str, column: str = "match_name") -> dict[str, list[int]]:
        t = self._table(table)
        self._check_columns(t, (column,))
        index: dict[str, list[int]] = {}
        sql = f"SELECT {column}, id FROM {table} WHERE {column} IS NOT NULL ORDER BY id"  # noqa: S608
        with self._errors():
            for value, row_id in self._conn.execute(sql):
                index.setdefault(value, []).append(row_id)
        return index

    def patient_match_index(self) -> dict[str, list[int]]:
        return self.name_index("patients", "match_key")

    def busy_slots(
        self, practitioner_ids: Iterable[int], *, include_imported: bool = True
    ) -> dict[int, list[Slot]]:
        wanted = list(dict.fromkeys(practitioner_ids))
        slots: dict[int, list[Slot]] = {p: [] for p in wanted}
        imported = "" if include_imported else " AND imported_history = 0"
        with self._errors():
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                for table, status in (
                    ("appointments", " AND status <> 'cancelled'"),
                    ("group_appointments", ""),
                ):
                    sql = (
                        f"SELECT practitioner_id, starts_at, ends_at, id FROM {table} "  # noqa: S608
                        f"WHERE practitioner_id IN ({marks}){status}{imported}"
                    )
                    for pid, starts, ends, row_id in self._conn.execute(sql, chunk):
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
        started = format_timestamp(started_at or datetime.now(UTC))
        with self._atomic():
            try:
                cur = self._conn.execute(
                    "INSERT INTO import_runs (started_at, staging_path, source, mode) "
                    "VALUES (?, ?, ?, ?)",
                    (started, staging_path, source, mode),
                )
            except sqlite3.IntegrityError as e:
                raise IntegrityViolation(
                    f"import_runs: {e}", table="import_runs", row_index=0
                ) from None
            run_id = cur.lastrowid
        assert run_id is not None
        return run_id

    def finish_import_run(
        self,
        run_id: int,
        outcome: str,
        counts: Mapping[str, int],
        verification: Mapping[str, Any] | None,
        *,
        finished_at: datetime | None = None,
    ) -> None:
        finished = format_timestamp(finished_at or datetime.now(UTC))
        with self._atomic():
            cur = self._conn.execute(
                "UPDATE import_runs SET finished_at = ?, outcome = ?, counts = ?, "
                "verification = ? WHERE id = ?",
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
        params = audit_params(entries)
        sql = (
            "INSERT INTO audit_log (at, run_id, actor, action, kind, target_id, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._run("audit_log", [(sql, params, list(range(len(params))))])

    # -- verification -------------------------------------------------------------------

    def table_counts(self) -> dict[str, int]:
        with self._errors():
            return {
                name: int(self._conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608
                for name in TABLES
            }

    def balances(self) -> dict[int, Decimal]:
        with self._errors():
            return {
                patient_id: _tidy(Decimal(balance))
                for patient_id, balance in self._conn.execute(
                    "SELECT patient_id, balance FROM patient_balances"
                )
            }

    def outbox_count(self) -> int:
        with self._errors():
            return int(self._conn.execute("SELECT count(*) FROM message_outbox").fetchone()[0])

    def settings(self) -> dict[str, Any]:
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


class _Undo(Exception):
    """Raised to roll back a probe."""


def _decode(raw: tuple[Any, ...], decoders: tuple[tuple[int, Decoder], ...]) -> tuple[Any, ...]:
    if not decoders:
        return raw
    values = list(raw)
    for i, dec in decoders:
        values[i] = dec(values[i])
    return tuple(values)


# --- files ------------------------------------------------------------------------------


def _create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 (health records), before SQLite opens it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created meanwhile: it is checked like any existing file
    except OSError as e:
        raise TargetOpenError(f"cannot create the clinic store {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)  # exactly 0600, whatever the umask
    finally:
        os.close(fd)


def _check_sqlite_header(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise TargetOpenError(f"cannot read {path}: {e.strerror}") from None
    if head and head != _SQLITE_MAGIC:
        raise NotAClinicStore(
            f"{path} is not an SQLite database, so not a clinic store; it was left untouched."
        )
    if not head:  # an empty file becomes a clinic store: make it private like a new one
        try:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        except OSError as e:
            raise TargetOpenError(f"cannot use {path}: {e.strerror}") from None


def _connect(path: Path, *, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    # mode=rw: SQLite must never create the file itself (we made it 0600 above).
    uri = f"file:{quote(str(path.resolve()))}?mode={'ro' if readonly else 'rw'}"
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # a worker thread may load; one thread at a time
        )
    except sqlite3.Error as e:
        raise TargetOpenError(f"cannot open the clinic store {path}: {e}") from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise NotAClinicStore(f"{path} is not a usable SQLite database ({e}).") from None
    return conn


def audit_params(entries: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Audit entries as `audit_log` rows (at, run_id, actor, action, kind, target_id, detail),
    checked the same for every clinic store: known keys only, an action, no free text."""
    now = format_timestamp(datetime.now(UTC))
    params: list[list[Any]] = []
    for i, e in enumerate(entries):
        unknown = set(e) - _AUDIT_KEYS
        if unknown:
            raise SchemaMismatch(f"audit entry {i} has unknown key(s) {sorted(unknown)}")
        if not e.get("action"):
            raise SchemaMismatch(f"audit entry {i} has no action")
        detail = e.get("detail")
        _check_detail(detail)
        for key in ("action", "kind", "actor"):
            if e.get(key) is not None:
                _check_detail(e[key])
        at = e.get("at")
        params.append(
            [
                now if at is None else _enc_timestamp(at),
                _enc_integer(e.get("run_id")),
                e.get("actor") or "cliniko-switch",
                e["action"],
                e.get("kind"),
                _enc_integer(e.get("target_id")),
                None if detail is None else _dumps(detail),
            ]
        )
    return params
