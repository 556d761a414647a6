"""Alternative: dlt's REST API source, configured for the same Cliniko lists, into DuckDB.

What an integrator following dlt's documentation writes for Cliniko (dlt's "REST API source"
page, declarative configuration): one resource per list and variant our download crawls
(`engine.resources.list_variants(resources_for(ALL_PARTS))`), each with `per_page=100` and
`data_selector` the list's key; the `json_link` paginator on `links.next`; HTTP basic auth with
the key and an empty password; the `User-Agent: NAME (EMAIL)` header Cliniko requires; and the
per-practitioner `practitioner_reference_numbers` as dependent resources of both practitioner
lists. Loaded into DuckDB, the local destination dlt's documentation uses throughout (`dlt init
rest_api duckdb`), in a temporary folder.

Nothing here paces requests: dlt has no rate limiter. Its HTTP client retries a 429 (and 5xx)
up to 5 times with exponential back-off (1, 2, 4, 8 s), taking `Retry-After` when the server
sends one. Cliniko (and the sandbox) send `X-RateLimit-Reset` instead, which dlt does not read:
15 s of back-off outlasts the benchmark's 6-s window but not Cliniko's real 60-s one.

Two settings are measured: dlt's default (resources extracted one request at a time, round
robin) and `parallelized=True` (the documented way to speed the extract up: resources in dlt's
thread pool, 5 workers by default).

dlt is a benchmark-only dependency (`make bench` installs it; see pyproject's `bench` group).

    .venv/bin/python -m bench.dlt_download --base-url http://127.0.0.1:8765/v1 --key "$KEY"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.resources import ALL_PARTS, list_variants, resources_for

USER_AGENT = "clinic-export-dlt (it@clinic.example)"
PER_PAGE = 100


def available() -> bool:
    """Whether dlt and duckdb are installed (they are benchmark-only dependencies)."""
    try:
        import dlt  # noqa: F401
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class DltResult:
    parallelized: bool
    workers: int = 5
    records: int = 0
    """Rows in the top-level tables dlt loaded (one per record; nested lists not counted)."""
    tables: int = 0
    """Every table dlt created, nested ones included."""
    extract_s: float = 0.0
    normalize_s: float = 0.0
    load_s: float = 0.0
    seconds: float = 0.0
    outcome: str = "complete"
    error: str = ""
    per_resource: dict[str, int] = field(default_factory=dict)


def rest_api_config(base_url: str, api_key: str) -> dict[str, Any]:
    """The `RESTAPIConfig` for every list our download crawls."""
    # `/user` and `/settings` are single objects: one page each, the whole body a record.
    resources: list[dict[str, Any]] = [
        {
            "name": single,
            "endpoint": {"path": single, "paginator": "single_page", "data_selector": "$"},
        }
        for single in ("user", "settings")
    ]
    practitioner_lists: list[str] = []
    for resource, variant in list_variants(resources_for(ALL_PARTS)):
        name = resource.name if variant == "active" else f"{resource.name}_{variant}"
        resources.append(
            {
                "name": name,
                "endpoint": {
                    "path": resource.variant_path(variant).lstrip("/"),
                    "params": {"per_page": PER_PAGE},
                    "data_selector": resource.name,
                },
            }
        )
        if resource.name == "practitioners":
            practitioner_lists.append(name)
    for parent in practitioner_lists:
        suffix = parent.removeprefix("practitioners")
        resources.append(
            {
                "name": f"practitioner_reference_numbers{suffix}",
                "endpoint": {
                    "path": f"practitioners/{{resources.{parent}.id}}"
                    "/practitioner_reference_numbers",
                    "params": {"per_page": PER_PAGE},
                    "data_selector": "practitioner_reference_numbers",
                },
            }
        )
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "auth": {"type": "http_basic", "username": api_key, "password": ""},
            "paginator": {"type": "json_link", "next_url_path": "links.next"},
        },
        "resource_defaults": {"write_disposition": "replace"},
        "resources": resources,
    }


def download(
    base_url: str,
    api_key: str,
    folder: Path,
    *,
    parallelized: bool = False,
    workers: int | None = None,
) -> DltResult:
    """Run the pipeline into `folder` (pipeline state and the DuckDB file both live there).

    `workers`: dlt's extract thread pool (`[extract] workers`, default 5); it only matters
    with `parallelized`.
    """
    with _environment(
        # No anonymous telemetry from a benchmark, nothing read from or written to ~/.dlt,
        # and only errors logged.
        RUNTIME__DLTHUB_TELEMETRY="false",
        DLT_DATA_DIR=str(folder / "dlt-data"),
        RUNTIME__LOG_LEVEL="ERROR",
        # dlt's extract thread pool; its default is 5.
        EXTRACT__WORKERS=None if workers is None else str(workers),
    ):
        return _download(base_url, api_key, folder, parallelized=parallelized, workers=workers)


@contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is not None:
                os.environ[key] = value
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _download(
    base_url: str, api_key: str, folder: Path, *, parallelized: bool, workers: int | None
) -> DltResult:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    result = DltResult(parallelized=parallelized, workers=workers or 5)
    config = rest_api_config(base_url, api_key)
    source = rest_api_source(config, name="cliniko", parallelized=parallelized)
    pipeline = dlt.pipeline(
        pipeline_name="cliniko_bench",
        destination=dlt.destinations.duckdb(str(folder / "cliniko.duckdb")),
        dataset_name="cliniko_data",
        pipelines_dir=str(folder / "pipelines"),
    )
    began = time.perf_counter()
    try:
        pipeline.run(source)
    except Exception as exc:  # a failed run is a result too (e.g. retries exhausted on 429)
        result.outcome = "failed"
        # dlt wraps the error (and may raise another while shutting its thread pool down):
        # report the innermost one, e.g. the HTTPError of a 429 whose retries ran out.
        cause: BaseException = exc
        for _ in range(20):
            inner = cause.__cause__ or cause.__context__
            if inner is None:
                break
            cause = inner
        result.error = f"{type(cause).__name__}: {str(cause)[:200]}"
    result.seconds = round(time.perf_counter() - began, 2)
    trace = pipeline.last_trace
    if trace is not None:
        for step in trace.steps:
            seconds = (
                round((step.finished_at - step.started_at).total_seconds(), 2)
                if step.finished_at and step.started_at
                else 0.0
            )
            if step.step in ("extract", "normalize", "load"):
                setattr(result, f"{step.step}_s", seconds)
    if result.outcome == "complete":
        top = [r["name"] for r in config["resources"] if r["name"] not in ("user", "settings")]
        with pipeline.sql_client() as client:
            existing = {
                row[0]
                for row in client.execute_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                    pipeline.dataset_name,
                )
            }
            result.tables = len([t for t in existing if not t.startswith("_dlt")])
            for name in top:
                if name in existing:
                    (count,) = client.execute_sql(f'SELECT COUNT(*) FROM "{name}"')[0]  # noqa: S608
                    result.per_resource[name] = int(count)
        result.records = sum(result.per_resource.values())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", required=True, help="e.g. https://api.au1.cliniko.com/v1")
    parser.add_argument("--key", required=True)
    parser.add_argument("--parallelized", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="dlt's extract workers")
    parser.add_argument("--out", type=Path, default=None, help="keep the pipeline here")
    args = parser.parse_args(argv)
    if not available():
        print("dlt is not installed: pip install 'dlt[duckdb]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as tmp:
        folder = args.out or Path(tmp)
        result = download(
            args.base_url, args.key, folder, parallelized=args.parallelized, workers=args.workers
        )
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.outcome == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
