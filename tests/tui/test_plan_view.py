"""tui.plan_view: a plan and a load result as rows and lines (pure, no app)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.api import (
    DownloadResult,
    FieldChange,
    LoadResult,
    Plan,
    PlanItem,
    Verification,
)
from engine.clinic_rows import Ref
from engine.verify import Difference, StatusOnly
from tui import plan_view as pv

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def make_plan(**items: list[PlanItem]) -> Plan:
    kinds = tuple(items)
    return Plan(
        staging_path="staging.sqlite",
        target_url="postgresql://clinic:***@db/clinic",
        source="cliniko:au1:1",
        selection=("patients",),
        kinds=kinds,
        now=NOW,
        items=dict(items),
    )


def sample_plan() -> Plan:
    return make_plan(
        practitioner=[
            PlanItem("practitioner", "11", "create", row={"display_name": "Dr A"}),
            PlanItem(
                "practitioner",
                "12",
                "unchanged",
                7,
                matched=True,
                source_hash="m:x",
                note="matched clinic practitioner 7 by name",
            ),
        ],
        patient=[
            PlanItem(
                "patient",
                "101",
                "update",
                3,
                changes=(FieldChange("email", "old@example.org", "new@example.org"),),
                source_hash="h",
            ),
            PlanItem(
                "patient",
                "102",
                "conflict",
                4,
                changes=(
                    FieldChange("occupation", "Baker", "Carpenter"),
                    FieldChange("date_of_birth", None, date(1980, 1, 2)),
                ),
            ),
            PlanItem("patient", "103", "unchanged", 5),
            PlanItem(
                "patient",
                "104",
                "skip",
                skip_code="deleted_in_cliniko",
                skip_reason="the patient was deleted in Cliniko",
            ),
        ],
        appointment=[
            PlanItem(
                "appointment",
                "301",
                "skip",
                skip_code="patient_not_imported",
                skip_reason="its patient (Cliniko id 999) is not in the clinic",
            ),
            PlanItem(
                "appointment",
                "302",
                "skip",
                skip_code="deleted_in_cliniko",
                skip_reason="the appointment was deleted in Cliniko",
            ),
            PlanItem(
                "appointment",
                "303",
                "create",
                row={"patient_id": Ref("patient", "105"), "notes": None},
                unresolved=("service",),
            ),
        ],
    )


def test_kind_rows_follow_the_plan_counts_in_kind_order() -> None:
    plan = sample_plan()
    rows = pv.kind_rows(plan)
    assert [r.kind for r in rows] == ["practitioner", "patient", "appointment"]
    assert [r.label for r in rows] == ["Practitioners", "Patients", "Appointments"]
    patient = rows[1].counts
    assert {a: patient[a] for a in pv.ACTIONS} == {
        "create": 0,
        "update": 1,
        "unchanged": 1,
        "conflict": 1,
        "skip": 1,
    }
    assert rows[0].counts["matched"] == 1


def test_headline_counts_changes_and_says_when_nothing_is_to_load() -> None:
    plan = sample_plan()
    # writes: 2 creates, 1 update, 1 link refresh (the matched practitioner)
    assert pv.plan_headline(plan) == (
        "4 changes to load: 2 new, 1 updated, 2 unchanged, 1 conflict, 3 skipped."
    )
    assert not pv.nothing_to_load(plan)
    quiet = make_plan(patient=[PlanItem("patient", "1", "unchanged", 1)])
    assert pv.nothing_to_load(quiet)
    assert pv.plan_headline(quiet).startswith(pv.NOTHING_TO_LOAD)
    assert "Verify postgresql://clinic:***@db/clinic" in pv.confirm_text(quiet)
    assert pv.confirm_text(plan) == "Load 4 changes into postgresql://clinic:***@db/clinic?"


def test_items_filter_by_kind_action_and_code() -> None:
    plan = sample_plan()
    assert [i.source_id for i in pv.select_items(plan, "patient")] == ["101", "102", "103", "104"]
    assert [i.source_id for i in pv.select_items(plan, "patient", "skip")] == ["104"]
    assert [
        i.source_id for i in pv.select_items(plan, "appointment", "skip", "deleted_in_cliniko")
    ] == ["302"]
    assert [i.source_id for i in pv.select_items(plan, None, "skip")] == ["104", "301", "302"]
    assert pv.action_filters(plan, "patient") == [None, "update", "unchanged", "conflict", "skip"]


def test_item_rows_say_changed_fields_reasons_and_notes() -> None:
    plan = sample_plan()
    rows = {r.source_id: r for r in pv.item_rows(list(plan.all_items()))}
    assert rows["101"].detail == "email"
    assert rows["101"].target_id == "3"
    assert rows["102"].detail == "occupation, date_of_birth; the clinic's edit is kept"
    assert rows["104"].detail == "the patient was deleted in Cliniko"
    assert rows["104"].target_id == ""
    assert rows["12"].detail == "matched clinic practitioner 7 by name"
    assert rows["11"].detail == "new"
    assert rows["303"].detail == "left empty: service"
    assert len(pv.item_rows(list(plan.all_items()), limit=3)) == 3


def test_field_changes_show_old_and_new_values() -> None:
    plan = sample_plan()
    conflict = plan.conflicts()[0]
    assert pv.change_rows(conflict) == [
        ("occupation", "Baker", "Carpenter"),
        ("date_of_birth", "(empty)", "1980-01-02"),
    ]
    assert pv.item_explanation(conflict) == pv.CONFLICT_EXPLANATION
    assert "clinic's edit is kept" in pv.CONFLICT_EXPLANATION
    assert pv.item_title(conflict) == "Patient · Cliniko id 102 · clinic id 4 · conflict"
    create = plan.items["appointment"][2]
    assert pv.create_rows(create) == [("patient_id", "new patient (Cliniko id 105)")]
    skip = plan.items["appointment"][0]
    assert pv.item_explanation(skip) == (
        "Skipped (patient_not_imported): its patient (Cliniko id 999) is not in the clinic"
    )


def test_format_value() -> None:
    assert pv.format_value(None) == "(empty)"
    assert pv.format_value("") == "(empty)"
    assert pv.format_value(True) == "yes"
    assert pv.format_value(Decimal("81.80")) == "81.80"
    assert pv.format_value(datetime(2025, 1, 2, 3, 4, tzinfo=UTC)) == "2025-01-02 03:04+00:00"
    assert pv.format_value([{"type": "Mobile"}]) == '[{"type": "Mobile"}]'
    assert pv.format_value("x" * 50, limit=10) == "x" * 9 + "…"


def test_skip_rows_group_by_code_largest_first() -> None:
    plan = sample_plan()
    rows = pv.skip_rows(plan)
    assert [(r.code, r.kind, r.count) for r in rows] == [
        ("deleted_in_cliniko", "patient", 1),
        ("deleted_in_cliniko", "appointment", 1),
        ("patient_not_imported", "appointment", 1),
    ]
    assert rows[0].words == "deleted in Cliniko"
    assert rows[2].words == "its patient is not in the clinic nor in this load"
    assert pv.skip_totals(plan) == [("deleted_in_cliniko", 2), ("patient_not_imported", 1)]


def test_notes_list_warnings_ambiguities_and_matches() -> None:
    plan = sample_plan()
    plan.warnings.append("the last download is interrupted")
    notes = pv.plan_notes(plan)
    assert notes[0] == "Warning: the last download is interrupted"
    assert notes[-1].startswith("1 record matched a clinic row by name")


def test_targets_are_checked_and_passwords_hidden() -> None:
    assert pv.check_target("") is not None
    assert pv.check_target("sqlite://clinic.db") is not None
    assert pv.check_target("sqlite:///clinic.db") is None
    assert pv.check_target("postgresql://u:pw@host/db") is None
    assert pv.check_target("./clinic.db") is None
    assert pv.has_password("postgresql://u:pw@host/db")
    assert not pv.has_password("postgresql://u@host/db")
    assert pv.redact_url("postgresql://u:pw@host/db") == "postgresql://u:***@host/db"


def test_skipped_csv_goes_next_to_the_staging_file() -> None:
    assert pv.skipped_csv_path(Path("data/clinic.staging")) == Path("data/clinic-skipped.csv")
    assert pv.skipped_csv_path(Path("staging.sqlite")) == Path("staging-skipped.csv")


def load_result(plan: Plan, **verification: Any) -> LoadResult:
    written = {
        "practitioner": {"created": 1, "updated": 0, "conflicts": 0},
        "patient": {"created": 0, "updated": 1, "conflicts": 1},
        "appointment": {"created": 1, "updated": 0, "conflicts": 0},
    }
    return LoadResult(
        plan=plan,
        run_id=1,
        written=written,
        verification=Verification(**verification),
        seconds=2.0,
    )


def test_outcome_rows_and_headline_after_a_load() -> None:
    result = load_result(
        sample_plan(), counts={"patient": {"expected": 3, "linked": 3}}, balances_checked=3
    )
    rows = pv.outcome_rows(result)
    assert [(r.kind, r.created, r.updated, r.unchanged, r.conflicts, r.skipped) for r in rows] == [
        ("practitioner", 1, 0, 1, 0, 0),
        ("patient", 0, 1, 1, 1, 1),
        ("appointment", 1, 0, 0, 0, 2),
    ]
    assert pv.outcome_totals(rows) == {
        "created": 2,
        "updated": 1,
        "unchanged": 2,
        "conflicts": 1,
        "skipped": 3,
    }
    assert pv.outcome_headline(result) == (
        "Loaded into postgresql://clinic:***@db/clinic in 2.0 s: 2 created, 1 updated, "
        "2 unchanged, 1 conflict, 3 skipped; verification ok."
    )
    assert pv.skipped_line(result, Path("s-skipped.csv"), 3) == (
        "Skipped 3 records (deleted_in_cliniko 2, patient_not_imported 1); each with its "
        "reason in s-skipped.csv."
    )


def test_verification_lines_ok_and_with_differences() -> None:
    ok = Verification(
        counts={"patient": {"expected": 3, "linked": 3}},
        balances_checked=3,
        status_only_open=[StatusOnly(4, "102", 1, Decimal("75"))],
    )
    lines = pv.verification_lines(ok)
    assert lines[0] == "Verification ok: 3 records linked in 1 kind, 3 patient balances checked."
    assert lines[1].startswith("1 patient balance rests on open-invoice status alone")
    assert lines[-1] == "Messages queued: 0; messaging off, AI off."
    bad = Verification(
        differences=[
            Difference("balance", "patient", "102", 4, "75.00", "0.00", "differs"),
            Difference("outbox", None, None, None, "0", "2", "messages are queued"),
        ],
        outbox_count=2,
    )
    lines = pv.verification_lines(bad)
    assert lines[0].startswith("Verification found 2 differences")
    assert (
        lines[1] == "  balance patient Cliniko 102 clinic 4: expected 75.00, found 0.00 (differs)"
    )
    assert lines[2] == "  outbox: expected 0, found 2 (messages are queued)"


def test_download_line() -> None:
    result = DownloadResult(
        run_id=2,
        mode="topup",
        outcome="complete",
        staging_path="staging.sqlite",
        shard="au1",
        account_name=None,
        requests=120,
        retries=3,
        rate_limited=1,
        records=4000,
        seconds=75.0,
    )
    assert pv.download_line(result) == (
        "Download run 2 (topup, complete): 120 requests (3 retries, 1 rate-limited), "
        "4,000 records in 1 min 15 s."
    )


def test_small_formatters() -> None:
    moment = datetime(2026, 3, 24, 14, 0, tzinfo=UTC)
    assert pv.format_day_time(moment) == "Tue 24 Mar 14:00"
    assert pv.format_seconds(2.04) == "2.0 s"
    assert pv.format_seconds(3700) == "1 h 01 min"
    assert pv.format_money(Decimal("-1234.5")) == "-1,234.50"
    assert pv.shorten("abcdef", 4) == "abc…"
    assert pv.shorten(None, 4) == ""
    assert pv.kind_label("group_appointment") == "Group appointments"
    assert pv.kind_label("new_kind") == "New kind"
    assert pv.code_words("slot_taken").startswith("the practitioner is already booked")
