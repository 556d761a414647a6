"""Import links, name matching, busy slots, import runs and the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from target import (
    ClinicBackend,
    ForbiddenWrite,
    IntegrityViolation,
    InvalidValue,
    Link,
    LinkRow,
    SchemaMismatch,
    Slot,
    TargetError,
)
from tests.backends import raw

SOURCE = "cliniko:au1:4711"


def test_links_upsert_is_idempotent(store: ClinicBackend) -> None:
    links = [LinkRow("101", 1, "s1", "t1"), ("102", 2, "s2", "t2")]
    store.upsert_links(SOURCE, "patient", links, None)
    store.upsert_links(SOURCE, "patient", links, None)
    assert store.table_counts()["import_links"] == 2
    assert store.load_links(SOURCE, "patient") == {
        "101": Link(1, "s1", "t1"),
        "102": Link(2, "s2", "t2"),
    }


def test_links_upsert_replaces_by_source_kind_and_id(store: ClinicBackend) -> None:
    run = store.start_import_run(source=SOURCE, mode="load", staging_path="x.staging")
    store.upsert_links(SOURCE, "patient", [("101", 1, "s1", "t1")], None)
    store.upsert_links(SOURCE, "patient", [("101", 1, "s1b", "t1b")], run)
    store.upsert_links(SOURCE, "appointment", [("101", 7, "a", "b")], run)  # same id, other kind
    store.upsert_links("cliniko:uk2:9", "patient", [("101", 3, "c", "d")], run)  # other account
    assert store.load_links(SOURCE, "patient") == {"101": Link(1, "s1b", "t1b")}
    assert store.load_links(SOURCE, "appointment") == {"101": Link(7, "a", "b")}
    assert store.load_links("cliniko:uk2:9", "patient") == {"101": Link(3, "c", "d")}
    assert store.load_links(SOURCE, "invoice") == {}
    [(run_id,)] = raw(
        store, "SELECT run_id FROM import_links WHERE kind = 'patient' AND source = ?", SOURCE
    )
    assert run_id == run


def test_links_are_unique_in_the_database_itself(store: ClinicBackend) -> None:
    store.upsert_links(SOURCE, "patient", [("101", 1, "s", "t")], None)
    with pytest.raises(Exception, match=r"(?i)unique") as info:  # either driver's error
        raw(
            store,
            "INSERT INTO import_links (source, kind, source_id, target_id, source_hash, "
            "target_hash, created_at, updated_at) VALUES (?, 'patient', '101', 2, 's', 't', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            SOURCE,
        )
    assert "IntegrityError" in type(info.value).__name__ or "UniqueViolation" in repr(info.value)


def test_links_refuse_a_numeric_cliniko_id_or_a_text_clinic_id(store: ClinicBackend) -> None:
    with pytest.raises(InvalidValue, match="source_id must be str"):
        store.upsert_links(SOURCE, "patient", [(101, 1, "s", "t")], None)  # type: ignore[list-item]
    with pytest.raises(InvalidValue):
        store.upsert_links(SOURCE, "patient", [("101", "1", "s", "t")], None)  # type: ignore[list-item]
    with pytest.raises(IntegrityViolation, match="FOREIGN KEY"):
        store.upsert_links(SOURCE, "patient", [("101", 1, "s", "t")], run_id=999)
    assert store.table_counts()["import_links"] == 0


def test_name_index_groups_ids_by_the_folded_name(store: ClinicBackend, rows: Any) -> None:
    store.insert_rows(
        "practitioners",
        [
            rows.practitioner(display_name="Dr José Álvarez", match_name="dr jose alvarez"),
            rows.practitioner(display_name="DR JOSE ALVAREZ", match_name="dr jose alvarez"),
            rows.practitioner(display_name="Mia Chen", match_name="mia chen"),
        ],
    )
    store.insert_rows(
        "services", [rows.service(name="Initial  Consult", match_name="initial consult")]
    )
    index = store.name_index("practitioners")
    assert index == {"dr jose alvarez": [1, 2], "mia chen": [3]}
    assert store.name_index("services") == {"initial consult": [1]}
    assert store.name_index("practitioners", "last_name") == {}  # all NULL
    with pytest.raises(SchemaMismatch):
        store.name_index("practitioners", "nickname")


def test_patient_match_index(store: ClinicBackend, rows: Any) -> None:
    store.insert_rows(
        "patients",
        [
            rows.patient(match_key="zoe|ngata|1990-01-02"),
            rows.patient(match_key="zoe|ngata|"),
            rows.patient(match_key="zoe|ngata|1990-01-02"),
        ],
    )
    assert store.patient_match_index() == {
        "zoe|ngata|1990-01-02": [1, 3],
        "zoe|ngata|": [2],
    }


def test_busy_slots(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    pr1, pr2, pr3 = store.insert_rows("practitioners", [rows.practitioner() for _ in range(3)])
    t = datetime(2025, 3, 3, 22, 0, tzinfo=UTC)
    ids = store.insert_rows(
        "appointments",
        [
            rows.appointment(pid, pr1, starts_at=t + timedelta(hours=2)),
            rows.appointment(pid, pr1, starts_at=t, status="booked", imported_history=False),
            rows.appointment(pid, pr1, starts_at=t + timedelta(hours=1), status="cancelled"),
            rows.appointment(pid, pr1, starts_at=t + timedelta(hours=3), status="did_not_arrive"),
            rows.appointment(pid, pr2, starts_at=t, ends_at=None),
        ],
    )
    [gid] = store.insert_rows(
        "group_appointments", [rows.group_appointment(pr1, starts_at=t + timedelta(hours=1))]
    )
    slots = store.busy_slots([pr1, pr2, pr3, pr1])
    assert set(slots) == {pr1, pr2, pr3}
    assert slots[pr1] == [
        Slot(t, t + timedelta(minutes=30), ids[1]),
        Slot(t + timedelta(hours=1), t + timedelta(hours=2), gid, "group_appointments"),
        Slot(t + timedelta(hours=2), t + timedelta(hours=2, minutes=30), ids[0]),
        Slot(t + timedelta(hours=3), t + timedelta(hours=3, minutes=30), ids[3]),
    ]
    assert slots[pr2] == [Slot(t, None, ids[4])]
    assert slots[pr3] == []
    native = store.busy_slots([pr1], include_imported=False)
    assert native[pr1] == [Slot(t, t + timedelta(minutes=30), ids[1])]


def test_import_runs_are_recorded(store: ClinicBackend) -> None:
    started = datetime(2025, 1, 1, 1, 2, 3, tzinfo=UTC)
    run = store.start_import_run(
        source=SOURCE, mode="plan", staging_path="/data/x.staging", started_at=started
    )
    second = store.start_import_run(source=SOURCE, mode="load", staging_path=None)
    assert second == run + 1
    store.finish_import_run(run, "completed", {"patient": 3}, {"balances": "ok", "off_by": [1, 2]})
    row, other = store.iter_rows("import_runs")
    assert other["finished_at"] is None
    assert row["started_at"] == started
    assert row["finished_at"] >= started
    assert row["mode"] == "plan"
    assert row["outcome"] == "completed"
    assert row["counts"] == {"patient": 3}
    assert row["verification"] == {"balances": "ok", "off_by": [1, 2]}
    with pytest.raises(TargetError, match="no import run 999"):
        store.finish_import_run(999, "completed", {}, None)
    with pytest.raises(IntegrityViolation):
        store.start_import_run(source=SOURCE, mode="dry", staging_path=None)  # type: ignore[arg-type]


def test_audit_entries_are_batched_and_hold_no_free_text(store: ClinicBackend) -> None:
    run = store.start_import_run(source=SOURCE, mode="load", staging_path=None)
    store.audit(
        [
            {"run_id": run, "action": "create", "kind": "patient", "target_id": 1},
            {
                "run_id": run,
                "action": "conflict",
                "kind": "patient",
                "target_id": 2,
                "detail": {"fields": ["email", "last_name"], "source_id": "cliniko:au1:99"},
            },
            {"action": "skip", "kind": "appointment", "detail": {"code": "unknown_booking"}},
        ]
    )
    entries = list(store.iter_rows("audit_log"))
    assert [e["action"] for e in entries] == ["create", "conflict", "skip"]
    assert entries[0]["actor"] == "cliniko-switch"
    assert entries[1]["detail"] == {
        "fields": ["email", "last_name"],
        "source_id": "cliniko:au1:99",
    }
    assert entries[2]["run_id"] is None
    for unsafe in (
        {"action": "update", "detail": {"old": "Zoë Ngata"}},
        {"action": "update", "detail": ["Allergic to penicillin, see notes"]},
        {"action": "update", "detail": {"first name": "x"}},
        {"action": "patient Zoë Ngata edited"},
    ):
        with pytest.raises(ForbiddenWrite, match="free text"):
            store.audit([{"action": "ok"}, unsafe])
    with pytest.raises(SchemaMismatch, match="unknown key"):
        store.audit([{"action": "create", "name": "Zoë"}])
    with pytest.raises(SchemaMismatch, match="no action"):
        store.audit([{"kind": "patient"}])
    assert store.table_counts()["audit_log"] == 3
    stored = raw(store, "SELECT CAST(detail AS TEXT) FROM audit_log WHERE detail IS NOT NULL")
    assert all(json.loads(d) for (d,) in stored)
