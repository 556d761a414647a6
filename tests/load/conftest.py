"""Fixtures for the plan and load tests: a staged synthetic clinic and a clinic store URL.

Every test that uses a clinic store (`target_url`, `open_store`, `clinics`) runs on both
backends, SQLite and PostgreSQL, with the same assertions (tests/backends.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.clinic_rows import SETTLEMENT_LINK, settlement_hash, target_hash
from engine.mapping import fold_name
from target import KIND_TABLES, ClinicBackend, Link, open_target
from tests.backends import Clinics, make_clinics, parametrize_backends

from .clinic import Clinic, small_clinic

SOURCE = "cliniko:au1:4711"


def _practitioner(display_name: str = "Dr Ana Silva", **over: Any) -> dict[str, Any]:
    """As MyNewClinic stores one: `match_name` is the folded display name."""
    return {
        "display_name": display_name,
        "active": True,
        "match_name": fold_name(display_name),
        **over,
    }


def _service(name: str = "Initial", **over: Any) -> dict[str, Any]:
    return {"name": name, "archived": False, "match_name": fold_name(name), **over}


def _patient(**over: Any) -> dict[str, Any]:
    return {
        "first_name": "Kiri",
        "last_name": "Walker",
        "date_of_birth": date(1975, 3, 4),
        "phones": [],
        "archived": False,
        "custom_fields": [],
        "medical_alerts": [],
        "match_key": "kiri|walker|1975-03-04",
        **over,
    }


def _appointment(patient_id: int, practitioner_id: int, **over: Any) -> dict[str, Any]:
    starts = over.pop("starts_at", datetime(2024, 5, 1, 9, tzinfo=UTC))
    return {
        "patient_id": patient_id,
        "practitioner_id": practitioner_id,
        "starts_at": starts,
        "ends_at": starts + timedelta(minutes=30),
        "time_zone": "Australia/Melbourne",
        "local_starts_at": starts.isoformat(),
        "status": "booked",
        "patient_arrived": False,
        "is_upcoming": True,
        "imported_history": False,
        **over,
    }


@pytest.fixture
def rows() -> SimpleNamespace:
    """Factories of the clinic's own rows (what MyNewClinic held before the import)."""
    return SimpleNamespace(
        practitioner=_practitioner, service=_service, patient=_patient, appointment=_appointment
    )


@pytest.fixture
def clinic() -> Clinic:
    return small_clinic()


@pytest.fixture
def staging_path(tmp_path: Path, clinic: Clinic) -> Path:
    return clinic.stage(tmp_path / "clinic.staging")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)


@pytest.fixture
def clinics(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Clinics:
    """Fresh clinic stores of the test's backend, by name: `clinics.url("clean")`."""
    return make_clinics(request, backend, tmp_path)


@pytest.fixture
def target_path(clinics: Clinics) -> Path:
    """Where the SQLite clinic file is (on PostgreSQL, a path that never exists)."""
    return clinics.path("clinic")


@pytest.fixture
def target_url(clinics: Clinics) -> str:
    return clinics.url("clinic")


@pytest.fixture
def open_store(target_url: str) -> Iterator[Any]:
    """`open_store()` -> a fresh connection to the test's clinic store (closed at teardown)."""
    opened: list[ClinicBackend] = []

    def make() -> ClinicBackend:
        store = open_target(target_url, busy_timeout=0.5)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            store.close()


def by_source(store: ClinicBackend, kind: str) -> dict[str, dict[str, Any]]:
    """Clinic rows of a kind keyed by the Cliniko id they were imported from."""
    links = store.load_links(SOURCE, kind)
    rows = store.fetch_rows(KIND_TABLES[kind], [link.target_id for link in links.values()])
    return {sid: rows[link.target_id] for sid, link in links.items() if link.target_id in rows}


def assert_quiet(store: ClinicBackend) -> None:
    """After every load: nothing queued for patients, messaging and AI still off."""
    assert store.outbox_count() == 0
    settings = store.settings()
    assert settings["messaging_enabled"] is False
    assert settings["ai_enabled"] is False


def _link_states(store: ClinicBackend, kind: str, found: dict[str, Link]) -> dict[str, Any]:
    """Each link's source hash, and whether its target hash is that of the clinic row as it
    stands (what a rerun compares), independent of the clinic ids inside the row: a
    PostgreSQL sequence never gives back the ids of a rolled-back batch, so a rerun after a
    stop can give rows other ids than an uninterrupted load would."""
    table = "settlements" if kind == SETTLEMENT_LINK else KIND_TABLES[kind]
    rows = store.fetch_rows(table, [link.target_id for link in found.values()])
    lines: dict[int, list[dict[str, Any]]] = {}
    if kind == "invoice":
        for line in store.iter_rows("invoice_lines"):
            lines.setdefault(line["invoice_id"], []).append(line)
    states: dict[str, Any] = {}
    for sid, link in found.items():
        row = rows.get(link.target_id)
        if row is None:
            state = "row missing"
        else:
            current = (
                settlement_hash(row)
                if kind == SETTLEMENT_LINK
                else target_hash(kind, row, lines.get(link.target_id, []))
            )
            state = "current" if current == link.target_hash else "clinic row differs"
        states[sid] = (link.source_hash, state)
    return states


def snapshot(store: ClinicBackend) -> dict[str, Any]:
    """The clinic's content, independent of clinic ids and timestamps: every row keyed by the
    Cliniko id it came from, with its foreign keys turned back into Cliniko ids; links (source
    hash, target hash current or not); balances by Cliniko patient id; row counts (duplicates
    would show there)."""
    reverse: dict[tuple[str, int], str] = {}
    links: dict[str, dict[str, tuple[str, str]]] = {}
    for kind in (*KIND_TABLES, SETTLEMENT_LINK):
        found = store.load_links(SOURCE, kind)
        links[kind] = _link_states(store, kind, found)
        for sid, link in found.items():
            reverse[(kind, link.target_id)] = sid
    content: dict[str, dict[str, Any]] = {}
    skip = {"id", "created_at", "updated_at"}
    for kind, table in KIND_TABLES.items():
        if kind == "invoice_line":
            continue
        rows: dict[str, Any] = {}
        for row in store.iter_rows(table):
            key = reverse.get((kind, row["id"]), f"clinic:{row['id']}")
            clean = {}
            for col, value in row.items():
                if col in skip:
                    continue
                if col.endswith("_id") and isinstance(value, int):
                    ref_kind = col[: -len("_id")]
                    value = reverse.get((ref_kind, value), f"clinic:{value}")
                clean[col] = value
            rows[key] = clean
        content[kind] = rows
    lines = sorted(
        (
            reverse.get(("invoice", r["invoice_id"])),
            r["source_id"],
            r["position"],
            str(r["total_including_tax"]),
        )
        for r in store.iter_rows("invoice_lines")
    )
    settlements = sorted(
        (reverse.get(("invoice", r["invoice_id"])), str(Decimal(r["amount"])), r["kind"])
        for r in store.iter_rows("settlements")
    )
    balances = {
        reverse.get(("patient", pid), f"clinic:{pid}"): amount
        for pid, amount in store.balances().items()
    }
    counts = {
        t: n for t, n in store.table_counts().items() if t not in ("import_runs", "audit_log")
    }
    return {
        "content": content,
        "links": links,
        "lines": lines,
        "settlements": settlements,
        "balances": balances,
        "counts": counts,
    }
