"""Load: apply a plan to the clinic store in batched transactions, then verify.

- Kinds in dependency order (`KINDS_IN_ORDER`); within a kind, batches of `batch_size` items,
  each one transaction holding the clinic rows, their invoice lines and reconciliation
  settlements, their `import_links` (source and target hashes) and the batch's audit entries.
  A load killed at any point leaves whole batches only; rerun, its plan sees exactly what
  landed (links are written with their rows) and carries on: no duplicates.
- One reconciliation settlement per invoice (`settlement_amount`), found again through its
  own link (`import_links` kind `settlement`, keyed by the invoice's Cliniko id): updated, never
  duplicated.
- Updates re-check the clinic row's hash before writing: a row edited in MyNewClinic since the
  plan was made becomes a conflict, and is left as it is.
- It never writes `message_outbox` and never switches messaging or AI on (the store refuses
  both anyway); audit entries carry ids, codes and field names only.
- A row the clinic store refuses (a value out of range, a constraint) is skipped with the code
  `rejected_by_clinic` and the batch is retried without it; records that point at it are then
  skipped as `<kind>_not_imported`.

    result = load("clinic.staging", "sqlite:///clinic.db", sink=print)
    result.verification.ok
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.clinic_rows import (
    SETTLEMENT_LINK,
    Ref,
    settlement_hash,
    settlement_row,
    target_hash,
)
from engine.events import EventSink, LoadProgress, Notice, discard
from engine.plan import (
    Plan,
    PlanItem,
    _aware,
    build_plan,
    paused_gc,
    staging_fingerprint,
    target_fingerprint,
)
from engine.resources import ALL_PARTS, close_parts
from engine.staged_input import open_for_reading
from engine.verify import Verification, verify
from staging import StagingDB
from target import (
    KIND_TABLES,
    ClinicBackend,
    IntegrityViolation,
    InvalidValue,
    Link,
    LinkRow,
    open_target,
)
from target.url import DEFAULT_TARGET

BATCH_SIZE = 2000


@dataclass
class LoadResult:
    plan: Plan
    run_id: int
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    """Kind -> {created, updated, linked, conflicts, rejected, lines, settlements}."""
    rejected: list[PlanItem] = field(default_factory=list)
    """Items the load could not write (now skips with their reason)."""
    verification: Verification = field(default_factory=Verification)
    replanned: bool = False
    """The plan given was stale (the staging file or the clinic changed): planned again."""
    seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verification.ok

    def rows_written(self) -> int:
        return sum(
            c.get("created", 0) + c.get("updated", 0) + c.get("lines", 0)
            for c in self.written.values()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "plan": self.plan.to_json(),
            "written": self.written,
            "rejected": [i.to_json() for i in self.rejected],
            "verification": self.verification.to_json(),
            "replanned": self.replanned,
            "seconds": round(self.seconds, 3),
        }


class _Reject(Exception):
    """One item of a batch the clinic store refused: undo the batch, retry without it."""

    def __init__(self, item: PlanItem, code: str, reason: str) -> None:
        super().__init__(reason)
        self.item = item
        self.code = code
        self.reason = reason


def load(
    plan_or_staging: Plan | str | os.PathLike[str],
    target_url: str | None = None,
    selection: Sequence[str] | None = None,
    now: datetime | None = None,
    *,
    sink: EventSink = discard,
    batch_size: int = BATCH_SIZE,
) -> LoadResult:
    """Apply a plan (or plan `plan_or_staging`, a staging file, and apply that) to the clinic
    at `target_url` (default: the plan's target), then verify.

    A `Plan` whose inputs changed since it was made is planned again first (a `Notice` says
    so). Raises `staging.StagingError` or `target.TargetError` when an input cannot be used.
    """
    started = time.perf_counter()
    given = plan_or_staging if isinstance(plan_or_staging, Plan) else None
    staging_path = (
        given.staging_path if given is not None else os.fspath(plan_or_staging)  # type: ignore[arg-type]  # not a Plan here
    )
    url = target_url or (given.target_location if given else None) or DEFAULT_TARGET
    with open_for_reading(staging_path) as staging:
        store = open_target(url)
        try:
            the_plan, replanned = _current_plan(
                given, staging, store, staging_path, selection, now, sink
            )
            loader = _Loader(the_plan, store, sink, batch_size, staging_path)
            try:
                with paused_gc():
                    loader.run()
            except Exception:
                _finish_failed(store, loader)
                raise
            result = loader.result
            result.replanned = replanned
            result.verification = verify(
                store,
                staging,
                source=the_plan.source,
                kinds=the_plan.kinds,
                mappable=loader.mappable(),
            )
            store.finish_import_run(
                result.run_id,
                "complete" if result.verification.ok else "verification_failed",
                loader.counts(),
                result.verification.to_json(),
            )
        finally:
            store.close()
    result.seconds = time.perf_counter() - started
    return result


def _finish_failed(store: ClinicBackend, loader: _Loader) -> None:
    """Best effort: mark the run failed (a killed process leaves it unfinished instead)."""
    with contextlib.suppress(Exception):  # the original error is the one to report
        store.finish_import_run(loader.run_id, "failed", loader.counts(), None)


def _current_plan(
    given: Plan | None,
    staging: StagingDB,
    store: ClinicBackend,
    staging_path: str,
    selection: Sequence[str] | None,
    now: datetime | None,
    sink: EventSink,
) -> tuple[Plan, bool]:
    if given is not None:
        fresh = given.fingerprint.get("staging") == staging_fingerprint(
            staging
        ) and given.fingerprint.get("target") == target_fingerprint(store)
        if fresh:
            return given, False
        sink(
            Notice(
                level="warning",
                message="the staging file or the clinic changed since the plan was made; "
                "planning again",
            )
        )
        parts: Sequence[str] = given.selection
        moment = given.now
    else:
        parts = close_parts(selection or ALL_PARTS)
        moment = _aware(now)
    fresh_plan = build_plan(staging, store, parts, moment, staging_path=staging_path, sink=sink)
    if given is not None:
        fresh_plan.target_location = given.target_location
    return fresh_plan, given is not None


class _Loader:
    def __init__(
        self,
        plan: Plan,
        store: ClinicBackend,
        sink: EventSink,
        batch_size: int,
        staging_path: str,
    ) -> None:
        self.plan = plan
        self.store = store
        self.sink = sink
        self.batch_size = max(1, batch_size)
        self.source = plan.source
        self.ids: dict[tuple[str, str], int] = {}
        """(kind, Cliniko id) -> clinic id of what this load created or linked."""
        self.settlements: dict[str, Link] = {}
        self.rejected: dict[tuple[str, str], PlanItem] = {}
        self.run_id = store.start_import_run(
            source=plan.source, mode="load", staging_path=staging_path
        )
        self.result = LoadResult(plan=plan, run_id=self.run_id)

    # -- driving ------------------------------------------------------------------------

    def run(self) -> None:
        started = time.perf_counter()
        if "invoice" in self.plan.kinds:
            self.settlements = self.store.load_links(self.source, SETTLEMENT_LINK)
        for kind in self.plan.kinds:
            todo = [i for i in self.plan.items.get(kind, ()) if i.writes]
            stats = self.result.written.setdefault(
                kind,
                {
                    "created": 0,
                    "updated": 0,
                    "linked": 0,
                    "conflicts": 0,
                    "rejected": 0,
                    "lines": 0,
                    "settlements": 0,
                },
            )
            self.sink(LoadProgress(record_kind=kind, done=0, total=len(todo)))
            conflicts = [i for i in self.plan.items.get(kind, ()) if i.action == "conflict"]
            if conflicts:  # kept as the clinic has them: recorded, not written
                self.store.audit([self._audit_fields("import_conflict", i) for i in conflicts])
                stats["conflicts"] += len(conflicts)
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start : start + self.batch_size]
                self._batch(kind, batch, stats)
                self.sink(LoadProgress(record_kind=kind, done=start + len(batch), total=len(todo)))
        self.result.write_seconds = time.perf_counter() - started
        self.result.rejected = list(self.rejected.values())

    def mappable(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for kind in self.plan.kinds:
            out[kind] = {
                i.source_id
                for i in self.plan.items.get(kind, ())
                if i.action != "skip" and (kind, i.source_id) not in self.rejected
            }
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, stats in self.result.written.items():
            for name, n in stats.items():
                if n:
                    out[f"{kind}.{name}"] = n
        return out

    # -- one batch ----------------------------------------------------------------------

    def _batch(self, kind: str, items: list[PlanItem], stats: dict[str, int]) -> None:
        remaining = list(items)
        while True:
            try:
                with self.store.transaction():
                    outcome = self._write(kind, remaining)
            except _Reject as rejected:
                item = rejected.item
                remaining = [i for i in remaining if i is not item]
                self._reject(item, rejected.code, rejected.reason)
                stats["rejected"] += 1
                continue
            break
        # Committed: only now does the plan learn what happened.
        for item, target_id, action in outcome.done:
            self.ids[(kind, item.source_id)] = target_id
            item.target_id = target_id
            if action == "conflict":
                item.action = "conflict"
                item.note = (
                    "edited in MyNewClinic after the plan was made; the clinic's edit is kept"
                )
        self.settlements.update(outcome.settlement_links)
        for name, n in outcome.stats.items():
            stats[name] += n

    def _reject(self, item: PlanItem, code: str, reason: str) -> None:
        item.action = "skip"
        item.skip_code = code
        item.skip_reason = reason
        self.rejected[(item.kind, item.source_id)] = item

    def _resolve(self, item: PlanItem, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for column, value in row.items():
            if isinstance(value, Ref):
                target = self.ids.get((value.kind, value.source_id))
                if target is None:
                    raise _Reject(
                        item,
                        f"{value.kind}_not_imported",
                        f"its {value.kind.replace('_', ' ')} (Cliniko id {value.source_id}) "
                        "could not be loaded",
                    )
                out[column] = target
        return out

    def _write(self, kind: str, items: list[PlanItem]) -> _Outcome:
        store = self.store
        table = KIND_TABLES[kind]
        out = _Outcome()
        links: list[LinkRow] = []
        audit: list[dict[str, Any]] = []
        run = self.run_id

        # Creates.
        creates = [i for i in items if i.action == "create"]
        rows = [self._resolve(i, i.row or {}) for i in creates]
        ids = self._call(creates, lambda: store.insert_rows(table, rows))
        created_ids: list[int] = []
        for item, row, target_id in zip(creates, rows, ids, strict=True):
            lines = self._lines(target_id, item.lines)
            th = target_hash(kind, row, lines)
            links.append(LinkRow(item.source_id, target_id, item.source_hash or "", th))
            out.done.append((item, target_id, "create"))
            created_ids.append(target_id)
        out.stats["created"] = len(creates)
        if kind == "invoice" and creates:
            out.stats["lines"] += self._insert_lines(creates, ids)
        if created_ids:
            audit.append(
                {
                    "run_id": run,
                    "action": "import_create",
                    "kind": kind,
                    "detail": {
                        "cliniko_ids": [i.source_id for i in creates],
                        "target_ids": created_ids,
                    },
                }
            )

        # Updates, each re-checked against the clinic row as it stands.
        updates = [i for i in items if i.action == "update"]
        current = store.fetch_rows(table, [i.target_id for i in updates if i.target_id])
        old_lines = self._old_lines(updates) if kind == "invoice" else {}
        to_update: list[PlanItem] = []
        new_rows: list[dict[str, Any]] = []
        for item in updates:
            assert item.target_id is not None
            cur = current.get(item.target_id)
            if cur is None:
                raise _Reject(item, "target_missing", "the clinic row to update is gone")
            cur_hash = target_hash(kind, cur, old_lines.get(item.target_id, []))
            if cur_hash != item.expected_hash:
                out.done.append((item, item.target_id, "conflict"))
                out.stats["conflicts"] += 1
                audit.append(self._audit_fields("import_conflict", item))
                continue
            to_update.append(item)
            new_rows.append(self._resolve(item, item.row or {}))
        changes: list[tuple[int, Mapping[str, Any]]] = [
            (
                i.target_id or 0,
                {c.field: row[c.field] for c in i.changes if c.field != "lines"},
            )
            for i, row in zip(to_update, new_rows, strict=True)
        ]
        # Index-aligned with `to_update` (a lines-only change is an empty dict: no statement).
        self._call(to_update, lambda: store.update_rows(table, changes))
        if kind == "invoice":
            out.stats["lines"] += self._replace_lines(to_update)
        for item, row in zip(to_update, new_rows, strict=True):
            assert item.target_id is not None
            lines = self._lines(item.target_id, item.lines)
            th = target_hash(kind, row, lines)
            links.append(LinkRow(item.source_id, item.target_id, item.source_hash or "", th))
            out.done.append((item, item.target_id, "update"))
            audit.append(self._audit_fields("import_update", item))
        out.stats["updated"] = len(to_update)

        # Settlements of the invoices written.
        if kind == "invoice":
            out.stats["settlements"] += self._settlements(
                [*zip(creates, rows, ids, strict=True)]
                + [
                    (i, r, i.target_id)
                    for i, r in zip(to_update, new_rows, strict=True)
                    if i.target_id is not None
                ],
                out,
            )

        # Links only: matched clinic rows, refreshed source hashes.
        matched_ids: list[tuple[str, int]] = []
        for item in items:
            if item.action != "unchanged" or item.source_hash is None:
                continue
            target_id = item.target_id
            link_hash = item.link_target_hash
            if target_id is None:
                raise _Reject(
                    item,
                    f"{kind}_not_imported",
                    f"the {kind} it was to be linked with could not be loaded",
                )
            links.append(LinkRow(item.source_id, target_id, item.source_hash, link_hash or ""))
            out.done.append((item, target_id, "link"))
            if item.matched:
                matched_ids.append((item.source_id, target_id))
        out.stats["linked"] = sum(1 for _, _, a in out.done if a == "link")
        if matched_ids:
            audit.append(
                {
                    "run_id": run,
                    "action": "import_match",
                    "kind": kind,
                    "detail": {
                        "cliniko_ids": [s for s, _ in matched_ids],
                        "target_ids": [t for _, t in matched_ids],
                    },
                }
            )
        store.upsert_links(self.source, kind, links, run)
        store.audit(audit)
        return out

    # -- helpers ------------------------------------------------------------------------

    def _call(self, items: Sequence[PlanItem], call: Any) -> Any:
        """Run a store call; a row it refuses becomes a rejected item."""
        try:
            return call()
        except (InvalidValue, IntegrityViolation) as exc:
            if exc.row_index is None or exc.row_index >= len(items):
                raise
            where = (
                f"{exc.table}.{exc.column}"
                if isinstance(exc, InvalidValue)
                else f"{exc.table}: a constraint failed"
            )
            raise _Reject(
                items[exc.row_index], "rejected_by_clinic", f"the clinic store refused it ({where})"
            ) from None

    def _audit_fields(self, action: str, item: PlanItem) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "action": action,
            "kind": item.kind,
            "target_id": item.target_id,
            "detail": {"cliniko_id": item.source_id, "fields": item.changed_fields()},
        }

    @staticmethod
    def _lines(
        invoice_id: int, lines: tuple[dict[str, Any], ...] | None
    ) -> list[dict[str, Any]] | None:
        if lines is None:
            return None
        return [{**line, "invoice_id": invoice_id} for line in lines]

    def _insert_lines(self, invoices: list[PlanItem], ids: Sequence[int]) -> int:
        rows: list[dict[str, Any]] = []
        owners: list[PlanItem] = []
        for item, invoice_id in zip(invoices, ids, strict=True):
            for line in item.lines or ():
                rows.append({**line, "invoice_id": invoice_id})
                owners.append(item)
        self._call(owners, lambda: self.store.insert_rows("invoice_lines", rows))
        return len(rows)

    def _old_lines(self, updates: list[PlanItem]) -> dict[int, list[dict[str, Any]]]:
        wanted = [lid for i in updates for lid in i.old_line_ids]
        out: dict[int, list[dict[str, Any]]] = {}
        if wanted:
            for row in self.store.fetch_rows("invoice_lines", wanted).values():
                out.setdefault(row["invoice_id"], []).append(row)
        return out

    def _replace_lines(self, updates: list[PlanItem]) -> int:
        changed = [i for i in updates if i.lines_changed and i.target_id is not None]
        if not changed:
            return 0
        self.store.delete_rows("invoice_lines", [lid for i in changed for lid in i.old_line_ids])
        return self._insert_lines(changed, [i.target_id for i in changed if i.target_id])

    def _settlements(
        self, written: list[tuple[PlanItem, dict[str, Any], int | None]], out: _Outcome
    ) -> int:
        inserts: list[dict[str, Any]] = []
        insert_items: list[PlanItem] = []
        updates: list[tuple[int, dict[str, Any]]] = []
        update_items: list[PlanItem] = []
        for item, row, invoice_id in written:
            if invoice_id is None:
                continue
            amount = item.settlement if item.settlement is not None else Decimal(0)
            values = settlement_row(invoice_id, row["patient_id"], amount)
            link = self.settlements.get(item.source_id)
            if link is not None:
                updates.append((link.target_id, values))
                update_items.append(item)
                out.settlement_links[item.source_id] = Link(
                    link.target_id, item.source_hash or "", settlement_hash(values)
                )
            elif amount != 0:
                inserts.append(values)
                insert_items.append(item)
        self._call(update_items, lambda: self.store.update_rows("settlements", updates))
        ids = self._call(insert_items, lambda: self.store.insert_rows("settlements", inserts))
        for item, values, target_id in zip(insert_items, inserts, ids, strict=True):
            out.settlement_links[item.source_id] = Link(
                target_id, item.source_hash or "", settlement_hash(values)
            )
        if out.settlement_links:
            self.store.upsert_links(
                self.source,
                SETTLEMENT_LINK,
                [
                    LinkRow(sid, link.target_id, link.source_hash, link.target_hash)
                    for sid, link in out.settlement_links.items()
                ],
                self.run_id,
            )
        return len(inserts) + len(updates)


@dataclass
class _Outcome:
    done: list[tuple[PlanItem, int, str]] = field(default_factory=list)
    settlement_links: dict[str, Link] = field(default_factory=dict)
    stats: dict[str, int] = field(
        default_factory=lambda: {
            "created": 0,
            "updated": 0,
            "linked": 0,
            "conflicts": 0,
            "lines": 0,
            "settlements": 0,
        }
    )


__all__ = ["BATCH_SIZE", "LoadResult", "load"]
