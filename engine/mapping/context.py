"""What a mapping function may know besides its own record.

`MappingContext` is frozen and made of plain lookups, so each mapping stays a pure function of
(row, context). `build_context` makes one from the settings and the staged rows of the few
resources that other records borrow from (items of an invoice, alerts of a patient, ...).
A planner that cannot hold those in memory may build the context itself with any `Mapping`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.mapping import fields as f
from engine.mapping.staged import StagedRow
from engine.mapping.timezones import resolve_zone


@dataclass(frozen=True, slots=True)
class CustomFieldDef:
    name: str
    type: str
    section_token: str | None
    archived: bool
    options: Mapping[str, str] = field(default_factory=dict)
    """Option token -> option name."""


@dataclass(frozen=True, slots=True)
class CustomFieldDefinitions:
    """settings.patient_custom_fields_definition, indexed by token (archived items kept)."""

    sections: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    """Section token -> (name, archived)."""
    fields: Mapping[str, CustomFieldDef] = field(default_factory=dict)
    """Field token -> definition."""


@dataclass(frozen=True, slots=True)
class ContextProblem:
    """A staged row that could not be used as context (reported, never dropped silently)."""

    resource: str
    source_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MappingContext:
    time_zone: str
    """The account's IANA zone (UTC when settings gave none or an unknown one)."""
    now: datetime
    """Aware UTC: tells upcoming appointments from history."""
    time_zone_known: bool = True
    """False when the account's zone was missing or unknown and UTC was used."""
    time_zone_source: str | None = None
    """The account's zone as Cliniko named it (a Rails name)."""
    custom_fields: CustomFieldDefinitions = field(default_factory=CustomFieldDefinitions)
    location_time_zones: Mapping[str, str] = field(default_factory=dict)
    """Business id -> IANA zone, when known (Cliniko's API gives none: the account zone)."""
    practitioner_names: Mapping[str, str] = field(default_factory=dict)
    """Practitioner id -> display name (a note's author when its author_name is empty)."""
    billable_item_prices: Mapping[str, Decimal] = field(default_factory=dict)
    """Billable item id -> price."""
    medical_alerts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Patient id -> texts of its non-deleted alerts, oldest first."""
    invoice_items: Mapping[str, tuple[StagedRow, ...]] = field(default_factory=dict)
    """Invoice id -> its staged invoice items (deleted ones too; the invoice mapping drops
    them), in created_at, id order."""
    group_appointment_starts: Mapping[str, datetime | None] = field(default_factory=dict)
    """Group appointment id -> its start (an attendee's status depends on it)."""
    individual_appointment_ids: frozenset[str] = frozenset()
    """Ids of staged individual appointments (their attendee rows are not separate records)."""
    problems: tuple[ContextProblem, ...] = ()

    def zone_for_location(self, location_id: str | None) -> str:
        if location_id is not None:
            zone = self.location_time_zones.get(location_id)
            if zone:
                return zone
        return self.time_zone

    def booking_ref(self, booking_id: str | None) -> dict[str, str]:
        """A booking link as a ref: a group appointment when staged as one, else an
        (individual) appointment."""
        if booking_id is None:
            return {}
        if booking_id in self.group_appointment_starts:
            return {"group_appointment": booking_id}
        return {"appointment": booking_id}


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_custom_field_definitions(definition: object) -> CustomFieldDefinitions:
    """Index a `patient_custom_fields_definition` by token, tolerating any shape."""
    sections: dict[str, tuple[str, bool]] = {}
    defs: dict[str, CustomFieldDef] = {}
    for section in _list(_dict(definition).get("sections")):
        s = _dict(section)
        s_token = _str(s.get("token"))
        s_archived = s.get("archived") is True
        if s_token:
            sections[s_token] = (_str(s.get("name")) or "", s_archived)
        for fld in _list(s.get("fields")):
            fd = _dict(fld)
            token = _str(fd.get("token"))
            if not token:
                continue
            options = {
                ot: _str(_dict(o).get("name")) or ""
                for o in _list(fd.get("options"))
                if (ot := _str(_dict(o).get("token")))
            }
            defs[token] = CustomFieldDef(
                name=_str(fd.get("name")) or "",
                type=_str(fd.get("type")) or "",
                section_token=s_token,
                archived=s_archived or fd.get("archived") is True,
                options=options,
            )
    return CustomFieldDefinitions(sections=sections, fields=defs)


def _order_key(row: StagedRow) -> tuple[str, int, str]:
    raw = row.raw if isinstance(row.raw, Mapping) else {}
    created = raw.get("created_at")
    created_s = created if isinstance(created, str) else ""
    rid = str(row.id)
    return (created_s, len(rid), rid)


def practitioner_display_name(raw: Mapping[str, Any]) -> str | None:
    """`label`, else first + last name as Cliniko builds its label (the inactive list has
    no label); the title alone when there is nothing else."""
    label = f.text(raw, "label")
    if label:
        return label
    parts = [f.text(raw, k) for k in ("first_name", "last_name")]
    if not any(parts):
        parts = [f.text(raw, "title")]
    built = " ".join(p for p in parts if p)
    return built or None


def build_context(
    settings_raw: Mapping[str, Any] | None,
    now: datetime,
    *,
    practitioners: Iterable[StagedRow] = (),
    billable_items: Iterable[StagedRow] = (),
    medical_alerts: Iterable[StagedRow] = (),
    invoice_items: Iterable[StagedRow] = (),
    group_appointments: Iterable[StagedRow] = (),
    individual_appointments: Iterable[StagedRow] = (),
) -> MappingContext:
    """A context from the account settings and the staged rows other records borrow from.

    Rows that cannot be read are listed in `problems` instead of raising.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    settings = _dict(settings_raw)
    zone = resolve_zone(_dict(settings.get("account")).get("time_zone"))
    problems: list[ContextProblem] = []

    def problem(row: StagedRow, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, f.Malformed) else type(exc).__name__
        problems.append(ContextProblem(str(row.resource), f.safe_source_id(row), reason))

    def raw_of(row: StagedRow) -> Mapping[str, Any]:
        if not isinstance(row.raw, Mapping):
            raise f.Malformed("raw", "the record is not a JSON object")
        return row.raw

    names: dict[str, str] = {}
    for row in practitioners:
        try:
            name = practitioner_display_name(raw_of(row))
            if name:
                names[f.canonical_id(row.id)] = name
        except Exception as exc:
            problem(row, exc)

    prices: dict[str, Decimal] = {}
    for row in billable_items:
        try:
            price = f.decimal(raw_of(row), "price")
            if price is not None:
                prices[f.canonical_id(row.id)] = price
        except Exception as exc:
            problem(row, exc)

    alerts: defaultdict[str, list[tuple[tuple[str, int, str], str]]] = defaultdict(list)
    for row in medical_alerts:
        try:
            raw = raw_of(row)
            if f.is_deleted(row, raw):
                continue
            patient_id = f.ref_id(row, "patient")
            name = f.text(raw, "name")
            if patient_id is None:
                raise f.Malformed("patient", "is missing")
            if name is None:
                raise f.Malformed("name", "is missing")
            alerts[patient_id].append((_order_key(row), name))
        except Exception as exc:
            problem(row, exc)

    items: defaultdict[str, list[StagedRow]] = defaultdict(list)
    for row in invoice_items:
        try:
            raw_of(row)
            invoice_id = f.ref_id(row, "invoice")
            if invoice_id is None:
                raise f.Malformed("invoice", "is missing")
            items[invoice_id].append(row)
        except Exception as exc:
            problem(row, exc)

    groups: dict[str, datetime | None] = {}
    for row in group_appointments:
        try:
            groups[f.canonical_id(row.id)] = f.timestamp(raw_of(row), "starts_at")
        except f.Malformed as exc:
            groups[f.safe_source_id(row)] = None
            problem(row, exc)
        except Exception as exc:
            problem(row, exc)

    individual: set[str] = set()
    for row in individual_appointments:
        try:
            individual.add(f.canonical_id(row.id))
        except Exception as exc:
            problem(row, exc)

    return MappingContext(
        time_zone=zone.iana,
        time_zone_known=zone.known,
        time_zone_source=zone.source,
        now=now,
        custom_fields=parse_custom_field_definitions(
            settings.get("patient_custom_fields_definition")
        ),
        practitioner_names=names,
        billable_item_prices=prices,
        medical_alerts={
            pid: tuple(name for _, name in sorted(entries)) for pid, entries in alerts.items()
        },
        invoice_items={iid: tuple(sorted(rows, key=_order_key)) for iid, rows in items.items()},
        group_appointment_starts=groups,
        individual_appointment_ids=frozenset(individual),
        problems=tuple(problems),
    )


__all__ = [
    "ContextProblem",
    "CustomFieldDef",
    "CustomFieldDefinitions",
    "MappingContext",
    "build_context",
    "parse_custom_field_definitions",
    "practitioner_display_name",
]
