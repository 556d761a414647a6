"""The MyNewClinic clinic store's schema: the catalogue of tables, and its migrations.

Two views of one schema:

- `TABLES`, the catalogue of the *current* version: each table's columns with their logical
  type (`integer`, `text`, `boolean`, `decimal`, `date`, `timestamp`, `json`), nullability and
  references. Backends convert values by it, and validate table and column names against it.
  The clinic record columns are exactly the fields of `engine.mapping.records` (this package
  does not import the engine; tests hold the two together), plus `id`, `created_at`,
  `updated_at` and one `<kind>_id` column per record a row points to.
- `MIGRATIONS`, the SQL that gets an SQLite store from one version to the next. A migration is
  never edited once released: a change is a new migration plus the matching catalogue edit
  (tests check that migrating an empty file from scratch yields exactly the catalogue).

How SQLite holds values (PostgreSQL uses NUMERIC, TIMESTAMPTZ, DATE, JSONB and BOOLEAN, in
migrations of the same versions written for it: `target.pg_schema`): decimals, dates,
timestamps and JSON are TEXT (declared `DECIMAL_TEXT`, `DATE_TEXT`, `TIMESTAMP_TEXT`,
`JSON_TEXT`: TEXT affinity, so "81.80" stays "81.80" and never becomes a float); timestamps
are UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so text order is time order); booleans
are 0/1. The `patient_balances` view adds money up in integer millionths, so the store
refuses decimals finer than 0.000001 or larger than DECIMAL_LIMIT (both stores do).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

ColumnType = Literal["integer", "text", "boolean", "decimal", "date", "timestamp", "json"]

SQLITE_TYPES: dict[ColumnType, str] = {
    "integer": "INTEGER",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "decimal": "DECIMAL_TEXT",
    "date": "DATE_TEXT",
    "timestamp": "TIMESTAMP_TEXT",
    "json": "JSON_TEXT",
}

DECIMAL_PLACES = 6
"""The finest decimal the SQLite store keeps exactly in sums (the balance view's unit)."""
DECIMAL_LIMIT = Decimal(10) ** 9
"""Decimals must be smaller than this in magnitude (sums stay exact in a double)."""

APPLICATION_ID = 0x4D4E4331
"""SQLite header `application_id` of a clinic store ("MNC1"): tells it from other files."""

APPOINTMENT_STATUSES = ("booked", "completed", "cancelled", "did_not_arrive")
INVOICE_STATUSES = ("open", "paid", "closed", "credit", "void")
"""The import writes the first four; `void` is the clinic's own (a voided invoice owes nothing)."""
OUTSTANDING_BASES = ("status_paid", "status_closed", "status_open", "status_credit", "amount_field")
RUN_MODES = ("plan", "load")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    references: str | None = None
    """A table whose `id` this column holds (a foreign key)."""
    choices: tuple[str, ...] | None = None
    """Allowed values (a CHECK constraint)."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    clinic: bool = True
    """A table of clinic data (False: the import's own bookkeeping)."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _col(name: str, type_: ColumnType, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


def _text(name: str) -> Column:
    return Column(name, "text", True)


def _fk(table: str, name: str, nullable: bool = True) -> Column:
    return Column(name, "integer", nullable, references=table)


_ID = Column("id", "integer", False)
_STAMPS = (Column("created_at", "timestamp", False), Column("updated_at", "timestamp", False))


def _table(
    name: str,
    *columns: Column,
    unique: tuple[tuple[str, ...], ...] = (),
    indexes: tuple[tuple[str, ...], ...] = (),
    clinic: bool = True,
    stamps: bool = True,
) -> Table:
    cols = (_ID, *columns, *(_STAMPS if stamps else ()))
    # Every foreign key gets an index (SQLite scans the child table on a parent delete),
    # unless an explicit index already leads with it.
    led = {ix[0] for ix in indexes}
    fk_indexes = tuple((c.name,) for c in columns if c.references and c.name not in led)
    return Table(name, cols, unique, fk_indexes + indexes, clinic)


# --- the catalogue (current version) -------------------------------------------------------

LOCATIONS = _table(
    "locations",
    _col("name", "text", False),
    _text("legal_name"),
    _text("address_1"),
    _text("address_2"),
    _text("city"),
    _text("state"),
    _text("post_code"),
    _text("country"),
    _text("country_code"),
    _text("contact_information"),
    _text("email"),
    _text("website"),
    _text("registration_label"),
    _text("registration_value"),
    _col("time_zone", "text", False),
)

PRACTITIONERS = _table(
    "practitioners",
    _text("title"),
    _text("first_name"),
    _text("last_name"),
    _col("display_name", "text", False),
    _text("designation"),
    _text("description"),
    _col("active", "boolean", False),
    _col("match_name", "text", False),
    indexes=(("match_name",),),
)

SERVICES = _table(
    "services",
    _col("name", "text", False),
    _text("description"),
    _text("category"),
    _text("color"),
    _col("duration_minutes", "integer"),
    _col("max_attendees", "integer"),
    _col("archived", "boolean", False),
    _col("archived_at", "timestamp"),
    _col("match_name", "text", False),
    _col("default_price", "decimal"),
    indexes=(("match_name",),),
)

PATIENTS = _table(
    "patients",
    _text("title"),
    _text("first_name"),
    _text("last_name"),
    _text("preferred_name"),
    _col("date_of_birth", "date"),
    _text("sex"),
    _text("gender_identity"),
    _text("gender_legacy"),
    _text("email"),
    _col("phones", "json", False),
    _text("address_1"),
    _text("address_2"),
    _text("address_3"),
    _text("city"),
    _text("state"),
    _text("post_code"),
    _text("country"),
    _text("emergency_contact"),
    _text("occupation"),
    _text("notes"),
    _text("appointment_notes"),
    _text("medicare"),
    _text("medicare_reference_number"),
    _text("dva_card_number"),
    _text("old_reference_id"),
    _text("referral_source"),
    _text("invoice_default_to"),
    _text("invoice_email"),
    _text("invoice_extra_information"),
    _text("time_zone"),
    _col("archived", "boolean", False),
    _col("archived_at", "timestamp"),
    _text("merged_into"),
    _col("merged_at", "timestamp"),
    _col("custom_fields", "json", False),
    _col("medical_alerts", "json", False),
    _text("reminder_type"),
    _col("accepted_privacy_policy", "boolean"),
    _col("accepted_email_marketing", "boolean"),
    _col("accepted_sms_marketing", "boolean"),
    _col("match_key", "text", False),
    indexes=(("match_key",),),
)

APPOINTMENTS = _table(
    "appointments",
    _fk("patients", "patient_id", False),
    _fk("practitioners", "practitioner_id", False),
    _fk("services", "service_id"),
    _fk("locations", "location_id"),
    _col("starts_at", "timestamp", False),
    _col("ends_at", "timestamp"),
    _col("time_zone", "text", False),
    _col("local_starts_at", "text", False),
    Column("status", "text", False, choices=APPOINTMENT_STATUSES),
    _col("cancellation_reason_code", "integer"),
    _text("cancellation_reason"),
    _text("cancellation_note"),
    _col("cancelled_at", "timestamp"),
    _text("notes"),
    _col("patient_arrived", "boolean", False),
    _col("is_upcoming", "boolean", False),
    _col("imported_history", "boolean", False),
    indexes=(("practitioner_id", "starts_at"),),
)

GROUP_APPOINTMENTS = _table(
    "group_appointments",
    _fk("practitioners", "practitioner_id", False),
    _fk("services", "service_id"),
    _fk("locations", "location_id"),
    _col("starts_at", "timestamp", False),
    _col("ends_at", "timestamp"),
    _col("time_zone", "text", False),
    _col("local_starts_at", "text", False),
    _col("max_attendees", "integer"),
    _text("notes"),
    _col("is_upcoming", "boolean", False),
    _col("imported_history", "boolean", False),
    indexes=(("practitioner_id", "starts_at"),),
)

GROUP_ATTENDANCES = _table(
    "group_attendances",
    _fk("group_appointments", "group_appointment_id", False),
    _fk("patients", "patient_id", False),
    Column("status", "text", False, choices=APPOINTMENT_STATUSES),
    _col("arrived", "boolean"),
    _col("cancellation_reason_code", "integer"),
    _text("cancellation_reason"),
    _text("cancellation_note"),
    _col("cancelled_at", "timestamp"),
    _text("notes"),
    _col("is_upcoming", "boolean", False),
    _col("imported_history", "boolean", False),
)

TREATMENT_NOTES = _table(
    "treatment_notes",
    _fk("patients", "patient_id", False),
    _fk("practitioners", "practitioner_id"),
    _fk("appointments", "appointment_id"),
    _fk("group_appointments", "group_appointment_id"),
    _text("title"),
    _col("written_at", "timestamp", False),
    _col("updated_at_source", "timestamp"),
    _text("author_name"),
    _col("body_text", "text", False),
    _col("content", "json"),
    _col("read_only", "boolean", False),
    _col("finalised", "boolean", False),
)

INVOICES = _table(
    "invoices",
    _fk("patients", "patient_id", False),
    _fk("practitioners", "practitioner_id"),
    _fk("locations", "location_id"),
    _fk("appointments", "appointment_id"),
    _text("number"),
    _col("issue_date", "date"),
    Column("status", "text", False, choices=INVOICE_STATUSES),
    _col("status_code", "integer", False),
    _col("total", "decimal", False),
    _col("net", "decimal"),
    _col("tax", "decimal"),
    _col("discount", "decimal"),
    _text("invoice_to"),
    _text("notes"),
    _text("patient_extra_information"),
    _col("closed_at", "timestamp"),
    _col("outstanding", "decimal", False),
    Column("outstanding_basis", "text", False, choices=OUTSTANDING_BASES),
    _col("settlement_amount", "decimal", False),
    _col("status_only_open", "boolean", False),
)

INVOICE_LINES = _table(
    "invoice_lines",
    _fk("invoices", "invoice_id", False),
    _col("source_id", "text", False),
    _col("position", "integer", False),
    _text("description"),
    _text("code"),
    _col("quantity", "decimal"),
    _col("unit_price", "decimal"),
    _col("discount_percentage", "decimal"),
    _col("discounted_amount", "decimal"),
    _col("net_price", "decimal"),
    _text("tax_name"),
    _col("tax_rate", "decimal"),
    _col("total_including_tax", "decimal"),
    _text("concession"),
)

SETTLEMENTS = _table(
    "settlements",
    _fk("invoices", "invoice_id"),
    _fk("patients", "patient_id", False),
    _col("amount", "decimal", False),
    _col("kind", "text", False),
)

CLINIC_SETTINGS = _table(
    "clinic_settings",
    _col("messaging_enabled", "boolean", False),
    _col("ai_enabled", "boolean", False),
    _text("clinic_time_zone"),
)

MESSAGE_OUTBOX = _table(
    "message_outbox",
    _fk("patients", "patient_id", False),
    _col("channel", "text", False),
    _col("template", "text", False),
    _col("payload", "json", False),
    _col("sent_at", "timestamp"),
)

IMPORT_RUNS = _table(
    "import_runs",
    _col("started_at", "timestamp", False),
    _col("finished_at", "timestamp"),
    _text("staging_path"),
    _col("source", "text", False),
    Column("mode", "text", False, choices=RUN_MODES),
    _text("outcome"),
    _col("counts", "json"),
    _col("verification", "json"),
    clinic=False,
    stamps=False,
)

IMPORT_LINKS = _table(
    "import_links",
    _col("source", "text", False),
    _col("kind", "text", False),
    _col("source_id", "text", False),
    _col("target_id", "integer", False),
    _col("source_hash", "text", False),
    _col("target_hash", "text", False),
    _fk("import_runs", "run_id"),
    unique=(("source", "kind", "source_id"),),
    clinic=False,
)

AUDIT_LOG = _table(
    "audit_log",
    _col("at", "timestamp", False),
    _fk("import_runs", "run_id"),
    _col("actor", "text", False),
    _col("action", "text", False),
    _text("kind"),
    _col("target_id", "integer"),
    _col("detail", "json"),
    clinic=False,
    stamps=False,
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        LOCATIONS,
        PRACTITIONERS,
        SERVICES,
        PATIENTS,
        APPOINTMENTS,
        GROUP_APPOINTMENTS,
        GROUP_ATTENDANCES,
        TREATMENT_NOTES,
        INVOICES,
        INVOICE_LINES,
        SETTLEMENTS,
        CLINIC_SETTINGS,
        MESSAGE_OUTBOX,
        IMPORT_RUNS,
        IMPORT_LINKS,
        AUDIT_LOG,
    )
}
"""Every table of the current schema, parents before children."""

VIEWS = ("patient_balances",)

KIND_TABLES: dict[str, str] = {
    "location": "locations",
    "practitioner": "practitioners",
    "service": "services",
    "patient": "patients",
    "appointment": "appointments",
    "group_appointment": "group_appointments",
    "attendance": "group_attendances",
    "treatment_note": "treatment_notes",
    "invoice": "invoices",
    "invoice_line": "invoice_lines",
}
"""The table each record kind of `engine.mapping.records` goes to. A record's ref to kind `k`
is the column `f"{k}_id"` (e.g. refs["patient"] -> `patient_id`)."""

DELETABLE_TABLES = frozenset({"invoice_lines"})
"""Child rows an import may replace; clinic records themselves are never deleted."""


# --- migrations ----------------------------------------------------------------------------


class Migration(NamedTuple):
    version: int
    description: str
    statements: tuple[str, ...]
    """SQLite statements, run in order inside the migration transaction."""


META_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMP_TEXT NOT NULL
)""",
)
"""The migration history table: created before the first migration, outside the catalogue."""

_V1: tuple[str, ...] = (
    """CREATE TABLE locations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    legal_name TEXT,
    address_1 TEXT,
    address_2 TEXT,
    city TEXT,
    state TEXT,
    post_code TEXT,
    country TEXT,
    country_code TEXT,
    contact_information TEXT,
    email TEXT,
    website TEXT,
    registration_label TEXT,
    registration_value TEXT,
    time_zone TEXT NOT NULL,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    """CREATE TABLE practitioners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT,
    first_name TEXT,
    last_name TEXT,
    display_name TEXT NOT NULL,
    designation TEXT,
    description TEXT,
    active BOOLEAN NOT NULL CHECK (active IN (0, 1)),
    match_name TEXT NOT NULL,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_practitioners_match_name ON practitioners (match_name)",
    """CREATE TABLE services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    category TEXT,
    color TEXT,
    duration_minutes INTEGER,
    max_attendees INTEGER,
    archived BOOLEAN NOT NULL CHECK (archived IN (0, 1)),
    archived_at TIMESTAMP_TEXT,
    match_name TEXT NOT NULL,
    default_price DECIMAL_TEXT,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_services_match_name ON services (match_name)",
    """CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT,
    first_name TEXT,
    last_name TEXT,
    preferred_name TEXT,
    date_of_birth DATE_TEXT,
    sex TEXT,
    gender_identity TEXT,
    gender_legacy TEXT,
    email TEXT,
    phones JSON_TEXT NOT NULL CHECK (phones IS NULL OR json_valid(phones)),
    address_1 TEXT,
    address_2 TEXT,
    address_3 TEXT,
    city TEXT,
    state TEXT,
    post_code TEXT,
    country TEXT,
    emergency_contact TEXT,
    occupation TEXT,
    notes TEXT,
    appointment_notes TEXT,
    medicare TEXT,
    medicare_reference_number TEXT,
    dva_card_number TEXT,
    old_reference_id TEXT,
    referral_source TEXT,
    invoice_default_to TEXT,
    invoice_email TEXT,
    invoice_extra_information TEXT,
    time_zone TEXT,
    archived BOOLEAN NOT NULL CHECK (archived IN (0, 1)),
    archived_at TIMESTAMP_TEXT,
    merged_into TEXT,
    merged_at TIMESTAMP_TEXT,
    custom_fields JSON_TEXT NOT NULL CHECK (custom_fields IS NULL OR json_valid(custom_fields)),
    medical_alerts JSON_TEXT NOT NULL CHECK (medical_alerts IS NULL OR json_valid(medical_alerts)),
    reminder_type TEXT,
    accepted_privacy_policy BOOLEAN CHECK (accepted_privacy_policy IN (0, 1)),
    accepted_email_marketing BOOLEAN CHECK (accepted_email_marketing IN (0, 1)),
    accepted_sms_marketing BOOLEAN CHECK (accepted_sms_marketing IN (0, 1)),
    match_key TEXT NOT NULL,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_patients_match_key ON patients (match_key)",
    """CREATE TABLE appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    practitioner_id INTEGER NOT NULL REFERENCES practitioners (id),
    service_id INTEGER REFERENCES services (id),
    location_id INTEGER REFERENCES locations (id),
    starts_at TIMESTAMP_TEXT NOT NULL,
    ends_at TIMESTAMP_TEXT,
    time_zone TEXT NOT NULL,
    local_starts_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'completed', 'cancelled', 'did_not_arrive')),
    cancellation_reason_code INTEGER,
    cancellation_reason TEXT,
    cancellation_note TEXT,
    cancelled_at TIMESTAMP_TEXT,
    notes TEXT,
    patient_arrived BOOLEAN NOT NULL CHECK (patient_arrived IN (0, 1)),
    is_upcoming BOOLEAN NOT NULL CHECK (is_upcoming IN (0, 1)),
    imported_history BOOLEAN NOT NULL DEFAULT 0 CHECK (imported_history IN (0, 1)),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_appointments_patient_id ON appointments (patient_id)",
    "CREATE INDEX ix_appointments_service_id ON appointments (service_id)",
    "CREATE INDEX ix_appointments_location_id ON appointments (location_id)",
    """CREATE INDEX ix_appointments_practitioner_id_starts_at
    ON appointments (practitioner_id, starts_at)""",
    """CREATE TABLE group_appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    practitioner_id INTEGER NOT NULL REFERENCES practitioners (id),
    service_id INTEGER REFERENCES services (id),
    location_id INTEGER REFERENCES locations (id),
    starts_at TIMESTAMP_TEXT NOT NULL,
    ends_at TIMESTAMP_TEXT,
    time_zone TEXT NOT NULL,
    local_starts_at TEXT NOT NULL,
    max_attendees INTEGER,
    notes TEXT,
    is_upcoming BOOLEAN NOT NULL CHECK (is_upcoming IN (0, 1)),
    imported_history BOOLEAN NOT NULL DEFAULT 0 CHECK (imported_history IN (0, 1)),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_group_appointments_service_id ON group_appointments (service_id)",
    "CREATE INDEX ix_group_appointments_location_id ON group_appointments (location_id)",
    """CREATE INDEX ix_group_appointments_practitioner_id_starts_at
    ON group_appointments (practitioner_id, starts_at)""",
    """CREATE TABLE group_attendances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_appointment_id INTEGER NOT NULL REFERENCES group_appointments (id),
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    status TEXT NOT NULL CHECK (status IN ('booked', 'completed', 'cancelled', 'did_not_arrive')),
    arrived BOOLEAN CHECK (arrived IN (0, 1)),
    cancellation_reason_code INTEGER,
    cancellation_reason TEXT,
    cancellation_note TEXT,
    cancelled_at TIMESTAMP_TEXT,
    notes TEXT,
    is_upcoming BOOLEAN NOT NULL CHECK (is_upcoming IN (0, 1)),
    imported_history BOOLEAN NOT NULL DEFAULT 0 CHECK (imported_history IN (0, 1)),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    """CREATE INDEX ix_group_attendances_group_appointment_id
    ON group_attendances (group_appointment_id)""",
    "CREATE INDEX ix_group_attendances_patient_id ON group_attendances (patient_id)",
    """CREATE TABLE treatment_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    practitioner_id INTEGER REFERENCES practitioners (id),
    appointment_id INTEGER REFERENCES appointments (id),
    group_appointment_id INTEGER REFERENCES group_appointments (id),
    title TEXT,
    written_at TIMESTAMP_TEXT NOT NULL,
    updated_at_source TIMESTAMP_TEXT,
    author_name TEXT,
    body_text TEXT NOT NULL,
    content JSON_TEXT CHECK (content IS NULL OR json_valid(content)),
    read_only BOOLEAN NOT NULL CHECK (read_only IN (0, 1)),
    finalised BOOLEAN NOT NULL CHECK (finalised IN (0, 1)),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_treatment_notes_patient_id ON treatment_notes (patient_id)",
    "CREATE INDEX ix_treatment_notes_practitioner_id ON treatment_notes (practitioner_id)",
    "CREATE INDEX ix_treatment_notes_appointment_id ON treatment_notes (appointment_id)",
    """CREATE INDEX ix_treatment_notes_group_appointment_id
    ON treatment_notes (group_appointment_id)""",
    """CREATE TABLE invoices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    practitioner_id INTEGER REFERENCES practitioners (id),
    location_id INTEGER REFERENCES locations (id),
    appointment_id INTEGER REFERENCES appointments (id),
    number TEXT,
    issue_date DATE_TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'closed', 'credit', 'void')),
    status_code INTEGER NOT NULL,
    total DECIMAL_TEXT NOT NULL,
    net DECIMAL_TEXT,
    tax DECIMAL_TEXT,
    discount DECIMAL_TEXT,
    invoice_to TEXT,
    notes TEXT,
    patient_extra_information TEXT,
    closed_at TIMESTAMP_TEXT,
    outstanding DECIMAL_TEXT NOT NULL,
    outstanding_basis TEXT NOT NULL
        CHECK (outstanding_basis IN ('status_paid', 'status_closed', 'status_open',
                                     'status_credit', 'amount_field')),
    settlement_amount DECIMAL_TEXT NOT NULL,
    status_only_open BOOLEAN NOT NULL CHECK (status_only_open IN (0, 1)),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_invoices_patient_id ON invoices (patient_id)",
    "CREATE INDEX ix_invoices_practitioner_id ON invoices (practitioner_id)",
    "CREATE INDEX ix_invoices_location_id ON invoices (location_id)",
    "CREATE INDEX ix_invoices_appointment_id ON invoices (appointment_id)",
    """CREATE TABLE invoice_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id INTEGER NOT NULL REFERENCES invoices (id),
    source_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    description TEXT,
    code TEXT,
    quantity DECIMAL_TEXT,
    unit_price DECIMAL_TEXT,
    discount_percentage DECIMAL_TEXT,
    discounted_amount DECIMAL_TEXT,
    net_price DECIMAL_TEXT,
    tax_name TEXT,
    tax_rate DECIMAL_TEXT,
    total_including_tax DECIMAL_TEXT,
    concession TEXT,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_invoice_lines_invoice_id ON invoice_lines (invoice_id)",
    """CREATE TABLE settlements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id INTEGER REFERENCES invoices (id),
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    amount DECIMAL_TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_settlements_invoice_id ON settlements (invoice_id)",
    "CREATE INDEX ix_settlements_patient_id ON settlements (patient_id)",
    """CREATE TABLE clinic_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    messaging_enabled BOOLEAN NOT NULL DEFAULT 0 CHECK (messaging_enabled IN (0, 1)),
    ai_enabled BOOLEAN NOT NULL DEFAULT 0 CHECK (ai_enabled IN (0, 1)),
    clinic_time_zone TEXT,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    """CREATE TABLE message_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    channel TEXT NOT NULL,
    template TEXT NOT NULL,
    payload JSON_TEXT NOT NULL CHECK (payload IS NULL OR json_valid(payload)),
    sent_at TIMESTAMP_TEXT,
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL
)""",
    "CREATE INDEX ix_message_outbox_patient_id ON message_outbox (patient_id)",
    """CREATE TABLE import_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TIMESTAMP_TEXT NOT NULL,
    finished_at TIMESTAMP_TEXT,
    staging_path TEXT,
    source TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('plan', 'load')),
    outcome TEXT,
    counts JSON_TEXT CHECK (counts IS NULL OR json_valid(counts)),
    verification JSON_TEXT CHECK (verification IS NULL OR json_valid(verification))
)""",
    """CREATE TABLE import_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id INTEGER NOT NULL,
    source_hash TEXT NOT NULL,
    target_hash TEXT NOT NULL,
    run_id INTEGER REFERENCES import_runs (id),
    created_at TIMESTAMP_TEXT NOT NULL,
    updated_at TIMESTAMP_TEXT NOT NULL,
    UNIQUE (source, kind, source_id)
)""",
    "CREATE INDEX ix_import_links_run_id ON import_links (run_id)",
    """CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP_TEXT NOT NULL,
    run_id INTEGER REFERENCES import_runs (id),
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT,
    target_id INTEGER,
    detail JSON_TEXT CHECK (detail IS NULL OR json_valid(detail))
)""",
    "CREATE INDEX ix_audit_log_run_id ON audit_log (run_id)",
    # Balance = non-void invoice totals - settlements, summed in integer millionths so that
    # the sum is exact (decimals are TEXT in SQLite); `balance` is that sum as decimal text.
    # Every patient has a row (0 when nothing is owed). Credit invoices have negative totals.
    """CREATE VIEW patient_balances AS
SELECT
    patient_id,
    balance_micros,
    printf(
        '%s%d.%06d',
        CASE WHEN balance_micros < 0 THEN '-' ELSE '' END,
        abs(balance_micros) / 1000000,
        abs(balance_micros) % 1000000
    ) AS balance
FROM (
    SELECT p.id AS patient_id, coalesce(i.micros, 0) - coalesce(s.micros, 0) AS balance_micros
    FROM patients AS p
    LEFT JOIN (
        SELECT patient_id, sum(CAST(round(CAST(total AS REAL) * 1000000) AS INTEGER)) AS micros
        FROM invoices
        WHERE status <> 'void'
        GROUP BY patient_id
    ) AS i ON i.patient_id = p.id
    LEFT JOIN (
        SELECT patient_id, sum(CAST(round(CAST(amount AS REAL) * 1000000) AS INTEGER)) AS micros
        FROM settlements
        GROUP BY patient_id
    ) AS s ON s.patient_id = p.id
)""",
    # Messaging and AI stay off until the clinic goes live; the import never turns them on.
    """INSERT INTO clinic_settings (id, messaging_enabled, ai_enabled, created_at, updated_at)
VALUES (
    1, 0, 0,
    strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'),
    strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
)""",
)

MIGRATIONS: list[Migration] = [
    Migration(1, "the clinic store: clinic records, money, settings, outbox, import", _V1),
]

CURRENT_VERSION = MIGRATIONS[-1].version
