"""`ClinicStore`: the sandbox's clinic on SQLite, answering what the HTTP server asks.

Lists, records, `/user` and `/settings` are rendered from stored bodies (`sandbox.render`);
filters and sorting follow `sandbox.query`; which rows each list variant holds is decided in
`sandbox.catalog` (default lists exclude archived and deleted rows; cancelled appointments and
attendees are in the default list and in `/cancelled`; practitioners' default list is the
active ones). A page is two index reads: the keys of the page (a covering, often partial,
index), then the bodies by key. `total_entries` counts are cached until the next mutation.

Mutations (`create`, `update`, `archive`, `unarchive`, `delete`, `cancel`) are thread-safe (one
lock around the one connection), stamp `updated_at` with `clock()` like Cliniko, and cascade
as Cliniko would: an individual appointment and its attendee are created, cancelled and
deleted together; deleting a group appointment deletes its attendees; deleting an invoice
deletes its items; cancelling a group attendee drops the patient from `patient_ids`.

The truth the API does not show (payments) is read with `invoice_paid`,
`patient_outstanding` and `outstanding_by_patient`, never through HTTP.

SQL text is built from the catalogue's table and column names only; every value a caller
supplies is a bound parameter (hence the `noqa: S608`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox import names
from sandbox.catalog import (
    BY_NAME,
    CANCELLATION_REASONS,
    INVOICE_STATUSES,
    LISTS,
    Spec,
)
from sandbox.generator import CODES, Report, generate, snowflake
from sandbox.query import QueryError, order_by, where
from sandbox.render import money, render_text, ts
from sandbox.schema import LAYOUTS, Body, read_meta

__all__ = ["ClinicStore", "NotFound", "QueryError"]


class NotFound(LookupError):
    """No such resource, list or record: the server answers 404."""


# Where a record link of each key points (for `<key>_id=` overrides in create/update).
REF_COLLECTIONS: dict[str, str] = {
    "patient": "patients",
    "practitioner": "practitioners",
    "business": "businesses",
    "appointment_type": "appointment_types",
    "default_appointment_type": "appointment_types",
    "booking": "bookings",
    "invoice": "invoices",
    "billable_item": "billable_items",
    "product": "products",
    "tax": "taxes",
    "user": "users",
    "treatment_note_template": "treatment_note_templates",
    "concession_type": "concession_types",
    "referring_doctor": "contacts",
    "merged_with_patient": "patients",
    "referral_source_type": "referral_source_types",
    "appointment": "appointments",
}
_FIXED_KEYS = frozenset({"id", "links", "created_at", "updated_at"})
_IN_MEMORY_SIZES = frozenset({"tiny", "small"})
_COUNT_CACHE_MAX = 4096


def _key(value: str | int) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise NotFound(f"not found: {value!r} is not an id")
    number = int(text)
    if number > (1 << 63) - 1:
        raise NotFound(f"not found: {value!r}")
    return number


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return money(value)
    return value


class ClinicStore:
    """A synthetic Cliniko account. Build one with `ClinicStore.generate(...)`."""

    shard: str

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: str | None = None,
        owned_path: bool = False,
        clock: Callable[[], datetime] | None = None,
        report: Report | None = None,
    ) -> None:
        self._conn = conn
        self._path = path
        self._owned_path = owned_path
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._count_cache: dict[tuple[str, str, tuple[Any, ...]], int] = {}
        self._closed = False
        conn.execute("PRAGMA journal_mode = MEMORY")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA temp_store = MEMORY")
        self._meta = read_meta(conn)
        self.shard = str(self._meta.get("shard", "au1"))
        self.seed = int(self._meta.get("seed", 0))
        self.anchor = date.fromisoformat(str(self._meta["anchor"]))
        self.size = str(self._meta.get("size", ""))
        self.shape = str(self._meta.get("shape", ""))
        self.report = report

    # ----------------------------------------------------------------------- construction

    @classmethod
    def generate(
        cls,
        size: str = "small",
        seed: int = 1,
        *,
        anchor: date | None = None,
        shape: str = "balanced",
        shard: str = "au1",
        path: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> ClinicStore:
        """A fresh synthetic clinic. tiny/small live in memory unless `path` is given;
        medium/large go to `path` or to a temporary file removed by `close()`."""
        owned = False
        if path is None and size not in _IN_MEMORY_SIZES:
            fd, path = tempfile.mkstemp(prefix="cliniko-sandbox-", suffix=".sqlite")
            os.close(fd)
            owned = True
        try:
            if path is None:
                conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                report = generate(conn, size, seed, anchor, shape, shard=shard)
            else:
                report = generate(path, size, seed, anchor, shape, shard=shard)
                conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except BaseException:
            if owned and path is not None:
                Path(path).unlink(missing_ok=True)
            raise
        return cls(conn, path=path, owned_path=owned, clock=clock, report=report)

    @classmethod
    def open(cls, path: str, *, clock: Callable[[], datetime] | None = None) -> ClinicStore:
        """A clinic generated earlier into `path` (e.g. a cached `large` one)."""
        if not Path(path).exists():
            raise FileNotFoundError(path)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        return cls(conn, path=path, clock=clock)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
            if self._owned_path and self._path:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{self._path}{suffix}").unlink(missing_ok=True)

    def __enter__(self) -> ClinicStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- reading

    @staticmethod
    def _spec(resource: str) -> Spec:
        spec = BY_NAME.get(resource)
        if spec is None:
            raise NotFound(f"not found: no resource {resource!r}")
        return spec

    def has_list(self, resource: str, variant: str) -> bool:
        spec = BY_NAME.get(resource)
        return spec is not None and variant in spec.variants

    def _list_spec(self, resource: str, variant: str) -> Spec:
        spec = self._spec(resource)
        if variant not in spec.variants:
            raise NotFound(f"not found: {resource} has no {variant!r} list")
        return spec

    def _count(self, spec: Spec, where_sql: str, params: list[Any]) -> int:
        key = (spec.name, where_sql, tuple(params))
        cached = self._count_cache.get(key)
        if cached is None:
            sql = f"SELECT COUNT(*) FROM {spec.name} WHERE {where_sql}"  # noqa: S608
            row = self._conn.execute(sql, params).fetchone()
            cached = int(row[0])
            if len(self._count_cache) >= _COUNT_CACHE_MAX:
                self._count_cache.clear()
            self._count_cache[key] = cached
        return cached

    def _bodies(self, spec: Spec, keys: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" for _ in chunk)
            sql = f"SELECT key, body FROM {spec.name}_body WHERE key IN ({marks})"  # noqa: S608
            rows = self._conn.execute(sql, chunk)
            out.update((int(k), str(b)) for k, b in rows)
        return out

    def _page_keys(
        self,
        spec: Spec,
        where_sql: str,
        params: list[Any],
        order_sql: str,
        hint: str,
        limit: int,
        offset: int,
    ) -> list[int]:
        select = f"SELECT {spec.key} FROM {spec.name}"  # noqa: S608
        tail = f"WHERE {where_sql} ORDER BY {order_sql} LIMIT ? OFFSET ?"
        try:
            rows = self._conn.execute(f"{select} {hint} {tail}", [*params, limit, offset])
        except sqlite3.OperationalError:
            if not hint:
                raise
            rows = self._conn.execute(f"{select} {tail}", [*params, limit, offset])
        return [int(r[0]) for r in rows]

    def list_page(
        self,
        resource: str,
        variant: str,
        q: list[str],
        sort: str | None,
        order: str | None,
        page: int,
        per_page: int,
        base_url: str,
    ) -> tuple[list[dict[str, Any]], int]:
        spec = self._list_spec(resource, variant)
        if page < 1:
            raise QueryError(f"page must be at least 1, not {page}")
        if per_page < 1:
            raise QueryError(f"per_page must be at least 1, not {per_page}")
        cond = where(spec, variant, list(q))
        order_sql = order_by(spec, sort, order)
        offset = (page - 1) * per_page
        with self._lock:
            total = self._count(spec, cond.sql, cond.params)
            if offset >= total:
                return [], total
            hint = ""
            if cond.indexable:
                # A selective filter (an updated_at top-up, a patient's rows): read its index
                # and sort the few rows, rather than walk the whole list in order.
                everything = self._count(spec, spec.variants[variant] or "1", [])
                if total * 4 < everything:
                    hint = f"INDEXED BY ix_{spec.name}_{cond.indexable[0]}"
            keys = self._page_keys(spec, cond.sql, cond.params, order_sql, hint, per_page, offset)
            bodies = self._bodies(spec, keys)
        return [render_text(spec, k, bodies[k], base_url, variant) for k in keys], total

    def get_one(self, resource: str, record_id: str | int, base_url: str) -> dict[str, Any]:
        spec = self._spec(resource)
        if not spec.has_id:
            raise NotFound(f"not found: {resource} have no ids")
        rid = _key(record_id)
        with self._lock:
            sql = f"SELECT body FROM {spec.name}_body WHERE key = ?"  # noqa: S608
            row = self._conn.execute(sql, (rid,)).fetchone()
        if row is None:
            raise NotFound(f"not found: {resource} {rid}")
        return render_text(spec, rid, str(row[0]), base_url)

    def user(self, base_url: str) -> dict[str, Any]:
        return self.get_one("users", int(self._meta["admin_user_id"]), base_url)

    def settings(self, base_url: str, *, public: bool = False) -> dict[str, Any]:
        """`/settings` (or `/settings/public` with `public=True`, without the full-only keys)."""
        out: dict[str, Any] = copy.deepcopy(self._meta["settings"])
        if public:
            out["account"].pop("email_from", None)
            out["account"].pop("admin", None)
            out["online_bookings"].pop("adroll", None)
            out["online_bookings"].pop("google_analytics", None)
        out["links"] = {"self": f"{base_url}/settings/public"}
        return out

    def practitioner_reference_numbers(
        self, practitioner_id: str | int, page: int, per_page: int, base_url: str
    ) -> tuple[list[dict[str, Any]], int]:
        if page < 1:
            raise QueryError(f"page must be at least 1, not {page}")
        pid = _key(practitioner_id)
        spec = BY_NAME["practitioner_reference_numbers"]
        with self._lock:
            if self._conn.execute("SELECT 1 FROM practitioners WHERE id = ?", (pid,)).fetchone():
                total = int(
                    self._conn.execute(
                        "SELECT COUNT(*) FROM practitioner_reference_numbers "
                        "WHERE practitioner_id = ?",
                        (pid,),
                    ).fetchone()[0]
                )
            else:
                raise NotFound(f"not found: practitioners {pid}")
            rows = self._conn.execute(
                "SELECT p.id, b.body FROM practitioner_reference_numbers p "
                "JOIN practitioner_reference_numbers_body b ON b.key = p.id "
                "WHERE p.practitioner_id = ? ORDER BY p.created_at, p.id LIMIT ? OFFSET ?",
                (pid, max(1, per_page), (page - 1) * max(1, per_page)),
            ).fetchall()
        return [render_text(spec, int(k), str(b), base_url) for k, b in rows], total

    def referral_source(self, patient_id: str | int, base_url: str) -> dict[str, Any]:
        pid = _key(patient_id)
        spec = BY_NAME["referral_sources"]
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM referral_sources_body WHERE key = ?", (pid,)
            ).fetchone()
        if row is None:
            raise NotFound(f"not found: patient {pid} has no referral source")
        return render_text(spec, pid, str(row[0]), base_url)

    # ----------------------------------------------------------------------- truth for tests

    def counts(self) -> dict[tuple[str, str], int]:
        """(resource, variant) -> rows in that list; plus ("practitioner_reference_numbers",
        "active"): every reference number (they are only listed per practitioner)."""
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for resource, variant in LISTS:
                predicate = BY_NAME[resource].variants[variant] or "1"
                row = self._conn.execute(
                    f"SELECT COUNT(*) FROM {resource} WHERE {predicate}"  # noqa: S608
                ).fetchone()
                out[(resource, variant)] = int(row[0])
            row = self._conn.execute("SELECT COUNT(*) FROM practitioner_reference_numbers")
            out[("practitioner_reference_numbers", "active")] = int(row.fetchone()[0])
        return out

    def _variant_predicate(self, resource: str, variant: str) -> tuple[Spec, str]:
        if resource == "practitioner_reference_numbers" and variant == "active":
            return BY_NAME[resource], "1"
        spec = self._list_spec(resource, variant)
        return spec, spec.variants[variant] or "1"

    def ids(self, resource: str, variant: str) -> set[str]:
        """Ids of the rows in a list. Referral sources: their patient's id; services:
        "<business id>:<appointment type id>"."""
        spec, predicate = self._variant_predicate(resource, variant)
        with self._lock:
            if resource == "services":
                rows = self._conn.execute(
                    "SELECT json_extract(body, '$.business'), "
                    "json_extract(body, '$.appointment_type') FROM services_body"
                ).fetchall()
                return {f"{b.rsplit('/', 1)[1]}:{t.rsplit('/', 1)[1]}" for b, t in rows}
            rows = self._conn.execute(
                f"SELECT {spec.key} FROM {resource} WHERE {predicate}"  # noqa: S608
            ).fetchall()
        return {str(r[0]) for r in rows}

    def raw_records(self, resource: str, variant: str, base_url: str) -> Iterator[dict[str, Any]]:
        """Every record of a list in the default order: exactly what paging would return."""
        spec, predicate = self._variant_predicate(resource, variant)
        with self._lock:
            order = order_by(spec, None, None) if spec.has_list else "created_at, id"
            keys = [
                int(r[0])
                for r in self._conn.execute(
                    f"SELECT {spec.key} FROM {resource} WHERE {predicate} ORDER BY {order}"  # noqa: S608
                )
            ]
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            with self._lock:
                bodies = self._bodies(spec, chunk)
            for k in chunk:
                if k in bodies:
                    yield render_text(spec, k, bodies[k], base_url, variant)

    def invoice_paid(self, invoice_id: str | int) -> Decimal:
        rid = _key(invoice_id)
        with self._lock:
            row = self._conn.execute(
                "SELECT json_extract(body, '$._paid') FROM invoices_body WHERE key = ?", (rid,)
            ).fetchone()
        if row is None:
            raise NotFound(f"not found: invoices {rid}")
        return Decimal(str(row[0]))

    def _outstanding_rows(self, patient_id: int | None) -> list[tuple[int, str, str]]:
        sql = (
            "SELECT i.patient_id, json_extract(b.body, '$.total_amount'), "
            "json_extract(b.body, '$._paid') FROM invoices i JOIN invoices_body b "
            "ON b.key = i.id WHERE i.deleted_at IS NULL"
        )
        params: tuple[Any, ...] = ()
        if patient_id is not None:
            sql += " AND i.patient_id = ?"
            params = (patient_id,)
        with self._lock:
            return [(int(p), str(t), str(d)) for p, t, d in self._conn.execute(sql, params)]

    def patient_outstanding(self, patient_id: str | int) -> Decimal:
        """Sum over the patient's non-deleted invoices of total - paid (credit: negative)."""
        rows = self._outstanding_rows(_key(patient_id))
        return sum((Decimal(t) - Decimal(p) for _, t, p in rows), Decimal(0))

    def outstanding_by_patient(self) -> dict[str, Decimal]:
        """Patient id -> outstanding, for every patient with at least one non-deleted invoice
        (zero balances included)."""
        out: dict[str, Decimal] = {}
        for pid, total, paid in self._outstanding_rows(None):
            key = str(pid)
            out[key] = out.get(key, Decimal(0)) + Decimal(total) - Decimal(paid)
        return out

    # ----------------------------------------------------------------------- mutations

    def _now(self) -> tuple[int, str]:
        moment = self._clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
        return ms, ts(ms)

    def _load(self, spec: Spec, key: int) -> Body:
        sql = f"SELECT body FROM {spec.name}_body WHERE key = ?"  # noqa: S608
        row = self._conn.execute(sql, (key,)).fetchone()
        if row is None:
            raise NotFound(f"not found: {spec.name} {key}")
        body: Body = json.loads(row[0])
        return body

    def _select(
        self, spec: Spec, condition: str, params: tuple[Any, ...] = (), tail: str = ""
    ) -> list[Body]:
        """Bodies of the rows of `spec` matching `condition` (on the narrow table `t`)."""
        rows = self._conn.execute(
            f"SELECT b.body FROM {spec.name} t JOIN {spec.name}_body b ON b.key = t.{spec.key} "  # noqa: S608
            f"WHERE {condition} {tail}",
            params,
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _save(self, spec: Spec, body: Body) -> None:
        LAYOUTS[spec.name].save(self._conn, body)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._count_cache.clear()

    def _apply(self, spec: Spec, body: Body, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name in spec.refs:
                body[name] = value
            elif name.endswith("_id") and name[:-3] in spec.refs:
                ref = name[:-3]
                if value is None:
                    body[ref] = None
                elif ref == "referrer":
                    raise ValueError("set referrer to a path such as '/patients/1'")
                else:
                    body[ref] = f"/{REF_COLLECTIONS[ref]}/{_key(value)}"
            elif f"_{name}" in spec.private and name != "paid":
                body[f"_{name}"] = value
            elif spec.name == "invoices" and name == "paid":
                body["_paid"] = money(Decimal(str(value)))
            elif spec.name == "practitioners" and name == "inactive":
                body["_inactive"] = bool(value)
            elif name in body and name not in _FIXED_KEYS and not name.startswith("_"):
                body[name] = _normalise(value)
            else:
                raise ValueError(f"{spec.name} records have no writable field {name!r}")

    def _sync_invoice(self, body: Body, now: str, changes: dict[str, Any]) -> None:
        status = int(body["status"])
        if status not in INVOICE_STATUSES:
            raise ValueError(f"invoice status must be one of {sorted(INVOICE_STATUSES)}")
        body["status_description"] = INVOICE_STATUSES[status]
        total = Decimal(str(body["total_amount"]))
        paid = Decimal(str(body.get("_paid") or "0"))
        if status in (20, 30):
            paid = total
            body["closed_at"] = body.get("closed_at") or now
        elif status == 40:
            paid = Decimal(0)
            body["closed_at"] = None
        else:
            paid = max(Decimal(0), min(paid, total))
            if "closed_at" not in changes:
                body["closed_at"] = None
        body["_paid"] = money(paid)
        if "paid" in changes:
            body["_paid"] = money(Decimal(str(changes["paid"])))

    def _new_key(self, spec: Spec, ms: int) -> int:
        row = self._conn.execute(f"SELECT MAX({spec.key}) FROM {spec.name}").fetchone()  # noqa: S608
        last = int(row[0] or 0)
        if spec.key == "_k":
            return last + 1
        return max(snowflake(ms, CODES[spec.name], 0x1FFFF), last + 1)

    def _template(self, spec: Spec) -> Body:
        for variant in ("active", *spec.variants):
            predicate = spec.variants.get(variant) if spec.variants else "1"
            if predicate is None:
                continue
            found = self._select(spec, predicate or "1", (), f"ORDER BY t.{spec.key} DESC LIMIT 1")
            if found:
                return found[0]
        raise ValueError(f"cannot create {spec.name}: there is no record to model it on")

    def _fresh_person(self, body: Body, key: int) -> None:
        rng = random.Random(f"create:{self.seed}:{key}")
        person = names.random_person(rng)
        body["first_name"] = person.first
        body["last_name"] = f"{person.last}-{key % 10_000:04d}"
        body["title"] = person.title
        if "email" in body:
            body["email"] = names.email_for(person.first, body["last_name"], key % 100_000)
        if "date_of_birth" in body:
            body["date_of_birth"] = f"{rng.randrange(1940, 2020)}-{rng.randrange(1, 13):02d}-" + (
                f"{rng.randrange(1, 29):02d}"
            )
        if "preferred_first_name" in body:
            body["preferred_first_name"] = ""
        if "label" in body:
            body["label"] = f"{body['first_name']} {body['last_name']}"

    @staticmethod
    def _reset_state(spec: Spec, body: Body) -> None:
        name = spec.name
        if name == "patients":
            body.update(archived_at="", deleted_at="", merged_at="", merged_with_patient=None)
            body["old_reference_id"] = ""
        else:
            if "deleted_at" in body:
                body["deleted_at"] = None
            if "archived_at" in body:
                body["archived_at"] = None
        if "cancelled_at" in body:
            body.update(
                cancelled_at=None,
                cancellation_reason=None,
                cancellation_reason_description="",
                cancellation_note=None,
            )
        if name == "individual_appointments":
            body.update(did_not_arrive=False, patient_arrived=False)
        if name == "attendees":
            body["arrived"] = None
        if name == "practitioners":
            body["_inactive"] = False
        if name == "patient_cases":
            body["attendee_ids"] = []
        if name == "invoices":
            body.update(status=10, closed_at=None, _paid="0.0")

    def create(self, resource: str, **overrides: Any) -> str:
        """A new record modelled on the newest one of its kind, with `overrides` applied
        (body fields, or `<link>_id=` for links). Returns the new id (for referral sources,
        the patient id; services, the internal key). People (patients, contacts, users,
        practitioners) get a fresh synthetic name and date of birth, the last name suffixed
        with part of the id so that name-and-birth-date matching never mistakes them for an
        existing record. Creating an individual appointment also creates its attendee."""
        spec = BY_NAME.get(resource)
        if spec is None:
            raise ValueError(f"unknown resource {resource!r}")
        with self._writing():
            ms, now = self._now()
            body = self._template(spec)
            self._reset_state(spec, body)
            if spec.key == "patient_id":
                if "patient_id" not in overrides:
                    raise ValueError("a referral source needs patient_id=")
                key = _key(overrides["patient_id"])
                if self._conn.execute(
                    "SELECT 1 FROM referral_sources WHERE patient_id = ?", (key,)
                ).fetchone():
                    raise ValueError(f"patient {key} already has a referral source")
            else:
                key = self._new_key(spec, ms)
            if spec.key == "id":
                body["id"] = key
            elif spec.key == "_k":
                body["_k"] = key
            if spec.timestamps:
                body["created_at"] = body["updated_at"] = now
            if resource in ("patients", "contacts", "users", "practitioners"):
                self._fresh_person(body, key)
            if resource == "invoices":
                row = self._conn.execute("SELECT MAX(number) FROM invoices").fetchone()
                body["number"] = int(row[0] or 0) + 1
            self._apply(spec, body, overrides)
            if resource == "invoices":
                self._sync_invoice(body, now, overrides)
            if resource == "individual_appointments" and "patient_name" not in overrides:
                body["patient_name"] = self._patient_name(body.get("patient"))
            self._save(spec, body)
            if resource == "individual_appointments":
                self._create_attendee(key, body, ms, now)
        return str(key)

    def _patient_name(self, path: Any) -> str:
        if not isinstance(path, str):
            return ""
        body = self._load(BY_NAME["patients"], _key(path.rsplit("/", 1)[1]))
        return f"{body['first_name']} {body['last_name']}".strip()

    def _create_attendee(self, appt_id: int, appt: Body, ms: int, now: str) -> None:
        spec = BY_NAME["attendees"]
        body = self._template(spec)
        self._reset_state(spec, body)
        body["id"] = self._new_key(spec, ms)
        body["created_at"] = body["updated_at"] = now
        body["booking"] = f"/bookings/{appt_id}"
        body["patient"] = appt.get("patient")
        self._save(spec, body)

    def update(self, resource: str, record_id: str | int, **changes: Any) -> None:
        """Change fields of a record (`<link>_id=` for links; invoices also take `paid=`)."""
        spec = BY_NAME.get(resource)
        if spec is None:
            raise ValueError(f"unknown resource {resource!r}")
        if spec.key == "patient_id" and {"patient", "patient_id"} & set(changes):
            raise ValueError("a referral source belongs to its patient; delete and create instead")
        with self._writing():
            _, now = self._now()
            body = self._load(spec, _key(record_id))
            self._apply(spec, body, changes)
            if resource == "invoices":
                self._sync_invoice(body, now, changes)
            if spec.timestamps:
                body["updated_at"] = now
            self._save(spec, body)

    def archive(self, resource: str, record_id: str | int) -> None:
        """Archive a patient or appointment type; make a practitioner inactive."""
        self._set_archived(resource, record_id, archived=True)

    def unarchive(self, resource: str, record_id: str | int) -> None:
        self._set_archived(resource, record_id, archived=False)

    def _set_archived(self, resource: str, record_id: str | int, *, archived: bool) -> None:
        if resource not in ("patients", "appointment_types", "practitioners"):
            raise ValueError(f"{resource} cannot be archived")
        spec = BY_NAME[resource]
        with self._writing():
            _, now = self._now()
            body = self._load(spec, _key(record_id))
            if resource == "practitioners":
                body["_inactive"] = archived
            elif resource == "patients":
                body["archived_at"] = (body["archived_at"] or now) if archived else ""
            else:
                body["archived_at"] = (body.get("archived_at") or now) if archived else None
            body["updated_at"] = now
            self._save(spec, body)

    def delete(self, resource: str, record_id: str | int) -> None:
        """Set `deleted_at` (cascading to an appointment's attendees, an invoice's items)."""
        spec = BY_NAME.get(resource)
        if spec is None:
            raise ValueError(f"unknown resource {resource!r}")
        with self._writing():
            _, now = self._now()
            key = _key(record_id)
            body = self._load(spec, key)
            if "deleted_at" not in body:
                raise ValueError(f"{resource} cannot be deleted")
            self._mark_deleted(spec, body, now)
            children: list[tuple[str, str]] = []
            if resource in ("individual_appointments", "group_appointments"):
                children.append(("attendees", "booking_id"))
            elif resource == "invoices":
                children.append(("invoice_items", "invoice_id"))
            for child, column in children:
                cspec = BY_NAME[child]
                for child_body in self._select(
                    cspec, f"{column} = ? AND deleted_at IS NULL", (key,)
                ):
                    self._mark_deleted(cspec, child_body, now)

    def _mark_deleted(self, spec: Spec, body: Body, now: str) -> None:
        body["deleted_at"] = body.get("deleted_at") or now
        body["updated_at"] = now
        self._save(spec, body)

    def cancel(self, resource: str, record_id: str | int, reason: int = 50) -> None:
        """Cancel an individual appointment (and its attendee) or an attendee (and its
        individual appointment, or leave its group class)."""
        if resource not in ("individual_appointments", "attendees"):
            raise ValueError(f"{resource} cannot be cancelled")
        if reason not in CANCELLATION_REASONS:
            raise ValueError(f"reason must be one of {sorted(CANCELLATION_REASONS)}")
        with self._writing():
            _, now = self._now()
            key = _key(record_id)
            if resource == "individual_appointments":
                appt_id = key
                self._cancel_one(BY_NAME[resource], self._load(BY_NAME[resource], key), reason, now)
                for attendee in self._select(BY_NAME["attendees"], "booking_id = ?", (appt_id,)):
                    self._cancel_one(BY_NAME["attendees"], attendee, reason, now)
                return
            attendee = self._load(BY_NAME["attendees"], key)
            self._cancel_one(BY_NAME["attendees"], attendee, reason, now)
            booking = _key(str(attendee["booking"]).rsplit("/", 1)[1])
            appts = self._select(BY_NAME["individual_appointments"], "id = ?", (booking,))
            if appts:
                self._cancel_one(BY_NAME["individual_appointments"], appts[0], reason, now)
                return
            groups = self._select(BY_NAME["group_appointments"], "id = ?", (booking,))
            if groups:
                gbody = groups[0]
                live = self._conn.execute(
                    "SELECT DISTINCT patient_id FROM attendees WHERE booking_id = ? "
                    "AND cancelled_at IS NULL AND deleted_at IS NULL",
                    (booking,),
                ).fetchall()
                keep = {int(r[0]) for r in live if r[0] is not None}
                gbody["patient_ids"] = [p for p in gbody["patient_ids"] if p in keep]
                gbody["updated_at"] = now
                self._save(BY_NAME["group_appointments"], gbody)

    def _cancel_one(self, spec: Spec, body: Body, reason: int, now: str) -> None:
        if body.get("cancelled_at"):
            return
        body.update(
            cancelled_at=now,
            cancellation_reason=reason,
            cancellation_reason_description=CANCELLATION_REASONS[reason],
            updated_at=now,
        )
        self._save(spec, body)
