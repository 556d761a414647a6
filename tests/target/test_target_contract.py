"""The schema holds together: migrations produce the catalogue, and the catalogue stores
exactly the fields of the engine's clinic record types (target/ does not import the engine;
this test is where the two meet)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.mapping import records
from target import ClinicBackend, SQLiteClinicStore, row_hash
from target.schema import KIND_TABLES, SQLITE_TYPES, TABLES, Table

STAMPS = {"id", "created_at", "updated_at"}


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL: test_target_postgres.py
def test_migrating_from_scratch_yields_exactly_the_catalogue(store: SQLiteClinicStore) -> None:
    conn = store._conn
    for table in TABLES.values():
        info = conn.execute(f"PRAGMA table_info({table.name})").fetchall()
        assert [r[1] for r in info] == list(table.column_names), table.name
        for _cid, name, declared, notnull, _default, pk in info:
            column = table.column(name)
            if name == "id":
                assert pk == 1
                continue
            assert declared == SQLITE_TYPES[column.type], (table.name, name)
            assert bool(notnull) == (not column.nullable), (table.name, name)
            assert pk == 0
        fks = {(r[3], r[2]) for r in conn.execute(f"PRAGMA foreign_key_list({table.name})")}
        assert fks == {(c.name, c.references) for c in table.columns if c.references}
        indexed = set()
        for _seq, index_name, unique, _origin, _partial in conn.execute(
            f"PRAGMA index_list({table.name})"
        ):
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index_name})"))
            indexed.add((cols, bool(unique)))
        for ix in table.indexes:
            assert (ix, False) in indexed, (table.name, ix)
        for uq in table.unique:
            assert (uq, True) in indexed, (table.name, uq)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names - {"sqlite_sequence", "schema_migrations"} == set(TABLES)


def _record_columns(record_type: type[Any]) -> dict[str, tuple[str, bool]]:
    return {c.name: (c.type, c.nullable) for c in records.columns(record_type) if c.type != "child"}


def _table_columns(table: Table) -> dict[str, tuple[str, bool]]:
    return {
        c.name: (c.type, c.nullable)
        for c in table.columns
        if c.name not in STAMPS and c.references is None
    }


@pytest.mark.parametrize("kind", sorted(records.RECORD_TYPES))
def test_each_record_kind_has_its_table_with_exactly_its_fields(kind: str) -> None:
    table = TABLES[KIND_TABLES[kind]]
    assert _table_columns(table) == _record_columns(records.RECORD_TYPES[kind])  # type: ignore[index]


def test_invoice_lines_hold_exactly_the_line_fields() -> None:
    table = TABLES["invoice_lines"]
    assert _table_columns(table) == _record_columns(records.InvoiceLine)
    assert [c.name for c in table.columns if c.references] == ["invoice_id"]


def test_reference_columns_are_named_after_the_kind_they_point_to() -> None:
    for table in TABLES.values():
        for column in table.columns:
            if column.references and table.clinic:
                kind = column.name.removesuffix("_id")
                assert KIND_TABLES[kind] == column.references, (table.name, column.name)


def _sample(record_type: type[Any], name: str, column_type: str) -> Any:
    table = TABLES[KIND_TABLES[_KIND_OF[record_type]]]
    choices = table.column(name).choices
    if choices:
        return choices[0]
    hint = typing.get_type_hints(record_type)[name]
    samples: dict[str, Any] = {
        "text": "Ünïcödé “text” 李",
        "integer": 42,
        "boolean": True,
        "decimal": Decimal("81.818"),
        "date": date(2020, 2, 29),
        "timestamp": datetime(2021, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
    }
    if column_type == "json":
        origin = typing.get_origin(hint) or typing.get_origin(typing.get_args(hint)[0])
        return ({"type": "Mobile", "number": "021"},) if origin is tuple else {"a": [1, "b"]}
    return samples[column_type]


_KIND_OF: dict[type[Any], str] = {v: k for k, v in records.RECORD_TYPES.items()}
_KIND_OF[records.InvoiceLine] = "invoice_line"


def _record(record_type: type[Any]) -> Any:
    values = {
        c.name: () if c.type == "child" else _sample(record_type, c.name, c.type)
        for c in records.columns(record_type)
    }
    return record_type(**values)


def test_every_record_kind_round_trips_and_hashes_the_same(store: ClinicBackend) -> None:
    """asdict(record) + reference ids goes in; what comes back hashes the same."""
    ids: dict[str, int] = {}
    order = list(KIND_TABLES)  # parents before children
    for kind in order:
        record_type = records.InvoiceLine if kind == "invoice_line" else records.RECORD_TYPES[kind]  # type: ignore[index]
        row = dataclasses.asdict(_record(record_type))
        row.pop("lines", None)
        table = TABLES[KIND_TABLES[kind]]
        for column in table.columns:
            if column.references:
                parent = column.name.removesuffix("_id")
                row[column.name] = ids[parent]
        [ids[kind]] = store.insert_rows(table.name, [row])
        back = store.fetch_rows(table.name, [ids[kind]])[ids[kind]]
        assert row_hash({k: back[k] for k in row}) == row_hash(row), kind
    assert store.balances() == {ids["patient"]: Decimal("81.818")}


def test_target_imports_neither_the_engine_nor_the_ui() -> None:
    code = (
        "import sys, target, target.sqlite, target.url, target.schema, target.hashing\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('engine', 'tui', 'textual', 'staging', 'sandbox'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
