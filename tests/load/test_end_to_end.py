"""End to end: download a synthetic Cliniko clinic from the sandbox, load it into a clinic
store, and check the clinic against the SANDBOX'S OWN TRUTH (its records as the API renders
them, and the payments it keeps that the API does not show), never against what the engine
itself staged, planned or mapped.

One `small` clinic (fixed seed and anchor, `now` passed explicitly) is downloaded and loaded
once for the module and shared by the read-only checks; the tests that change data (a top-up
after changes in Cliniko, a conflict) build a clinic of their own the same way, so each test
holds whatever the others do or in whatever order they run.

Both clinic store backends, with the same assertions: a SQLite file, and a PostgreSQL schema
reached over TCP as a role with a password (given in the URL: it must never be shown).
"""

from __future__ import annotations

import json
import stat
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cliniko import parse_key
from engine.extract import DownloadOptions, DownloadResult, download
from engine.load import LoadResult, load
from engine.plan import Plan, plan
from sandbox.runner import SandboxHandle, running_sandbox
from target import ClinicBackend, open_target
from tests.backends import Clinics, make_clinics

pytestmark = pytest.mark.integration
BACKEND_SCOPE = "module"  # one shared download and load per backend

FAST = (200, 1.0)  # the 200-per-window rule on a clock sixty times faster than Cliniko's
SEED = 7
ANCHOR = date(2025, 6, 2)  # the sandbox's "today": its data is fixed by (seed, anchor)
NOW = datetime(2025, 6, 2, tzinfo=UTC)  # the load's "now": upcoming vs past bookings


# --------------------------------------------------------------------------------------------
# Running the pipeline.


@dataclass
class Run:
    sandbox: SandboxHandle
    folder: Path
    staging: Path
    clinics: Clinics
    url: str
    result: LoadResult

    @property
    def source(self) -> str:
        return self.result.plan.source

    def open(self) -> ClinicBackend:
        return open_target(self.url)

    def download(self) -> DownloadResult:
        return download_into(self.sandbox, self.staging)

    def plan(self) -> Plan:
        return plan(self.staging, self.url, now=NOW)


def download_into(sandbox: SandboxHandle, staging: Path) -> DownloadResult:
    opts = DownloadOptions(staging_path=staging, base_url=sandbox.base_url, rate_limit=FAST)
    result: DownloadResult = anyio.run(download, parse_key(sandbox.api_key), opts, _ignore)
    assert result.outcome == "complete"
    return result


def _ignore(_event: object) -> None:
    pass


def first_run(sandbox: SandboxHandle, clinics: Clinics) -> Run:
    folder = clinics.folder
    staging = folder / "clinic.staging"
    assert download_into(sandbox, staging).mode == "full"
    url = clinics.url("clinic", tcp=True)
    result = load(staging, url, now=NOW)
    assert result.verification.ok, result.verification.differences[:10]
    return Run(sandbox, folder, staging, clinics, url, result)


@pytest.fixture(scope="module")
def shared(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """One download and one load of a small clinic, shared by the read-only checks."""
    clinics = make_clinics(request, backend, tmp_path_factory.mktemp("e2e"))
    with running_sandbox(size="small", seed=SEED, rate_limit=FAST, anchor=ANCHOR) as handle:
        yield first_run(handle, clinics)


@pytest.fixture
def own(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Run]:
    """The same clinic, downloaded and loaded for one test that changes it."""
    clinics = make_clinics(request, backend, tmp_path)
    with running_sandbox(size="small", seed=SEED, rate_limit=FAST, anchor=ANCHOR) as handle:
        yield first_run(handle, clinics)


@pytest.fixture(scope="module")
def clinic(shared: Run) -> Iterator[ClinicBackend]:
    store = shared.open()
    try:
        yield store
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# The sandbox's truth, read independently of the engine.


def records(sb: SandboxHandle, resource: str, *variants: str) -> dict[str, dict[str, Any]]:
    """Every record of the lists, by Cliniko id (as the API renders it)."""
    out: dict[str, dict[str, Any]] = {}
    for variant in variants:
        for record in sb.store.raw_records(resource, variant, sb.base_url):
            out.setdefault(str(record["id"]), record)
    return out


def deleted(sb: SandboxHandle, resource: str) -> set[str]:
    return sb.store.ids(resource, "deleted")


def ref(record: dict[str, Any], key: str) -> str | None:
    """The Cliniko id a record link points to."""
    obj = record.get(key)
    if not obj:
        return None
    return str(obj["links"]["self"]).rstrip("/").rsplit("/", 1)[-1]


def text(value: Any) -> str | None:
    """The clinic's form of optional text (records.py: empty is None; outer blanks trimmed,
    line endings `\\n`)."""
    if value is None:
        return None
    value = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    return value or None


def utc(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def starts(raw: dict[str, Any]) -> datetime:
    start = utc(raw.get("starts_at"))
    assert start is not None, "the sandbox's appointments all have a start"
    return start


def live_patients(sb: SandboxHandle) -> dict[str, dict[str, Any]]:
    """Patients not deleted: the default (active) and archived lists."""
    out = records(sb, "patients", "active", "archived")
    assert not set(out) & deleted(sb, "patients")
    return out


def linked(store: ClinicBackend, source: str, kind: str, table: str) -> dict[str, Any]:
    """Clinic rows by the Cliniko id they were imported from; every link has its row."""
    links = store.load_links(source, kind)
    rows = store.fetch_rows(table, [link.target_id for link in links.values()])
    assert len({link.target_id for link in links.values()}) == len(links), f"{kind}: shared rows"
    assert set(rows) == {link.target_id for link in links.values()}, f"{kind}: dangling links"
    return {sid: rows[link.target_id] for sid, link in links.items()}


def clinic_id(store: ClinicBackend, source: str, kind: str) -> dict[str, int]:
    return {sid: link.target_id for sid, link in store.load_links(source, kind).items()}


def skipped(p: Plan, kind: str) -> dict[str, str]:
    return {i.source_id: i.skip_code or "" for i in p.items.get(kind, ()) if i.action == "skip"}


def rule(invoice: dict[str, Any]) -> Decimal:
    """DESIGN.md 5: paid (20) and closed (30) settle to 0; open (10) carries its total; open
    credit (40) is carried as credit (its total is negative)."""
    total = Decimal(str(invoice["total_amount"]))
    return Decimal(0) if invoice["status"] in (20, 30) else total


# --------------------------------------------------------------------------------------------
# The first load, checked against the sandbox.


def test_patients_are_in_the_clinic_once_each_with_cliniko_s_details(
    shared: Run, clinic: ClinicBackend
) -> None:
    sb = shared.sandbox
    truth = live_patients(sb)
    rows = linked(clinic, shared.source, "patient", "patients")
    assert set(rows) == set(truth)
    assert len(list(clinic.iter_rows("patients", ["id"]))) == len(truth)  # nothing unlinked
    for pid, raw in truth.items():
        row = rows[pid]
        dob = raw.get("date_of_birth")
        phones = [
            {"type": text(p.get("phone_type")), "number": text(p["number"])}
            for p in raw.get("patient_phone_numbers") or []
            if text(p.get("number"))
        ]
        want = {
            "first_name": text(raw.get("first_name")),
            "last_name": text(raw.get("last_name")),
            "date_of_birth": date.fromisoformat(dob) if dob else None,
            "email": text(raw.get("email")),
            "phones": phones,
            "preferred_name": text(raw.get("preferred_first_name")),
            "emergency_contact": text(raw.get("emergency_contact")),
        }
        assert {k: row[k] for k in want} == want, f"patient {pid}"
    # The data is unkind enough to test something.
    assert any(r["phones"] for r in rows.values())
    assert any(r["preferred_name"] for r in rows.values())
    assert any(r["emergency_contact"] for r in rows.values())
    assert any(r["archived"] for r in rows.values())

    gone = deleted(sb, "patients")
    assert gone, "the sandbox has deleted patients"
    assert not gone & set(clinic.load_links(shared.source, "patient"))
    patient_skips = skipped(shared.result.plan, "patient")
    assert patient_skips == {pid: "deleted_in_cliniko" for pid in gone}


def test_appointments_keep_their_time_status_patient_and_practitioner(
    shared: Run, clinic: ClinicBackend
) -> None:
    sb = shared.sandbox
    every = records(sb, "individual_appointments", "active", "cancelled", "deleted")
    gone = deleted(sb, "individual_appointments")
    live = {aid: raw for aid, raw in every.items() if aid not in gone}
    patients = set(live_patients(sb))
    imported = {aid: raw for aid, raw in live.items() if ref(raw, "patient") in patients}
    rows = linked(clinic, shared.source, "appointment", "appointments")
    assert set(rows) == set(imported)
    assert len(list(clinic.iter_rows("appointments", ["id"]))) == len(imported)
    patient_ids = clinic_id(clinic, shared.source, "patient")
    practitioner_ids = clinic_id(clinic, shared.source, "practitioner")
    seen: set[str] = set()
    for aid, raw in imported.items():
        start = starts(raw)
        if raw.get("cancelled_at"):
            status = "cancelled"
        elif raw.get("did_not_arrive"):
            status = "did_not_arrive"
        elif start >= NOW:
            status = "booked"
        else:
            status = "completed"
        seen.add(status)
        row = rows[aid]
        assert (row["starts_at"], row["ends_at"], row["status"]) == (
            start,
            utc(raw.get("ends_at")),
            status,
        ), f"appointment {aid}"
        assert row["patient_id"] == patient_ids[str(ref(raw, "patient"))], f"appointment {aid}"
        assert row["practitioner_id"] == practitioner_ids[str(ref(raw, "practitioner"))]
    assert seen == {"cancelled", "did_not_arrive", "booked", "completed"}
    # The rest: deleted in Cliniko, or booked for a patient deleted in Cliniko.
    skips = skipped(shared.result.plan, "appointment")
    assert skips == {
        aid: "deleted_in_cliniko" if aid in gone else "patient_not_imported"
        for aid in set(every) - set(imported)
    }


def test_finalised_notes_are_on_the_right_patient_at_their_original_date(
    shared: Run, clinic: ClinicBackend
) -> None:
    sb = shared.sandbox
    every = records(sb, "treatment_notes", "active", "deleted")
    gone = deleted(sb, "treatment_notes")
    live = {nid: raw for nid, raw in every.items() if nid not in gone}
    drafts = {nid for nid, raw in live.items() if raw["draft"] is not False}
    patients = set(live_patients(sb))
    imported = {
        nid: raw
        for nid, raw in live.items()
        if nid not in drafts and ref(raw, "patient") in patients
    }
    assert drafts and imported
    rows = linked(clinic, shared.source, "treatment_note", "treatment_notes")
    assert set(rows) == set(imported)
    assert len(list(clinic.iter_rows("treatment_notes", ["id"]))) == len(imported)
    patient_ids = clinic_id(clinic, shared.source, "patient")
    for nid, raw in imported.items():
        row = rows[nid]
        assert row["patient_id"] == patient_ids[str(ref(raw, "patient"))], f"note {nid}"
        assert row["written_at"] == utc(raw["created_at"]), f"note {nid}"
        assert row["finalised"] is True and row["read_only"] is True
    skips = skipped(shared.result.plan, "treatment_note")
    assert {nid for nid, code in skips.items() if code == "draft_note"} == drafts
    assert skips == {
        nid: "deleted_in_cliniko"
        if nid in gone
        else "draft_note"
        if nid in drafts
        else "patient_not_imported"
        for nid in set(every) - set(imported)
    }


def test_invoices_keep_their_number_and_their_live_lines(
    shared: Run, clinic: ClinicBackend
) -> None:
    sb = shared.sandbox
    every = records(sb, "invoices", "active", "deleted")
    gone = deleted(sb, "invoices")
    patients = set(live_patients(sb))
    imported = {
        iid: raw
        for iid, raw in every.items()
        if iid not in gone and ref(raw, "patient") in patients
    }
    items = records(sb, "invoice_items", "active", "deleted")
    gone_items = deleted(sb, "invoice_items")
    assert gone_items - {i for i, r in items.items() if ref(r, "invoice") in gone}, (
        "the sandbox has deleted items on live invoices"
    )
    want_lines: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for item_id, raw in items.items():
        if item_id not in gone_items:
            total = Decimal(str(raw["total_including_tax"]))
            want_lines[str(ref(raw, "invoice"))][item_id] = total
    rows = linked(clinic, shared.source, "invoice", "invoices")
    assert set(rows) == set(imported)
    assert len(list(clinic.iter_rows("invoices", ["id"]))) == len(imported)
    got_lines: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for line in clinic.iter_rows("invoice_lines"):
        assert line["source_id"] not in got_lines[line["invoice_id"]], "duplicate line"
        got_lines[line["invoice_id"]][line["source_id"]] = line["total_including_tax"]
    patient_ids = clinic_id(clinic, shared.source, "patient")
    for iid, raw in imported.items():
        row = rows[iid]
        assert row["number"] == str(raw["number"]), f"invoice {iid}"
        assert row["patient_id"] == patient_ids[str(ref(raw, "patient"))], f"invoice {iid}"
        assert got_lines[row["id"]] == want_lines.get(iid, {}), f"invoice {iid} lines"
    assert sum(len(v) for v in got_lines.values()) == sum(
        len(want_lines.get(iid, {})) for iid in imported
    )


def test_balances_follow_the_rule_and_part_paid_ones_are_flagged(
    shared: Run, clinic: ClinicBackend
) -> None:
    sb = shared.sandbox
    patients = set(live_patients(sb))
    gone = deleted(sb, "invoices")
    invoices = {i: r for i, r in records(sb, "invoices", "active").items() if i not in gone}
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in invoices.values():
        # The rule uses status alone only when the record carries no owing or paid amount.
        assert not {"amount_outstanding", "amount_owing", "amount_paid", "balance"} & set(raw)
        by_patient[str(ref(raw, "patient"))].append(raw)
    assert {r["status"] for r in invoices.values()} == {10, 20, 30, 40}

    balances = clinic.balances()
    patient_ids = clinic_id(clinic, shared.source, "patient")
    status_only = {s.patient_source_id for s in shared.result.verification.status_only_open}
    differs: set[str] = set()
    for pid in patients:
        expected = sum((rule(r) for r in by_patient.get(pid, [])), Decimal(0))
        assert balances.get(patient_ids[pid], Decimal(0)) == expected, f"patient {pid}"
        truth = sb.store.patient_outstanding(pid)
        if truth != expected:
            differs.add(pid)
            # Only a part-paid open invoice makes the rule differ from the truth.
            assert any(
                r["status"] == 10 and sb.store.invoice_paid(r["id"]) != 0 for r in by_patient[pid]
            ), f"patient {pid}"
    assert differs, "the sandbox has part-paid open invoices"
    assert differs <= status_only
    # ...and the status-only list names only patients with an open invoice.
    assert status_only <= {p for p in patients if any(r["status"] == 10 for r in by_patient[p])}
    assert any(b < 0 for b in balances.values()), "a credit balance"


def test_a_second_plan_changes_nothing(shared: Run) -> None:
    again = shared.plan()
    totals = again.totals()
    assert (totals["create"], totals["update"], totals["conflict"]) == (0, 0, 0)
    assert again.writes() == 0
    first = shared.result.plan.totals()
    assert totals["unchanged"] == first["create"] + first["unchanged"]
    assert totals["skip"] == first["skip"]


def test_quiet_private_and_keyless(shared: Run, clinic: ClinicBackend) -> None:
    assert clinic.outbox_count() == 0
    settings = clinic.settings()
    assert settings["messaging_enabled"] is False and settings["ai_enabled"] is False
    verification = shared.result.verification
    assert verification.outbox_count == 0
    assert not verification.messaging_enabled and not verification.ai_enabled
    private = [shared.staging]
    if shared.clinics.backend == "sqlite":
        private.append(shared.clinics.path("clinic"))
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    secret = shared.sandbox.api_key.encode()
    kept = {path.name: path.read_bytes() for path in shared.folder.iterdir()}
    kept["the clinic store"] = shared.clinics.dump("clinic")
    for name, data in kept.items():
        assert secret not in data, name
        assert secret.split(b"-")[0] not in data, name
    assert set(shared.sandbox.stats.by_method) == {"GET"}
    # A database password given in the URL is never shown, stored or reported.
    server = shared.clinics.server
    if server is not None:
        assert server.password in shared.url
        shown = json.dumps(shared.result.to_json()) + json.dumps(shared.plan().to_json())
        assert server.password not in shown
        assert server.password.encode() not in kept["the clinic store"]
        assert server.password not in clinic.url


# --------------------------------------------------------------------------------------------
# Changes after the first load.


def actions(p: Plan) -> dict[str, list[tuple[str, str]]]:
    """The items a plan would write or report: (kind, Cliniko id) by action, in plan order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in p.all_items():
        if item.action in ("create", "update", "conflict"):
            out[item.action].append((item.kind, item.source_id))
    return dict(out)


def test_a_topup_after_changes_in_cliniko_plans_exactly_those_changes(own: Run) -> None:
    sb, store = own.sandbox, own.sandbox.store
    patients = live_patients(sb)
    renamed = min((p for p, r in patients.items() if not r.get("archived_at")), key=int)
    appointment = min(
        (
            aid
            for aid, raw in records(sb, "individual_appointments", "active").items()
            if not raw.get("cancelled_at")
            and not raw.get("did_not_arrive")
            and utc(raw["starts_at"]) >= NOW  # type: ignore[operator]  # always set here
            and ref(raw, "patient") in patients
        ),
        key=int,
    )
    store.update("patients", renamed, first_name="Renamed")
    store.cancel("individual_appointments", appointment, reason=40)
    created = store.create("patients")
    assert own.download().mode == "topup"

    p = own.plan()
    assert actions(p) == {
        "update": [("patient", renamed), ("appointment", appointment)],
        "create": [("patient", created)],
    }
    patient_update, appointment_update = p.updates()
    # The rename (and the name-matching key that follows from it), nothing else.
    assert patient_update.changed_fields() == ["first_name", "match_key"]
    assert {"status", "cancelled_at", "cancellation_reason_code"} <= set(
        appointment_update.changed_fields()
    )
    # Everything else unchanged (and skipped as before).
    first = own.result.plan.counts()
    for kind, counts in p.counts().items():
        touched = {"patient": 1, "appointment": 1}.get(kind, 0)
        assert counts["unchanged"] == first[kind]["create"] - touched, kind
        assert counts["skip"] == first[kind]["skip"], kind

    result = load(p)
    assert result.verification.ok, result.verification.differences[:10]
    after = own.open()
    try:
        patient_rows = linked(after, own.source, "patient", "patients")
        assert patient_rows[renamed]["first_name"] == "Renamed"
        new = records(sb, "patients", "active")[created]
        assert (patient_rows[created]["first_name"], patient_rows[created]["last_name"]) == (
            text(new["first_name"]),
            text(new["last_name"]),
        )
        booking = linked(after, own.source, "appointment", "appointments")[appointment]
        assert (booking["status"], booking["cancellation_reason_code"]) == ("cancelled", 40)
        assert after.outbox_count() == 0
        assert after.settings()["messaging_enabled"] is False
        assert after.settings()["ai_enabled"] is False
    finally:
        after.close()
    assert actions(own.plan()) == {}


def test_a_clinic_edit_then_a_cliniko_change_is_a_conflict_that_keeps_the_clinic_s_edit(
    own: Run,
) -> None:
    sb = own.sandbox
    pid = min((p for p, r in live_patients(sb).items() if not r.get("archived_at")), key=int)
    clinic = own.open()
    try:
        target = clinic.load_links(own.source, "patient")[pid].target_id
        clinic.update_rows("patients", [(target, {"email": "edited.in.clinic@example.org"})])
    finally:
        clinic.close()
    sb.store.update("patients", pid, email="changed.in.cliniko@example.org")
    assert own.download().mode == "topup"

    p = own.plan()
    assert actions(p) == {"conflict": [("patient", pid)]}
    [conflict] = p.conflicts()
    assert {c.field: (c.old, c.new) for c in conflict.changes} == {
        "email": ("edited.in.clinic@example.org", "changed.in.cliniko@example.org")
    }
    result = load(p)
    assert result.verification.ok
    clinic = own.open()
    try:
        row = clinic.fetch_rows("patients", [target])[target]
        assert row["email"] == "edited.in.clinic@example.org"
        assert clinic.outbox_count() == 0
    finally:
        clinic.close()
    # Still a conflict on the next plan: the clinic's edit is never overwritten silently.
    assert actions(own.plan()) == {"conflict": [("patient", pid)]}
