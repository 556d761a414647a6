"""The download against the sandbox over real sockets: complete, minimal, resumable, exact.

Every test compares the staging file with the sandbox's own data, record for record, so a
skipped row, a duplicate, a truncated raw JSON or a stale version fails it.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cliniko import RetryPolicy, parse_key
from engine.events import AnyEvent, ListProgress, RunFinished
from engine.extract import DownloadOptions, DownloadResult, download, expected_requests
from engine.resources import RESOURCES, list_variants
from sandbox.runner import SandboxHandle, running_sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = (200, 1.0)  # the 200-per-window rule on a clock sixty times faster than Cliniko's
NESTED = ("practitioner_reference_numbers", "active")


def minimum_requests(handle: SandboxHandle) -> int:
    """Pages of every list (at least one each) + one per practitioner + /user + /settings."""
    counts = dict(handle.store.counts())
    counts.pop(NESTED, None)
    practitioners = sum(n for (r, _v), n in counts.items() if r == "practitioners")
    return expected_requests(counts) + practitioners


def options(handle: SandboxHandle, path: Path, **kw: Any) -> DownloadOptions:
    kw.setdefault("rate_limit", FAST)
    return DownloadOptions(staging_path=path, base_url=handle.base_url, **kw)


async def run(
    handle: SandboxHandle, path: Path, sink: Callable[[AnyEvent], None] | None = None, **kw: Any
) -> DownloadResult:
    return await download(
        parse_key(handle.api_key), options(handle, path, **kw), sink or (lambda _e: None)
    )


def staged(path: Path) -> dict[str, dict[str, tuple[dict[str, Any], frozenset[str]]]]:
    """Every staged row: resource -> id -> (raw JSON, variants)."""
    con = sqlite3.connect(path)
    try:
        out: dict[str, dict[str, tuple[dict[str, Any], frozenset[str]]]] = {}
        for resource in RESOURCES:
            if resource.single:
                continue
            rows = con.execute(f'SELECT id, raw, variants FROM "{resource.name}"').fetchall()
            out[resource.name] = {
                str(i): (json.loads(raw), frozenset(v.split(","))) for i, raw, v in rows
            }
        return out
    finally:
        con.close()


def truth(handle: SandboxHandle) -> dict[str, dict[str, tuple[dict[str, Any], frozenset[str]]]]:
    """The sandbox's data as the API shows it: resource -> id -> (fullest record, lists)."""
    store = handle.store
    out: dict[str, dict[str, tuple[dict[str, Any], frozenset[str]]]] = {}
    for resource, variant in list_variants(RESOURCES):
        table = out.setdefault(resource.name, {})
        for record in store.raw_records(resource.name, variant, handle.base_url):
            key = _key(resource.name, record)
            old, lists = table.get(key, ({}, frozenset()))
            best = record if len(record) >= len(old) else old
            table[key] = (best, lists | {variant})
    refs: dict[str, tuple[dict[str, Any], frozenset[str]]] = {}
    for pid in store.ids("practitioners", "active") | store.ids("practitioners", "inactive"):
        page = 1
        while True:
            rows, total = store.practitioner_reference_numbers(pid, page, 100, handle.base_url)
            for row in rows:
                refs[str(row["id"])] = (row, frozenset({"active"}))
            if page * 100 >= total:
                break
            page += 1
    out["practitioner_reference_numbers"] = refs
    return out


def _key(resource: str, record: dict[str, Any]) -> str:
    if resource == "referral_sources":
        return record["links"]["self"].rstrip("/").split("/")[-2]
    if resource == "services":
        business = record["business"]["links"]["self"].rsplit("/", 1)[-1]
        kind = record["appointment_type"]["links"]["self"].rsplit("/", 1)[-1]
        return f"{business}:{kind}"
    if "id" not in record:  # /patients/deleted rows: deleted_at and a self link only
        return record["links"]["self"].rsplit("/", 1)[-1]
    return str(record["id"])


def assert_same(path: Path, handle: SandboxHandle) -> None:
    got, want = staged(path), truth(handle)
    for resource, rows in want.items():
        have = got[resource]
        assert set(have) == set(rows), f"{resource}: ids differ"
        for key, (record, lists) in rows.items():
            raw, variants = have[key]
            assert raw == record, f"{resource}/{key}: raw JSON differs"
            assert lists <= variants, f"{resource}/{key}: seen in {lists}, staged {variants}"


@pytest.fixture(scope="module")
def small() -> Iterator[SandboxHandle]:
    with running_sandbox(size="small", seed=7, rate_limit=FAST) as handle:
        yield handle


@pytest.fixture
def fresh_small() -> Iterator[SandboxHandle]:
    """A small clinic of the test's own, for tests that change its data."""
    with running_sandbox(size="small", seed=11, rate_limit=FAST) as handle:
        yield handle


async def test_full_download_equals_the_sandbox_at_the_minimum_cost(
    small: SandboxHandle, tmp_path: Path
) -> None:
    small.reset_stats()
    path = tmp_path / "clinic.sqlite"
    result = await run(small, path)
    assert result.outcome == "complete" and result.mode == "full"
    assert_same(path, small)
    # Every request is a page somebody needed: no more than the minimum + 1%.
    minimum = minimum_requests(small)
    assert minimum <= small.stats.total <= math.ceil(minimum * 1.01)
    assert result.requests == small.stats.total
    assert small.stats.rate_limited == 0
    assert dict(small.stats.by_method) == {"GET": small.stats.total}
    assert path.stat().st_mode & 0o777 == 0o600
    # The key is in no file the run wrote.
    secret = small.api_key.encode()
    for file in tmp_path.iterdir():
        assert secret not in file.read_bytes(), file.name
        assert secret.split(b"-")[0] not in file.read_bytes(), file.name


async def test_faults_do_not_change_what_is_staged(small: SandboxHandle, tmp_path: Path) -> None:
    clean = tmp_path / "clean.sqlite"
    await run(small, clean)
    small.set_faults("5xx=0.05,reset=0.01,slow=0.02,slow_ms=1500,burst429=0.01,seed=5")
    try:
        faulty = tmp_path / "faulty.sqlite"
        retry = RetryPolicy(base_s=0.01, cap_s=0.05, max_attempts=12)
        result = await run(small, faulty, timeout=0.5, retry=retry)
    finally:
        small.set_faults("")
    assert result.outcome == "complete"
    assert result.retries > 0, "the faults were not injected"
    assert staged(faulty) == staged(clean)


async def test_interrupted_download_resumes_to_the_same_content(
    small: SandboxHandle, tmp_path: Path
) -> None:
    clean = tmp_path / "clean.sqlite"
    await run(small, clean)
    path = tmp_path / "resumed.sqlite"
    total_pages = 0
    for stop_after in (3, 11, 29):
        pages = 0
        with anyio.CancelScope() as scope:

            def sink(
                event: AnyEvent, scope: anyio.CancelScope = scope, limit: int = stop_after
            ) -> None:
                nonlocal pages
                if isinstance(event, ListProgress):
                    pages += 1
                    if pages >= limit:
                        scope.cancel()

            await run(small, path, sink=sink)
        total_pages += pages
        con = sqlite3.connect(path)
        outcome = con.execute("SELECT outcome FROM _runs ORDER BY run_id DESC").fetchone()[0]
        con.close()
        assert outcome == "interrupted"
    small.reset_stats()
    result = await run(small, path)
    assert result.mode == "resume" and result.outcome == "complete"
    # The resumed run did not start over: it fetched far fewer pages than a full run.
    assert small.stats.total < minimum_requests(small)
    assert staged(path) == staged(clean)
    # The next run is a top-up, not another resume.
    assert (await run(small, path)).mode == "topup"


async def test_changes_during_a_download_are_swept_up_by_a_topup(
    fresh_small: SandboxHandle, tmp_path: Path
) -> None:
    store = fresh_small.store
    patients = sorted(store.ids("patients", "active"), key=int)
    appointments = sorted(store.ids("individual_appointments", "active"), key=int)
    notes = sorted(store.ids("treatment_notes", "active"), key=int)
    invoices = sorted(store.ids("invoices", "active"), key=int)
    changes: list[Callable[[], object]] = [
        lambda: store.create("patients"),
        lambda: store.update("patients", patients[3], first_name="Renamed"),
        lambda: store.archive("patients", patients[10]),
        lambda: store.delete("patients", patients[-5]),
        lambda: store.cancel("individual_appointments", appointments[7], reason=40),
        lambda: store.delete("individual_appointments", appointments[-9]),
        lambda: store.create("individual_appointments"),
        lambda: store.delete("treatment_notes", notes[2]),
        lambda: store.create("treatment_notes"),
        lambda: store.update("invoices", invoices[4], status=20),
        lambda: store.delete("invoices", invoices[-3]),
        lambda: store.unarchive("patients", patients[10]),
    ]
    seen = 0

    def sink(event: AnyEvent) -> None:
        nonlocal seen
        if isinstance(event, ListProgress) and changes:
            seen += 1
            if seen % 4 == 0:
                changes.pop(0)()

    path = tmp_path / "clinic.sqlite"
    first = await run(fresh_small, path, sink=sink)
    assert first.outcome == "complete"
    while changes:  # whatever the walk finished before
        changes.pop(0)()
    topup = await run(fresh_small, path)
    assert topup.mode == "topup" and topup.outcome == "complete"
    assert_same(path, fresh_small)


async def test_topup_cost_follows_the_changes_not_the_clinic(tmp_path: Path) -> None:
    costs = {}
    for size in ("tiny", "small"):
        with running_sandbox(size=size, seed=3, rate_limit=FAST) as handle:
            path = tmp_path / f"{size}.sqlite"
            await run(handle, path)
            store = handle.store
            patients = sorted(store.ids("patients", "active"), key=int)
            appointments = sorted(store.ids("individual_appointments", "active"), key=int)
            for i in range(25):
                store.update("patients", patients[i % len(patients)], notes=f"change {i}")
                store.cancel("individual_appointments", appointments[i % len(appointments)])
            handle.reset_stats()
            result = await run(handle, path)
            assert result.mode == "topup" and result.outcome == "complete"
            costs[size] = handle.stats.total
            assert_same(path, handle)
    # One request per list (plus the few pages the changes fill): the same for both sizes,
    # though the small clinic is fifty times the tiny one.
    assert costs["small"] <= costs["tiny"] + 3, costs
    assert costs["small"] < 60


async def test_run_history_and_events(small: SandboxHandle, tmp_path: Path) -> None:
    events: list[AnyEvent] = []
    path = tmp_path / "clinic.sqlite"
    result = await run(small, path, sink=events.append)
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert len(finished) == 1 and finished[0].outcome == "complete"
    assert finished[0].requests == result.requests
    done = {(e.resource, e.variant) for e in events if isinstance(e, ListProgress) and e.done}
    assert {(r.name, v) for r, v in list_variants(RESOURCES)} <= done
    con = sqlite3.connect(path)
    runs = con.execute("SELECT mode, outcome, requests FROM _runs").fetchall()
    meta = dict(con.execute("SELECT key, value FROM _meta").fetchall())
    con.close()
    assert runs == [("full", "complete", result.requests)]
    assert meta["shard"] == "au1" and meta["account_name"]
    assert "pending_run" not in meta and meta["last_complete_server_start"]


async def test_topup_asks_for_referral_sources_per_changed_patient(tmp_path: Path) -> None:
    """Referral sources have no updated_at filter: a top-up with few changed patients asks for
    theirs one by one instead of re-reading the whole list; with many, the list is cheaper."""
    with running_sandbox(size="small", seed=1, rate_limit=FAST) as handle:
        await _referral_topups(handle, tmp_path)


async def _referral_topups(fresh_small: SandboxHandle, tmp_path: Path) -> None:
    store = fresh_small.store
    assert len(store.ids("referral_sources", "active")) > 100, "need a list of several pages"
    path = tmp_path / "clinic.sqlite"
    await run(fresh_small, path)
    patients = sorted(store.ids("patients", "active"), key=int)
    store.update("patients", patients[5], notes="moved house")
    fresh_small.reset_stats()
    assert (await run(fresh_small, path)).outcome == "complete"
    paths = [entry[3].split("?")[0] for entry in fresh_small.stats.log]
    assert f"/v1/patients/{patients[5]}/referral_source" in paths
    assert "/v1/referral_sources" not in paths
    assert_same(path, fresh_small)

    for pid in patients[:40]:
        store.update("patients", pid, notes="newsletter")
    fresh_small.reset_stats()
    assert (await run(fresh_small, path)).outcome == "complete"
    paths = [entry[3].split("?")[0] for entry in fresh_small.stats.log]
    assert "/v1/referral_sources" in paths
    assert not any(p.endswith("/referral_source") for p in paths)
    assert_same(path, fresh_small)
