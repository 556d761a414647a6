"""load(): batched, idempotent, verified; rerunnable after being stopped at any point."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.events import LoadProgress
from engine.load import load
from engine.plan import plan
from engine.skip_report import write_skip_report
from target import open_target
from tests.backends import Clinics

from .clinic import NOW, Clinic
from .conftest import SOURCE, assert_quiet, by_source, snapshot


def test_first_load_creates_every_kind_once_with_the_right_fields(
    staging_path: Path, target_url: str, open_store: Any
) -> None:
    events: list[Any] = []
    result = load(staging_path, target_url, now=NOW, sink=events.append)
    assert result.ok, result.verification.differences
    store = open_store()
    assert_quiet(store)
    counts = store.table_counts()
    assert {t: counts[t] for t in ("locations", "practitioners", "services", "patients")} == {
        "locations": 1,
        "practitioners": 2,
        "services": 2,
        "patients": 3,
    }
    assert counts["appointments"] == 4
    assert counts["group_appointments"] == 1
    assert counts["group_attendances"] == 1
    assert counts["treatment_notes"] == 1  # the draft and the deleted note are skipped
    assert counts["invoices"] == 4  # the deleted invoice is skipped
    assert counts["invoice_lines"] == 3
    assert counts["message_outbox"] == 0
    assert counts["import_runs"] == 1

    patients = by_source(store, "patient")
    zoe = patients["101"]
    assert (zoe["first_name"], zoe["last_name"]) == ("Zoë", "Ngata")
    assert zoe["date_of_birth"] == date(1990, 1, 2)
    assert zoe["medical_alerts"] == ["Penicillin allergy"]
    assert zoe["match_key"] == "zoe|ngata|1990-01-02"
    assert zoe["phones"] == [
        {"type": "Mobile", "number": "61444444444"},
        {"type": "Home", "number": "61399999999"},
    ]
    practitioners = by_source(store, "practitioner")
    services = by_source(store, "service")
    assert services["21"]["default_price"] == Decimal("120.00")
    appointments = by_source(store, "appointment")
    first = appointments["301"]
    assert first["patient_id"] == store.load_links(SOURCE, "patient")["101"].target_id
    assert first["practitioner_id"] == store.load_links(SOURCE, "practitioner")["11"].target_id
    assert first["service_id"] == store.load_links(SOURCE, "service")["21"].target_id
    assert first["status"] == "completed"
    assert first["imported_history"] is True
    assert first["starts_at"] == NOW - timedelta(days=30)
    assert appointments["303"]["status"] == "booked"
    assert appointments["304"]["status"] == "cancelled"
    assert practitioners["12"]["designation"] == "Physio"
    note = by_source(store, "treatment_note")["601"]
    assert note["read_only"] is True and note["finalised"] is True
    assert "Assessment: Answers to text questions" in note["body_text"]
    attendance = by_source(store, "attendance")["501"]
    assert attendance["status"] == "completed"

    # Progress: a bar per kind, for planning and for loading.
    done = {(e.phase, e.record_kind) for e in events if isinstance(e, LoadProgress)}
    assert ("load", "invoice") in done and ("plan", "patient") in done
    # Audit entries: ids and field names only.
    for entry in store.iter_rows("audit_log"):
        assert "Zo" not in json.dumps(entry["detail"], ensure_ascii=False)


def test_invoices_keep_their_numbers_lines_and_balances(
    staging_path: Path, target_url: str, open_store: Any
) -> None:
    result = load(staging_path, target_url, now=NOW)
    store = open_store()
    invoices = by_source(store, "invoice")
    assert {sid: inv["number"] for sid, inv in invoices.items()} == {
        "701": "5001",
        "702": "5002",
        "703": "5003",
        "704": "5004",
    }
    assert {sid: inv["status"] for sid, inv in invoices.items()} == {
        "701": "paid",
        "702": "open",
        "703": "closed",
        "704": "credit",
    }
    lines = sorted(
        (row["invoice_id"], row["position"], row["description"], row["total_including_tax"])
        for row in store.iter_rows("invoice_lines")
    )
    paid_id = invoices["701"]["id"]
    assert lines[:2] == [
        (paid_id, 0, "Initial Consultation", Decimal("100.00")),
        (paid_id, 1, "Taping", Decimal("20.00")),
    ]
    assert (
        invoices["701"]["appointment_id"]
        == store.load_links(SOURCE, "appointment")["301"].target_id
    )
    # The balance rule: paid and closed settle, open carries, credit is negative.
    patients = store.load_links(SOURCE, "patient")
    balances = store.balances()
    assert balances[patients["101"].target_id] == Decimal("80.00")  # 120 paid + 80 open
    assert balances[patients["102"].target_id] == Decimal("-25.00")  # 60 closed + -25 credit
    assert balances[patients["103"].target_id] == Decimal("0")
    settlements = sorted(
        (row["invoice_id"], row["amount"], row["kind"]) for row in store.iter_rows("settlements")
    )
    assert settlements == [
        (paid_id, Decimal("120.00"), "reconciliation"),
        (invoices["703"]["id"], Decimal("60.00"), "reconciliation"),
    ]
    spot = {s.patient_source_id for s in result.verification.status_only_open}
    assert spot == {"101"}


def test_second_load_writes_nothing_but_a_run_row(
    staging_path: Path, target_url: str, open_store: Any
) -> None:
    load(staging_path, target_url, now=NOW)
    store = open_store()
    before = snapshot(store)
    audit_before = store.table_counts()["audit_log"]
    links_before = list(store.iter_rows("import_links"))
    result = load(staging_path, target_url, now=NOW)
    assert result.ok
    assert result.plan.writes() == 0
    assert snapshot(store) == before
    assert list(store.iter_rows("import_links")) == links_before
    assert store.table_counts()["audit_log"] == audit_before
    runs = list(store.iter_rows("import_runs"))
    assert len(runs) == 2
    assert runs[1]["outcome"] == "complete"
    assert runs[1]["verification"]["ok"] is True
    assert_quiet(store)


def test_a_changed_record_is_updated_with_its_changed_fields(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    clinic.touch("patients", 102, email="peter.new@example.org", occupation="Carpenter")
    clinic.touch(
        "individual_appointments",
        302,
        notes="Bring the scan",
        ends_at=clinic.get("individual_appointments", 302)["ends_at"].replace(":30:", ":45:"),
    )
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    [patient] = p.updates()[:1]
    assert (patient.kind, patient.source_id) == ("patient", "102")
    assert patient.changed_fields() == ["email", "occupation"]
    changes = {c.field: (c.old, c.new) for c in patient.changes}
    assert changes["email"] == ("patient102@example.org", "peter.new@example.org")
    appointment = [u for u in p.updates() if u.kind == "appointment"]
    assert [u.changed_fields() for u in appointment] == [["ends_at", "notes"]]
    assert p.totals()["update"] == 2
    result = load(p)
    assert result.ok
    store = open_store()
    assert by_source(store, "patient")["102"]["occupation"] == "Carpenter"
    assert by_source(store, "appointment")["302"]["notes"] == "Bring the scan"
    updates = [e for e in store.iter_rows("audit_log") if e["action"] == "import_update"]
    assert [e["detail"]["fields"] for e in updates] == [
        ["email", "occupation"],
        ["ends_at", "notes"],
    ]
    assert plan(staging, target_url, now=NOW).writes() == 0
    assert_quiet(store)


def test_a_clinic_edit_then_a_cliniko_change_is_a_conflict_that_keeps_the_clinics_edit(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    store = open_store()
    zoe = store.load_links(SOURCE, "patient")["101"].target_id
    store.update_rows("patients", [(zoe, {"email": "edited.in.clinic@example.org"})])
    clinic.touch("patients", 101, email="changed.in.cliniko@example.org")
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    [conflict] = p.conflicts()
    assert (conflict.kind, conflict.source_id, conflict.target_id) == ("patient", "101", zoe)
    assert {c.field: (c.old, c.new) for c in conflict.changes} == {
        "email": ("edited.in.clinic@example.org", "changed.in.cliniko@example.org")
    }
    doc = p.to_json()
    assert doc["conflicts"] == [
        {
            "kind": "patient",
            "cliniko_id": "101",
            "action": "conflict",
            "target_id": zoe,
            "fields": ["email"],
            "note": conflict.note,
        }
    ]
    result = load(p)
    assert result.ok
    assert store.fetch_rows("patients", [zoe])[zoe]["email"] == "edited.in.clinic@example.org"
    assert [
        e["detail"] for e in store.iter_rows("audit_log") if e["action"] == "import_conflict"
    ] == [{"cliniko_id": "101", "fields": ["email"]}]
    # Still a conflict next time: the clinic's edit is never overwritten silently.
    assert [c.source_id for c in plan(staging, target_url, now=NOW).conflicts()] == ["101"]
    # A clinic edit alone (no change in Cliniko) is simply kept.
    store.update_rows("patients", [(zoe, {"occupation": "Nurse"})])
    assert plan(staging, target_url, now=NOW).totals()["update"] == 0


def test_an_edit_made_between_plan_and_load_becomes_a_conflict(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    clinic.touch("patients", 102, occupation="Carpenter")
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    assert [u.source_id for u in p.updates()] == ["102"]
    store = open_store()
    peter = store.load_links(SOURCE, "patient")["102"].target_id
    store.update_rows("patients", [(peter, {"occupation": "Baker"})])
    result = load(p)
    assert not result.replanned  # same row counts: the per-row re-check is what catches it
    assert [c.source_id for c in result.plan.conflicts()] == ["102"]
    assert store.fetch_rows("patients", [peter])[peter]["occupation"] == "Baker"


def test_invoice_lines_and_settlements_follow_changes_without_duplicates(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    staging = clinic.stage(tmp_path / "s.staging")
    load(staging, target_url, now=NOW)
    store = open_store()
    invoice_id = store.load_links(SOURCE, "invoice")["702"].target_id
    # The open invoice is paid in Cliniko, and gains a line.
    clinic.touch("invoices", 702, status=20, total_amount="95.00")
    clinic.invoice_item(804, 702, "Theraband", "15.00")
    clinic.stage(staging)
    p = plan(staging, target_url, now=NOW)
    [update] = p.updates()
    assert set(update.changed_fields()) == {
        "status",
        "status_code",
        "total",
        "outstanding",
        "outstanding_basis",
        "settlement_amount",
        "status_only_open",
        "lines",
    }
    assert load(p).ok
    lines = [r for r in store.iter_rows("invoice_lines") if r["invoice_id"] == invoice_id]
    assert sorted(r["description"] for r in lines) == ["Follow-up", "Theraband"]
    ours = [r for r in store.iter_rows("settlements") if r["invoice_id"] == invoice_id]
    assert [(r["amount"], r["kind"]) for r in ours] == [(Decimal("95.00"), "reconciliation")]
    # Reopened in Cliniko, a line deleted: the settlement is updated, not duplicated.
    clinic.touch("invoices", 702, status=10)
    clinic.set_variant("invoice_items", 804, "deleted")
    clinic.get("invoice_items", 804)["deleted_at"] = "2024-06-01T00:00:00Z"
    clinic.stage(staging)
    assert load(staging, target_url, now=NOW).ok
    ours = [r for r in store.iter_rows("settlements") if r["invoice_id"] == invoice_id]
    assert [r["amount"] for r in ours] == [Decimal("0.00")]
    lines = [r for r in store.iter_rows("invoice_lines") if r["invoice_id"] == invoice_id]
    assert [r["description"] for r in lines] == ["Follow-up"]
    zoe = store.load_links(SOURCE, "patient")["101"].target_id
    assert store.balances()[zoe] == Decimal("95.00")
    assert plan(staging, target_url, now=NOW).writes() == 0
    assert_quiet(store)


def test_nul_characters_are_dropped_the_same_on_every_store(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    """PostgreSQL refuses NUL in text and JSON, SQLite keeps it: the mapping drops it, so both
    stores load the same rows and a rerun writes nothing."""
    clinic.patient(106, "Ma\x00ia", "Te\x00Ao", "1999-09-09")
    clinic.note(610, 106, 11, content={"sections": [{"name": "S\x00", "questions": []}]})
    staging = clinic.stage(tmp_path / "s.staging")
    result = load(staging, target_url, now=NOW)
    assert result.rejected == [], [i.skip_reason for i in result.rejected]
    assert result.ok, result.verification.differences
    store = open_store()
    patient = store.load_links(SOURCE, "patient")["106"].target_id
    [row] = [r for r in store.iter_rows("patients", ["id", "first_name"]) if r["id"] == patient]
    assert row["first_name"] == "Maia"
    assert "610" in by_source(store, "treatment_note")
    assert plan(staging, target_url, now=NOW).writes() == 0


def test_a_value_the_clinic_cannot_keep_is_skipped_at_plan_time_and_the_rest_loads(
    clinic: Clinic, tmp_path: Path, target_url: str, open_store: Any
) -> None:
    clinic.invoice(720, 102, 10, "10.1234567")  # finer than the store keeps exactly
    clinic.invoice(721, 102, 10, "10.00")
    staging = clinic.stage(tmp_path / "s.staging")
    result = load(staging, target_url, now=NOW)
    assert result.rejected == []  # the plan saw it: nothing reaches the store to be refused
    [item] = [i for i in result.plan.skipped() if i.source_id == "720"]
    assert item.skip_code == "malformed_record"
    assert item.skip_reason == "total_amount: has more than 6 decimal places"
    assert result.ok, result.verification.differences
    assert set(by_source(open_store(), "invoice")) == {"701", "702", "703", "704", "721"}
    assert write_skip_report(result, tmp_path / "skipped.csv") == 6
    assert plan(staging, target_url, now=NOW).writes() == 0  # a skip every time, never a write


def test_a_row_the_clinic_refuses_at_load_time_is_skipped_and_the_rest_loads(
    clinic: Clinic,
    tmp_path: Path,
    target_url: str,
    open_store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loader's safety net, for a refusal the plan cannot foresee (a constraint)."""
    from target import InvalidValue

    clinic.invoice(721, 102, 10, "10.00")
    staging = clinic.stage(tmp_path / "s.staging")
    backend_class = type(open_store())
    real = backend_class.insert_rows

    def refusing(self: Any, table: str, rows: Any) -> list[int]:
        for i, row in enumerate(rows):
            if table == "invoices" and row.get("number") == "1721":
                raise InvalidValue(
                    "invoices.total: refused", table=table, column="total", row_index=i
                )
        return real(self, table, rows)

    monkeypatch.setattr(backend_class, "insert_rows", refusing)
    result = load(staging, target_url, now=NOW)
    assert [(i.kind, i.source_id, i.skip_code) for i in result.rejected] == [
        ("invoice", "721", "rejected_by_clinic")
    ]
    assert "invoices.total" in (result.rejected[0].skip_reason or "")
    assert result.ok, result.verification.differences
    assert set(by_source(open_store(), "invoice")) == {"701", "702", "703", "704"}
    assert write_skip_report(result, tmp_path / "skipped.csv") == 6


def test_verification_reports_every_difference(
    staging_path: Path, target_url: str, open_store: Any
) -> None:
    load(staging_path, target_url, now=NOW)
    store = open_store()
    invoice = store.load_links(SOURCE, "invoice")["702"].target_id
    store.update_rows("invoices", [(invoice, {"total": Decimal("70.00")})])
    result = load(staging_path, target_url, now=NOW)
    assert not result.ok
    [difference] = result.verification.differences
    assert (difference.check, difference.source_id) == ("balance", "101")
    assert (difference.expected, difference.actual) == ("80.00", "70.00")
    runs = list(store.iter_rows("import_runs"))
    assert runs[-1]["outcome"] == "verification_failed"


def test_skip_report_csv(staging_path: Path, target_url: str, tmp_path: Path) -> None:
    p = plan(staging_path, target_url, now=NOW)
    path = tmp_path / "skipped.csv"
    assert write_skip_report(p, path) == 5
    with path.open(newline="", encoding="utf-8") as fh:
        found = list(csv.DictReader(fh))
    assert found[0].keys() == {"kind", "cliniko_id", "reason_code", "reason"}
    assert {(r["kind"], r["cliniko_id"], r["reason_code"]) for r in found} == {
        ("patient", "104", "deleted_in_cliniko"),
        ("attendance", "502", "covered_by_appointment"),
        ("treatment_note", "602", "draft_note"),
        ("treatment_note", "603", "deleted_in_cliniko"),
        ("invoice", "705", "deleted_in_cliniko"),
    }
    assert all(r["reason"] for r in found)
    assert "Zo" not in path.read_text(encoding="utf-8")
    assert path.stat().st_mode & 0o777 == 0o600


# --- interrupted loads ---------------------------------------------------------------------


def _bigger_clinic() -> Clinic:
    """The small clinic plus enough rows for many batches of every kind."""
    from .clinic import small_clinic

    c = small_clinic()
    for n in range(40):
        c.patient(1000 + n, f"P{n}", "Test", f"19{50 + n % 40}-02-03")
        c.practitioner(20 + n % 3, "Extra", f"Practitioner {n % 3}")
    for n in range(120):
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=n)
        c.appointment(3000 + n, 1000 + n % 40, 11 + n % 2, 21, start)
        c.note(6000 + n, 1000 + n % 40, 11, draft=n % 10 == 0)
    for n in range(60):
        c.invoice(7000 + n, 1000 + n % 40, (10, 20, 30, 40)[n % 4], f"{10 + n}.50")
        c.invoice_item(8000 + n, 7000 + n, "Item", f"{10 + n}.50")
    return c


@pytest.fixture
def bigger(tmp_path: Path) -> Path:
    return _bigger_clinic().stage(tmp_path / "bigger.staging")


def _seed(url: str, rows: Any) -> None:
    """What the clinic held before the import: namesakes of some Cliniko records."""
    with open_target(url) as store:
        store.insert_rows(
            "practitioners",
            [rows.practitioner("Ana Silva"), rows.practitioner("Extra Practitioner 1")],
        )
        store.insert_rows(
            "patients",
            [
                rows.patient(first_name="P3", last_name="Test", match_key="p3|test|1953-02-03"),
                rows.patient(first_name="P3", last_name="Test", match_key="p3|test|1953-02-03"),
            ],
        )


@pytest.mark.parametrize("existing", [False, True], ids=["empty clinic", "clinic with namesakes"])
def test_a_load_interrupted_inside_a_batch_reruns_to_the_same_clinic(
    bigger: Path, clinics: Clinics, monkeypatch: pytest.MonkeyPatch, rows: Any, existing: bool
) -> None:
    clean_url = clinics.url("clean")
    url = clinics.url("interrupted")
    if existing:
        _seed(clean_url, rows)
        _seed(url, rows)
    clean = load(bigger, clean_url, now=NOW, batch_size=7)
    assert clean.ok
    assert clean.plan.totals()["matched"] == (3 if existing else 0)
    with open_target(clean_url) as store:
        expected = snapshot(store)

    store_class = clinics.store_class
    real = store_class.upsert_links
    for fail_at in (1, 9, 23):  # several stops, each inside a batch, after its rows

        def failing(
            self: Any,
            *args: Any,
            _calls: list[int] = [0],  # noqa: B006 - one counter per stop
            _at: int = fail_at,
            **kwargs: Any,
        ) -> None:
            _calls[0] += 1
            if _calls[0] == _at:
                raise RuntimeError("stopped mid-batch")
            real(self, *args, **kwargs)

        monkeypatch.setattr(store_class, "upsert_links", failing)
        with pytest.raises(RuntimeError, match="stopped mid-batch"):
            load(bigger, url, now=NOW, batch_size=7)
        monkeypatch.setattr(store_class, "upsert_links", real)
    result = load(bigger, url, now=NOW, batch_size=7)
    assert result.ok, result.verification.differences
    with open_target(url) as store:
        assert snapshot(store) == expected
        assert_quiet(store)
        outcomes = [r["outcome"] for r in store.iter_rows("import_runs")]
        assert outcomes == ["failed", "failed", "failed", "complete"]
        targets = [link.target_id for link in store.load_links(SOURCE, "patient").values()]
        assert len(targets) == len(set(targets))


def test_a_load_killed_with_sigkill_reruns_to_the_same_clinic(
    bigger: Path, clinics: Clinics
) -> None:
    import signal
    import subprocess
    import sys

    clean_url = clinics.url("clean")
    assert load(bigger, clean_url, now=NOW, batch_size=5).ok
    with open_target(clean_url) as store:
        expected = snapshot(store)

    url = clinics.url("killed")
    child = (
        "import sys, time\n"
        "from datetime import datetime, UTC\n"
        "from engine.events import LoadProgress\n"
        "from engine.load import load\n"
        "def sink(e):\n"
        "    if isinstance(e, LoadProgress) and e.phase == 'load' and e.done:\n"
        "        print(e.record_kind, e.done, flush=True)\n"
        "        time.sleep(0.01)\n"
        f"load({str(bigger)!r}, {url!r}, now=datetime(2024, 6, 1, tzinfo=UTC), batch_size=5,"
        " sink=sink)\n"
        "print('finished', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if line.startswith("appointment") and len(seen) > 12:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, seen
    assert "finished" not in seen
    with open_target(url) as store:
        partial = store.table_counts()
    assert 0 < partial["appointments"] < 124

    result = load(bigger, url, now=NOW, batch_size=5)
    assert result.ok, result.verification.differences
    with open_target(url) as store:
        assert snapshot(store) == expected
        assert_quiet(store)
