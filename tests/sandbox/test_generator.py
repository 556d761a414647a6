"""The synthetic clinic: deterministic, the right size and shape, and unkind on purpose."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sandbox.catalog import CANCELLATION_REASONS, INVOICE_STATUSES, LISTS
from sandbox.generator import SIZES, make_plan
from sandbox.store import ClinicStore, NotFound

BASE = "http://127.0.0.1:8765/v1"
ANCHOR = date(2025, 6, 1)
ANCHOR_TS = "2025-06-01T00:00:00Z"


def fingerprint(store: ClinicStore) -> str:
    """A hash of everything the API would show: every list, /user, /settings, nested lists."""
    digest = hashlib.sha256()
    for resource, variant in LISTS:
        for record in store.raw_records(resource, variant, BASE):
            digest.update(json.dumps(record, sort_keys=True).encode())
    digest.update(json.dumps(store.user(BASE), sort_keys=True).encode())
    digest.update(json.dumps(store.settings(BASE), sort_keys=True).encode())
    for pid in sorted(store.ids("practitioners", "active")):
        page, _ = store.practitioner_reference_numbers(pid, 1, 100, BASE)
        digest.update(json.dumps(page, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def small() -> Iterator[ClinicStore]:
    store = ClinicStore.generate("small", seed=1, anchor=ANCHOR)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def tiny() -> Iterator[ClinicStore]:
    store = ClinicStore.generate("tiny", seed=1, anchor=ANCHOR)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["tiny", "small"])
def clinic(request: pytest.FixtureRequest, tiny: ClinicStore, small: ClinicStore) -> ClinicStore:
    """Both sizes: the unkind cases must be in the tiny clinic too."""
    return tiny if request.param == "tiny" else small


def every(store: ClinicStore, resource: str) -> list[dict[str, Any]]:
    """Every row of a resource, whatever its list (deleted patients as full records)."""
    seen: dict[str, dict[str, Any]] = {}
    for res, variant in LISTS:
        if res != resource:
            continue
        for rec in store.raw_records(resource, variant, BASE):
            if resource == "patients" and variant == "deleted":
                pid = rec["links"]["self"].rsplit("/", 1)[1]
                rec = store.get_one("patients", pid, BASE)
            key = str(rec.get("id", rec["links"]["self"] if "links" in rec else id(rec)))
            seen.setdefault(key, rec)
    return list(seen.values())


def link_id(value: dict[str, Any]) -> str:
    return str(value["links"]["self"]).rsplit("/", 1)[1]


# ------------------------------------------------------------------------------ determinism


def test_same_seed_and_anchor_give_identical_data(small: ClinicStore) -> None:
    again = ClinicStore.generate("small", seed=1, anchor=ANCHOR)
    try:
        assert fingerprint(again) == fingerprint(small)
    finally:
        again.close()


def test_another_seed_or_anchor_gives_other_data(tiny: ClinicStore) -> None:
    other_seed = ClinicStore.generate("tiny", seed=2, anchor=ANCHOR)
    other_day = ClinicStore.generate("tiny", seed=1, anchor=ANCHOR + timedelta(days=1))
    try:
        prints = {fingerprint(tiny), fingerprint(other_seed), fingerprint(other_day)}
        assert len(prints) == 3
    finally:
        other_seed.close()
        other_day.close()


def test_the_default_anchor_is_today_utc() -> None:
    store = ClinicStore.generate("tiny", seed=5)
    try:
        today = datetime.now(UTC).date()
        assert store.anchor == today
        newest = max(r["created_at"] for r in store.raw_records("patients", "active", BASE))
        assert newest < f"{today.isoformat()}T00:00:00Z"
    finally:
        store.close()


# ------------------------------------------------------------------------------ size and shape


@pytest.mark.parametrize(("size", "low", "high"), [("tiny", 80, 150), ("small", 4500, 5500)])
def test_each_size_lands_near_its_target(size: str, low: int, high: int) -> None:
    store = ClinicStore.generate(size, seed=7, anchor=ANCHOR)
    try:
        assert store.report is not None
        assert low <= store.report.total <= high
        assert store.report.seconds < 5
    finally:
        store.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_every_plan_aims_at_its_target(size: str) -> None:
    for shape in ("balanced", "appointments_heavy", "many_small"):
        plan = make_plan(size, shape)
        expected = plan.expected_total()
        assert 0.8 * SIZES[size] <= expected <= 1.2 * SIZES[size] or size == "tiny"


@pytest.mark.hard
def test_medium_is_near_100k_and_quick() -> None:
    store = ClinicStore.generate("medium", seed=1, anchor=ANCHOR)
    try:
        assert store.report is not None
        assert 90_000 <= store.report.total <= 110_000
        assert store.report.seconds < 30
        assert store._path is not None  # a temporary file, not memory
    finally:
        store.close()


def test_appointments_heavy_is_mostly_appointments() -> None:
    store = ClinicStore.generate("small", seed=1, anchor=ANCHOR, shape="appointments_heavy")
    try:
        assert store.report is not None
        counts = store.report.counts
        diary = counts["individual_appointments"] + counts["attendees"]
        rest = store.report.total - diary
        assert 7 <= diary / rest <= 14
        assert 4000 <= store.report.total <= 6000
    finally:
        store.close()


def test_many_small_spreads_records_over_many_lists(small: ClinicStore) -> None:
    store = ClinicStore.generate("small", seed=1, anchor=ANCHOR, shape="many_small")
    try:
        assert store.report is not None
        assert small.report is not None
        spread = store.report.counts
        assert max(spread.values()) <= 0.12 * store.report.total
        assert sum(1 for n in spread.values() if n >= 100) >= 12
        balanced = small.report.counts
        assert max(balanced.values()) >= 0.18 * small.report.total
    finally:
        store.close()


# ------------------------------------------------------------------------------ ids and time


def test_ids_grow_with_created_at_and_never_collide(clinic: ClinicStore) -> None:
    owners: dict[int, str] = {}
    for resource in {r for r, _ in LISTS} - {"services", "referral_sources"}:
        rows = sorted(every(clinic, resource), key=lambda r: int(r["id"]))
        created = [r["created_at"] for r in rows]
        assert created == sorted(created), resource
        for r in rows:
            assert owners.setdefault(int(r["id"]), resource) == resource
            assert 10**17 < int(r["id"]) < 2**63


def test_history_ends_at_the_anchor_and_spans_two_years(small: ClinicStore) -> None:
    for resource in {r for r, _ in LISTS} - {"services", "referral_sources"}:
        for r in every(small, resource):
            assert r["created_at"] < ANCHOR_TS, resource
            assert r["created_at"] <= r["updated_at"] < ANCHOR_TS, resource
    appts = every(small, "individual_appointments")
    starts = sorted(a["starts_at"] for a in appts)
    two_years_ago = (ANCHOR - timedelta(days=700)).isoformat()
    assert starts[0] < two_years_ago
    future = [s for s in starts if s > ANCHOR_TS]
    assert len(future) >= 0.03 * len(starts)
    assert max(future) <= (ANCHOR + timedelta(days=61)).isoformat()
    for a in appts:
        assert a["starts_at"] < a["ends_at"]


# ------------------------------------------------------------------------------ the unkind cases


def test_businesses_span_time_zones(clinic: ClinicStore) -> None:
    businesses = every(clinic, "businesses")
    assert len(businesses) >= 3
    assert {b["country_code"] for b in businesses} >= {"AU", "NZ"}
    zones = {u["time_zone"] for u in every(clinic, "users")}
    assert zones >= {"Melbourne", "Perth", "Auckland"}
    assert clinic.settings(BASE)["account"]["time_zone"] == "Melbourne"


def test_practitioners_share_a_name_and_one_is_inactive(clinic: ClinicStore) -> None:
    active = list(clinic.raw_records("practitioners", "active", BASE))
    names = Counter((p["first_name"], p["last_name"]) for p in active)
    assert max(names.values()) >= 2
    assert len({p["id"] for p in active}) == len(active)
    inactive = list(clinic.raw_records("practitioners", "inactive", BASE))
    assert inactive
    users = {str(u["id"]): u for u in every(clinic, "users")}
    assert all(users[link_id(p["user"])]["user_active"] is False for p in inactive)
    assert list(clinic.raw_records("appointment_types", "archived", BASE))
    assert list(clinic.raw_records("treatment_note_templates", "deleted", BASE))


def test_patients_are_unkind(clinic: ClinicStore) -> None:
    patients = every(clinic, "patients")
    names = [f"{p['first_name']} {p['last_name']}" for p in patients]
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names), "CJK"
    assert any(re.search(r"[\u0590-\u06ff]", n) for n in names), "RTL"
    assert any(any(ord(ch) >= 0x1F000 or 0x2600 <= ord(ch) < 0x2800 for ch in n) for n in names)
    assert any(re.search(r"[À-ž]", n) for n in names), "accents"
    assert any(len(p["last_name"]) >= 200 for p in patients)
    if clinic.size == "small":
        assert any(not unicodedata.is_normalized("NFC", n) for n in names), "NFD"
        assert any(p["first_name"] == "" for p in patients)
        assert any(p["email"] == "" for p in patients)
    assert all(p["email"] == "" or p["email"].endswith("@example.test") for p in patients)


def test_archived_merged_and_deleted_patients(clinic: ClinicStore) -> None:
    archived = list(clinic.raw_records("patients", "archived", BASE))
    merged = [p for p in archived if p["merged_with_patient"]]
    assert archived
    assert merged
    ids = {str(p["id"]) for p in every(clinic, "patients")}
    for p in merged:
        target = link_id(p["merged_with_patient"])
        assert target in ids
        assert target != str(p["id"])
        survivor = clinic.get_one("patients", target, BASE)
        assert (survivor["first_name"], survivor["last_name"]) == (p["first_name"], p["last_name"])
        assert p["merged_at"] == p["archived_at"]
    deleted = list(clinic.raw_records("patients", "deleted", BASE))
    assert deleted
    for row in deleted:
        full = clinic.get_one("patients", link_id(row), BASE)
        assert full["deleted_at"] == row["deleted_at"] != ""


def test_custom_fields_use_the_settings_tokens(small: ClinicStore) -> None:
    definition = small.settings(BASE)["patient_custom_fields_definition"]
    tokens = {
        t
        for s in definition["sections"]
        for t in [s["token"]]
        + [f["token"] for f in s["fields"]]
        + [o["token"] for f in s["fields"] for o in f.get("options", [])]
    }
    patients = every(small, "patients")
    assert any(p["custom_fields"] is None for p in patients)
    valued = [p for p in patients if p["custom_fields"]]
    assert valued
    for p in valued:
        for s in p["custom_fields"]["sections"]:
            assert s["token"] in tokens
            for f in s["fields"]:
                assert f["token"] in tokens
                assert {o["token"] for o in f.get("options", [])} <= tokens
                if f["type"] == "radiobuttons":
                    chosen = [o for o in f["options"] if o.get("selected")]
                    assert len(chosen) <= 1
                    if f.get("other", {}).get("selected"):
                        assert not chosen


def test_appointments_cover_every_fate(clinic: ClinicStore) -> None:
    cancelled = list(clinic.raw_records("individual_appointments", "cancelled", BASE))
    reasons = {(a["cancellation_reason"], a["cancellation_reason_description"]) for a in cancelled}
    assert reasons == set(CANCELLATION_REASONS.items())
    assert all(a["cancelled_at"] and a["deleted_at"] is None for a in cancelled)
    active = list(clinic.raw_records("individual_appointments", "active", BASE))
    assert any(a["did_not_arrive"] for a in active)
    assert any(a["patient_arrived"] for a in active)
    assert any(a["cancellation_reason"] is None and a["cancellation_reason_description"] == ""
               for a in active)  # fmt: skip
    assert list(clinic.raw_records("individual_appointments", "deleted", BASE))


def test_every_individual_appointment_has_its_attendee(clinic: ClinicStore) -> None:
    attendees: dict[str, list[dict[str, Any]]] = {}
    for a in every(clinic, "attendees"):
        attendees.setdefault(link_id(a["booking"]), []).append(a)
    for appt in every(clinic, "individual_appointments"):
        (att,) = attendees[str(appt["id"])]
        assert link_id(att["patient"]) == link_id(appt["patient"])
        assert att["cancelled_at"] == appt["cancelled_at"]
        assert att["deleted_at"] == appt["deleted_at"]
        assert att["arrived"] == (
            True if appt["patient_arrived"] else False if appt["did_not_arrive"] else None
        )


def test_group_classes_have_attendees_some_cancelled(clinic: ClinicStore) -> None:
    groups = every(clinic, "group_appointments")
    by_group: dict[str, list[dict[str, Any]]] = {}
    for a in every(clinic, "attendees"):
        by_group.setdefault(link_id(a["booking"]), []).append(a)
    sizes = [len(by_group.get(str(g["id"]), [])) for g in groups]
    assert max(sizes) >= 2
    group_attendees = [a for g in groups for a in by_group.get(str(g["id"]), [])]
    assert any(a["cancelled_at"] for a in group_attendees)
    for g in groups:
        live = {
            int(link_id(a["patient"]))
            for a in by_group.get(str(g["id"]), [])
            if not a["cancelled_at"]
        }
        assert set(g["patient_ids"]) == live
    assert list(clinic.raw_records("group_appointments", "deleted", BASE))
    assert list(clinic.raw_records("unavailable_blocks", "deleted", BASE))
    assert list(clinic.raw_records("unavailable_blocks", "active", BASE))
    assert list(clinic.raw_records("medical_alerts", "deleted", BASE))


def _questions(note: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in (note["content"] or {"sections": []})["sections"]:
        yield from section.get("questions", [])


def test_treatment_notes_use_every_question_type(clinic: ClinicStore) -> None:
    notes = every(clinic, "treatment_notes")
    assert {n["draft"] for n in notes} == {True, False}
    assert any(n["deleted_at"] for n in notes)
    assert any(n["content"] is None for n in notes)
    answered: set[str] = set()
    others = 0
    for note in notes:
        if note["content"] is not None:
            assert note["content"]["sections"], "sections never an empty array"
        for q in _questions(note):
            kind = q["type"]
            selected = [a for a in q.get("answers", []) if a.get("selected")]
            if "answer" in q or selected or q.get("other", {}).get("selected"):
                answered.add(kind)
            if kind == "radiobuttons":
                assert len(selected) <= 1
                if q.get("other", {}).get("selected"):
                    assert not selected
            if q.get("other", {}).get("selected"):
                assert q["other"]["enabled"] is True
                assert q["other"]["value"]
                others += 1
            if kind == "date" and "answer" in q:
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", q["answer"])
            assert q.get("answer", "x") != ""
    assert answered == {"text", "paragraph", "checkboxes", "radiobuttons", "date"}
    assert others >= 2
    paragraphs = [q["answer"] for n in notes for q in _questions(n) if q["type"] == "paragraph"
                  and "answer" in q]  # fmt: skip
    assert any("<div>" in p and "<br>" in p for p in paragraphs)
    assert any(re.search(r"&(amp|lt|gt|nbsp|times);", p) for p in paragraphs)
    assert any("answer" not in q and q["type"] == "text" for n in notes for q in _questions(n))


def test_invoices_cover_every_status_and_add_up(clinic: ClinicStore) -> None:
    invoices = every(clinic, "invoices")
    assert {i["status"] for i in invoices} == set(INVOICE_STATUSES)
    assert all(i["status_description"] == INVOICE_STATUSES[i["status"]] for i in invoices)
    assert len({i["number"] for i in invoices}) == len(invoices)
    assert any(i["deleted_at"] for i in invoices)
    items = every(clinic, "invoice_items")
    by_invoice: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_invoice.setdefault(link_id(item["invoice"]), []).append(item)
    live_invoices = {str(i["id"]) for i in invoices if not i["deleted_at"]}
    assert any(it["deleted_at"] and link_id(it["invoice"]) in live_invoices for it in items)
    for inv in invoices:
        lines = [
            it for it in by_invoice[str(inv["id"])] if not it["deleted_at"] or inv["deleted_at"]
        ]
        assert Decimal(inv["total_amount"]) == sum(
            (Decimal(it["total_including_tax"]) for it in lines), Decimal(0)
        )
        assert Decimal(inv["tax_amount"]) == sum((Decimal(it["tax_amount"]) for it in lines),
                                                 Decimal(0))  # fmt: skip
        if inv["status"] == 40:
            assert Decimal(inv["total_amount"]) < 0
            assert all(Decimal(it["unit_price"]) < 0 for it in lines)
            assert "appointment" not in inv
        else:
            assert Decimal(inv["total_amount"]) >= 0
        if inv["status"] in (20, 30):
            assert inv["closed_at"]
    assert any(Decimal(it["tax_amount"]) > 0 for it in items)


def test_payments_truth_follows_the_status(clinic: ClinicStore) -> None:
    invoices = every(clinic, "invoices")
    part_paid = 0
    for inv in invoices:
        paid = clinic.invoice_paid(inv["id"])
        total = Decimal(inv["total_amount"])
        if inv["status"] in (20, 30):
            assert paid == total
        elif inv["status"] == 40:
            assert paid == 0
        else:
            assert 0 <= paid < total
            part_paid += paid > 0
    assert part_paid >= 1
    open_count = sum(1 for i in invoices if i["status"] == 10)
    assert part_paid <= open_count / 2 or clinic.size == "tiny"


def test_outstanding_balances_are_total_minus_paid(clinic: ClinicStore) -> None:
    expected: dict[str, Decimal] = {}
    for inv in clinic.raw_records("invoices", "active", BASE):
        pid = link_id(inv["patient"])
        owed = Decimal(inv["total_amount"]) - clinic.invoice_paid(inv["id"])
        expected[pid] = expected.get(pid, Decimal(0)) + owed
    assert clinic.outstanding_by_patient() == expected
    for pid, owed in expected.items():
        assert clinic.patient_outstanding(pid) == owed
    assert any(v > 0 for v in expected.values())
    assert any(v < 0 for v in expected.values())  # credit
    with pytest.raises(NotFound):
        clinic.invoice_paid("1")


def test_the_rest_of_the_clinic(clinic: ClinicStore) -> None:
    contacts = every(clinic, "contacts")
    assert any(c["type_code"] == 1 and c["type"] == "Doctor" for c in contacts)
    sources = list(clinic.raw_records("referral_sources", "active", BASE))
    types = {link_id(s["referral_source_type"]) for s in sources}
    assert len(types) >= 2
    no_source = clinic.ids("patients", "active") - clinic.ids("referral_sources", "active")
    with pytest.raises(NotFound):
        clinic.referral_source(sorted(no_source)[0], BASE)
    attachments = every(clinic, "patient_attachments")
    pending = [a for a in attachments if not a["processing_completed"]]
    assert pending
    assert all(a["filename"] is None and a["size"] is None for a in pending)
    services = list(clinic.raw_records("services", "active", BASE))
    active = clinic.ids("practitioners", "active")
    assert services
    for s in services:
        assert s["practitioners"]
        assert {link_id(p) for p in s["practitioners"]} <= active
    assert list(clinic.raw_records("patient_cases", "active", BASE))


def test_patient_cases_list_their_attendees(small: ClinicStore) -> None:
    cases = every(small, "patient_cases")
    attendees = {str(a["id"]): a for a in every(small, "attendees")}
    with_attendees = [c for c in cases if c["attendee_ids"]]
    assert with_attendees
    for c in with_attendees:
        for aid in c["attendee_ids"]:
            assert isinstance(aid, str)
            assert link_id(attendees[aid]["patient"]) == link_id(c["patient"])
