"""Faults (issue 6, item 1), many times over: the small clinic downloaded under injected
5xx (5 %), dropped connections (1 %), responses slower than the client's timeout (2 %) and
429 bursts, each run with its own fault seed, stages exactly what a clean download stages:
every table, row by row, raw JSON and variants, nothing quarantined.

The normal suite runs this once (tests/engine/test_extract.py); `make test-hard` runs it
here under several seeds, so hundreds of faults are met.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from reliability_helpers import record_figure

from engine.cliniko import RetryPolicy, parse_key
from engine.extract import DownloadOptions, download
from sandbox.runner import SandboxHandle, running_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.hard]

RATE = (200, 1.0)
SPEC = "5xx=0.05,reset=0.01,slow=0.02,slow_ms=1500,burst429=0.01,seed={seed}"
TIMEOUT_S = 0.5
"""The client's timeout in these runs: a slow response (1.5 s) is past it."""

Content = dict[str, list[tuple[str, str, str]]]


def fetch(handle: SandboxHandle, path: Path, *, faulty: bool) -> str:
    opts = DownloadOptions(staging_path=path, base_url=handle.base_url, rate_limit=RATE)
    if faulty:
        opts = DownloadOptions(
            staging_path=path,
            base_url=handle.base_url,
            rate_limit=RATE,
            timeout=TIMEOUT_S,
            retry=RetryPolicy(base_s=0.01, cap_s=0.05, max_attempts=12),
        )

    async def go() -> str:
        result = await download(parse_key(handle.api_key), opts)
        return result.outcome

    return anyio.run(go)


def content(path: Path) -> Content:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' "
                "ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name"
            )
        ]
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (0,)
        return {
            t: con.execute(f'SELECT id, raw, variants FROM "{t}" ORDER BY id').fetchall()
            for t in tables
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def small() -> Iterator[SandboxHandle]:
    with running_sandbox("small", 7, rate_limit=RATE) as handle:
        yield handle


@pytest.fixture(scope="module")
def clean(small: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> Content:
    path = tmp_path_factory.mktemp("clean") / "clean.staging"
    small.reset_rate_limit_windows()
    assert fetch(small, path, faulty=False) == "complete"
    return content(path)


@pytest.mark.parametrize("seed", range(11, 21))
def test_a_faulty_download_stages_what_a_clean_one_does(
    small: SandboxHandle, clean: Content, tmp_path: Path, seed: int
) -> None:
    before = Counter(small.stats.snapshot().faults)
    small.reset_rate_limit_windows()
    small.set_faults(SPEC.format(seed=seed))
    try:
        outcome = fetch(small, tmp_path / "faulty.staging", faulty=True)
    finally:
        small.set_faults("")
    injected = Counter(small.stats.snapshot().faults)
    injected.subtract(before)
    assert outcome == "complete"
    assert injected["5xx"] > 0 and sum(injected.values()) >= 3, injected
    got = content(tmp_path / "faulty.staging")
    assert sorted(got) == sorted(clean)
    for table, rows in clean.items():
        assert got[table] == rows, f"{table} differs from a clean download"
    record_figure("faults", seed=seed, injected={k: n for k, n in injected.items() if n})
