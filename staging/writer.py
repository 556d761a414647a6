"""The page writer: records and their checkpoint land in one transaction, or not at all.

The hot path (`write_batch`) parses each record once in Python, then hands whole pages to
`sqlite3.Cursor.executemany` with a prepared `INSERT ... ON CONFLICT(id) DO UPDATE` per table.
It does not go through sqlite-utils' `upsert_all`, which inspects columns and builds SQL per
chunk and cannot express the merge rules below; one statement reused through the sqlite3
statement cache is what keeps ingest above 50,000 records/s (DESIGN.md section 8).

Merge rules when a row is already staged. They do not depend on the order pages arrive in
(the engine walks a resource's lists in parallel, and a resumed run is a new run):

* `variants` is the union of the lists the row's current version was seen in (merged in
  SQL): a strictly newer version (later `updated_at`) replaces it, so a row that moved lists
  (archived, made inactive) is staged where it is now; stubs only add to it.
* A *stub* is a record with neither `created_at` nor `updated_at`, such as a
  `/patients/deleted` row (`deleted_at` and a self link). A stub never overwrites a full
  record's data: the full `raw`, refs and timestamps are kept and the stub's markers noted.
* Between two full records the one with the later `updated_at` wins the data (refs,
  timestamps, `raw`); on a tie the later write does.
* Markers (`deleted_at`, `archived_at`, `cancelled_at`; "" means unset) accumulate: a marker
  once seen stays set, unless a strictly newer full record (later `updated_at`) says
  otherwise - that is an unarchive or a restore, seen by a top-up.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from engine.resources import Resource
from staging import quarantine
from staging.schema import MARKERS, VARIANTS, data_columns, q
from staging.sql import immediate, utc_now

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1
"""Cliniko ids are 64-bit integers; anything larger cannot be loaded as one."""
_MAX_ID_TEXT = str(MAX_ID)
_MAX_ID_DIGITS = len(_MAX_ID_TEXT)

# Record links: parse only the path (hosts vary: api.au1.cliniko.com, api.cliniko.dev:3000,
# plain http ...), optionally preceded by scheme and host, optionally followed by a query.
_LINK = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)?/v1/(?:internal/)?([a-z_]+)/([0-9]+)(?:[?#].*)?",
    re.DOTALL,
)
_REFERRAL_SOURCE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)?/v1/(?:internal/)?patients/([0-9]+)/referral_source"
    r"(?:[?#].*)?",
    re.DOTALL,
)

_match_link = _LINK.fullmatch

_encode: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
).encode


class Checkpoint(NamedTuple):
    """How far a crawl got: `state` is the engine's opaque JSON; `scope` e.g. "crawl"."""

    scope: str
    state: str
    done: bool


CheckpointLike = tuple[str, str, bool]
"""(scope, state JSON, done): a `Checkpoint` or a plain tuple."""


class Page(NamedTuple):
    """One fetched page and the checkpoint(s) it advances (a page may finish one unit of a
    crawl and advance another, so there can be several; or none)."""

    resource: Resource
    variant: str
    records: Sequence[object]
    checkpoints: Sequence[CheckpointLike] = ()


@dataclass(slots=True)
class WriteResult:
    written: int = 0
    quarantined: int = 0

    def __iadd__(self, other: WriteResult) -> WriteResult:
        self.written += other.written
        self.quarantined += other.quarantined
        return self


class Unusable(Exception):
    """A record that cannot be staged; `reason` never contains record content."""

    def __init__(self, reason: str, record_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id


def canonical_id(value: object) -> str:
    """A Cliniko id (JSON number or string) as canonical decimal text; `Unusable` if not one."""
    if type(value) is int:
        if 0 < value <= MAX_ID:
            return str(value)
    elif type(value) is str and value.isascii() and value.isdigit():
        n = int(value)
        if 0 < n <= MAX_ID:
            return str(n)
    raise Unusable("id is not a positive 64-bit integer")


_LINK_IDS: dict[str, str] = {}
"""Links seen lately and the ids they point at. Most of a clinic's links point at a few
businesses, practitioners and appointment types, and at the patients and bookings of the
records around them: about 70 % are seen again within 4,096 (measured on the sandbox)."""
_LINK_IDS_MAX = 4096


def link_id(link: object, field: str) -> str | None:
    """The id a link object `{"links": {"self": url}}` points at; None for a null link."""
    if link is None:
        return None
    try:
        url = link["links"]["self"]  # type: ignore[index]
        if type(url) is str:
            known = _LINK_IDS.get(url)
            if known is not None:
                return known
        m = _match_link(url)
    except (KeyError, TypeError, IndexError):
        m = None
    if m is None:
        raise Unusable(f"{field}: not a record link")
    digits: str = m[2]
    # Fast path: ASCII digits (the pattern's [0-9]) with no leading zero are already canonical;
    # in range if shorter than MAX_ID, or as long and not greater (equal-length digit strings
    # compare as their numbers). Cliniko's ids are mostly 19 digits long.
    n = len(digits)
    if digits[0] != "0" and (
        n < _MAX_ID_DIGITS or (n == _MAX_ID_DIGITS and digits <= _MAX_ID_TEXT)
    ):
        found = digits
    else:
        found = canonical_id(digits)
    if len(_LINK_IDS) >= _LINK_IDS_MAX:
        _LINK_IDS.clear()
    _LINK_IDS[url] = found
    return found


def _text(value: object, field: str) -> str | None:
    if not value:
        return None  # "" and null (and other empty values) mean unset
    if type(value) is str:
        return value
    raise Unusable(f"{field}: not a string")


class _Spec:
    """What the writer needs to know about one resource, worked out once."""

    __slots__ = ("composite", "key_from", "name", "refs", "single", "sql")

    def __init__(self, resource: Resource) -> None:
        self.name = resource.name
        self.refs = resource.refs
        self.key_from = resource.key_from
        self.single = resource.single
        self.sql = upsert_sql(resource)
        self.composite = (
            (resource.refs.index("business"), resource.refs.index("appointment_type"))
            if resource.key_from == "composite"
            else (0, 0)
        )


def upsert_sql(resource: Resource) -> str:
    """The page writer's statement for one table: insert, or merge into the staged row."""
    t = q(resource.name)
    cols = data_columns(resource)
    new_stub = "(excluded.created_at IS NULL AND excluded.updated_at IS NULL)"
    old_stub = f"({t}.created_at IS NULL AND {t}.updated_at IS NULL)"
    # Comparisons with NULL are NULL, which CASE treats as false: only two full records with
    # timestamps are ever fresher or staler than each other.
    fresher = f"(excluded.updated_at > {t}.updated_at)"
    staler = f"(excluded.updated_at < {t}.updated_at)"
    keep_old = f"(({new_stub} AND NOT {old_stub}) OR {staler})"
    sets: list[str] = []
    for col in cols:
        c = q(col)
        if col == "id":
            continue
        if col in MARKERS:
            expr = (
                f"CASE WHEN {fresher} THEN excluded.{c} WHEN {staler} THEN {t}.{c}"
                f" ELSE COALESCE(excluded.{c}, {t}.{c}) END"
            )
        elif col == "variants":
            parts = " || ".join(
                f"CASE WHEN excluded.variants = '{v}'"
                f" OR instr(',' || {t}.variants || ',', ',{v},') > 0 THEN '{v},' ELSE '' END"
                for v in VARIANTS
            )
            # A strictly newer version of the record says where it lives now (a practitioner
            # made inactive, a patient archived); sightings of the same version accumulate.
            expr = (
                f"CASE WHEN {fresher} THEN excluded.variants WHEN {staler} THEN {t}.variants"
                f" ELSE rtrim({parts}, ',') END"
            )
        elif col == "run_id":
            expr = "excluded.run_id"
        else:
            expr = f"CASE WHEN {keep_old} THEN {t}.{c} ELSE excluded.{c} END"
        sets.append(f"{c} = {expr}")
    placeholders = ", ".join("?" for _ in cols)
    # Identifiers come from the catalogue and are quoted; values are always bound parameters.
    return (
        f"INSERT INTO {t} ({', '.join(q(c) for c in cols)}) VALUES ({placeholders})"  # noqa: S608
        f" ON CONFLICT(id) DO UPDATE SET {', '.join(sets)}"
    )


CHECKPOINT_SQL = (
    "INSERT INTO _checkpoints (resource, variant, scope, state, done, updated_at, run_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(resource, variant, scope) DO UPDATE SET state = excluded.state,"
    " done = excluded.done, updated_at = excluded.updated_at, run_id = excluded.run_id"
)

META_SQL = (
    "INSERT INTO _meta (key, value) VALUES (?, ?)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)

Row = tuple[object, ...]


def _settings_meta(records: Sequence[object]) -> list[tuple[str, str]]:
    """`/settings` carries the account's name and time zone: note them in `_meta`."""
    settings = records[-1]
    account = settings.get("account") if type(settings) is dict else None
    if type(account) is not dict:
        return []
    pairs = [("account_name", account.get("name")), ("time_zone", account.get("time_zone"))]
    return [(key, value) for key, value in pairs if type(value) is str and _storable(value)]


def parse_record(spec: _Spec, record: object, variant: str, run_id: int) -> Row:
    """One record -> the row to upsert, in `data_columns` order. Raises `Unusable`.

    This runs once per record on the ingest path, so it is written for speed: few calls,
    fast paths for the common shapes, the careful checks only when a fast path fails.
    """
    if type(record) is not dict:
        raise Unusable("record is not a JSON object")
    try:
        get = record.get
        refs = [link_id(get(ref), ref) for ref in spec.refs]
        if spec.key_from == "id" and not spec.single:
            raw_id = get("id")
            if type(raw_id) is int and 0 < raw_id <= MAX_ID:
                key = str(raw_id)
            else:
                key = canonical_id(raw_id) if raw_id is not None else _self_id(record)
        else:
            key = _other_key(spec, record, refs)
        created_at = get("created_at") or None
        updated_at = get("updated_at") or None
        deleted_at = get("deleted_at") or None
        archived_at = get("archived_at") or None
        cancelled_at = get("cancelled_at") or None
        if not (
            (created_at is None or type(created_at) is str)
            and (updated_at is None or type(updated_at) is str)
            and (deleted_at is None or type(deleted_at) is str)
            and (archived_at is None or type(archived_at) is str)
            and (cancelled_at is None or type(cancelled_at) is str)
        ):
            for field in ("created_at", "updated_at", *MARKERS):
                _text(get(field), field)
        return (
            key,
            *refs,
            created_at,
            updated_at,
            deleted_at,
            archived_at,
            cancelled_at,
            variant,
            run_id,
            _encode(record),
        )
    except Unusable as exc:
        if exc.record_id is None:
            exc.record_id = _best_effort_id(record)
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise Unusable("record cannot be written as JSON", _best_effort_id(record)) from exc


def _other_key(spec: _Spec, record: dict[str, object], refs: list[str | None]) -> str:
    if spec.single:
        raw_id = record.get("id")
        return spec.name if raw_id is None else canonical_id(raw_id)
    if spec.key_from == "composite":
        business, appointment_type = (refs[i] for i in spec.composite)
        if business is None or appointment_type is None:
            raise Unusable("no business or appointment_type link to key the row by")
        return f"{business}:{appointment_type}"
    return _referral_source_key(record)  # "patient_link"


def _best_effort_id(record: dict[str, object]) -> str | None:
    """The record's id for a quarantine row, if one can be told at all."""
    try:
        raw_id = record.get("id")
        return canonical_id(raw_id) if raw_id is not None else _self_id(record)
    except Unusable:
        return None


def _self_url(record: dict[str, object]) -> str | None:
    links = record.get("links")
    if type(links) is dict:
        url = links.get("self")
        if type(url) is str:
            return url
    return None


def _self_id(record: dict[str, object]) -> str:
    url = _self_url(record)
    m = _LINK.fullmatch(url) if url is not None else None
    if m is None:
        raise Unusable("no id and no record self link")
    return canonical_id(m.group(2))


def _referral_source_key(record: dict[str, object]) -> str:
    url = _self_url(record)
    m = _REFERRAL_SOURCE.fullmatch(url) if url is not None else None
    if m is None:
        raise Unusable("self link is not /patients/<id>/referral_source")
    return canonical_id(m.group(1))


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text)


def _encodable(row: Row) -> bool:
    return all(_storable(v) or v == "" for v in row if type(v) is str)


class _Prepared(NamedTuple):
    sql: str
    rows: list[Row]
    records: Sequence[object]
    bad: list[quarantine.QuarantineParams]
    checkpoints: list[tuple[str, str, str, str, int, str, int]]
    meta: list[tuple[str, str]]
    spec: _Spec
    variant: str


class PageWriter:
    """Writes pages for one run. Not thread-safe: use it from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection, path: Path, run_id: int) -> None:
        self._conn = conn
        self._path = path
        self.run_id = run_id
        self._specs: dict[str, _Spec] = {}

    def _spec(self, resource: Resource) -> _Spec:
        spec = self._specs.get(resource.name)
        if spec is None:
            spec = self._specs[resource.name] = _Spec(resource)
        return spec

    def write_page(
        self,
        resource: Resource,
        variant: str,
        records: Sequence[object],
        checkpoint: CheckpointLike | None = None,
    ) -> WriteResult:
        """Upsert one page and its checkpoint in one transaction."""
        checkpoints = () if checkpoint is None else (checkpoint,)
        return self.write_batch([Page(resource, variant, records, checkpoints)])

    def set_single(self, resource: Resource, obj: object) -> WriteResult:
        """Stage a single object (`/user`, `/settings`) keyed by its id or the resource name."""
        if not resource.single:
            raise ValueError(f"{resource.name} is a list; use write_page")
        return self.write_batch([Page(resource, "active", [obj])])

    def write_batch(self, pages: Sequence[Page]) -> WriteResult:
        """Upsert several pages and their checkpoints in one transaction.

        Unusable records go to `_quarantine` with their reason in the same transaction; the
        rest of their page is written. Any other failure rolls the whole batch back.

        Every page's variant and checkpoints are checked before the transaction begins; the
        records are then parsed and written one page at a time, so only one page's rows (the
        records' JSON text) are held at once however many pages the batch has.
        """
        now = utc_now()
        checked = [self._check(page, now) for page in pages]
        result = WriteResult()
        conn = self._conn
        quarantined: list[tuple[str, str, int, list[str]]] = []
        with immediate(conn, self._path):
            for page, cps in zip(pages, checked, strict=True):
                p = self._prepare(page, now, cps)
                if p.rows:
                    try:
                        conn.executemany(p.sql, p.rows)
                    except UnicodeEncodeError:
                        self._salvage(p, now)
                if p.bad:
                    conn.executemany(quarantine.INSERT_SQL, p.bad)
                    reasons = sorted({b[3] for b in p.bad})
                    quarantined.append((p.spec.name, p.variant, len(p.bad), reasons))
                if p.checkpoints:
                    conn.executemany(CHECKPOINT_SQL, p.checkpoints)
                if p.meta and p.rows:  # only from a settings record that landed
                    conn.executemany(META_SQL, p.meta)
                result.written += len(p.rows)
                result.quarantined += len(p.bad)
        for name, variant, count, reasons in quarantined:
            log.warning("quarantined %d record(s) of %s/%s: %s", count, name, variant, reasons)
        return result

    def _check(self, page: Page, now: str) -> list[tuple[str, str, str, str, int, str, int]]:
        """A page's variant and checkpoints, checked; its checkpoint rows."""
        resource, variant, _records, checkpoints = page
        if variant not in resource.variants:
            raise ValueError(f"{resource.name} has no {variant!r} list")
        if len(checkpoints) == 3 and isinstance(checkpoints[0], str):  # one, not a list of them
            raise TypeError("Page.checkpoints is a sequence of (scope, state, done) tuples")
        cps: list[tuple[str, str, str, str, int, str, int]] = []
        for scope, state, done in checkpoints:
            if type(scope) is not str or type(state) is not str:
                raise TypeError("a checkpoint is (scope: str, state: JSON str, done: bool)")
            json.loads(state)  # the engine's state must be JSON; fail before writing anything
            cps.append((resource.name, variant, scope, state, 1 if done else 0, now, self.run_id))
        return cps

    def _prepare(
        self, page: Page, now: str, cps: list[tuple[str, str, str, str, int, str, int]]
    ) -> _Prepared:
        resource, variant, records, _checkpoints = page
        spec = self._spec(resource)
        run_id = self.run_id
        rows: list[Row] = []
        append = rows.append
        bad: list[quarantine.QuarantineParams] = []
        for record in records:
            try:
                append(parse_record(spec, record, variant, run_id))
            except Unusable as exc:
                bad.append(
                    quarantine.params(
                        spec.name, variant, record, exc.reason, exc.record_id, run_id, now
                    )
                )
        meta = _settings_meta(records) if spec.name == "settings" and rows else []
        return _Prepared(spec.sql, rows, records, bad, cps, meta, spec, variant)

    def _salvage(self, p: _Prepared, now: str) -> None:
        """A value SQLite cannot store as UTF-8 (a lone surrogate from `\\ud800` in the JSON):
        quarantine those records and write the rest (rewriting a row already written by the
        failed call is harmless: the upsert is idempotent)."""
        good: list[Row] = []
        for record in p.records:
            try:
                row = parse_record(p.spec, record, p.variant, self.run_id)
            except Unusable:
                continue  # already quarantined
            if _encodable(row):
                good.append(row)
            else:
                reason = "text is not valid Unicode (lone surrogate)"
                key = row[0] if type(row[0]) is str else None
                p.bad.append(
                    quarantine.params(p.spec.name, p.variant, record, reason, key, self.run_id, now)
                )
        p.rows[:] = good
        self._conn.executemany(p.sql, good)
