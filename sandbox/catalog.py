"""What the sandbox serves: every Cliniko resource, its lists, filters, links and id types.

One `Spec` per resource drives the SQLite schema (`sandbox.schema`), the filters and sorting
(`sandbox.query`), the rendering of records (`sandbox.render`) and the generator.

Variant semantics (our decision; the documentation does not say, API-FACTS.md section 8):

- a default list (variant ``"active"``) excludes archived and deleted rows;
- ``/archived`` and ``/deleted`` list only archived (and not deleted) rows, resp. only deleted
  rows; a row both archived and deleted is only in ``/deleted``;
- a cancelled individual appointment or attendee is in BOTH the default list and
  ``/cancelled``; a deleted one (cancelled or not) is only in ``/deleted``;
- practitioners: the default list holds the active ones only, ``/inactive`` the inactive ones;
- appointment types: the default list excludes archived ones, ``/archived`` holds them;
- contacts carry ``deleted_at`` but have no deleted list: a deleted contact is in no list;
- ``practitioner_reference_numbers`` has no global list, only the per-practitioner one;
- ``referral_sources`` are keyed by their patient (no id, no timestamps); ``services`` have no
  id, no timestamps and no filters.

Each list's SQL predicate below is also the WHERE of a partial index, so a page of any variant
is read from an index (see `sandbox.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["datetime", "date", "int", "str"]
"""Filter types of API-FACTS.md section 4 (BigInt filters behave as `int`)."""

OPERATORS: Mapping[FieldType, tuple[str, ...]] = {
    "datetime": (">=", ">", "<=", "<"),
    "date": ("=", ">=", ">", "<=", "<"),
    "int": ("=", "!=", ">=", ">", "<=", "<"),
    "str": ("=", "!=", "~", "~~"),
}
TYPE_LABELS: Mapping[FieldType, str] = {
    "datetime": "DateTime",
    "date": "Date",
    "int": "Integer",
    "str": "String",
}

CANCELLATION_REASONS: Mapping[int, str] = {
    10: "Feeling better",
    20: "Condition worse",
    30: "Sick",
    31: "COVID-19 related",
    40: "Away",
    50: "Other",
    60: "Work",
}
INVOICE_STATUSES: Mapping[int, str] = {
    10: "Open",
    20: "Paid",
    30: "Closed",
    40: "Open (credit)",
}

_DT: FieldType = "datetime"
_INT: FieldType = "int"
_STR: FieldType = "str"
_DATE: FieldType = "date"
_STAMPS: dict[str, FieldType] = {"created_at": _DT, "updated_at": _DT}

_LIVE = "deleted_at IS NULL"
_DELETED = "deleted_at IS NOT NULL"
_WITH_DELETED = {"active": _LIVE, "deleted": _DELETED}


@dataclass(frozen=True)
class Spec:
    name: str
    code: int
    """Resource code inside generated snowflake ids (0..31): ids never collide across lists."""
    variants: Mapping[str, str]
    """List variant -> SQL predicate ("" = every row). Empty: no global list."""
    filters: Mapping[str, FieldType] = field(default_factory=dict)
    key: str = "id"
    """The SQL primary key (INTEGER). `id` for records with ids."""
    string_id: bool = False
    """`id` is rendered as a JSON string (as in the examples)."""
    refs: tuple[str, ...] = ()
    """Top-level keys holding one record link; the body stores the path ("/patients/1")."""
    ref_lists: tuple[str, ...] = ()
    """Top-level keys holding an array of record links."""
    collections: tuple[tuple[str, str], ...] = ()
    """(key, path template with {id}) of nested-list links, built at render time."""
    self_path: str | None = ""
    """Template of `links.self` ("" = /<name>/{id}; None = the record has no links)."""
    private: tuple[str, ...] = ()
    """Body keys kept for the store's own use, never rendered."""
    state_columns: tuple[str, ...] = ()
    """Columns the variant predicates read (besides filter columns)."""
    extra_columns: Mapping[str, FieldType] = field(default_factory=dict)
    """Indexed columns that are not public filters (e.g. the parent of a nested list)."""
    timestamps: bool = True

    @property
    def has_list(self) -> bool:
        return bool(self.variants)

    @property
    def has_id(self) -> bool:
        return self.key == "id"

    def columns(self) -> dict[str, str]:
        """Every SQL column but `body`: name -> SQL type, key first."""
        cols: dict[str, str] = {self.key: "INTEGER"}
        if self.timestamps:
            cols["created_at"] = "TEXT"
            cols["updated_at"] = "TEXT"
        typed = {**self.filters, **self.extra_columns}
        for name, ftype in typed.items():
            if name == self.key:
                continue
            cols[name] = "INTEGER" if ftype == "int" else "TEXT"
        for name in self.state_columns:
            cols.setdefault(name, "INTEGER" if name == "inactive" else "TEXT")
        return cols

    def sortable(self) -> frozenset[str]:
        cols = set(self.filters)
        if self.timestamps:
            cols.update(("created_at", "updated_at"))
        if self.has_id:
            cols.add("id")
        return frozenset(cols)

    def default_sort(self) -> tuple[str, ...]:
        return ("created_at",) if self.timestamps else ()

    def link_self(self, key: int) -> str | None:
        if self.self_path is None:
            return None
        template = self.self_path or f"/{self.name}/{{id}}"
        return template.format(id=key)


def _filters(**types: FieldType) -> dict[str, FieldType]:
    return {**_STAMPS, **types}


SPECS: tuple[Spec, ...] = (
    Spec(
        "businesses",
        1,
        {"active": ""},
        _filters(id=_STR),
        string_id=True,
        collections=(
            ("practitioners", "/businesses/{id}/practitioners"),
            ("appointments", "/businesses/{id}/appointments?page=1"),
        ),
    ),
    Spec(
        "practitioners",
        2,
        {"active": "inactive = 0", "inactive": "inactive = 1"},
        _filters(id=_STR, user_id=_INT),
        string_id=True,  # active ones only; see sandbox.render
        refs=("default_appointment_type", "user"),
        collections=(
            (
                "practitioner_reference_numbers",
                "/practitioners/{id}/practitioner_reference_numbers?page=1",
            ),
            ("appointments", "/practitioners/{id}/appointments?page=1"),
            ("invoices", "/practitioners/{id}/invoices?page=1"),
        ),
        private=("_inactive",),
        state_columns=("inactive",),
    ),
    Spec("users", 3, {"active": ""}, _filters(id=_INT)),
    Spec(
        "appointment_types",
        4,
        {"active": "archived_at IS NULL", "archived": "archived_at IS NOT NULL"},
        _filters(id=_STR),
        string_id=True,
        refs=("billable_item", "product", "treatment_note_template"),
        collections=(("practitioners", "/appointment_types/{id}/practitioners"),),
        state_columns=("archived_at",),
    ),
    Spec(
        "billable_items",
        5,
        {"active": ""},
        _filters(id=_INT, tax_id=_INT),
        refs=("tax",),
    ),
    Spec("taxes", 6, {"active": ""}, _filters(id=_INT), string_id=True),
    Spec("concession_types", 7, {"active": ""}, _filters(id=_INT)),
    Spec(
        "treatment_note_templates",
        8,
        _WITH_DELETED,
        _filters(id=_INT),
        state_columns=("deleted_at",),
    ),
    Spec(
        "referral_source_types",
        9,
        {"active": ""},
        _filters(id=_INT),
        refs=("referrers",),
    ),
    Spec(
        "services",
        10,
        {"active": ""},
        {},
        key="_k",
        refs=("appointment_type", "business"),
        ref_lists=("practitioners",),
        self_path=None,
        private=("_k",),
        timestamps=False,
    ),
    Spec(
        "practitioner_reference_numbers",
        11,
        {},
        {},
        refs=("business", "practitioner"),
        extra_columns={"practitioner_id": _INT},
    ),
    Spec(
        "patients",
        12,
        {
            "active": "archived_at IS NULL AND deleted_at IS NULL",
            "archived": "archived_at IS NOT NULL AND deleted_at IS NULL",
            "deleted": _DELETED,
        },
        _filters(
            date_of_birth=_DATE,
            email=_STR,
            first_name=_STR,
            id=_INT,
            last_name=_STR,
            old_reference_id=_STR,
        ),
        refs=("concession_type", "referring_doctor", "merged_with_patient"),
        collections=(
            ("medical_alerts", "/patients/{id}/medical_alerts?page=1"),
            ("invoices", "/patients/{id}/invoices?page=1"),
            ("appointments", "/patients/{id}/appointments?page=1"),
        ),
        state_columns=("archived_at", "deleted_at"),
    ),
    Spec(
        "contacts",
        13,
        {"active": _LIVE},
        _filters(email=_STR, first_name=_STR, id=_INT, last_name=_STR, type_code=_INT),
        state_columns=("deleted_at",),
    ),
    Spec(
        "medical_alerts",
        14,
        _WITH_DELETED,
        _filters(id=_INT, patient_id=_INT),
        refs=("patient",),
        state_columns=("deleted_at",),
    ),
    Spec(
        "patient_cases",
        15,
        {"active": ""},
        _filters(expiry_date=_DATE, id=_INT, patient_id=_INT),
        string_id=True,
        refs=("patient",),
        collections=(
            ("attendees", "/patient_cases/{id}/attendees"),
            ("bookings", "/patient_cases/{id}/bookings"),
            ("patient_attachments", "/patient_cases/{id}/patient_attachments"),
            ("invoices", "/patient_cases/{id}/invoices"),
        ),
    ),
    Spec(
        "referral_sources",
        16,
        {"active": ""},
        {},
        key="patient_id",
        refs=("referrer", "patient", "referral_source_type"),
        self_path="/patients/{id}/referral_source",
        timestamps=False,
    ),
    Spec(
        "individual_appointments",
        17,
        {
            "active": _LIVE,
            "cancelled": "cancelled_at IS NOT NULL AND deleted_at IS NULL",
            "deleted": _DELETED,
        },
        _filters(
            appointment_type_id=_INT,
            archived_at=_DT,
            business_id=_INT,
            cancelled_at=_DT,
            ends_at=_DT,
            id=_INT,
            patient_id=_INT,
            practitioner_id=_INT,
            repeated_from_id=_INT,
            starts_at=_DT,
        ),
        refs=("appointment_type", "business", "practitioner", "patient"),
        collections=(
            ("conflicts", "/individual_appointments/{id}/conflicts"),
            ("attendees", "/individual_appointments/{id}/attendees"),
        ),
        state_columns=("deleted_at",),
    ),
    Spec(
        "group_appointments",
        18,
        _WITH_DELETED,
        _filters(
            appointment_type_id=_INT,
            archived_at=_DT,
            business_id=_INT,
            ends_at=_DT,
            id=_INT,
            practitioner_id=_INT,
            repeated_from_id=_INT,
            starts_at=_DT,
        ),
        refs=("appointment_type", "business", "practitioner"),
        collections=(
            ("conflicts", "/group_appointments/{id}/conflicts"),
            ("attendees", "/group_appointments/{id}/attendees"),
        ),
        state_columns=("deleted_at",),
    ),
    Spec(
        "attendees",
        19,
        {
            "active": _LIVE,
            "cancelled": "cancelled_at IS NOT NULL AND deleted_at IS NULL",
            "deleted": _DELETED,
        },
        _filters(booking_id=_INT, id=_INT, patient_id=_INT),
        refs=("booking", "patient"),
        collections=(("invoices", "/attendees/{id}/invoices"),),
        state_columns=("deleted_at", "cancelled_at"),
    ),
    Spec(
        "unavailable_blocks",
        20,
        _WITH_DELETED,
        _filters(
            archived_at=_DT,
            business_id=_INT,
            ends_at=_DT,
            id=_INT,
            practitioner_id=_INT,
            repeated_from_id=_INT,
            starts_at=_DT,
        ),
        refs=("business", "practitioner"),
        collections=(("conflicts", "/unavailable_blocks/{id}/conflicts"),),
        state_columns=("deleted_at",),
    ),
    Spec(
        "treatment_notes",
        21,
        _WITH_DELETED,
        # Every treatment-note filter but the timestamps is typed String (API-FACTS 9.10).
        _filters(
            attendee_id=_STR,
            booking_id=_STR,
            id=_STR,
            patient_id=_STR,
            practitioner_id=_STR,
            treatment_note_template_id=_STR,
        ),
        refs=("patient", "practitioner", "treatment_note_template"),
        private=("_booking_id", "_attendee_id"),
        state_columns=("deleted_at",),
    ),
    Spec(
        "invoices",
        22,
        _WITH_DELETED,
        _filters(
            appointment_id=_INT,
            business_id=_INT,
            id=_INT,
            issue_date=_DATE,
            number=_INT,
            patient_id=_INT,
            practitioner_id=_INT,
            status=_INT,
        ),
        refs=("appointment", "business", "practitioner", "patient"),
        private=("_paid",),
        state_columns=("deleted_at",),
    ),
    Spec(
        "invoice_items",
        23,
        _WITH_DELETED,
        _filters(id=_INT, invoice_id=_INT),
        refs=("billable_item", "product", "invoice"),
        state_columns=("deleted_at",),
    ),
    Spec(
        "patient_attachments",
        24,
        {"active": ""},
        _filters(
            content_type=_STR,
            description=_STR,
            filename=_STR,
            id=_INT,
            patient_id=_INT,
            size=_INT,
            user_id=_INT,
        ),
        refs=("patient", "user"),
        collections=(("content", "/patient_attachments/{id}/content"),),
    ),
)

BY_NAME: Mapping[str, Spec] = {s.name: s for s in SPECS}

LISTS: tuple[tuple[str, str], ...] = tuple((s.name, v) for s in SPECS for v in s.variants)
"""Every (resource, variant) list the sandbox serves, in catalogue order."""

# Resources whose records can be archived (`archive`/`unarchive`); practitioners are made
# inactive/active again.
ARCHIVABLE = frozenset({"patients", "appointment_types", "practitioners"})
CANCELLABLE = frozenset({"individual_appointments", "attendees"})


def spec(resource: str) -> Spec:
    try:
        return BY_NAME[resource]
    except KeyError:
        raise KeyError(resource) from None
