"""The load screen (step 5): the plan of a real staged download as a diff, the drill-downs,
the confirmation, the load itself, reruns, conflicts and targets that cannot be used.

The screen is opened on its own (the App's moves to the download and review steps are
recorded, not followed); a load goes on to the real summary screen. Snapshots use a staged
download of a tiny clinic generated for a fixed day, planned with a fixed "now", so that ids
and dates on screen never change.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from engine.api import LoadProgress, Notice, load, parse_key, plan
from tests.tui.conftest import FIXED_NOW, SNAP_SIZES, settle, wait_until
from tui import plan_view as pv
from tui.app import SwitchApp
from tui.messages import EngineEvent
from tui.screens.load import (
    ConfirmLoadScreen,
    ItemChangesScreen,
    ItemsScreen,
    LoadScreen,
    SkipReasonsScreen,
)
from tui.screens.summary import SummaryScreen

AppFactory = Callable[..., SwitchApp]
TARGET = "sqlite:///clinic.db"

# -- helpers -------------------------------------------------------------------------------------


def record_navigation(app: SwitchApp) -> list[str]:
    """The App's moves to the other steps, recorded instead of followed (the summary and the
    plan screen itself stay real)."""
    calls: list[str] = []

    def recorder(name: str) -> Callable[..., None]:
        def go(*_args: Any, **_kwargs: Any) -> None:
            if name == "show_connect" and len(app.screen_stack) <= 1:
                return  # the App's own start
            calls.append(name)

        return go

    for name in ("show_connect", "show_select", "show_download", "show_review"):
        setattr(app, name, recorder(name))
    return calls


async def open_load_screen(pilot: Any) -> LoadScreen:
    pilot.app.show_plan()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, LoadScreen)
    await wait_until(pilot, lambda: screen.plans_done > 0)
    await settle(pilot)
    return screen


def load_screen(app: SwitchApp) -> LoadScreen:
    for screen in app.screen_stack:
        if isinstance(screen, LoadScreen):
            return screen
    raise AssertionError("no load screen")


def status_text(app: SwitchApp) -> str:
    return str(load_screen(app).query_one("#status", Static).render())


def table_counts(app: SwitchApp) -> dict[str, dict[str, int]]:
    table = load_screen(app).query_one("#kinds", DataTable)
    out: dict[str, dict[str, int]] = {}
    for row_key in table.rows:
        cells = table.get_row(row_key)
        out[str(row_key.value)] = {
            action: int(str(cell).replace(",", ""))
            for action, cell in zip(pv.ACTIONS, cells[1:], strict=True)
        }
    return out


def expected_counts(the_plan: Any) -> dict[str, dict[str, int]]:
    return {kind: {a: c[a] for a in pv.ACTIONS} for kind, c in the_plan.counts().items()}


def footer_keys(app: SwitchApp) -> set[str]:
    return {b.binding.key for b in app.active_bindings.values() if b.enabled and b.binding.show}


def move_cursor_to(app: SwitchApp, kind: str, action: str | None) -> None:
    table = load_screen(app).query_one("#kinds", DataTable)
    row = table.get_row_index(kind)
    column = 0 if action is None else 1 + pv.ACTIONS.index(action)
    table.move_cursor(row=row, column=column)


def edit_staged_patients(staging: Path, count: int, **fields: Any) -> list[str]:
    """Change the first `count` active staged patients as a top-up download would; returns
    their Cliniko ids."""
    conn = sqlite3.connect(staging)
    try:
        rows = conn.execute(
            "SELECT id, raw FROM patients WHERE state = 'active' ORDER BY id LIMIT ?", (count,)
        ).fetchall()
        for source_id, raw in rows:
            data = json.loads(raw)
            data.update(fields)
            conn.execute("UPDATE patients SET raw = ? WHERE id = ?", (json.dumps(data), source_id))
        conn.commit()
    finally:
        conn.close()
    return [r[0] for r in rows]


def edit_clinic_patient(db: Path, source_id: str, **fields: Any) -> int:
    """An edit made in MyNewClinic after the import (straight into its database)."""
    conn = sqlite3.connect(db)
    try:
        (target_id,) = conn.execute(
            "SELECT target_id FROM import_links WHERE kind = 'patient' AND source_id = ?",
            (source_id,),
        ).fetchone()
        for column, value in fields.items():
            conn.execute(f"UPDATE patients SET {column} = ? WHERE id = ?", (value, target_id))
        conn.commit()
    finally:
        conn.close()
    return int(target_id)


def conflict_setup(staging: Path, now: datetime) -> tuple[str, str]:
    """Load, then change two patients in Cliniko and one of them in the clinic too: the next
    plan has one update and one conflict. Returns (conflict id, update id)."""
    load(plan(staging, TARGET, now=now), TARGET)
    first, second = edit_staged_patients(
        staging, 2, email="changed.in.cliniko@example.test", occupation="Carpenter"
    )
    edit_clinic_patient(Path("clinic.db"), first, email="edited.in.clinic@example.test")
    return first, second


# -- planning ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_plan_shows_the_engines_counts_per_kind_and_changes_nothing(
    make_app: AppFactory, staged_file: Path
) -> None:
    now = datetime.now(UTC)
    expected = plan(staged_file, TARGET, now=now)
    app = make_app(now=now)
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is not None
        assert table_counts(app) == expected_counts(expected)
        assert list(table_counts(app)) == list(expected.kinds)
        assert status_text(app).startswith(f"{expected.writes()} changes to load:")
        assert app.state.plan is screen.plan
        assert footer_keys(app) >= {"escape", "r", "p", "l", "d", "s"}
    assert not Path("clinic.db").exists()  # a plan only reads


@pytest.mark.anyio
async def test_enter_on_a_count_lists_those_records_and_their_changes(
    make_app: AppFactory, staged_file: Path
) -> None:
    now = datetime.now(UTC)
    expected = plan(staged_file, TARGET, now=now)
    app = make_app(now=now)
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_load_screen(pilot)
        move_cursor_to(app, "patient", "create")
        await pilot.press("enter")
        await pilot.pause()
        items = app.screen
        assert isinstance(items, ItemsScreen)
        assert (items.kind, items.action) == ("patient", "create")
        creates = [i.source_id for i in expected.items["patient"] if i.action == "create"]
        assert [r.source_id for r in items.rows] == creates
        table = items.query_one("#items", DataTable)
        assert table.row_count == len(creates)
        assert str(table.get_row_at(0)[0]) == creates[0]
        # f steps through the kind's actions, then back to all of them.
        filters = pv.action_filters(expected, "patient")
        assert filters[:2] == [None, "create"]
        for step in [*filters[2:], None]:
            await pilot.press("f")
            assert items.action == step
            wanted = [i.source_id for i in pv.select_items(expected, "patient", step)]
            assert [r.source_id for r in items.rows] == wanted
        assert len(items.rows) == len(expected.items["patient"])
        # Enter on a record: what the load would write.
        await pilot.press("f")
        assert items.action == "create"
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ItemChangesScreen)
        assert dialog.item.source_id == creates[0]
        assert creates[0] in str(dialog.query_one("#changes-title", Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is items
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LoadScreen)


@pytest.mark.anyio
async def test_d_on_a_kind_lists_all_its_records(make_app: AppFactory, staged_file: Path) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is not None
        move_cursor_to(app, "appointment", None)
        await pilot.press("d")
        await pilot.pause()
        items = app.screen
        assert isinstance(items, ItemsScreen)
        assert items.action is None
        assert len(items.rows) == len(screen.plan.items["appointment"])


@pytest.mark.anyio
async def test_skip_reasons_are_grouped_by_code_and_list_their_records(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        the_plan = screen.plan
        assert the_plan is not None
        await pilot.press("s")
        await pilot.pause()
        skips = app.screen
        assert isinstance(skips, SkipReasonsScreen)
        shown = {(r.code, r.kind): r.count for r in skips.rows}
        assert shown == {
            (code, kind): n
            for kind, codes in the_plan.skip_codes().items()
            for c in [codes]
            for code, n in c.items()
        }
        assert skips.query_one("#skips", DataTable).row_count == len(skips.rows)
        first = skips.rows[0]
        await pilot.press("enter")
        await pilot.pause()
        items = app.screen
        assert isinstance(items, ItemsScreen)
        assert (items.kind, items.action, items.code) == (first.kind, "skip", first.code)
        assert len(items.rows) == first.count
        assert all(r.item.skip_code == first.code for r in items.rows)


# -- loading -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_progress_events_drive_the_plan_bar_and_a_bar_per_kind(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is not None
        # While planning: one bar, the kind being planned.
        screen.busy = "plan"
        screen.post_message(
            EngineEvent(LoadProgress(phase="plan", record_kind="patient", done=5, total=20))
        )
        await pilot.pause()
        assert screen.query_one("#plan-progress").display
        assert str(screen.query_one("#progress-label", Label).render()) == "Planning patients 5/20"
        bar = screen.query_one("#progress-bar", ProgressBar)
        assert (bar.progress, bar.total) == (5, 20)
        # While loading: a bar per kind of the plan.
        screen.busy = "load"
        screen._build_load_bars(screen.plan)
        await pilot.pause()
        assert set(screen._load_bars) == set(screen.plan.kinds)
        screen.post_message(
            EngineEvent(LoadProgress(phase="load", record_kind="patient", done=3, total=7))
        )
        screen.post_message(EngineEvent(Notice(level="warning", message="planning again")))
        await pilot.pause()
        patients = screen._load_bars["patient"]
        assert (patients.progress, patients.total) == (3, 7)
        assert status_text(app) == "planning again"
        screen.busy = None


@pytest.mark.anyio
async def test_l_then_y_loads_writes_the_csv_and_reaches_a_verified_summary(
    make_app: AppFactory, staged_file: Path, tiny_sandbox: Any
) -> None:
    app = make_app()
    record_navigation(app)
    app.state.key = parse_key(tiny_sandbox.api_key)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is not None
        writes = screen.plan.writes()
        await pilot.press("l")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmLoadScreen)
        assert dialog.question == f"Load {writes} changes into sqlite:///clinic.db?"
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen))
        await settle(pilot)
        result = app.state.load
        assert result is not None and result.ok
        assert app.state.skipped_csv == Path("staging-skipped.csv")
        csv_lines = Path("staging-skipped.csv").read_text(encoding="utf-8").splitlines()
        assert len(csv_lines) - 1 == app.state.skipped_rows == len(result.plan.skipped())
        verification = str(app.screen.query_one("#verification", Static).render())
        assert verification.startswith("Verification ok")
        assert app.state.key is None  # forgotten on the summary
    assert Path("clinic.db").exists()
    rerun = plan(staged_file, TARGET)
    assert rerun.writes() == 0


@pytest.mark.anyio
async def test_n_cancels_and_nothing_is_written(make_app: AppFactory, staged_file: Path) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_load_screen(pilot)
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmLoadScreen)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, LoadScreen)
        assert app.state.load is None
    assert not Path("clinic.db").exists()


@pytest.mark.anyio
async def test_a_load_that_cannot_open_the_target_says_so_and_asks_for_a_new_plan(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        Path("clinic.db").mkdir()  # the target became unusable after the plan
        await pilot.press("l")
        await pilot.pause()
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.busy is None and screen.plan is None)
        await settle(pilot)
        assert app.screen is screen
        assert status_text(app).startswith("The load stopped: clinic.db is a directory")
        assert app.state.load is None
        assert "l" not in footer_keys(app) and "p" in footer_keys(app)


@pytest.mark.anyio
async def test_a_rerun_is_all_unchanged_and_says_nothing_to_load(
    make_app: AppFactory, staged_file: Path
) -> None:
    now = datetime.now(UTC)
    load(plan(staged_file, TARGET, now=now), TARGET)
    app = make_app(now=now)
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is not None
        counts = table_counts(app)
        assert all(c["create"] == c["update"] == c["conflict"] == 0 for c in counts.values())
        assert sum(c["unchanged"] for c in counts.values()) > 0
        assert status_text(app).startswith("Nothing to load: the clinic already matches")
        await pilot.press("l")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmLoadScreen)
        assert dialog.question.startswith("Nothing to write")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LoadScreen)


@pytest.mark.anyio
async def test_a_clinic_edit_and_a_cliniko_change_show_as_a_conflict_with_the_fields(
    make_app: AppFactory, staged_file: Path
) -> None:
    now = datetime.now(UTC)
    conflict_id, update_id = conflict_setup(staged_file, now)
    app = make_app(now=now)
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_load_screen(pilot)
        patients = table_counts(app)["patient"]
        assert (patients["conflict"], patients["update"]) == (1, 1)
        assert "1 conflict" in status_text(app)
        move_cursor_to(app, "patient", "conflict")
        await pilot.press("enter")
        await pilot.pause()
        items = app.screen
        assert isinstance(items, ItemsScreen)
        assert [(r.source_id, r.action) for r in items.rows] == [(conflict_id, "conflict")]
        detail = str(items.query_one("#item-detail", Static).render())
        assert "the clinic's edit is kept" in detail
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ItemChangesScreen)
        explanation = str(dialog.query_one("#changes-explanation", Static).render())
        assert explanation == pv.CONFLICT_EXPLANATION
        assert pv.change_rows(dialog.item)[0] == (
            "email",
            "edited.in.clinic@example.test",
            "changed.in.cliniko@example.test",
        )
        await pilot.press("escape", "f")  # the items of the kind: now the updates
        await pilot.pause()
        while items.action != "update":
            await pilot.press("f")
        assert [r.source_id for r in items.rows] == [update_id]
        assert items.rows[0].detail == "email, occupation"


# -- targets and staging files that cannot be used -----------------------------------------------


@pytest.mark.anyio
async def test_a_directory_as_target_shows_its_message_and_a_good_one_plans(
    make_app: AppFactory, staged_file: Path
) -> None:
    Path("adir").mkdir()
    app = make_app(target_url="sqlite:///adir")
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is None
        assert "adir is a directory, not a clinic store file" in status_text(app)
        assert "l" not in footer_keys(app)
        await pilot.press("l")
        await pilot.pause()
        assert app.screen is screen
        target = screen.query_one("#target", Input)
        target.value = TARGET
        target.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.plans_done == 2)
        assert screen.plan is not None
        assert app.state.target_url == TARGET
        assert "l" in footer_keys(app)


@pytest.mark.anyio
async def test_a_file_that_is_not_a_clinic_store_shows_its_message(
    make_app: AppFactory, staged_file: Path
) -> None:
    Path("notes.db").write_text("not a database", encoding="utf-8")
    app = make_app(target_url="sqlite:///notes.db")
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is None
        assert "notes.db is not an SQLite database" in status_text(app)
    assert Path("notes.db").read_text(encoding="utf-8") == "not a database"


@pytest.mark.anyio
async def test_a_malformed_url_is_refused_before_planning(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = make_app(target_url="sqlite://clinic.db")
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is None
        assert "three slashes" in status_text(app)


@pytest.mark.anyio
async def test_a_postgresql_url_is_passed_through_and_its_password_never_shown(
    make_app: AppFactory, staged_file: Path
) -> None:
    # Nothing listens on port 1: the engine's message for an unreachable server, fast.
    app = make_app(target_url="postgresql://clinic:s3cret-pw@127.0.0.1:1/clinic")
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is None
        status = status_text(app)
        assert status  # the engine's own message, with the URL redacted
        assert screen.query_one("#target", Input).password  # masked while it holds one
        shown = "\n".join(str(w.render()) for w in screen.query(Static))
        assert "s3cret-pw" not in shown
        assert "s3cret-pw" not in str(app.export_screenshot())


@pytest.mark.anyio
async def test_a_missing_staging_file_shows_what_to_do(make_app: AppFactory) -> None:
    app = make_app()
    record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_load_screen(pilot)
        assert screen.plan is None
        assert "staging.sqlite: no such file" in status_text(app)


@pytest.mark.anyio
async def test_escape_goes_back_to_the_download_and_r_reviews(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = make_app()
    calls = record_navigation(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_load_screen(pilot)
        await pilot.press("r")
        await pilot.press("escape")
        await pilot.pause()
    assert calls == ["show_review", "show_download"]


# -- snapshots -----------------------------------------------------------------------------------


def fixed_app(make_app: AppFactory) -> SwitchApp:
    app = make_app(now=FIXED_NOW)
    record_navigation(app)
    return app


async def open_fixed(pilot: Any, *keys: str) -> None:
    await open_load_screen(pilot)
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    await settle(pilot)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_plan_diff(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=open_fixed)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_plan_with_a_conflict(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    conflict_setup(fixed_staged, FIXED_NOW)
    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=open_fixed)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_drill_down(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    conflict_setup(fixed_staged, FIXED_NOW)

    async def run_before(pilot: Any) -> None:
        await open_load_screen(pilot)
        move_cursor_to(pilot.app, "patient", None)
        await open_fixed_keys(pilot, "enter", "down")

    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_field_changes(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    conflict_setup(fixed_staged, FIXED_NOW)

    async def run_before(pilot: Any) -> None:
        await open_load_screen(pilot)
        move_cursor_to(pilot.app, "patient", "conflict")
        await open_fixed_keys(pilot, "enter", "enter")

    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_skip_reasons(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    async def run_before(pilot: Any) -> None:
        await open_fixed(pilot, "s")

    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_confirm(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    async def run_before(pilot: Any) -> None:
        await open_fixed(pilot, "l")

    assert snap_compare(fixed_app(make_app), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_bad_target(
    snap_compare: Any, make_app: AppFactory, fixed_staged: Path, size: Any
) -> None:
    Path("adir").mkdir()
    app = make_app(now=FIXED_NOW, target_url="sqlite:///adir")
    record_navigation(app)
    assert snap_compare(app, terminal_size=size, run_before=open_fixed)


async def open_fixed_keys(pilot: Any, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    await settle(pilot)
