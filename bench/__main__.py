"""`make bench`: every benchmark in one run, with a results table (markdown and JSON).

Each benchmark is its own module, runnable alone; this runs them one after another in fresh
interpreters (so one's memory does not weigh on the next), gathers the JSON each writes, and
writes `bench/results/latest-full.{md,json}` (or `latest-quick.*`) with the date, the machine
and a summary against DESIGN.md section 8's bars, followed by each step's own figures.

    .venv/bin/python -m bench            # full: about 35 minutes
    .venv/bin/python -m bench --quick    # quick: under five minutes

Full: the download on a medium clinic of each shape (balanced, appointments_heavy,
many_small) and on a large one (about 1,000,000 records: the memory bar); ours against the
sequential baseline and dlt's REST API source (three settings) on the medium balanced clinic,
dlt's parallel settings on Cliniko's real 60-s window, and ours against dlt's parallel
settings on appointments_heavy; staging ingest of 1,000,000 synthetic records and of the large
sandbox clinic (about 1,000,000 real-shaped records); clinic store writes; plan and load on a
medium clinic (100,000 records); TUI responsiveness.
Quick: the medium balanced download; the comparison on a small clinic; ingest of 200,000
synthetic records and of the medium sandbox clinic; the same store-write, load and TUI steps.

dlt is a benchmark-only dependency that `make bench` installs; without it the dlt sides are
reported as not installed. The TUI step runs `bench.tui_responsiveness` when that module
exists (contract: `--json` prints one JSON document on stdout, `--quick` asks for the short
variant) and is reported as skipped otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TUI_MODULE = "bench.tui_responsiveness"


@dataclass
class Step:
    key: str
    """Stable key in the JSON document."""
    title: str
    args: list[str]
    """`python -m` arguments."""
    json_file: bool = False
    """The module writes its JSON to `--json <file>` (else prints it on stdout with `--json`)."""
    optional_module: bool = False
    """Skip (with a message) when the module does not exist yet."""
    extra: dict[str, Any] = field(default_factory=dict)


def plan(quick: bool) -> list[Step]:
    steps: list[Step] = []
    shapes = ["balanced"] if quick else ["balanced", "appointments_heavy", "many_small"]
    for shape in shapes:
        steps.append(
            Step(
                f"download/medium/{shape}",
                f"download, medium clinic, {shape}",
                ["bench.download_rate", "--size", "medium", "--shape", shape],
                json_file=True,
            )
        )
    if not quick:
        # A clinic of about 1,000,000 records: the memory bar, and the rate over a long run
        # (10,500 requests: about six minutes at 200 per 6 s).
        steps.append(
            Step(
                "download/large/balanced",
                "download, large clinic, balanced",
                [
                    "bench.download_rate",
                    "--size",
                    "large",
                    "--shape",
                    "balanced",
                    "--no-ingest",
                ],
                json_file=True,
            )
        )
    # Ours against the plain sequential downloader and dlt, same sandbox settings, one after
    # the other. The sequential ones take about five minutes each on a medium clinic, so the
    # quick run compares on a small clinic.
    compare_size = "small" if quick else "medium"
    steps.append(
        Step(
            "compare/balanced",
            f"ours against the alternatives, {compare_size} clinic, balanced",
            ["bench.compare_download", "--size", compare_size, "--shape", "balanced"],
            json_file=True,
        )
    )
    if not quick:
        # dlt's parallel settings on Cliniko's real window (200 per 60 s): dlt's 429 back-off
        # (1 + 2 + 4 + 8 s, `X-RateLimit-Reset` unread) is shorter than a window.
        steps.append(
            Step(
                "compare/balanced-real-window",
                "dlt's parallel settings on Cliniko's real window (200 per 60 s), medium clinic",
                [
                    "bench.compare_download",
                    "--size",
                    "medium",
                    "--shape",
                    "balanced",
                    "--window",
                    "60",
                    "--sides",
                    "dlt-parallel,dlt-parallel-16",
                ],
                json_file=True,
            )
        )
        steps.append(
            Step(
                "compare/appointments_heavy",
                "ours against dlt's parallel settings, medium clinic, appointments_heavy",
                [
                    "bench.compare_download",
                    "--size",
                    "medium",
                    "--shape",
                    "appointments_heavy",
                    "--sides",
                    "ours,dlt-parallel,dlt-parallel-16",
                ],
                json_file=True,
            )
        )
    synthetic = "200000" if quick else "1000000"
    steps.append(
        Step(
            "ingest/synthetic",
            f"staging ingest, {int(synthetic):,} synthetic records",
            ["bench.staging_ingest", "--records", synthetic, "--json"],
        )
    )
    sandbox_size = "medium" if quick else "large"
    steps.append(
        Step(
            "ingest/sandbox",
            f"staging ingest, the {sandbox_size} sandbox clinic's records",
            ["bench.staging_ingest", "--sandbox", sandbox_size, "--json"],
        )
    )
    steps.append(
        Step(
            "store_writes",
            "clinic store writes (SQLite)",
            ["bench.target_insert", "--rows", "100000", "--json"],
        )
    )
    steps.append(
        Step(
            "load",
            "plan and load, medium clinic (100,000 records)",
            ["bench.load_bench", "--records", "100000", "--json"],
        )
    )
    # The same first load into a throwaway PostgreSQL server, next to SQLite (issue 8's bar);
    # the server's binaries come from .ci/ensure-postgres, run by the Makefile's bench targets.
    steps.append(
        Step(
            "load/postgresql",
            "first load of the medium clinic into PostgreSQL, next to SQLite",
            ["bench.load_postgres", "--repeat", "1" if quick else "3", "--json"],
        )
    )
    # Item 5 of the benchmark issue: key press to screen update during a full-rate download,
    # measured with Textual's pilot. The module comes with the full-screen TUI.
    steps.append(
        Step(
            "tui",
            "TUI responsiveness during a full-rate download",
            [TUI_MODULE, "--json", *(["--quick"] if quick else [])],
            optional_module=True,
        )
    )
    return steps


# ------------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    ram_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": ram_gib,
        "python": platform.python_version(),
    }


def describe(m: dict[str, Any]) -> str:
    ram = f", {m['ram_gib']:g} GiB RAM" if m.get("ram_gib") else ""
    return f"{m['os']} {m['arch']}, {m['cpus']} CPUs ({m['cpu_model']}){ram}, Python {m['python']}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ----------------------------------------------------------------------------------- running


def run_step(step: Step, tmp: Path) -> tuple[dict[str, Any], str, float]:
    """(JSON result, the module's own markdown/stdout, seconds)."""
    began = time.monotonic()
    if step.optional_module and importlib.util.find_spec(step.args[0]) is None:
        message = f"skipped: {step.args[0]} does not exist yet"
        return {"skipped": message}, message, 0.0
    args = list(step.args)
    out_json = tmp / f"{step.key.replace('/', '-')}.json"
    if step.json_file:
        args += ["--json", str(out_json)]
    done = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - began
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return {"error": f"exit {done.returncode}", "stderr": tail}, tail, seconds
    if step.json_file:
        return json.loads(out_json.read_text()), done.stdout.strip(), seconds
    return json.loads(done.stdout), "", seconds


# ----------------------------------------------------------------------------------- summary


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} ×"


def summary(results: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []

    downloads = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith("download/")}
    if downloads:
        out += [
            "### Download (our engine)",
            "",
            "Sandbox (its own process) with latency 250 ms ± 20 % and 200 requests per 6 s "
            "(Cliniko's 200 per minute on a 10 × clock); parallel 16. Bars: requests ≤ minimum "
            "+ 1 %, rate ≥ 95 % of the limit over the run and its last 20 %, no 429, wall ≤ "
            "1.05 × the floor (requests ÷ rate), peak memory ≤ 250 MB at 1,000,000 records. "
            "Peak memory is the client's: engine and staging writer.",
            "",
            "| clinic | records | requests / minimum | rate, whole / tail | 429s "
            "| wall / floor | peak memory | bars met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for clinic, r in downloads.items():
            if "error" in r:
                out.append(f"| {clinic} | failed: {r['error']} | | | | | | |")
                continue
            rate = r["rate"]
            passes = r.get("passes", {})
            download_bars = [ok for name, ok in passes.items() if not name.startswith("ingest")]
            clinic = clinic.replace("/", " / ")
            out.append(
                f"| {clinic} | {r['records']:,} | {r['requests']:,} / {r['minimum_requests']:,} "
                f"({r['extra_requests_pct']:+.2f} %) | {rate['rate_pct']:.1f} % / "
                f"{rate['tail_rate_pct']:.1f} % | {r['rate_limited']} | {r['wall_s']:.1f} s / "
                f"{r['floor_s']:.1f} s = {r['wall_over_floor']:.3f} × "
                f"| {r['peak_rss_mb']:.0f} MB | {_yes(all(download_bars))} |"
            )
        out.append("")

    for key, r in results.items():
        if not key.startswith("compare/") or "error" in r:
            if key.startswith("compare/"):
                out += [f"### {key}: failed ({r['error']})", ""]
            continue
        ratios = r.get("ratios", {})
        out += [
            f"### Ours against the alternatives: {r['size']} clinic, {r['shape']}, "
            f"{r['limit']} requests per {r['window_s']:g} s",
            "",
            f"{r['clinic_records']:,} records; same sandbox settings, each on a fresh sandbox, "
            "one after the other. Ratios are the downloader's figure ÷ ours (wall > 1 is "
            "slower, rate < 1 is slower). A rate above 100 % counts refused (429) requests.",
            "",
            "| downloader | wall | wall ÷ ours | rate, whole / tail | rate ÷ ours | 429s "
            "| requests | outcome |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in r["sides"]:
            if s["outcome"] == "not installed":
                out.append(f"| {s['label']} | | | | | | | dlt not installed |")
                continue
            ratio = ratios.get(s["name"], {})
            wall = f"{s['wall_s']:.1f} s"
            if s.get("extract_s") is not None:
                wall += f" (extract {s['extract_s']:.1f} s)"
            outcome = s["outcome"] + (f": {s['error']}" if s.get("error") else "")
            out.append(
                f"| {s['label']} | {wall} | {_times(ratio.get('wall'))} "
                f"| {s['rate_pct']:.1f} % / {s['tail_rate_pct']:.1f} % "
                f"| {_times(ratio.get('rate'))} | {s['rate_limited']} | {s['requests']:,} "
                f"| {outcome} |"
            )
        out.append("")

    ingest = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith("ingest/")}
    if ingest:
        out += [
            "### Staging ingest (no network)",
            "",
            "Pages of 100 records through the staging writer, 10 pages per transaction, index "
            "build at the end included. Bars: ≥ 50,000 records/s; peak memory ≤ 250 MB at "
            "1,000,000 records. Records/s per CPU-second shows the figure without other "
            "processes' load.",
            "",
            "| records | count | records/s | records/s of CPU | peak RSS | bars met |",
            "|---|---|---|---|---|---|",
        ]
        for r in ingest.values():
            if "error" in r:
                out.append(f"| failed: {r['error']} | | | | | |")
                continue
            ok = r["records_per_second"] >= 50_000 and r["peak_rss_mb"] <= 250
            out.append(
                f"| {r['source']} | {r['records']:,} | {r['records_per_second']:,} "
                f"| {r['records_per_cpu_second']:,} | {r['peak_rss_mb']:.0f} MB | {_yes(ok)} |"
            )
        out.append("")

    load = results.get("load")
    if load and "error" not in load:
        changed = load["topup_changed_records"]
        out += [
            f"### Plan and load: {load['staged_records']:,} staged records into SQLite",
            "",
            "| measure | figure | bar |",
            "|---|---|---|",
            f"| first load (plan + write + verify) | {load['first_load_records_per_second']:,} "
            f"records/s ({load['first_load_seconds']:.1f} s); {load['clinic_rows_written']:,} "
            f"clinic rows at {load['clinic_rows_per_write_second']:,} rows/s while writing "
            f"| ≥ 10,000 records/s: {_yes(load['first_load_records_per_second'] >= 10_000)} |",
            f"| rerun plan, nothing changed | {load['rerun_plan_records_per_second']:,} "
            f"records/s ({load['rerun_plan_seconds']:.2f} s) "
            f"| ≥ 50,000 records/s: {_yes(load['rerun_plan_records_per_second'] >= 50_000)} |",
            f"| top-up after 1 % changed ({changed:,} records) "
            f"| {load['topup_records_per_second']:,} records/s ({load['topup_seconds']:.2f} s, "
            f"plan {load['topup_plan_seconds']:.2f} s); "
            f"{load['topup_changed_records_per_second']:,} changed records/s; "
            f"{100 * load['topup_share_of_first_load']:.1f} % of the first load's time "
            "| in proportion to what changed |",
            "",
        ]
    elif load:
        out += [f"### Plan and load: failed ({load['error']})", ""]

    pg = results.get("load/postgresql")
    if pg and "error" not in pg and "postgresql" in pg and "sqlite" in pg:
        p, q = pg["postgresql"], pg["sqlite"]
        out += [
            f"### First load into PostgreSQL: {pg['clinic']}, {pg['staged_records']:,} staged "
            f"records (median of {pg['repeat']})",
            "",
            "| store | first load | plan / write / verify | rerun plan, nothing changed |",
            "|---|---|---|---|",
        ]
        for name, r in (("PostgreSQL", p), ("SQLite", q)):
            rerun = (
                f"{r['rerun_plan_records_per_second']:,} records/s"
                if "rerun_plan_records_per_second" in r
                else "–"
            )
            out.append(
                f"| {name} | {r['first_load_records_per_second_median']:,} records/s "
                f"({r['first_load_records_per_second_min']:,}–"
                f"{r['first_load_records_per_second_max']:,}) "
                f"| {r['first_load_plan_seconds']:.1f} / {r['write_seconds']:.1f} / "
                f"{r['verify_seconds']:.1f} s | {rerun} |"
            )
        out += ["", f"Bar met: {_yes(bool(pg.get('bar_met')))}.", ""]
    elif pg:
        out += [f"### First load into PostgreSQL: {pg.get('error') or pg.get('skipped')}", ""]

    writes = results.get("store_writes")
    if writes and "error" not in writes:
        out += [
            "### Clinic store writes (SQLite)",
            "",
            f"{writes['rows']:,} rows in batches of {writes['batch']:,}: "
            f"{writes['rows_per_second']:,} rows/s; {writes['rows_per_second_with_links']:,} "
            "rows/s with their import links.",
            "",
        ]

    tui = results.get("tui")
    if tui is not None:
        out += ["### TUI responsiveness", ""]
        if "skipped" in tui or "error" in tui:
            out += [str(tui.get("skipped") or f"failed: {tui['error']}"), ""]
        else:
            out += ["| measure | value |", "|---|---|"]
            out += [f"| {k} | {v} |" for k, v in tui.items() if _scalar(v)]
            out.append("")
    return "\n".join(out)


def _scalar(value: object) -> bool:
    return isinstance(value, int | float | str | bool)


def details(step: Step, result: dict[str, Any], text: str, seconds: float) -> str:
    head = f"### {step.title} ({seconds:.0f} s)\n\n`python -m {' '.join(step.args)}`\n"
    if text:
        return f"{head}\n{text}\n"
    lines = "\n".join(f"| {k} | {v} |" for k, v in result.items() if _scalar(v))
    return f"{head}\n| measure | value |\n|---|---|\n{lines}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark")
    parser.add_argument("--quick", action="store_true", help="the under-five-minutes variant")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated step keys or prefixes (e.g. load,ingest); writes no files",
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    box = machine()
    document: dict[str, Any] = {
        "date": stamp,
        "machine": box,
        "quick": args.quick,
        "load_average_before": _loadavg(),
    }
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    steps = [s for s in plan(args.quick) if not wanted or any(s.key.startswith(w) for w in wanted)]
    results: dict[str, dict[str, Any]] = {}
    sections: list[str] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for step in steps:
            say(f"[{time.monotonic() - began:6.0f} s] {step.title} ...")
            result, text, seconds = run_step(step, Path(tmp))
            results[step.key] = result
            failed = failed or "error" in result
            if "skipped" in result:
                say(f"         {result['skipped']}")
            elif "error" in result:
                say(f"         FAILED ({result['error']}):\n{result.get('stderr', '')}")
            sections.append(details(step, result, text, seconds))
    total = time.monotonic() - began
    document.update(
        {
            "seconds": round(total),
            "load_average_after": _loadavg(),
            "results": results,
        }
    )
    variant = "quick" if args.quick else "full"
    loads = f"{document['load_average_before']} → {document['load_average_after']}"
    markdown = "\n".join(
        [
            f"# Benchmarks ({variant}), {stamp}",
            "",
            f"Machine: {describe(box)}. Load average (1, 5, 15 min) before → after: {loads}. "
            f"Run time {total / 60:.1f} min. Command: `make bench{'-quick' if args.quick else ''}`"
            f" (`python -m bench{' --quick' if args.quick else ''}`).",
            "",
            "## Summary",
            "",
            summary(results),
            "## Each step",
            "",
            *sections,
        ]
    )
    print(markdown)
    if wanted:  # a partial run does not replace the results of a whole one
        say(f"done in {total:.0f} s (partial run: nothing written to {RESULTS})")
    else:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"latest-{variant}.md").write_text(markdown)
        (RESULTS / f"latest-{variant}.json").write_text(json.dumps(document, indent=2) + "\n")
        say(f"wrote {RESULTS}/latest-{variant}.md and .json in {total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
