"""Read-only queries: counts, browsing and search, record detail, anomalies; run history."""

from __future__ import annotations

from pathlib import Path

import pytest
from staging_records import appointment, deleted_patient_stub, link, patient, referral_source, res

from engine.resources import RESOURCES
from staging import REF_TARGETS, RunCounters, StagingDB, open_staging


def test_every_catalogue_ref_has_a_target(staging: StagingDB) -> None:
    refs = {ref for r in RESOURCES for ref in r.refs}
    assert refs == set(REF_TARGETS)
    for targets in REF_TARGETS.values():
        assert all(t in {r.name for r in RESOURCES} for t in targets)


def _clinic(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    writer.write_page(
        res("patients"),
        "active",
        [
            patient(1, first_name="Zoë", last_name="Quill"),
            patient(2, first_name="ANNA", last_name="Smith"),
            patient(3, first_name="Bob", last_name="100%_real"),
        ],
    )
    archived = patient(2, first_name="ANNA", last_name="Smith", archived_at="2020-01-01T00:00:00Z")
    writer.write_page(res("patients"), "archived", [archived])
    writer.write_page(res("patients"), "deleted", [deleted_patient_stub(4)])
    writer.write_page(
        res("individual_appointments"),
        "active",
        [appointment(10, patient_id=1), appointment(11, patient_id=99), appointment(12, 99)],
    )
    writer.write_page(
        res("individual_appointments"),
        "cancelled",
        [appointment(13, patient_id=2, cancelled_at="2020-02-02T00:00:00Z")],
    )
    writer.write_page(res("patients"), "active", ["garbage", patient("x")])


def test_table_counts(staging: StagingDB, run_id: int) -> None:
    _clinic(staging, run_id)
    counts = staging.table_counts()
    assert list(counts) == [r.name for r in RESOURCES]
    p = counts["patients"]
    assert p.total == 4
    assert p.by_state == {"active": 2, "archived": 1, "deleted": 1}
    assert p.by_variant == {"active": 3, "archived": 1, "deleted": 1}
    assert p.quarantined == 2
    a = counts["individual_appointments"]
    assert (a.total, a.by_state) == (4, {"active": 3, "cancelled": 1})
    assert counts["contacts"].total == 0


def test_rows_search_and_paging(staging: StagingDB, run_id: int) -> None:
    _clinic(staging, run_id)
    assert [r.id for r in staging.rows("patients")] == ["1", "2", "3", "4"]
    assert [r.id for r in staging.rows("patients", limit=2, offset=1)] == ["2", "3"]
    # Case-insensitive, ASCII and beyond.
    assert [r.id for r in staging.rows("patients", search="anna")] == ["2"]
    assert [r.id for r in staging.rows("patients", search="ZOË")] == ["1"]
    # LIKE wildcards in the search are literal.
    assert [r.id for r in staging.rows("patients", search="100%_")] == ["3"]
    assert [r.id for r in staging.rows("patients", search="%")] == ["3"]
    assert staging.rows("patients", search="1%0") == []
    assert staging.count_rows("patients", search="smith") == 1
    assert staging.count_rows("patients") == 4
    with pytest.raises(ValueError, match="unknown resource"):
        staging.rows("patients; DROP TABLE patients")


def test_row_detail(staging: StagingDB, run_id: int) -> None:
    _clinic(staging, run_id)
    row = staging.row("patients", 2)
    assert row is not None
    assert (row.id, row.state, row.variants) == ("2", "archived", ("active", "archived"))
    assert row.refs == {
        "concession_type": "123",
        "referring_doctor": "123",
        "merged_with_patient": None,
    }
    assert row.data()["first_name"] == "ANNA"
    assert staging.row("patients", "002") == row
    assert staging.row("patients", 404) is None


def test_anomalies_only_for_downloaded_targets(staging: StagingDB, run_id: int) -> None:
    _clinic(staging, run_id)
    anomalies = staging.anomalies()
    missing = {(a.resource, a.detail): a for a in anomalies if a.kind == "missing_reference"}
    # Patient 99 is referenced twice and was never staged.
    patient_ref = missing[("individual_appointments", "patient_id")]
    assert (patient_ref.count, patient_ref.distinct, patient_ref.sample_ids) == (2, 1, ("99",))
    assert patient_ref.targets == ("patients",)
    # Practitioners, businesses, concession types ... were selected ("appointment_history"
    # closes over "practitioners") but none is staged: every reference to them is missing.
    assert ("individual_appointments", "practitioner_id") in missing
    assert ("patients", "concession_type_id") in missing
    # Invoices were not part of any download: nothing is said about them.
    assert not any(a.detail == "invoice_id" for a in anomalies)
    quarantined = [a for a in anomalies if a.kind == "quarantined"]
    assert {(a.resource, a.detail, a.count) for a in quarantined} == {
        ("patients", "record is not a JSON object", 1),
        ("patients", "id is not a positive 64-bit integer", 1),
    }


def test_a_booking_may_be_individual_or_group(tmp_path: Path) -> None:
    with open_staging(tmp_path / "b.staging", create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["individual_appointments"])
        writer = staging.writer(run_id)
        writer.write_page(res("individual_appointments"), "active", [appointment(1)])
        group = {
            "id": 2,
            "created_at": "2016-01-01T00:00:00Z",
            "links": {"self": "https://api.au1.cliniko.com/v1/group_appointments/2"},
        }
        writer.write_page(res("group_appointments"), "active", [group])
        attendees = [
            {"id": n, "booking": link("bookings", b), "patient": None, "created_at": "2016-01-01"}
            for n, b in ((1, 1), (2, 2), (3, 3))
        ]
        writer.write_page(res("attendees"), "active", attendees)
        [booking] = [a for a in staging.anomalies() if a.detail == "booking_id"]
        assert (booking.count, booking.sample_ids) == (1, ("3",))
        assert booking.targets == ("individual_appointments", "group_appointments")


def test_referrers_may_be_patients_or_contacts(tmp_path: Path) -> None:
    with open_staging(tmp_path / "r.staging", create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["patients"])
        writer = staging.writer(run_id)
        writer.write_page(res("patients"), "active", [patient(1), patient(2)])
        contact = {"id": 9, "first_name": "Dr", "created_at": "2016-01-01T00:00:00Z"}
        writer.write_page(res("contacts"), "active", [contact])
        sources = [
            referral_source(1, referrer=("patients", 2)),
            referral_source(2, referrer=("contacts", 9)),
        ]
        writer.write_page(res("referral_sources"), "active", sources)
        assert not any(a.detail == "referrer_id" for a in staging.anomalies())
        writer.write_page(
            res("referral_sources"), "active", [referral_source(3, referrer=("contacts", 8))]
        )
        [referrer] = [a for a in staging.anomalies() if a.detail == "referrer_id"]
        assert referrer.sample_ids == ("8",)


def test_iterating_for_the_load(staging: StagingDB, run_id: int) -> None:
    _clinic(staging, run_id)
    raws = list(staging.iter_raw("individual_appointments"))
    assert [r["id"] for r in raws] == [10, 11, 12, 13]
    records = list(staging.iter_records("patients"))
    assert [(r.id, r.state) for r in records] == [
        ("1", "active"),
        ("2", "archived"),
        ("3", "active"),
        ("4", "deleted"),
    ]
    assert staging.staged_ids("patients", "archived") == {"2"}
    with pytest.raises(ValueError, match="unknown variant"):
        staging.staged_ids("patients", "gone")


def test_ids_updated_since(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    writer.write_page(
        res("practitioners"),
        "active",
        [
            {"id": 10, "created_at": "2019-01-01T00:00:00Z", "updated_at": "2019-01-01T00:00:00Z"},
            {"id": 9, "created_at": "2019-01-01T00:00:00Z", "updated_at": "2021-01-01T00:00:00Z"},
        ],
    )
    assert staging.ids_updated_since("practitioners", None) == ["9", "10"]
    assert staging.ids_updated_since("practitioners", "2020-01-01T00:00:00Z") == ["9"]


# ---------------------------------------------------------------------------------------------
# Runs


def test_run_history_and_resume_lookups(staging: StagingDB) -> None:
    assert staging.last_complete_run() is None
    assert staging.incomplete_run() is None
    first = staging.start_run(
        mode="full", selection=["patients"], shard="au1", api_base_host="api.au1.cliniko.com"
    )
    running = staging.incomplete_run()
    assert running is not None
    assert (running.run_id, running.outcome, running.mode) == (first, "running", "full")
    assert running.selection == ("patients",)
    staging.finish_run(first, "complete", RunCounters(requests=12, retries=1, records=1100))
    done = staging.last_complete_run()
    assert done is not None
    assert (done.run_id, done.requests, done.retries, done.records) == (first, 12, 1, 1100)
    assert done.finished_at is not None
    assert staging.incomplete_run() is None
    assert staging.get_meta("last_complete_run_started_at") == done.started_at
    assert staging.get_meta("shard") == "au1"

    second = staging.start_run(mode="topup", selection=["patients"])
    staging.finish_run(second, "interrupted", error="network went away")
    resume = staging.incomplete_run()
    assert resume is not None
    assert (resume.run_id, resume.outcome, resume.error) == (
        second,
        "interrupted",
        "network went away",
    )
    last = staging.last_complete_run()
    assert last is not None
    assert last.run_id == first
    assert [r.run_id for r in staging.runs()] == [first, second]


def test_run_arguments_are_checked(staging: StagingDB) -> None:
    with pytest.raises(ValueError, match="run mode"):
        staging.start_run(mode="sideways", selection=[])  # type: ignore[arg-type]
    run_id = staging.start_run(mode="full", selection=[])
    with pytest.raises(ValueError, match="cannot finish as 'running'"):
        staging.finish_run(run_id, "running")
    with pytest.raises(ValueError, match="no run 999"):
        staging.finish_run(999, "complete")


def test_checkpoints_by_scope(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    writer.write_page(res("patients"), "active", [patient(1)], ("crawl", '{"p": 1}', False))
    writer.write_page(res("patients"), "active", [patient(2)], ("topup:7", '{"p": 9}', True))
    assert staging.get_checkpoints("crawl") == {("patients", "active"): ('{"p": 1}', False)}
    assert staging.get_checkpoints("topup:7") == {("patients", "active"): ('{"p": 9}', True)}
    assert staging.clear_checkpoints("crawl") == 1
    assert staging.get_checkpoints("crawl") == {}
    assert staging.get_checkpoints("topup:7") != {}


def test_meta_round_trip(staging: StagingDB) -> None:
    staging.set_meta("pending_run", '{"scope": "full"}')
    assert staging.get_meta("pending_run") == '{"scope": "full"}'
    staging.delete_meta("pending_run")
    assert staging.get_meta("pending_run") is None
