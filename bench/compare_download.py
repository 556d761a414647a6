"""Our download against the plain sequential baseline, on the same sandbox configuration.

Both run on fresh sandboxes serving identical data (same size, shape and seed), with the same
latency and the same rate rule (200 per 6 s by default), one after the other: first
`engine.extract.download` (as `bench.download_rate` runs it), then `bench.baseline_sequential`.
Requests, 429s and the achieved rate are read from the *server's* request log; wall time is the
client's; records staged are the rows in each one's SQLite file (list tables and practitioner
reference numbers; `/user` and `/settings` not counted).

    .venv/bin/python -m bench.compare_download --size medium --json out.json
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

from bench import baseline_sequential
from bench.download_rate import rate_figures, sandbox_arguments
from engine.cliniko import parse_key
from engine.extract import DownloadOptions, download
from engine.resources import RESOURCES
from sandbox.runner import running_sandbox


@dataclass
class Side:
    name: str
    requests: int
    rate_limited: int
    wall_s: float
    rate_pct: float
    records: int
    outcome: str


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
    ours: Side
    baseline: Side


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
) -> tuple[Side, int]:
    with (
        running_sandbox(
            size=size, seed=seed, shape=shape, rate_limit=(limit, window_s), latency_ms=latency_ms
        ) as sandbox,
        tempfile.TemporaryDirectory(prefix=f"compare-{which}-") as tmp,
    ):
        clinic_records = sum(sandbox.store.counts().values())
        sandbox.reset_stats()
        sandbox.reset_rate_limit_windows()
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
        else:
            base = baseline_sequential.download(
                sandbox.base_url,
                sandbox.api_key,
                Path(tmp) / "baseline.sqlite",
                limit=limit,
                window_s=window_s,
            )
            wall = time.perf_counter() - began
            records, outcome = base.records, "complete"
        stats = sandbox.stats.snapshot()
    figures = rate_figures(stats.log, limit, window_s)
    side = Side(
        name=which,
        requests=stats.total,
        rate_limited=stats.rate_limited,
        wall_s=round(wall, 2),
        rate_pct=figures.rate_pct,
        records=records,
        outcome=outcome,
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
) -> Comparison:
    def side(which: str) -> tuple[Side, int]:
        return _one(
            which,
            size=size,
            shape=shape,
            seed=seed,
            limit=limit,
            window_s=window_s,
            latency_ms=latency_ms,
            parallel=parallel,
        )

    print("running ours ...", file=sys.stderr)
    ours, clinic_records = side("ours")
    print(f"  {ours}", file=sys.stderr)
    print("running the sequential baseline ...", file=sys.stderr)
    baseline, _ = side("baseline")
    print(f"  {baseline}", file=sys.stderr)
    return Comparison(
        size=size,
        shape=shape,
        seed=seed,
        clinic_records=clinic_records,
        limit=limit,
        window_s=window_s,
        latency_ms=latency_ms,
        parallel=parallel,
        ours=ours,
        baseline=baseline,
    )


def _ratio(value: float, ours: float) -> str:
    if ours == 0:
        return "–" if value == 0 else "∞"
    return f"{value / ours:.2f} ×"


def markdown(c: Comparison) -> str:
    o, b = c.ours, c.baseline
    rows = [
        ("requests", f"{o.requests:,}", f"{b.requests:,}", _ratio(b.requests, o.requests)),
        ("429s", f"{o.rate_limited}", f"{b.rate_limited}", _ratio(b.rate_limited, o.rate_limited)),
        ("wall time", f"{o.wall_s:.1f} s", f"{b.wall_s:.1f} s", _ratio(b.wall_s, o.wall_s)),
        (
            "achieved rate (% of limit)",
            f"{o.rate_pct:.1f} %",
            f"{b.rate_pct:.1f} %",
            _ratio(b.rate_pct, o.rate_pct),
        ),
        ("records staged", f"{o.records:,}", f"{b.records:,}", _ratio(b.records, o.records)),
    ]
    head = (
        f"Clinic {c.size} / {c.shape} (seed {c.seed}, {c.clinic_records:,} records); "
        f"{c.limit} requests per {c.window_s:g} s; latency {c.latency_ms:g} ms ± 20 %; "
        f"ours with parallel {c.parallel}.\n"
    )
    lines = [head, "| measure | ours | sequential baseline | baseline ÷ ours |"]
    lines.append("|---|---|---|---|")
    lines += [f"| {name} | {a} | {z} | {r} |" for name, a, z, r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = sandbox_arguments(__doc__.splitlines()[0] if __doc__ else None, size="medium")
    args = parser.parse_args(argv)
    comparison = run(
        args.size,
        shape=args.shape,
        seed=args.seed,
        limit=args.limit,
        window_s=args.window,
        latency_ms=args.latency_ms,
        parallel=args.parallel,
    )
    print(markdown(comparison))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(asdict(comparison), indent=2) + "\n")
        print(f"\nwrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
