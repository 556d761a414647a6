"""Our download against the alternatives, on the same sandbox configuration, in one run.

Every side runs on a fresh sandbox serving identical data (same size, shape and seed), with the
same latency and the same rate rule (200 per 6 s by default), in a process of its own
(`bench.remote_sandbox`), one after the other:

  ours              `engine.extract.download` (as `bench.download_rate` runs it)
  sequential        `bench.baseline_sequential`: follow `links.next`, one request at a time,
                    paced to the limit
  dlt               `bench.dlt_download`: dlt's REST API source into DuckDB, dlt's defaults
  dlt-parallel      the same with `parallelized=True` (dlt's thread pool, 5 workers)
  dlt-parallel-16   the same with 16 workers (`[extract] workers`), our parallelism

Requests, 429s and the achieved rate (whole run and its last 20 %) are read from the *server's*
request log; wall time is the client's (for dlt, the whole `pipeline.run`: extract, normalize
and load; its extract alone is given too); records are the rows each one stored (list tables
and practitioner reference numbers; `/user` and `/settings` not counted: ours and the
sequential baseline keep one row per id, dlt one per list, so a cancelled appointment, which is
in the default list and in `/cancelled`, is two of dlt's rows). Ratios are each side's figure
divided by ours.

    .venv/bin/python -m bench.compare_download --size medium --json out.json
    .venv/bin/python -m bench.compare_download --size small --sides ours,dlt-parallel-16
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio

from bench import baseline_sequential, dlt_download
from bench.download_rate import rate_figures, sandbox_arguments
from bench.remote_sandbox import bench_sandbox
from engine.cliniko import parse_key
from engine.extract import DownloadOptions, download
from engine.resources import RESOURCES

SIDES: dict[str, str] = {
    "ours": "ours",
    "sequential": "sequential baseline",
    "dlt": "dlt rest_api (default)",
    "dlt-parallel": "dlt rest_api, parallelized",
    "dlt-parallel-16": "dlt rest_api, parallelized, 16 workers",
}
DLT_SETTINGS: dict[str, tuple[bool, int | None]] = {
    "dlt": (False, None),
    "dlt-parallel": (True, None),
    "dlt-parallel-16": (True, 16),
}


@dataclass
class Side:
    name: str
    label: str
    requests: int
    rate_limited: int
    wall_s: float
    rate_pct: float
    """Arrivals over the run's span, as % of the limit (as `bench.download_rate`)."""
    tail_rate_pct: float
    """The same over the last 20 % of the span."""
    records: int
    outcome: str
    extract_s: float | None = None
    """dlt only: its extract step (the requests); wall_s adds normalize and load."""
    error: str = ""


@dataclass
class Comparison:
    size: str
    shape: str
    seed: int
    clinic_records: int
    limit: int
    window_s: float
    latency_ms: float
    parallel: int
    sides: list[Side]

    def side(self, name: str) -> Side | None:
        return next((s for s in self.sides if s.name == name), None)

    def ratios(self) -> dict[str, dict[str, float | None]]:
        """Each side's wall time and rate divided by ours."""
        ours = self.side("ours")
        out: dict[str, dict[str, float | None]] = {}
        for s in self.sides:
            if ours is None or s.outcome == "not installed":
                continue
            out[s.name] = {
                "wall": _div(s.wall_s, ours.wall_s),
                "extract": _div(s.extract_s, ours.wall_s) if s.extract_s is not None else None,
                "rate": _div(s.rate_pct, ours.rate_pct),
                "tail_rate": _div(s.tail_rate_pct, ours.tail_rate_pct),
            }
        return out


def _div(value: float | None, ours: float) -> float | None:
    return None if value is None or ours == 0 else round(value / ours, 2)


def _count_staged(path: Path) -> int:
    """Rows in our staging file's list tables (+ reference numbers)."""
    names = [r.name for r in RESOURCES if not r.single]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        existing = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        return sum(
            con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]  # noqa: S608
            for n in names
            if n in existing
        )
    finally:
        con.close()


def _one(
    which: str,
    *,
    size: str,
    shape: str,
    seed: int,
    limit: int,
    window_s: float,
    latency_ms: float,
    parallel: int,
    same_process: bool,
) -> tuple[Side, int]:
    with (
        bench_sandbox(
            size,
            seed,
            same_process=same_process,
            shape=shape,
            rate_limit=(limit, window_s),
            latency_ms=latency_ms,
        ) as sandbox,
        tempfile.TemporaryDirectory(prefix=f"compare-{which}-") as tmp,
    ):
        clinic_records = sum(sandbox.counts.values())
        sandbox.reset()
        extract_s: float | None = None
        error = ""
        began = time.perf_counter()
        if which == "ours":
            staged = Path(tmp) / "download.staging"
            opts = DownloadOptions(
                staging_path=staged,
                base_url=sandbox.base_url,
                rate_limit=(limit, window_s),
                parallel=parallel,
            )
            result = anyio.run(download, parse_key(sandbox.api_key), opts)
            wall = time.perf_counter() - began
            records, outcome = _count_staged(staged), result.outcome
        elif which == "sequential":
            base = baseline_sequential.download(
                sandbox.base_url,
                sandbox.api_key,
                Path(tmp) / "baseline.sqlite",
                limit=limit,
                window_s=window_s,
            )
            wall = time.perf_counter() - began
            records, outcome = base.records, "complete"
        else:
            parallelized, workers = DLT_SETTINGS[which]
            dlt = dlt_download.download(
                sandbox.base_url,
                sandbox.api_key,
                Path(tmp),
                parallelized=parallelized,
                workers=workers,
            )
            wall = dlt.seconds
            records, outcome, extract_s, error = dlt.records, dlt.outcome, dlt.extract_s, dlt.error
        stats = sandbox.snapshot()
    figures = rate_figures(stats.log, limit, window_s)
    side = Side(
        name=which,
        label=SIDES[which],
        requests=stats.total,
        rate_limited=stats.rate_limited,
        wall_s=round(wall, 2),
        rate_pct=figures.rate_pct,
        tail_rate_pct=figures.tail_rate_pct,
        records=records,
        outcome=outcome,
        extract_s=extract_s,
        error=error,
    )
    return side, clinic_records


def run(
    size: str = "medium",
    *,
    shape: str = "balanced",
    seed: int = 1,
    limit: int = 200,
    window_s: float = 6.0,
    latency_ms: float = 250.0,
    parallel: int = 16,
    sides: tuple[str, ...] = tuple(SIDES),
    same_process: bool = False,
) -> Comparison:
    done: list[Side] = []
    clinic_records = 0
    for which in sides:
        if which.startswith("dlt") and not dlt_download.available():
            print(
                f"skipping {which}: dlt is not installed (make bench installs it)", file=sys.stderr
            )
            done.append(Side(which, SIDES[which], 0, 0, 0.0, 0.0, 0.0, 0, "not installed"))
            continue
        print(f"running {SIDES[which]} ...", file=sys.stderr)
        side, clinic_records = _one(
            which,
            size=size,
            shape=shape,
            seed=seed,
            limit=limit,
            window_s=window_s,
            latency_ms=latency_ms,
            parallel=parallel,
            same_process=same_process,
        )
        print(f"  {side}", file=sys.stderr)
        done.append(side)
    return Comparison(
        size=size,
        shape=shape,
        seed=seed,
        clinic_records=clinic_records,
        limit=limit,
        window_s=window_s,
        latency_ms=latency_ms,
        parallel=parallel,
        sides=done,
    )


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} ×"


def markdown(c: Comparison) -> str:
    head = (
        f"Clinic {c.size} / {c.shape} (seed {c.seed}, {c.clinic_records:,} records); "
        f"{c.limit} requests per {c.window_s:g} s; latency {c.latency_ms:g} ms ± 20 %; "
        f"ours with parallel {c.parallel}. Ratios are the side's figure ÷ ours.\n"
    )
    ratios = c.ratios()
    lines = [
        head,
        "| downloader | outcome | requests | 429s | wall time | ÷ ours | rate (whole / tail) "
        "| ÷ ours | records |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in c.sides:
        if s.outcome == "not installed":
            lines.append(f"| {s.label} | dlt not installed | | | | | | | |")
            continue
        r = ratios.get(s.name, {})
        wall = f"{s.wall_s:.1f} s"
        if s.extract_s is not None:
            wall += f" (extract {s.extract_s:.1f} s)"
        outcome = s.outcome if not s.error else f"{s.outcome}: {s.error}"
        lines.append(
            f"| {s.label} | {outcome} | {s.requests:,} | {s.rate_limited} | {wall} "
            f"| {_times(r.get('wall'))} | {s.rate_pct:.1f} % / {s.tail_rate_pct:.1f} % "
            f"| {_times(r.get('rate'))} | {s.records:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = sandbox_arguments(__doc__.splitlines()[0] if __doc__ else None, size="medium")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated, from {', '.join(SIDES)} (default: all)",
    )
    args = parser.parse_args(argv)
    sides = tuple(s.strip() for s in args.sides.split(",") if s.strip())
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        parser.error(f"unknown side(s): {', '.join(unknown)}")
    comparison = run(
        args.size,
        shape=args.shape,
        seed=args.seed,
        limit=args.limit,
        window_s=args.window,
        latency_ms=args.latency_ms,
        parallel=args.parallel,
        sides=sides,
        same_process=args.same_process,
    )
    print(markdown(comparison))
    if args.json_out is not None:
        document = asdict(comparison) | {"ratios": comparison.ratios()}
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
