"""Download benchmark: request rate against the limit, request count, wall time, ingest speed.

Serves a synthetic clinic from the sandbox (in a process of its own, as Cliniko's servers are
not in ours: `bench.remote_sandbox`) with real latency (250 ms +/- jitter by default) and
Cliniko's 200-requests-per-window rule on a faster clock (200 per 6 s), runs
`engine.extract.download` with the matching budget, and reads what the *server* saw:

  requests    sent, against the minimum (a page per list, at least one each, one list per
              practitioner for its reference numbers, /user and /settings); and the 429s
  rate        arrivals per window-length as % of the limit, over the whole run and over its
              last 20 % (the tail, where one large list remains)
  wall time   the download's, against the floor requests / rate
  memory      the download's peak RSS (this process: the client and its staging writer; the
              sandbox is another process), read before the re-ingest below
  ingest      the staged raw rows fed back through a fresh staging writer (pages of 100), apart
              from the network: records/s

DESIGN.md section 8's bars: >= 95 % of the limit through the whole run and its tail, no 429,
at most the minimum requests + 1 %, wall time <= 1.05 x the floor, ingest >= 50,000 records/s.

    .venv/bin/python -m bench.download_rate --size medium --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import Any

import anyio

from bench.remote_sandbox import bench_sandbox
from engine.cliniko import parse_key
from engine.extract import (
    WRITER_BATCH_PAGES,
    DownloadOptions,
    DownloadResult,
    download,
    expected_requests,
)
from engine.resources import BY_NAME, RESOURCES
from sandbox.server import RequestLogEntry
from staging import Page, open_staging

NESTED = ("practitioner_reference_numbers", "active")
TAIL_SHARE = 0.2
BARS = {
    "rate_pct": 95.0,
    "extra_requests_pct": 1.0,
    "wall_over_floor": 1.05,
    "ingest": 50_000,
    "peak_rss_mb": 250.0,
}
"""DESIGN.md section 8 (the memory bar is for a clinic of 1,000,000 records)."""


@dataclass
class RateFigures:
    requests: int
    span_s: float
    """First arrival to last arrival at the server."""
    rate_pct: float
    """Arrivals per window-length over the whole run, as % of the limit."""
    tail_rate_pct: float
    """The same over the last 20 % of the run's span."""
    worst_window_pct: float
    """The emptiest full window-length inside the run (a dip), as % of the limit."""
    busiest_window: int
    """The most arrivals inside any window-length (above the limit means 429s)."""
    gap_median_ms: float
    gap_p99_ms: float
    gap_max_ms: float
    ideal_gap_ms: float
    """window / limit: the spacing that spends the budget exactly."""


@dataclass
class Report:
    size: str
    shape: str
    records: int
    limit: int
    window_s: float
    latency_ms: float
    jitter_ms: float | None
    parallel: int
    requests: int
    minimum_requests: int
    extra_requests_pct: float
    rate_limited: int
    retries: int
    non_get: int
    outcome: str
    wall_s: float
    floor_s: float
    wall_over_floor: float
    rate: RateFigures
    peak_rss_mb: float
    """The download's peak resident memory (client + staging writer), MB."""
    ingest_records: int
    ingest_s: float
    ingest_records_per_s: int
    """0 when the re-ingest was skipped (`--no-ingest`)."""
    per_resource: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passes(self) -> dict[str, bool]:
        return {
            "rate >= 95% (run)": self.rate.rate_pct >= BARS["rate_pct"],
            "rate >= 95% (tail)": self.rate.tail_rate_pct >= BARS["rate_pct"],
            "no 429": self.rate_limited == 0,
            "requests <= minimum + 1%": self.extra_requests_pct <= BARS["extra_requests_pct"],
            "wall <= 1.05 x floor": self.wall_over_floor <= BARS["wall_over_floor"],
            **(
                {"ingest >= 50,000 records/s": self.ingest_records_per_s >= BARS["ingest"]}
                if self.ingest_records
                else {}
            ),
            **(
                {"peak memory <= 250 MB": self.peak_rss_mb <= BARS["peak_rss_mb"]}
                if self.records >= 900_000
                else {}
            ),
        }


def minimum_requests(counts: dict[tuple[str, str], int]) -> int:
    """Pages of every list (at least one each) + /user + /settings + one per practitioner."""
    lists = {k: n for k, n in counts.items() if k != NESTED}
    practitioners = sum(n for (r, _v), n in lists.items() if r == "practitioners")
    return expected_requests(lists) + practitioners


def rate_figures(log: list[RequestLogEntry], limit: int, window_s: float) -> RateFigures:
    """Arrival-rate figures from the server's request log (monotonic arrival times)."""
    times = sorted(entry.monotonic for entry in log)
    n = len(times)
    ideal = window_s / limit
    if n < 2:
        return RateFigures(n, 0.0, 0.0, 0.0, 0.0, n, 0.0, 0.0, 0.0, ideal * 1000)
    first, last = times[0], times[-1]
    span = last - first

    def pct(count: float, seconds: float) -> float:
        return round(100.0 * count * window_s / seconds / limit, 1) if seconds > 0 else 0.0

    # n arrivals evenly spaced cover (n - 1) gaps.
    whole = pct(n - 1, span)
    tail_start = last - TAIL_SHARE * span
    in_tail = [t for t in times if t >= tail_start]
    tail = pct(len(in_tail) - 1, in_tail[-1] - in_tail[0]) if len(in_tail) > 1 else 0.0

    # Sliding windows: the busiest (arrivals within any window_s) and, for runs longer than a
    # window, the emptiest full window (where the rate dipped).
    busiest = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        busiest = max(busiest, i - j + 1)
    worst = whole
    if span > window_s:
        counts = []
        k = 0
        starts = [first + step * ideal for step in range(int((span - window_s) / ideal) + 1)]
        hi = 0
        for start in starts:
            while k < n and times[k] < start:
                k += 1
            hi = max(hi, k)
            while hi < n and times[hi] < start + window_s:
                hi += 1
            counts.append(hi - k)
        worst = pct(min(counts), window_s)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    gaps_ms = sorted(g * 1000 for g in gaps)
    return RateFigures(
        requests=n,
        span_s=round(span, 3),
        rate_pct=whole,
        tail_rate_pct=tail,
        worst_window_pct=worst,
        busiest_window=busiest,
        gap_median_ms=round(statistics.median(gaps_ms), 2),
        gap_p99_ms=round(gaps_ms[min(len(gaps_ms) - 1, math.ceil(0.99 * len(gaps_ms)) - 1)], 2),
        gap_max_ms=round(gaps_ms[-1], 2),
        ideal_gap_ms=round(ideal * 1000, 2),
    )


def ingest(
    staged: Path, out: Path, *, page_size: int = 100, batch_pages: int = WRITER_BATCH_PAGES
) -> tuple[int, float]:
    """Feed the staged raw rows back through a fresh staging writer; (records, seconds).

    Rows are read and parsed before the clock starts: only `write_batch` (and `finish_run`,
    which builds the indexes) is timed, as `bench.staging_ingest` does.
    """
    pages: list[Page] = []
    con = sqlite3.connect(f"file:{staged}?mode=ro", uri=True)
    try:
        for resource in RESOURCES:
            if resource.single:
                continue
            rows = con.execute(
                f'SELECT raw, variants FROM "{resource.name}" ORDER BY id'  # noqa: S608
            ).fetchall()
            for start in range(0, len(rows), page_size):
                chunk = rows[start : start + page_size]
                variant = str(chunk[0][1] or "active").split(",")[0]
                records = [json.loads(raw) for raw, _v in chunk]
                state = json.dumps({"page": start // page_size + 1})
                checkpoint = ("bench", state, False)
                pages.append(Page(BY_NAME[resource.name], variant, records, [checkpoint]))
    finally:
        con.close()
    written = 0
    with open_staging(out, create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["all"])
        writer = staging.writer(run_id)
        began = time.perf_counter()
        for start in range(0, len(pages), batch_pages):
            written += writer.write_batch(pages[start : start + batch_pages]).written
        staging.finish_run(run_id, "complete")
        seconds = time.perf_counter() - began
    return written, seconds


def _peak_rss_mb() -> float:
    peak = getrusage(RUSAGE_SELF).ru_maxrss
    return round(peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6, 1)


def _per_resource(result: DownloadResult) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in result.lists:
        entry = out.setdefault(item.resource, {"records": 0, "pages": 0, "seconds": 0.0})
        entry["records"] += item.records
        entry["pages"] += item.pages
        entry["seconds"] = round(max(entry["seconds"], item.seconds), 2)
    return out


def run(
    size: str = "small",
    *,
    shape: str = "balanced",
    seed: int = 1,
    limit: int = 200,
    window_s: float = 6.0,
    latency_ms: float = 250.0,
    jitter_ms: float | None = None,
    parallel: int = 16,
    same_process: bool = False,
    reingest: bool = True,
) -> Report:
    rate = (limit, window_s)
    with (
        bench_sandbox(
            size,
            seed,
            same_process=same_process,
            shape=shape,
            rate_limit=rate,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
        ) as sandbox,
        tempfile.TemporaryDirectory(prefix="download-bench-") as tmp,
    ):
        counts = sandbox.counts
        staged = Path(tmp) / "download.staging"
        opts = DownloadOptions(
            staging_path=staged, base_url=sandbox.base_url, rate_limit=rate, parallel=parallel
        )
        sandbox.reset()
        began = time.perf_counter()
        result = anyio.run(download, parse_key(sandbox.api_key), opts)
        wall = time.perf_counter() - began
        stats = sandbox.snapshot()
        figures = rate_figures(stats.log, limit, window_s)
        peak_rss_mb = _peak_rss_mb()
        records, seconds = ingest(staged, Path(tmp) / "ingest.staging") if reingest else (0, 0.0)
    minimum = minimum_requests(counts)
    floor = stats.total * window_s / limit
    return Report(
        size=size,
        shape=shape,
        records=sum(counts.values()),
        limit=limit,
        window_s=window_s,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        parallel=parallel,
        requests=stats.total,
        minimum_requests=minimum,
        extra_requests_pct=round(100.0 * (stats.total - minimum) / minimum, 2),
        rate_limited=stats.rate_limited,
        retries=result.retries,
        non_get=stats.non_get,
        outcome=result.outcome,
        wall_s=round(wall, 2),
        floor_s=round(floor, 2),
        wall_over_floor=round(wall / floor, 3) if floor else 0.0,
        rate=figures,
        peak_rss_mb=peak_rss_mb,
        ingest_records=records,
        ingest_s=round(seconds, 3),
        ingest_records_per_s=round(records / seconds) if seconds else 0,
        per_resource=_per_resource(result),
    )


def markdown(report: Report) -> str:
    r, f = report, report.rate
    jitter = "20 %" if r.jitter_ms is None else f"{r.jitter_ms:g} ms"
    rows = [
        ("clinic", f"{r.size} / {r.shape}: {r.records:,} records"),
        (
            "setting",
            f"{r.limit} per {r.window_s:g} s, latency {r.latency_ms:g} ms ± {jitter}, "
            f"parallel {r.parallel}",
        ),
        ("outcome", r.outcome),
        (
            "requests",
            f"{r.requests:,} (minimum {r.minimum_requests:,}, {r.extra_requests_pct:+.2f} %); "
            f"{r.rate_limited} × 429; {r.retries} retries; {r.non_get} non-GET",
        ),
        ("rate, whole run", f"{f.rate_pct:.1f} % of the limit"),
        ("rate, last 20 %", f"{f.tail_rate_pct:.1f} % of the limit"),
        (
            "windows",
            f"busiest {f.busiest_window}/{r.limit}; emptiest full window "
            f"{f.worst_window_pct:.1f} %",
        ),
        (
            "gaps between arrivals",
            f"median {f.gap_median_ms:.1f} ms, p99 {f.gap_p99_ms:.1f} ms, max "
            f"{f.gap_max_ms:.0f} ms (ideal {f.ideal_gap_ms:.1f} ms)",
        ),
        (
            "wall time",
            f"{r.wall_s:.1f} s against a floor of {r.floor_s:.1f} s ({r.wall_over_floor:.3f} ×)",
        ),
        ("peak memory (client + staging writer)", f"{r.peak_rss_mb:.0f} MB"),
    ]
    if r.ingest_records:
        rows.append(
            (
                "staging ingest (no network)",
                f"{r.ingest_records:,} records in {r.ingest_s:.2f} s = "
                f"{r.ingest_records_per_s:,} records/s",
            )
        )
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines.append("")
    lines.append("| bar (DESIGN.md §8) | met |")
    lines.append("|---|---|")
    lines += [f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in report.passes.items()]
    return "\n".join(lines)


def sandbox_arguments(description: str | None, *, size: str) -> argparse.ArgumentParser:
    """The options every download benchmark shares: the clinic and the sandbox it runs on."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=["tiny", "small", "medium", "large"], default=size)
    parser.add_argument(
        "--shape", choices=["balanced", "appointments_heavy", "many_small"], default="balanced"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=200, help="requests per window")
    parser.add_argument("--window", type=float, default=6.0, help="window, seconds")
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--parallel", type=int, default=16, help="our download's parallel walks")
    parser.add_argument("--json", dest="json_out", type=Path, default=None, help="write JSON here")
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="serve the sandbox from a thread of this process (default: a process of its own)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = sandbox_arguments(__doc__.splitlines()[0] if __doc__ else None, size="small")
    parser.add_argument("--jitter-ms", type=float, default=None, help="default: 20 %% of latency")
    parser.add_argument(
        "--no-ingest",
        action="store_true",
        help="skip re-ingesting the staged rows (it holds them all in memory: not for large)",
    )
    args = parser.parse_args(argv)
    report = run(
        args.size,
        shape=args.shape,
        seed=args.seed,
        limit=args.limit,
        window_s=args.window,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        parallel=args.parallel,
        same_process=args.same_process,
        reingest=not args.no_ingest,
    )
    print(markdown(report))
    if args.json_out is not None:
        document = asdict(report) | {"passes": report.passes}
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
