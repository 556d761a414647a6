"""The clinic record types that mapping produces (DESIGN.md section 5).

One class per clinic record kind. Field names are the SQL column names of the clinic store
(`target/` builds its tables from them), so they are snake_case and typed with what a column
can hold:

  str / int / bool          text, integer, boolean
  Decimal                   exact decimal (money, rates, quantities); never float
  date                      a calendar date
  datetime                  always timezone-aware UTC
  tuple[...] / dict         JSON (a list of small objects, or a structured document)
  tuple[InvoiceLine, ...]   a child table (`invoice_lines`), not a column

`X | None` means the column is nullable. Empty values from Cliniko (`""` and `null` alike) are
`None` for optional text, never `""`. `columns()` describes a record type in those terms so the
schema and the planner need not read type hints themselves.

Mapping returns `Mapped` (a record plus the Cliniko ids of the records it points to, by kind)
or `Skip` (a stable reason code and plain words that never contain patient data).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict, Union

Kind = Literal[
    "location",
    "practitioner",
    "service",
    "patient",
    "appointment",
    "group_appointment",
    "attendance",
    "treatment_note",
    "invoice",
]

AppointmentStatus = Literal["booked", "completed", "cancelled", "did_not_arrive"]
InvoiceStatus = Literal["open", "paid", "closed", "credit"]
OutstandingBasis = Literal[
    "status_paid", "status_closed", "status_open", "status_credit", "amount_field"
]


class PhoneNumber(TypedDict):
    type: str | None
    """As Cliniko labels it: "Mobile", "Home", ... (None when unlabelled)."""
    number: str


class CustomFieldValue(TypedDict):
    section: str
    name: str
    type: str
    """text, paragraph, checkboxes, radiobuttons or date (Cliniko's custom field types)."""
    value_text: str
    """The answer as readable text (selected options joined with ", ", "Other: ..." etc.)."""
    archived: bool
    """The field (or its section) is archived in Cliniko's settings; the answer is kept."""


# --- clinic set-up -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """A clinic location, from a Cliniko business."""

    name: str
    legal_name: str | None
    address_1: str | None
    address_2: str | None
    city: str | None
    state: str | None
    post_code: str | None
    country: str | None
    country_code: str | None
    contact_information: str | None
    email: str | None
    website: str | None
    registration_label: str | None
    registration_value: str | None
    time_zone: str
    """IANA zone of the account (Cliniko gives businesses no zone of their own)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Practitioner:
    title: str | None
    first_name: str | None
    last_name: str | None
    display_name: str
    designation: str | None
    description: str | None
    active: bool
    """False when Cliniko lists the practitioner only as inactive."""
    match_name: str
    """fold_name(display_name): used to match an existing clinic practitioner by name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A clinic service, from a Cliniko appointment type."""

    name: str
    description: str | None
    category: str | None
    color: str | None
    duration_minutes: int | None
    max_attendees: int | None
    archived: bool
    archived_at: datetime | None
    match_name: str
    """fold_name(name): used to match an existing clinic service by name."""
    default_price: Decimal | None
    """Price of the appointment type's billable item, when that item was staged."""


# --- people --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    title: str | None
    first_name: str | None
    last_name: str | None
    preferred_name: str | None
    date_of_birth: date | None
    sex: str | None
    gender_identity: str | None
    gender_legacy: str | None
    """Cliniko's deprecated `gender` field; older patients may have only this."""
    email: str | None
    phones: tuple[PhoneNumber, ...]
    address_1: str | None
    address_2: str | None
    address_3: str | None
    city: str | None
    state: str | None
    post_code: str | None
    country: str | None
    emergency_contact: str | None
    occupation: str | None
    notes: str | None
    appointment_notes: str | None
    medicare: str | None
    medicare_reference_number: str | None
    dva_card_number: str | None
    old_reference_id: str | None
    referral_source: str | None
    """Cliniko's legacy free-text referral source."""
    invoice_default_to: str | None
    invoice_email: str | None
    invoice_extra_information: str | None
    time_zone: str | None
    """The patient's own IANA zone, when Cliniko has one."""
    archived: bool
    archived_at: datetime | None
    merged_into: str | None
    """Cliniko id of the patient this duplicate was merged into (also in refs as
    `merged_into`); merged duplicates are imported archived, never skipped."""
    merged_at: datetime | None
    custom_fields: tuple[CustomFieldValue, ...]
    medical_alerts: tuple[str, ...]
    reminder_type: str | None
    accepted_privacy_policy: bool | None
    """None = never answered."""
    accepted_email_marketing: bool | None
    accepted_sms_marketing: bool | None
    match_key: str
    """fold(first) | fold(last) | ISO date of birth (empty when unknown)."""


# --- diary ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Appointment:
    """An individual appointment. Refs: patient, practitioner, service, location."""

    starts_at: datetime
    ends_at: datetime | None
    time_zone: str
    local_starts_at: str
    """starts_at in time_zone, ISO 8601 with offset, for display."""
    status: AppointmentStatus
    cancellation_reason_code: int | None
    cancellation_reason: str | None
    cancellation_note: str | None
    cancelled_at: datetime | None
    notes: str | None
    patient_arrived: bool
    is_upcoming: bool
    """starts_at >= the mapping context's `now`."""
    imported_history: bool
    """Always True: the load never sends reminders or other messages for imported rows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupAppointment:
    """A group class. Refs: practitioner, service, location."""

    starts_at: datetime
    ends_at: datetime | None
    time_zone: str
    local_starts_at: str
    max_attendees: int | None
    notes: str | None
    is_upcoming: bool
    imported_history: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Attendance:
    """One patient in a group appointment. Refs: patient, group_appointment."""

    status: AppointmentStatus
    arrived: bool | None
    """None = arrival never recorded."""
    cancellation_reason_code: int | None
    cancellation_reason: str | None
    cancellation_note: str | None
    cancelled_at: datetime | None
    notes: str | None
    is_upcoming: bool
    imported_history: bool


# --- clinical ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TreatmentNote:
    """A finalised treatment note. Refs: patient, practitioner, and appointment or
    group_appointment when Cliniko links the note to a booking."""

    title: str | None
    written_at: datetime
    """The note's original date (Cliniko's created_at)."""
    updated_at_source: datetime | None
    author_name: str | None
    body_text: str
    """Readable rendering: section names as headings, "Question: answer" lines."""
    content: dict[str, Any] | None
    """Cliniko's structured content, kept as JSON."""
    read_only: bool
    finalised: bool


# --- money ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLine:
    """One line of an invoice (child table `invoice_lines`)."""

    source_id: str
    """Cliniko id of the invoice item."""
    position: int
    """0-based order within the invoice (Cliniko created_at, then id)."""
    description: str | None
    code: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    discount_percentage: Decimal | None
    discounted_amount: Decimal | None
    net_price: Decimal | None
    tax_name: str | None
    tax_rate: Decimal | None
    total_including_tax: Decimal | None
    concession: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    """An invoice. Refs: patient, practitioner, location, appointment."""

    number: str | None
    """Cliniko's original invoice number, as text."""
    issue_date: date | None
    status: InvoiceStatus
    status_code: int
    total: Decimal
    net: Decimal | None
    tax: Decimal | None
    discount: Decimal | None
    invoice_to: str | None
    notes: str | None
    patient_extra_information: str | None
    closed_at: datetime | None
    lines: tuple[InvoiceLine, ...]
    outstanding: Decimal
    """What the patient still owes on this invoice (negative for credit)."""
    outstanding_basis: OutstandingBasis
    settlement_amount: Decimal
    """Reconciliation settlement the load records, so that total - settlement = outstanding."""
    status_only_open: bool
    """Open invoice whose balance rests on its status alone (may have been part-paid)."""


Record = Union[  # noqa: UP007 - a runtime alias, also used with isinstance()
    Location,
    Practitioner,
    Service,
    Patient,
    Appointment,
    GroupAppointment,
    Attendance,
    TreatmentNote,
    Invoice,
]

RECORD_TYPES: dict[Kind, type[Record]] = {
    "location": Location,
    "practitioner": Practitioner,
    "service": Service,
    "patient": Patient,
    "appointment": Appointment,
    "group_appointment": GroupAppointment,
    "attendance": Attendance,
    "treatment_note": TreatmentNote,
    "invoice": Invoice,
}


# --- mapping results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mapped:
    kind: Kind
    source_id: str
    """Cliniko id of the staged record (canonical decimal text)."""
    record: Record
    refs: dict[str, str]
    """Cliniko ids of the records this one points to, keyed by clinic kind (patient,
    practitioner, service, location, appointment, group_appointment) or `merged_into`.
    Only present links appear; the planner resolves them to clinic ids."""


SkipCode = Literal[
    "deleted_in_cliniko",
    "draft_note",
    "missing_start_time",
    "malformed_record",
    "covered_by_appointment",
    "unknown_booking",
]
"""Stable reason codes:
  deleted_in_cliniko       the record was deleted in Cliniko (for patients from
                           /patients/deleted Cliniko gives nothing but the id and the time)
  draft_note               a treatment note never finalised in Cliniko
  missing_start_time       an appointment (or group appointment) without a start time
  malformed_record         a field is missing, null where required, of the wrong type, or an
                           invalid date/code; the reason names the field, never its value
  covered_by_appointment   an attendee row of an individual appointment (the appointment
                           record carries its status)
  unknown_booking          an attendee whose booking was not staged as an appointment or
                           group appointment
"""


@dataclass(frozen=True, slots=True)
class Skip:
    kind: Kind
    source_id: str
    code: SkipCode
    reason: str
    """Plain words for the operator; never contains patient data."""


MapResult = Mapped | Skip


# --- column description --------------------------------------------------------------------

ColumnType = Literal["text", "integer", "boolean", "decimal", "date", "timestamp", "json", "child"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool


def _column_type(hint: Any) -> tuple[ColumnType, bool]:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        col, _ = _column_type(inner[0])
        return col, True
    if hint is InvoiceLine or (origin is tuple and args and args[0] is InvoiceLine):
        return "child", False
    if origin in (tuple, list, dict) or hint in (dict, list):
        return "json", False
    simple: dict[Any, ColumnType] = {
        bool: "boolean",
        int: "integer",
        Decimal: "decimal",
        datetime: "timestamp",
        date: "date",
        str: "text",
    }
    if hint in simple:
        return simple[hint], False
    if origin is Literal:
        return ("integer" if isinstance(args[0], int) else "text"), False
    raise TypeError(f"no column type for {hint!r}")


def columns(record_type: type[Record] | type[InvoiceLine]) -> tuple[Column, ...]:
    """The columns of a record type, in declaration order (`child` = a child table)."""
    hints = typing.get_type_hints(record_type)
    out = []
    for f in dataclasses.fields(record_type):
        col, nullable = _column_type(hints[f.name])
        out.append(Column(f.name, col, nullable))
    return tuple(out)
