"""Both clinic store backends for the same tests: SQLite files and PostgreSQL schemas.

A test (or a fixture it uses) that asks for `backend` runs once per backend: conftests call
`parametrize_backends` from `pytest_generate_tests`. A module restricts itself with
`BACKENDS = ("sqlite",)`; a test with `@pytest.mark.parametrize("backend", [...])`; a module
whose fixtures share one store per backend sets `BACKEND_SCOPE = "module"`.

`Clinics` hands out fresh clinic store URLs for one test, `clinics.url("clean")`: a file in
the test's folder, or a schema of its own on the session's throwaway PostgreSQL server
(dropped after the test). The PostgreSQL runs are skipped with the reason when no server can
be started (a failure under CI): see tests/pg_server.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from target import ClinicBackend, SQLiteClinicStore
from target.schema import TABLES
from tests.pg_server import PgServer, new_schema

BACKENDS = ("sqlite", "postgres")


def parametrize_backends(metafunc: pytest.Metafunc) -> None:
    """Run tests that use `backend` once per backend (unless they say otherwise)."""
    if "backend" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    metafunc.parametrize(
        "backend",
        getattr(metafunc.module, "BACKENDS", BACKENDS),
        scope=getattr(metafunc.module, "BACKEND_SCOPE", None),
    )


def raw(store: ClinicBackend, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Plain SQL on the store's own connection, as another program would write it (`?`
    placeholders on both backends)."""
    if isinstance(store, SQLiteClinicStore):
        return store._conn.execute(statement, params).fetchall()
    conn = store._conn  # type: ignore[attr-defined]
    cursor = conn.execute(statement.replace("?", "%s"), params or None)
    return cursor.fetchall() if cursor.description else []


class Clinics:
    """Fresh clinic stores for one test, by name."""

    def __init__(self, backend: str, folder: Path, server: PgServer | None) -> None:
        self.backend = backend
        self.folder = folder
        self.server = server
        self.schemas: dict[str, str] = {}

    def url(self, name: str = "clinic", *, tcp: bool = False, **options: str) -> str:
        """The store's URL; `tcp=True`: PostgreSQL over TCP as a password-holding role, the
        password in the URL (the production path: it must never be shown)."""
        if self.server is None:
            return f"sqlite:///{self.folder / f'{name}.db'}"
        schema = self.schemas.setdefault(name, new_schema(name.replace("-", "_")[:20]))
        if tcp:
            return self.server.tcp_url(schema, password=self.server.password, **options)
        return self.server.url(schema, **options)

    @property
    def store_class(self) -> type[Any]:
        if self.server is None:
            return SQLiteClinicStore
        from target.postgres import PostgresClinicStore

        return PostgresClinicStore

    def path(self, name: str = "clinic") -> Path:
        """The SQLite file (a path that never exists for PostgreSQL)."""
        return self.folder / f"{name}.db"

    def exists(self, name: str = "clinic") -> bool:
        if self.server is None:
            return self.path(name).exists()
        return name in self.schemas and self.server.schema_exists(self.schemas[name])

    def digest(self, name: str = "clinic") -> str:
        """What the store holds, byte for byte (SQLite) or row for row with its sequences
        and migration history (PostgreSQL)."""
        if self.server is None:
            return hashlib.sha256(self.path(name).read_bytes()).hexdigest()
        schema = self.schemas[name]
        h = hashlib.sha256()
        with self.server.connect() as conn:
            for table in sorted((*TABLES, "schema_migrations")):
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1').fetchall()
                h.update(repr((table, rows)).encode())
            sequences = conn.execute(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s "
                "ORDER BY 1",
                (schema,),
            ).fetchall()
            h.update(repr(sequences).encode())
        return h.hexdigest()

    def dump(self, name: str = "clinic") -> bytes:
        """Everything the store holds, as bytes to search (SQLite: the file and side files)."""
        if self.server is None:
            return b"".join(
                p.read_bytes() for p in self.folder.iterdir() if p.name.startswith(f"{name}.db")
            )
        schema = self.schemas[name]
        out = []
        with self.server.connect() as conn:
            for table in (*TABLES, "schema_migrations"):
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                out.append(repr(rows).encode())
        return b"".join(out)

    def cleanup(self) -> None:
        if self.server is not None:
            for schema in self.schemas.values():
                self.server.drop_schema(schema)


def make_clinics(request: pytest.FixtureRequest, backend: str, folder: Path) -> Clinics:
    server = request.getfixturevalue("pg_server") if backend == "postgres" else None
    clinics = Clinics(backend, folder, server)
    request.addfinalizer(clinics.cleanup)
    return clinics
