"""Mapping: pure functions, one staged Cliniko record -> one clinic record, or a skip.

Nothing here does I/O or logs. Every mapping function takes `(StagedRow, MappingContext)` and
returns `Mapped` or `Skip`; it never raises on bad data.

    ctx = build_context(settings_raw, now, invoice_items=..., medical_alerts=..., ...)
    result = map_row(row, ctx)   # None for resources that are context only
"""

from __future__ import annotations

from collections.abc import Callable

from engine.mapping.context import MappingContext, build_context
from engine.mapping.diary import map_appointment, map_attendance, map_group_appointment
from engine.mapping.money import map_invoice, patient_balance_rule
from engine.mapping.notes import map_treatment_note
from engine.mapping.people import map_patient
from engine.mapping.records import RECORD_TYPES, Kind, Mapped, MapResult, Skip
from engine.mapping.setup import map_location, map_practitioner, map_service
from engine.mapping.staged import StagedRow
from engine.mapping.text import fold_name

MapFunction = Callable[[StagedRow, MappingContext], MapResult]

MAPPERS: dict[Kind, MapFunction] = {
    "location": map_location,
    "practitioner": map_practitioner,
    "service": map_service,
    "patient": map_patient,
    "appointment": map_appointment,
    "group_appointment": map_group_appointment,
    "attendance": map_attendance,
    "treatment_note": map_treatment_note,
    "invoice": map_invoice,
}
"""Clinic kind -> its mapping function."""

RESOURCE_KINDS: dict[str, Kind] = {
    "businesses": "location",
    "practitioners": "practitioner",
    "appointment_types": "service",
    "patients": "patient",
    "individual_appointments": "appointment",
    "group_appointments": "group_appointment",
    "attendees": "attendance",
    "treatment_notes": "treatment_note",
    "invoices": "invoice",
}
"""Staged resource -> the clinic kind it becomes. Other staged resources (invoice_items,
medical_alerts, billable_items, settings, ...) only feed the context."""

KINDS_IN_ORDER: tuple[Kind, ...] = (
    "location",
    "practitioner",
    "service",
    "patient",
    "appointment",
    "group_appointment",
    "attendance",
    "treatment_note",
    "invoice",
)
"""An order in which every ref points to a kind loaded earlier."""


def map_row(row: StagedRow, ctx: MappingContext) -> MapResult | None:
    """Map a staged row by its resource; None when the resource has no clinic kind."""
    kind = RESOURCE_KINDS.get(row.resource)
    return None if kind is None else MAPPERS[kind](row, ctx)


__all__ = [
    "KINDS_IN_ORDER",
    "MAPPERS",
    "RECORD_TYPES",
    "RESOURCE_KINDS",
    "MapResult",
    "Mapped",
    "MappingContext",
    "Skip",
    "StagedRow",
    "build_context",
    "fold_name",
    "map_row",
    "patient_balance_rule",
]
