"""The PostgreSQL clinic store: its schema, opening and refusing, locks, guards, connecting.

(What both backends share, rows, links, balances, runs and audit, is tested on both by the
other modules of this folder.)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target import (
    ClinicLocked,
    ForbiddenWrite,
    NewerClinicSchema,
    NotAClinicStore,
    OutdatedClinicSchema,
    SQLiteClinicStore,
    TargetError,
    open_target,
    row_hash,
)
from target.schema import CURRENT_VERSION, MIGRATIONS, TABLES
from tests.backends import Clinics, raw
from tests.pg_server import DATABASE, ROLE, PgServer, in_ci, new_schema

if not in_ci():  # under CI a missing psycopg is a failure, not a skip
    pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")
import psycopg

import target.postgres as pg_backend
from target.pg_schema import PG_MIGRATIONS, PG_TYPES, STORE_MARKER, PgMigration
from target.postgres import PostgresClinicStore

BACKENDS = ("postgres",)


@pytest.fixture
def server(pg_server: PgServer) -> PgServer:
    return pg_server


@pytest.fixture
def pg(store: Any) -> PostgresClinicStore:
    assert isinstance(store, PostgresClinicStore)
    return store


@pytest.fixture
def admin(server: PgServer) -> Iterator[Any]:
    """A superuser connection (autocommit), as a DBA or the clinic app would use."""
    conn = server.connect()
    try:
        yield conn
    finally:
        conn.close()


# --- the schema ----------------------------------------------------------------------------


def test_pg_migrations_follow_the_sqlite_ones() -> None:
    assert [(m.version, m.description) for m in PG_MIGRATIONS] == [
        (m.version, m.description) for m in MIGRATIONS
    ]


def test_migrating_from_scratch_yields_exactly_the_catalogue(pg: PostgresClinicStore) -> None:
    conn, schema = pg._conn, pg.schema
    for table in TABLES.values():
        info = conn.execute(
            "SELECT column_name, data_type, is_nullable, is_identity FROM "
            "information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            (schema, table.name),
        ).fetchall()
        assert [r[0] for r in info] == list(table.column_names), table.name
        for name, data_type, nullable, identity in info:
            column = table.column(name)
            assert data_type == PG_TYPES[column.type], (table.name, name)
            assert (nullable == "YES") == column.nullable, (table.name, name)
            assert (identity == "YES") == (name == "id"), (table.name, name)
        fks = conn.execute(
            "SELECT a.attname, c.confrelid::regclass::text FROM pg_constraint AS c "
            "JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
            (f"{schema}.{table.name}",),
        ).fetchall()
        assert set(fks) == {(c.name, c.references) for c in table.columns if c.references}
        indexed = {
            (tuple(cols), unique)
            for cols, unique in conn.execute(
                "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY "
                "AS k(n, o) JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.n "
                "ORDER BY k.o), i.indisunique FROM pg_index AS i WHERE i.indrelid = %s::regclass",
                (f"{schema}.{table.name}",),
            ).fetchall()
        }
        assert (("id",), True) in indexed
        for ix in table.indexes:
            assert (ix, False) in indexed, (table.name, ix)
        for uq in table.unique:
            assert (uq, True) in indexed, (table.name, uq)
    names = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE'",
            (schema,),
        ).fetchall()
    }
    assert names - {"schema_migrations"} == set(TABLES)
    [(view,)] = conn.execute(
        "SELECT count(*) FROM information_schema.views WHERE table_schema = %s "
        "AND table_name = 'patient_balances'",
        (schema,),
    ).fetchall()
    assert view == 1
    [(marker,)] = conn.execute(
        "SELECT obj_description(%s::regclass, 'pg_class')", (f"{schema}.schema_migrations",)
    ).fetchall()
    assert marker == STORE_MARKER
    assert pg.schema_version() == CURRENT_VERSION


def test_native_types_as_another_program_sees_them(
    pg: PostgresClinicStore, admin: Any, rows: Any
) -> None:
    [pid] = pg.insert_rows(
        "patients", [rows.patient(archived_at=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC))]
    )
    pg.insert_rows("invoices", [rows.invoice(pid, "0.10"), rows.invoice(pid, "81.80")])
    schema = pg.schema
    totals = admin.execute(f"SELECT total FROM {schema}.invoices ORDER BY id").fetchall()
    assert totals == [(Decimal("0.10"),), (Decimal("81.80"),)]
    [(dob, phones, archived, archived_at)] = admin.execute(
        f"SELECT date_of_birth, phones, archived, archived_at FROM {schema}.patients"
    ).fetchall()
    assert dob == date(1990, 1, 2)
    assert phones == [{"type": "Mobile", "number": "021 123 456"}]
    assert archived is False
    assert archived_at == datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    [(balance,)] = admin.execute(f"SELECT balance FROM {schema}.patient_balances").fetchall()
    assert balance == Decimal("81.9")


def test_both_backends_store_and_hash_the_same_rows_alike(
    pg: PostgresClinicStore, tmp_path: Path, rows: Any
) -> None:
    patients = [
        rows.patient(first_name="Zoë 李", medical_alerts=("Penicillin",)),
        rows.patient(archived_at=datetime(2020, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
    ]
    with SQLiteClinicStore.open(tmp_path / "same.db") as lite:
        for store in (lite, pg):
            pids = store.insert_rows("patients", patients)
            store.insert_rows("invoices", [rows.invoice(pids[0], "81.818")])
        skip = {"created_at", "updated_at"}
        for table in ("patients", "invoices"):
            a = [{k: v for k, v in r.items() if k not in skip} for r in lite.iter_rows(table)]
            b = [{k: v for k, v in r.items() if k not in skip} for r in pg.iter_rows(table)]
            assert a == b, table
            assert [row_hash(r) for r in a] == [row_hash(r) for r in b]
        assert lite.balances() == pg.balances()
        assert {str(v) for v in pg.balances().values()} == {"81.818", "0.00"}


# --- opening -------------------------------------------------------------------------------


def test_reopening_is_a_no_op(store_url: str, clinics: Clinics) -> None:
    open_target(store_url).close()
    before = clinics.digest()
    with open_target(store_url) as store:
        assert store.migrate() == []
        assert store.schema_version() == CURRENT_VERSION
    assert clinics.digest() == before


def test_an_empty_schema_made_by_the_dba_becomes_a_clinic_store(
    server: PgServer, admin: Any
) -> None:
    schema = new_schema("dba")
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        with open_target(server.url(schema)) as store:
            assert store.table_counts()["clinic_settings"] == 1
    finally:
        server.drop_schema(schema)


def _with_extra_migrations(monkeypatch: pytest.MonkeyPatch, *extra: PgMigration) -> None:
    migrations = [*PG_MIGRATIONS, *extra]
    monkeypatch.setattr(pg_backend, "PG_MIGRATIONS", migrations)
    monkeypatch.setattr(pg_backend, "CURRENT_VERSION", migrations[-1].version)


def test_pending_migrations_apply_in_order_and_a_failing_one_leaves_the_store_as_it_was(
    store_url: str, clinics: Clinics, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_target(store_url).close()
    v = CURRENT_VERSION
    before = clinics.digest()
    _with_extra_migrations(
        monkeypatch,
        PgMigration(v + 1, "fine", ("ALTER TABLE patients ADD COLUMN pronouns TEXT",)),
        PgMigration(v + 2, "broken", ("ALTER TABLE no_such_table ADD COLUMN x TEXT",)),
    )
    with pytest.raises(psycopg.errors.UndefinedTable):
        open_target(store_url)
    assert clinics.digest() == before
    _with_extra_migrations(
        monkeypatch,
        PgMigration(v + 1, "add a column", ("ALTER TABLE patients ADD COLUMN pronouns TEXT",)),
        PgMigration(v + 2, "use it", ("CREATE INDEX ix_patients_pronouns ON patients (pronouns)",)),
    )
    with open_target(store_url) as store:
        assert store.schema_version() == v + 2
        assert store.migrate() == []


def test_a_newer_store_is_refused_and_left_untouched(
    store_url: str, clinics: Clinics, admin: Any
) -> None:
    open_target(store_url).close()
    schema = clinics.schemas["clinic"]
    admin.execute(
        f"INSERT INTO {schema}.schema_migrations VALUES (%s, 'from the future', now())",
        (CURRENT_VERSION + 5,),
    )
    before = clinics.digest()
    for readonly in (False, True):
        with pytest.raises(NewerClinicSchema) as info:
            open_target(store_url, readonly=readonly)
        message = str(info.value)
        assert f"version {CURRENT_VERSION + 5}" in message
        assert f"up to {CURRENT_VERSION}" in message
        assert "Update cliniko-switch" in message
    assert clinics.digest() == before


def test_another_applications_schema_is_refused_and_left_untouched(
    server: PgServer, admin: Any
) -> None:
    schema = new_schema("app")
    admin.execute(f"CREATE SCHEMA {schema}")
    admin.execute(f"CREATE TABLE {schema}.schema_migrations (version TEXT PRIMARY KEY)")
    admin.execute(f"CREATE TABLE {schema}.users (id BIGINT PRIMARY KEY)")
    try:
        for readonly in (False, True):
            with pytest.raises(NotAClinicStore, match="not a clinic store") as info:
                open_target(server.url(schema), readonly=readonly)
            assert "schema_migrations, users" in str(info.value)
        tables = admin.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchone()
        assert tables == (2,)
    finally:
        server.drop_schema(schema)


def test_readonly_on_a_missing_schema_creates_nothing(server: PgServer) -> None:
    schema = new_schema("ro")
    with open_target(server.url(schema), readonly=True) as store:
        assert store.schema_version() == CURRENT_VERSION
        assert store.table_counts()["patients"] == 0
        assert store.table_counts()["clinic_settings"] == 1
        assert store.balances() == {}
        assert store.settings()["messaging_enabled"] is False
        assert store.load_links("x", "patient") == {}
        assert list(store.iter_rows("patients")) == []
        assert store.busy_slots([1]) == {1: []}
        with store.transaction():
            assert store.fetch_rows("patients", [1]) == {}
        with pytest.raises(TargetError, match="read-only"):
            store.insert_rows("locations", [{"name": "A", "time_zone": "UTC"}])
    assert not server.schema_exists(schema)


def test_readonly_on_an_existing_store_writes_nothing_and_reads_one_snapshot(
    store_url: str, clinics: Clinics, rows: Any, admin: Any
) -> None:
    with open_target(store_url) as store:
        store.insert_rows("patients", [rows.patient()])
    before = clinics.digest()
    with open_target(store_url, readonly=True) as store:
        assert store.table_counts()["patients"] == 1
        with pytest.raises(TargetError, match="read-only"):
            store.update_rows("patients", [(1, {"first_name": "X"})])

        def raw_write_in_the_plans_transaction() -> None:
            with store.transaction():
                raw(store, "UPDATE patients SET first_name = 'X'")

        with pytest.raises(TargetError, match="read-only"):
            raw_write_in_the_plans_transaction()
        with store.transaction():
            assert store.table_counts()["patients"] == 1
            schema = clinics.schemas["clinic"]
            admin.execute(
                f"INSERT INTO {schema}.locations (name, time_zone, created_at, updated_at) "
                "VALUES ('Elsewhere', 'UTC', now(), now())"
            )
            assert store.table_counts()["locations"] == 0  # still the plan's snapshot
        assert store.table_counts()["locations"] == 1
    assert clinics.digest() != before  # the admin's row, not ours


def test_readonly_on_an_outdated_store_says_a_load_upgrades_it(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_target(store_url).close()
    v = CURRENT_VERSION
    _with_extra_migrations(monkeypatch, PgMigration(v + 1, "x", ("CREATE TABLE x (id BIGINT)",)))
    with pytest.raises(OutdatedClinicSchema, match="a load upgrades it"):
        open_target(store_url, readonly=True)


def test_two_clinics_share_a_database_each_in_its_schema(clinics: Clinics, rows: Any) -> None:
    with open_target(clinics.url("a")) as a, open_target(clinics.url("b")) as b:
        assert a.insert_rows("patients", [rows.patient(), rows.patient()]) == [1, 2]
        assert b.insert_rows("patients", [rows.patient(first_name="Other")]) == [1]
        a.upsert_links("cliniko:au1:1", "patient", [("9", 2, "s", "t")], None)
        assert b.load_links("cliniko:au1:1", "patient") == {}
        assert [r["first_name"] for r in b.iter_rows("patients", ["first_name"])] == ["Other"]
        assert a.table_counts()["patients"] == 2


# --- concurrency and guards ----------------------------------------------------------------


def test_another_load_holding_the_clinic_is_clinic_locked_after_the_busy_timeout(
    store_url: str, server: PgServer, rows: Any
) -> None:
    store = open_target(store_url, busy_timeout=0.3)
    assert isinstance(store, PostgresClinicStore)
    other = server.connect()
    try:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x4D4E43, store.schema))
        started = datetime.now(UTC)
        with pytest.raises(ClinicLocked) as info:
            store.insert_rows("patients", [rows.patient()])
        waited = (datetime.now(UTC) - started).total_seconds()
        assert 0.25 <= waited < 3
        assert "locked by another program" in str(info.value)
        assert store.table_counts()["patients"] == 0  # reads do not wait
        assert not store._in_tx
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.insert_rows("patients", [rows.patient()]) == [1]  # it waited before drawing ids
    store.close()


def test_a_row_the_clinic_app_holds_is_clinic_locked_not_a_hang(
    store_url: str, server: PgServer, clinics: Clinics, rows: Any
) -> None:
    store = open_target(store_url, busy_timeout=0.3)
    [pid] = store.insert_rows("patients", [rows.patient()])
    app = server.connect()
    try:
        app.execute("BEGIN")
        app.execute(
            f"UPDATE {clinics.schemas['clinic']}.patients SET email = 'a@b' WHERE id = %s", (pid,)
        )
        with pytest.raises(ClinicLocked):
            store.update_rows("patients", [(pid, {"email": "import@b"})])
    finally:
        app.execute("ROLLBACK")
        app.close()
    assert store.update_rows("patients", [(pid, {"email": "import@b"})]) == 1
    store.close()


def test_the_guard_triggers_stop_the_import_not_the_clinic(
    pg: PostgresClinicStore, rows: Any
) -> None:
    [pid] = pg.insert_rows("patients", [rows.patient()])
    outbox = (
        "INSERT INTO message_outbox (patient_id, channel, template, payload, created_at, "
        "updated_at) VALUES (%s, 'sms', 'reminder', '{}', now(), now())"
    )
    with pytest.raises(ForbiddenWrite, match="never queues messages"), pg.transaction():
        pg._conn.execute(outbox, (pid,))  # even raw SQL, inside an import batch
    with pytest.raises(ForbiddenWrite, match="never switches"), pg.transaction():
        pg._conn.execute("UPDATE clinic_settings SET ai_enabled = true")
    assert pg.outbox_count() == 0
    assert pg.settings()["ai_enabled"] is False
    # The clinic app (any other transaction) is not affected.
    pg._conn.execute(outbox, (pid,))
    pg._conn.execute("UPDATE clinic_settings SET messaging_enabled = true")
    assert pg.outbox_count() == 1
    assert pg.settings()["messaging_enabled"] is True


def test_values_postgresql_cannot_hold_are_refused_with_their_row_and_column(
    pg: PostgresClinicStore, rows: Any
) -> None:
    from target import InvalidValue

    cases = [
        ("first_name", "Zo\x00ë"),
        ("medical_alerts", ["Peni\x00cillin"]),
    ]
    for column, value in cases:
        with pytest.raises(InvalidValue) as info:
            pg.insert_rows("patients", [rows.patient(), rows.patient(**{column: value})])
        assert info.value.row_index == 1
        assert info.value.column == column
        assert "Zo" not in str(info.value) and "Peni" not in str(info.value)
    assert pg.table_counts()["patients"] == 0


# --- connecting ----------------------------------------------------------------------------


@pytest.fixture
def no_password_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No password from the environment; PGPASSFILE points at a file that does not exist."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    passfile = tmp_path / "pgpass"
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    return passfile


def test_the_password_comes_from_pgpassword(
    server: PgServer, no_password_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = new_schema("env")
    monkeypatch.setenv("PGPASSWORD", server.password)
    try:
        with open_target(server.tcp_url(schema)) as store:
            assert store.table_counts()["clinic_settings"] == 1
            assert server.password not in store.url
    finally:
        server.drop_schema(schema)


def test_the_password_comes_from_pgpass(server: PgServer, no_password_env: Path) -> None:
    schema = new_schema("pgpass")
    no_password_env.write_text(f"127.0.0.1:{server.port}:{DATABASE}:{ROLE}:{server.password}\n")
    no_password_env.chmod(0o600)
    try:
        with open_target(server.tcp_url(schema), readonly=True) as store:
            assert store.table_counts()["patients"] == 0
    finally:
        server.drop_schema(schema)


def test_a_wrong_password_says_where_to_put_the_right_one(
    server: PgServer, no_password_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(TargetError) as info:
        open_target(server.tcp_url("x"))
    message = str(info.value)
    assert f"refused the login of user '{ROLE}'" in message
    assert "PGPASSWORD" in message and ".pgpass" in message
    assert "not-the-password" not in message
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(TargetError) as info:
        open_target(server.tcp_url("x", password="hunter2-wrong"))
    assert "refused the login" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert ":***@" in str(info.value)


def test_no_password_at_all_says_how_to_give_one(server: PgServer, no_password_env: Path) -> None:
    with pytest.raises(TargetError, match=r"asks for user 'clinic'.s password") as info:
        open_target(server.tcp_url("x"))
    assert "PGPASSWORD" in str(info.value)


def test_a_missing_database_says_how_to_create_it(server: PgServer) -> None:
    with pytest.raises(TargetError) as info:
        open_target(server.url("x", database="no_such_clinic"))
    message = str(info.value)
    assert "no database 'no_such_clinic'" in message
    assert "createdb" in message and "CREATE DATABASE" in message


def test_an_unknown_user_is_named(server: PgServer, no_password_env: Path) -> None:
    url = server.url("x").replace(f"{server.superuser}@", "nobody_here@")
    with pytest.raises(TargetError, match="no user 'nobody_here'"):
        open_target(url)


def test_a_refused_connection_names_the_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(TargetError) as info:
        open_target(f"postgresql://clinic:hunter2@127.0.0.1:{port}/clinics?connect_timeout=5")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "is PostgreSQL running there" in message
    assert "hunter2" not in message


def test_sslmode_is_honoured(server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", server.password)
    with pytest.raises(TargetError) as info:
        open_target(server.tcp_url("x", sslmode="require"))
    message = str(info.value)
    assert "SSL" in message and "sslmode" in message
    schema = new_schema("ssl")
    try:
        with open_target(server.tcp_url(schema, sslmode="disable"), readonly=True) as store:
            assert store.table_counts()["patients"] == 0
    finally:
        server.drop_schema(schema)


def test_a_user_who_may_not_create_the_schema_is_told_what_to_grant(
    server: PgServer, admin: Any
) -> None:
    admin.execute(
        "DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    admin.execute(f"REVOKE CREATE ON DATABASE {DATABASE} FROM PUBLIC")
    url = server.url(new_schema("denied")).replace(f"{server.superuser}@", "reader@")
    with pytest.raises(TargetError, match="Ask the database's owner to grant"):
        open_target(url)


def test_a_database_not_in_utf8_is_refused(server: PgServer, admin: Any) -> None:
    admin.execute(
        "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    try:
        with pytest.raises(TargetError, match="UTF8"):
            open_target(server.url("x", database="latin"))
    finally:
        admin.execute("DROP DATABASE latin")


def test_no_message_or_url_shows_the_password(server: PgServer, clinics: Clinics) -> None:
    url = clinics.url("clinic", tcp=True)
    assert server.password in url
    with open_target(url) as store:
        assert server.password not in store.url
        assert server.password not in repr(store)
        assert ":***@" in store.url
    assert os.environ.get("PGPASSWORD") != server.password
