"""Plan and load benchmark: a synthetic staged clinic loaded into a SQLite clinic store.

Builds a staging file of about `--records` Cliniko-shaped records straight through the staging
writer (the documentation's example payloads, varied, with consistent links: every
appointment, note and invoice points at a staged patient and practitioner), then times:

  first load      plan + load into an empty clinic (staged records/s; clinic rows written/s)
  rerun plan      planning again with nothing changed (staged records/s)
  top-up          1% of the records changed in a second download run, then plan + load: the
                  clinic's staged records per second of it, the changed records per second,
                  and its time as a share of the first load's

DESIGN.md section 8's bars: a first load writes >= 10,000 clinic records/s to SQLite; planning a
rerun with nothing changed runs at >= 50,000 records/s; a top-up costs time in proportion to
what changed.

    .venv/bin/python -m bench.load_bench --records 100000
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.load import load
from engine.plan import plan
from engine.resources import ALL_PARTS, BY_NAME
from staging import Page, open_staging

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "cliniko" / "examples"
FALLBACK = Path(__file__).resolve().parents[1] / "tests" / "mapping" / "examples"
API = "https://api.au1.cliniko.com/v1"
NOW = datetime(2024, 6, 1, tzinfo=UTC)
START = datetime(2019, 1, 1, tzinfo=UTC)

SHARES: dict[str, float] = {
    "patients": 0.10,
    "medical_alerts": 0.03,
    "individual_appointments": 0.34,
    "attendees": 0.03,
    "treatment_notes": 0.12,
    "invoices": 0.15,
    "invoice_items": 0.23,
}
"""Share of the clinic's records per resource (set-up records come on top: a few dozen)."""

FIRST = ["Zoë", "José", "Aroha", "Nguyễn", "Olivia", "Saoirse", "Björn", "Mia", "李", "Ana"]
LAST = ["Smith", "Álvarez", "Ngata", "Tran", "O'Brien", "Müller", "Kowalski", "王", "Silva"]


def _examples() -> Path:
    return EXAMPLES if EXAMPLES.is_dir() else FALLBACK


def _template(name: str) -> dict[str, Any]:
    resource_name = name.split("__", 1)[0]
    data = json.loads((_examples() / name).read_text())
    record = data[resource_name][0] if resource_name in data else data
    assert isinstance(record, dict)
    return record


def _link(collection: str, record_id: int) -> dict[str, Any]:
    return {"links": {"self": f"{API}/{collection}/{record_id}"}}


def _dob(rng: random.Random) -> str:
    return f"{rng.randrange(1940, 2020)}-0{rng.randrange(1, 10)}-1{rng.randrange(0, 10)}"


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Clinic:
    """Generates the records, resource by resource, in the order a download stages them."""

    def __init__(self, total: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.t = {
            name: _template(f"{name}__list.json")
            for name in (
                "businesses",
                "practitioners",
                "appointment_types",
                "billable_items",
                "patients",
                "medical_alerts",
                "individual_appointments",
                "attendees",
                "treatment_notes",
                "invoices",
                "invoice_items",
            )
        }
        self.counts = {name: max(1, int(total * share)) for name, share in SHARES.items()}
        self.settings = json.loads((_examples() / "settings__get.json").read_text())
        self.settings["account"]["id"] = 4711
        self.settings["account"]["time_zone"] = "Melbourne"

    def _new(self, resource_name: str, record_id: int, **values: Any) -> dict[str, Any]:
        record = copy.deepcopy(self.t[resource_name])
        record["id"] = record_id
        record["links"] = {"self": f"{API}/{resource_name}/{record_id}"}
        record["created_at"] = record["updated_at"] = _ts(
            START + timedelta(seconds=record_id * 37 % 10**8)
        )
        record.update(values)
        return record

    def pages(self) -> Iterator[Page]:
        rng = self.rng
        setup: list[tuple[str, list[dict[str, Any]]]] = [
            (
                "businesses",
                [self._new("businesses", i, display_name=f"Site {i}") for i in (1, 2, 3)],
            ),
            (
                "practitioners",
                [
                    self._new(
                        "practitioners",
                        i,
                        first_name=FIRST[i % len(FIRST)],
                        last_name=f"{LAST[i % len(LAST)]} {i}",
                        label=f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]} {i}",
                        default_appointment_type=None,
                        user=None,
                    )
                    for i in range(1, 26)
                ],
            ),
            (
                "billable_items",
                [
                    self._new("billable_items", i, price=f"{60 + i}.00", tax=None)
                    for i in range(1, 41)
                ],
            ),
            (
                "appointment_types",
                [
                    self._new(
                        "appointment_types",
                        i,
                        name=f"Service {i}",
                        billable_item=_link("billable_items", i),
                        product=None,
                        treatment_note_template=None,
                    )
                    for i in range(1, 41)
                ],
            ),
        ]
        for name, records in setup:
            yield Page(BY_NAME[name], "active", records)
        n_pat = self.counts["patients"]
        yield from self._paged(
            "patients",
            (
                self._new(
                    "patients",
                    i,
                    first_name=rng.choice(FIRST),
                    last_name=rng.choice(LAST),
                    date_of_birth=_dob(rng),
                    email=f"p{i}@example.org",
                    concession_type=None,
                    referring_doctor=None,
                )
                for i in range(1, n_pat + 1)
            ),
        )
        yield from self._paged(
            "medical_alerts",
            (
                self._new(
                    "medical_alerts",
                    i,
                    name=f"alert {i}",
                    patient=_link("patients", rng.randrange(1, n_pat + 1)),
                )
                for i in range(1, self.counts["medical_alerts"] + 1)
            ),
        )
        n_appt = self.counts["individual_appointments"]
        span = (NOW + timedelta(days=60) - START).total_seconds()

        def appointment(i: int) -> dict[str, Any]:
            start = START + timedelta(seconds=(i * span / n_appt) // 900 * 900)
            cancelled = rng.random() < 0.08
            return self._new(
                "individual_appointments",
                i,
                starts_at=_ts(start),
                ends_at=_ts(start + timedelta(minutes=30)),
                cancelled_at=_ts(start - timedelta(days=1)) if cancelled else None,
                patient=_link("patients", rng.randrange(1, n_pat + 1)),
                practitioner=_link("practitioners", rng.randrange(1, 26)),
                appointment_type=_link("appointment_types", rng.randrange(1, 41)),
                business=_link("businesses", rng.randrange(1, 4)),
            )

        yield from self._paged(
            "individual_appointments", (appointment(i) for i in range(1, n_appt + 1))
        )
        yield from self._paged(
            "attendees",
            (
                self._new(
                    "attendees",
                    i,
                    booking=_link("bookings", rng.randrange(1, n_appt + 1)),
                    patient=_link("patients", rng.randrange(1, n_pat + 1)),
                )
                for i in range(1, self.counts["attendees"] + 1)
            ),
        )
        yield from self._paged(
            "treatment_notes",
            (
                self._new(
                    "treatment_notes",
                    i,
                    draft=rng.random() < 0.05,
                    patient=_link("patients", rng.randrange(1, n_pat + 1)),
                    practitioner=_link("practitioners", rng.randrange(1, 26)),
                    treatment_note_template=None,
                )
                for i in range(1, self.counts["treatment_notes"] + 1)
            ),
        )
        n_inv = self.counts["invoices"]
        yield from self._paged(
            "invoices",
            (
                self._new(
                    "invoices",
                    i,
                    number=10_000 + i,
                    status=rng.choice((10, 20, 20, 20, 30, 40)),
                    total_amount=f"{rng.randrange(40, 200)}.{rng.randrange(0, 100):02d}",
                    patient=_link("patients", rng.randrange(1, n_pat + 1)),
                    practitioner=_link("practitioners", rng.randrange(1, 26)),
                    business=_link("businesses", rng.randrange(1, 4)),
                    appointment=_link("appointments", rng.randrange(1, n_appt + 1)),
                )
                for i in range(1, n_inv + 1)
            ),
        )
        yield from self._paged(
            "invoice_items",
            (
                self._new(
                    "invoice_items",
                    i,
                    invoice=_link("invoices", (i - 1) % n_inv + 1),
                    billable_item=None,
                )
                for i in range(1, self.counts["invoice_items"] + 1)
            ),
        )

    @staticmethod
    def _paged(name: str, records: Iterator[dict[str, Any]]) -> Iterator[Page]:
        page: list[dict[str, Any]] = []
        for record in records:
            page.append(record)
            if len(page) == 100:
                yield Page(BY_NAME[name], "active", page)
                page = []
        if page:
            yield Page(BY_NAME[name], "active", page)


def build_staging(path: Path, records: int, seed: int) -> int:
    clinic = _Clinic(records, seed)
    written = 0
    with open_staging(path, create=True) as staging:
        run_id = staging.start_run(mode="full", selection=list(ALL_PARTS), shard="au1")
        writer = staging.writer(run_id)
        writer.set_single(BY_NAME["settings"], clinic.settings)
        batch: list[Page] = []
        for page in clinic.pages():
            batch.append(page)
            if len(batch) == 20:
                written += writer.write_batch(batch).written
                batch = []
        if batch:
            written += writer.write_batch(batch).written
        staging.finish_run(run_id, "complete")
    return written


def change_some(path: Path, share: float, seed: int) -> int:
    """A top-up: `share` of the patients, appointments, notes and invoices changed."""
    rng = random.Random(seed + 1)
    changed = 0
    with open_staging(path, create=False) as staging:
        run_id = staging.start_run(mode="topup", selection=list(ALL_PARTS), shard="au1")
        writer = staging.writer(run_id)
        for name in ("patients", "individual_appointments", "treatment_notes", "invoices"):
            pages: list[Page] = []
            records: list[dict[str, Any]] = []
            for raw in staging.iter_raw(name):
                if rng.random() >= share:
                    continue
                raw = dict(raw)
                raw["updated_at"] = _ts(NOW - timedelta(hours=1))
                raw["notes"] = f"changed {rng.random():.6f}"
                records.append(raw)
            for start in range(0, len(records), 100):
                pages.append(Page(BY_NAME[name], "active", records[start : start + 100]))
            if pages:
                changed += writer.write_batch(pages).written
        staging.finish_run(run_id, "complete")
    return changed


@dataclass(frozen=True)
class Result:
    staged_records: int
    first_load_seconds: float
    first_load_records_per_second: float
    first_load_plan_seconds: float
    clinic_rows_written: int
    write_seconds: float
    clinic_rows_per_write_second: float
    rerun_plan_seconds: float
    rerun_plan_records_per_second: float
    rerun_unchanged: int
    topup_changed_records: int
    topup_seconds: float
    topup_records_per_second: float
    """The whole staged clinic over the top-up's plan + load time."""
    topup_changed_records_per_second: float
    topup_share_of_first_load: float
    """Top-up time / first-load time: about the changed share if cost follows what changed."""
    topup_plan_seconds: float
    topup_updates: int
    peak_rss_mb: float
    verification_ok: bool


def run(records: int, seed: int = 1, keep: Path | None = None) -> Result:
    with tempfile.TemporaryDirectory(prefix="load-bench-") as tmp:
        folder = keep or Path(tmp)
        staging_path = folder / "bench.staging"
        target = f"sqlite:///{folder / 'clinic.db'}"
        staged = build_staging(staging_path, records, seed)

        t0 = time.perf_counter()
        first = load(staging_path, target, now=NOW)
        first_s = time.perf_counter() - t0
        rows = first.rows_written() + sum(c.get("settlements", 0) for c in first.written.values())

        t0 = time.perf_counter()
        again = plan(staging_path, target, now=NOW)
        rerun_s = time.perf_counter() - t0

        changed = change_some(staging_path, 0.01, seed)
        t0 = time.perf_counter()
        topup = load(staging_path, target, now=NOW)
        topup_s = time.perf_counter() - t0

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak_kib / 1024 if sys.platform != "darwin" else peak_kib / 1024 / 1024
    return Result(
        staged_records=staged,
        first_load_seconds=round(first_s, 2),
        first_load_records_per_second=round(staged / first_s),
        first_load_plan_seconds=round(first.plan.seconds, 2),
        clinic_rows_written=rows,
        write_seconds=round(first.write_seconds, 2),
        clinic_rows_per_write_second=round(rows / first.write_seconds)
        if first.write_seconds
        else 0,
        rerun_plan_seconds=round(rerun_s, 2),
        rerun_plan_records_per_second=round(staged / rerun_s),
        rerun_unchanged=again.totals()["unchanged"],
        topup_changed_records=changed,
        topup_seconds=round(topup_s, 2),
        topup_records_per_second=round(staged / topup_s),
        topup_changed_records_per_second=round(changed / topup_s),
        topup_share_of_first_load=round(topup_s / first_s, 3),
        topup_plan_seconds=round(topup.plan.seconds, 2),
        topup_updates=topup.plan.totals()["update"],
        peak_rss_mb=round(peak_mb, 1),
        verification_ok=first.ok and topup.ok,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    args = parser.parse_args(argv)
    result = run(args.records, args.seed, args.keep)
    if args.json:
        print(json.dumps(asdict(result)))
        return 0
    r = result
    print(
        f"first load: {r.staged_records:,} staged records in {r.first_load_seconds:.2f}s = "
        f"{r.first_load_records_per_second:,.0f} records/s (plan {r.first_load_plan_seconds:.2f}s;"
        f" {r.clinic_rows_written:,} clinic rows written in {r.write_seconds:.2f}s = "
        f"{r.clinic_rows_per_write_second:,.0f} rows/s; bar 10,000)"
    )
    print(
        f"rerun plan, nothing changed: {r.rerun_plan_seconds:.2f}s = "
        f"{r.rerun_plan_records_per_second:,.0f} records/s ({r.rerun_unchanged:,} unchanged; "
        "bar 50,000)"
    )
    print(
        f"top-up, {r.topup_changed_records:,} records changed: plan + load {r.topup_seconds:.2f}s"
        f" (plan {r.topup_plan_seconds:.2f}s), {r.topup_updates:,} updates; "
        f"{r.topup_records_per_second:,.0f} clinic records/s, "
        f"{r.topup_changed_records_per_second:,.0f} changed records/s, "
        f"{100 * r.topup_share_of_first_load:.1f} % of the first load's time"
    )
    print(
        f"peak RSS {r.peak_rss_mb:.0f} MB; verification {'ok' if r.verification_ok else 'FAILED'}"
    )
    return 0 if r.verification_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
