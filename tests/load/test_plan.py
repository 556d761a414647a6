"""plan(): what a load would do, decided from the staging file and the clinic alone."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.load import load
from engine.plan import Plan, PlanItem, plan
from engine.resources import UnknownSelection
from target import open_target
from tests.backends import Clinics, raw

from .clinic import NOW, Clinic
from .conftest import assert_quiet


def item(p: Plan, kind: str, source_id: int | str) -> PlanItem:
    found = [i for i in p.items[kind] if i.source_id == str(source_id)]
    assert len(found) == 1, (kind, source_id, found)
    return found[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_plan_creates_every_kind_and_skips_with_reasons(
    staging_path: Path, target_url: str
) -> None:
    p = plan(staging_path, target_url, now=NOW)
    counts = p.counts()
    assert {k: c["create"] for k, c in counts.items()} == {
        "location": 1,
        "practitioner": 2,
        "service": 2,
        "patient": 3,
        "appointment": 4,
        "group_appointment": 1,
        "attendance": 1,
        "treatment_note": 1,
        "invoice": 4,
    }
    assert p.source == "cliniko:au1:4711"
    skips = {(i.kind, i.source_id): i.skip_code for i in p.skipped()}
    assert skips == {
        ("patient", "104"): "deleted_in_cliniko",
        ("attendance", "502"): "covered_by_appointment",
        ("treatment_note", "602"): "draft_note",
        ("treatment_note", "603"): "deleted_in_cliniko",
        ("invoice", "705"): "deleted_in_cliniko",
    }
    assert all(i.skip_reason for i in p.skipped())
    created = item(p, "appointment", 301)
    assert created.row is not None
    assert created.row["status"] == "completed"
    assert created.row["imported_history"] is True


def test_plan_changes_nothing(
    staging_path: Path, target_path: Path, target_url: str, clinics: Clinics
) -> None:
    plan(staging_path, target_url, now=NOW)
    assert not clinics.exists()  # a missing clinic is planned as an empty one
    load(staging_path, target_url, now=NOW)
    before = (digest(staging_path), clinics.digest())
    side = sorted(x.name for x in staging_path.parent.iterdir())
    p = plan(staging_path, target_url, now=NOW)
    assert p.totals()["unchanged"] == 19
    assert (digest(staging_path), clinics.digest()) == before
    # SQLite may leave an empty -wal/-shm after a read-only open of a WAL file: no content.
    for extra in set(x.name for x in staging_path.parent.iterdir()) - set(side):
        assert extra.endswith(("-wal", "-shm")), extra
        if extra.endswith("-wal"):
            assert (target_path.parent / extra).stat().st_size == 0


def test_second_plan_is_all_unchanged(staging_path: Path, target_url: str) -> None:
    load(staging_path, target_url, now=NOW)
    p = plan(staging_path, target_url, now=NOW)
    totals = p.totals()
    assert totals["create"] == totals["update"] == totals["conflict"] == 0
    assert totals["unchanged"] == 19
    assert totals["skip"] == 5
    assert p.writes() == 0


def test_plan_json_is_plain_data_without_patient_data(
    clinic: Clinic, tmp_path: Path, target_url: str
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    clinic.touch("patients", 101, email="zoe.new@example.org", first_name="Zoé")
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    doc = json.loads(json.dumps(p.to_json()))
    assert doc["counts"]["patient"]["update"] == 1
    assert doc["updates"][0]["fields"] == ["first_name", "email"]  # "zoe" folds alike
    text = json.dumps(doc, ensure_ascii=False)
    for secret in ("Zoé", "Zoë", "zoe.new@example.org", "Ngata", "Penicillin"):
        assert secret not in text
    # The drill-down values are there when asked for (the TUI), never by default.
    with_values = json.dumps(p.to_json(values=True), ensure_ascii=False)
    assert "zoe.new@example.org" in with_values


def test_only_history_skips_upcoming_as_not_selected(staging_path: Path, target_url: str) -> None:
    p = plan(staging_path, target_url, ["appointment_history"], now=NOW)
    assert p.kinds == (
        "location",
        "practitioner",
        "service",
        "patient",
        "appointment",
        "group_appointment",
        "attendance",
    )
    upcoming = item(p, "appointment", 303)
    assert upcoming.action == "skip"
    assert upcoming.skip_code == "not_selected"
    assert item(p, "appointment", 301).action == "create"
    only_upcoming = plan(staging_path, target_url, ["upcoming_appointments"], now=NOW)
    assert item(only_upcoming, "appointment", 303).action == "create"
    assert item(only_upcoming, "appointment", 301).skip_code == "not_selected"
    assert item(only_upcoming, "attendance", 501).skip_code == "not_selected"


def test_unknown_part_is_refused(staging_path: Path, target_url: str) -> None:
    with pytest.raises(UnknownSelection):
        plan(staging_path, target_url, ["appointments"], now=NOW)


def test_missing_references_are_skipped_with_their_reason(
    clinic: Clinic, tmp_path: Path, target_url: str
) -> None:
    clinic.appointment(310, 101, 99, 21, NOW - timedelta(days=3))  # practitioner 99: not staged
    clinic.appointment(311, 101, 11, 29, NOW - timedelta(days=3, hours=1))  # service 29: not
    clinic.appointment(312, 999, 11, 21, NOW - timedelta(days=3, hours=2))  # patient 999: not
    clinic.note(610, 999, 11)
    clinic.invoice(710, 999, 10, "10.00")
    clinic.invoice(711, 101, 10, "10.00", practitioner=98)  # optional reference: kept empty
    p = plan(clinic.stage(tmp_path / "s.staging"), target_url, now=NOW)
    assert item(p, "appointment", 310).skip_code == "practitioner_not_imported"
    assert "99" in (item(p, "appointment", 310).skip_reason or "")
    assert item(p, "appointment", 311).skip_code == "service_not_imported"
    assert item(p, "appointment", 312).skip_code == "patient_not_imported"
    assert item(p, "treatment_note", 610).skip_code == "patient_not_imported"
    assert item(p, "invoice", 710).skip_code == "patient_not_imported"
    kept = item(p, "invoice", 711)
    assert kept.action == "create"
    assert kept.unresolved == ("practitioner",)
    assert kept.row is not None and kept.row["practitioner_id"] is None


def test_a_reference_resolves_once_its_record_is_loaded(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    clinic.invoice(711, 101, 10, "10.00", practitioner=13)
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    clinic.practitioner(13, "Mia", "Chen")
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    assert item(p, "practitioner", 13).action == "create"
    fixed = item(p, "invoice", 711)
    assert fixed.action == "update"
    assert fixed.changed_fields() == ["practitioner_id"]
    load(p)
    again = plan(staging, target_url, now=NOW)
    assert item(again, "invoice", 711).action == "unchanged"
    store = open_store()
    [(practitioner_id,)] = raw(store, "SELECT practitioner_id FROM invoices WHERE number = '1711'")
    assert practitioner_id == store.load_links("cliniko:au1:4711", "practitioner")["13"].target_id


def test_existing_practitioners_and_services_are_matched_not_duplicated(
    clinic: Clinic, tmp_path: Path, target_url: str, rows: Any
) -> None:
    with open_target(target_url) as store:
        store.insert_rows(
            "practitioners",
            [
                rows.practitioner("ANA  SILVA"),
                rows.practitioner("Jose ALVAREZ"),
            ],
        )
        store.insert_rows("services", [rows.service("initial   consultation")])
    staging = clinic.stage(tmp_path / "s.staging")
    p = plan(staging, target_url, now=NOW)
    for kind, source_id, target_id in (
        ("practitioner", 11, 1),
        ("practitioner", 12, 2),
        ("service", 21, 1),
    ):
        matched = item(p, kind, source_id)
        assert (matched.action, matched.matched, matched.target_id) == (
            "unchanged",
            True,
            target_id,
        )
    assert item(p, "service", 22).action == "create"
    result = load(p)
    assert result.ok, result.verification.differences
    with open_target(target_url) as store:
        assert store.table_counts()["practitioners"] == 2
        assert store.table_counts()["services"] == 2
        # The clinic's own rows are linked as they are, never overwritten.
        assert store.fetch_rows("practitioners", [1])[1]["display_name"] == "ANA  SILVA"
        [(appointment_practitioner,)] = raw(
            store,
            "SELECT practitioner_id FROM appointments a JOIN import_links l ON l.target_id = a.id"
            " AND l.kind = 'appointment' WHERE l.source_id = '302'",
        )
        assert appointment_practitioner == 2
    # A later change in Cliniko refreshes the link; the clinic's row still wins.
    clinic.touch("practitioners", 11, designation="Osteopath")
    clinic.stage(staging)
    again = plan(staging, target_url, now=NOW)
    refreshed = item(again, "practitioner", 11)
    assert (refreshed.action, refreshed.matched) == ("unchanged", True)
    load(again)
    assert plan(staging, target_url, now=NOW).writes() == 0


def test_name_ambiguities_are_resolved_deterministically_and_reported(
    clinic: Clinic, tmp_path: Path, target_url: str, rows: Any
) -> None:
    with open_target(target_url) as store:
        store.insert_rows(
            "practitioners",
            [
                rows.practitioner("Ana Silva"),
                rows.practitioner("ANA SILVA"),
                rows.practitioner("Kim Lee"),
            ],
        )
    clinic.practitioner(15, "Ána", "SILVA")  # folds to the same name as 11
    clinic.practitioner(16, "Mia", "Chen")
    clinic.practitioner(14, "Mia", "Chen")  # the same name, a lower id; none in the clinic
    clinic.practitioner(17, "Kim", "Lee", variant="inactive")
    clinic.practitioner(18, "Kim", "Lee")  # active: preferred for the clinic's Kim Lee
    staging = clinic.stage(tmp_path / "s.staging")
    p = plan(staging, target_url, now=NOW)
    outcome = {i.source_id: (i.action, i.target_id) for i in p.items["practitioner"]}
    assert outcome == {
        "11": ("unchanged", 1),  # two clinic rows share the name: the first
        "15": ("unchanged", 2),  # the next free one: two Cliniko people stay two
        "12": ("create", None),
        "14": ("create", None),
        "16": ("create", None),  # namesakes in Cliniko are kept apart, never merged
        "18": ("unchanged", 3),
        "17": ("create", None),  # the clinic's Kim Lee went to the active one
    }
    reported = sorted((a.source_ids, a.target_ids) for a in p.ambiguities)
    assert reported == [
        (("11",), (1, 2)),
        (("11", "15"), (1, 2)),
        (("14", "16"), ()),
        (("17",), (3,)),
        (("18", "17"), (3,)),
    ]
    assert all(a.kind == "practitioner" and a.resolution for a in p.ambiguities)
    result = load(p)
    assert result.ok
    with open_target(target_url) as store:
        assert store.table_counts()["practitioners"] == 3 + 4
        targets = [
            link.target_id for link in store.load_links("cliniko:au1:4711", "practitioner").values()
        ]
        assert len(targets) == len(set(targets)) == 7  # one clinic row per Cliniko record
    assert plan(staging, target_url, now=NOW).writes() == 0


def test_patients_match_by_name_and_date_of_birth_only(
    clinic: Clinic, tmp_path: Path, target_url: str, rows: Any
) -> None:
    with open_target(target_url) as store:
        store.insert_rows(
            "patients",
            [
                rows.patient(first_name="ZOE", last_name="ngata", match_key="zoe|ngata|1990-01-02"),
                rows.patient(first_name="Aroha", last_name="Tane", match_key="aroha|tane|"),
            ],
        )
    clinic.patient(105, "Zoë", "Ngata", "1990-01-02")  # a Cliniko duplicate of 101
    p = plan(clinic.stage(tmp_path / "s.staging"), target_url, now=NOW)
    first = item(p, "patient", 101)
    assert (first.action, first.matched, first.target_id) == ("unchanged", True, 1)
    assert item(p, "patient", 105).action == "create"  # one clinic patient, one Cliniko patient
    assert item(p, "patient", 103).action == "create"  # no date of birth: never matched
    assert any(a.kind == "patient" and a.source_ids == ("105",) for a in p.ambiguities)
    assert all(a.key is None for a in p.ambiguities if a.kind == "patient")
    result = load(p)
    assert result.ok, result.verification.differences
    assert plan(tmp_path / "s.staging", target_url, now=NOW).writes() == 0


def test_slot_taken_by_the_clinics_own_booking(
    clinic: Clinic, tmp_path: Path, target_url: str, rows: Any
) -> None:
    start = NOW + timedelta(days=7)  # appointment 303: practitioner 11, 30 minutes
    with open_target(target_url) as store:
        [pid] = store.insert_rows("patients", [rows.patient(match_key="x|y|")])
        [prid, other] = store.insert_rows(
            "practitioners",
            [
                rows.practitioner("Ana Silva"),
                rows.practitioner("Someone Else"),
            ],
        )
        store.insert_rows(
            "appointments",
            [
                rows.appointment(
                    pid,
                    prid,
                    starts_at=start + timedelta(minutes=15),
                    status="booked",
                    imported_history=False,
                ),
                # A cancelled booking and someone else's do not take the slot.
                rows.appointment(
                    pid,
                    prid,
                    starts_at=NOW - timedelta(days=30),
                    status="cancelled",
                    imported_history=False,
                ),
                rows.appointment(
                    pid, other, starts_at=NOW - timedelta(days=30), imported_history=False
                ),
            ],
        )
    p = plan(clinic.stage(tmp_path / "s.staging"), target_url, now=NOW)
    taken = item(p, "appointment", 303)
    assert taken.skip_code == "slot_taken"
    assert "clinic id" in (taken.skip_reason or "")
    assert item(p, "appointment", 301).action == "create"
    assert item(p, "appointment", 304).action == "create"  # cancelled in Cliniko: no clash
    result = load(p)
    with open_target(target_url) as store:
        assert store.table_counts()["appointments"] == 3 + 3
        assert_quiet(store)
    assert result.ok


def test_a_load_of_a_stale_plan_plans_again(
    clinic: Clinic, tmp_path: Path, target_url: str
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    p = plan(staging, target_url, now=NOW)
    clinic.patient(106, "New", "Person", "1999-09-09")
    clinic.stage(staging)
    events: list[Any] = []
    result = load(p, sink=events.append)
    assert result.replanned
    assert any(getattr(e, "kind", None) == "notice" for e in events)
    assert result.plan.counts()["patient"]["create"] == 4
    assert result.ok


def test_time_passing_turns_upcoming_bookings_into_history(
    staging_path: Path, target_url: str
) -> None:
    load(staging_path, target_url, now=NOW)
    later = NOW + timedelta(days=8)  # appointment 303 was 7 days ahead
    p = plan(staging_path, target_url, now=later)
    [moved] = p.updates()
    assert (moved.kind, moved.source_id) == ("appointment", "303")
    assert {c.field: (c.old, c.new) for c in moved.changes} == {
        "status": ("booked", "completed"),
        "is_upcoming": (True, False),
    }
    assert load(p).ok
    assert plan(staging_path, target_url, now=later).writes() == 0


def test_a_partial_download_is_warned_about(
    clinic: Clinic, tmp_path: Path, target_url: str
) -> None:
    from staging import open_staging

    staging = clinic.stage(tmp_path / "s.staging")
    with open_staging(staging, create=False) as db:
        run_id = db.start_run(mode="topup", selection=["patients"], shard="au1")
        db.finish_run(run_id, "interrupted")
    p = plan(staging, target_url, now=NOW)
    assert any("not complete" in w for w in p.warnings)
    assert p.counts()["patient"]["create"] == 3
