"""`cliniko-switch download` as a real process against the sandbox (DESIGN.md sections 2, 3, 8).

The JSON document, the private staging file, the top-up, every refusal (exit code, message,
nothing half-written), interruption by SIGINT/SIGTERM and the resume, and that the key leaks
nowhere while the sandbox sees only GETs.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import SandboxHandle, start_sandbox
from staging import open_staging

from .conftest import (
    FAST,
    FAST_RATE,
    Ran,
    Seen,
    assert_key_nowhere,
    assert_one_error_line,
    minimum_requests,
    referral_pages,
    run_cli,
    start_cli,
    topup_floor,
    unfiltered_pages,
    written_files,
)

pytestmark = pytest.mark.integration

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 3
PER_RESOURCE_FIELDS = {"records", "pages", "requests", "retries", "rate_limited", "seconds"}
TOTAL_FIELDS = {"records", "requests", "retries", "rate_limited", "quarantined", "seconds"}


def download(
    handle: SandboxHandle, staging: Path, *extra: str, key: str | None = None, rate: str = FAST
) -> Ran:
    return run_cli(
        "download",
        "--staging",
        str(staging),
        "--api-url",
        handle.base_url,
        "--rate-limit",
        rate,
        *extra,
        key=handle.api_key if key is None else key,
        cwd=staging.parent,
    )


def staged_content(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Every data table: (id, variants, raw) per row, in id order."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' "
                "ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name"
            )
        ]
        return {
            table: con.execute(f'SELECT id, variants, raw FROM "{table}" ORDER BY id').fetchall()
            for table in tables
        }
    finally:
        con.close()


def runs(path: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT mode, outcome FROM _runs ORDER BY run_id").fetchall()
    finally:
        con.close()


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


# --- the JSON document, the file, the cost ------------------------------------------------------


def test_download_json_document_private_file_minimum_cost(
    small_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    staging = tmp_path / "clinic.staging"
    seen = Seen(small_sandbox)
    ran = download(small_sandbox, staging, "--json")

    assert ran.code == EXIT_OK, ran
    doc = json.loads(ran.stdout)  # stdout holds the one JSON document and nothing else
    assert doc["mode"] == "full" and doc["outcome"] == "complete" and doc["error"] is None
    assert Path(doc["staging_path"]) == staging
    assert doc["shard"] == "au1"
    assert "run 1 complete" in ran.stderr  # the human lines went to stderr

    # Per resource: every field, and the records the sandbox holds in all its lists.
    want: Counter[str] = Counter()
    for (resource, _variant), n in small_sandbox.store.counts().items():
        want[resource] += n
    got = {entry["resource"]: entry for entry in doc["resources"]}
    assert set(got) == set(want)
    for name, entry in got.items():
        assert set(entry) >= PER_RESOURCE_FIELDS, name
        assert entry["records"] == want[name], name
        assert entry["requests"] == entry["pages"] >= 1, name  # no retry, no 429
        assert entry["retries"] == entry["rate_limited"] == 0, name
        assert entry["seconds"] >= 0 and entry["errors"] == [], name

    totals = doc["totals"]
    assert set(totals) >= TOTAL_FIELDS
    assert totals["records"] == sum(want.values())
    assert totals["rate_limited"] == totals["retries"] == totals["quarantined"] == 0
    # The minimum: pages (at least one per list) + per-practitioner lists + /user + /settings,
    # all of it seen by the server, and nothing but GET.
    assert totals["requests"] == minimum_requests(small_sandbox) == seen.requests
    assert sum(entry["requests"] for entry in got.values()) + 2 == totals["requests"]
    assert seen.by_method == {"GET": seen.requests}
    assert seen.rate_limited == 0

    # Health records: the file and its SQLite side files are private.
    for path in written_files(tmp_path):
        assert private(path), f"{path.name} is not 0600"
    assert runs(staging) == [("full", "complete")]
    assert_key_nowhere(small_sandbox.api_key, tmp_path, ran)


def test_second_run_is_a_topup_whose_cost_does_not_follow_size(
    tiny: SandboxHandle, small_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    cost: dict[str, tuple[int, int]] = {}
    for name, handle in (("tiny", tiny), ("small", small_sandbox)):
        staging = tmp_path / f"{name}.staging"
        first = download(handle, staging, "--json")
        assert first.code == EXIT_OK, first
        seen = Seen(handle)
        second = download(handle, staging, "--json")
        assert second.code == EXIT_OK, second
        doc = json.loads(second.stdout)
        assert doc["mode"] == "topup" and doc["outcome"] == "complete"
        assert doc["totals"]["requests"] == seen.requests
        assert seen.by_method == {"GET": seen.requests}
        # Nothing changed: one page per filtered list, services whole, and referral sources
        # whole or per changed patient, whichever is fewer.
        floor = topup_floor(handle)
        assert floor - referral_pages(handle) <= seen.requests <= floor
        assert runs(staging) == [("full", "complete"), ("topup", "complete")]
        assert_key_nowhere(handle.api_key, tmp_path, first, second)
        cost[name] = (json.loads(first.stdout)["totals"]["requests"], seen.requests)

    (tiny_full, tiny_topup), (small_full, small_topup) = cost["tiny"], cost["small"]
    assert small_full > 2 * tiny_full  # the clinics differ in size ...
    # ... their top-ups do not: at most the extra pages of the lists Cliniko offers no
    # updated_at filter for (and referral sources only when enough patients changed).
    assert 0 <= small_topup - tiny_topup <= unfiltered_pages(small_sandbox) - unfiltered_pages(tiny)
    assert small_topup < small_full / 2


# --- refusals -----------------------------------------------------------------------------------


PREFLIGHT: list[Any] = [
    pytest.param([], None, "set CLINIKO_API_KEY", id="no-key-no-terminal"),
    pytest.param([], "not a key", "spaces", id="malformed-key"),
    pytest.param([], "short", "too short", id="truncated-key"),
    pytest.param(["--region", "uk1"], "KEY", "au1", id="region-uk1-with-au1-key"),
    pytest.param(["--only", "patients,bogus"], "KEY", "'bogus'", id="unknown-only-part"),
    pytest.param(["--rate-limit", "fast"], "KEY", "--rate-limit", id="rate-not-n-per-s"),
    pytest.param(["--rate-limit", "0/60"], "KEY", "--rate-limit", id="rate-zero"),
]


@pytest.mark.parametrize(("args", "key", "message"), PREFLIGHT)
def test_bad_input_is_refused_before_anything_is_written_or_sent(
    tiny: SandboxHandle, tmp_path: Path, args: list[str], key: str | None, message: str
) -> None:
    staging = tmp_path / "clinic.staging"
    seen = Seen(tiny)
    ran = run_cli(
        "download",
        "--staging",
        str(staging),
        "--api-url",
        tiny.base_url,
        "--rate-limit",
        FAST,
        *args,
        key=tiny.api_key if key == "KEY" else key,
        cwd=tmp_path,
    )
    assert ran.code == EXIT_BAD_INPUT, ran
    assert message in ran.stderr, ran
    assert_one_error_line(ran)
    assert ran.stdout == ""
    assert list(written_files(tmp_path)) == []
    assert seen.requests == 0
    if key == "KEY":
        assert_key_nowhere(tiny.api_key, tmp_path, ran)


def test_plain_http_to_another_host_is_refused(tiny: SandboxHandle, tmp_path: Path) -> None:
    ran = run_cli(
        "download",
        "--staging",
        str(tmp_path / "x.staging"),
        "--api-url",
        "http://example.com/v1",
        key=tiny.api_key,
        cwd=tmp_path,
    )
    assert ran.code == EXIT_BAD_INPUT, ran
    assert "example.com" in ran.stderr and "http" in ran.stderr, ran
    assert_one_error_line(ran)
    assert list(written_files(tmp_path)) == []
    assert_key_nowhere(tiny.api_key, tmp_path, ran)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refused_key(handle: SandboxHandle, kind: str) -> str:
    if kind == "unknown":
        return "Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1"
    if kind == "revoked":
        key = handle.keys.add_key("administrator")
        handle.keys.revoke(key)
        return key
    return handle.keys.add_key("restricted")


REFUSED = [
    pytest.param("unknown", "401", id="unknown-key-401"),
    pytest.param("revoked", "401", id="revoked-key-401"),
    pytest.param("restricted", "403", id="restricted-key-403"),
]


@pytest.mark.parametrize(("kind", "status"), REFUSED)
def test_a_key_cliniko_refuses_exits_2_with_the_reason(
    tiny: SandboxHandle, tmp_path: Path, kind: str, status: str
) -> None:
    key = _refused_key(tiny, kind)
    seen = Seen(tiny)
    ran = download(tiny, tmp_path / "clinic.staging", key=key)
    assert ran.code == EXIT_BAD_INPUT, ran
    assert f"({status})" in ran.stderr and "error: " in ran.stderr, ran
    assert ("API key" in ran.stderr) if status == "401" else ("administrator" in ran.stderr)
    assert ran.stdout == ""
    assert seen.by_method == {"GET": seen.requests}
    assert seen.requests <= 3  # /user (and /settings, /settings/public for 403), no retries
    assert_key_nowhere(key, tmp_path, ran)


@pytest.mark.parametrize(("kind", "status"), REFUSED)
def test_a_refused_key_leaves_no_staging_file(
    tiny: SandboxHandle, tmp_path: Path, kind: str, status: str
) -> None:
    ran = download(tiny, tmp_path / "clinic.staging", key=_refused_key(tiny, kind))
    assert ran.code == EXIT_BAD_INPUT, ran
    assert list(written_files(tmp_path)) == []


def test_a_staging_path_that_is_a_text_file_is_left_unchanged(
    tiny: SandboxHandle, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a staging file\n" * 50)
    before = notes.read_bytes()
    seen = Seen(tiny)
    ran = download(tiny, notes)
    assert ran.code == EXIT_BAD_INPUT, ran
    assert "not a SQLite database" in ran.stderr and "error: " in ran.stderr, ran
    assert notes.read_bytes() == before
    assert list(written_files(tmp_path)) == [notes]  # no -wal, -shm or lock left beside it
    assert seen.requests == 0
    assert_key_nowhere(tiny.api_key, tmp_path, ran)


def test_a_staging_file_another_process_writes_is_refused(
    tiny: SandboxHandle, tmp_path: Path
) -> None:
    staging = tmp_path / "clinic.staging"
    with open_staging(staging, create=True):  # this test process is the other writer
        seen = Seen(tiny)
        ran = download(tiny, staging)
        assert ran.code == EXIT_BAD_INPUT, ran
        assert "another cliniko-switch" in ran.stderr and "open for writing" in ran.stderr, ran
        assert seen.requests == 0
    assert runs(staging) == []  # the refused command wrote nothing into it
    assert_key_nowhere(tiny.api_key, tmp_path, ran)


def test_engine_refusals_print_one_line_without_a_traceback(
    tiny: SandboxHandle, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a staging file\n")
    failures = [
        download(tiny, tmp_path / "a.staging", key=_refused_key(tiny, "unknown")),
        download(tiny, tmp_path / "b.staging", key=_refused_key(tiny, "restricted")),
        download(tiny, notes),
    ]
    for ran in failures:
        assert ran.code == EXIT_BAD_INPUT, ran
        assert_one_error_line(ran)


@pytest.mark.hard  # the client retries a refused connection 8 times with backoff: ~20-60 s
def test_an_unreachable_api_says_what_to_do(tiny: SandboxHandle, tmp_path: Path) -> None:
    ran = run_cli(
        "download",
        "--staging",
        str(tmp_path / "clinic.staging"),
        "--api-url",
        f"http://127.0.0.1:{closed_port()}/v1",  # nothing listens: connection refused
        key=tiny.api_key,
        cwd=tmp_path,
        timeout=180,
    )
    # A network failure is transient: exit 3, "run the same command again".
    assert ran.code == EXIT_INTERRUPTED, ran
    assert "could not be reached" in ran.stderr and "127.0.0.1" in ran.stderr, ran
    assert "again" in ran.stderr
    assert_key_nowhere(tiny.api_key, tmp_path, ran)


# --- interrupted and resumed --------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow(small_sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    """The session's small clinic on a server of its own, so its latency can be raised."""
    handle = start_sandbox(small_sandbox.store, rate_limit=FAST_RATE)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def reference(
    slow: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[tuple[str, str, str]]]:
    """What an uninterrupted download from `slow` stages (raw JSON carries its port)."""
    staging = tmp_path_factory.mktemp("reference") / "clinic.staging"
    ran = download(slow, staging)
    assert ran.code == EXIT_OK, ran
    return staged_content(staging)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_download_exits_3_and_resumes_to_the_same_content(
    slow: SandboxHandle,
    reference: dict[str, list[tuple[str, str, str]]],
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    staging = tmp_path / "clinic.staging"
    seen = Seen(slow)
    slow.set_latency(200)
    slow.set_rate_limit(50, 1.0)
    try:
        running = start_cli(
            "download",
            "--staging",
            str(staging),
            "--api-url",
            slow.base_url,
            "--rate-limit",
            "50/1",
            key=slow.api_key,
            cwd=tmp_path,
        )
        running.wait_for_line("  done  ")  # some lists are committed, most are not
        running.proc.send_signal(signum)
        stopped = running.finish()
    finally:
        slow.set_latency(0)
        slow.set_rate_limit(*FAST_RATE)

    assert stopped.code == EXIT_INTERRUPTED, stopped
    assert "interrupted" in stopped.stderr and "run the same command again" in stopped.stderr
    assert "Traceback" not in stopped.stderr, stopped
    assert runs(staging) == [("full", "interrupted")]
    partial = staged_content(staging)
    assert 0 < sum(map(len, partial.values())) < sum(map(len, reference.values()))

    resumed = download(slow, staging, "--json")
    assert resumed.code == EXIT_OK, resumed
    doc = json.loads(resumed.stdout)
    assert doc["mode"] == "resume" and doc["outcome"] == "complete"
    # It continued rather than started again: the two runs together cost about one download.
    assert doc["totals"]["requests"] < minimum_requests(slow)
    assert runs(staging) == [("full", "interrupted"), ("resume", "complete")]
    assert staged_content(staging) == reference

    assert seen.by_method == {"GET": seen.requests}
    for path in written_files(tmp_path):
        assert private(path), f"{path.name} is not 0600"
    assert_key_nowhere(slow.api_key, tmp_path, stopped, resumed)
