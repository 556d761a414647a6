"""Mapped records as clinic rows: columns, foreign keys, hashes (shared by plan, load, verify).

A clinic row of kind `k` is the mapped record's fields (the columns of `KIND_TABLES[k]`, see
`engine.mapping.records`) plus one `<ref kind>_id` column per record it points to. Foreign keys
to records created by the same load are not known while planning: they are `Ref`s until the
load resolves them.

`target_hash` is `target.row_hash` over exactly `hash_columns(kind)` (and, for invoices, the
lines as a list ordered by position), so that a row hashes the same when the load writes it and
when a later plan reads it back: that is how a rerun tells "edited in MyNewClinic since the
import" from "as we left it".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

from engine.mapping.records import RECORD_TYPES, InvoiceLine, Kind, Record
from target import KIND_TABLES, TABLES, row_hash
from target.hashing import canonical

KIND_OF_TABLE: dict[str, str] = {table: kind for kind, table in KIND_TABLES.items()}


class Ref(NamedTuple):
    """A foreign key to a record this same load creates (or links): resolved at load time."""

    kind: str
    source_id: str

    def describe(self) -> str:
        return f"new {self.kind} (Cliniko id {self.source_id})"


def _record_columns(kind: Kind) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RECORD_TYPES[kind]) if f.name != "lines")


def _fk_columns(kind: Kind) -> dict[str, str]:
    """Ref kind -> column, for every foreign key of the kind's table to a record kind."""
    table = TABLES[KIND_TABLES[kind]]
    out: dict[str, str] = {}
    for column in table.columns:
        if column.references and column.references in KIND_OF_TABLE:
            out[KIND_OF_TABLE[column.references]] = column.name
    return out


RECORD_COLUMNS: dict[str, tuple[str, ...]] = {k: _record_columns(k) for k in RECORD_TYPES}
FK_COLUMNS: dict[str, dict[str, str]] = {k: _fk_columns(k) for k in RECORD_TYPES}
"""Kind -> {ref kind: column}: e.g. appointment -> {patient: patient_id, ...}."""
HASH_COLUMNS: dict[str, tuple[str, ...]] = {
    k: (*RECORD_COLUMNS[k], *FK_COLUMNS[k].values()) for k in RECORD_TYPES
}
LINE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(InvoiceLine))
_GETTERS = {k: attrgetter(*cols) for k, cols in RECORD_COLUMNS.items()}
_LINE_GETTER = attrgetter(*LINE_COLUMNS)

SETTLEMENT_KIND = "reconciliation"
"""`settlements.kind` of the one reconciliation entry the import keeps per invoice."""
SETTLEMENT_LINK = "settlement"
"""`import_links.kind` of that entry (its `source_id` is the invoice's Cliniko id)."""


def record_values(kind: str, record: Record) -> dict[str, Any]:
    """The record's columns (without invoice lines), in table order."""
    return dict(zip(RECORD_COLUMNS[kind], _GETTERS[kind](record), strict=True))


def line_values(line: InvoiceLine) -> dict[str, Any]:
    return dict(zip(LINE_COLUMNS, _LINE_GETTER(line), strict=True))


def hash_view(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Only the columns a clinic row is hashed and compared on."""
    return {c: row.get(c) for c in HASH_COLUMNS[kind]}


def lines_view(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(lines, key=lambda line: (line.get("position") or 0, line.get("source_id")))
    return [{c: line.get(c) for c in LINE_COLUMNS} for line in ordered]


def target_hash(
    kind: str, row: Mapping[str, Any], lines: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The hash of a clinic row as written (all refs resolved to clinic ids)."""
    view = hash_view(kind, row)
    if kind == "invoice":
        view["lines"] = lines_view(lines or ())
    return row_hash(view)


def same_value(a: Any, b: Any) -> bool:
    """Equal as the clinic store holds them (81.8 == 81.80, tuple == list)."""
    if isinstance(a, Ref) or isinstance(b, Ref):
        return bool(a == b)
    if a is None or b is None:
        return a is b
    try:
        return bool(canonical(a) == canonical(b))
    except (TypeError, ValueError):
        return bool(a == b)


def settlement_row(invoice_id: int, patient_id: int, amount: Any) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "patient_id": patient_id,
        "amount": amount,
        "kind": SETTLEMENT_KIND,
    }


def settlement_hash(row: Mapping[str, Any]) -> str:
    return row_hash({k: row.get(k) for k in ("invoice_id", "patient_id", "amount", "kind")})


__all__ = [
    "FK_COLUMNS",
    "HASH_COLUMNS",
    "LINE_COLUMNS",
    "RECORD_COLUMNS",
    "SETTLEMENT_KIND",
    "SETTLEMENT_LINK",
    "Ref",
    "hash_view",
    "line_values",
    "lines_view",
    "record_values",
    "same_value",
    "settlement_hash",
    "settlement_row",
    "target_hash",
]
