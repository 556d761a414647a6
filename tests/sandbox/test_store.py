"""`ClinicStore`: lists and their variants, typed filters, sorting, paging, records, mutations,
thread safety."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sandbox.catalog import LISTS
from sandbox.store import ClinicStore, NotFound, QueryError

BASE = "http://127.0.0.1:8765/v1"
ANCHOR = date(2025, 6, 1)


class Clock:
    """A settable clock, one second further at each reading."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(scope="module")
def small() -> Iterator[ClinicStore]:
    store = ClinicStore.generate("small", seed=11, anchor=ANCHOR)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 6, 3, 9, 0, tzinfo=UTC))


@pytest.fixture
def tiny(clock: Clock) -> Iterator[ClinicStore]:
    store = ClinicStore.generate("tiny", seed=11, anchor=ANCHOR, clock=clock)
    try:
        yield store
    finally:
        store.close()


def page_ids(
    store: ClinicStore,
    resource: str,
    q: list[str] | None = None,
    variant: str = "active",
    sort: str | None = None,
    order: str | None = None,
) -> list[int]:
    """Ids of every row the list returns, in order (walking pages of 100)."""
    out: list[int] = []
    page = 1
    while True:
        records, total = store.list_page(resource, variant, q or [], sort, order, page, 100, BASE)
        if not records:
            break
        out += [int(r["id"]) if "id" in r else int(r["links"]["self"].rsplit("/", 1)[1])
                for r in records]  # fmt: skip
        page += 1
    assert len(out) == total
    return out


def link_id(value: dict[str, Any]) -> int:
    return int(str(value["links"]["self"]).rsplit("/", 1)[1])


# ------------------------------------------------------------------------------ lists, variants


def test_has_list_follows_the_catalogue(small: ClinicStore) -> None:
    for resource, variant in LISTS:
        assert small.has_list(resource, variant)
    assert not small.has_list("patients", "cancelled")
    assert not small.has_list("practitioners", "deleted")
    assert not small.has_list("practitioner_reference_numbers", "active")
    assert not small.has_list("products", "active")
    with pytest.raises(NotFound):
        small.list_page("patients", "inactive", [], None, None, 1, 10, BASE)


def test_variant_membership(small: ClinicStore) -> None:
    ids = {(r, v): small.ids(r, v) for r, v in LISTS}
    counts = small.counts()
    for key, members in ids.items():
        assert counts[key] == len(members), key
    # default lists exclude archived and deleted rows; /archived and /deleted hold only those
    assert not ids["patients", "active"] & ids["patients", "archived"]
    assert not ids["patients", "active"] & ids["patients", "deleted"]
    assert not ids["patients", "archived"] & ids["patients", "deleted"]
    assert not ids["appointment_types", "active"] & ids["appointment_types", "archived"]
    assert not ids["practitioners", "active"] & ids["practitioners", "inactive"]
    for resource in ("individual_appointments", "attendees"):
        # cancelled ones are in the default list AND in /cancelled; deleted ones only in /deleted
        assert ids[resource, "cancelled"] <= ids[resource, "active"]
        assert not ids[resource, "deleted"] & ids[resource, "active"]
        assert not ids[resource, "deleted"] & ids[resource, "cancelled"]
    for resource in ("invoices", "invoice_items", "treatment_notes", "medical_alerts"):
        assert not ids[resource, "active"] & ids[resource, "deleted"]
    for rec in small.raw_records("individual_appointments", "active", BASE):
        assert rec["deleted_at"] is None
    assert counts["practitioner_reference_numbers", "active"] > 0


def test_paging_walks_every_row_once(small: ClinicStore) -> None:
    expected = small.ids("individual_appointments", "active")
    for per_page in (1, 7, 100):
        seen: list[str] = []
        page = 1
        if per_page == 1:
            page = len(expected) - 2  # the tail only: one row per page
            seen = [
                str(r["id"])
                for r in list(small.raw_records("individual_appointments", "active", BASE))[
                    : page - 1
                ]
            ]
        while True:
            records, total = small.list_page(
                "individual_appointments", "active", [], None, None, page, per_page, BASE
            )
            assert total == len(expected)
            if not records:
                break
            assert len(records) <= per_page
            seen += [str(r["id"]) for r in records]
            page += 1
        assert len(seen) == len(set(seen)) == len(expected)
        assert set(seen) == expected
    records, total = small.list_page("patients", "active", [], None, None, 10_000, 50, BASE)
    assert records == []
    assert total == len(small.ids("patients", "active"))
    with pytest.raises(QueryError):
        small.list_page("patients", "active", [], None, None, 0, 50, BASE)


def test_raw_records_is_what_paging_returns(small: ClinicStore) -> None:
    for resource, variant in (
        ("patients", "deleted"),
        ("invoices", "active"),
        ("services", "active"),
    ):
        paged: list[dict[str, Any]] = []
        page = 1
        while True:
            records, _ = small.list_page(resource, variant, [], None, None, page, 100, BASE)
            if not records:
                break
            paged += records
            page += 1
        assert paged == list(small.raw_records(resource, variant, BASE))


def test_default_order_is_created_at_then_id(small: ClinicStore) -> None:
    rows = list(small.raw_records("treatment_notes", "active", BASE))
    keys = [(r["created_at"], int(r["id"])) for r in rows]
    assert keys == sorted(keys)


# ------------------------------------------------------------------------------ filters


def test_integer_filters(small: ClinicStore) -> None:
    every = sorted(int(i) for i in small.ids("patients", "active"))
    pivot = every[len(every) // 2]
    assert page_ids(small, "patients", [f"id:>{pivot}"]) == [i for i in every if i > pivot]
    assert sorted(page_ids(small, "patients", [f"id:>={pivot}"])) == [
        i for i in every if i >= pivot
    ]
    assert sorted(page_ids(small, "patients", [f"id:<{pivot}"])) == [i for i in every if i < pivot]
    assert sorted(page_ids(small, "patients", [f"id:<={pivot}"])) == [
        i for i in every if i <= pivot
    ]
    assert sorted(page_ids(small, "patients", [f"id:!={pivot}"])) == [
        i for i in every if i != pivot
    ]
    assert page_ids(small, "patients", [f"id:={pivot}"]) == [pivot]
    assert sorted(page_ids(small, "patients", [f"id:={every[0]},{every[-1]},1"])) == [
        every[0],
        every[-1],
    ]
    # reference ids: a patient's invoices
    invoice = next(iter(small.raw_records("invoices", "active", BASE)))
    patient = link_id(invoice["patient"])
    mine = {
        int(i["id"])
        for i in small.raw_records("invoices", "active", BASE)
        if link_id(i["patient"]) == patient
    }
    assert set(page_ids(small, "invoices", [f"patient_id:={patient}"])) == mine
    assert set(page_ids(small, "invoices", ["status:=40"])) == {
        int(i["id"]) for i in small.raw_records("invoices", "active", BASE) if i["status"] == 40
    }


def test_datetime_filters(small: ClinicStore) -> None:
    rows = list(small.raw_records("individual_appointments", "active", BASE))
    cut = sorted(r["updated_at"] for r in rows)[len(rows) // 2]

    def expect(pred: Any) -> set[int]:
        return {int(r["id"]) for r in rows if pred(r["updated_at"])}

    assert set(page_ids(small, "individual_appointments", [f"updated_at:>={cut}"])) == expect(
        lambda t: t >= cut
    )
    assert set(page_ids(small, "individual_appointments", [f"updated_at:>{cut}"])) == expect(
        lambda t: t > cut
    )
    assert set(page_ids(small, "individual_appointments", [f"updated_at:<{cut}"])) == expect(
        lambda t: t < cut
    )
    assert set(page_ids(small, "individual_appointments", [f"updated_at:<={cut}"])) == expect(
        lambda t: t <= cut
    )
    # a fraction of a second and an offset are understood
    frac = cut.replace("Z", ".5Z")
    assert set(page_ids(small, "individual_appointments", [f"updated_at:>={frac}"])) == expect(
        lambda t: t > cut
    )
    moment = datetime.fromisoformat(cut).astimezone(UTC)
    plus10 = (moment + timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M:%S+10:00")
    assert set(page_ids(small, "individual_appointments", [f"updated_at:>={plus10}"])) == expect(
        lambda t: t >= cut
    )
    # the window filters appointments are crawled by
    starts = [r["starts_at"] for r in rows]
    lo, hi = sorted(starts)[len(starts) // 4], sorted(starts)[3 * len(starts) // 4]
    got = page_ids(small, "individual_appointments", [f"starts_at:>={lo}", f"starts_at:<{hi}"])
    assert set(got) == {int(r["id"]) for r in rows if lo <= r["starts_at"] < hi}
    cancelled = page_ids(small, "individual_appointments", ["cancelled_at:>=2000-01-01"])
    assert cancelled
    assert {str(i) for i in cancelled} == small.ids("individual_appointments", "cancelled")


def test_date_filters_with_wildcards(small: ClinicStore) -> None:
    patients = list(small.raw_records("patients", "active", BASE))
    may = {int(p["id"]) for p in patients if p["date_of_birth"][5:7] == "05"}
    assert may
    assert set(page_ids(small, "patients", ["date_of_birth:=****-05-**"])) == may
    assert set(page_ids(small, "patients", ["date_of_birth:>=1990-01-01"])) == {
        int(p["id"]) for p in patients if p["date_of_birth"] and p["date_of_birth"] >= "1990-01-01"
    }
    invoices = list(small.raw_records("invoices", "active", BASE))
    day = invoices[len(invoices) // 2]["issue_date"]
    assert set(page_ids(small, "invoices", [f"issue_date:={day}"])) == {
        int(i["id"]) for i in invoices if i["issue_date"] == day
    }


def test_string_filters(small: ClinicStore) -> None:
    patients = list(small.raw_records("patients", "active", BASE))
    some = next(p for p in patients if p["last_name"].isascii() and len(p["last_name"]) > 3)
    last = some["last_name"]
    assert set(page_ids(small, "patients", [f"last_name:={last}"])) == {
        int(p["id"]) for p in patients if p["last_name"] == last
    }
    assert set(page_ids(small, "patients", [f"last_name:!={last}"])) == {
        int(p["id"]) for p in patients if p["last_name"] != last
    }
    part = last[1:3].upper()  # contains, ignoring (ASCII) case
    assert set(page_ids(small, "patients", [f"last_name:~{part}"])) == {
        int(p["id"]) for p in patients if part.lower() in p["last_name"].lower()
    }
    assert set(page_ids(small, "patients", [f"last_name:~~%{last[-2:]}"])) == {
        int(p["id"]) for p in patients if p["last_name"].lower().endswith(last[-2:].lower())
    }
    # % and _ are literal for `~`
    assert page_ids(small, "patients", ["last_name:~%"]) == []
    # several filters are ANDed
    both = page_ids(small, "patients", [f"last_name:={last}", f"first_name:={some['first_name']}"])
    assert int(some["id"]) in both
    assert all(
        (p["last_name"], p["first_name"]) == (last, some["first_name"])
        for p in patients
        if int(p["id"]) in both
    )


def test_string_typed_ids(small: ClinicStore) -> None:
    practitioner = next(iter(small.raw_records("practitioners", "active", BASE)))
    assert page_ids(small, "practitioners", [f"id:={practitioner['id']}"]) == [
        int(practitioner["id"])
    ]
    assert page_ids(small, "practitioners", ["id:=not-a-number"]) == []
    for resource in ("practitioners", "appointment_types", "businesses", "treatment_notes"):
        with pytest.raises(QueryError, match="String"):
            small.list_page(resource, "active", ["id:>1"], None, None, 1, 10, BASE)
    note = next(iter(small.raw_records("treatment_notes", "active", BASE)))
    patient = link_id(note["patient"])
    got = page_ids(small, "treatment_notes", [f"patient_id:={patient}"])
    assert int(note["id"]) in got
    assert page_ids(small, "treatment_notes", [f"patient_id:={patient},1"]) == []  # no lists
    for bad in ("patient_id:>1", "practitioner_id:>=1", "booking_id:<5"):
        with pytest.raises(QueryError):
            small.list_page("treatment_notes", "active", [bad], None, None, 1, 10, BASE)
    # treatment notes are crawled by created_at (their id is a String)
    assert page_ids(small, "treatment_notes", ["created_at:>=2000-01-01T00:00:00Z"])
    # taxes' id is a BigInt: integer operators work
    assert page_ids(small, "taxes", ["id:>0"])


@pytest.mark.parametrize(
    "bad",
    [
        "nonsense",
        ":=1",
        "no_such_field:=1",
        "id:>notanumber",
        "id:=",
        "id:~1",
        "id:=99999999999999999999",
        "first_name",
        "first_name:>Ann",
        "created_at:=2024-01-01T00:00:00Z",
        "created_at:>=yesterday",
        "updated_at:~2024",
        "date_of_birth:=2020-13-45",
        "date_of_birth:~1990",
        "date_of_birth:=**-05-**",
        "date_of_birth:>=****-05-**",
        "id:!=1,2",
    ],
)
def test_bad_filters_are_query_errors(small: ClinicStore, bad: str) -> None:
    with pytest.raises(QueryError) as info:
        small.list_page("patients", "active", [bad], None, None, 1, 10, BASE)
    assert str(info.value)


def test_filters_that_a_resource_does_not_have(small: ClinicStore) -> None:
    with pytest.raises(QueryError, match="filterable"):
        small.list_page("referral_sources", "active", ["id:>1"], None, None, 1, 10, BASE)
    with pytest.raises(QueryError, match="filterable"):
        small.list_page("services", "active", ["updated_at:>=2020-01-01"], None, None, 1, 10, BASE)
    with pytest.raises(QueryError, match="patient_id"):
        small.list_page("group_appointments", "active", ["patient_id:=1"], None, None, 1, 10, BASE)


def test_deleted_patients_filter_on_the_hidden_row(small: ClinicStore) -> None:
    deleted = small.ids("patients", "deleted")
    assert deleted
    got = page_ids(small, "patients", ["updated_at:>=2000-01-01T00:00:00Z"], variant="deleted")
    assert {str(i) for i in got} == deleted
    one = sorted(deleted)[0]
    assert page_ids(small, "patients", [f"id:={one}"], variant="deleted") == [int(one)]


# ------------------------------------------------------------------------------ sorting


def test_sort_by_id_is_numeric_and_order_applies(small: ClinicStore) -> None:
    every = sorted(int(i) for i in small.ids("attendees", "active"))
    assert page_ids(small, "attendees", sort="id") == every
    assert page_ids(small, "attendees", sort="id", order="desc") == every[::-1]
    assert page_ids(small, "attendees", sort="id:desc", order="asc") == every[::-1]
    assert page_ids(small, "attendees", sort="id", order="DESC") == every[::-1]


def test_sort_by_several_columns_ties_by_id(small: ClinicStore) -> None:
    rows = {int(r["id"]): r for r in small.raw_records("individual_appointments", "active", BASE)}
    got = page_ids(small, "individual_appointments", sort="practitioner_id,starts_at:desc")
    expected = sorted(
        rows,
        key=lambda i: (link_id(rows[i]["practitioner"]), _neg(rows[i]["starts_at"]), i),
    )
    assert got == expected
    got = page_ids(small, "individual_appointments", sort="updated_at", order="desc")
    ups = [rows[i]["updated_at"] for i in got]
    assert ups == sorted(ups, reverse=True)
    for a, b in itertools.pairwise(got):
        if rows[a]["updated_at"] == rows[b]["updated_at"]:
            assert a < b  # ties broken by id ascending


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


@pytest.mark.parametrize(
    ("sort", "order"),
    [("nope", None), ("id:sideways", None), ("id,", None), (None, "up"), ("body", None)],
)
def test_bad_sorts_are_query_errors(
    small: ClinicStore, sort: str | None, order: str | None
) -> None:
    with pytest.raises(QueryError):
        small.list_page("patients", "active", [], sort, order, 1, 10, BASE)


# ------------------------------------------------------------------------------ single records


def test_get_one(small: ClinicStore) -> None:
    patient = next(iter(small.raw_records("patients", "active", BASE)))
    assert small.get_one("patients", str(patient["id"]), BASE) == patient
    assert small.get_one("patients", int(patient["id"]), BASE) == patient
    active = next(iter(small.raw_records("practitioners", "active", BASE)))
    assert isinstance(small.get_one("practitioners", active["id"], BASE)["id"], str)
    inactive = next(iter(small.raw_records("practitioners", "inactive", BASE)))
    got = small.get_one("practitioners", inactive["id"], BASE)
    assert isinstance(got["id"], int)
    assert "label" not in got
    for resource, rid in (
        ("patients", "1"),
        ("patients", "abc"),
        ("nowhere", "1"),
        ("services", "1"),
        ("referral_sources", str(patient["id"])),
    ):
        with pytest.raises(NotFound):
            small.get_one(resource, rid, BASE)


def test_user_settings_and_nested_lists(small: ClinicStore) -> None:
    user = small.user(BASE)
    assert user["role"] == "administrator"
    assert user["user_active"] is True
    assert user["links"]["self"] == f"{BASE}/users/{user['id']}"
    full = small.settings(BASE)
    public = small.settings(BASE, public=True)
    assert "admin" in full["account"]
    assert "admin" not in public["account"]
    assert full["account"]["admin"]["first_name"] == user["first_name"]
    assert full["online_bookings"]["practitioner_order"]
    pid = sorted(small.ids("practitioners", "active"))[0]
    records, total = small.practitioner_reference_numbers(pid, 1, 100, BASE)
    assert total == len(records) >= 1
    assert all(link_id(r["practitioner"]) == int(pid) for r in records)
    assert small.practitioner_reference_numbers(pid, 2, 100, BASE) == ([], total)
    with pytest.raises(NotFound):
        small.practitioner_reference_numbers("1", 1, 100, BASE)
    source_pid = sorted(small.ids("referral_sources", "active"))[0]
    source = small.referral_source(int(source_pid), BASE)
    assert source["links"]["self"] == f"{BASE}/patients/{source_pid}/referral_source"


# ------------------------------------------------------------------------------ mutations


def test_create_gives_a_higher_id_and_the_clock(tiny: ClinicStore, clock: Clock) -> None:
    before = {int(i) for i in tiny.ids("patients", "active")}
    new = tiny.create("patients", first_name="Nova", notes="created by a test")
    assert int(new) > max(before)
    rec = tiny.get_one("patients", new, BASE)
    assert rec["first_name"] == "Nova"
    assert rec["notes"] == "created by a test"
    assert rec["created_at"] == rec["updated_at"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rec["archived_at"] == rec["deleted_at"] == ""
    assert new in tiny.ids("patients", "active")
    newest, _ = tiny.list_page("patients", "active", [], "created_at:desc", None, 1, 1, BASE)
    assert str(newest[0]["id"]) == new
    with pytest.raises(ValueError, match="no writable field"):
        tiny.create("patients", shoe_size=44)


def test_update_moves_updated_at_into_a_top_up(tiny: ClinicStore, clock: Clock) -> None:
    since = (clock.now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert page_ids(tiny, "patients", [f"updated_at:>={since}"]) == []
    pid = sorted(tiny.ids("patients", "active"))[0]
    tiny.update("patients", pid, last_name="Renamed", date_of_birth=date(1980, 5, 4))
    assert page_ids(tiny, "patients", [f"updated_at:>={since}"]) == [int(pid)]
    rec = tiny.get_one("patients", pid, BASE)
    assert rec["last_name"] == "Renamed"
    assert rec["date_of_birth"] == "1980-05-04"
    assert page_ids(tiny, "patients", ["last_name:=Renamed"]) == [int(pid)]  # columns follow


def test_delete_moves_a_patient_to_deleted(tiny: ClinicStore) -> None:
    pid = sorted(tiny.ids("patients", "active"))[0]
    total_before = tiny.list_page("patients", "active", [], None, None, 1, 1, BASE)[1]
    tiny.delete("patients", pid)
    assert pid not in tiny.ids("patients", "active")
    assert pid in tiny.ids("patients", "deleted")
    assert tiny.list_page("patients", "active", [], None, None, 1, 1, BASE)[1] == total_before - 1
    row = next(
        r for r in tiny.raw_records("patients", "deleted", BASE) if pid in r["links"]["self"]
    )
    assert set(row) == {"deleted_at", "links"}


def test_archive_and_unarchive(tiny: ClinicStore) -> None:
    pid = sorted(tiny.ids("patients", "active"))[0]
    tiny.archive("patients", pid)
    assert pid in tiny.ids("patients", "archived")
    assert pid not in tiny.ids("patients", "active")
    tiny.unarchive("patients", pid)
    assert pid in tiny.ids("patients", "active")
    assert tiny.get_one("patients", pid, BASE)["archived_at"] == ""
    tid = sorted(tiny.ids("appointment_types", "active"))[0]
    tiny.archive("appointment_types", tid)
    assert tid in tiny.ids("appointment_types", "archived")
    assert "archived_at" in tiny.get_one("appointment_types", tid, BASE)
    tiny.unarchive("appointment_types", tid)
    assert "archived_at" not in tiny.get_one("appointment_types", tid, BASE)
    prid = sorted(tiny.ids("practitioners", "active"))[0]
    tiny.archive("practitioners", prid)
    assert prid in tiny.ids("practitioners", "inactive")
    with pytest.raises(ValueError, match="cannot be archived"):
        tiny.archive("invoices", sorted(tiny.ids("invoices", "active"))[0])


def test_cancel_puts_an_appointment_and_its_attendee_in_cancelled(tiny: ClinicStore) -> None:
    live = tiny.ids("individual_appointments", "active") - tiny.ids(
        "individual_appointments", "cancelled"
    )
    aid = sorted(live)[0]
    tiny.cancel("individual_appointments", aid, reason=31)
    assert aid in tiny.ids("individual_appointments", "cancelled")
    assert aid in tiny.ids("individual_appointments", "active")
    rec = tiny.get_one("individual_appointments", aid, BASE)
    assert (rec["cancellation_reason"], rec["cancellation_reason_description"]) == (
        31,
        "COVID-19 related",
    )
    attendee = next(
        a
        for a in tiny.raw_records("attendees", "active", BASE)
        if link_id(a["booking"]) == int(aid)
    )
    assert attendee["cancelled_at"] == rec["cancelled_at"]
    assert str(attendee["id"]) in tiny.ids("attendees", "cancelled")
    with pytest.raises(ValueError, match="reason must be one of"):
        tiny.cancel("individual_appointments", aid, reason=99)


def test_cancelling_a_group_attendee_leaves_the_class(tiny: ClinicStore) -> None:
    groups = {str(g["id"]): g for g in tiny.raw_records("group_appointments", "active", BASE)}
    attendee = next(
        a
        for a in tiny.raw_records("attendees", "active", BASE)
        if str(link_id(a["booking"])) in groups and not a["cancelled_at"]
    )
    group_id = str(link_id(attendee["booking"]))
    assert link_id(attendee["patient"]) in groups[group_id]["patient_ids"]
    tiny.cancel("attendees", attendee["id"])
    after = tiny.get_one("group_appointments", group_id, BASE)
    assert link_id(attendee["patient"]) not in after["patient_ids"]
    assert after["updated_at"] > groups[group_id]["updated_at"]


def test_deleting_cascades(tiny: ClinicStore) -> None:
    aid = sorted(tiny.ids("individual_appointments", "active"))[0]
    tiny.delete("individual_appointments", aid)
    assert aid in tiny.ids("individual_appointments", "deleted")
    assert any(
        link_id(a["booking"]) == int(aid) for a in tiny.raw_records("attendees", "deleted", BASE)
    )
    invoice = next(iter(tiny.raw_records("invoices", "active", BASE)))
    patient = str(link_id(invoice["patient"]))
    owed = tiny.patient_outstanding(patient)
    share = Decimal(invoice["total_amount"]) - tiny.invoice_paid(invoice["id"])
    tiny.delete("invoices", invoice["id"])
    assert tiny.patient_outstanding(patient) == owed - share
    items = [i for i in tiny.raw_records("invoice_items", "deleted", BASE)
             if link_id(i["invoice"]) == int(invoice["id"])]  # fmt: skip
    assert items
    with pytest.raises(ValueError, match="cannot be deleted"):
        tiny.delete("businesses", sorted(tiny.ids("businesses", "active"))[0])


def test_invoice_truth_follows_updates(tiny: ClinicStore) -> None:
    inv = next(i for i in tiny.raw_records("invoices", "active", BASE) if i["status"] == 20)
    total = Decimal(inv["total_amount"])
    tiny.update("invoices", inv["id"], status=10)
    assert tiny.invoice_paid(inv["id"]) == total  # still paid in full, just reopened
    tiny.update("invoices", inv["id"], paid=Decimal("5"))
    assert tiny.invoice_paid(inv["id"]) == Decimal("5")
    rec = tiny.get_one("invoices", inv["id"], BASE)
    assert rec["status_description"] == "Open"
    assert rec["closed_at"] is None
    assert "_paid" not in rec
    assert "paid" not in rec
    tiny.update("invoices", inv["id"], status=20)
    assert tiny.invoice_paid(inv["id"]) == total
    new = tiny.create("invoices", patient_id=link_id(inv["patient"]), status=40)
    assert tiny.invoice_paid(new) == 0
    assert tiny.get_one("invoices", new, BASE)["number"] > inv["number"]


def test_create_an_appointment_with_its_attendee(tiny: ClinicStore) -> None:
    pid = sorted(tiny.ids("patients", "active"))[-1]
    start = datetime(2025, 6, 10, 0, 30, tzinfo=UTC)
    aid = tiny.create(
        "individual_appointments",
        patient_id=pid,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
    )
    rec = tiny.get_one("individual_appointments", aid, BASE)
    patient = tiny.get_one("patients", pid, BASE)
    assert rec["starts_at"] == "2025-06-10T00:30:00Z"
    assert rec["patient_name"] == f"{patient['first_name']} {patient['last_name']}".strip()
    assert rec["cancelled_at"] is None
    assert rec["deleted_at"] is None
    assert page_ids(tiny, "attendees", [f"booking_id:={aid}"])
    assert page_ids(
        tiny, "individual_appointments", [f"patient_id:={pid}", "starts_at:>=2025-06-10"]
    )


def test_counts_follow_mutations(tiny: ClinicStore) -> None:
    before = tiny.counts()
    tiny.create("medical_alerts", name="Bee sting allergy 🐝")
    tiny.delete("medical_alerts", sorted(tiny.ids("medical_alerts", "active"))[0])
    after = tiny.counts()
    assert after["medical_alerts", "active"] == before["medical_alerts", "active"]
    assert after["medical_alerts", "deleted"] == before["medical_alerts", "deleted"] + 1
    # the cached total of a list moves too
    _, total = tiny.list_page("medical_alerts", "deleted", [], None, None, 1, 1, BASE)
    assert total == after["medical_alerts", "deleted"]


def test_mutating_while_another_thread_lists(tiny: ClinicStore) -> None:
    errors: list[BaseException] = []
    created: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for i in range(60):
                pid = tiny.create("patients", first_name=f"Thread{i}")
                created.append(pid)
                tiny.update("patients", pid, notes="edited")
                if i % 3 == 0:
                    tiny.delete("patients", pid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    pages = 0
    while not stop.is_set() or pages < 5:
        for variant in ("active", "deleted"):
            records, total = tiny.list_page("patients", variant, [], None, None, 1, 100, BASE)
            assert len(records) <= total
            pages += 1
        list(tiny.raw_records("patients", "active", BASE))
    thread.join()
    assert not errors
    assert len(created) == len(set(created)) == 60
    deleted = tiny.ids("patients", "deleted")
    assert sum(pid in deleted for pid in created) == 20
    assert sorted(created, key=int) == created  # ids grow with creation time
