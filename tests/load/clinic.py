"""A synthetic Cliniko clinic for the plan and load tests, staged through the staging writer.

Every record starts from one of Cliniko's documented example payloads (tests/mapping/examples)
and is varied: its own id, links to the records it belongs to, names, times and amounts.
`Clinic.stage(path)` writes it into a staging file exactly as a download would (one run, pages
per resource and list); calling it again after changes is a top-up.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.resources import ALL_PARTS, BY_NAME
from staging import open_staging

EXAMPLES = Path(__file__).resolve().parents[1] / "mapping" / "examples"
API = "https://api.au1.cliniko.com/v1"
NOW = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
ACCOUNT_ID = 4711


def _example(filename: str) -> dict[str, Any]:
    resource = filename.split("__", 1)[0]
    data = json.loads((EXAMPLES / filename).read_text())
    record = data[resource][0] if resource in data else data
    assert isinstance(record, dict)
    return record


TEMPLATES = {
    "businesses": _example("businesses__list.json"),
    "practitioners": _example("practitioners__list.json"),
    "appointment_types": _example("appointment_types__list.json"),
    "billable_items": _example("billable_items__list.json"),
    "patients": _example("patients__list.json"),
    "medical_alerts": _example("medical_alerts__list.json"),
    "individual_appointments": _example("individual_appointments__list.json"),
    "group_appointments": _example("group_appointments__list.json"),
    "attendees": _example("attendees__list.json"),
    "treatment_notes": _example("treatment_notes__list.json"),
    "invoices": _example("invoices__list.json"),
    "invoice_items": _example("invoice_items__list.json"),
}
SETTINGS = json.loads((EXAMPLES / "settings__get.json").read_text())


def link(collection: str, record_id: int | str) -> dict[str, Any]:
    return {"links": {"self": f"{API}/{collection}/{record_id}"}}


def ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Clinic:
    """Staged Cliniko records by resource: {resource: {id: (variant, record)}}."""

    records: dict[str, dict[int, tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    time_zone: str = "Melbourne"

    # -- building -------------------------------------------------------------------------

    def _put(
        self, resource: str, record_id: int, record: dict[str, Any], variant: str
    ) -> dict[str, Any]:
        self.records.setdefault(resource, {})[record_id] = (variant, record)
        return record

    def _new(self, resource: str, record_id: int, collection: str | None = None) -> dict[str, Any]:
        record = copy.deepcopy(TEMPLATES[resource])
        record["id"] = record_id
        record["links"] = {"self": f"{API}/{collection or resource}/{record_id}"}
        record["created_at"] = "2020-01-01T00:00:00Z"
        record["updated_at"] = "2020-01-01T00:00:00Z"
        return record

    def get(self, resource: str, record_id: int) -> dict[str, Any]:
        return self.records[resource][record_id][1]

    def touch(self, resource: str, record_id: int, **changes: Any) -> dict[str, Any]:
        """Change a staged record as Cliniko would (fields and updated_at)."""
        record = self.get(resource, record_id)
        record.update(changes)
        record["updated_at"] = ts(NOW + timedelta(days=1))
        return record

    def set_variant(self, resource: str, record_id: int, variant: str) -> None:
        _, record = self.records[resource][record_id]
        self.records[resource][record_id] = (variant, record)

    def business(self, record_id: int = 1, name: str = "Harbourside Clinic") -> dict[str, Any]:
        record = self._new("businesses", record_id)
        record["business_name"] = name
        return self._put("businesses", record_id, record, "active")

    def practitioner(
        self, record_id: int, first: str, last: str, *, variant: str = "active", **over: Any
    ) -> dict[str, Any]:
        record = self._new("practitioners", record_id)
        record.update(first_name=first, last_name=last, label=f"{first} {last}", title=None)
        record["default_appointment_type"] = None
        record["user"] = None
        record.update(over)
        return self._put("practitioners", record_id, record, variant)

    def billable_item(self, record_id: int, price: str) -> dict[str, Any]:
        record = self._new("billable_items", record_id)
        record["price"] = price
        record["tax"] = None
        return self._put("billable_items", record_id, record, "active")

    def service(
        self,
        record_id: int,
        name: str,
        *,
        billable_item: int | None = None,
        variant: str = "active",
        **over: Any,
    ) -> dict[str, Any]:
        record = self._new("appointment_types", record_id)
        record["name"] = name
        record["billable_item"] = link("billable_items", billable_item) if billable_item else None
        record["product"] = None
        record["treatment_note_template"] = None
        record.update(over)
        return self._put("appointment_types", record_id, record, variant)

    def patient(
        self,
        record_id: int,
        first: str,
        last: str,
        dob: str | None = "1980-01-01",
        *,
        variant: str = "active",
        **over: Any,
    ) -> dict[str, Any]:
        record = self._new("patients", record_id)
        record.update(first_name=first, last_name=last, date_of_birth=dob)
        record["email"] = f"patient{record_id}@example.org"
        record["concession_type"] = None
        record["referring_doctor"] = None
        record.update(over)
        return self._put("patients", record_id, record, variant)

    def deleted_patient(self, record_id: int) -> dict[str, Any]:
        """What /patients/deleted gives: the deletion time and a self link, nothing else."""
        record = {
            "deleted_at": "2023-06-05T14:38:48Z",
            "links": {"self": f"{API}/patients/{record_id}"},
        }
        return self._put("patients", record_id, record, "deleted")

    def medical_alert(self, record_id: int, patient: int, name: str) -> dict[str, Any]:
        record = self._new("medical_alerts", record_id)
        record["name"] = name
        record["patient"] = link("patients", patient)
        return self._put("medical_alerts", record_id, record, "active")

    def appointment(
        self,
        record_id: int,
        patient: int,
        practitioner: int,
        service: int | None,
        starts_at: datetime,
        *,
        minutes: int = 30,
        business: int = 1,
        variant: str = "active",
        **over: Any,
    ) -> dict[str, Any]:
        record = self._new("individual_appointments", record_id)
        record.update(
            starts_at=ts(starts_at),
            ends_at=ts(starts_at + timedelta(minutes=minutes)),
            patient=link("patients", patient),
            practitioner=link("practitioners", practitioner),
            appointment_type=link("appointment_types", service) if service else None,
            business=link("businesses", business),
            patient_name="(synthetic)",
        )
        if variant == "cancelled":
            record["cancelled_at"] = ts(starts_at - timedelta(days=1))
            record["cancellation_reason"] = 50
        record.update(over)
        return self._put("individual_appointments", record_id, record, variant)

    def group_appointment(
        self, record_id: int, practitioner: int, service: int | None, starts_at: datetime
    ) -> dict[str, Any]:
        record = self._new("group_appointments", record_id)
        record.update(
            starts_at=ts(starts_at),
            ends_at=ts(starts_at + timedelta(hours=1)),
            practitioner=link("practitioners", practitioner),
            appointment_type=link("appointment_types", service) if service else None,
            business=link("businesses", 1),
        )
        return self._put("group_appointments", record_id, record, "active")

    def attendee(self, record_id: int, booking: int, patient: int, **over: Any) -> dict[str, Any]:
        record = self._new("attendees", record_id)
        record["booking"] = link("bookings", booking)
        record["patient"] = link("patients", patient)
        record.update(over)
        return self._put("attendees", record_id, record, "active")

    def note(
        self,
        record_id: int,
        patient: int,
        practitioner: int,
        *,
        draft: bool = False,
        variant: str = "active",
        **over: Any,
    ) -> dict[str, Any]:
        record = self._new("treatment_notes", record_id)
        record.update(
            draft=draft,
            patient=link("patients", patient),
            practitioner=link("practitioners", practitioner),
            treatment_note_template=None,
        )
        if variant == "deleted":
            record["deleted_at"] = "2023-01-01T00:00:00Z"
        record.update(over)
        return self._put("treatment_notes", record_id, record, variant)

    def invoice(
        self,
        record_id: int,
        patient: int,
        status: int,
        total: str,
        *,
        number: int | None = None,
        practitioner: int | None = None,
        appointment: int | None = None,
        variant: str = "active",
        **over: Any,
    ) -> dict[str, Any]:
        record = self._new("invoices", record_id)
        record.update(
            number=number if number is not None else 1000 + record_id,
            status=status,
            total_amount=total,
            net_amount=total,
            tax_amount="0.0",
            patient=link("patients", patient),
            practitioner=link("practitioners", practitioner) if practitioner else None,
            business=link("businesses", 1),
            appointment=link("appointments", appointment) if appointment else None,
        )
        if variant == "deleted":
            record["deleted_at"] = "2023-01-01T00:00:00Z"
        record.update(over)
        return self._put("invoices", record_id, record, variant)

    def invoice_item(
        self, record_id: int, invoice: int, name: str, amount: str, *, variant: str = "active"
    ) -> dict[str, Any]:
        record = self._new("invoice_items", record_id)
        record.update(
            name=name,
            unit_price=amount,
            net_price=amount,
            total_including_tax=amount,
            discount_percentage="0.0",
            discounted_amount="0.0",
            quantity=1,
            invoice=link("invoices", invoice),
            billable_item=None,
            created_at=ts(datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=record_id)),
        )
        if variant == "deleted":
            record["deleted_at"] = "2023-01-01T00:00:00Z"
        return self._put("invoice_items", record_id, record, variant)

    # -- staging --------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        settings = copy.deepcopy(SETTINGS)
        settings["account"]["id"] = ACCOUNT_ID
        settings["account"]["time_zone"] = self.time_zone
        return settings

    def stage(self, path: Path, *, resources: Iterable[str] | None = None) -> Path:
        """Write the clinic (or only `resources`) into the staging file at `path`."""
        wanted = set(resources) if resources is not None else None
        with open_staging(path, create=True) as staging:
            run_id = staging.start_run(mode="full", selection=list(ALL_PARTS), shard="au1")
            writer = staging.writer(run_id)
            writer.set_single(BY_NAME["settings"], self.settings())
            for resource, rows in self.records.items():
                if wanted is not None and resource not in wanted:
                    continue
                by_variant: dict[str, list[dict[str, Any]]] = {}
                for variant, record in rows.values():
                    by_variant.setdefault(variant, []).append(copy.deepcopy(record))
                # The default list first, then the variants (as the engine crawls them).
                for variant in sorted(by_variant, key=lambda v: v != "active"):
                    records = by_variant[variant]
                    for start in range(0, len(records), 100):
                        writer.write_page(BY_NAME[resource], variant, records[start : start + 100])
            staging.finish_run(run_id, "complete")
        return path


def small_clinic() -> Clinic:
    """Every kind once or more, with the cases the load must get right."""
    c = Clinic()
    c.business(1)
    c.practitioner(11, "Ana", "Silva")
    c.practitioner(12, "José", "Álvarez", designation="Physio")
    c.billable_item(31, "120.00")
    c.service(21, "Initial Consultation", billable_item=31)
    c.service(22, "Follow-up")
    c.patient(101, "Zoë", "Ngata", "1990-01-02")
    c.patient(102, "Peter", "Patientman", "2001-05-26")
    c.patient(103, "Aroha", "Tane", None)
    c.deleted_patient(104)
    c.medical_alert(201, 101, "Penicillin allergy")
    past = NOW - timedelta(days=30)
    future = NOW + timedelta(days=7)
    c.appointment(301, 101, 11, 21, past)
    c.appointment(302, 102, 12, 22, past + timedelta(hours=2))
    c.appointment(303, 101, 11, 22, future)
    c.appointment(304, 102, 11, 21, past + timedelta(days=1), variant="cancelled")
    c.group_appointment(401, 12, 22, past + timedelta(days=2))
    c.attendee(501, 401, 101, arrived=True)
    c.attendee(502, 301, 101)  # an individual appointment's attendee row
    c.note(601, 101, 11)
    c.note(602, 102, 12, draft=True)
    c.note(603, 102, 11, variant="deleted")
    c.invoice(701, 101, 20, "120.00", number=5001, practitioner=11, appointment=301)  # paid
    c.invoice_item(801, 701, "Initial Consultation", "100.00")
    c.invoice_item(802, 701, "Taping", "20.00")
    c.invoice(702, 101, 10, "80.00", number=5002)  # open
    c.invoice_item(803, 702, "Follow-up", "80.00")
    c.invoice(703, 102, 30, "60.00", number=5003)  # closed
    c.invoice(704, 102, 40, "-25.00", number=5004)  # open credit
    c.invoice(705, 102, 10, "40.00", number=5005, variant="deleted")
    return c
