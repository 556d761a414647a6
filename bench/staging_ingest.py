"""Staging ingest micro-benchmark: records/s through `PageWriter.write_batch`, and peak RSS.

Two sources of records, both fed through the page writer in pages of 100 as the download
engine does, with the network and JSON parsing of responses left out of the timing:

  synthetic   (default) the documentation's example payloads, with varied ids and links
  --sandbox   a whole sandbox clinic (`--sandbox large`: about 1,000,000 records), every list
              and variant our download crawls, each record exactly as the API serves it
              (`ClinicStore.raw_records`). The clinic is generated in a child process first,
              so its generation does not count towards this process's peak memory; the
              clinic file is then read in chunks as the pages are written.

DESIGN.md section 8's bar: >= 50,000 records/s, and peak memory <= 250 MB for a clinic of
1,000,000 records. Peak RSS is this whole process's (the reader included).

    .venv/bin/python -m bench.staging_ingest --records 200000
    .venv/bin/python -m bench.staging_ingest --sandbox large
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.resources import ALL_PARTS, BY_NAME, list_variants, resources_for
from staging import Page, open_staging

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DIRS = (
    # Cliniko's documented example payloads: $CLINIKO_EXAMPLES, the shared extraction next to
    # the checkout, or the copy the mapping tests keep in the repository.
    *([Path(os.environ["CLINIKO_EXAMPLES"])] if os.environ.get("CLINIKO_EXAMPLES") else []),
    REPO.parent / "shared" / "cliniko" / "examples",
    REPO / "tests" / "mapping" / "examples",
)

# (resource, variant, example file, share of a clinic's records)
MIX: tuple[tuple[str, str, str, float], ...] = (
    ("individual_appointments", "active", "individual_appointments__list.json", 0.30),
    ("individual_appointments", "cancelled", "individual_appointments__cancelled_list.json", 0.03),
    ("attendees", "active", "attendees__list.json", 0.04),
    ("patients", "active", "patients__list.json", 0.08),
    ("patients", "deleted", "patients__deleted_list.json", 0.01),
    ("invoices", "active", "invoices__list.json", 0.15),
    ("invoice_items", "active", "invoice_items__list.json", 0.18),
    ("treatment_notes", "active", "treatment_notes__list.json", 0.12),
    ("medical_alerts", "active", "medical_alerts__list.json", 0.04),
    ("patient_attachments", "active", "patient_attachments__list.json", 0.05),
)


def _template(resource: str, filename: str) -> dict[str, object] | None:
    for folder in EXAMPLE_DIRS:
        path = folder / filename
        if path.is_file():
            record = json.loads(path.read_text())[resource][0]
            assert isinstance(record, dict)
            return record
    return None


# How records reference each other in a clinic. "recent": the record is made with, or just
# after, what it points at (an invoice item and its invoice, an attendee and its booking), so
# the referenced id is close to the newest. A share (float): a random one out of that share of
# the records generated (patients). A count (int): a handful of set-up records (businesses,
# practitioners, appointment types). `--random-refs` replaces all of them with a random id out
# of a million, a worst case no clinic looks like.
REF_POOLS: dict[str, str | float | int] = {
    "patient": 0.1,
    "merged_with_patient": 0.1,
    "referrer": 0.1,
    "invoice": "recent",
    "booking": "recent",
    "appointment": "recent",
    "referring_doctor": 500,
    "practitioner": 25,
    "business": 3,
    "appointment_type": 40,
    "billable_item": 120,
    "product": 50,
    "tax": 3,
    "concession_type": 6,
    "treatment_note_template": 12,
    "user": 30,
}
START = 1_500_000_000  # 2017-07-14, in seconds


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class _Maker:
    def __init__(self, total: int, seed: int, random_refs: bool) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.random_refs = random_refs
        self.clock = float(START)

    def ref_id(self, ref: str, record_id: int) -> int:
        pool = REF_POOLS.get(ref, 100)
        if self.random_refs:
            return 10**17 + self.rng.randrange(1, 10**6)
        if pool == "recent":
            return max(10**17 + 1, record_id - self.rng.randrange(0, 2000))
        size = max(1, int(pool * self.total)) if isinstance(pool, float) else int(pool)
        return 10**17 + self.rng.randrange(1, size + 1)

    def vary(self, template: dict[str, object], record_id: int) -> dict[str, object]:
        """The template with its own id, self link and timestamps, and links to other ids."""
        rng = self.rng
        record = dict(template)
        if "id" in record:
            record["id"] = record_id if rng.random() < 0.5 else str(record_id)
        self.clock += rng.random() * 600
        if "created_at" in record:
            record["created_at"] = _timestamp(self.clock)
        if "updated_at" in record:
            # Most records never change after creation; some were edited later.
            late = rng.random() < 0.3
            record["updated_at"] = _timestamp(
                self.clock + (rng.random() * 3e7 if late else rng.random() * 60)
            )
        for key, value in template.items():
            if isinstance(value, dict) and isinstance(value.get("links"), dict):
                url = value["links"].get("self", "")
                if not isinstance(url, str) or not url.rsplit("/", 1)[-1].isdigit():
                    continue
                base = url.rsplit("/", 1)[0]
                if key == "links":
                    record[key] = {"self": f"{base}/{record_id}"}
                else:
                    record[key] = {"links": {"self": f"{base}/{self.ref_id(key, record_id)}"}}
        return record


def _pages(total: int, page_size: int, seed: int, random_refs: bool = False) -> Iterator[Page]:
    maker = _Maker(total, seed, random_refs)
    rng = maker.rng
    found = [(r, v, _template(r, f), share) for r, v, f, share in MIX]
    templates = [(r, v, t, share) for r, v, t, share in found if t is not None]
    if not templates:
        dirs = ", ".join(str(d) for d in EXAMPLE_DIRS)
        raise SystemExit(f"no Cliniko example payloads found (looked in {dirs})")
    weights = [t[3] for t in templates]
    next_id = {r: 10**17 for r, _v, _t, _s in templates}
    made = 0
    while made < total:
        name, variant, template, _share = rng.choices(templates, weights)[0]
        n = min(page_size, total - made)
        records = []
        for _ in range(n):
            next_id[name] += rng.randrange(1, 50)
            records.append(maker.vary(template, next_id[name]))
        made += n
        state = json.dumps({"cursor": next_id[name]})
        yield Page(BY_NAME[name], variant, records, [("crawl", state, False)])


def generate_clinic(path: Path, size: str, shape: str, seed: int) -> float:
    """Generate a sandbox clinic into `path` in a child process; returns the seconds taken."""
    code = (
        "import sys; from sandbox.store import ClinicStore; "
        "ClinicStore.generate(sys.argv[1], int(sys.argv[3]), shape=sys.argv[2], "
        "path=sys.argv[4]).close()"
    )
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, size, shape, str(seed), str(path)], check=True, cwd=REPO
    )
    return time.perf_counter() - began


def _sandbox_pages(path: Path, page_size: int) -> Iterator[Page]:
    """Every list (and variant) of the clinic in `path`, in pages, as the API serves them."""
    from sandbox.store import ClinicStore  # the sandbox only for this source

    base = "https://api.au1.cliniko.com/v1"
    lists = [(r, v) for r, v in list_variants(resources_for(ALL_PARTS))]
    lists.append((BY_NAME["practitioner_reference_numbers"], "active"))
    with ClinicStore.open(str(path)) as store:
        for res, variant in lists:
            page: list[object] = []
            number = 0
            for record in store.raw_records(res.name, variant, base):
                page.append(record)
                if len(page) == page_size:
                    number += 1
                    yield Page(res, variant, page, [("crawl", json.dumps({"p": number}), False)])
                    page = []
            if page:
                yield Page(res, variant, page, [("crawl", json.dumps({"p": number + 1}), True)])


@dataclass(frozen=True)
class Result:
    source: str
    """"synthetic", or "sandbox <size>/<shape>"."""
    records: int
    quarantined: int
    seconds: float
    """Wall time in the staging package: every write_batch, plus finish_run (index build)."""
    cpu_seconds: float
    records_per_second: int
    records_per_cpu_second: int
    """Throughput if this process had a core to itself (shared CI machines are noisy)."""
    peak_rss_mb: float
    file_mb: float
    generate_seconds: float = 0.0
    """Sandbox source: generating the clinic (a child process; not in any other figure)."""


class _Timer:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6, 1)


def run(
    records: int,
    *,
    page_size: int = 100,
    batch_pages: int = 10,
    seed: int = 1,
    random_refs: bool = False,
    sandbox: str | None = None,
    shape: str = "balanced",
) -> Result:
    timer = _Timer()
    written = quarantined = 0
    generated_s = 0.0
    with tempfile.TemporaryDirectory(prefix="staging-bench-") as tmp:
        path = Path(tmp) / "bench.staging"
        if sandbox is not None:
            clinic = Path(tmp) / "clinic.sqlite"
            generated_s = generate_clinic(clinic, sandbox, shape, seed)
            pages = _sandbox_pages(clinic, page_size)
        else:
            pages = _pages(records, page_size, seed, random_refs)
        with open_staging(path, create=True) as staging:
            run_id = staging.start_run(mode="full", selection=["all"])
            writer = staging.writer(run_id)
            batch: list[Page] = []
            for page in pages:
                batch.append(page)
                if len(batch) == batch_pages:
                    with timer:
                        result = writer.write_batch(batch)
                    written += result.written
                    quarantined += result.quarantined
                    batch = []
            with timer:
                if batch:
                    result = writer.write_batch(batch)
                    written += result.written
                    quarantined += result.quarantined
                staging.finish_run(run_id, "complete")
        size = sum(p.stat().st_size for p in Path(tmp).glob("bench.staging*"))
    return Result(
        source="synthetic" if sandbox is None else f"sandbox {sandbox}/{shape}",
        records=written,
        quarantined=quarantined,
        seconds=round(timer.wall, 3),
        cpu_seconds=round(timer.cpu, 3),
        records_per_second=round(written / timer.wall) if timer.wall else 0,
        records_per_cpu_second=round(written / timer.cpu) if timer.cpu else 0,
        peak_rss_mb=_peak_rss_mb(),
        file_mb=round(size / 1e6, 1),
        generate_seconds=round(generated_s, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--batch-pages", type=int, default=10, help="pages per transaction")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--random-refs",
        action="store_true",
        help="worst case: every ref is a random id out of a million (no clinic looks like this)",
    )
    parser.add_argument(
        "--sandbox",
        choices=["tiny", "small", "medium", "large"],
        default=None,
        help="real-shaped records: a whole sandbox clinic of this size (--records is ignored)",
    )
    parser.add_argument(
        "--shape", choices=["balanced", "appointments_heavy", "many_small"], default="balanced"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = run(
        args.records,
        page_size=args.page_size,
        batch_pages=args.batch_pages,
        seed=args.seed,
        random_refs=args.random_refs,
        sandbox=args.sandbox,
        shape=args.shape,
    )
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"staging ingest ({result.source}): {result.records:,} records "
            f"in {result.seconds:.2f}s "
            f"= {result.records_per_second:,} records/s "
            f"({result.records_per_cpu_second:,}/s of CPU time; bar 50,000); "
            f"peak RSS {result.peak_rss_mb:.0f} MB; file {result.file_mb:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
