"""Fixtures for the clinic store tests: a fresh store per test, on each backend (SQLite file,
PostgreSQL schema; see tests/backends.py), and row factories."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from target import ClinicBackend, open_target
from tests.backends import Clinics, make_clinics, parametrize_backends

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def location(**over: Any) -> dict[str, Any]:
    return {"name": "Main St", "time_zone": "Pacific/Auckland", **over}


def practitioner(**over: Any) -> dict[str, Any]:
    return {"display_name": "Dr Ana Silva", "active": True, "match_name": "dr ana silva", **over}


def service(**over: Any) -> dict[str, Any]:
    return {"name": "Initial", "archived": False, "match_name": "initial", **over}


def patient(**over: Any) -> dict[str, Any]:
    return {
        "first_name": "Zoë",
        "last_name": "Ngata",
        "date_of_birth": date(1990, 1, 2),
        "phones": [{"type": "Mobile", "number": "021 123 456"}],
        "archived": False,
        "custom_fields": [],
        "medical_alerts": [],
        "match_key": "zoe|ngata|1990-01-02",
        **over,
    }


def appointment(patient_id: int, practitioner_id: int, **over: Any) -> dict[str, Any]:
    starts = over.pop("starts_at", T0)
    return {
        "patient_id": patient_id,
        "practitioner_id": practitioner_id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=30),
        "time_zone": "Pacific/Auckland",
        "local_starts_at": starts.isoformat(),
        "status": "completed",
        "patient_arrived": True,
        "is_upcoming": False,
        "imported_history": True,
        **over,
    }


def group_appointment(practitioner_id: int, **over: Any) -> dict[str, Any]:
    starts = over.pop("starts_at", T0)
    return {
        "practitioner_id": practitioner_id,
        "starts_at": starts,
        "ends_at": starts + timedelta(hours=1),
        "time_zone": "Pacific/Auckland",
        "local_starts_at": starts.isoformat(),
        "is_upcoming": False,
        "imported_history": True,
        **over,
    }


def invoice(patient_id: int, total: str, status: str = "open", **over: Any) -> dict[str, Any]:
    amount = Decimal(total)
    return {
        "patient_id": patient_id,
        "status": status,
        "status_code": {"open": 10, "paid": 20, "closed": 30, "credit": 40, "void": 0}[status],
        "total": amount,
        "outstanding": amount if status in ("open", "credit") else Decimal(0),
        "outstanding_basis": "status_open",
        "settlement_amount": Decimal(0) if status in ("open", "credit") else amount,
        "status_only_open": status == "open",
        **over,
    }


ROWS = SimpleNamespace(
    location=location,
    practitioner=practitioner,
    service=service,
    patient=patient,
    appointment=appointment,
    group_appointment=group_appointment,
    invoice=invoice,
)


@pytest.fixture
def rows() -> SimpleNamespace:
    """Row factories: `rows.patient(**overrides)`, `rows.appointment(pid, prid)`, ..."""
    return ROWS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "clinic.db"


@pytest.fixture
def clinics(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Clinics:
    """Fresh clinic stores of the test's backend, by name (`clinics.url("clinic")`)."""
    return make_clinics(request, backend, tmp_path)


@pytest.fixture
def store_url(clinics: Clinics, db_path: Path) -> str:
    """The test's clinic store (on SQLite, the file `db_path`)."""
    return f"sqlite:///{db_path}" if clinics.backend == "sqlite" else clinics.url("clinic")


@pytest.fixture
def store(store_url: str) -> Iterator[ClinicBackend]:
    s = open_target(store_url, busy_timeout=0.2)
    try:
        yield s
    finally:
        s.close()
