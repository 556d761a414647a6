"""Rows in and out of the clinic store, on both backends: types, constraints, atomicity,
guards."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target import (
    ClinicBackend,
    ForbiddenWrite,
    IntegrityViolation,
    InvalidValue,
    SchemaMismatch,
    SQLiteClinicStore,
    TransactionError,
    open_target,
    row_hash,
)
from tests.backends import raw as _raw


def test_round_trip_keeps_decimals_exact_unicode_json_and_utc(
    store: ClinicBackend, rows: Any
) -> None:
    [pid] = store.insert_rows(
        "patients",
        [
            rows.patient(
                first_name="Zoë 李",
                last_name="Ó Súilleabháin-Nguyễn \U0001f9d1\u200d\u2695\ufe0f",
                phones=[{"type": None, "number": "+64 21 000"}, {"type": "Home", "number": "04"}],
                custom_fields=[
                    {
                        "section": "Intake",
                        "name": "Allergies ✓",
                        "type": "text",
                        "value_text": 'line 1\nline "2"',
                        "archived": True,
                    }
                ],
                medical_alerts=("Penicillin", "Латекс"),
                archived=True,
                archived_at=datetime(
                    2023, 3, 1, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=13))
                ),
                accepted_privacy_policy=None,
                accepted_sms_marketing=False,
            )
        ],
    )
    [prid] = store.insert_rows("practitioners", [rows.practitioner()])
    [sid] = store.insert_rows("services", [rows.service(default_price=Decimal("81.818"))])
    [iid] = store.insert_rows("invoices", [rows.invoice(pid, "81.80", tax=Decimal("-0.005"))])

    patient = store.fetch_rows("patients", [pid])[pid]
    assert patient["first_name"] == "Zoë 李"
    assert patient["last_name"] == "Ó Súilleabháin-Nguyễn \U0001f9d1\u200d\u2695\ufe0f"
    assert patient["phones"][0] == {"type": None, "number": "+64 21 000"}
    assert patient["custom_fields"][0]["value_text"] == 'line 1\nline "2"'
    assert patient["medical_alerts"] == ["Penicillin", "Латекс"]
    assert patient["date_of_birth"] == date(1990, 1, 2)
    assert patient["archived"] is True
    assert patient["accepted_privacy_policy"] is None
    assert patient["accepted_sms_marketing"] is False
    archived_at = patient["archived_at"]
    assert archived_at.tzinfo is UTC
    assert archived_at == datetime(2023, 2, 28, 19, 30, 15, 123456, tzinfo=UTC)
    assert patient["created_at"].tzinfo is UTC

    price = store.fetch_rows("services", [sid])[sid]["default_price"]
    assert price == Decimal("81.818")
    assert str(price) == "81.818"
    inv = store.fetch_rows("invoices", [iid])[iid]
    assert str(inv["total"]) == "81.80"  # the exact text, trailing zero kept
    assert inv["tax"] == Decimal("-0.005")

    if isinstance(store, SQLiteClinicStore):
        # As stored: text, never a float; timestamps fixed-width UTC.
        [(total, total_type)] = _raw(store, "SELECT total, typeof(total) FROM invoices")
        assert (total, total_type) == ("81.80", "text")
        [(stored_at,)] = _raw(store, "SELECT archived_at FROM patients")
        assert stored_at == "2023-02-28T19:30:15.123456Z"
    else:
        # As stored: exact NUMERIC (scale kept), TIMESTAMPTZ.
        [(total, total_type)] = _raw(
            store, "SELECT total::text, pg_typeof(total)::text FROM invoices"
        )
        assert (total, total_type) == ("81.80", "numeric")
        [(stored_at,)] = _raw(store, "SELECT archived_at::text FROM patients")
        assert stored_at == "2023-02-28 19:30:15.123456+00"
    assert prid == 1


def test_a_row_hashes_the_same_written_and_read_back(store: ClinicBackend, rows: Any) -> None:
    written = rows.patient(
        archived_at=datetime(2020, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5))),
        medical_alerts=("a", "b"),
    )
    [pid] = store.insert_rows("patients", [written])
    back = store.fetch_rows("patients", [pid])[pid]
    assert back["medical_alerts"] == ["a", "b"]  # a tuple comes back a list: same hash
    assert row_hash({k: back[k] for k in written}) == row_hash(written)
    assert row_hash(back, ignore={"id", "created_at", "updated_at"}) != row_hash(written), (
        "absent keys and None values must hash differently"
    )


def test_wrong_types_are_refused_not_coerced(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    [prid] = store.insert_rows("practitioners", [rows.practitioner()])
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("patients", rows.patient(archived_at=datetime(2020, 1, 1)), "archived_at"),  # naive
        ("patients", rows.patient(date_of_birth=datetime(2020, 1, 1, tzinfo=UTC)), "date_of_birth"),
        ("patients", rows.patient(phones='[{"number": "1"}]'), "phones"),  # JSON text
        ("patients", rows.patient(archived="yes"), "archived"),
        ("patients", rows.patient(first_name=42), "first_name"),
        ("services", rows.service(default_price=81.818), "default_price"),  # float
        ("services", rows.service(default_price=Decimal("0.0000001")), "default_price"),
        ("services", rows.service(default_price=Decimal("1e12")), "default_price"),
        ("services", rows.service(default_price=Decimal("NaN")), "default_price"),
        # A Cliniko id (text) where a clinic id belongs: never silently an integer.
        ("appointments", rows.appointment(str(pid), prid), "patient_id"),
    ]
    for table, row, column in cases:
        with pytest.raises(InvalidValue) as info:
            store.insert_rows(table, [rows.patient(), row] if table == "patients" else [row])
        assert info.value.column == column, column
        assert info.value.table == table
    assert store.table_counts()["patients"] == 1
    assert store.table_counts()["services"] == 0


def test_unknown_tables_and_columns_are_schema_mismatches(store: ClinicBackend, rows: Any) -> None:
    with pytest.raises(SchemaMismatch, match="no table 'patient'"):
        store.insert_rows("patient", [rows.patient()])
    with pytest.raises(SchemaMismatch, match="'nickname'"):
        store.insert_rows("patients", [rows.patient(nickname="Z")])
    with pytest.raises(SchemaMismatch, match="id cannot be changed"):
        store.update_rows("patients", [(1, {"id": 2})])
    with pytest.raises(SchemaMismatch):
        store.iter_rows("patients", ["first_name", "shoe_size"]).__next__()


def test_status_check_rejects_bad_values_and_names_the_row(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    [prid] = store.insert_rows("practitioners", [rows.practitioner()])
    good = rows.appointment(pid, prid)
    for bad in ("no_show", "Booked", ""):
        with pytest.raises(IntegrityViolation, match="CHECK constraint failed") as info:
            store.insert_rows("appointments", [good, good, rows.appointment(pid, prid, status=bad)])
        assert info.value.row_index == 2
    [aid] = store.insert_rows("appointments", [good])
    with pytest.raises(IntegrityViolation):
        store.update_rows("appointments", [(aid, {"status": "no_show"})])
    with pytest.raises(IntegrityViolation):
        store.insert_rows("invoices", [rows.invoice(pid, "1", outstanding_basis="guess")])
    assert store.table_counts()["appointments"] == 1  # only the good one, from its own call
    for status in ("booked", "completed", "cancelled", "did_not_arrive"):
        store.update_rows("appointments", [(aid, {"status": status})])


def test_foreign_keys_reject_rows_pointing_nowhere(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    [prid] = store.insert_rows("practitioners", [rows.practitioner()])
    with pytest.raises(IntegrityViolation, match="FOREIGN KEY") as info:
        store.insert_rows(
            "appointments", [rows.appointment(pid, prid), rows.appointment(pid, prid + 99)]
        )
    assert info.value.row_index == 1
    with pytest.raises(IntegrityViolation, match="NOT NULL"):
        store.insert_rows("appointments", [rows.appointment(None, prid)])
    assert store.table_counts()["appointments"] == 0


def test_ids_come_back_in_input_order_even_with_mixed_key_sets(
    store: ClinicBackend, rows: Any
) -> None:
    batch = [
        rows.patient(first_name="A"),
        rows.patient(first_name="B", email="b@example.org"),
        rows.patient(first_name="C"),
        rows.patient(first_name="D", email="d@example.org"),
    ]
    ids = store.insert_rows("patients", batch)
    assert ids == [1, 2, 3, 4]
    fetched = store.fetch_rows("patients", ids)
    assert [fetched[i]["first_name"] for i in ids] == ["A", "B", "C", "D"]
    assert fetched[2]["email"] == "b@example.org"
    assert fetched[3]["email"] is None


def test_clinic_ids_are_never_reused(store: ClinicBackend, rows: Any) -> None:
    ids = store.insert_rows("patients", [rows.patient() for _ in range(3)])
    _raw(store, "DELETE FROM patients WHERE id = ?", ids[-1])  # the clinic deletes
    assert store.insert_rows("patients", [rows.patient()]) == [4]


def test_given_ids_are_used_and_must_be_all_or_none(store: ClinicBackend, rows: Any) -> None:
    assert store.insert_rows("patients", [rows.patient(id=10), rows.patient(id=20)]) == [10, 20]
    assert store.insert_rows("patients", [rows.patient()]) == [21]
    with pytest.raises(SchemaMismatch, match="every row or for none"):
        store.insert_rows("patients", [rows.patient(id=30), rows.patient()])


def test_update_sets_columns_bumps_updated_at_and_counts(store: ClinicBackend, rows: Any) -> None:
    ids = store.insert_rows("patients", [rows.patient(), rows.patient()])
    before = store.fetch_rows("patients", ids)
    changed = store.update_rows(
        "patients",
        [(ids[0], {"email": "z@example.org", "medical_alerts": ["Latex"]}), (999, {"email": "x"})],
    )
    assert changed == 1  # 999 does not exist
    after = store.fetch_rows("patients", ids)
    assert after[ids[0]]["email"] == "z@example.org"
    assert after[ids[0]]["medical_alerts"] == ["Latex"]
    assert after[ids[0]]["updated_at"] > before[ids[0]]["updated_at"]
    assert after[ids[0]]["created_at"] == before[ids[0]]["created_at"]
    assert after[ids[1]] == before[ids[1]]
    stamp = datetime(2030, 1, 1, tzinfo=UTC)
    store.update_rows("patients", [(ids[1], {"updated_at": stamp})])
    assert store.fetch_rows("patients", [ids[1]])[ids[1]]["updated_at"] == stamp


def test_fetch_and_iter(store: ClinicBackend, rows: Any) -> None:
    ids = store.insert_rows("patients", [rows.patient(first_name=str(i)) for i in range(2500)])
    fetched = store.fetch_rows("patients", [*ids[::-1], 10**6])
    assert len(fetched) == 2500
    assert 10**6 not in fetched
    listed = list(store.iter_rows("patients", ["first_name", "date_of_birth"]))
    assert [r["id"] for r in listed] == ids
    assert set(listed[0]) == {"id", "first_name", "date_of_birth"}
    assert listed[7]["first_name"] == "7"
    assert listed[7]["date_of_birth"] == date(1990, 1, 2)


def test_a_failed_transaction_writes_nothing(store: ClinicBackend, rows: Any) -> None:
    class Boom(Exception):
        pass

    def batch() -> None:
        with store.transaction():
            [pid] = store.insert_rows("patients", [rows.patient()])
            [prid] = store.insert_rows("practitioners", [rows.practitioner()])
            store.insert_rows("appointments", [rows.appointment(pid, prid)])
            store.upsert_links("cliniko:au1:1", "patient", [("100", pid, "h", "h")], None)
            raise Boom

    with pytest.raises(Boom):
        batch()
    counts = store.table_counts()
    assert counts["patients"] == counts["appointments"] == counts["import_links"] == 0
    # ...and the next batch starts clean (SQLite: with ids not taken by the rolled-back rows;
    # PostgreSQL's sequences never give an id twice, rolled back or not).
    with store.transaction():
        [pid] = store.insert_rows("patients", [rows.patient()])
    assert [r["id"] for r in store.iter_rows("patients", ["id"])] == [pid]
    if isinstance(store, SQLiteClinicStore):
        assert pid == 1


def test_a_failed_call_inside_a_batch_is_undone_whole_and_the_batch_can_go_on(
    store: ClinicBackend, rows: Any
) -> None:
    with store.transaction():
        [pid] = store.insert_rows("patients", [rows.patient()])
        [prid] = store.insert_rows("practitioners", [rows.practitioner()])
        with pytest.raises(IntegrityViolation):
            store.insert_rows(
                "appointments",
                [rows.appointment(pid, prid), rows.appointment(pid, prid, status="bogus")],
            )
        store.insert_rows("appointments", [rows.appointment(pid, prid, notes="kept")])
    listed = list(store.iter_rows("appointments", ["notes"]))
    assert [r["notes"] for r in listed] == ["kept"]


KILLED_MID_BATCH = """
import os, sys
from target import open_target
store = open_target(sys.argv[1])
with store.transaction():
    store.insert_rows("locations", [{"name": "x", "time_zone": "UTC"}] * 1000)
    os._exit(9)  # killed mid-batch: no COMMIT, no cleanup
"""


def test_a_killed_batch_leaves_nothing_half_written(store_url: str, rows: Any) -> None:
    with open_target(store_url) as store, store.transaction():
        store.insert_rows("patients", [rows.patient() for _ in range(10)])
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_BATCH, store_url], check=False, timeout=60
    )
    assert done.returncode == 9
    with open_target(store_url) as again:
        assert again.table_counts()["patients"] == 10
        assert again.table_counts()["locations"] == 0
        [location] = again.insert_rows("locations", [{"name": "y", "time_zone": "UTC"}])
        assert again.table_counts()["locations"] == 1
        if isinstance(again, SQLiteClinicStore):
            assert location == 1


def test_transactions_do_not_nest(store: ClinicBackend) -> None:
    with store.transaction():
        with pytest.raises(TransactionError, match="not nestable"), store.transaction():
            pass  # pragma: no cover
        with pytest.raises(TransactionError):
            store.migrate()


def test_clinic_settings_default_off_and_the_import_cannot_switch_them_on(
    store: ClinicBackend,
) -> None:
    assert store.settings() == {
        "messaging_enabled": False,
        "ai_enabled": False,
        "clinic_time_zone": None,
    }
    store.update_rows("clinic_settings", [(1, {"clinic_time_zone": "Pacific/Auckland"})])
    assert store.settings()["clinic_time_zone"] == "Pacific/Auckland"
    for flag in ("messaging_enabled", "ai_enabled"):
        with pytest.raises(ForbiddenWrite, match="never switches messaging or AI on"):
            store.update_rows("clinic_settings", [(1, {flag: True})])
    assert store.settings()["messaging_enabled"] is False
    with pytest.raises(IntegrityViolation):  # a second settings row
        store.insert_rows("clinic_settings", [{"messaging_enabled": False, "ai_enabled": False}])


def test_outbox_is_empty_and_the_import_cannot_queue_messages(
    store: ClinicBackend, rows: Any
) -> None:
    assert store.outbox_count() == 0
    [pid] = store.insert_rows("patients", [rows.patient()])
    with pytest.raises(ForbiddenWrite, match="never queues messages"):
        store.insert_rows(
            "message_outbox",
            [{"patient_id": pid, "channel": "sms", "template": "reminder", "payload": {}}],
        )
    assert store.outbox_count() == 0
    _raw(  # the clinic app queues one
        store,
        "INSERT INTO message_outbox (patient_id, channel, template, payload, created_at, "
        "updated_at) VALUES (?, 'sms', 'reminder', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        pid,
    )
    assert store.outbox_count() == 1


def test_only_child_rows_can_be_deleted(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    [iid] = store.insert_rows("invoices", [rows.invoice(pid, "10")])
    line = {"invoice_id": iid, "source_id": "77", "position": 0, "quantity": Decimal("1.5")}
    lids = store.insert_rows("invoice_lines", [line, {**line, "position": 1}])
    assert store.delete_rows("invoice_lines", [lids[1], 12345]) == 1
    assert store.table_counts()["invoice_lines"] == 1
    with pytest.raises(ForbiddenWrite, match="never deletes from patients"):
        store.delete_rows("patients", [pid])


def test_a_clinic_edit_shows_in_the_hash(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    mapped_fields = set(rows.patient())
    first = store.fetch_rows("patients", [pid])[pid]
    h = row_hash({k: first[k] for k in mapped_fields})
    # The clinic app edits the patient (a plain UPDATE, bumping updated_at).
    _raw(
        store,
        "UPDATE patients SET last_name = 'Ngata-Smith', updated_at = ? WHERE id = ?",
        "2031-01-01T00:00:00.000000Z",
        pid,
    )
    again = store.fetch_rows("patients", [pid])[pid]
    assert row_hash({k: again[k] for k in mapped_fields}) != h


def test_naive_timestamps_written_by_another_program_read_as_utc(
    store: ClinicBackend, rows: Any
) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    _raw(store, "UPDATE patients SET archived_at = '2024-01-02 03:04:05' WHERE id = ?", pid)
    value = store.fetch_rows("patients", [pid])[pid]["archived_at"]
    assert value == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL: test_target_postgres.py
def test_raw_sqlite_sees_exact_money_text(db_path: Path, rows: Any, backend: str) -> None:
    with SQLiteClinicStore.open(db_path) as store:
        [pid] = store.insert_rows("patients", [rows.patient()])
        store.insert_rows("invoices", [rows.invoice(pid, "0.10"), rows.invoice(pid, "0.20")])
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT total FROM invoices ORDER BY id").fetchall() == [
            ("0.10",),
            ("0.20",),
        ]
    finally:
        conn.close()
