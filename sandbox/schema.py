"""The sandbox's SQLite layout: one table per resource, the record body as JSON.

Each resource has a narrow table named after it: the key (INTEGER), `created_at`/`updated_at`
(TEXT, UTC `YYYY-MM-DDTHH:MM:SSZ`, so text order is time order), one column per documented
filter and the columns the list variants read (`deleted_at`, `archived_at`, `cancelled_at`,
`inactive`); and `<name>_body` (key, body): the record as stored (links as paths, see
`sandbox.render`). Keeping bodies apart keeps scans and counts on small rows. Columns are
projections of the body (`Layout.row`), recomputed on every write, so the body is the single
source of truth.

Indexes: one per filter column, and per list variant a partial index on `created_at` and on
`id` whose WHERE is the variant's predicate, so the default order, `sort=id` and keyset
queries (`id > ? ORDER BY id`) read one index whatever the variant.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.catalog import SPECS, Spec

Body = dict[str, Any]
Extractor = Callable[[Body], Any]

META_TABLE = "_meta"


def dumps(body: Body) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _link_tail(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value.rsplit("/", 1)[1].split("?", 1)[0]
    return None


def _extractor(spec: Spec, col: str, sqltype: str) -> Extractor:
    as_int = sqltype == "INTEGER"
    if col.endswith("_id") and col[:-3] in spec.refs:
        ref = col[:-3]

        def from_link(body: Body) -> Any:
            tail = _link_tail(body.get(ref))
            if tail is None:
                return None
            return int(tail) if as_int else tail

        return from_link
    if col == spec.key:
        return lambda body: body[col]
    if col == "inactive":
        return lambda body: 1 if body.get("_inactive") else 0
    private = f"_{col}"
    if private in spec.private:

        def from_private(body: Body) -> Any:
            value = body.get(private)
            if value is None:
                return None
            return int(value) if as_int else str(value)

        return from_private

    def plain(body: Body) -> Any:
        value = body.get(col)
        if value == "":
            return None
        if value is not None and not as_int and not isinstance(value, str):
            return str(value)
        return value

    return plain


class Layout:
    """Column order and extractors of one resource's table."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.columns: dict[str, str] = spec.columns()
        self.names: tuple[str, ...] = tuple(self.columns)
        self._extract: tuple[Extractor, ...] = tuple(
            _extractor(spec, c, t) for c, t in self.columns.items()
        )
        cols = ", ".join(self.names)
        marks = ", ".join("?" for _ in self.names)
        self.body_table = f"{spec.name}_body"
        self.insert_sql = f"INSERT INTO {spec.name} ({cols}) VALUES ({marks})"  # noqa: S608
        self.replace_sql = f"INSERT OR REPLACE INTO {spec.name} ({cols}) VALUES ({marks})"  # noqa: S608
        self.insert_body_sql = f"INSERT INTO {self.body_table} (key, body) VALUES (?, ?)"  # noqa: S608
        self.replace_body_sql = (
            f"INSERT OR REPLACE INTO {self.body_table} (key, body) VALUES (?, ?)"  # noqa: S608
        )

    def row(self, body: Body) -> tuple[Any, ...]:
        return tuple(f(body) for f in self._extract)

    def rows(self, body: Body) -> tuple[tuple[Any, ...], tuple[Any, str]]:
        """(the narrow row, (key, body text))."""
        row = self.row(body)
        return row, (row[0], dumps(body))

    def insert_many(self, conn: sqlite3.Connection, bodies: list[Body]) -> None:
        pairs = [self.rows(b) for b in bodies]
        conn.executemany(self.insert_sql, [p[0] for p in pairs])
        conn.executemany(self.insert_body_sql, [p[1] for p in pairs])

    def save(self, conn: sqlite3.Connection, body: Body) -> None:
        row, stored = self.rows(body)
        conn.execute(self.replace_sql, row)
        conn.execute(self.replace_body_sql, stored)


LAYOUTS: Mapping[str, Layout] = {s.name: Layout(s) for s in SPECS}


def create_tables(conn: sqlite3.Connection) -> None:
    for spec in SPECS:
        layout = LAYOUTS[spec.name]
        cols = [f"{spec.key} INTEGER PRIMARY KEY"]
        cols += [f"{n} {t}" for n, t in layout.columns.items() if n != spec.key]
        conn.execute(f"CREATE TABLE IF NOT EXISTS {spec.name} ({', '.join(cols)})")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {layout.body_table} "
            "(key INTEGER PRIMARY KEY, body TEXT NOT NULL)"
        )
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT)")


def create_indexes(conn: sqlite3.Connection) -> None:
    for spec in SPECS:
        t = spec.name
        indexed = [*spec.filters, *spec.extra_columns]
        for col in indexed:
            if col != spec.key:
                conn.execute(f"CREATE INDEX IF NOT EXISTS ix_{t}_{col} ON {t}({col})")
        for variant, predicate in spec.variants.items():
            if not predicate:
                continue
            if spec.timestamps:
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS ix_{t}_{variant}_created "
                    f"ON {t}(created_at) WHERE {predicate}"
                )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{t}_{variant}_key ON {t}({spec.key}) "
                f"WHERE {predicate}"
            )
    conn.execute("ANALYZE")


def write_meta(conn: sqlite3.Connection, values: Mapping[str, Any]) -> None:
    conn.executemany(
        f"INSERT OR REPLACE INTO {META_TABLE} (key, value) VALUES (?, ?)",  # noqa: S608
        [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()],
    )


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    rows = conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall()  # noqa: S608
    return {str(k): json.loads(v) for k, v in rows}
