"""The synthetic clinic: deterministic, realistic and unkind.

`generate(target, size, seed, anchor, shape)` writes a whole clinic into a SQLite database
(`sandbox.schema` layout). Everything is derived from `seed` and `anchor` ("today"): the same
pair gives byte-identical data; nothing reads the clock.

How it is made: reference data (businesses, users, practitioners, appointment types, billable
items, taxes, concession types, templates, referral source types, services, reference numbers)
is created in the year before the history window; then the clinic is simulated day by day over
~2 years up to `anchor` (UTC midnight): patients register, appointments are booked (past ones
over the 2 years, future ones up to ~60 days ahead), happen or not (arrived, not marked,
no-show, cancelled with every reason code, deleted), get treatment notes and invoices with
items; group classes fill with attendees; blocks, alerts, cases, attachments, credit notes come
and go. Follow-up records (notes, invoices, late attendees) wait in a heap until their day.
Each day's new records are sorted by creation time, given snowflake-like ids that increase with
`created_at` within a resource (and never collide across resources), rendered to bodies and
inserted; only small per-patient facts and the ~60-day queue of follow-ups stay in memory, so a
`large` clinic streams.

The unkind cases every size contains: businesses in three time zones; two active practitioners
with the same full name; an inactive practitioner; archived appointment types; a deleted
template; Unicode (accents, NFD, CJK, RTL, emoji), hostile and 200+ character names; empty and
null fields; archived, merged and deleted patients; each cancellation reason; no-shows;
arrivals; deleted appointments; group classes with cancelled attendees; a deleted group;
deleted blocks and alerts; draft, finalised, empty and deleted notes using every question type
and "Other" answers; invoices of every status (credit ones negative), part-paid open invoices,
deleted invoices and items; attachments still processing.

The truth the API does not show is kept in the invoice bodies' private `_paid` (never
rendered): paid and closed invoices are fully paid, ~20% of open ones part-paid, credit ones 0.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox import forms, names
from sandbox.catalog import CANCELLATION_REASONS, INVOICE_STATUSES, SPECS
from sandbox.render import day, money, ts
from sandbox.schema import LAYOUTS, create_indexes, create_tables, write_meta

Body = dict[str, Any]

SIZES: dict[str, int] = {"tiny": 100, "small": 5_000, "medium": 100_000, "large": 1_000_000}
SHAPES: tuple[str, ...] = ("balanced", "appointments_heavy", "many_small")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: snowflake ids count from here
HISTORY_DAYS = 730
LEAD_IN_DAYS = 30  # patients and contacts exist a little before the first appointment
FUTURE_DAYS = 60
REFERENCE_DAYS = 365
CENT = Decimal("0.01")


# ------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Rates:
    """Per-patient activity of a shape (API-FACTS.md section 10 for "balanced")."""

    bookings: float
    groups: float
    blocks: float
    p_note: float
    p_invoice: float
    extra_item: float
    alerts: float
    contacts: float
    cases: float
    referral: float
    attachments: float


SHAPE_RATES: dict[str, Rates] = {
    "balanced": Rates(6.55, 0.086, 0.2, 0.78, 0.95, 0.25, 0.3, 0.05, 0.1, 0.6, 0.25),
    "appointments_heavy": Rates(28.0, 0.02, 0.05, 0.03, 0.04, 0.0, 0.2, 0.02, 0.05, 0.5, 0.1),
    "many_small": Rates(1.0, 0.1, 1.0, 1.0, 1.0, 0.0, 1.0, 0.6, 0.8, 1.0, 1.0),
}

FUTURE_SHARE = 0.08
NOT_HAPPENED = 0.12 + 0.013 + 0.03  # cancelled, deleted, no-show (past bookings)
GROUP_SIZE_MEAN = 2.5


@dataclass(frozen=True)
class Plan:
    size: str
    shape: str
    target: int
    patients: int
    bookings: int
    groups: int
    blocks: int
    alerts: int
    contacts: int
    cases: int
    attachments: int
    credits: int
    referral_share: float
    p_note: float
    p_invoice: float
    extra_item: float
    businesses: int
    practitioners: int
    inactive_practitioners: int
    types: int
    billable_items: int
    concession_types: int
    referral_source_types: int
    templates: tuple[int, ...]
    taxes: int
    staff_users: int

    def expected_total(self) -> float:
        live_types = self.types - (1 if self.types <= 4 else 2)
        reference = (
            self.businesses
            + self.staff_users
            + 2 * (self.practitioners + self.inactive_practitioners)  # + their users
            + self.types
            + self.billable_items
            + self.taxes
            + self.concession_types
            + len(self.templates)
            + self.referral_source_types
            + min(self.businesses * live_types, 4 * self.businesses + live_types) * 0.9
            + (self.practitioners + self.inactive_practitioners) * 1.3
        )
        happened = self.bookings * (1 - FUTURE_SHARE) * (1 - NOT_HAPPENED)
        invoices = happened * self.p_invoice + self.credits
        return (
            reference
            + self.patients * (1 + self.referral_share)
            + 2 * self.bookings
            + happened * self.p_note
            + invoices * (1 + 1 / (1 - self.extra_item))
            + self.groups * (1 + GROUP_SIZE_MEAN)
            + self.blocks
            + self.alerts
            + self.contacts
            + self.cases
            + self.attachments
        )


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _plan_for(size: str, shape: str, patients: int, k: float) -> Plan:
    r = SHAPE_RATES[shape]
    tiny = size == "tiny"
    many = shape == "many_small"
    p = patients
    practitioners = _clamp(math.sqrt(p) / 2, 3, 40)
    if many:
        practitioners = _clamp(p / 4, 3, 300)
    return Plan(
        size=size,
        shape=shape,
        target=SIZES[size],
        patients=p,
        bookings=max(15, round(r.bookings * p * k)),
        groups=max(2, round(r.groups * p * k)),
        blocks=max(2, round(r.blocks * p * k)),
        alerts=max(2, round(r.alerts * p * k)),
        contacts=max(2, round(r.contacts * p * k)),
        cases=max(1, round(r.cases * p * k)),
        attachments=max(2, round(r.attachments * p * k)),
        credits=max(1, round(r.bookings * p * k * 0.015)),
        referral_share=min(1.0, r.referral),
        p_note=r.p_note,
        p_invoice=r.p_invoice,
        extra_item=r.extra_item,
        businesses=_clamp(p / 12, 3, 50) if many else 3,
        practitioners=practitioners,
        inactive_practitioners=max(1, practitioners // 4),
        types=4 if tiny else (_clamp(p / 8, 8, 200) if many else 8),
        billable_items=3 if tiny else (_clamp(p / 8, 8, 300) if many else 8),
        concession_types=2 if tiny else (_clamp(p / 8, 3, 100) if many else 3),
        referral_source_types=4 if tiny else (_clamp(p / 10, 5, 50) if many else 5),
        templates=(0, 3) if tiny else (0, 1, 2, 3),
        taxes=2 if tiny else 3,
        staff_users=1 if tiny else 3,
    )


def make_plan(size: str, shape: str = "balanced") -> Plan:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    target = SIZES[size]
    p = max(8, target // 40)
    for _ in range(8):
        total = _plan_for(size, shape, p, 1.0).expected_total()
        p = max(8, round(p * target / total))
    plan = _plan_for(size, shape, p, 1.0)
    if p == 8 and plan.expected_total() > target * 1.05:
        lo, hi = 0.01, 1.0
        for _ in range(30):
            mid = (lo + hi) / 2
            if _plan_for(size, shape, 8, mid).expected_total() > target:
                hi = mid
            else:
                lo = mid
        plan = _plan_for(size, shape, 8, lo)
    return plan


# --------------------------------------------------------------------------- static catalogues

# business name, Rails time zone, IANA zone, UTC offset hours (DST ignored), city index
BUSINESSES: tuple[tuple[str, str, str, int, int], ...] = (
    ("Harbourside Physio — Melbourne", "Melbourne", "Australia/Melbourne", 10, 0),
    ("Harbourside Physio Perth", "Perth", "Australia/Perth", 8, 2),
    ("Harbourside Tāmaki Makaurau (Auckland)", "Auckland", "Pacific/Auckland", 12, 4),
)

# code, name, item type, price, tax index (0 GST-free, 1 GST, 2 GST NZ)
BILLABLE_ITEMS: tuple[tuple[str, str, str, str, int], ...] = (
    ("0001", "Initial Consultation", "Service", "95.0", 0),
    ("0002", "Standard Consultation", "Service", "75.0", 0),
    ("0005", "Pilates Class", "Service", "35.0", 1),
    ("0003", "Extended Consultation", "Service", "110.0", 0),
    ("0004", "Telehealth Review", "Service", "60.0", 0),
    ("0006", "Hydrotherapy (retired)", "Service", "40.0", 1),
    ("0007", "Theraband — red", "Other", "12.5", 1),
    ("0008", "Consult — Tāmaki Makaurau", "Service", "120.0", 2),
)

TAXES: tuple[tuple[str, str], ...] = (("GST-free", "0.0"), ("GST", "10.0"), ("GST (NZ)", "15.0"))
CONCESSIONS: tuple[str, ...] = ("Students", "Pensioners", "Veterans (DVA)")

# name, category, colour, minutes, max attendees, billable index, template index, archived,
# product id (a link to a product the sandbox does not serve)
TYPES: tuple[tuple[str, str | None, str, int, int, int | None, int, bool, int | None], ...] = (
    ("Initial Consultation", "Physiotherapy", "#00FF00", 60, 1, 0, 0, False, None),
    ("Standard Consultation", "Physiotherapy", "#3366CC", 30, 1, 1, 0, False, None),
    ("Pilates Class", "Classes", "#FF9900", 55, 8, 2, 2, False, 7),
    ("Long Consultation (old)", None, "#999999", 90, 1, None, 3, True, None),
    ("Extended Consultation", "Physiotherapy", "#9933FF", 45, 1, 3, 1, False, None),
    ("Telehealth Review", None, "#00CCCC", 20, 1, 4, 0, False, None),
    ("Hydrotherapy Group (retired)", "Classes", "#0066FF", 45, 6, 5, 2, True, None),
    ("按摩 Massage — 60 min", "Massage", "#CC0066", 60, 1, None, 1, False, None),
)

REFERRAL_TYPES: tuple[tuple[str, str | None, str | None, list[str] | None], ...] = (
    ("Client", "Patient", "/patients", None),
    ("Contact", "Contact", "/contacts", None),
    ("Other", None, None, None),
    ("Internet", None, None, ["Google", "Instagram", "Facebook", "小红书"]),
    ("Word of mouth", None, None, None),
)

ALERTS = (
    "Allergic to latex",
    "Penicillin allergy ⚠️",
    "Pacemaker — no TENS",
    "Type 2 diabetes",
    "Épilepsie",
    "Blood thinners (warfarin)",
    "心臓病 — heart condition",
    "",
)
CASE_NAMES = ("Case One", "WorkCover claim", "ACC — 膝 knee", "Chronic pain plan")
CANCEL_NOTES = (None, None, "Last minute cancellation", "Rebooked by SMS", "Malade 🤒", "")
BLOCK_NOTES = (None, "Lunch", "Annual leave 🏖️", "Staff meeting", "CPD — formation", "")
APPOINTMENT_NOTES = (None, None, None, "Bring scans", "Prefers afternoon", "需要翻译", "")
FILES = (
    ("referral-letter.pdf", "application/pdf"),
    ("X-ray 2023 (left knee).jpg", "image/jpeg"),
    ("scan_résumé.png", "image/png"),
    ("intake form — 初診.docx", "application/msword"),
    ("notes.txt", "text/plain"),
)


# ---------------------------------------------------------------------------------- internals


class _Rec:
    """A record planned for its creation day; `id` is given when its day is flushed."""

    __slots__ = ("d", "id", "ms", "n", "res")

    def __init__(self, res: str, ms: int, n: int, d: dict[str, Any]) -> None:
        self.res = res
        self.ms = ms
        self.n = n
        self.id = 0
        self.d = d


class _Patient:
    __slots__ = ("concession", "created", "dob", "first", "gone", "id", "invoice_to", "last")

    def __init__(self) -> None:
        self.id = 0
        self.first = ""
        self.last = ""
        self.dob = ""
        self.created = 0
        self.gone = 0
        self.invoice_to: str | None = None
        self.concession: str | None = None


class _Case:
    __slots__ = ("closes", "ids", "max", "patient", "rec", "updated")

    def __init__(self, rec: _Rec, patient: int, closes: int, cap: int) -> None:
        self.rec = rec
        self.patient = patient
        self.closes = closes
        self.max = cap
        self.ids: list[int] = []
        self.updated = rec.ms


@dataclass
class _Business:
    rec: _Rec
    rails_tz: str
    offset_ms: int
    country_code: str


@dataclass
class _Practitioner:
    rec: _Rec
    user: _Rec
    first: str
    last: str
    businesses: list[int]
    inactive_from: int | None


@dataclass
class _Type:
    rec: _Rec
    minutes: int
    group: bool
    billable: int | None
    template: int
    archived_at: int | None


class _Spread:
    """`n` events spread evenly over `days` days starting at day index `first`."""

    def __init__(self, n: int, first: int, days: int) -> None:
        self.n, self.first, self.days = n, first, max(1, days)

    def count(self, di: int) -> int:
        rel = di - self.first
        if rel < 0 or rel >= self.days:
            return 0
        return -((-(rel + 1) * self.n) // self.days) + ((-rel * self.n) // self.days)


@dataclass(frozen=True)
class Report:
    plan: Plan
    counts: dict[str, int]
    """Rows per table."""
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def snowflake(ms: int, code: int, seq: int) -> int:
    return ((ms - EPOCH_MS) << 22) | (code << 17) | (seq & 0x1FFFF)


CODES = {s.name: s.code for s in SPECS}
ORDER = tuple(s.name for s in SPECS)


class Generator:
    def __init__(
        self, conn: sqlite3.Connection, plan: Plan, seed: int, anchor: date, shard: str
    ) -> None:
        self.conn = conn
        self.plan = plan
        self.seed = seed
        self.shard = shard
        self.anchor = anchor
        base = f"cliniko-sandbox:{seed}:{anchor.isoformat()}:{plan.size}:{plan.shape}"
        self.rng = random.Random(base + ":plan")
        self.crng = random.Random(base + ":content")
        self.end_ms = int(datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC).timestamp())
        self.end_ms *= 1000
        if self.end_ms - (HISTORY_DAYS + REFERENCE_DAYS) * DAY_MS < EPOCH_MS:
            raise ValueError(f"anchor {anchor} is too early (the clinic's history starts 2000)")
        self.hist_ms = self.end_ms - HISTORY_DAYS * DAY_MS
        self.start_ms = self.hist_ms - LEAD_IN_DAYS * DAY_MS
        self.n = 0
        self.batch: dict[str, list[_Rec]] = {}
        self.heap: list[tuple[int, int, _Rec]] = []
        self.day_end = 0
        self.last_id: dict[str, int] = {}
        self.seq: dict[str, int] = {}
        self.counts: dict[str, int] = {s.name: 0 for s in SPECS}
        self.patients: list[_Patient] = []
        self.new_patients: list[tuple[_Rec, _Patient]] = []
        self.contacts: list[_Rec] = []
        self.doctors: list[_Rec] = []
        self.users: list[_Rec] = []
        self.businesses: list[_Business] = []
        self.practitioners: list[_Practitioner] = []
        self.types: list[_Type] = []
        self.billables: list[_Rec] = []
        self.billable_data: list[tuple[Decimal, str, str, str, str]] = []
        self.taxes: list[_Rec] = []
        self.concessions: list[_Rec] = []
        self.templates: list[tuple[_Rec, str, Body]] = []
        self.referral_types: list[_Rec] = []
        self.open_cases: dict[int, _Case] = {}
        self.cases: list[_Case] = []
        self.case_joins: list[tuple[_Case, _Rec]] = []
        self.invoice_number = 1000
        self.definition: Body = {}
        self.builders: dict[str, Callable[[_Rec], Body]] = {
            name: getattr(self, f"_b_{name}") for name in ORDER
        }
        # forced coverage of the unkind cases, consumed first
        self.forced_fates: list[tuple[str, int]] = [("cancel", c) for c in CANCELLATION_REASONS]
        self.forced_fates += [("dna", 0), ("deleted", 0)]
        self.forced_notes: list[str] = ["full_other", "draft", "deleted", "sparse", "empty"]
        self.forced_invoices: list[tuple[int, str]] = [
            (20, ""),
            (10, ""),
            (30, ""),
            (10, "part+deleted_item"),
            (20, "deleted"),
        ]
        self.forced_groups: list[str] = ["cancelled_attendee", "deleted"]
        self.forced_blocks = ["deleted", "repeat"]
        self.forced_alerts = ["deleted"]
        self.forced_attachments = ["processing"]

    # ------------------------------------------------------------------------- plumbing

    def _new(self, res: str, ms: int, **d: Any) -> _Rec:
        self.n += 1
        rec = _Rec(res, ms, self.n, d)
        if ms < self.day_end:
            self.batch.setdefault(res, []).append(rec)
        else:
            heapq.heappush(self.heap, (ms, self.n, rec))
        return rec

    def _later(self, res: str, ms: int, **d: Any) -> _Rec | None:
        """A follow-up record; None when it would be created after the anchor."""
        if ms >= self.end_ms:
            return None
        return self._new(res, ms, **d)

    def _clip(self, ms: int) -> int:
        return min(ms, self.end_ms - 1000)

    def _flush(self) -> None:
        batch, self.batch = self.batch, {}
        for res in ORDER:
            recs = batch.get(res)
            if not recs:
                continue
            recs.sort(key=lambda r: (r.ms, r.n))
            code = CODES[res]
            last = self.last_id.get(res, 0)
            seq = self.seq.get(res, 0)
            for r in recs:
                seq += 1
                last = max(snowflake(r.ms, code, seq), last + 1)
                r.id = last
            self.last_id[res] = last
            self.seq[res] = seq
        for case, rec in self.case_joins:
            case.ids.append(rec.id)
            case.updated = max(case.updated, rec.ms)
        self.case_joins = []
        for res in ORDER:
            recs = batch.get(res)
            if not recs:
                continue
            build = self.builders[res]
            LAYOUTS[res].insert_many(self.conn, [build(r) for r in recs])
            self.counts[res] += len(recs)
        for _rec, patient in self.new_patients:
            patient.id = _rec.id
            self.patients.append(patient)
        self.new_patients = []

    def _pop_due(self) -> None:
        while self.heap and self.heap[0][0] < self.day_end:
            _, _, rec = heapq.heappop(self.heap)
            self.batch.setdefault(rec.res, []).append(rec)

    # ------------------------------------------------------------------------- the run

    def run(self) -> dict[str, int]:
        create_tables(self.conn)
        self._reference()
        plan = self.plan
        lead_days = LEAD_IN_DAYS + HISTORY_DAYS
        total_days = lead_days
        past = round(plan.bookings * (1 - FUTURE_SHARE))
        future = max(2, plan.bookings - past)
        early_patients = min(plan.patients, max(3, round(plan.patients * 0.15)))
        spreads = {
            # a clinic two years back already had patients: ~15% register in the lead-in
            "early": _Spread(early_patients, 0, LEAD_IN_DAYS),
            "patients": _Spread(plan.patients - early_patients, LEAD_IN_DAYS, HISTORY_DAYS),
            "contacts": _Spread(plan.contacts, 0, total_days),
            "past": _Spread(past, LEAD_IN_DAYS, HISTORY_DAYS - 2),
            "future": _Spread(future, total_days - 45, 45),
            "groups": _Spread(plan.groups, LEAD_IN_DAYS, HISTORY_DAYS),
            "blocks": _Spread(plan.blocks, LEAD_IN_DAYS, HISTORY_DAYS),
            "alerts": _Spread(plan.alerts, 1, total_days - 1),
            "cases": _Spread(plan.cases, 1, total_days - 1),
            "attachments": _Spread(plan.attachments, 1, total_days - 1),
            "credits": _Spread(plan.credits, LEAD_IN_DAYS + 7, HISTORY_DAYS - 7),
        }
        self.special_slots = self._special_slots(plan.patients)
        self.patient_index = 0
        for di in range(total_days):
            day_start = self.start_ms + di * DAY_MS
            self.day_end = day_start + DAY_MS
            rng = self.rng

            def when() -> int:
                return day_start + rng.randrange(DAY_MS)  # noqa: B023

            for _ in range(spreads["contacts"].count(di)):
                self._contact(when())
            for _ in range(spreads["early"].count(di) + spreads["patients"].count(di)):
                self._patient(when())
            if self.patients:
                for _ in range(spreads["past"].count(di)):
                    self._booking(when(), future=False)
                for _ in range(spreads["future"].count(di)):
                    self._booking(when(), future=True)
                for _ in range(spreads["groups"].count(di)):
                    self._group(when())
                for _ in range(spreads["alerts"].count(di)):
                    self._alert(when())
                for _ in range(spreads["cases"].count(di)):
                    self._case(when())
                for _ in range(spreads["attachments"].count(di)):
                    self._attachment(when())
                for _ in range(spreads["credits"].count(di)):
                    self._credit(when())
            for _ in range(spreads["blocks"].count(di)):
                self._block(when())
            self._pop_due()
            self._flush()
        self._finish_cases()
        self._settings()
        return self.counts

    # ------------------------------------------------------------------------- reference

    def _ref_ms(self, i: int, n: int) -> int:
        span = REFERENCE_DAYS * DAY_MS
        return self.start_ms - span + (span * i) // max(1, n) + self.rng.randrange(DAY_MS // 2)

    def _touched(self, created: int) -> int:
        """An updated_at: often the creation time, sometimes a later edit."""
        if self.rng.random() < 0.6:
            return created
        return self._clip(created + self.rng.randrange(max(1, self.end_ms - created)))

    def _reference(self) -> None:
        plan, rng = self.plan, self.rng
        self.day_end = self.start_ms
        for i in range(plan.taxes):
            self.taxes.append(self._new("taxes", self._ref_ms(i, plan.taxes), i=i))
        for i in range(plan.businesses):
            name, rails, _iana, offset, city = BUSINESSES[i % len(BUSINESSES)]
            if i >= len(BUSINESSES):
                name = f"Harbourside Satellite Clinic {i - len(BUSINESSES) + 1}"
            rec = self._new("businesses", self._ref_ms(i, plan.businesses), name=name, city=city)
            code = names.CITIES[city][4]
            self.businesses.append(_Business(rec, rails, offset * HOUR_MS, code))
        for i in range(plan.concession_types):
            ms = self._ref_ms(i, plan.concession_types)
            self.concessions.append(self._new("concession_types", ms, i=i))
        for i in range(plan.billable_items):
            item = BILLABLE_ITEMS[i % len(BILLABLE_ITEMS)]
            if i >= len(BILLABLE_ITEMS):
                price = Decimal(rng.randrange(20, 200))
                item = (f"{1000 + i}", f"Item {i} — extra", "Service", money(price), i % 3)
            if plan.taxes == 2 and item[4] == 2:
                item = (*item[:4], 1)
            rec = self._new("billable_items", self._ref_ms(i, plan.billable_items), item=item)
            self.billables.append(rec)
            tax_name, rate = TAXES[item[4]]
            self.billable_data.append((Decimal(item[3]), item[0], item[1], tax_name, rate))
        for i, tpl_index in enumerate(plan.templates):
            tname, content = forms.TEMPLATES[tpl_index]
            ms = self._ref_ms(i, len(plan.templates))
            rec = self._new("treatment_note_templates", ms, t=tpl_index)
            self.templates.append((rec, tname, content))
        for i in range(plan.types):
            base = TYPES[i % len(TYPES)]
            if i >= len(TYPES):
                minutes = rng.choice((15, 30, 45))
                billable_i = rng.randrange(plan.billable_items)
                archived_flag = rng.random() < 0.1
                base = (
                    f"Custom type {i}",
                    None,
                    "#123456",
                    minutes,
                    1,
                    billable_i,
                    0,
                    archived_flag,
                    None,
                )
            created = self._ref_ms(i, plan.types)
            archived = None
            if base[7]:
                archived = self.hist_ms + rng.randrange(HISTORY_DAYS // 2 * DAY_MS)
            billable = base[5] if base[5] is not None and base[5] < plan.billable_items else None
            template = next(
                (
                    k
                    for k, (_, n, _) in enumerate(self.templates)
                    if n == forms.TEMPLATES[base[6]][0]
                ),
                0,
            )
            rec = self._new("appointment_types", created, base=base, archived=archived)
            self.types.append(_Type(rec, base[3], base[4] > 1, billable, template, archived))
        # users and practitioners
        staff = [("administrator", True), ("receptionist", True), ("receptionist", False)]
        for i in range(plan.staff_users):
            role, user_active = staff[i]
            person = (
                names.Person("Morgan", "Reyes-Admin", "Ms") if i == 0 else names.random_person(rng)
            )
            self.users.append(
                self._new(
                    "users",
                    self._ref_ms(i, 3),
                    person=person,
                    role=role,
                    active=user_active,
                    tz=self.businesses[0].rails_tz,
                )
            )
        total_pr = plan.practitioners + plan.inactive_practitioners
        for i in range(total_pr):
            inactive = i >= plan.practitioners
            if i < 2:
                person = names.Person(*names.SHARED_PRACTITIONER_NAME, "Dr")
            elif i - 2 < len(names.PRACTITIONERS):
                person = names.PRACTITIONERS[i - 2]
            else:
                person = names.random_person(rng)
            home = i % plan.businesses
            works = [home]
            if plan.businesses > 1 and rng.random() < 0.3:
                works.append((home + 1) % plan.businesses)
            created = self._ref_ms(i, total_pr) + HOUR_MS
            inactive_from = None
            if inactive:
                inactive_from = self.hist_ms + rng.randrange(HISTORY_DAYS // 2 * DAY_MS)
            tz = self.businesses[home].rails_tz
            user = self._new(
                "users",
                created - HOUR_MS,
                person=person,
                role="practitioner",
                active=not inactive,
                tz=tz,
            )
            self.users.append(user)
            designation = names.DESIGNATIONS[(i + (1 if i == 1 else 0)) % len(names.DESIGNATIONS)]
            live_types = [k for k, t in enumerate(self.types) if t.archived_at is None]
            default_type = live_types[i % len(live_types)]
            rec = self._new(
                "practitioners",
                created,
                person=person,
                designation=designation,
                user=user,
                inactive=inactive_from,
                default_type=default_type,
            )
            self.practitioners.append(
                _Practitioner(rec, user, person.first, person.last, works, inactive_from)
            )
            for b in works:
                self._new(
                    "practitioner_reference_numbers",
                    created + MINUTE_MS,
                    practitioner=rec,
                    business=self.businesses[b].rec,
                )
        for i in range(plan.referral_source_types):
            rtype = REFERRAL_TYPES[i % len(REFERRAL_TYPES)]
            if i >= len(REFERRAL_TYPES):
                rtype = (f"Referral channel {i}", None, None, [f"Sub {i}.1", f"Sub {i}.2"])
            self.referral_types.append(
                self._new(
                    "referral_source_types", self._ref_ms(i, plan.referral_source_types), base=rtype
                )
            )
        # services: who offers which live type where
        k = 0
        active_prs = [p for p in self.practitioners if p.inactive_from is None]
        for b, business in enumerate(self.businesses):
            offered = [t for t in self.types if t.archived_at is None]
            if plan.size == "tiny":
                offered = offered[b % 2 : b % 2 + 2]
            elif len(offered) > 4:
                offered = rng.sample(offered, 4) if b >= 3 else offered
            for atype in offered:
                staff_here = [p for p in active_prs if b in p.businesses]
                if not staff_here or (len(self.businesses) > 3 and rng.random() < 0.1):
                    continue
                k += 1
                self._new(
                    "services",
                    self.start_ms - DAY_MS,
                    k=k,
                    business=business.rec,
                    type=atype.rec,
                    staff=[p.rec for p in staff_here],
                )
        self.definition = forms.custom_fields_definition(self.crng)
        self.day_end = self.start_ms  # everything above is "before" day 0
        self._pop_due_reference()

    def _pop_due_reference(self) -> None:
        while self.heap:
            _, _, rec = heapq.heappop(self.heap)
            self.batch.setdefault(rec.res, []).append(rec)
        self._flush()

    # ------------------------------------------------------------------------- people

    def _special_slots(self, n: int) -> dict[int, tuple[str, int]]:
        """Patient index -> ("status", x) or ("special", k): the forced unkind patients."""
        slots: dict[int, tuple[str, int]] = {}
        for idx, status in ((2, "archived"), (4, "merged"), (6, "deleted")):
            if idx < n:
                slots[idx] = ("status", ("archived", "merged", "deleted").index(status))
        k = 0
        for idx in range(n):
            if k >= len(names.SPECIAL_PATIENTS):
                break
            if idx not in slots:
                slots[idx] = ("special", k)
                k += 1
        return slots

    def _patient(self, ms: int) -> None:
        rng = self.rng
        idx = self.patient_index
        self.patient_index += 1
        slot = self.special_slots.get(idx)
        person = names.random_person(rng)
        status = ""
        if slot is not None and slot[0] == "special":
            person = names.SPECIAL_PATIENTS[slot[1]]
        elif slot is not None:
            status = ("archived", "merged", "deleted")[slot[1]]
        else:
            x = rng.random()
            status = (
                "archived" if x < 0.12 else "merged" if x < 0.13 else "deleted" if x < 0.14 else ""
            )
        info = _Patient()
        info.first, info.last = person.first, person.last
        birth_year = self.anchor.year - rng.randrange(1, 95)
        info.dob = "" if rng.random() < 0.04 else f"{birth_year}-{rng.randrange(1, 13):02d}-"
        if info.dob:
            info.dob += f"{rng.randrange(1, 29):02d}"
        survivor: _Patient | None = None
        if status == "merged":
            alive = [p for p in self.patients[-200:] if p.gone > ms]
            if alive:
                survivor = rng.choice(alive)
                info.first, info.last, info.dob = survivor.first, survivor.last, survivor.dob
            else:
                status = "archived"
        info.created = ms
        left = max(HOUR_MS, self.end_ms - ms)
        archived_at = deleted_at = 0
        if status in ("archived", "merged"):
            archived_at = self._clip(ms + left // 3 + rng.randrange(left // 2 + 1))
        if status == "deleted":
            deleted_at = self._clip(ms + left // 3 + rng.randrange(left // 2 + 1))
            if rng.random() < 0.2:
                archived_at = self._clip(ms + rng.randrange(deleted_at - ms + 1))
        gone = [t for t in (archived_at, deleted_at) if t]
        info.gone = min(gone) if gone else 1 << 62
        city = names.CITIES[rng.randrange(len(names.CITIES))]
        address = names.street_address(rng) if rng.random() < 0.9 else ""
        full = f"{person.first} {person.last}".strip()
        info.invoice_to = (
            None
            if rng.random() < 0.05
            else (f"{full}\r\n{address}\r\n{city[0]} {city[1]} {city[2]}\r\n{city[3]}")
        )
        concession = None
        if self.concessions and rng.random() < 0.1:
            concession = self.concessions[rng.randrange(len(self.concessions))]
            info.concession = "yes"
        doctor = rng.choice(self.doctors) if self.doctors and rng.random() < 0.25 else None
        rec = self._new(
            "patients",
            ms,
            person=person,
            info=info,
            status=status,
            archived_at=archived_at,
            deleted_at=deleted_at,
            survivor=survivor,
            city=city,
            address=address,
            concession=concession,
            doctor=doctor,
            updated=max(archived_at, deleted_at, self._touched(ms)),
        )
        self.new_patients.append((rec, info))
        # a referral source, made with the patient
        if status != "deleted" and rng.random() < self.plan.referral_share:
            rtype = rng.randrange(len(self.referral_types))
            referrer: _Rec | _Patient | None = None
            if rtype == 0 and self.patients:
                referrer = rng.choice(self.patients[-500:])
            elif rtype == 1 and self.contacts:
                referrer = rng.choice(self.contacts)
            elif rtype in (0, 1):
                rtype = 2
            self._new("referral_sources", ms + 1000, patient=rec, rtype=rtype, referrer=referrer)

    def _contact(self, ms: int) -> None:
        doctor = self.rng.random() < 0.7
        rec = self._new(
            "contacts",
            ms,
            person=names.random_person(self.rng),
            doctor=doctor,
            updated=self._touched(ms),
        )
        self.contacts.append(rec)
        if doctor:
            self.doctors.append(rec)

    def _pick_patient(self, ms: int) -> _Patient | None:
        patients, rng = self.patients, self.rng
        for _ in range(6):
            p = patients[int(len(patients) * rng.random() ** 1.3)]
            if p.gone > ms:
                return p
        return None

    # ------------------------------------------------------------------------- the diary

    def _practitioner_at(self, ms: int) -> _Practitioner:
        rng = self.rng
        for _ in range(10):
            p = rng.choice(self.practitioners)
            if p.inactive_from is None or p.inactive_from > ms:
                return p
        return self.practitioners[0]

    def _slot(self, business: _Business, local_day: int, after_ms: int) -> int:
        """A start time during business hours on `local_day` (days since epoch, local)."""
        rng = self.rng
        hour = rng.randrange(8, 18)
        minute = rng.choice((0, 15, 30, 45))
        start = local_day * DAY_MS - business.offset_ms + (hour * 60 + minute) * MINUTE_MS
        while start <= after_ms:
            start += DAY_MS
        return start

    def _local_day(self, business: _Business, ms: int) -> int:
        return (ms + business.offset_ms) // DAY_MS

    def _booking(self, ms: int, future: bool) -> None:
        rng = self.rng
        patient = self._pick_patient(ms)
        if patient is None:
            return
        pr = self._practitioner_at(ms)
        business = self.businesses[rng.choice(pr.businesses)]
        types = [
            t for t in self.types if not t.group and (t.archived_at is None or t.archived_at > ms)
        ]
        atype = rng.choice(types)
        if future:
            first = self._local_day(business, self.end_ms) + 1
            start = self._slot(business, first + rng.randrange(FUTURE_DAYS - 1), self.end_ms)
        else:
            lead = min(int(rng.expovariate(1 / 7)), 60)
            start = self._slot(business, self._local_day(business, ms) + lead, ms + HOUR_MS)
            while start >= self.end_ms:
                start -= DAY_MS
            if start <= ms:
                start = ms + HOUR_MS - (ms % (15 * MINUTE_MS))
        end = start + atype.minutes * MINUTE_MS
        # the fate
        fate, reason = "booked", 0
        if future:
            x = rng.random()
            fate = "cancel" if x < 0.06 else "deleted" if x < 0.07 else "booked"
        elif self.forced_fates and start < self.end_ms - HOUR_MS:
            fate, reason = self.forced_fates.pop(0)
        elif self.forced_notes or self.forced_invoices:
            fate = "arrived"
        else:
            x = rng.random()
            fate = (
                "cancel"
                if x < 0.12
                else "deleted"
                if x < 0.133
                else "dna"
                if x < 0.163
                else "unmarked"
                if x < 0.21
                else "arrived"
            )
        if fate == "cancel" and not reason:
            reason = rng.choice(tuple(CANCELLATION_REASONS))
        cancelled_at = deleted_at = 0
        updated = ms
        if fate == "cancel":
            if rng.random() < 0.1 and start < self.end_ms:
                cancelled_at = start + rng.randrange(2 * HOUR_MS)
            else:
                cancelled_at = ms + int((min(start, self.end_ms) - ms) * rng.uniform(0.1, 0.99))
            cancelled_at = self._clip(cancelled_at)
            updated = cancelled_at
        elif fate == "deleted":
            deleted_at = self._clip(
                ms + rng.randrange(max(1, min(start + 3 * DAY_MS, self.end_ms) - ms))
            )
            updated = deleted_at
        elif fate == "arrived":
            updated = self._clip(start + rng.randrange(5, 30) * MINUTE_MS)
        elif fate == "dna":
            updated = self._clip(start + rng.randrange(1, 24) * HOUR_MS)
        online = rng.random() < 0.2
        appt = self._new(
            "individual_appointments",
            ms,
            patient=patient,
            pr=pr,
            business=business,
            type=atype,
            start=start,
            end=end,
            fate=fate,
            reason=reason,
            cancelled_at=cancelled_at,
            deleted_at=deleted_at,
            updated=max(updated, ms),
            online=online,
            invoice_status=None,
        )
        attendee = self._new(
            "attendees",
            ms,
            booking=appt,
            patient=patient,
            fate=fate,
            reason=reason,
            cancelled_at=cancelled_at,
            deleted_at=deleted_at,
            updated=max(updated, ms),
            online=online,
            start=start,
        )
        case = self.open_cases.get(patient.id)
        if case is not None and ms < case.closes and len(case.ids) < case.max and not deleted_at:
            self.case_joins.append((case, attendee))
        if future or fate not in ("arrived", "unmarked"):
            return
        self._follow_ups(appt, attendee, patient, pr, business, atype, start, end)

    def _follow_ups(
        self,
        appt: _Rec,
        attendee: _Rec,
        patient: _Patient,
        pr: _Practitioner,
        business: _Business,
        atype: _Type,
        start: int,
        end: int,
    ) -> None:
        rng, plan = self.rng, self.plan
        mode = ""
        if self.forced_notes:
            mode = self.forced_notes.pop(0)
        elif rng.random() < plan.p_note:
            x = rng.random()
            mode = (
                "draft"
                if x < 0.08
                else "empty"
                if x < 0.10
                else "sparse"
                if x < 0.25
                else "deleted"
                if x < 0.26
                else "normal"
            )
        if mode:
            created = end + rng.randrange(5 * MINUTE_MS, 3 * HOUR_MS)
            self._later(
                "treatment_notes",
                created,
                appt=appt,
                attendee=attendee,
                patient=patient,
                pr=pr,
                type=atype,
                mode=mode,
                start=start,
            )
        status, extra = 0, ""
        taxed = False
        if self.forced_invoices:
            taxed = len(self.forced_invoices) == 5  # the first one also sells a taxed item
            status, extra = self.forced_invoices.pop(0)
        elif rng.random() < plan.p_invoice:
            x = rng.random()
            status = 20 if x < 0.72 else 10 if x < 0.88 else 30
            extra = "part" if status == 10 and rng.random() < 0.2 else ""
            if rng.random() < 0.01:
                extra = "deleted"
            elif rng.random() < 0.005:
                extra += "+deleted_item"
        if status:
            created = end + rng.randrange(MINUTE_MS, DAY_MS)
            items = [self._item_plan(atype.billable, patient)]
            if taxed:
                with_tax = [k for k, b in enumerate(self.billable_data) if Decimal(b[4]) > 0]
                items.append(self._item_plan(with_tax[0], patient))
            while rng.random() < plan.extra_item:
                items.append(self._item_plan(rng.randrange(len(self.billables)), patient))
            self._invoice(created, status, extra, items, patient, pr, business, appt, start)

    def _item_plan(
        self, billable: int | None, patient: _Patient, credit: bool = False
    ) -> dict[str, Any]:
        rng = self.rng
        if billable is None:
            billable = min(1, len(self.billables) - 1)
        price, code, name, tax_name, rate = self.billable_data[billable]
        qty = 2 if rng.random() < 0.05 else 1
        unit = -price if credit else price
        gross = unit * qty
        discount = Decimal(0)
        percent = Decimal(0)
        monetary = False
        concession = ""
        if patient.concession and not credit:
            percent = Decimal(20)
            discount = (gross * percent / 100).quantize(CENT)
            concession = "Pensioners"
        elif not credit and rng.random() < 0.05:
            monetary = True
            discount = Decimal(10) if gross > 10 else Decimal(0)
            percent = (discount * 100 / gross).quantize(Decimal("0.0001")) if gross else percent
        net = gross - discount
        tax = (net * Decimal(rate) / 100).quantize(CENT)
        return {
            "billable": billable,
            "code": code,
            "name": ("Refund — " + name) if credit else name,
            "qty": qty,
            "unit": unit,
            "discount": discount,
            "percent": percent,
            "monetary": monetary,
            "net": net,
            "tax": tax,
            "tax_name": tax_name,
            "rate": rate,
            "total": net + tax,
            "concession": concession,
            "deleted": False,
        }

    def _invoice(
        self,
        created: int,
        status: int,
        extra: str,
        items: list[dict[str, Any]],
        patient: _Patient,
        pr: _Practitioner,
        business: _Business,
        appt: _Rec | None,
        start: int,
    ) -> None:
        rng = self.rng
        if created >= self.end_ms:
            return
        flags = set(extra.split("+"))
        if "deleted_item" in flags:
            gone = self._item_plan(rng.randrange(len(self.billables)), patient)
            gone["deleted"] = True
            items = [*items, gone]
        live = [i for i in items if not i["deleted"]]
        total = sum((i["total"] for i in live), Decimal(0))
        deleted_at = 0
        if "deleted" in flags:
            deleted_at = self._clip(created + rng.randrange(max(1, self.end_ms - created)))
        closed_at = 0
        paid = Decimal(0)
        if status in (20, 30):
            closed_at = self._clip(created + rng.randrange(14 * DAY_MS))
            paid = total
        elif status == 10 and "part" in flags and total > 1:
            paid = (total * Decimal(rng.randrange(10, 90)) / 100).quantize(CENT)
        updated = max(created, closed_at, deleted_at)
        local = (start + business.offset_ms) if start else created + business.offset_ms
        inv = self._new(
            "invoices",
            created,
            status=status,
            patient=patient,
            pr=pr,
            business=business,
            appt=appt,
            items=live,
            issue=day(local),
            closed_at=closed_at,
            deleted_at=deleted_at,
            paid=paid,
            updated=updated,
        )
        for k, item in enumerate(items):
            item_deleted = deleted_at
            item_created = created + k * 1000
            item_updated = item_created
            if item["deleted"]:
                item_deleted = self._clip(created + rng.randrange(max(1, self.end_ms - created)))
                item_updated = item_deleted
            self._new(
                "invoice_items",
                item_created,
                invoice=inv,
                item=item,
                deleted_at=item_deleted,
                updated=max(item_updated, item_deleted),
            )

    def _credit(self, ms: int) -> None:
        patient = self._pick_patient(ms)
        if patient is None:
            return
        pr = self._practitioner_at(ms)
        business = self.businesses[pr.businesses[0]]
        items = [self._item_plan(self.rng.randrange(len(self.billables)), patient, credit=True)]
        self._invoice(ms, 40, "", items, patient, pr, business, None, 0)

    def _group(self, ms: int) -> None:
        rng = self.rng
        groups = [
            t for t in self.types if t.group and (t.archived_at is None or t.archived_at > ms)
        ]
        if not groups:
            groups = [t for t in self.types if t.group] or self.types[:1]
        atype = rng.choice(groups)
        pr = self._practitioner_at(ms)
        business = self.businesses[rng.choice(pr.businesses)]
        lead = rng.randrange(1, 30)
        start = self._slot(business, self._local_day(business, ms) + lead, ms + HOUR_MS)
        end = start + atype.minutes * MINUTE_MS
        forced = self.forced_groups.pop(0) if self.forced_groups else ""
        deleted_at = 0
        if forced == "deleted" or (not forced and rng.random() < 0.03):
            deleted_at = self._clip(ms + rng.randrange(max(1, min(start, self.end_ms) - ms)))
        size = {"cancelled_attendee": 3, "deleted": 1}.get(forced) or rng.randrange(1, 5)
        attendees: list[tuple[_Patient, int, int]] = []
        for _ in range(size * 4):
            if len(attendees) >= size:
                break
            k = len(attendees)
            patient = self._pick_patient(ms)
            if patient is None or any(a[0] is patient for a in attendees):
                continue
            joined = ms + rng.randrange(max(1, (deleted_at or start) - ms))
            cancelled = 0
            if (forced == "cancelled_attendee" and k == 0) or rng.random() < 0.15:
                cancelled = self._clip(joined + rng.randrange(max(1, start - joined)))
            attendees.append((patient, joined, cancelled))
        live_ids = [a[0] for a in attendees if not a[2] and a[1] < self.end_ms]
        group = self._new(
            "group_appointments",
            ms,
            type=atype,
            pr=pr,
            business=business,
            start=start,
            end=end,
            deleted_at=deleted_at,
            patients=live_ids,
            updated=max(ms, deleted_at, max((a[1] for a in attendees), default=ms)),
        )
        for patient, joined, cancelled in attendees:
            fate = "cancel" if cancelled else ("arrived" if start < self.end_ms else "booked")
            self._later(
                "attendees",
                joined,
                booking=group,
                patient=patient,
                fate=fate,
                reason=rng.choice(tuple(CANCELLATION_REASONS)) if cancelled else 0,
                cancelled_at=cancelled,
                deleted_at=deleted_at,
                updated=self._clip(max(joined, cancelled, deleted_at)),
                online=False,
                start=start,
            )

    def _block(self, ms: int) -> None:
        rng = self.rng
        pr = self._practitioner_at(ms)
        business = self.businesses[rng.choice(pr.businesses)]
        start = self._slot(business, self._local_day(business, ms) + rng.randrange(1, 60), ms)
        forced = self.forced_blocks.pop(0) if self.forced_blocks else ""
        deleted_at = 0
        if forced == "deleted" or (not forced and rng.random() < 0.05):
            deleted_at = self._clip(ms + rng.randrange(max(1, min(start, self.end_ms) - ms)))
        repeat = forced == "repeat" or rng.random() < 0.1
        minutes = rng.choice((30, 60, 120, 480))
        self._new(
            "unavailable_blocks",
            ms,
            pr=pr,
            business=business,
            start=start,
            end=start + minutes * MINUTE_MS,
            deleted_at=deleted_at,
            repeat=repeat,
            updated=max(ms, deleted_at),
        )

    # ------------------------------------------------------------------------- the rest

    def _alert(self, ms: int) -> None:
        patient = self._pick_patient(ms)
        if patient is None:
            return
        forced = self.forced_alerts.pop(0) if self.forced_alerts else ""
        deleted_at = 0
        if forced == "deleted" or (not forced and self.rng.random() < 0.05):
            deleted_at = self._clip(ms + self.rng.randrange(max(1, self.end_ms - ms)))
        self._new(
            "medical_alerts",
            ms,
            patient=patient,
            deleted_at=deleted_at,
            updated=max(ms, deleted_at),
        )

    def _case(self, ms: int) -> None:
        rng = self.rng
        patient = self._pick_patient(ms)
        if patient is None or patient.id in self.open_cases:
            return
        cap = rng.choice((5, 6, 10, 12))
        days = rng.choice((90, 180, 365))
        rec = self._new("patient_cases", ms, patient=patient, cap=cap, days=days)
        case = _Case(rec, patient.id, ms + days * DAY_MS, cap)
        rec.d["case"] = case
        self.open_cases[patient.id] = case
        self.cases.append(case)

    def _attachment(self, ms: int) -> None:
        patient = self._pick_patient(ms)
        if patient is None:
            return
        forced = self.forced_attachments.pop(0) if self.forced_attachments else ""
        processing = forced == "processing" or self.rng.random() < 0.03
        self._new(
            "patient_attachments",
            ms,
            patient=patient,
            processing=processing,
            user=self.rng.choice(self.users),
            updated=self._touched(ms),
        )

    def _finish_cases(self) -> None:
        layout = LAYOUTS["patient_cases"]
        for case in self.cases:
            if not case.ids:
                continue
            rec = case.rec
            row = self.conn.execute(
                "SELECT body FROM patient_cases_body WHERE key = ?", (rec.id,)
            ).fetchone()
            body = json.loads(row[0])
            body["attendee_ids"] = [str(i) for i in case.ids]
            body["updated_at"] = ts(max(case.updated, rec.ms))
            layout.save(self.conn, body)

    def _settings(self) -> None:
        admin = self.users[0]
        person: names.Person = admin.d["person"]
        active = [p.rec.id for p in self.practitioners if p.inactive_from is None]
        definition = self.definition
        settings = {
            "terminology": {"patient": "client"},
            "account": {
                "id": snowflake(self.start_ms - REFERENCE_DAYS * DAY_MS, 0, 1),
                "name": "Harbourside Allied Health & Co. (sandbox)",
                "country": "Australia",
                "time_zone": self.businesses[0].rails_tz,
                "currency_symbol": "$",
                "subdomain": f"harbourside-sandbox-{self.seed}",
                "email_from": "admin@harbourside.example.test",
                "admin": {
                    "email": names.email_for(person.first, person.last, 1),
                    "first_name": person.first,
                    "last_name": person.last,
                },
            },
            "calendar": {
                "start_hour": 7,
                "end_hour": 20,
                "timeslot_height_in_pixels": 15,
                "timeslot_size_in_minutes": 15,
                "show_current_time_indicator": True,
                "multiple_appointments_gap": False,
            },
            "online_bookings": {
                "adroll": {"advertiser_id": "SANDBOX", "pixel_id": "SANDBOX"},
                "calendar_info": "Book online — réservez en ligne",
                "enabled": True,
                "google_analytics": {"tracking_id": "UA-0000000-0"},
                "logo_url": None,
                "max_appointments_per_day_segment": 5,
                "min_hours_advance_required_to_book": 2,
                "min_hours_notice_for_patient_cancellation": 24,
                "notify_practitioner_by_email": True,
                "notify_practitioner_by_sms": False,
                "policy": "24 hours notice please",
                "practitioner_order": active,
                "require_patient_address": False,
                "show_appointment_duration": True,
                "show_prices": False,
            },
            "patient_custom_fields_definition": definition,
            "reminders": {"default_reminder_type": "SMS & Email"},
        }
        write_meta(
            self.conn,
            {
                "settings": settings,
                "admin_user_id": admin.id,
                "seed": self.seed,
                "anchor": self.anchor.isoformat(),
                "size": self.plan.size,
                "shape": self.plan.shape,
                "shard": self.shard,
            },
        )

    # ------------------------------------------------------------------------- bodies

    def _b_taxes(self, r: _Rec) -> Body:
        name, rate = TAXES[r.d["i"]]
        return {
            "amount": rate,
            "created_at": ts(r.ms),
            "id": r.id,
            "links": None,
            "name": name,
            "rate": rate,
            "updated_at": ts(r.ms),
        }

    def _b_businesses(self, r: _Rec) -> Body:
        rng = self.crng
        city, state, post, country, code = names.CITIES[r.d["city"]]
        nz = code == "NZ"
        return {
            "address_1": names.street_address(rng),
            "address_2": None if rng.random() < 0.5 else "Level 2",
            "business_name": r.d["name"],
            "business_registration_name": "NZBN" if nz else "ABN",
            "business_registration_value": f"{rng.randrange(10**10, 10**11)}",
            "city": city,
            "contact_information": f"Phone: {names.landline(rng, code)}\r\nFax: —",
            "country": country,
            "country_code": code,
            "created_at": ts(r.ms),
            "display_name": None if rng.random() < 0.5 else r.d["name"].split(" — ")[0],
            "email_reply_to": f"{names.slug(city)}@harbourside.example.test",
            "id": r.id,
            "post_code": post,
            "show_in_online_bookings": rng.random() < 0.8,
            "state": state,
            "updated_at": ts(self._touched(r.ms)),
            "website_address": "https://harbourside.example.test",
            "practitioners": None,
            "appointments": None,
            "links": None,
        }

    def _b_concession_types(self, r: _Rec) -> Body:
        i = r.d["i"]
        name = CONCESSIONS[i] if i < len(CONCESSIONS) else f"Concession {i}"
        return {
            "id": r.id,
            "name": name,
            "created_at": ts(r.ms),
            "updated_at": ts(r.ms),
            "links": None,
        }

    def _b_billable_items(self, r: _Rec) -> Body:
        code, name, item_type, price, tax = r.d["item"]
        return {
            "id": r.id,
            "item_code": code,
            "item_type": item_type,
            "name": name,
            "price": price,
            "tax": f"/taxes/{self.taxes[min(tax, len(self.taxes) - 1)].id}",
            "created_at": ts(r.ms),
            "updated_at": ts(self._touched(r.ms)),
            "links": None,
        }

    def _b_treatment_note_templates(self, r: _Rec) -> Body:
        name, content = forms.TEMPLATES[r.d["t"]]
        deleted = None
        updated = r.ms
        if name == forms.DELETED_TEMPLATE:
            deleted_ms = self.hist_ms + HISTORY_DAYS // 3 * DAY_MS + 37_913_000
            deleted, updated = ts(deleted_ms), deleted_ms
        rng = self.crng
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(updated),
            "content": content,
            "name": name,
            "print_settings": {
                "include_patient_address": True,
                "include_patient_dob": rng.choice((True, None)),
                "include_patient_medicare": None,
                "include_patient_occupation": rng.choice((False, None)),
                "include_patient_reference_number": None,
                "title": rng.choice((None, name)),
            },
            "deleted_at": deleted,
            "links": None,
        }

    def _b_appointment_types(self, r: _Rec) -> Body:
        name, category, colour, minutes, max_att, _billable, _tpl, _arch, product = r.d["base"]
        t = next(t for t in self.types if t.rec is r)
        body: Body = {
            "archived_at": ts(r.d["archived"]) if r.d["archived"] else None,
            "category": category,
            "color": colour,
            "created_at": ts(r.ms),
            "duration_in_minutes": minutes,
            "id": r.id,
            "name": name,
            "description": None if self.crng.random() < 0.5 else f"{name}: {minutes} minutes",
            "max_attendees": max_att,
            "show_in_online_bookings": (None if max_att == 1 else False) if _arch else not t.group,
            "updated_at": ts(r.d["archived"] or r.ms),
        }
        if t.billable is not None:
            body["billable_item"] = f"/billable_items/{self.billables[t.billable].id}"
        if product is not None:
            body["product"] = f"/products/{product}"
        body["practitioners"] = None
        body["treatment_note_template"] = (
            f"/treatment_note_templates/{self.templates[t.template][0].id}"
        )
        body["links"] = None
        return body

    def _b_users(self, r: _Rec) -> Body:
        person: names.Person = r.d["person"]
        return {
            "id": r.id,
            "title": person.title,
            "first_name": person.first,
            "last_name": person.last,
            "email": names.email_for(person.first, person.last, r.n),
            "role": r.d["role"],
            "time_zone": r.d["tz"],
            "user_active": r.d["active"],
            "created_at": ts(r.ms),
            "updated_at": ts(self._touched(r.ms)),
            "links": None,
        }

    def _b_practitioners(self, r: _Rec) -> Body:
        person: names.Person = r.d["person"]
        inactive = r.d["inactive"]
        rng = self.crng
        description = rng.choice(
            (None, "", "Special interest in sports injuries 🏃", "Parle français. 日本語可。")
        )
        return {
            "created_at": ts(r.ms),
            "designation": r.d["designation"],
            "description": description,
            "first_name": person.first,
            "id": r.id,
            "last_name": person.last,
            "show_in_online_bookings": inactive is None and rng.random() < 0.8,
            "title": person.title,
            "label": f"{person.first} {person.last}",
            "updated_at": ts(inactive or self._touched(r.ms)),
            "default_appointment_type": (
                f"/appointment_types/{self.types[r.d['default_type']].rec.id}"
            ),
            "practitioner_reference_numbers": None,
            "user": f"/users/{r.d['user'].id}",
            "appointments": None,
            "invoices": None,
            "links": None,
            "_inactive": inactive is not None,
        }

    def _b_practitioner_reference_numbers(self, r: _Rec) -> Body:
        rng = self.crng
        return {
            "id": r.id,
            "name": rng.choice(("Provider #", "Medicare provider number", "ACC vendor ID")),
            "reference_number": f"{rng.randrange(100000, 999999)}{rng.choice('ABCDEFHJKLTWXY')}",
            "created_at": ts(r.ms),
            "updated_at": ts(r.ms),
            "business": f"/businesses/{r.d['business'].id}",
            "practitioner": f"/practitioners/{r.d['practitioner'].id}",
            "links": None,
        }

    def _b_referral_source_types(self, r: _Rec) -> Body:
        name, referrer_type, referrers, subcategories = r.d["base"]
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(self._touched(r.ms)),
            "name": name,
            "referrers": referrers,
            "referrer_type": referrer_type,
            "subcategories": subcategories,
            "links": None,
        }

    def _b_services(self, r: _Rec) -> Body:
        return {
            "practitioners": [f"/practitioners/{p.id}" for p in r.d["staff"]],
            "appointment_type": f"/appointment_types/{r.d['type'].id}",
            "business": f"/businesses/{r.d['business'].id}",
            "_k": r.d["k"],
        }

    def _b_patients(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        person: names.Person = d["person"]
        info: _Patient = d["info"]
        city = d["city"]
        code = city[4]
        phones: list[dict[str, str]] = []
        if rng.random() < 0.9:
            phones.append({"phone_type": "Mobile", "number": names.mobile(rng, code)})
        if rng.random() < 0.3:
            phones.append({"phone_type": "Home", "number": names.landline(rng, code)})
        email = person.email
        if email is None:
            email = "" if rng.random() < 0.08 else names.email_for(info.first, info.last, r.n)
        survivor: _Patient | None = d["survivor"]
        archived_at = d["archived_at"]
        body: Body = {
            "accepted_privacy_policy": rng.choice((True, True, None, False)),
            "accepted_email_marketing": rng.random() < 0.4,
            "accepted_sms_marketing": rng.random() < 0.3,
            "address_1": d["address"],
            "address_2": "" if rng.random() < 0.8 else f"Unit {rng.randrange(1, 30)}",
            "address_3": "",
            "archived_at": ts(archived_at) if archived_at else "",
            "city": city[0] if d["address"] else "",
            "country": city[3],
            "created_at": ts(r.ms),
            "custom_fields": forms.custom_fields_for(self.definition, rng, day(r.ms)),
            "dva_card_number": "" if rng.random() < 0.95 else f"NX{rng.randrange(100000, 999999)}",
            "date_of_birth": info.dob,
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else "",
            "email": email,
            "emergency_contact": "" if rng.random() < 0.7 else "Partner — Alex, 0455 500 123",
            "first_name": info.first,
            "invoice_default_to": "" if rng.random() < 0.9 else "Super Insurance",
            "invoice_email": "" if rng.random() < 0.9 else "claims@insurer.example.test",
            "invoice_extra_information": (
                "" if rng.random() < 0.9 else f"Insurance #{rng.randrange(10**5)}\r\nClaim #1"
            ),
            "gender": rng.choice(("", "", "Male", "Female")),
            "gender_identity": rng.choice(("", "", "", "Woman", "Man", "Non-binary")),
            "id": r.id,
            "last_name": info.last,
            "medicare": ""
            if code != "AU" or rng.random() < 0.5
            else f"{rng.randrange(2, 7)}{rng.randrange(10**8, 10**9)}",
            "medicare_reference_number": "" if rng.random() < 0.5 else str(rng.randrange(1, 6)),
            "merged_at": ts(archived_at) if survivor is not None else "",
            "merged_with_patient": f"/patients/{survivor.id}" if survivor is not None else None,
            "notes": "" if rng.random() < 0.8 else "Prefers morning appointments.\nUses a 🦽.",
            "appointment_notes": "" if rng.random() < 0.9 else "Needs interpreter (Mandarin)",
            "occupation": rng.choice(("", "", "Nurse", "Teacher", "Électricien", "Student")),
            "old_reference_id": "" if rng.random() < 0.7 else f"LEGACY-{r.n:05d}",
            "patient_phone_numbers": phones,
            "post_code": city[2] if d["address"] else "",
            "preferred_first_name": person.preferred,
            "pronouns": None,
            "receives_confirmation_emails": rng.random() < 0.8,
            "referral_source": "" if rng.random() < 0.85 else "Google",
            "reminder_type": rng.choice(("SMS & Email", "SMS", "Email", "None")),
            "sex": rng.choice(("", "Female", "Male", "Intersex", "Female to Male")),
            "state": city[1] if d["address"] else "",
            "title": person.title,
            "time_zone": None
            if rng.random() < 0.3
            else rng.choice(("Australia/Melbourne", "Australia/Perth", "Pacific/Auckland")),
            "updated_at": ts(d["updated"]),
            "concession_type": (
                f"/concession_types/{d['concession'].id}" if d["concession"] else None
            ),
            "referring_doctor": f"/contacts/{d['doctor'].id}" if d["doctor"] else None,
            "medical_alerts": None,
            "invoices": None,
            "appointments": None,
            "links": None,
        }
        return body

    def _b_contacts(self, r: _Rec) -> Body:
        rng = self.crng
        person: names.Person = r.d["person"]
        doctor = r.d["doctor"]
        city = names.CITIES[rng.randrange(len(names.CITIES))]
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(r.d["updated"]),
            "address_1": names.street_address(rng),
            "address_2": "" if rng.random() < 0.7 else "Suite 3",
            "address_3": "",
            "city": city[0],
            "company_name": "Example Medical Centre" if doctor else "",
            "deleted_at": None,
            "doctor_type": rng.choice(("general_practitioner", "specialist")) if doctor else None,
            "email": names.email_for(person.first, person.last, r.n),
            "first_name": person.first,
            "last_name": person.last,
            "notes": "" if rng.random() < 0.8 else "Fax referrals only",
            "occupation": "General Practitioner" if doctor else rng.choice(("", "Lawyer")),
            "phone_numbers": [
                {"number": names.landline(rng, city[4]), "phone_type": "Work"},
                *(
                    [{"number": names.mobile(rng, city[4]), "phone_type": "Mobile"}]
                    if rng.random() < 0.5
                    else []
                ),
            ],
            "post_code": city[2],
            "preferred_name": "",
            "provider_number": f"{rng.randrange(100000, 999999)}AB" if doctor else "",
            "state": city[1],
            "title": "Dr" if doctor else person.title,
            "country": city[3],
            "type": "Doctor" if doctor else "Standard",
            "type_code": 1 if doctor else 0,
            "links": None,
        }

    def _b_medical_alerts(self, r: _Rec) -> Body:
        deleted = r.d["deleted_at"]
        return {
            "created_at": ts(r.ms),
            "id": r.id,
            "name": self.crng.choice(ALERTS),
            "updated_at": ts(r.d["updated"]),
            "deleted_at": ts(deleted) if deleted else None,
            "patient": f"/patients/{r.d['patient'].id}",
            "links": None,
        }

    def _b_patient_cases(self, r: _Rec) -> Body:
        rng = self.crng
        case: _Case = r.d["case"]
        issue = day(r.ms)
        expiry = day(r.ms + r.d["days"] * DAY_MS)
        referral = rng.random() < 0.3
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(r.ms),
            "max_invoiceable_amount": (
                None if rng.random() < 0.5 else money(Decimal(rng.randrange(300, 2000)))
            ),
            "closed": case.closes < self.end_ms or rng.random() < 0.1,
            "include_cancelled_attendees": rng.choice((True, False, None)),
            "include_dna_attendees": rng.choice((True, False, None)),
            "issue_date": issue if rng.random() < 0.9 else None,
            "expiry_date": expiry if rng.random() < 0.9 else None,
            "name": rng.choice(CASE_NAMES),
            "notes": None if rng.random() < 0.6 else "GP management plan (5 sessions)",
            "max_sessions": case.max if rng.random() < 0.8 else None,
            "referral": referral,
            "referral_type": "medicare" if referral else None,
            "attendee_ids": [],
            "patient": f"/patients/{r.d['patient'].id}",
            "attendees": None,
            "bookings": None,
            "patient_attachments": None,
            "invoices": None,
            "links": None,
        }

    def _b_referral_sources(self, r: _Rec) -> Body:
        rtype = r.d["rtype"]
        referrer = r.d["referrer"]
        trec = self.referral_types[rtype]
        _name, referrer_type, _refs, subcategories = trec.d["base"]
        path = None
        if isinstance(referrer, _Patient):
            path = f"/patients/{referrer.id}"
        elif isinstance(referrer, _Rec):
            path = f"/contacts/{referrer.id}"
        return {
            "links": None,
            "referrer": path,
            "referrer_type": referrer_type,
            "subcategory": self.crng.choice(subcategories) if subcategories else None,
            "notes": self.crng.choice(("", "Saw the sign outside", "Recommandé par un ami 👍")),
            "patient": f"/patients/{r.d['patient'].id}",
            "referral_source_type": f"/referral_source_types/{trec.id}",
        }

    def _cancellation(self, d: dict[str, Any]) -> tuple[Any, Any, str, Any]:
        if not d["cancelled_at"]:
            return None, None, "", None
        reason = d["reason"]
        return (
            ts(d["cancelled_at"]),
            reason,
            CANCELLATION_REASONS[reason],
            self.crng.choice(CANCEL_NOTES),
        )

    def _b_individual_appointments(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        patient: _Patient = d["patient"]
        cancelled_at, reason, reason_text, note = self._cancellation(d)
        past = d["start"] < self.end_ms
        repeat = rng.random() < 0.05
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(d["updated"]),
            "booking_ip_address": names.ip_address(rng) if d["online"] else None,
            "cancellation_note": note,
            "cancellation_reason": reason,
            "cancellation_reason_description": reason_text,
            "conflicts": None,
            "did_not_arrive": d["fate"] == "dna",
            "email_reminder_sent": past and rng.random() < 0.8,
            "invoice_status": None,
            "notes": rng.choice(APPOINTMENT_NOTES),
            "online_booking_policy_accepted": True if d["online"] else None,
            "patient_arrived": d["fate"] == "arrived",
            "patient_name": f"{patient.first} {patient.last}".strip(),
            "repeat_rule": (
                {"repeat_type": "weekly", "number_of_repeats": 4, "repeating_interval": 1}
                if repeat
                else {}
            ),
            "repeats": None,
            "sms_reminder_sent": past and rng.random() < 0.6,
            "treatment_note_status": None,
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "starts_at": ts(d["start"]),
            "ends_at": ts(d["end"]),
            "cancelled_at": cancelled_at,
            "appointment_type": f"/appointment_types/{d['type'].rec.id}",
            "business": f"/businesses/{d['business'].rec.id}",
            "practitioner": f"/practitioners/{d['pr'].rec.id}",
            "patient": f"/patients/{patient.id}",
            "attendees": None,
            "links": None,
        }

    def _b_group_appointments(self, r: _Rec) -> Body:
        d = r.d
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(self._clip(d["updated"])),
            "conflicts": None,
            "max_attendees": d["type"].rec.d["base"][4],
            "notes": self.crng.choice((None, "Bring a mat", "")),
            "patient_ids": [p.id for p in d["patients"]],
            "repeat_rule": {},
            "repeats": None,
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "starts_at": ts(d["start"]),
            "ends_at": ts(d["end"]),
            "appointment_type": f"/appointment_types/{d['type'].rec.id}",
            "business": f"/businesses/{d['business'].rec.id}",
            "practitioner": f"/practitioners/{d['pr'].rec.id}",
            "attendees": None,
            "links": None,
        }

    def _b_attendees(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        cancelled_at, reason, reason_text, note = self._cancellation(d)
        fate = d["fate"]
        arrived = True if fate == "arrived" else False if fate == "dna" else None
        past = d["start"] < self.end_ms
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(max(r.ms, d["updated"])),
            "arrived": arrived,
            "booking_ip_address": names.ip_address(rng) if d["online"] else None,
            "cancellation_note": note,
            "cancellation_reason": reason,
            "cancellation_reason_description": reason_text,
            "email_reminder_sent": past and rng.random() < 0.8,
            "invoice_status": None,
            "notes": rng.choice((None, None, "Quiet room please", "")),
            "online_booking_policy_accepted": True if d["online"] else None,
            "sms_reminder_sent": past and rng.random() < 0.6,
            "treatment_note_status": None,
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "cancelled_at": cancelled_at,
            "booking": f"/bookings/{d['booking'].id}",
            "patient": f"/patients/{d['patient'].id}",
            "invoices": None,
            "links": None,
        }

    def _b_unavailable_blocks(self, r: _Rec) -> Body:
        d = r.d
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(d["updated"]),
            "conflicts": None,
            "notes": self.crng.choice(BLOCK_NOTES),
            "repeat_rule": (
                {"repeat_type": "weekly", "number_of_repeats": 6, "repeating_interval": 1}
                if d["repeat"]
                else {}
            ),
            "repeats": None,
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "starts_at": ts(d["start"]),
            "ends_at": ts(d["end"]),
            "business": f"/businesses/{d['business'].rec.id}",
            "practitioner": f"/practitioners/{d['pr'].rec.id}",
            "links": None,
        }

    def _b_treatment_notes(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        mode = d["mode"]
        template_rec, title, content = self.templates[d["type"].template]
        draft = mode == "draft"
        deleted = mode == "deleted"
        fill = "normal" if mode in ("draft", "deleted") else mode
        updated = r.ms if draft else self._clip(r.ms + rng.randrange(2 * DAY_MS))
        deleted_at = 0
        if deleted:
            deleted_at = self._clip(r.ms + rng.randrange(max(1, self.end_ms - r.ms)))
            updated = max(updated, deleted_at)
        pr: _Practitioner = d["pr"]
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(updated),
            "content": forms.fill_note(content, rng, fill, day(d["start"])),
            "draft": draft,
            "title": title,
            "deleted_at": ts(deleted_at) if deleted_at else None,
            "author_name": f"{pr.first} {pr.last}",
            "patient": f"/patients/{d['patient'].id}",
            "practitioner": f"/practitioners/{pr.rec.id}",
            "treatment_note_template": f"/treatment_note_templates/{template_rec.id}",
            "links": None,
            "_booking_id": d["appt"].id,
            "_attendee_id": d["attendee"].id,
        }

    def _b_invoices(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        items = d["items"]

        def total(key: str) -> str:
            return money(sum((i[key] for i in items), Decimal(0)))

        self.invoice_number += 1
        patient: _Patient = d["patient"]
        body: Body = {
            "id": r.id,
            "issue_date": d["issue"],
            "total_amount": total("total"),
            "tax_amount": total("tax"),
            "net_amount": total("net"),
            "notes": rng.choice(("", "", "Thank you!", None)),
            "status": d["status"],
            "invoice_to": patient.invoice_to,
            "patient_extra_information": rng.choice(("", "", "Claim #A-1234\r\nRef: 5678", None)),
            "number": self.invoice_number,
            "discounted_amount": total("discount"),
            "status_description": INVOICE_STATUSES[d["status"]],
            "created_at": ts(r.ms),
            "updated_at": ts(d["updated"]),
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "closed_at": ts(d["closed_at"]) if d["closed_at"] else None,
        }
        if d["appt"] is not None:
            body["appointment"] = f"/appointments/{d['appt'].id}"
        body["business"] = f"/businesses/{d['business'].rec.id}"
        body["practitioner"] = f"/practitioners/{d['pr'].rec.id}"
        body["patient"] = f"/patients/{patient.id}"
        body["links"] = None
        body["_paid"] = money(d["paid"])
        return body

    def _b_invoice_items(self, r: _Rec) -> Body:
        d = r.d
        item = d["item"]
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(d["updated"]),
            "concession_type_name": item["concession"],
            "discount_percentage": money(item["percent"]),
            "discounted_amount": money(item["discount"]),
            "is_monetary_discount": item["monetary"],
            "name": item["name"],
            "net_price": money(item["net"]),
            "quantity": item["qty"],
            "tax_amount": money(item["tax"]),
            "tax_name": item["tax_name"],
            "tax_rate": item["rate"],
            "unit_price": money(item["unit"]),
            "total_including_tax": money(item["total"]),
            "code": item["code"],
            "deleted_at": ts(d["deleted_at"]) if d["deleted_at"] else None,
            "billable_item": f"/billable_items/{self.billables[item['billable']].id}",
            "invoice": f"/invoices/{d['invoice'].id}",
            "links": None,
        }

    def _b_patient_attachments(self, r: _Rec) -> Body:
        rng = self.crng
        d = r.d
        processing = d["processing"]
        filename, content_type = rng.choice(FILES)
        return {
            "id": r.id,
            "created_at": ts(r.ms),
            "updated_at": ts(d["updated"]),
            "content_type": None if processing else content_type,
            "filename": None if processing else filename,
            "size": None if processing else rng.randrange(200, 5_000_000),
            "content": None,
            "description": rng.choice((None, "", "Referral from GP", "MRI report — 右膝")),
            "processing_completed": not processing,
            "patient": f"/patients/{d['patient'].id}",
            "user": f"/users/{d['user'].id}",
            "links": None,
        }


def _connect(target: sqlite3.Connection | str | Path) -> tuple[sqlite3.Connection, bool]:
    if isinstance(target, sqlite3.Connection):
        return target, False
    path = Path(target)
    if path.exists():
        path.unlink()
    for suffix in ("-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return sqlite3.connect(os.fspath(path)), True


def generate(
    target: sqlite3.Connection | str | Path,
    size: str = "small",
    seed: int = 1,
    anchor: date | None = None,
    shape: str = "balanced",
    *,
    shard: str = "au1",
) -> Report:
    """Write a synthetic clinic into `target` (a connection, or a file path, replaced)."""
    plan = make_plan(size, shape)
    if anchor is None:
        anchor = datetime.now(UTC).date()
    elif isinstance(anchor, datetime):
        anchor = anchor.astimezone(UTC).date() if anchor.tzinfo else anchor.date()
    started = time.perf_counter()
    conn, owned = _connect(target)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("BEGIN")
        gen = Generator(conn, plan, seed, anchor, shard)
        counts = gen.run()
        create_indexes(conn)
        conn.execute("COMMIT")
    finally:
        if owned:
            conn.close()
    return Report(plan, dict(counts), time.perf_counter() - started)


__all__ = ["SHAPES", "SIZES", "Plan", "Report", "generate", "make_plan", "snowflake"]
