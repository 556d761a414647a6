"""SIGKILL the download at random moments, rerun, and get a clean run's staging file (DESIGN.md 8).

The download runs as a real `cliniko-switch download` process against a sandbox served from
this test process. A seeded `random.Random` picks the kill points as fractions of the whole
download, one in each equal slice of it, in order; each run is killed with SIGKILL once the
sandbox has answered the requests it needs to reach its point from where the download stands
(the distinct pages answered so far: counted in requests, not wall-clock time, so a slow
machine moves the moment but not the meaning; a point already passed is met a few requests
into the run, the moment just after a resume). Every point lands: 12 points, 12 kills.

After every kill the file must hold only whole rows: integrity ok, no duplicate ids, no row
without its raw JSON, every row one an uninterrupted download stages. At the end it must
hold exactly what an uninterrupted download stages: every table row by row (id, raw JSON,
variants), nothing quarantined, and the last run complete.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import record_figure

from sandbox.runner import SandboxHandle, running_sandbox

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("cliniko-switch")
ARGS = ("--rate-limit", "200/1")
TIMEOUT_S = 120.0

Content = dict[str, list[tuple[str, str, str]]]


def _env(key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLINIKO_API_KEY"}
    env["CLINIKO_API_KEY"] = key
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(handle: SandboxHandle, staging: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(CLI), "download", "--staging", str(staging), "--api-url", handle.base_url, *ARGS],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(handle.api_key),
        cwd=staging.parent,
    )


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, err.decode(errors="replace")


def run_killed_at(handle: SandboxHandle, staging: Path, requests: int) -> bool:
    """Start a download; SIGKILL it once the sandbox has seen `requests` more requests.

    True if it was killed; False if it finished first (then it must have succeeded)."""
    handle.reset_rate_limit_windows()  # a killed run's budget is not the next run's
    before = handle.stats.total
    proc = _start(handle, staging)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while proc.poll() is None:
            if handle.stats.total - before >= requests:
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"download still running after {TIMEOUT_S} s")
            time.sleep(0.001)
        code, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"exit {code}\n{err}"
    return False


def run_to_completion(handle: SandboxHandle, staging: Path) -> None:
    handle.reset_rate_limit_windows()
    code, err = _finish(_start(handle, staging))
    assert code == 0, f"exit {code}\n{err}"
    assert "Traceback" not in err, err


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def data_tables(con: sqlite3.Connection) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' "
            "ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name"
        )
    ]


def staged_content(path: Path) -> Content:
    """Every data table: (id, raw JSON, variants) per row, in id order."""
    con = _connect(path)
    try:
        return {
            table: con.execute(f'SELECT id, raw, variants FROM "{table}" ORDER BY id').fetchall()
            for table in data_tables(con)
        }
    finally:
        con.close()


def assert_sound(path: Path) -> None:
    """Integrity ok, no duplicate ids, nothing quarantined, the last run complete."""
    con = _connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for table in data_tables(con):
            total, distinct = con.execute(
                f'SELECT count(*), count(DISTINCT id) FROM "{table}"'
            ).fetchone()
            assert total == distinct, f"duplicate ids in {table}"
            nulls = con.execute(f'SELECT count(*) FROM "{table}" WHERE raw IS NULL').fetchone()
            assert nulls == (0,), f"rows without raw JSON in {table}"
        assert con.execute("SELECT count(*) FROM _quarantine").fetchone() == (0,)
        last = con.execute("SELECT outcome FROM _runs ORDER BY run_id DESC LIMIT 1").fetchone()
        assert last == ("complete",)
    finally:
        con.close()


def assert_same_content(got: Content, want: Content) -> None:
    assert sorted(got) == sorted(want)
    for table, rows in want.items():
        have = got[table]
        assert len(have) == len(rows), f"{table}: {len(have)} rows staged, want {len(rows)}"
        for mine, theirs in zip(have, rows, strict=True):
            assert mine == theirs, f"{table} row {theirs[0]} differs"


@pytest.fixture(scope="module")
def slowish() -> Iterator[SandboxHandle]:
    """A small clinic (~5,000 records, ~93 requests) on a server with 30 ms per request."""
    with running_sandbox("small", 1, rate_limit=(200, 1.0), latency_ms=30) as handle:
        yield handle


@pytest.fixture(scope="module")
def full_requests(slowish: SandboxHandle, reference: Content) -> int:
    return int(slowish.stats.total)  # what the reference (the first download) cost


@pytest.fixture(scope="module")
def reference(slowish: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> Content:
    """What an uninterrupted download stages (the raw JSON carries the sandbox's port)."""
    staging = tmp_path_factory.mktemp("reference") / "clinic.staging"
    slowish.reset_stats()
    run_to_completion(slowish, staging)
    assert_sound(staging)
    return staged_content(staging)


def kill_points(seed: int, n: int) -> list[float]:
    """`n` fractions of a download, one drawn in each of `n` equal slices of 0 .. 0.95, in
    order: early, middle and late moments are all hit."""
    rng = random.Random(seed)
    return [rng.uniform(0.95 * i / n, 0.95 * (i + 1) / n) for i in range(n)]


def fetched(handle: SandboxHandle, since: int) -> int:
    """Distinct requests answered 200 since the log held `since` entries: how far the
    download has got, in requests (a resumed run asks again only for what was in flight)."""
    return len({e.path for e in handle.stats.log[since:] if e.status == 200})


def assert_partial(path: Path, reference: Content) -> None:
    """A killed download's file: sound, and every row in it one a clean download stages."""
    con = _connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for table in data_tables(con):
            total, distinct = con.execute(
                f'SELECT count(*), count(DISTINCT id) FROM "{table}"'
            ).fetchone()
            assert total == distinct, f"duplicate ids in {table}"
            want = {row[0]: row[1] for row in reference.get(table, [])}
            for rid, raw in con.execute(f'SELECT id, raw FROM "{table}"'):
                assert raw is not None, f"{table} row {rid} has no raw JSON"
                assert want.get(rid) == raw, f"{table} row {rid} is not a clean download's"
    finally:
        con.close()


def kill_and_rerun(
    handle: SandboxHandle,
    staging: Path,
    points: list[float],
    reference: Content,
    full_requests: int,
) -> int:
    since = len(handle.stats.log)
    killed = 0
    for point in points:
        done = fetched(handle, since) / full_requests
        # /user and /settings open every run; then the pages from where the file stands.
        ahead = 2 + max(1, round((point - done) * full_requests))
        if run_killed_at(handle, staging, ahead):
            killed += 1
            if staging.exists():
                assert_partial(staging, reference)
    run_to_completion(handle, staging)
    assert_sound(staging)
    assert_same_content(staged_content(staging), reference)
    return killed


@pytest.mark.parametrize("seed", [1])
def test_sigkilled_download_reruns_to_a_clean_runs_content(
    slowish: SandboxHandle,
    reference: Content,
    full_requests: int,
    tmp_path: Path,
    seed: int,
) -> None:
    points = kill_points(seed, 3)
    killed = kill_and_rerun(slowish, tmp_path / "clinic.staging", points, reference, full_requests)
    record_figure("download_kill", seed=seed, points=len(points), killed=killed)
    assert killed == len(points)


@pytest.mark.hard
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_sigkilled_download_many_times_reruns_to_a_clean_runs_content(
    slowish: SandboxHandle,
    reference: Content,
    full_requests: int,
    tmp_path: Path,
    seed: int,
) -> None:
    points = kill_points(seed, 12)
    killed = kill_and_rerun(slowish, tmp_path / "clinic.staging", points, reference, full_requests)
    record_figure("download_kill", seed=seed, points=len(points), killed=killed)
    assert killed >= 10, killed
