"""The summary screen (step 6) and the spot checks it lists (engine.spot_check).

A load is made with the engine directly (the load screen's own tests drive it through the
UI); the summary is then opened on its own, as the load screen opens it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static

from engine.api import (
    DownloadResult,
    LoadResult,
    load,
    parse_key,
    plan,
    spot_checks,
    write_skip_report,
)
from tests.tui.conftest import FIXED_NOW, SNAP_SIZES, settle, wait_until
from tests.tui.test_load_screen import (
    conflict_setup,
    record_navigation,
)
from tui import plan_view as pv
from tui.app import SwitchApp
from tui.screens.load import LoadScreen
from tui.screens.summary import SummaryScreen

AppFactory = Callable[..., SwitchApp]
TARGET = "sqlite:///clinic.db"


def loaded(staging: Path, now: datetime) -> LoadResult:
    result = load(plan(staging, TARGET, now=now), TARGET)
    assert result.ok
    return result


def summary_app(
    make_app: AppFactory, result: LoadResult, now: datetime | None, **state: Any
) -> SwitchApp:
    app = make_app(now=now)
    record_navigation(app)
    app.state.load = result
    app.state.plan = result.plan
    csv = pv.skipped_csv_path(Path(result.plan.staging_path))
    app.state.skipped_csv = csv
    app.state.skipped_rows = write_skip_report(result, csv)
    for name, value in state.items():
        setattr(app.state, name, value)
    return app


async def open_summary(pilot: Any) -> SummaryScreen:
    pilot.app.show_summary()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, SummaryScreen)
    if pilot.app.state.load is not None:
        await wait_until(pilot, lambda: screen.spot_checks_done)
    await settle(pilot)
    return screen


def plain(app: SwitchApp, selector: str, width: int = 200) -> str:
    """The text of a Static, whatever it holds (text or a Rich table)."""
    return render_text(app.screen.query_one(selector, Static).content, width)


def render_text(renderable: Any, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


# -- spot checks -----------------------------------------------------------------------------------


def test_spot_checks_list_patients_with_a_balance_and_next_weeks_appointments(
    fixed_staged: Path,
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    checks = spot_checks(fixed_staged, TARGET, FIXED_NOW, limit=5, source=result.plan.source)
    assert checks.time_zone == "Australia/Melbourne"
    assert checks.now == FIXED_NOW
    assert checks.until - checks.now == timedelta(days=7)
    assert checks.patients_with_balance_total == len(checks.patients_with_balance) > 0
    assert all(p.balance != 0 for p in checks.patients_with_balance)
    balances = [abs(p.balance) for p in checks.patients_with_balance]
    assert balances == sorted(balances, reverse=True)
    assert checks.next_week_total == len(checks.next_week_appointments) >= 1
    for appointment in checks.next_week_appointments:
        assert FIXED_NOW <= appointment.starts_at < FIXED_NOW + timedelta(days=7)
        assert str(appointment.starts_at.tzinfo) == "Australia/Melbourne"
        assert appointment.status != "cancelled"
        assert appointment.practitioner
    # The same without the source given: worked out from the staging file as the plan does.
    again = spot_checks(fixed_staged, TARGET, FIXED_NOW)
    assert again.patients_with_balance == checks.patients_with_balance
    assert again.next_week_appointments == checks.next_week_appointments
    # Names are for the screen: never in a repr (a log line).
    assert all(p.name for p in checks.patients_with_balance)
    for p in checks.patients_with_balance:
        assert p.name is not None and p.name not in repr(p)
    # A limit keeps the first few; the totals still count them all.
    few = spot_checks(fixed_staged, TARGET, FIXED_NOW, limit=1)
    assert len(few.patients_with_balance) == 1
    assert few.patients_with_balance_total == checks.patients_with_balance_total
    # A week with nothing booked.
    later = spot_checks(fixed_staged, TARGET, FIXED_NOW + timedelta(days=3650))
    assert (later.next_week_total, later.next_week_appointments) == (0, [])


def test_spot_checks_of_an_empty_clinic_find_nothing(fixed_staged: Path) -> None:
    checks = spot_checks(fixed_staged, TARGET, FIXED_NOW)
    assert checks.patients_with_balance == checks.next_week_appointments == []
    assert not Path("clinic.db").exists()  # read-only: a missing clinic is not created


# -- the screen ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_summary_shows_the_outcome_verification_and_spot_checks(
    make_app: AppFactory, fixed_staged: Path, tiny_sandbox: Any
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    app = summary_app(make_app, result, FIXED_NOW)
    app.state.key = parse_key(tiny_sandbox.api_key)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        assert app.state.key is None  # forgotten here
        outcome = str(app.screen.query_one("#outcome", Static).render())
        created = sum(w["created"] for w in result.written.values())
        assert f"{created} created" in outcome and "verification ok" in outcome
        per_kind = plain(app, "#per-kind")
        for row in pv.outcome_rows(result):
            assert row.label in per_kind
        total_line = next(line for line in per_kind.splitlines() if line.startswith("Total"))
        assert total_line.split()[1:] == [
            f"{created}",
            "0",
            "0",
            "0",
            f"{len(result.plan.skipped())}",
        ]
        skipped = plain(app, "#skipped")
        assert "staging-skipped.csv" in skipped
        for code, n in pv.skip_totals(result.plan):
            assert f"{code} {n}" in skipped
        verification = plain(app, "#verification")
        assert verification.startswith("Verification ok")
        assert "Messages queued: 0; messaging off, AI off." in verification
        spots = plain(app, "#spot-checks")
        checks = spot_checks(fixed_staged, TARGET, FIXED_NOW)
        for p in checks.patients_with_balance:
            assert p.cliniko_id in spots and pv.format_money(p.balance) in spots
        for a in checks.next_week_appointments:
            assert pv.format_day_time(a.starts_at) in spots
        assert "Australia/Melbourne time" in spots
        assert not app.screen.query_one("#download").display  # nothing downloaded this session


@pytest.mark.anyio
async def test_differences_are_listed_when_the_verification_fails(
    make_app: AppFactory, fixed_staged: Path
) -> None:
    from engine.verify import Difference

    result = loaded(fixed_staged, FIXED_NOW)
    result.verification.differences.append(
        Difference("balance", "patient", "77", 3, "75.00", "0.00", "differs")
    )
    app = summary_app(make_app, result, FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        assert "verification found 1 difference" in plain(app, "#outcome")
        verification = plain(app, "#verification")
        assert "balance patient Cliniko 77 clinic 3: expected 75.00, found 0.00" in verification


@pytest.mark.anyio
async def test_a_rerun_summary_counts_the_conflict(
    make_app: AppFactory, fixed_staged: Path
) -> None:
    conflict_setup(fixed_staged, FIXED_NOW)
    result = loaded(fixed_staged, FIXED_NOW)
    app = summary_app(make_app, result, FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        outcome = plain(app, "#outcome")
        assert "0 created, 1 updated" in outcome and "1 conflict" in outcome


@pytest.mark.anyio
async def test_the_download_and_notices_are_shown_when_there_are_some(
    make_app: AppFactory, fixed_staged: Path
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    app = summary_app(
        make_app,
        result,
        FIXED_NOW,
        download=fixed_download(),
        notices=["The skipped-records CSV could not be written to x.csv: Permission denied"],
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        assert plain(app, "#download").startswith("Download run 1 (full, complete): 212 requests")
        assert "Permission denied" in plain(app, "#notices")


@pytest.mark.anyio
async def test_a_clinic_that_cannot_be_read_is_said_so(
    make_app: AppFactory, fixed_staged: Path
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    app = summary_app(make_app, result, FIXED_NOW)
    Path("clinic.db").unlink()
    Path("clinic.db").mkdir()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        assert "could not be read: clinic.db is a directory" in plain(app, "#spot-checks")


@pytest.mark.anyio
async def test_without_a_load_the_summary_says_so(make_app: AppFactory) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        assert plain(app, "#outcome").startswith("Nothing was loaded in this session.")


@pytest.mark.anyio
async def test_keys_plan_again_review_and_quit(make_app: AppFactory, fixed_staged: Path) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    app = summary_app(make_app, result, FIXED_NOW)
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_summary(pilot)
        await pilot.press("r")
        assert calls == ["show_review"]
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LoadScreen)
        await wait_until(pilot, lambda: screen.plans_done > 0)
        assert screen.plan is not None and pv.nothing_to_load(screen.plan)
        app.show_summary()
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


# -- snapshots -------------------------------------------------------------------------------------


def fixed_download() -> DownloadResult:
    return DownloadResult(
        run_id=1,
        mode="full",
        outcome="complete",
        staging_path="staging.sqlite",
        shard="au1",
        account_name=None,
        requests=212,
        records=1093,
        seconds=84.0,
    )


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_summary(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    result.seconds = 1.5
    app = summary_app(make_app, result, FIXED_NOW, download=fixed_download())
    assert snap_compare(app, terminal_size=size, run_before=open_summary)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_summary_scrolled_to_the_spot_checks(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    result.seconds = 1.5
    app = summary_app(make_app, result, FIXED_NOW, download=fixed_download())

    async def run_before(pilot: Any) -> None:
        await open_summary(pilot)
        await pilot.press("end")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_status_only_balances_are_marked(fixed_staged: Path) -> None:
    result = loaded(fixed_staged, FIXED_NOW)
    marked = {s.patient_target_id for s in result.verification.status_only_open}
    checks = spot_checks(fixed_staged, TARGET, FIXED_NOW)
    from tui.screens.summary import _spot_check_view

    text = render_text(_spot_check_view(checks, marked), 120)
    for p in checks.patients_with_balance:
        line = next(line for line in text.splitlines() if p.cliniko_id in line)
        assert (f"{pv.format_money(p.balance)} *" in line) == (p.clinic_id in marked)
    shown = {p.clinic_id for p in checks.patients_with_balance}
    assert marked & shown  # the fixed clinic has one: the mark is exercised
    assert "* rests on an open invoice's status alone" in text
    assert Decimal(0) not in {p.balance for p in checks.patients_with_balance}
