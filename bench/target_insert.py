"""Clinic store insert benchmark: clinic records/s through `insert_rows` into SQLite.

Writes synthetic patients, then appointments pointing at them (half of `--rows` each), in
batches of `--batch` rows per transaction, as a first load does, with each batch's import
links upserted in the same transaction. Row generation is left out of the timing; the
conversion of values (Decimal, datetimes, JSON) and the commits are in it. DESIGN.md
section 8's bar: a first load writes >= 10,000 clinic records/s to SQLite.

    .venv/bin/python -m bench.target_insert --rows 100000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from target import SQLiteClinicStore, row_hash

FIRST = ["Zoë", "José", "Aroha", "Nguyễn", "Olivia", "Saoirse", "Björn", "Mia", "李", "Ana"]
LAST = ["Smith", "Álvarez", "Ngata", "Tran", "O'Brien", "Müller", "Kowalski", "王", "Silva"]
STATUSES = ["completed"] * 8 + ["cancelled", "did_not_arrive", "booked"]
SOURCE = "cliniko:au1:bench"


def _patients(n: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dob = date(1940, 1, 1) + timedelta(days=rng.randrange(30_000))
        rows.append(
            {
                "title": rng.choice([None, "Mr", "Ms", "Dr"]),
                "first_name": first,
                "last_name": last,
                "preferred_name": None,
                "date_of_birth": dob,
                "sex": rng.choice(["Female", "Male", None]),
                "gender_identity": None,
                "gender_legacy": None,
                "email": f"p{i}@example.org",
                "phones": [{"type": "Mobile", "number": f"04{rng.randrange(10**8):08d}"}],
                "address_1": f"{rng.randrange(1, 400)} Long Street",
                "address_2": None,
                "address_3": None,
                "city": "Wellington",
                "state": None,
                "post_code": "6011",
                "country": "New Zealand",
                "emergency_contact": "Next of kin, 021 000 000",
                "occupation": None,
                "notes": "Prefers mornings." if rng.random() < 0.3 else None,
                "appointment_notes": None,
                "medicare": None,
                "medicare_reference_number": None,
                "dva_card_number": None,
                "old_reference_id": str(i),
                "referral_source": None,
                "invoice_default_to": None,
                "invoice_email": None,
                "invoice_extra_information": None,
                "time_zone": None,
                "archived": rng.random() < 0.05,
                "archived_at": None,
                "merged_into": None,
                "merged_at": None,
                "custom_fields": [
                    {
                        "section": "Intake",
                        "name": "Referred by",
                        "type": "text",
                        "value_text": "GP",
                        "archived": False,
                    }
                ],
                "medical_alerts": ["Penicillin"] if rng.random() < 0.1 else [],
                "reminder_type": "SMS",
                "accepted_privacy_policy": True,
                "accepted_email_marketing": None,
                "accepted_sms_marketing": False,
                "match_key": f"{first.lower()}|{last.lower()}|{dob.isoformat()}",
            }
        )
    return rows


def _appointments(
    n: int, patient_ids: Sequence[int], practitioner_ids: Sequence[int], rng: random.Random
) -> list[dict[str, Any]]:
    start = datetime(2018, 1, 1, tzinfo=UTC)
    rows = []
    for _ in range(n):
        starts = start + timedelta(minutes=15 * rng.randrange(300_000))
        status = rng.choice(STATUSES)
        rows.append(
            {
                "patient_id": rng.choice(patient_ids),
                "practitioner_id": rng.choice(practitioner_ids),
                "service_id": None,
                "location_id": None,
                "starts_at": starts,
                "ends_at": starts + timedelta(minutes=30),
                "time_zone": "Pacific/Auckland",
                "local_starts_at": starts.isoformat(),
                "status": status,
                "cancellation_reason_code": 10 if status == "cancelled" else None,
                "cancellation_reason": "Feeling better" if status == "cancelled" else None,
                "cancellation_note": None,
                "cancelled_at": starts - timedelta(days=1) if status == "cancelled" else None,
                "notes": None,
                "patient_arrived": status == "completed",
                "is_upcoming": False,
                "imported_history": True,
            }
        )
    return rows


@dataclass(frozen=True)
class Result:
    rows: int
    batch: int
    seconds_inserting: float
    rows_per_second: float
    seconds_with_links: float
    rows_per_second_with_links: float
    patients_per_second: float
    appointments_per_second: float
    file_mb: float


def _load(
    store: SQLiteClinicStore,
    table: str,
    kind: str,
    rows: Sequence[Mapping[str, Any]],
    batch: int,
    first_source_id: int,
) -> tuple[list[int], float, float]:
    """Insert rows batch by batch with their links; (ids, seconds inserting, seconds total)."""
    ids: list[int] = []
    inserting = total = 0.0
    hashes = [row_hash(r) for r in rows]  # the planner's work, not the store's
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        t0 = time.perf_counter()
        with store.transaction():
            new_ids = store.insert_rows(table, chunk)
            t1 = time.perf_counter()
            store.upsert_links(
                SOURCE,
                kind,
                [
                    (str(first_source_id + start + j), new_id, hashes[start + j], hashes[start + j])
                    for j, new_id in enumerate(new_ids)
                ],
                None,
            )
        t2 = time.perf_counter()
        inserting += t1 - t0
        total += t2 - t0
        ids.extend(new_ids)
    return ids, inserting, total


def run(rows: int, *, batch: int = 2000, seed: int = 1, path: Path | None = None) -> Result:
    rng = random.Random(seed)
    n_patients = rows // 2
    n_appointments = rows - n_patients
    patients = _patients(n_patients, rng)
    with tempfile.TemporaryDirectory(prefix="target-bench-") as tmp:
        db_path = path or Path(tmp) / "clinic.db"
        with SQLiteClinicStore.open(db_path) as store:
            practitioner_ids = store.insert_rows(
                "practitioners",
                [
                    {"display_name": f"Practitioner {i}", "active": True, "match_name": f"p {i}"}
                    for i in range(12)
                ],
            )
            patient_ids, p_ins, p_all = _load(store, "patients", "patient", patients, batch, 1)
            appointments = _appointments(n_appointments, patient_ids, practitioner_ids, rng)
            _ids, a_ins, a_all = _load(
                store, "appointments", "appointment", appointments, batch, 10**9
            )
        size = db_path.stat().st_size + sum(
            p.stat().st_size for p in db_path.parent.glob(db_path.name + "-*")
        )
    inserting, total = p_ins + a_ins, p_all + a_all
    return Result(
        rows=rows,
        batch=batch,
        seconds_inserting=round(inserting, 3),
        rows_per_second=round(rows / inserting),
        seconds_with_links=round(total, 3),
        rows_per_second_with_links=round(rows / total),
        patients_per_second=round(n_patients / p_ins),
        appointments_per_second=round(n_appointments / a_ins),
        file_mb=round(size / 1e6, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="patients + appointments")
    parser.add_argument("--batch", type=int, default=2000, help="rows per transaction")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = run(args.rows, batch=args.batch, seed=args.seed)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"target insert: {result.rows:,} rows in {result.seconds_inserting:.2f}s = "
            f"{result.rows_per_second:,.0f} rows/s (bar: 10,000; patients "
            f"{result.patients_per_second:,.0f}/s, appointments "
            f"{result.appointments_per_second:,.0f}/s); with import links "
            f"{result.rows_per_second_with_links:,.0f} rows/s; file {result.file_mb:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
