"""What the planner reads from the staging file: rows, the mapping context, and source hashes.

The source hash of a staged row is what a rerun compares with the import link's `source_hash`
*before* mapping, so that an unchanged clinic costs a read and a hash per row, not a mapping.
It must therefore cover everything the mapped record depends on:

  every kind        MAPPING_VERSION, the account's time zone and custom-field definitions,
                    the row's state and variants, and its raw JSON exactly as staged
  service           the price of its billable item
  patient           its medical alerts (their raw JSON and state)
  appointment,      whether it starts before or after `now` (status booked vs completed)
  group_appointment
  attendance        whether its booking is a group appointment (and upcoming), an individual
                    appointment, or unknown
  treatment_note    its practitioner's name (the author when Cliniko gives none), and whether
                    its booking is a group appointment
  invoice           its invoice items (raw JSON and state), and whether its appointment is a
                    group appointment

Bump MAPPING_VERSION whenever a mapping function changes what it produces: every link then
looks changed and the next load re-maps (and updates) everything once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.mapping import RESOURCE_KINDS, build_context
from engine.mapping import fields as mf
from engine.mapping.context import MappingContext
from engine.mapping.records import Kind
from engine.mapping.staged import StagedRow as MappingRow
from staging import StagedRow, StagingDB, StagingLocked, lock_path, open_staging
from staging.schema import MARKERS, q, ref_column

MAPPING_VERSION = "1"
"""Part of every source hash: bump it when a mapping's output changes."""

KIND_RESOURCE: dict[str, str] = {kind: resource for resource, kind in RESOURCE_KINDS.items()}
"""Clinic kind -> the staged resource it is mapped from."""

DIARY_KINDS = frozenset({"appointment", "group_appointment", "attendance"})

_STARTS_AT = re.compile(r'"starts_at":"([^"\\]*)"')


def open_for_reading(path: str | os.PathLike[str]) -> StagingDB:
    """Open a staging file read-only for a plan or a load: never writes, refuses a file a
    download is writing to right now (its rows would be half a run)."""
    p = Path(path)
    _refuse_if_being_written(p)
    return open_staging(p, create=False, readonly=True)


def _refuse_if_being_written(path: Path) -> None:
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # no lock file: no writer
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StagingLocked(
                path,
                "a download is writing to this staging file right now; wait for it to "
                "finish (or stop it), then plan or load",
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def without_nul(value: Any) -> Any:
    """`value` with every NUL character removed from its strings (and keys).

    NUL carries no meaning in a name or a note, and PostgreSQL refuses it in text and JSON
    while SQLite keeps it: removed before mapping, both clinic stores get the same rows, and a
    rerun plans the same (a row the store refused would be planned again on every run).
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def to_mapping_row(row: StagedRow) -> MappingRow:
    """A staged row as the mapping functions take it (raw parsed)."""
    try:
        raw: Any = json.loads(row.raw)
    except ValueError:
        raw = None
    if "\\u0000" in row.raw:  # the escape JSON gives a NUL: rare, so checked cheaply first
        raw = without_nul(raw)
    return MappingRow(
        resource=row.resource,
        id=row.id,
        raw=raw,
        variants=frozenset(row.variants),
        state=row.state,
        refs=dict(row.refs),
    )


def _digest(*parts: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.digest()


class StagedInput:
    """One open staging file, read for one plan: the account, the context, the hashes.

    Building it reads the small resources in full (settings, practitioners, billable items,
    group appointments) and digests of the ones other records borrow from (invoice items,
    medical alerts); the large ones are streamed by `rows()`.
    """

    def __init__(self, staging: StagingDB, now: datetime) -> None:
        self.staging = staging
        self.now = now
        self.tables = {r for r, c in staging.table_counts().items() if c.total}
        self.warnings: list[str] = []
        self.settings = self._settings()
        self.source = self._source()
        unfinished = staging.incomplete_run()
        if unfinished is not None:
            self.warnings.append(
                f"the last download (run {unfinished.run_id}) is {unfinished.outcome}, not "
                "complete: what it staged may be partial; run the download again to finish it"
            )
        practitioners = [to_mapping_row(r) for r in self._iter("practitioners")]
        billable = [to_mapping_row(r) for r in self._iter("billable_items")]
        groups = [to_mapping_row(r) for r in self._iter("group_appointments")]
        individual: set[str] = set()
        if "individual_appointments" in self.tables:
            for variant in ("active", "cancelled", "deleted"):
                individual |= staging.staged_ids("individual_appointments", variant)
        ctx = build_context(
            self.settings,
            now,
            practitioners=practitioners,
            billable_items=billable,
            group_appointments=groups,
        )
        self.context: MappingContext = replace(
            ctx, individual_appointment_ids=frozenset(individual)
        )
        self.problems = list(ctx.problems)
        definitions = (self.settings or {}).get("patient_custom_fields_definition")
        self._salt = _digest(
            MAPPING_VERSION,
            self.context.time_zone,
            json.dumps(definitions, sort_keys=True, ensure_ascii=False, default=str),
        )
        self._item_digests = self._child_digests("invoice_items", "invoice")
        self._alert_digests = self._child_digests("medical_alerts", "patient")
        self._billable_item_of_service: dict[str, str] = {}

    # -- account ------------------------------------------------------------------------

    def _iter(self, resource: str) -> Iterator[StagedRow]:
        if resource not in self.tables:
            return iter(())
        return self.staging.iter_records(resource)

    def _settings(self) -> dict[str, Any] | None:
        for row in self._iter("settings"):
            data = row.data()
            return data if isinstance(data, dict) else None
        self.warnings.append(
            "the staging file has no account settings: times use UTC and the account id is unknown"
        )
        return None

    def _source(self) -> str:
        """`cliniko:<shard>:<account id>`: the `source` of every import link."""
        meta = self.staging.meta()
        shard = meta.get("shard")
        if not shard:
            for run in reversed(self.staging.runs()):
                if run.shard:
                    shard = run.shard
                    break
        account = (self.settings or {}).get("account")
        account_id = None
        if isinstance(account, Mapping):
            try:
                account_id = mf.optional_id(account.get("id"), "account.id")
            except mf.Malformed:
                account_id = None
        if not shard:
            self.warnings.append("the staging file does not say which Cliniko shard it is from")
        return f"cliniko:{shard or 'unknown'}:{account_id or 'unknown'}"

    # -- digests --------------------------------------------------------------------------

    def _child_digests(self, resource: str, ref: str) -> dict[str, list[bytes]]:
        """Parent id -> digests of its staged child rows (state, variants, raw)."""
        out: defaultdict[str, list[bytes]] = defaultdict(list)
        for row in self._iter(resource):
            parent = row.refs.get(ref)
            if parent is None:
                continue
            out[parent].append(_digest(row.id, row.state, ",".join(row.variants), row.raw))
        return dict(out)

    def source_hash(self, kind: str, row: StagedRow, upcoming: bool | None) -> str:
        """The row's source hash (see the module docstring for what it covers)."""
        h = hashlib.blake2b(self._salt, digest_size=16)
        h.update(kind.encode())
        h.update(b"\x1f")
        h.update(row.state.encode())
        h.update(b"\x1f")
        h.update(",".join(row.variants).encode())
        h.update(b"\x1f")
        h.update(row.raw.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
        extra = self._extra(kind, row, upcoming)
        if extra:
            h.update(extra)
        return h.hexdigest()

    def _extra(self, kind: str, row: StagedRow, upcoming: bool | None) -> bytes:
        ctx = self.context
        if kind in ("appointment", "group_appointment"):
            return b"u1" if upcoming else (b"u0" if upcoming is not None else b"u?")
        if kind == "patient":
            return b"".join(sorted(self._alert_digests.get(row.id, ())))
        if kind == "invoice":
            items = b"".join(sorted(self._item_digests.get(row.id, ())))
            appointment = row.refs.get("appointment")
            in_group = appointment is not None and appointment in ctx.group_appointment_starts
            return items + (b"g" if in_group else b"")
        if kind == "service":
            item = row.refs.get("billable_item")
            price = ctx.billable_item_prices.get(item) if item is not None else None
            return str(price).encode()
        if kind == "treatment_note":
            practitioner = row.refs.get("practitioner")
            name = ctx.practitioner_names.get(practitioner, "") if practitioner else ""
            note_booking = row.refs.get("booking")
            in_group = note_booking is not None and note_booking in ctx.group_appointment_starts
            return f"{name}\x1f{'g' if in_group else ''}".encode()
        if kind == "attendance":
            booking = row.refs.get("booking")
            if booking is not None and booking in ctx.group_appointment_starts:
                return b"g1" if upcoming else b"g0"
            if booking is not None and booking in ctx.individual_appointment_ids:
                return b"i"
            return b"?"
        return b""

    # -- time -----------------------------------------------------------------------------

    def upcoming(self, kind: str, row: StagedRow) -> bool | None:
        """Whether a diary row starts at or after `now` (None when that cannot be told),
        without parsing the whole record when its raw JSON allows."""
        if kind == "attendance":
            booking = row.refs.get("booking")
            start = self.context.group_appointment_starts.get(booking) if booking else None
            return None if start is None else start >= self.now
        if kind not in ("appointment", "group_appointment"):
            return None
        raw = row.raw
        found = _STARTS_AT.search(raw)
        value: object
        if found is not None and raw.count('"starts_at"') == 1:
            value = found.group(1)
        else:
            try:
                data = json.loads(raw)
            except ValueError:
                return None
            value = data.get("starts_at") if isinstance(data, dict) else None
        try:
            start = mf.timestamp({"starts_at": value}, "starts_at")
        except mf.Malformed:
            return None
        return None if start is None else start >= self.now

    # -- rows -----------------------------------------------------------------------------

    def rows(self, kind: str) -> Iterator[StagedRow]:
        """Every staged row of the resource a kind is mapped from, in download order."""
        return self._iter(KIND_RESOURCE[kind])

    def count(self, kind: str) -> int:
        resource = KIND_RESOURCE[kind]
        return self.staging.count_rows(resource) if resource in self.tables else 0

    def context_for(self, kind: str, rows: Iterable[StagedRow]) -> MappingContext:
        """The context mapping `rows` of `kind` needs: the base context plus the invoice
        items of these invoices, or the medical alerts of these patients."""
        if kind == "invoice":
            ids = [r.id for r in rows]
            items = self._rows_by_ref("invoice_items", "invoice", ids)
            sub = build_context(self.settings, self.now, invoice_items=items)
            self.problems.extend(sub.problems)
            return replace(self.context, invoice_items=sub.invoice_items)
        if kind == "patient":
            ids = [r.id for r in rows]
            alerts = self._rows_by_ref("medical_alerts", "patient", ids)
            sub = build_context(self.settings, self.now, medical_alerts=alerts)
            self.problems.extend(sub.problems)
            return replace(self.context, medical_alerts=sub.medical_alerts)
        return self.context

    def _rows_by_ref(self, resource: str, ref: str, ids: list[str]) -> list[MappingRow]:
        """Staged rows of `resource` whose `ref` is one of `ids` (through the ref column's
        index). Reads the staging file's documented table layout (DESIGN.md section 4)."""
        if resource not in self.tables or not ids:
            return []
        from engine.resources import BY_NAME

        refs = BY_NAME[resource].refs
        ref_cols = "".join(f", {q(ref_column(r))}" for r in refs)
        out: list[MappingRow] = []
        conn = self.staging.conn
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT id, state, variants{ref_cols}, raw FROM {q(resource)}"  # noqa: S608
                f" WHERE {q(ref_column(ref))} IN ({marks}) ORDER BY rowid"
            )
            for r in conn.execute(sql, chunk):
                staged = StagedRow(
                    resource=resource,
                    id=str(r[0]),
                    state=str(r[1]),
                    variants=tuple(str(r[2]).split(",")),
                    created_at=None,
                    updated_at=None,
                    markers=dict.fromkeys(MARKERS),
                    refs=dict(zip(refs, r[3 : 3 + len(refs)], strict=True)),
                    raw=str(r[-1]),
                )
                out.append(to_mapping_row(staged))
        return out


def kind_of(resource: str) -> Kind | None:
    return RESOURCE_KINDS.get(resource)


__all__ = [
    "DIARY_KINDS",
    "KIND_RESOURCE",
    "MAPPING_VERSION",
    "StagedInput",
    "kind_of",
    "open_for_reading",
    "to_mapping_row",
]
