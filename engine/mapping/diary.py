"""The diary: individual appointments, group appointments and group attendance.

Status of an individual appointment, first match wins:
  cancelled       `cancelled_at` set, or the row came from the cancelled list
  did_not_arrive  `did_not_arrive` is true
  booked          starts at or after the context's `now`
  completed       started before `now`

Attendees (one row per patient per booking) become `attendance` records only for group
appointments; an individual appointment's attendee row is covered by the appointment itself.
An attendee's status: cancelled as above; otherwise upcoming -> booked (unless `arrived` is
true: completed); past -> did_not_arrive when `arrived` is explicitly false, else completed
(`arrived` null means "not recorded", as an individual appointment's false `patient_arrived`
does not make it a no-show either).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from engine.mapping import fields as f
from engine.mapping.context import MappingContext
from engine.mapping.records import (
    Appointment,
    AppointmentStatus,
    Attendance,
    GroupAppointment,
    Kind,
    Mapped,
    MapResult,
    Skip,
)
from engine.mapping.staged import StagedRow

CANCELLATION_REASONS: dict[int, str] = {
    10: "Feeling better",
    20: "Condition worse",
    30: "Sick",
    31: "COVID-19 related",
    40: "Away",
    50: "Other",
    60: "Work",
}
"""Cliniko's documented cancellation reason codes. An undocumented code is kept with
Cliniko's own description text (or no label): the appointment is still a cancellation."""


def local_iso(moment: datetime, zone: str) -> str:
    """An aware instant as ISO 8601 local time with offset in an IANA zone."""
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).isoformat()


def _start(kind: Kind, row: StagedRow, source_id: str) -> datetime | Skip:
    start = f.timestamp(row.raw, "starts_at")
    if start is None:
        return Skip(kind, source_id, "missing_start_time", "Cliniko gives no start time")
    return start


def _end(raw: Mapping[str, Any], start: datetime) -> datetime | None:
    end = f.timestamp(raw, "ends_at")
    if end is not None and end < start:
        raise f.Malformed("ends_at", "is before starts_at")
    return end


def _cancelled(row: StagedRow, raw: Mapping[str, Any]) -> tuple[bool, datetime | None]:
    cancelled_at = f.timestamp(raw, "cancelled_at")
    by_list = row.state == "cancelled" or "cancelled" in f.variants_of(row)
    return cancelled_at is not None or by_list, cancelled_at


def _cancellation(raw: Mapping[str, Any]) -> tuple[int | None, str | None, str | None]:
    code = f.integer(raw, "cancellation_reason")
    label = f.text(raw, "cancellation_reason_description")
    if label is None and code is not None:
        label = CANCELLATION_REASONS.get(code)
    return code, label, f.text(raw, "cancellation_note")


def _refs(**ids: str | None) -> dict[str, str]:
    return {k: v for k, v in ids.items() if v is not None}


@f.guarded("appointment")
def map_appointment(row: StagedRow, ctx: MappingContext) -> MapResult:
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("appointment", source_id, "appointment")
    start = _start("appointment", row, source_id)
    if isinstance(start, Skip):
        return start
    end = _end(raw, start)
    patient = f.ref_id(row, "patient")
    if patient is None:
        raise f.Malformed("patient", "is missing")
    location = f.ref_id(row, "business")
    zone = ctx.zone_for_location(location)
    cancelled, cancelled_at = _cancelled(row, raw)
    did_not_arrive = f.flag(raw, "did_not_arrive", False)
    upcoming = start >= ctx.now
    status: AppointmentStatus
    if cancelled:
        status = "cancelled"
    elif did_not_arrive:
        status = "did_not_arrive"
    elif upcoming:
        status = "booked"
    else:
        status = "completed"
    code, label, note = _cancellation(raw)
    record = Appointment(
        starts_at=start,
        ends_at=end,
        time_zone=zone,
        local_starts_at=local_iso(start, zone),
        status=status,
        cancellation_reason_code=code,
        cancellation_reason=label,
        cancellation_note=note,
        cancelled_at=cancelled_at,
        notes=f.text(raw, "notes"),
        patient_arrived=bool(f.flag(raw, "patient_arrived", False)),
        is_upcoming=upcoming,
        imported_history=True,
    )
    refs = _refs(
        patient=patient,
        practitioner=f.ref_id(row, "practitioner"),
        service=f.ref_id(row, "appointment_type"),
        location=location,
    )
    return Mapped("appointment", source_id, record, refs)


@f.guarded("group_appointment")
def map_group_appointment(row: StagedRow, ctx: MappingContext) -> MapResult:
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("group_appointment", source_id, "group appointment")
    start = _start("group_appointment", row, source_id)
    if isinstance(start, Skip):
        return start
    location = f.ref_id(row, "business")
    zone = ctx.zone_for_location(location)
    record = GroupAppointment(
        starts_at=start,
        ends_at=_end(raw, start),
        time_zone=zone,
        local_starts_at=local_iso(start, zone),
        max_attendees=f.integer(raw, "max_attendees"),
        notes=f.text(raw, "notes"),
        is_upcoming=start >= ctx.now,
        imported_history=True,
    )
    refs = _refs(
        practitioner=f.ref_id(row, "practitioner"),
        service=f.ref_id(row, "appointment_type"),
        location=location,
    )
    return Mapped("group_appointment", source_id, record, refs)


@f.guarded("attendance")
def map_attendance(row: StagedRow, ctx: MappingContext) -> MapResult:
    """An attendee row: attendance at a group appointment, or a Skip."""
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("attendance", source_id, "attendee")
    booking = f.ref_id(row, "booking")
    if booking is None:
        raise f.Malformed("booking", "is missing")
    if booking not in ctx.group_appointment_starts:
        if booking in ctx.individual_appointment_ids:
            return Skip(
                "attendance",
                source_id,
                "covered_by_appointment",
                "attendee of an individual appointment; the appointment carries it",
            )
        return Skip(
            "attendance",
            source_id,
            "unknown_booking",
            "its booking was not staged as an appointment or a group appointment",
        )
    patient = f.ref_id(row, "patient")
    if patient is None:
        raise f.Malformed("patient", "is missing")
    start = ctx.group_appointment_starts[booking]
    upcoming = start is not None and start >= ctx.now
    arrived = f.flag(raw, "arrived")
    cancelled, cancelled_at = _cancelled(row, raw)
    status: AppointmentStatus
    if cancelled:
        status = "cancelled"
    elif f.flag(raw, "did_not_arrive", False):
        status = "did_not_arrive"
    elif arrived is True:
        status = "completed"
    elif upcoming or start is None:
        status = "booked"
    elif arrived is False:
        status = "did_not_arrive"
    else:
        status = "completed"
    code, label, note = _cancellation(raw)
    record = Attendance(
        status=status,
        arrived=arrived,
        cancellation_reason_code=code,
        cancellation_reason=label,
        cancellation_note=note,
        cancelled_at=cancelled_at,
        notes=f.text(raw, "notes"),
        is_upcoming=upcoming,
        imported_history=True,
    )
    return Mapped(
        "attendance", source_id, record, {"patient": patient, "group_appointment": booking}
    )
