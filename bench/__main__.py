"""`make bench`: every benchmark in one run, with a results table (markdown and JSON).

Each benchmark is its own module, runnable alone; this runs them one after another in fresh
interpreters (so one's memory does not weigh on the next) and gathers what they print.
`--quick` is the under-five-minutes variant: a medium clinic download and smaller ingest and
load sizes.

    .venv/bin/python -m bench            # full
    .venv/bin/python -m bench --quick    # quick
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _run(args: list[str]) -> tuple[str, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=True)
    return done.stdout, time.monotonic() - began


def plan(quick: bool) -> list[tuple[str, list[str]]]:
    downloads = [("balanced", "medium")]
    if not quick:
        downloads += [("appointments_heavy", "medium"), ("many_small", "medium")]
    steps = [
        (f"download {size} {shape}", ["bench.download_rate", "--size", size, "--shape", shape])
        for shape, size in downloads
    ]
    # Ours against the plain sequential downloader (bench/compare_download.py); full run only,
    # as the baseline alone takes about five minutes on a medium clinic.
    if not quick:
        steps.append(
            ("download vs sequential baseline", ["bench.compare_download", "--size", "medium"])
        )
    steps.append(
        (
            "staging ingest",
            ["bench.staging_ingest", "--records", "200000" if quick else "1000000", "--json"],
        )
    )
    steps.append(("clinic store writes", ["bench.target_insert", "--rows", "100000", "--json"]))
    steps.append(
        ("load", ["bench.load_bench", "--records", "30000" if quick else "100000", "--json"])
    )
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark")
    parser.add_argument("--quick", action="store_true", help="the under-five-minutes variant")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    document: dict[str, object] = {"date": stamp, "machine": machine, "quick": args.quick}
    sections = [f"# Benchmarks, {stamp}\n\nMachine: {machine}.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, step in plan(args.quick):
            print(f"running {name} ...", file=sys.stderr)
            if step[0] in ("bench.download_rate", "bench.compare_download"):
                out_json = Path(tmp) / "download.json"
                stdout, seconds = _run([*step, "--json", str(out_json)])
                document[name] = json.loads(out_json.read_text())
                sections.append(f"## {name} ({seconds:.0f} s)\n\n{stdout.strip()}\n")
            else:
                stdout, seconds = _run(step)
                result = json.loads(stdout)
                document[name] = result
                lines = "\n".join(f"| {k} | {v} |" for k, v in result.items() if _scalar(v))
                sections.append(
                    f"## {name} ({seconds:.0f} s)\n\n| measure | value |\n|---|---|\n{lines}\n"
                )
    suffix = "quick" if args.quick else "full"
    (RESULTS / f"latest-{suffix}.md").write_text("\n".join(sections))
    (RESULTS / f"latest-{suffix}.json").write_text(json.dumps(document, indent=2) + "\n")
    print("\n".join(sections))
    print(f"wrote {RESULTS}/latest-{suffix}.md and .json", file=sys.stderr)
    return 0


def _scalar(value: object) -> bool:
    return isinstance(value, int | float | str | bool)


if __name__ == "__main__":
    sys.exit(main())
