"""Cliniko-shaped records for the staging tests.

They follow the documentation's examples (cliniko/examples/): ids as numbers or
strings, links as `{"links": {"self": url}}` on varying hosts, "" for unset patient fields.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from engine.resources import BY_NAME, Resource

API = "https://api.au1.cliniko.com/v1"


def res(name: str) -> Resource:
    return BY_NAME[name]


def link(collection: str, record_id: int | str, host: str = API) -> dict[str, Any]:
    return {"links": {"self": f"{host}/{collection}/{record_id}"}}


def patient(pid: object, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": pid,
        "first_name": "Peter",
        "last_name": "Patientman",
        "archived_at": "",
        "deleted_at": "",
        "date_of_birth": "2001-05-26",
        "created_at": "2013-03-26T14:00:00Z",
        "updated_at": "2013-03-26T14:00:00Z",
        "concession_type": link("concession_types", 123),
        "referring_doctor": link("contacts", 123),
        "invoices": {"links": {"self": f"{API}/patients/{pid}/invoices?page=1"}},
        "links": {"self": f"{API}/patients/{pid}"},
    }
    record.update(fields)
    return record


def deleted_patient_stub(pid: int, at: str = "2013-06-05T14:38:48Z") -> dict[str, Any]:
    """What `/patients/deleted` returns: the marker and a self link, no id, no data."""
    return {"deleted_at": at, "links": {"self": f"{API}/patients/{pid}"}}


def appointment(aid: int | str, patient_id: int = 82, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": aid,
        "created_at": "2016-06-28T21:33:26Z",
        "updated_at": "2016-07-22T15:10:08Z",
        "starts_at": "2016-07-21T03:45:00Z",
        "ends_at": "2016-07-21T04:30:00Z",
        "patient_name": "Joe Monahan",
        "notes": None,
        "cancelled_at": None,
        "deleted_at": None,
        "appointment_type": link("appointment_types", 2),
        "business": link("businesses", 1),
        "practitioner": link("practitioners", 1),
        "patient": link("patients", patient_id),
        "attendees": {"links": {"self": f"{API}/individual_appointments/{aid}/attendees"}},
        "links": {"self": f"{API}/individual_appointments/{aid}"},
    }
    record.update(fields)
    return record


def service(business: int, appointment_type: int) -> dict[str, Any]:
    return {
        "practitioners": [link("practitioners", 1), link("practitioners", 2)],
        "appointment_type": link("appointment_types", appointment_type),
        "business": link("businesses", business),
    }


def referral_source(pid: int, referrer: tuple[str, int] = ("patients", 456)) -> dict[str, Any]:
    return {
        "links": {"self": f"{API}/patients/{pid}/referral_source"},
        "referrer": link(*referrer),
        "referrer_type": "Patient",
        "notes": "note written about this referral",
        "patient": link("patients", pid),
        "referral_source_type": link("referral_source_types", 1),
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
