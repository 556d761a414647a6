"""Load benchmark into PostgreSQL, next to SQLite on the same staged clinic.

Stages a clinic, by default the sandbox's `medium` clinic (about 100,000 records) downloaded
from it over loopback as a real download would (the rate limit lifted: the download is not
what is measured here), or with `--records N` the synthetic staging file of `bench.load_bench`.
Then, `--repeat` times, a first load (plan + load + verify) into an empty clinic of each store,
the two stores taking turns (SQLite first on odd rounds, PostgreSQL first on even ones); then,
on the last round's clinics, a rerun plan with nothing changed and a top-up after 1 % of the
records changed in a second download run. The figure per store is the median round (a shared
machine is noisy: every round is in the JSON).

The PostgreSQL store is a throwaway server started here under a temporary folder (as the
`postgres` or `nobody` user when run as root), with PostgreSQL's default durability (fsync and
synchronous commit on, as in production), reached over its Unix socket; or `--url
postgresql://...`, a server of yours (each round loads into a new schema named after the URL's
`schema`, with `_2`, `_3`... appended after the first; they are left there).

Issue 8's bar: a first load of a medium clinic into PostgreSQL runs at >= 10,000 staged
records/s (`bar_met` in the JSON; the exit code is 1 only when a verification failed). CPU
time is given too (this process's, and the throwaway server's processes'), and records per
CPU-second: a figure other jobs on the machine do not move.

    .venv/bin/python -m bench.load_postgres                    # medium sandbox clinic
    .venv/bin/python -m bench.load_postgres --repeat 5 --json
    .venv/bin/python -m bench.load_postgres --records 100000   # bench.load_bench's synthetic
    .venv/bin/python -m bench.load_postgres --url 'postgresql://me@db/clinics?schema=bench1'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bench.load_bench import NOW, build_staging, change_some
from engine.load import load
from engine.plan import plan
from target import open_target

BAR = 10_000
"""Staged records per second of a first load into PostgreSQL (issue 8)."""
STORES = ("sqlite", "postgresql")


_SERVER_DATA: list[Path] = []
"""The data folder of the throwaway server, if one runs (for its CPU time)."""


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a throwaway PostgreSQL server (stopped on exit); `schema=bench`."""
    from tests.pg_server import start_server

    server = start_server(durable=True)
    _SERVER_DATA.append(server.data)
    try:
        yield server.url(schema="bench")
    finally:
        _SERVER_DATA.clear()
        server.stop()


def server_cpu_seconds() -> float | None:
    """CPU time of the throwaway server so far: the postmaster, its live processes, and those
    that ended (accounted to it). None without a local throwaway server (or without /proc)."""
    if not _SERVER_DATA:
        return None
    try:
        postmaster = int((_SERVER_DATA[0] / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == postmaster:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            elif ppid == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def round_url(base: str, n: int, folder: Path) -> str:
    """The clinic store of round `n` (0-based): a new SQLite file, or a new schema."""
    if base == "sqlite":
        return f"sqlite:///{folder / f'clinic{n + 1}.db'}"
    if n == 0:
        return base
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["schema"] = f"{query.get('schema', 'public')}_{n + 1}"
    return urlunsplit(parts._replace(query=urlencode(query)))


def first_load(staging: Path, url: str, staged: int) -> dict[str, Any]:
    """One first load of `staging` into the empty clinic at `url`."""
    with open_target(url, readonly=True) as store:
        if store.table_counts()["patients"]:
            raise SystemExit(f"{store.url} is not an empty clinic: name a new schema")
    server0 = server_cpu_seconds() if url.startswith("postgres") else None
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = load(staging, url, now=NOW)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server1 = server_cpu_seconds() if server0 is not None else None
    server_cpu = None if server0 is None or server1 is None else round(server1 - server0, 2)
    rows = result.rows_written() + sum(c.get("settlements", 0) for c in result.written.values())
    return {
        "first_load_seconds": round(seconds, 2),
        "first_load_records_per_second": round(staged / seconds),
        "first_load_client_cpu_seconds": round(cpu, 2),
        "first_load_server_cpu_seconds": server_cpu,
        "first_load_records_per_cpu_second": round(staged / (cpu + (server_cpu or 0.0))),
        "first_load_plan_seconds": round(result.plan.seconds, 2),
        "write_seconds": round(result.write_seconds, 2),
        "verify_seconds": round(seconds - result.plan.seconds - result.write_seconds, 2),
        "clinic_rows_written": rows,
        "clinic_rows_per_write_second": round(rows / result.write_seconds)
        if result.write_seconds
        else 0,
        "ok": result.ok,
    }


def rerun_and_topup(staging: Path, url: str, staged: int) -> dict[str, Any]:
    """A plan with nothing changed, then a load after the top-up `change_some` made."""
    t0 = time.perf_counter()
    again = plan(staging, url, now=NOW)
    rerun_s = time.perf_counter() - t0
    return {
        "rerun_plan_seconds": round(rerun_s, 2),
        "rerun_plan_records_per_second": round(staged / rerun_s),
        "rerun_unchanged": again.totals()["unchanged"],
    }


def topup(staging: Path, url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = load(staging, url, now=NOW)
    return {
        "topup_seconds": round(time.perf_counter() - t0, 2),
        "topup_updates": result.plan.totals()["update"],
        "ok": result.ok,
    }


def download_sandbox(staging: Path, size: str, seed: int) -> int:
    """Download the sandbox's clinic of `size` into `staging`; the records staged."""
    import anyio

    from engine.cliniko import parse_key
    from engine.extract import DownloadOptions, download
    from sandbox.runner import running_sandbox
    from staging import open_staging

    with running_sandbox(size=size, seed=seed, rate_limit=(1_000_000, 1.0)) as handle:
        options = DownloadOptions(
            staging_path=staging, base_url=handle.base_url, rate_limit=(1_000_000, 1.0)
        )
        result = anyio.run(download, parse_key(handle.api_key), options, _ignore)
    if result.outcome != "complete":
        raise SystemExit(f"the download of the {size} sandbox clinic did not complete")
    with open_staging(staging, create=False) as db:
        return sum(c.total for c in db.table_counts().values())


def _ignore(_event: object) -> None:
    pass


def run(
    records: int | None,
    size: str,
    seed: int,
    url: str | None,
    sqlite: bool,
    repeat: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="load-pg-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        staging = folder / "bench.staging"
        if records:
            staged = build_staging(staging, records, seed)
            source = f"synthetic ({records:,} asked)"
        else:
            staged = download_sandbox(staging, size, seed)
            source = f"sandbox {size} clinic, seed {seed}"
        bases = {"postgresql": url or stack.enter_context(throwaway_postgres())}
        if sqlite:
            bases["sqlite"] = "sqlite"
        names = [s for s in STORES if s in bases]
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        last: dict[str, str] = {}
        for n in range(repeat):
            for name in names if n % 2 == 0 else names[::-1]:
                last[name] = round_url(bases[name], n, folder)
                rounds[name].append(first_load(staging, last[name], staged))
        out: dict[str, Any] = {"clinic": source, "staged_records": staged, "repeat": repeat}
        for name in names:
            rates = [r["first_load_records_per_second"] for r in rounds[name]]
            median = sorted(rounds[name], key=lambda r: r["first_load_records_per_second"])[
                (len(rates) - 1) // 2
            ]
            out[name] = {
                **{k: v for k, v in median.items() if k != "ok"},
                "first_load_records_per_second_median": round(statistics.median(rates)),
                "first_load_records_per_second_min": min(rates),
                "first_load_records_per_second_max": max(rates),
                "rounds": rounds[name],
                **rerun_and_topup(staging, last[name], staged),
            }
        out["topup_changed_records"] = change_some(staging, 0.01, seed)
        for name in names:
            done = topup(staging, last[name])
            ok = all(r["ok"] for r in rounds[name]) and done.pop("ok")
            out[name].update(done, verification_ok=ok)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", default="medium", help="the sandbox clinic (default medium)")
    parser.add_argument(
        "--records", type=int, default=None, help="a synthetic clinic of this size instead"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="first loads per store (median)")
    parser.add_argument("--url", default=None, help="a postgresql:// URL (default: throwaway)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = run(
        args.records, args.size, args.seed, args.url, not args.no_sqlite, max(1, args.repeat)
    )
    verified = all(result[name]["verification_ok"] for name in STORES if name in result)
    ok = result["postgresql"]["first_load_records_per_second_median"] >= BAR
    result["bar_met"] = ok
    if args.json:
        print(json.dumps(result))
        return 0 if verified else 1
    print(
        f"staged clinic: {result['clinic']}, {result['staged_records']:,} records; "
        f"{result['repeat']} first load(s) per store, the median shown"
    )
    for name in STORES:
        if name not in result:
            continue
        r = result[name]
        print(
            f"{name:<10} first load {r['first_load_seconds']:.2f}s = "
            f"{r['first_load_records_per_second_median']:,} records/s "
            f"(rounds {r['first_load_records_per_second_min']:,}-"
            f"{r['first_load_records_per_second_max']:,}; plan {r['first_load_plan_seconds']}s,"
            f" write {r['write_seconds']}s = {r['clinic_rows_per_write_second']:,} rows/s, "
            f"verify {r['verify_seconds']}s; CPU: this process "
            f"{r['first_load_client_cpu_seconds']}s"
            + (
                f", the server {r['first_load_server_cpu_seconds']}s"
                if r.get("first_load_server_cpu_seconds") is not None
                else ""
            )
            + f" = {r['first_load_records_per_cpu_second']:,} records per CPU-second); rerun plan "
            f"{r['rerun_plan_seconds']:.2f}s = {r['rerun_plan_records_per_second']:,} records/s;"
            f" top-up ({result['topup_changed_records']:,} changed) {r['topup_seconds']:.2f}s;"
            f" verification {'ok' if r['verification_ok'] else 'FAILED'}"
        )
    print(
        f"bar: first load into PostgreSQL >= {BAR:,} records/s (median): "
        + ("met" if ok else "NOT met")
    )
    return 0 if verified else 1


if __name__ == "__main__":
    raise SystemExit(main())
