"""Plan: the diff a load would apply, computed from the staging file and the clinic store only.

`plan(staging_path, target_url, selection, now)` reads the staging file (read-only, never
Cliniko) and the clinic store (read-only: a missing SQLite file is planned as an empty clinic)
and decides, for every staged row of the selected parts, in `KINDS_IN_ORDER`:

  create     not in the clinic yet
  update     imported before, changed in Cliniko since, untouched in the clinic: the changed
             fields with their clinic (old) and Cliniko (new) values
  unchanged  the source hash equals the import link's; or it maps to what the clinic already
             holds; or it matched an existing clinic row (`matched`), which is linked as is
  conflict   changed in Cliniko since the last import AND the clinic row changed since then
             too: the clinic's edit is kept, the difference reported
  skip       with a stable code and plain words: the mapping's skips (deleted_in_cliniko,
             draft_note, malformed_record, ...), `<kind>_not_imported` (a reference that
             resolves to nothing in the clinic nor in this plan), `slot_taken` (would
             double-book a practitioner in the clinic), `not_selected`

Identity: import links first (`source` = `cliniko:<shard>:<account id>`), then matching for
practitioners, services and patients (see `engine.matching`).

Speed: a rerun compares each staged row's source hash (`engine.staged_input`) with its link
before mapping anything, so an unchanged clinic costs a read and a hash per row.

The plan holds the rows to write (with `Ref`s for records this same load creates) so that the
load applies exactly what was shown; values may include patient data for the TUI's drill-down,
but `to_json()` and every log carry ids, codes and field names only unless asked.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from engine.clinic_rows import (
    FK_COLUMNS,
    HASH_COLUMNS,
    Ref,
    line_values,
    lines_view,
    record_values,
    same_value,
    target_hash,
)
from engine.events import EventSink, LoadProgress, discard
from engine.mapping import KINDS_IN_ORDER, MAPPERS, Mapped, Skip
from engine.mapping.records import Invoice, Kind
from engine.matching import (
    MATCH_PREFIX,
    PARTIAL_SUFFIX,
    Ambiguity,
    SlotBook,
    source_id_order,
    usable_match_key,
)
from engine.resources import ALL_PARTS, close_parts
from engine.staged_input import DIARY_KINDS, StagedInput, open_for_reading, to_mapping_row
from staging import StagedRow, StagingDB
from target import KIND_TABLES, TABLES, ClinicBackend, Link, open_target
from target.hashing import canonical
from target.url import DEFAULT_TARGET, redact

Action = Literal["create", "update", "unchanged", "conflict", "skip"]
ACTIONS: tuple[Action, ...] = ("create", "update", "unchanged", "conflict", "skip")

PART_KINDS: dict[str, tuple[Kind, ...]] = {
    "practitioners": ("location", "practitioner", "service"),
    "patients": ("patient",),
    "upcoming_appointments": ("appointment", "group_appointment", "attendance"),
    "appointment_history": ("appointment", "group_appointment", "attendance"),
    "treatment_notes": ("treatment_note",),
    "invoices": ("invoice",),
}
"""The clinic kinds each selectable part brings (parts without one are not loaded)."""

REQUIRED_WHEN_PRESENT: dict[str, frozenset[str]] = {
    "appointment": frozenset({"patient", "practitioner", "service"}),
    "group_appointment": frozenset({"practitioner", "service"}),
}
"""References that skip the record when given but not in the clinic (besides NOT NULL ones)."""

MATCHED_KINDS = frozenset({"practitioner", "service", "patient"})
"""Kinds matched with existing clinic rows when not linked yet."""

SKIP_PRIORITY = ("patient", "practitioner", "service", "group_appointment", "appointment")

FLUSH_ROWS = 500
"""Changed rows mapped together (one context lookup, one clinic fetch)."""
PROGRESS_EVERY = 5000

SKIP_REASONS_NOT_SELECTED = {
    True: "an upcoming booking; only appointment history was selected",
    False: "a past booking; only upcoming appointments were selected",
}


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    """The clinic's value (None for a create)."""
    new: Any
    """What Cliniko's record maps to (a `Ref` for a record this load creates)."""


@dataclass(slots=True)
class PlanItem:
    kind: str
    source_id: str
    action: Action
    target_id: int | None = None
    changes: tuple[FieldChange, ...] = ()
    skip_code: str | None = None
    skip_reason: str | None = None
    matched: bool = False
    """Linked to a clinic row found by name (or name and date of birth), not written."""
    note: str | None = None
    # -- what the load writes ------------------------------------------------------------
    source_hash: str | None = None
    """The link's source hash to write; None: no link to write."""
    link_target_hash: str | None = None
    """For a link written without a row: the clinic row's hash as it stands."""
    row: dict[str, Any] | None = None
    """create: every column; update: every hashed column as it will be (refs may be `Ref`)."""
    expected_hash: str | None = None
    """update: the clinic row's hash as last imported (the load re-checks it)."""
    lines: tuple[dict[str, Any], ...] | None = None
    old_line_ids: tuple[int, ...] = ()
    lines_changed: bool = False
    settlement: Decimal | None = None
    unresolved: tuple[str, ...] = ()
    """Optional references left empty (their records are not in the clinic)."""

    @property
    def writes(self) -> bool:
        return self.action in ("create", "update") or (
            self.action == "unchanged" and self.source_hash is not None
        )

    def changed_fields(self) -> list[str]:
        return [c.field for c in self.changes]

    def to_json(self, *, values: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "cliniko_id": self.source_id,
            "action": self.action,
            "target_id": self.target_id,
        }
        if self.changes:
            out["fields"] = self.changed_fields()
            if values:
                out["changes"] = [
                    {"field": c.field, "old": _jsonable(c.old), "new": _jsonable(c.new)}
                    for c in self.changes
                ]
        if self.skip_code:
            out["code"] = self.skip_code
            out["reason"] = self.skip_reason
        if self.matched:
            out["matched"] = True
        if self.unresolved:
            out["unresolved"] = list(self.unresolved)
        if self.note:
            out["note"] = self.note
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Ref):
        return value.describe()
    try:
        return canonical(value)
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Plan:
    staging_path: str
    target_url: str
    source: str
    selection: tuple[str, ...]
    """The parts planned (the selection plus what it depends on)."""
    kinds: tuple[str, ...]
    now: datetime
    items: dict[str, list[PlanItem]]
    ambiguities: list[Ambiguity] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    """What the plan was made from: a load of this plan re-plans if it changed."""
    seconds: float = 0.0
    staged_rows: int = 0
    target_location: str = ""
    """The target as given (may hold a password: never shown; `target_url` is redacted)."""

    def all_items(self) -> Iterable[PlanItem]:
        for kind in self.kinds:
            yield from self.items.get(kind, ())

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in self.kinds:
            c = Counter(i.action for i in self.items.get(kind, ()))
            row: dict[str, int] = {a: c.get(a, 0) for a in ACTIONS}
            row["matched"] = sum(1 for i in self.items.get(kind, ()) if i.matched)
            out[kind] = row
        return out

    def totals(self) -> dict[str, int]:
        total = Counter[str]()
        for row in self.counts().values():
            total.update(row)
        return {a: total.get(a, 0) for a in (*ACTIONS, "matched")}

    def skipped(self) -> list[PlanItem]:
        return [i for i in self.all_items() if i.action == "skip"]

    def conflicts(self) -> list[PlanItem]:
        return [i for i in self.all_items() if i.action == "conflict"]

    def updates(self) -> list[PlanItem]:
        return [i for i in self.all_items() if i.action == "update"]

    def skip_codes(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for item in self.skipped():
            codes = out.setdefault(item.kind, {})
            code = item.skip_code or "unknown"
            codes[code] = codes.get(code, 0) + 1
        return out

    def writes(self) -> int:
        return sum(1 for i in self.all_items() if i.writes)

    def to_json(self, *, values: bool = False) -> dict[str, Any]:
        """The plan as one JSON document: ids, codes and field names (values only if asked:
        they may be patient data)."""
        return {
            "staging": self.staging_path,
            "target": self.target_url,
            "source": self.source,
            "selection": list(self.selection),
            "kinds": list(self.kinds),
            "now": self.now.isoformat(),
            "counts": self.counts(),
            "totals": self.totals(),
            "skip_codes": self.skip_codes(),
            "skipped": [i.to_json() for i in self.skipped()],
            "conflicts": [i.to_json(values=values) for i in self.conflicts()],
            "updates": [i.to_json(values=values) for i in self.updates()],
            "ambiguities": [a.to_json() for a in self.ambiguities],
            "warnings": list(self.warnings),
            "staged_rows": self.staged_rows,
            "seconds": round(self.seconds, 3),
        }

    def summary_lines(self) -> list[str]:
        """A short human summary (ids and counts only)."""
        lines = [f"plan for {self.source} -> {self.target_url}"]
        header = f"  {'kind':<18} {'create':>8} {'update':>8} {'unchanged':>10} {'conflict':>9}"
        lines.append(header + f" {'skip':>8}")
        for kind, c in self.counts().items():
            lines.append(
                f"  {kind:<18} {c['create']:>8} {c['update']:>8} {c['unchanged']:>10} "
                f"{c['conflict']:>9} {c['skip']:>8}"
            )
        for kind, codes in self.skip_codes().items():
            shown = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
            lines.append(f"  skipped {kind}: {shown}")
        for a in self.ambiguities:
            lines.append(f"  ambiguous {a.kind}: {a.resolution}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return lines


# ---------------------------------------------------------------------------------------------
# Fingerprints: did the inputs change between the plan and the load?


def staging_fingerprint(staging: StagingDB) -> list[list[Any]]:
    """The staging file's runs: every download (or top-up) that changes it is a run."""
    return [
        [r.run_id, r.started_at, r.finished_at, r.outcome, r.records, r.quarantined]
        for r in staging.runs()
    ]


def target_fingerprint(store: ClinicBackend) -> dict[str, int]:
    return store.table_counts()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored after): a plan holds tens of thousands of
    rows, and full collections over them cost ~20% of a first load (measured). The rows hold
    no reference cycles, so nothing is left for later that plain reference counting frees."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Entry points.


def kinds_for(parts: Sequence[str]) -> tuple[Kind, ...]:
    wanted = {k for p in parts for k in PART_KINDS.get(p, ())}
    return tuple(k for k in KINDS_IN_ORDER if k in wanted)


def plan(
    staging_path: str | os.PathLike[str],
    target_url: str = DEFAULT_TARGET,
    selection: Sequence[str] | None = None,
    now: datetime | None = None,
    *,
    sink: EventSink = discard,
) -> Plan:
    """The plan of loading `staging_path` into the clinic at `target_url`. Changes nothing.

    Raises `staging.StagingError`, `target.TargetError` or `engine.resources.UnknownSelection`
    with messages for the operator.
    """
    parts = close_parts(selection or ALL_PARTS)
    moment = _aware(now)
    with open_for_reading(staging_path) as staging:
        store = open_target(target_url, readonly=True)
        try:
            with store.transaction():  # one consistent snapshot; read-only, nothing to commit
                result = build_plan(
                    staging, store, parts, moment, staging_path=str(staging_path), sink=sink
                )
            result.target_location = target_url
            return result
        finally:
            store.close()


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def build_plan(
    staging: StagingDB,
    store: ClinicBackend,
    parts: Sequence[str],
    now: datetime,
    *,
    staging_path: str,
    sink: EventSink = discard,
) -> Plan:
    """Plan against an open staging file and clinic store (the load plans this way, on its
    own writable connection)."""
    started = time.perf_counter()
    with paused_gc():
        inp = StagedInput(staging, now)
        planner = _Planner(inp, store, tuple(parts), sink)
        items = planner.run()
    result = Plan(
        staging_path=staging_path,
        target_url=redact(store.url),
        source=inp.source,
        selection=tuple(parts),
        kinds=planner.kinds,
        now=now,
        items=items,
        ambiguities=planner.ambiguities,
        warnings=[*inp.warnings, *planner.warnings, *_problem_warnings(inp)],
        fingerprint={
            "staging": staging_fingerprint(staging),
            "target": target_fingerprint(store),
        },
        staged_rows=planner.staged_rows,
        target_location=store.url,
    )
    result.seconds = time.perf_counter() - started
    return result


def _problem_warnings(inp: StagedInput) -> list[str]:
    seen: Counter[tuple[str, str]] = Counter((p.resource, p.reason) for p in inp.problems)
    return [
        f"{n} {resource} row(s) could not be used as context: {reason}"
        for (resource, reason), n in sorted(seen.items())
    ]


# ---------------------------------------------------------------------------------------------
# The planner.


class _Planner:
    def __init__(
        self, inp: StagedInput, store: ClinicBackend, parts: tuple[str, ...], sink: EventSink
    ) -> None:
        self.inp = inp
        self.store = store
        self.sink = sink
        self.kinds = kinds_for(parts)
        self.upcoming_wanted = "upcoming_appointments" in parts
        self.history_wanted = "appointment_history" in parts
        self.links: dict[str, dict[str, Link]] = {
            k: store.load_links(inp.source, k) for k in KINDS_IN_ORDER
        }
        self.planned: dict[str, dict[str, PlanItem]] = {k: {} for k in KINDS_IN_ORDER}
        self.ambiguities: list[Ambiguity] = []
        self.warnings: list[str] = []
        self.staged_rows = 0
        self._slots: SlotBook | None = None
        self._line_index: dict[int, list[int]] | None = None
        self._indexes: dict[str, dict[str, list[int]]] = {}
        self._claimed_rows: dict[str, set[int]] = {}

    # -- driving ------------------------------------------------------------------------

    def run(self) -> dict[str, list[PlanItem]]:
        out: dict[str, list[PlanItem]] = {}
        for kind in self.kinds:
            out[kind] = self._plan_kind(kind)
        return out

    def _selected(self, up: bool | None) -> bool:
        if up is None or (self.upcoming_wanted and self.history_wanted):
            return True
        return self.upcoming_wanted if up else self.history_wanted

    def _plan_kind(self, kind: Kind) -> list[PlanItem]:
        inp = self.inp
        links = self.links[kind]
        total = inp.count(kind)
        items: list[PlanItem] = []
        pending: list[tuple[StagedRow, str, Link | None]] = []
        deferred: list[tuple[PlanItem, Mapped]] = []
        diary = kind in DIARY_KINDS
        done = 0
        self.sink(LoadProgress(phase="plan", record_kind=kind, done=0, total=total))
        for row in inp.rows(kind):
            done += 1
            up = inp.upcoming(kind, row) if diary else None
            h = inp.source_hash(kind, row, up)
            link = links.get(row.id)
            if diary and not self._selected(up):
                items.append(self._not_selected(kind, row.id, bool(up), link))
            elif link is not None and (
                link.source_hash == h or link.source_hash == MATCH_PREFIX + h
            ):
                items.append(
                    PlanItem(
                        kind,
                        row.id,
                        "unchanged",
                        link.target_id,
                        matched=link.source_hash != h,
                    )
                )
            else:
                pending.append((row, h, link))
                if len(pending) >= FLUSH_ROWS:
                    self._flush(kind, pending, items, deferred)
                    pending = []
            if done % PROGRESS_EVERY == 0:
                self.sink(LoadProgress(phase="plan", record_kind=kind, done=done, total=total))
        if pending:
            self._flush(kind, pending, items, deferred)
        if deferred:
            items.extend(self._match(kind, deferred))
        self.staged_rows += done
        self.sink(LoadProgress(phase="plan", record_kind=kind, done=done, total=max(total, done)))
        return items

    def _not_selected(self, kind: str, source_id: str, up: bool, link: Link | None) -> PlanItem:
        return PlanItem(
            kind,
            source_id,
            "skip",
            link.target_id if link else None,
            skip_code="not_selected",
            skip_reason=SKIP_REASONS_NOT_SELECTED[up],
        )

    # -- one batch of changed rows ------------------------------------------------------

    def _flush(
        self,
        kind: Kind,
        pending: list[tuple[StagedRow, str, Link | None]],
        items: list[PlanItem],
        deferred: list[tuple[PlanItem, Mapped]],
    ) -> None:
        ctx = self.inp.context_for(kind, [r for r, _, _ in pending])
        mapper = MAPPERS[kind]
        results = [(mapper(to_mapping_row(row), ctx), h, link) for row, h, link in pending]
        linked = [
            link.target_id
            for res, _, link in results
            if isinstance(res, Mapped)
            and link is not None
            and not link.source_hash.startswith(MATCH_PREFIX)
        ]
        table = KIND_TABLES[kind]
        current = self.store.fetch_rows(table, linked) if linked else {}
        current_lines = self._current_lines(list(current)) if kind == "invoice" else {}
        for res, h, link in results:
            if isinstance(res, Skip):
                items.append(self._skip_item(res, link))
                continue
            item = self._decide(kind, res, h, link, current, current_lines)
            if item is None:
                continue
            if (
                item.action == "create"
                and link is None
                and kind in MATCHED_KINDS
                and self._defer(kind, res)
            ):
                deferred.append((item, res))
                continue
            if item.action == "create":
                self.planned[kind][res.source_id] = item
            items.append(item)

    def _skip_item(self, skip: Skip, link: Link | None) -> PlanItem:
        reason = skip.reason
        if link is not None:
            reason += "; imported earlier, the clinic keeps its copy"
        return PlanItem(
            skip.kind,
            skip.source_id,
            "skip",
            link.target_id if link else None,
            skip_code=skip.code,
            skip_reason=reason,
        )

    def _decide(
        self,
        kind: Kind,
        mapped: Mapped,
        h: str,
        link: Link | None,
        current: Mapping[int, dict[str, Any]],
        current_lines: Mapping[int, list[dict[str, Any]]],
    ) -> PlanItem | None:
        sid = mapped.source_id
        record = mapped.record
        values = record_values(kind, record)
        fk, missing, unresolved = self._resolve(kind, mapped.refs)
        if missing:
            return self._missing_ref_item(kind, sid, missing, link)
        values.update(fk)
        upcoming = getattr(record, "is_upcoming", None)
        if kind in DIARY_KINDS and isinstance(upcoming, bool) and not self._selected(upcoming):
            return self._not_selected(kind, sid, upcoming, link)
        link_hash = h + (PARTIAL_SUFFIX if unresolved else "")
        lines: tuple[dict[str, Any], ...] | None = None
        settlement: Decimal | None = None
        if isinstance(record, Invoice):
            lines = tuple(line_values(line) for line in record.lines)
            settlement = record.settlement_amount
        if link is not None and link.source_hash.startswith(MATCH_PREFIX):
            # A matched clinic row: the clinic's row wins; only the link is refreshed.
            refresh = MATCH_PREFIX + h
            return PlanItem(
                kind,
                sid,
                "unchanged",
                link.target_id,
                matched=True,
                source_hash=refresh if refresh != link.source_hash else None,
                link_target_hash=link.target_hash,
            )
        cur = current.get(link.target_id) if link is not None else None
        if link is None or cur is None:
            note = "the clinic row imported earlier is gone" if link is not None else None
            item = PlanItem(
                kind,
                sid,
                "create",
                row=values,
                source_hash=link_hash,
                lines=lines,
                settlement=settlement,
                unresolved=unresolved,
                note=note,
            )
            return self._check_slot(kind, item, values) or item
        cur_lines = current_lines.get(link.target_id, [])
        cur_hash = target_hash(kind, cur, cur_lines)
        changes = _diff(kind, values, cur)
        lines_changed = False
        if lines is not None:
            old_view, new_view = lines_view(cur_lines), lines_view(lines)
            if canonical(old_view) != canonical(new_view):
                lines_changed = True
                changes.append(FieldChange("lines", old_view, new_view))
        if cur_hash != link.target_hash:
            if not changes:
                # Edited in the clinic into exactly what Cliniko now says: nothing to do.
                return PlanItem(
                    kind,
                    sid,
                    "unchanged",
                    link.target_id,
                    source_hash=link_hash,
                    link_target_hash=cur_hash,
                    unresolved=unresolved,
                )
            return PlanItem(
                kind,
                sid,
                "conflict",
                link.target_id,
                changes=tuple(changes),
                note="changed in Cliniko and edited in MyNewClinic since the last import; "
                "the clinic's edit is kept",
            )
        if not changes:
            return PlanItem(
                kind,
                sid,
                "unchanged",
                link.target_id,
                source_hash=link_hash if link_hash != link.source_hash else None,
                link_target_hash=cur_hash,
                unresolved=unresolved,
            )
        new_row = {c: cur.get(c) for c in HASH_COLUMNS[kind]}
        new_row.update(values)
        item = PlanItem(
            kind,
            sid,
            "update",
            link.target_id,
            changes=tuple(changes),
            row=new_row,
            expected_hash=link.target_hash,
            source_hash=link_hash,
            lines=lines,
            old_line_ids=tuple(line["id"] for line in cur_lines),
            lines_changed=lines_changed,
            settlement=settlement,
            unresolved=unresolved,
        )
        moved = {c.field for c in changes} & {"starts_at", "ends_at", "practitioner_id", "status"}
        if moved:
            return self._check_slot(kind, item, values) or item
        return item

    # -- references -----------------------------------------------------------------------

    def _target(self, kind: str, source_id: str) -> int | Ref | None:
        # This plan's own decision first: it re-creates a linked row the clinic lost.
        item = self.planned[kind].get(source_id)
        if item is not None:
            return item.target_id if item.target_id is not None else Ref(kind, source_id)
        link = self.links[kind].get(source_id)
        return link.target_id if link is not None else None

    def _resolve(
        self, kind: str, refs: Mapping[str, str]
    ) -> tuple[dict[str, int | Ref | None], list[tuple[str, str | None]], tuple[str, ...]]:
        """FK columns, the required references that are missing, the optional ones left
        empty."""
        table = TABLES[KIND_TABLES[kind]]
        fk: dict[str, int | Ref | None] = {}
        missing: list[tuple[str, str | None]] = []
        unresolved: list[str] = []
        when_present = REQUIRED_WHEN_PRESENT.get(kind, frozenset())
        for ref_kind, column in FK_COLUMNS[kind].items():
            required = not table.column(column).nullable
            sid = refs.get(ref_kind)
            if sid is None:
                fk[column] = None
                if required:
                    missing.append((ref_kind, None))
                continue
            target = self._target(ref_kind, sid)
            fk[column] = target
            if target is None:
                if required or ref_kind in when_present:
                    missing.append((ref_kind, sid))
                else:
                    unresolved.append(ref_kind)
        return fk, missing, tuple(unresolved)

    def _missing_ref_item(
        self, kind: str, source_id: str, missing: list[tuple[str, str | None]], link: Link | None
    ) -> PlanItem:
        order = {k: i for i, k in enumerate(SKIP_PRIORITY)}
        ref_kind, ref_id = min(missing, key=lambda m: order.get(m[0], 99))
        words = ref_kind.replace("_", " ")
        if ref_id is None:
            reason = f"it has no {words} in Cliniko"
        else:
            reason = f"its {words} (Cliniko id {ref_id}) is not in the clinic and not in this load"
        if link is not None:
            reason += "; imported earlier, the clinic keeps its copy"
        return PlanItem(
            kind,
            source_id,
            "skip",
            link.target_id if link else None,
            skip_code=f"{ref_kind}_not_imported",
            skip_reason=reason,
        )

    # -- double bookings ------------------------------------------------------------------

    def _slot_book(self) -> SlotBook:
        if self._slots is None:
            ids = {link.target_id for link in self.links["practitioner"].values()}
            ids |= {i.target_id for i in self.planned["practitioner"].values() if i.target_id}
            self._slots = SlotBook(self.store.busy_slots(sorted(ids), include_imported=False))
        return self._slots

    def _check_slot(self, kind: str, item: PlanItem, values: Mapping[str, Any]) -> PlanItem | None:
        if kind not in ("appointment", "group_appointment"):
            return None
        practitioner = values.get("practitioner_id")
        if not isinstance(practitioner, int) or values.get("status") == "cancelled":
            return None
        starts = values.get("starts_at")
        if not isinstance(starts, datetime):
            return None
        slot = self._slot_book().taken(practitioner, starts, values.get("ends_at"))
        if slot is None:
            return None
        what = "appointment" if slot.table == "appointments" else "group appointment"
        return PlanItem(
            kind,
            item.source_id,
            "skip",
            item.target_id,
            skip_code="slot_taken",
            skip_reason=(
                f"the practitioner (clinic id {practitioner}) is already booked at that time "
                f"in MyNewClinic ({what} {slot.appointment_id})"
            ),
        )

    # -- invoices -------------------------------------------------------------------------

    def _current_lines(self, invoice_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        if not invoice_ids:
            return {}
        if self._line_index is None:
            index: dict[int, list[int]] = {}
            for line in self.store.iter_rows("invoice_lines", ["invoice_id"]):
                index.setdefault(line["invoice_id"], []).append(line["id"])
            self._line_index = index
        wanted = [lid for iid in invoice_ids for lid in self._line_index.get(iid, ())]
        rows = self.store.fetch_rows("invoice_lines", wanted) if wanted else {}
        out: dict[int, list[dict[str, Any]]] = {}
        for row in rows.values():
            out.setdefault(row["invoice_id"], []).append(row)
        return out

    # -- matching -------------------------------------------------------------------------

    def _defer(self, kind: str, mapped: Mapped) -> bool:
        """Whether a new practitioner, service or patient must wait for matching (a patient
        only when it has a clinic row to match that no record of this account is linked to)."""
        key = _match_key(kind, mapped)
        if not key:
            return False
        if kind != "patient":
            return True  # few: all matched together, so namesakes in Cliniko are reported
        claimed = self._claimed(kind)
        return any(c not in claimed for c in self._index(kind).get(key, ()))

    def _index(self, kind: str) -> dict[str, list[int]]:
        index = self._indexes.get(kind)
        if index is None:
            if kind == "patient":
                index = self.store.patient_match_index()
            else:
                index = self.store.name_index(KIND_TABLES[kind])
            self._indexes[kind] = index
        return index

    def _claimed(self, kind: str) -> set[int]:
        """Clinic rows already linked to a record of this Cliniko account (or matched by this
        plan): never matched again, so two Cliniko records never share one clinic row."""
        claimed = self._claimed_rows.get(kind)
        if claimed is None:
            claimed = {link.target_id for link in self.links[kind].values()}
            self._claimed_rows[kind] = claimed
        return claimed

    def _match(self, kind: Kind, deferred: list[tuple[PlanItem, Mapped]]) -> list[PlanItem]:
        """Match deferred records one to one with unclaimed clinic rows of the same key; the
        active (not archived) records first, then the lowest Cliniko id; the rest are
        created. Every choice that had an alternative is reported."""
        index = self._index(kind)
        claimed = self._claimed(kind)
        what = "name and date of birth" if kind == "patient" else "name"
        out: list[PlanItem] = []
        groups: dict[str, list[tuple[str, int | None]]] = {}
        ordered = sorted(
            deferred,
            key=lambda d: (_inactive(d[1]), source_id_order(d[0].source_id)),
        )
        for item, mapped in ordered:
            key = _match_key(kind, mapped)
            shown = None if kind == "patient" else key
            same = index.get(key, []) if key else []
            free = [c for c in same if c not in claimed]
            if free:
                target = free[0]
                claimed.add(target)
                chosen = PlanItem(
                    kind,
                    item.source_id,
                    "unchanged",
                    target,
                    matched=True,
                    source_hash=MATCH_PREFIX + (item.source_hash or ""),
                    note=f"matched clinic {kind} {target} by {what}",
                )
                if len(free) > 1:
                    self.ambiguities.append(
                        Ambiguity(
                            kind,
                            shown,
                            (item.source_id,),
                            tuple(free),
                            f"{len(free)} clinic {kind}s have the same {what}; Cliniko {kind} "
                            f"{item.source_id} is linked to the first (clinic id {target})",
                        )
                    )
            else:
                chosen = item
                if same:
                    self.ambiguities.append(
                        Ambiguity(
                            kind,
                            shown,
                            (item.source_id,),
                            tuple(same),
                            f"the clinic {kind}(s) with the same {what} are already linked to "
                            f"other Cliniko records; Cliniko {kind} {item.source_id} is created",
                        )
                    )
            if key:
                groups.setdefault(key, []).append((item.source_id, chosen.target_id))
            self.planned[kind][item.source_id] = chosen
            out.append(chosen)
        for key, members in groups.items():
            if len(members) < 2:
                continue
            outcome = ", ".join(
                f"{sid} -> clinic {target}" if target is not None else f"{sid} created"
                for sid, target in members
            )
            self.ambiguities.append(
                Ambiguity(
                    kind,
                    None if kind == "patient" else key,
                    tuple(sid for sid, _ in members),
                    tuple(t for _, t in members if t is not None),
                    f"{len(members)} Cliniko {kind}s have the same {what}; each is kept "
                    f"apart ({outcome})",
                )
            )
        self._fill_match_hashes(kind, out)
        return out

    def _fill_match_hashes(self, kind: str, items: list[PlanItem]) -> None:
        ids = [i.target_id for i in items if i.matched and i.target_id is not None]
        if not ids:
            return
        rows = self.store.fetch_rows(KIND_TABLES[kind], ids)
        for item in items:
            if item.matched and item.target_id in rows:
                item.link_target_hash = target_hash(kind, rows[item.target_id])


def _match_key(kind: str, mapped: Mapped) -> str:
    """The key a record is matched by ("" when it must not be matched)."""
    if kind == "patient":
        key = str(getattr(mapped.record, "match_key", "") or "")
        return key if usable_match_key(key) else ""
    return str(getattr(mapped.record, "match_name", "") or "")


def _inactive(mapped: Mapped) -> bool:
    record = mapped.record
    return getattr(record, "active", True) is False or getattr(record, "archived", False) is True


def _diff(kind: str, values: Mapping[str, Any], current: Mapping[str, Any]) -> list[FieldChange]:
    return [
        FieldChange(c, current.get(c), values.get(c))
        for c in HASH_COLUMNS[kind]
        if not same_value(values.get(c), current.get(c))
    ]


__all__ = [
    "ACTIONS",
    "PART_KINDS",
    "Action",
    "FieldChange",
    "Plan",
    "PlanItem",
    "build_plan",
    "kinds_for",
    "plan",
    "staging_fingerprint",
    "target_fingerprint",
]
