"""The catalogue of what is downloaded from Cliniko (DESIGN.md section 3a).

Every list is crawled in full with each of its variants; results are merged by id and the
variants each row came from are recorded. Nothing here does I/O: the extract engine, the
staging schema, the preview and the TUI's selection screen all read this one table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Variant = Literal["active", "archived", "deleted", "cancelled", "inactive"]

# How a list can be walked without gaps while it changes underneath us:
#   "id"         - the list has an Integer `id` filter: keyset on `id:>cursor`, sort=id.
#   "created_at" - `id` is typed String (no `>`), so keyset on `created_at:>=cursor`, sort
#                  created_at,id, deduplicating the boundary rows.
#   None         - no usable filter at all (services, referral_sources): page numbers.
KeysetField = Literal["id", "created_at"] | None

# How a staged row's primary key is found.
#   "id"           - the record's own `id`.
#   "patient_link" - referral_sources: no id of their own; keyed by the patient they belong to.
#   "composite"    - services: no id; keyed by business and appointment type.
KeyFrom = Literal["id", "patient_link", "composite"]


@dataclass(frozen=True)
class Resource:
    name: str
    """Table name in staging, and the key of the list in Cliniko's JSON."""
    path: str
    """List path below /v1, e.g. "/patients"."""
    part: str
    """The selection part this resource belongs to (see PARTS)."""
    variants: tuple[Variant, ...] = ("active",)
    """`active` is the default list; every other variant is `<path>/<variant>`."""
    refs: tuple[str, ...] = ()
    """Keys holding record links; staged as `<ref>_id` columns."""
    keyset: KeysetField = "id"
    incremental: bool = True
    """Has an `updated_at` filter, so a top-up costs requests in proportion to what changed."""
    key_from: KeyFrom = "id"
    per_parent: str | None = None
    """Only reachable below each row of another resource (no global list)."""
    single: bool = False
    """Not a list: one object (`/user`, `/settings`)."""

    def variant_path(self, variant: Variant) -> str:
        return self.path if variant == "active" else f"{self.path}/{variant}"


@dataclass(frozen=True)
class Part:
    """A tick box on the selection screen: one part of the clinic's record."""

    name: str
    label: str
    resources: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    why: str = ""
    """Why the dependencies are needed, shown next to the tick box."""
    resources_for_download: tuple[str, ...] = field(default=())


RESOURCES: tuple[Resource, ...] = (
    # account: the cheap connection check and the account's settings.
    Resource("user", "/user", "account", single=True, keyset=None, incremental=False),
    Resource("settings", "/settings", "account", single=True, keyset=None, incremental=False),
    # clinic set-up
    Resource("businesses", "/businesses", "practitioners", keyset="created_at"),
    Resource(
        "practitioners",
        "/practitioners",
        "practitioners",
        variants=("active", "inactive"),
        refs=("default_appointment_type", "user"),
        keyset="created_at",
    ),
    Resource("users", "/users", "practitioners"),
    Resource(
        "appointment_types",
        "/appointment_types",
        "practitioners",
        variants=("active", "archived"),
        refs=("billable_item", "product", "treatment_note_template"),
        keyset="created_at",
    ),
    Resource(
        "services",
        "/services",
        "practitioners",
        refs=("business", "appointment_type"),
        keyset=None,
        incremental=False,
        key_from="composite",
    ),
    Resource(
        "practitioner_reference_numbers",
        "/practitioner_reference_numbers",
        "practitioners",
        refs=("business", "practitioner"),
        keyset=None,
        incremental=False,
        per_parent="practitioners",
    ),
    Resource("billable_items", "/billable_items", "invoices", refs=("tax",)),
    Resource("taxes", "/taxes", "invoices"),
    Resource("concession_types", "/concession_types", "patients"),
    Resource(
        "treatment_note_templates",
        "/treatment_note_templates",
        "treatment_notes",
        variants=("active", "deleted"),
    ),
    Resource("referral_source_types", "/referral_source_types", "patients"),
    # people
    Resource(
        "patients",
        "/patients",
        "patients",
        variants=("active", "archived", "deleted"),
        refs=("concession_type", "referring_doctor", "merged_with_patient"),
    ),
    Resource("contacts", "/contacts", "patients"),
    Resource(
        "medical_alerts",
        "/medical_alerts",
        "patients",
        variants=("active", "deleted"),
        refs=("patient",),
    ),
    Resource("patient_cases", "/patient_cases", "patients", refs=("patient",)),
    Resource(
        "referral_sources",
        "/referral_sources",
        "patients",
        refs=("patient", "referral_source_type", "referrer"),
        keyset=None,
        incremental=False,
        key_from="patient_link",
    ),
    # diary
    Resource(
        "individual_appointments",
        "/individual_appointments",
        "appointments",
        variants=("active", "cancelled", "deleted"),
        refs=("patient", "practitioner", "appointment_type", "business"),
    ),
    Resource(
        "group_appointments",
        "/group_appointments",
        "appointments",
        variants=("active", "deleted"),
        refs=("practitioner", "appointment_type", "business"),
    ),
    Resource(
        "attendees",
        "/attendees",
        "appointments",
        variants=("active", "cancelled", "deleted"),
        refs=("booking", "patient"),
    ),
    Resource(
        "unavailable_blocks",
        "/unavailable_blocks",
        "unavailable_blocks",
        variants=("active", "deleted"),
        refs=("business", "practitioner"),
    ),
    # clinical: every treatment-note filter is typed String, so no `id:>` keyset.
    Resource(
        "treatment_notes",
        "/treatment_notes",
        "treatment_notes",
        variants=("active", "deleted"),
        refs=("patient", "practitioner", "treatment_note_template", "booking"),
        keyset="created_at",
    ),
    # money
    Resource(
        "invoices",
        "/invoices",
        "invoices",
        variants=("active", "deleted"),
        refs=("patient", "practitioner", "business", "appointment"),
    ),
    Resource(
        "invoice_items",
        "/invoice_items",
        "invoices",
        variants=("active", "deleted"),
        refs=("invoice", "billable_item", "product"),
    ),
    # files: metadata only; file contents are a later, separate phase.
    Resource(
        "patient_attachments",
        "/patient_attachments",
        "attachments",
        refs=("patient", "user"),
    ),
)

BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}

PARTS: tuple[Part, ...] = (
    Part(
        "patients",
        "Patients (details, contacts, medical alerts, cases, referral sources)",
        resources=tuple(r.name for r in RESOURCES if r.part == "patients"),
    ),
    Part(
        "practitioners",
        "Practitioners, locations and services (appointment types)",
        resources=tuple(r.name for r in RESOURCES if r.part == "practitioners"),
    ),
    Part(
        "upcoming_appointments",
        "Upcoming appointments",
        resources=tuple(r.name for r in RESOURCES if r.part == "appointments"),
        depends_on=("patients", "practitioners"),
        why="an appointment needs its patient, practitioner and service",
    ),
    Part(
        "appointment_history",
        "Appointment history (completed, cancelled, no-shows)",
        resources=tuple(r.name for r in RESOURCES if r.part == "appointments"),
        depends_on=("patients", "practitioners"),
        why="an appointment needs its patient, practitioner and service",
    ),
    Part(
        "treatment_notes",
        "Treatment notes (finalised)",
        resources=tuple(r.name for r in RESOURCES if r.part == "treatment_notes"),
        depends_on=("patients", "practitioners"),
        why="a note belongs to a patient and keeps its author",
    ),
    Part(
        "invoices",
        "Invoices, line items and balances",
        resources=tuple(r.name for r in RESOURCES if r.part == "invoices"),
        depends_on=("patients", "practitioners"),
        why="an invoice is billed to a patient and names a practitioner",
    ),
    Part(
        "unavailable_blocks",
        "Unavailable blocks (diary time off)",
        resources=tuple(r.name for r in RESOURCES if r.part == "unavailable_blocks"),
        depends_on=("practitioners",),
        why="a block belongs to a practitioner's diary",
    ),
    Part(
        "attachments",
        "Patient attachments (file list only)",
        resources=tuple(r.name for r in RESOURCES if r.part == "attachments"),
        depends_on=("patients",),
        why="an attachment belongs to a patient",
    ),
)

PARTS_BY_NAME: dict[str, Part] = {p.name: p for p in PARTS}
ALL_PARTS: tuple[str, ...] = tuple(p.name for p in PARTS)
DEFAULT_PARTS = ALL_PARTS


class UnknownSelection(ValueError):
    """A part or resource name that the catalogue does not know."""


def close_parts(parts: Iterable[str]) -> tuple[str, ...]:
    """The selected parts plus every part they depend on, in catalogue order."""
    wanted: set[str] = set()
    todo = list(parts)
    while todo:
        name = todo.pop()
        if name not in PARTS_BY_NAME:
            known = ", ".join(PARTS_BY_NAME)
            raise UnknownSelection(f"unknown part {name!r}; choose from: {known}")
        if name not in wanted:
            wanted.add(name)
            todo.extend(PARTS_BY_NAME[name].depends_on)
    return tuple(p.name for p in PARTS if p.name in wanted)


def resources_for(selection: Iterable[str]) -> tuple[Resource, ...]:
    """The resources to download for a selection of parts and/or resource names.

    The account resources (`/user`, `/settings`) are always included: they are the connection
    check and carry the time zone and custom-field definitions every mapping needs.
    """
    names: set[str] = {"user", "settings"}
    parts: list[str] = []
    for item in selection:
        if item in PARTS_BY_NAME:
            parts.append(item)
        elif item in BY_NAME:
            names.add(item)
        else:
            known = ", ".join([*PARTS_BY_NAME, *BY_NAME])
            raise UnknownSelection(f"unknown part or resource {item!r}; choose from: {known}")
    for part in close_parts(parts):
        names.update(PARTS_BY_NAME[part].resources)
    # A per-parent resource needs its parent's rows to know where to look.
    for r in RESOURCES:
        if r.name in names and r.per_parent:
            names.add(r.per_parent)
    return tuple(r for r in RESOURCES if r.name in names)


def list_variants(resources: Iterable[Resource]) -> list[tuple[Resource, Variant]]:
    """Every (resource, variant) pair that is a list to crawl, in catalogue order."""
    return [(r, v) for r in resources if not r.single and not r.per_parent for v in r.variants]
