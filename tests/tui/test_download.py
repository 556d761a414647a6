"""The download screen (step 3): real downloads of the sandbox through the App's worker,
cancel and resume, a key revoked mid-run, and snapshots of fixed event scripts.

The screen is opened on its own: the connect, review and plan screens belong to other steps,
so the App's navigation to them is recorded rather than followed.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Label, Static

from engine.api import (
    ALL_PARTS,
    AnyEvent,
    DownloadOptions,
    ListProgress,
    Notice,
    RequestStats,
    RunFinished,
    RunStarted,
    download,
    list_variants,
    parse_key,
    resources_for,
)
from sandbox.runner import SandboxHandle
from tests.tui.conftest import SNAP_SIZES, wait_until
from tui.app import SwitchApp
from tui.screens.download import DownloadScreen, StageRow

AppFactory = Callable[..., SwitchApp]


# -- helpers -------------------------------------------------------------------------------------


def record_navigation(app: SwitchApp) -> list[str]:
    """Replace the App's moves to other steps with a record of them (the download screen
    is tested on its own; the App starts on its blank default screen)."""
    calls: list[str] = []

    def recorder(name: str) -> Callable[..., None]:
        def go(*_args: Any, **_kwargs: Any) -> None:
            if name == "show_connect" and len(app.screen_stack) <= 1:
                return  # the App's own start, before the download screen is open
            calls.append(name)

        return go

    for name in ("show_connect", "show_review", "show_plan"):
        setattr(app, name, recorder(name))
    return calls


def sandbox_app(make_app: AppFactory, handle: SandboxHandle, **config: Any) -> SwitchApp:
    config.setdefault("rate_limit", (100_000, 60.0))
    app = make_app(api_url=handle.base_url, **config)
    app.state.key = parse_key(handle.api_key)
    app.state.base_url = handle.base_url
    return app


def screen_of(app: SwitchApp) -> DownloadScreen:
    screen = app.screen
    assert isinstance(screen, DownloadScreen)
    return screen


def status_text(app: SwitchApp) -> str:
    return str(screen_of(app).query_one("#status", Static).render())


def hint_text(app: SwitchApp) -> str:
    return str(screen_of(app).query_one("#next-hint", Static).render())


def budget_text(app: SwitchApp) -> str:
    return str(screen_of(app).query_one("#budget", Static).render())


def footer_keys(app: SwitchApp) -> set[str]:
    return {b.binding.key for b in app.active_bindings.values() if b.enabled and b.binding.show}


def row_text(app: SwitchApp, stage: str) -> str:
    return screen_of(app).query_one(f"#stage-{stage}", StageRow).text


def table_counts(path: Path) -> dict[str, int]:
    """Rows per staged table (the data tables, not the bookkeeping ones)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith(("_", "sqlite_"))
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def runs(path: Path) -> list[str]:
    from engine.api import open_for_review

    with open_for_review(path) as db:
        return [r.outcome for r in db.runs()]


async def direct_download(handle: SandboxHandle, path: Path) -> None:
    opts = DownloadOptions(staging_path=path, base_url=handle.base_url, rate_limit=(100_000, 60.0))
    result = await download(parse_key(handle.api_key), opts)
    assert result.outcome == "complete"


# -- real downloads through the App --------------------------------------------------------------


@pytest.mark.anyio
async def test_a_download_of_the_tiny_clinic_reaches_complete(
    make_app: AppFactory, tiny_sandbox: SandboxHandle, in_tmp: Path, tiny_staged_master: Path
) -> None:
    app = sandbox_app(make_app, tiny_sandbox)
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        app.show_download()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen_of(app).phase() == "complete")
        await pilot.pause()
        finished = app.progress.finished
        assert finished is not None and finished.outcome == "complete"
        status = status_text(app)
        assert status.startswith("Download complete: ")
        assert f"{finished.records:,} records" in status
        assert f"{finished.requests:,} requests" in status
        assert "0 quarantined" in status
        assert "r reviews" in hint_text(app)
        # Every stage of the selection shows done, and the overall bar is full.
        for stage in ("account", "practitioners", "patients", "appointments", "invoices"):
            assert row_text(app, stage).startswith("done"), stage
        assert row_text(app, "overall").startswith(f"{app.progress.records_done:,} records · ")
        assert "n" in footer_keys(app) and "c" not in footer_keys(app)
        # Bindings: review keeps the screen under it; next goes to the plan.
        await pilot.press("r")
        await pilot.press("n")
        assert calls == ["show_review", "show_plan"]
    staged = in_tmp / "staging.sqlite"
    assert staged.exists()
    assert runs(staged)[-1] == "complete"
    # The same rows as a direct download of the same clinic.
    assert table_counts(staged) == table_counts(tiny_staged_master)
    assert sum(table_counts(staged).values()) > 0


@pytest.mark.anyio
async def test_cancel_stops_resumably_and_resume_completes_the_same_data(
    make_app: AppFactory,
    make_sandbox: Callable[..., SandboxHandle],
    in_tmp: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    handle = make_sandbox(size="small", latency_ms=50)
    # 30 requests a second: the small clinic's ~90 requests take about three seconds.
    app = sandbox_app(make_app, handle, rate_limit=(30, 1.0))
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        app.show_download()
        await wait_until(pilot, lambda: app.progress.pages_done >= 8)
        assert screen_of(app).phase() == "running"
        assert "c" in footer_keys(app) and "s" not in footer_keys(app)
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen_of(app).phase() == "interrupted")
        await pilot.pause()
        assert status_text(app) == "Stopped: every committed page is kept; press s to resume."
        assert {"s", "b", "r"} <= footer_keys(app) and "n" not in footer_keys(app)
        staged = in_tmp / "staging.sqlite"
        assert runs(staged)[-1] == "interrupted"
        partial = sum(table_counts(staged).values())
        assert partial > 0

        # n does nothing until the download is complete.
        await pilot.press("n")
        assert calls == []

        await pilot.press("s")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen_of(app).phase() == "complete")
        await pilot.pause()
        assert app.progress.mode == "resume"
        assert "resumed download · staging.sqlite" in budget_text(app)
        assert status_text(app).startswith("Download complete: ")
    assert runs(staged)[-2:] == ["interrupted", "complete"]
    reference = tmp_path_factory.mktemp("direct") / "direct.sqlite"
    await direct_download(handle, reference)
    assert table_counts(staged) == table_counts(reference)
    assert sum(table_counts(staged).values()) > partial


@pytest.mark.anyio
async def test_review_while_downloading_and_come_back_to_the_result(
    make_app: AppFactory, make_sandbox: Callable[..., SandboxHandle]
) -> None:
    """r pushes the (real) review screen on top; the download goes on in the App's worker,
    and the download screen underneath learns how it ended."""
    handle = make_sandbox(size="small", latency_ms=50)
    app = sandbox_app(make_app, handle, rate_limit=(30, 1.0))
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        app.show_download()
        await wait_until(pilot, lambda: app.progress.pages_done >= 5)
        download_screen = screen_of(app)
        await pilot.press("r")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"
        assert app.download_running
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.progress.outcome is not None)
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewScreen"
        app.pop_screen()
        await pilot.pause()
        assert app.screen is download_screen
        assert download_screen.phase() == "complete"
        assert status_text(app).startswith("Download complete: ")


@pytest.mark.anyio
async def test_a_key_revoked_mid_run_shows_the_message_and_offers_resume_or_back(
    make_app: AppFactory, make_sandbox: Callable[..., SandboxHandle], in_tmp: Path
) -> None:
    handle = make_sandbox(size="small", latency_ms=50)
    app = sandbox_app(make_app, handle, rate_limit=(30, 1.0))
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        app.show_download()
        await wait_until(pilot, lambda: app.progress.pages_done >= 5)
        handle.keys.revoke(handle.api_key)
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen_of(app).phase() == "failed")
        await pilot.pause()
        status = status_text(app)
        assert status.startswith("Download failed: Cliniko refused the API key (401)")
        assert handle.api_key not in status
        assert "b to go back" in hint_text(app)
        assert {"s", "b"} <= footer_keys(app) and "n" not in footer_keys(app)
        await pilot.press("b")
        assert calls == ["show_connect"]
    # Every page committed before the key was revoked stays for a later run, and the run is
    # recorded as failed (a revoked key will not come back by itself), not interrupted.
    assert runs(in_tmp / "staging.sqlite")[-1] == "failed"
    assert sum(table_counts(in_tmp / "staging.sqlite").values()) > 0


@pytest.mark.anyio
async def test_a_network_that_is_gone_shows_the_network_message(
    make_app: AppFactory,
    make_sandbox: Callable[..., SandboxHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client retries a refused connection with backoff; keep the backoff short here.
    from engine.cliniko import client, retry

    monkeypatch.setattr(
        client, "RetryPolicy", functools.partial(retry.RetryPolicy, base_s=0.01, cap_s=0.02)
    )
    handle = make_sandbox(size="tiny")
    base_url = handle.base_url
    handle.stop()
    app = make_app(api_url=base_url, rate_limit=(100_000, 60.0))
    app.state.key = parse_key(handle.api_key)
    app.state.base_url = base_url
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        app.show_download()
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: screen_of(app).phase() == "failed")
        await pilot.pause()
        status = status_text(app)
        assert status.startswith("Download failed: ")
        assert "network" in status.lower() or "reach" in status.lower()
        # Nothing was staged, so there is nothing to review.
        assert "r" not in footer_keys(app)
        label = screen_of(app).query_one("#stage-account .stage-label", Label)
        assert str(label.render()) == "Account"
        assert row_text(app, "account") == "not reached"


# -- event scripts (no worker): what the screen makes of them ------------------------------------


def _lists() -> list[tuple[str, str]]:
    return [(r.name, v) for r, v in list_variants(resources_for(ALL_PARTS))]


def script_in_progress() -> list[AnyEvent]:
    """A run part way: clinic set-up done, patients and appointments under way, notes not
    yet sized, invoices not started; the server has rate-limited twice."""
    lists = _lists()
    events: list[AnyEvent] = [
        RunStarted(run_id=2, mode="full", staging_path="staging.sqlite", lists=len(lists))
    ]
    for index, (resource, variant) in enumerate(lists):
        if resource in ("invoices", "invoice_items", "billable_items", "taxes"):
            continue
        if resource == "patient_attachments":
            continue
        big = resource in ("patients", "individual_appointments", "attendees", "contacts")
        expected: int | None = (40 if variant == "active" else 3) if big else 1
        done = (index * 7) % (expected or 1) if big else 1
        if resource == "treatment_notes":
            expected, done = None, 4
        records = done * 100 if big or resource == "treatment_notes" else 3 + index % 5
        events.append(
            ListProgress(
                resource=resource,
                variant=variant,
                pages_done=done,
                pages_expected=expected,
                records_done=records,
                records_expected=None if expected is None else expected * 100,
                done=expected is not None and done >= expected,
            )
        )
    events += [
        RequestStats(
            requests=1180,
            retries=3,
            rate_limited=1,
            rate_per_minute=188.0,
            limit_per_minute=200.0,
            elapsed_s=372.0,
            waiting_s=40.0,
            pages_done=180,
            pages_expected=420,
            eta_s=80.0,
        ),
        Notice(
            level="warning",
            message="rate limited by the server; every request waits 3.0 s",
        ),
        Notice(
            level="warning",
            message="Cliniko refused GET /v1/patient_attachments (403): the key's user lacks "
            "permission; use an administrator's key.",
            resource="patient_attachments",
        ),
        RequestStats(
            requests=1234,
            retries=4,
            rate_limited=2,
            rate_per_minute=196.0,
            limit_per_minute=200.0,
            elapsed_s=373.0,
            waiting_s=43.2,
            pages_done=186,
            pages_expected=420,
            eta_s=754.0,
        ),
    ]
    return events


def script_complete() -> list[AnyEvent]:
    lists = _lists()
    events: list[AnyEvent] = [
        RunStarted(run_id=1, mode="full", staging_path="staging.sqlite", lists=len(lists))
    ]
    records = 0
    for index, (resource, variant) in enumerate(lists):
        pages = 1 + index % 3
        count = pages * 80 - index
        records += count
        events.append(
            ListProgress(
                resource=resource,
                variant=variant,
                pages_done=pages,
                pages_expected=pages,
                records_done=count,
                records_expected=count,
                done=True,
            )
        )
    events.append(
        RunFinished(
            run_id=1,
            outcome="complete",
            requests=97,
            retries=1,
            rate_limited=0,
            records=records,
            quarantined=2,
            seconds=31.4,
        )
    )
    return events


def script_stopped(outcome: str, error: str | None = None) -> list[AnyEvent]:
    events = [e for e in script_in_progress() if not isinstance(e, Notice)]
    events.append(
        RunFinished(
            run_id=2,
            outcome=outcome,  # type: ignore[arg-type]
            requests=1240,
            retries=4,
            rate_limited=2,
            records=6160,
            quarantined=0,
            seconds=375.2,
            error=error,
        )
    )
    return events


REVOKED = (
    "Cliniko refused the API key (401): key unknown or revoked: create a new API key in "
    "Cliniko (My Info → Manage API keys)."
)


def scripted_app(
    make_app: AppFactory, events: list[AnyEvent], outcome: str | None, error: str | None = None
) -> SwitchApp:
    app = make_app()
    record_navigation(app)
    for event in events:
        app.progress.apply(event)
    if outcome is not None:
        app.progress.finish(outcome)
    app.state.download_error = error
    return app


async def open_screen(pilot: Any) -> None:
    pilot.app.show_download()
    await pilot.pause()
    await pilot.pause()


@pytest.mark.anyio
async def test_scripted_progress_shows_stages_budget_and_notices(make_app: AppFactory) -> None:
    app = scripted_app(make_app, script_in_progress(), None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        screen = screen_of(app)
        assert screen.phase() == "running"
        assert status_text(app) == "Full download into staging.sqlite"
        assert row_text(app, "account") == "done · key checked, settings"
        assert row_text(app, "practitioners").startswith("done · ")
        assert "pages" in row_text(app, "patients") and "/" in row_text(app, "patients")
        # Notes are not sized yet: a count of pages without a total.
        assert row_text(app, "treatment_notes") == "807 records · 10/12+ pages"
        assert row_text(app, "invoices") == "waiting"
        budget = budget_text(app)
        assert "196/200 per min" in budget
        assert "waiting for the rate limit: 3.2 s" in budget
        assert "1,234 · retries 4 · rate-limited (429) 2" in budget
        assert "elapsed 06:13 · ETA 12:34" in budget
        assert "Run" not in budget  # the status line says it while the run goes on
        notices = str(screen.query_one("#notices-text", Static).render())
        assert notices.splitlines()[0] == "! rate limited by the server; every request waits 3.0 s"
        assert "patient_attachments: Cliniko refused GET" in notices
        assert str(screen.query_one("#notices-title", Label).render()) == "Notices (2)"
        assert "c" in footer_keys(app)
        # No staging file in this test: nothing to review yet.
        assert "r" not in footer_keys(app)
        assert "n" not in footer_keys(app) and "s" not in footer_keys(app)

        # Events keep arriving: the screen catches up on its next tick, not per event.
        before = row_text(app, "invoices")
        for n in range(200):
            event = ListProgress(
                resource="invoices",
                variant="active",
                pages_done=n,
                pages_expected=400,
                records_done=n * 100,
                records_expected=40_000,
            )
            app.progress.apply(event)
            screen.progress_changed(event)
        assert row_text(app, "invoices") == before
        await pilot.pause(0.25)
        assert row_text(app, "invoices") == "19,900 records · 199/405+ pages"
        # Seconds pass: the ETA counts down and elapsed moves on between RequestStats.
        app.config.clock.advance(10)  # type: ignore[attr-defined]
        await pilot.pause(0.25)
        assert "elapsed 06:23 · ETA 12:24" in budget_text(app)


@pytest.mark.anyio
async def test_a_stage_that_completes_redraws_at_once(make_app: AppFactory) -> None:
    app = scripted_app(make_app, script_in_progress()[:1], None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        screen = screen_of(app)
        assert row_text(app, "attachments") == "waiting"
        event = ListProgress(
            resource="patient_attachments",
            variant="active",
            pages_done=2,
            pages_expected=2,
            records_done=150,
            records_expected=150,
            done=True,
        )
        app.progress.apply(event)
        screen.progress_changed(event)
        assert row_text(app, "attachments") == "done · 150 records"


@pytest.mark.anyio
async def test_coming_back_to_a_finished_run_shows_its_state(make_app: AppFactory) -> None:
    app = scripted_app(make_app, script_complete(), "complete")
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        status = status_text(app)
        assert status.startswith("Download complete: ")
        assert "97 requests, 2 quarantined." in status
        assert "review the anomalies" in hint_text(app)
        assert "elapsed 00:31" in budget_text(app)
        assert "ETA" not in budget_text(app)
        await pilot.press("enter")
        assert calls == ["show_plan"]


@pytest.mark.anyio
async def test_failed_lists_without_an_error_say_so(make_app: AppFactory) -> None:
    from engine.api import DownloadResult
    from engine.extract import ListResult

    app = scripted_app(make_app, script_stopped("failed"), "failed")
    app.state.download = DownloadResult(
        run_id=2,
        mode="full",
        outcome="failed",
        staging_path="staging.sqlite",
        shard="au1",
        account_name=None,
        lists=[ListResult("patient_attachments", "active", error="403")],
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        assert status_text(app) == (
            "Download finished, but 1 list could not be read (see the notices)."
        )


@pytest.mark.anyio
async def test_resume_without_a_key_says_what_to_do(make_app: AppFactory) -> None:
    app = scripted_app(make_app, script_stopped("interrupted"), "interrupted")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(pilot)
        await pilot.press("s")
        assert "no longer held" in status_text(app)
        assert not app.download_running


# -- snapshots -----------------------------------------------------------------------------------
# `staged_file` puts a staging file in the working directory, so the review key is offered.


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_in_progress(
    snap_compare: Any, make_app: AppFactory, staged_file: Path, size: Any
) -> None:
    app = scripted_app(make_app, script_in_progress(), None)
    assert snap_compare(app, terminal_size=size, run_before=open_screen)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_complete(
    snap_compare: Any, make_app: AppFactory, staged_file: Path, size: Any
) -> None:
    app = scripted_app(make_app, script_complete(), "complete")
    assert snap_compare(app, terminal_size=size, run_before=open_screen)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_stopped(
    snap_compare: Any, make_app: AppFactory, staged_file: Path, size: Any
) -> None:
    app = scripted_app(make_app, script_stopped("interrupted"), "interrupted")
    assert snap_compare(app, terminal_size=size, run_before=open_screen)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_failed(
    snap_compare: Any, make_app: AppFactory, staged_file: Path, size: Any
) -> None:
    app = scripted_app(make_app, script_stopped("failed", REVOKED), "failed", REVOKED)
    assert snap_compare(app, terminal_size=size, run_before=open_screen)
