"""The page writer: atomic pages and checkpoints, idempotent merges, quarantine, keys."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from staging_records import (
    API,
    appointment,
    deleted_patient_stub,
    link,
    patient,
    referral_source,
    res,
    service,
)

from staging import Checkpoint, Page, StagingDB, StagingWriteError, canonical_id
from staging import writer as writer_module


def _dump(staging: StagingDB, table: str) -> list[tuple[Any, ...]]:
    sql = f'SELECT * FROM "{table}" ORDER BY 1, 2, 3'
    return staging.conn.execute(sql).fetchall()


def _one(staging: StagingDB, table: str, row_id: str) -> dict[str, Any]:
    cur = staging.conn.execute(f'SELECT * FROM "{table}" WHERE id = ?', [row_id])
    names = [d[0] for d in cur.description]
    found = cur.fetchone()
    assert found is not None, f"{table} {row_id} not staged"
    return dict(zip(names, found, strict=True))


# ---------------------------------------------------------------------------------------------
# Atomicity: a page and its checkpoint land together or not at all.


def test_a_page_and_its_checkpoint_land_together(staging: StagingDB, run_id: int) -> None:
    result = staging.writer(run_id).write_page(
        res("patients"),
        "active",
        [patient(1), patient(2)],
        Checkpoint("crawl", '{"after": 2}', True),
    )
    assert (result.written, result.quarantined) == (2, 0)
    assert staging.staged_ids("patients", "active") == {"1", "2"}
    saved = staging.get_checkpoints("crawl")
    assert saved == {("patients", "active"): ('{"after": 2}', True)}


def test_a_failure_after_the_first_rows_leaves_nothing_behind(
    staging: StagingDB, run_id: int
) -> None:
    writer = staging.writer(run_id)
    writer.write_page(res("patients"), "active", [patient(1)], ("crawl", '{"after": 1}', False))
    # SQLite itself fails on the third row of the next page, after two rows were inserted.
    staging.conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON patients WHEN NEW.id = '4'"
        " BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
    )
    page = [patient(2), patient(3), patient(4), patient(5)]
    with pytest.raises(StagingWriteError, match="simulated failure"):
        writer.write_page(res("patients"), "active", page, ("crawl", '{"after": 5}', False))
    assert staging.staged_ids("patients", "active") == {"1"}
    assert staging.get_checkpoints("crawl")[("patients", "active")].state == '{"after": 1}'
    assert not staging.conn.in_transaction


def test_a_failing_checkpoint_takes_its_page_down_with_it(
    staging: StagingDB, run_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHECKPOINT_SQL", "INSERT INTO no_such_table VALUES (?)")
    with pytest.raises(StagingWriteError, match="no_such_table"):
        staging.writer(run_id).write_page(
            res("patients"), "active", [patient(1)], ("crawl", "{}", True)
        )
    assert staging.count_rows("patients") == 0


def test_a_batch_is_one_transaction(staging: StagingDB, run_id: int) -> None:
    staging.conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON individual_appointments"
        " BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
    )
    batch = [
        Page(res("patients"), "active", [patient(1)], [("crawl", '{"p": 1}', False)]),
        Page(res("patients"), "archived", [patient(2)], [("crawl", '{"p": 1}', False)]),
        Page(res("individual_appointments"), "active", [appointment(9)]),
    ]
    with pytest.raises(StagingWriteError):
        staging.writer(run_id).write_batch(batch)
    assert staging.count_rows("patients") == 0
    assert staging.get_checkpoints("crawl") == {}


def test_a_page_can_advance_several_checkpoints(staging: StagingDB, run_id: int) -> None:
    page = Page(
        res("individual_appointments"),
        "active",
        [appointment(1)],
        [("crawl:unit-1", '{"done": true}', True), ("crawl:unit-2", '{"after": 1}', False)],
    )
    staging.writer(run_id).write_batch([page])
    under = staging.checkpoints_under("crawl:")
    assert under == {
        "crawl:unit-1": {("individual_appointments", "active"): ('{"done": true}', True)},
        "crawl:unit-2": {("individual_appointments", "active"): ('{"after": 1}', False)},
    }
    assert staging.clear_checkpoints("crawl:", prefix=True) == 2
    assert staging.checkpoints_under("crawl:") == {}


def test_a_checkpoint_state_must_be_json(staging: StagingDB, run_id: int) -> None:
    with pytest.raises(ValueError, match="Expecting value"):
        staging.writer(run_id).write_page(
            res("patients"), "active", [patient(1)], ("crawl", "not json", False)
        )
    assert staging.count_rows("patients") == 0


def test_unknown_variants_are_a_programming_error(staging: StagingDB, run_id: int) -> None:
    with pytest.raises(ValueError, match="no 'cancelled' list"):
        staging.writer(run_id).write_page(res("patients"), "cancelled", [patient(1)])


# ---------------------------------------------------------------------------------------------
# Merging


def test_the_same_page_twice_is_the_same_content(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    page = [patient(1), patient("2"), deleted_patient_stub(3)]
    writer.write_page(res("patients"), "active", page, ("crawl", '{"a": 1}', False))
    first = _dump(staging, "patients"), _dump(staging, "_checkpoints")
    writer.write_page(res("patients"), "active", page, ("crawl", '{"a": 1}', False))
    second = _dump(staging, "patients"), _dump(staging, "_checkpoints")
    assert first[0] == second[0]
    assert [r[:5] for r in first[1]] == [r[:5] for r in second[1]]
    assert staging.count_rows("patients") == 3


@pytest.mark.parametrize("order", [("active", "cancelled"), ("cancelled", "active")])
def test_a_cancelled_appointment_seen_in_two_lists(
    staging: StagingDB, run_id: int, order: tuple[str, str]
) -> None:
    versions = {
        "active": appointment(5),
        "cancelled": appointment(5, cancelled_at="2016-07-22T15:10:08Z", cancellation_reason=50),
    }
    writer = staging.writer(run_id)
    for variant in order:
        writer.write_page(res("individual_appointments"), variant, [versions[variant]])
    row = _one(staging, "individual_appointments", "5")
    assert row["variants"] == "active,cancelled"
    assert row["state"] == "cancelled"
    assert row["cancelled_at"] == "2016-07-22T15:10:08Z"
    assert staging.staged_ids("individual_appointments", "cancelled") == {"5"}
    assert staging.staged_ids("individual_appointments", "active") == {"5"}
    assert staging.staged_ids("individual_appointments", "deleted") == set()


@pytest.mark.parametrize("stub_first", [False, True])
def test_a_deleted_patient_stub_never_clobbers_the_full_record(
    staging: StagingDB, run_id: int, stub_first: bool
) -> None:
    writer = staging.writer(run_id)
    pages = [
        ("active", [patient(1, archived_at="")]),
        ("deleted", [deleted_patient_stub(1, at="2013-06-05T14:38:48Z")]),
    ]
    for variant, records in reversed(pages) if stub_first else pages:
        writer.write_page(res("patients"), variant, records)
    row = _one(staging, "patients", "1")
    raw = json.loads(row["raw"])
    assert raw["first_name"] == "Peter"
    assert raw["date_of_birth"] == "2001-05-26"
    assert row["concession_type_id"] == "123"
    assert row["created_at"] == "2013-03-26T14:00:00Z"
    assert row["deleted_at"] == "2013-06-05T14:38:48Z"
    assert row["state"] == "deleted"
    assert row["variants"] == "active,deleted"
    staged = staging.row("patients", 1)
    assert staged is not None
    assert staged.markers["deleted_at"] == "2013-06-05T14:38:48Z"


def test_a_stub_alone_is_staged_by_its_self_link(staging: StagingDB, run_id: int) -> None:
    staging.writer(run_id).write_page(res("patients"), "deleted", [deleted_patient_stub(77)])
    row = _one(staging, "patients", "77")
    assert row["state"] == "deleted"
    assert json.loads(row["raw"]) == deleted_patient_stub(77)


def test_a_newer_full_record_clears_a_marker_an_older_one_cannot(
    staging: StagingDB, run_id: int
) -> None:
    writer = staging.writer(run_id)
    archived = patient(1, archived_at="2014-01-01T00:00:00Z", updated_at="2014-01-01T00:00:00Z")
    writer.write_page(res("patients"), "archived", [archived])
    # The same version, or an older one, seen in the default list: still archived.
    writer.write_page(res("patients"), "active", [patient(1, updated_at="2013-03-26T14:00:00Z")])
    row = _one(staging, "patients", "1")
    assert (row["state"], row["updated_at"]) == ("archived", "2014-01-01T00:00:00Z")
    assert json.loads(row["raw"])["archived_at"] == "2014-01-01T00:00:00Z"
    assert row["variants"] == "archived"  # the default-list sighting was an older version
    # A top-up later sees it unarchived (a newer version): it lives in the default list now.
    later = staging.start_run(mode="topup", selection=["patients"])
    unarchived = patient(1, archived_at="", updated_at="2015-02-02T00:00:00Z", first_name="Pete")
    staging.writer(later).write_page(res("patients"), "active", [unarchived])
    row = _one(staging, "patients", "1")
    assert (row["state"], row["variants"], row["run_id"]) == ("active", "active", later)
    assert json.loads(row["raw"])["first_name"] == "Pete"


def test_state_precedence_and_inactive(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    both = appointment(1, deleted_at="2016-07-23T00:00:00Z", cancelled_at="2016-07-22T00:00:00Z")
    writer.write_page(res("individual_appointments"), "deleted", [both])
    assert _one(staging, "individual_appointments", "1")["state"] == "deleted"
    practitioner = {
        "id": "3",
        "first_name": "Old",
        "created_at": "2010-01-01T00:00:00Z",
        "updated_at": "2010-01-01T00:00:00Z",
        "default_appointment_type": None,
        "user": link("users", 3),
        "links": {"self": f"{API}/practitioners/3"},
    }
    writer.write_page(res("practitioners"), "inactive", [practitioner])
    row = _one(staging, "practitioners", "3")
    assert (row["state"], row["user_id"], row["default_appointment_type_id"]) == (
        "inactive",
        "3",
        None,
    )


# ---------------------------------------------------------------------------------------------
# Keys and links


def test_ids_arrive_as_numbers_or_strings_and_are_canonical(
    staging: StagingDB, run_id: int
) -> None:
    writer = staging.writer(run_id)
    writer.write_page(res("patients"), "active", [patient(514810972972521916), patient("0042")])
    writer.write_page(res("patients"), "archived", [patient("514810972972521916")])
    assert staging.staged_ids("patients", "active") == {"514810972972521916", "42"}
    assert _one(staging, "patients", "514810972972521916")["variants"] == "active,archived"
    assert canonical_id(2**63 - 1) == str(2**63 - 1)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.au1.cliniko.com/v1/patients/82",
        "http://api.cliniko.dev:3000/v1/patients/82",
        "https://api.au1.cliniko.test/v1/patients/082",
        "/v1/internal/patients/82",
        "https://api.uk2.cliniko.com/v1/patients/82?page=1",
    ],
)
def test_record_links_are_read_from_the_path_only(
    staging: StagingDB, run_id: int, url: str
) -> None:
    record = appointment(1, patient={"links": {"self": url}})
    staging.writer(run_id).write_page(res("individual_appointments"), "active", [record])
    assert _one(staging, "individual_appointments", "1")["patient_id"] == "82"


def test_services_are_keyed_by_business_and_appointment_type(
    staging: StagingDB, run_id: int
) -> None:
    writer = staging.writer(run_id)
    writer.write_page(res("services"), "active", [service(123, 456), service(123, 457)])
    writer.write_page(res("services"), "active", [service(123, 456)])
    assert staging.staged_ids("services", "active") == {"123:456", "123:457"}
    row = _one(staging, "services", "123:456")
    assert (row["business_id"], row["appointment_type_id"]) == ("123", "456")


def test_referral_sources_are_keyed_by_their_patient(staging: StagingDB, run_id: int) -> None:
    writer = staging.writer(run_id)
    writer.write_page(
        res("referral_sources"),
        "active",
        [referral_source(123), referral_source(124, referrer=("contacts", 9))],
    )
    assert staging.staged_ids("referral_sources", "active") == {"123", "124"}
    row = _one(staging, "referral_sources", "124")
    assert (row["patient_id"], row["referrer_id"], row["referral_source_type_id"]) == (
        "124",
        "9",
        "1",
    )


def test_single_objects_user_and_settings(staging: StagingDB, run_id: int) -> None:
    user = {"id": 1, "first_name": "John", "created_at": "2014-01-29T09:54:54Z"}
    settings = {
        "account": {"id": 123, "name": "Bins, Boehm and Baumbach", "time_zone": "Melbourne"},
        "links": {"self": "https://api.us1.cliniko.com/v1/settings/public"},
    }
    staging.set_single(res("user"), user, run_id)
    staging.set_single(res("settings"), settings, run_id)
    staging.set_single(res("settings"), settings, run_id)
    assert staging.staged_ids("user", "active") == {"1"}
    assert staging.staged_ids("settings", "active") == {"settings"}
    assert staging.get_meta("account_name") == "Bins, Boehm and Baumbach"
    assert staging.get_meta("time_zone") == "Melbourne"
    with pytest.raises(ValueError, match="is a list"):
        staging.writer(run_id).set_single(res("patients"), patient(1))


# ---------------------------------------------------------------------------------------------
# Quarantine


MALFORMED: list[tuple[object, str]] = [
    (["not", "an", "object"], "record is not a JSON object"),
    ("a string", "record is not a JSON object"),
    (None, "record is not a JSON object"),
    ({"first_name": "No Id"}, "no id and no record self link"),
    (patient("abc"), "id is not a positive 64-bit integer"),
    (patient(1.5), "id is not a positive 64-bit integer"),
    (patient(True), "id is not a positive 64-bit integer"),
    (patient(-4), "id is not a positive 64-bit integer"),
    (patient(2**63), "id is not a positive 64-bit integer"),
    (patient("١٢"), "id is not a positive 64-bit integer"),
    (patient(10, concession_type="123"), "concession_type: not a record link"),
    (
        patient(11, referring_doctor={"links": {"self": f"{API}/patients/11/invoices"}}),
        "referring_doctor: not a record link",
    ),
    (patient(12, referring_doctor={"links": None}), "referring_doctor: not a record link"),
    (patient(13, updated_at=20130326), "updated_at: not a string"),
    (patient(14, deleted_at=True), "deleted_at: not a string"),
    (patient(15, notes=float("nan")), "record cannot be written as JSON"),
]


def test_malformed_records_are_quarantined_and_the_rest_lands(
    staging: StagingDB, run_id: int
) -> None:
    page = [patient(1), *(record for record, _ in MALFORMED), patient(2)]
    result = staging.writer(run_id).write_page(
        res("patients"), "active", page, ("crawl", '{"after": 2}', False)
    )
    assert (result.written, result.quarantined) == (2, len(MALFORMED))
    assert staging.staged_ids("patients", "active") == {"1", "2"}
    assert staging.get_checkpoints("crawl")[("patients", "active")].state == '{"after": 2}'
    rows = staging.quarantine_rows("patients")
    assert [r.reason for r in rows] == [reason for _, reason in MALFORMED]
    assert all(r.variant == "active" and r.run_id == run_id for r in rows)
    by_reason = {r.reason: r for r in rows}
    assert by_reason["concession_type: not a record link"].record_id == "10"
    assert by_reason["updated_at: not a string"].record_id == "13"
    # Quarantined raw is kept, readable, and the same bad record seen again is one row.
    assert json.loads(rows[0].raw) == ["not", "an", "object"]
    staging.writer(run_id).write_page(res("patients"), "active", page)
    assert len(staging.quarantine_rows("patients")) == len(MALFORMED)


def test_a_lone_surrogate_is_quarantined_not_fatal(staging: StagingDB, run_id: int) -> None:
    bad = patient(2, first_name=json.loads('"\\ud800"'))
    result = staging.writer(run_id).write_page(
        res("patients"), "active", [patient(1), bad, patient(3)], ("crawl", "{}", True)
    )
    assert (result.written, result.quarantined) == (2, 1)
    assert staging.staged_ids("patients", "active") == {"1", "3"}
    [row] = staging.quarantine_rows()
    assert (row.record_id, row.reason) == ("2", "text is not valid Unicode (lone surrogate)")
    assert "\\ud800" in row.raw


def test_quarantined_content_is_never_logged(
    staging: StagingDB, run_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    secret = patient("abc", first_name="Zebedee", notes="confidential note")
    staging.writer(run_id).write_page(res("patients"), "active", [secret, patient(1)])
    assert "quarantined 1 record(s) of patients/active" in caplog.text
    assert "Zebedee" not in caplog.text
    assert "confidential" not in caplog.text


def test_raw_is_compact_unicode_json(staging: StagingDB, run_id: int) -> None:
    record = patient(1, first_name="Zoë", last_name="Ñandú 山田")
    staging.writer(run_id).write_page(res("patients"), "active", [record])
    raw = _one(staging, "patients", "1")["raw"]
    assert "Zoë" in raw
    assert ", " not in raw
    assert json.loads(raw) == record


def test_nothing_is_written_before_the_transaction(
    staging: StagingDB, run_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records are parsed before BEGIN: a parse-time bug cannot leave a half-open transaction."""

    def explode(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(writer_module, "parse_record", explode)
    with pytest.raises(RuntimeError):
        staging.writer(run_id).write_page(res("patients"), "active", [patient(1)])
    assert not staging.conn.in_transaction
    with pytest.raises(sqlite3.OperationalError):
        staging.conn.execute("COMMIT")


def test_a_single_checkpoint_where_a_list_belongs_is_refused(
    staging: StagingDB, run_id: int
) -> None:
    page = Page(res("patients"), "active", [patient(1)], ("abc", "{}", True))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of"):
        staging.writer(run_id).write_batch([page])
    assert staging.count_rows("patients") == 0


def test_unstorable_settings_are_quarantined_and_leave_meta_alone(
    staging: StagingDB, run_id: int
) -> None:
    settings = {"account": {"name": json.loads('"Clinic \\udc80"'), "time_zone": "Melbourne"}}
    result = staging.set_single(res("settings"), settings, run_id)
    assert (result.written, result.quarantined) == (0, 1)
    assert staging.get_meta("time_zone") is None
    assert staging.get_meta("account_name") is None


def test_a_practitioner_made_inactive_is_staged_inactive(staging: StagingDB, run_id: int) -> None:
    """Practitioners carry no marker: which list holds the newest version decides."""
    writer = staging.writer(run_id)
    base = {"first_name": "Ada", "last_name": "Example", "created_at": "2014-01-01T00:00:00Z"}
    active = {"id": "9", **base, "updated_at": "2014-01-01T00:00:00Z"}
    writer.write_page(res("practitioners"), "active", [active])
    assert _one(staging, "practitioners", "9")["state"] == "active"
    inactive = {"id": 9, **base, "updated_at": "2015-06-01T00:00:00Z"}
    writer.write_page(res("practitioners"), "inactive", [inactive])
    row = _one(staging, "practitioners", "9")
    assert (row["state"], row["variants"]) == ("inactive", "inactive")
    # An older sighting from the default list (a page fetched before the change) changes nothing.
    writer.write_page(res("practitioners"), "active", [active])
    assert _one(staging, "practitioners", "9")["state"] == "inactive"
