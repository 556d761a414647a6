"""A plan and a load result as the load and summary screens show them (pure: no Textual).

Rows for the per-kind diff, the items of one kind (by action or skip code), the field changes
of one item, the skip reasons grouped by code, the summary after a load and the spot-check
lists. Everything here reads `engine.api` objects (and `engine.spot_check`'s, which the
integrator exports from `engine.api`) and returns strings and numbers, so it is unit-tested
without an app.

Values of field changes may be patient data: they are for the screen only, never logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.api import DownloadResult, LoadResult, Plan, PlanItem, Verification

ACTIONS: tuple[str, ...] = ("create", "update", "unchanged", "conflict", "skip")
"""The plan's actions, in the order the diff shows them."""

ACTION_LABELS: dict[str, str] = {
    "create": "Create",
    "update": "Update",
    "unchanged": "Unchanged",
    "conflict": "Conflict",
    "skip": "Skip",
}

KIND_LABELS: dict[str, str] = {
    "location": "Locations",
    "practitioner": "Practitioners",
    "service": "Services",
    "patient": "Patients",
    "appointment": "Appointments",
    "group_appointment": "Group appointments",
    "attendance": "Attendances",
    "treatment_note": "Treatment notes",
    "invoice": "Invoices",
}

CODE_WORDS: dict[str, str] = {
    "deleted_in_cliniko": "deleted in Cliniko",
    "draft_note": "a draft treatment note, never finalised in Cliniko",
    "missing_start_time": "no start time in Cliniko",
    "malformed_record": "a field is missing or invalid (the reason names the field)",
    "covered_by_appointment": "attendee of an individual appointment (the appointment has it)",
    "unknown_booking": "its booking was not staged",
    "not_selected": "in a part that was not selected",
    "slot_taken": "the practitioner is already booked then in MyNewClinic",
    "rejected_by_clinic": "the clinic store refused it",
    "target_missing": "the clinic row to update is gone",
}
"""Plain words for the stable skip codes (`<kind>_not_imported` is worded by `code_words`)."""

CONFLICT_EXPLANATION = (
    "Edited in MyNewClinic since the import, and changed in Cliniko too: the clinic's edit "
    "is kept and Cliniko's values are not written."
)
NOTHING_TO_LOAD = "Nothing to load: the clinic already matches the staging file."
EMPTY = "(empty)"
MAX_ITEMS = 2000
"""The drill-down lists at most this many items (filters narrow it)."""

_PASSWORD_RE = re.compile(r"(//[^/@:]*:)[^/@]*@")


# -- small formatters -------------------------------------------------------------------------


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def code_words(code: str) -> str:
    words = CODE_WORDS.get(code)
    if words is not None:
        return words
    if code.endswith("_not_imported"):
        what = code[: -len("_not_imported")].replace("_", " ")
        return f"its {what} is not in the clinic nor in this load"
    return code.replace("_", " ")


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***` (as the engine's `Plan.target_url`)."""
    return _PASSWORD_RE.sub(r"\1***@", url)


def has_password(url: str) -> bool:
    return _PASSWORD_RE.search(url) is not None


def check_target(url: str) -> str | None:
    """A first check of the target the operator typed (the engine checks the rest)."""
    text = url.strip()
    if not text:
        return "Give the clinic store: e.g. sqlite:///clinic.db (a file here) or postgresql://..."
    if text.lower().startswith("sqlite:") and not text.lower().startswith("sqlite:///"):
        return (
            "A SQLite target has three slashes before a relative path (sqlite:///clinic.db) "
            "and four before an absolute one (sqlite:////srv/clinic.db)."
        )
    return None


def skipped_csv_path(staging_path: Path) -> Path:
    """Where the skipped-records CSV goes: next to the staging file, `<stem>-skipped.csv`."""
    return staging_path.with_name(f"{staging_path.stem}-skipped.csv")


def format_value(value: Any, limit: int | None = None) -> str:
    """A field value as text: `(empty)` for none, Refs described, JSON compact."""
    if value is None or value == "":
        text = EMPTY
    elif hasattr(value, "describe") and callable(value.describe):
        text = str(value.describe())
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    elif isinstance(value, (date, Decimal, int, float)):
        text = str(value)
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    else:
        text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def format_money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def format_day_time(moment: datetime) -> str:
    """`Tue 24 Mar 14:00`: a time within the coming week (the moment in the zone to show)."""
    return moment.strftime("%a %d %b %H:%M")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def shorten(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


# -- the plan as a diff per kind -----------------------------------------------------------------


@dataclass(frozen=True)
class KindRow:
    kind: str
    label: str
    counts: dict[str, int]
    """create, update, unchanged, conflict, skip, matched."""


def kind_rows(plan: Plan) -> list[KindRow]:
    return [KindRow(kind, kind_label(kind), dict(c)) for kind, c in plan.counts().items()]


def nothing_to_load(plan: Plan) -> bool:
    return plan.writes() == 0


def plan_headline(plan: Plan) -> str:
    """One line: what the load would do."""
    t = plan.totals()
    if nothing_to_load(plan):
        head = NOTHING_TO_LOAD
    else:
        head = f"{plural(plan.writes(), 'change')} to load:"
    parts = [
        f"{t['create']:,} new",
        f"{t['update']:,} updated",
        f"{t['unchanged']:,} unchanged",
        plural(t["conflict"], "conflict"),
        f"{t['skip']:,} skipped",
    ]
    return f"{head} {', '.join(parts)}."


def plan_notes(plan: Plan) -> list[str]:
    """Warnings, then the matching choices the planner made (ids only)."""
    notes = [f"Warning: {w}" for w in plan.warnings]
    notes.extend(f"{kind_label(a.kind)}: {a.resolution}" for a in plan.ambiguities)
    matched = plan.totals().get("matched", 0)
    if matched:
        notes.append(
            f"{plural(matched, 'record')} matched a clinic row by name and linked to it "
            "(the clinic's row is kept as it is)."
        )
    return notes


def confirm_text(plan: Plan) -> str:
    if nothing_to_load(plan):
        return (
            f"Nothing to write: the clinic already matches the staging file. Verify "
            f"{plan.target_url} against it anyway?"
        )
    return f"Load {plural(plan.writes(), 'change')} into {plan.target_url}?"


# -- the items of one kind ------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRow:
    source_id: str
    action: str
    target_id: str
    detail: str
    item: PlanItem = field(repr=False, compare=False)


def item_detail(item: PlanItem) -> str:
    """What the drill-down says about one item (field names, reasons, ids: no values)."""
    if item.action == "skip":
        return item.skip_reason or code_words(item.skip_code or "")
    if item.action in ("update", "conflict"):
        fields = ", ".join(item.changed_fields())
        return f"{fields}; the clinic's edit is kept" if item.action == "conflict" else fields
    words: list[str] = []
    if item.note:
        words.append(item.note)
    elif item.matched:
        words.append("linked to a clinic row found by name")
    if item.unresolved:
        words.append("left empty: " + ", ".join(r.replace("_", " ") for r in item.unresolved))
    if not words and item.action == "create":
        words.append("new")
    return "; ".join(words)


def select_items(
    plan: Plan, kind: str | None, action: str | None = None, code: str | None = None
) -> list[PlanItem]:
    items: Iterable[PlanItem] = plan.items.get(kind, ()) if kind else plan.all_items()
    return [
        i
        for i in items
        if (action is None or i.action == action)
        and (code is None or (i.skip_code or "unknown") == code)
    ]


def item_rows(items: Sequence[PlanItem], limit: int = MAX_ITEMS) -> list[ItemRow]:
    return [
        ItemRow(
            item.source_id,
            item.action,
            str(item.target_id) if item.target_id is not None else "",
            item_detail(item),
            item,
        )
        for item in items[:limit]
    ]


def action_filters(plan: Plan, kind: str) -> list[str | None]:
    """The drill-down's filters for a kind: all, then each action it has."""
    counts = plan.counts().get(kind, {})
    return [None, *(a for a in ACTIONS if counts.get(a))]


def item_title(item: PlanItem) -> str:
    """`Patient · Cliniko id 123 · clinic id 4 · update`."""
    parts = [item.kind.replace("_", " ").capitalize(), f"Cliniko id {item.source_id}"]
    if item.target_id is not None:
        parts.append(f"clinic id {item.target_id}")
    parts.append(item.action)
    return " · ".join(parts)


def item_explanation(item: PlanItem) -> str:
    if item.action == "conflict":
        return CONFLICT_EXPLANATION
    if item.action == "update":
        return (
            "Changed in Cliniko since the last import and untouched in MyNewClinic since: "
            "the load writes Cliniko's values."
        )
    if item.action == "skip":
        code = item.skip_code or "unknown"
        return f"Skipped ({code}): {item.skip_reason or code_words(code)}"
    if item.action == "create":
        return "New in the clinic" + (f": {item.note}" if item.note else ".")
    return item_detail(item) or "Already in the clinic as Cliniko has it."


def change_rows(item: PlanItem) -> list[tuple[str, str, str]]:
    """(field, in MyNewClinic now, from Cliniko) per changed field."""
    return [(c.field, format_value(c.old), format_value(c.new)) for c in item.changes]


def create_rows(item: PlanItem) -> list[tuple[str, str]]:
    """(field, value) of a record to create (empty fields left out)."""
    row: Mapping[str, Any] = item.row or {}
    out = [(name, format_value(v)) for name, v in row.items() if v not in (None, "", [], {})]
    if item.lines:
        out.append(("lines", plural(len(item.lines), "line")))
    return out


# -- skip reasons ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkipRow:
    code: str
    kind: str
    count: int
    words: str


def skip_rows(plan: Plan) -> list[SkipRow]:
    """One row per (code, kind), grouped by code (largest code first)."""
    by_code: dict[str, dict[str, int]] = {}
    for kind, codes in plan.skip_codes().items():
        for code, n in codes.items():
            by_code.setdefault(code, {})[kind] = n
    order = sorted(by_code, key=lambda c: (-sum(by_code[c].values()), c))
    return [
        SkipRow(code, kind, n, code_words(code))
        for code in order
        for kind, n in sorted(by_code[code].items(), key=lambda kv: plan.kinds.index(kv[0]))
    ]


def skip_totals(plan: Plan) -> list[tuple[str, int]]:
    """(code, count) over every kind, largest first."""
    totals: dict[str, int] = {}
    for codes in plan.skip_codes().values():
        for code, n in codes.items():
            totals[code] = totals.get(code, 0) + n
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


# -- after the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeRow:
    kind: str
    label: str
    created: int
    updated: int
    unchanged: int
    conflicts: int
    skipped: int


OUTCOME_COLUMNS = ("created", "updated", "unchanged", "conflicts", "skipped")


def outcome_rows(result: LoadResult) -> list[OutcomeRow]:
    """Per kind, what the load did (the plan's items carry what happened to them)."""
    counts = result.plan.counts()
    rows: list[OutcomeRow] = []
    for kind in result.plan.kinds:
        c = counts.get(kind, {})
        w = result.written.get(kind, {})
        rows.append(
            OutcomeRow(
                kind,
                kind_label(kind),
                w.get("created", 0),
                w.get("updated", 0),
                c.get("unchanged", 0),
                max(w.get("conflicts", 0), c.get("conflict", 0)),
                c.get("skip", 0),
            )
        )
    return rows


def outcome_totals(rows: Sequence[OutcomeRow]) -> dict[str, int]:
    return {name: sum(int(getattr(r, name)) for r in rows) for name in OUTCOME_COLUMNS}


def outcome_headline(result: LoadResult) -> str:
    t = outcome_totals(outcome_rows(result))
    verdict = (
        "verification ok"
        if result.ok
        else f"verification found {plural(len(result.verification.differences), 'difference')}"
    )
    return (
        f"Loaded into {result.plan.target_url} in {format_seconds(result.seconds)}: "
        f"{t['created']:,} created, {t['updated']:,} updated, {t['unchanged']:,} unchanged, "
        f"{plural(t['conflicts'], 'conflict')}, {t['skipped']:,} skipped; {verdict}."
    )


def skipped_line(result: LoadResult, csv: Path | None, rows: int) -> str:
    totals = skip_totals(result.plan)
    if not totals:
        return "Nothing was skipped."
    shown = ", ".join(f"{code} {n:,}" for code, n in totals)
    where = f"; each with its reason in {csv}" if csv is not None else ""
    return f"Skipped {plural(rows, 'record')} ({shown}){where}."


def verification_lines(v: Verification) -> list[str]:
    lines: list[str] = []
    if v.ok:
        linked = sum(c.get("linked", 0) for c in v.counts.values())
        lines.append(
            f"Verification ok: {plural(linked, 'record')} linked in {plural(len(v.counts), 'kind')}"
            f", {plural(v.balances_checked, 'patient balance')} checked."
        )
    else:
        lines.append(
            f"Verification found {plural(len(v.differences), 'difference')} "
            f"({plural(v.balances_checked, 'patient balance')} checked):"
        )
        for d in v.differences[:10]:
            where = " ".join(
                p
                for p in (
                    d.kind.replace("_", " ") if d.kind else "",
                    f"Cliniko {d.source_id}" if d.source_id else "",
                    f"clinic {d.target_id}" if d.target_id is not None else "",
                )
                if p
            )
            lines.append(
                f"  {d.check}{' ' + where if where else ''}: expected {d.expected}, "
                f"found {d.actual}" + (f" ({d.detail})" if d.detail else "")
            )
        if len(v.differences) > 10:
            lines.append(f"  ... and {len(v.differences) - 10:,} more")
    if v.status_only_open:
        n = len(v.status_only_open)
        lines.append(
            f"{plural(n, 'patient balance')} {'rests' if n == 1 else 'rest'} on open-invoice "
            "status alone (may be part-paid in Cliniko): spot-check them."
        )
    lines.append(
        f"Messages queued: {v.outbox_count}; messaging {'ON' if v.messaging_enabled else 'off'}, "
        f"AI {'ON' if v.ai_enabled else 'off'}."
    )
    return lines


def download_line(download: DownloadResult) -> str:
    retries = (
        f" ({plural(download.retries, 'retry', 'retries')}, {download.rate_limited:,} rate-limited)"
        if download.retries or download.rate_limited
        else ""
    )
    quarantined = f", {download.quarantined:,} quarantined" if download.quarantined else ""
    return (
        f"Download run {download.run_id} ({download.mode}, {download.outcome}): "
        f"{plural(download.requests, 'request')}{retries}, {plural(download.records, 'record')}"
        f"{quarantined} in {format_seconds(download.seconds)}."
    )


__all__ = [
    "ACTIONS",
    "ACTION_LABELS",
    "CODE_WORDS",
    "CONFLICT_EXPLANATION",
    "KIND_LABELS",
    "MAX_ITEMS",
    "NOTHING_TO_LOAD",
    "OUTCOME_COLUMNS",
    "ItemRow",
    "KindRow",
    "OutcomeRow",
    "SkipRow",
    "action_filters",
    "change_rows",
    "check_target",
    "code_words",
    "confirm_text",
    "create_rows",
    "download_line",
    "format_day_time",
    "format_money",
    "format_seconds",
    "format_value",
    "has_password",
    "item_detail",
    "item_explanation",
    "item_rows",
    "item_title",
    "kind_label",
    "kind_rows",
    "nothing_to_load",
    "outcome_headline",
    "outcome_rows",
    "outcome_totals",
    "plan_headline",
    "plan_notes",
    "plural",
    "redact_url",
    "select_items",
    "shorten",
    "skip_rows",
    "skip_totals",
    "skipped_csv_path",
    "skipped_line",
    "verification_lines",
]
