"""The review screen (step 4, and `cliniko-switch review FILE`): resources and counts, records
a page at a time, search, the record detail (fields and raw JSON), anomalies and quarantine,
bad files, and a file that a download is still writing.

Pilot tests browse the session's tiny staged download (`staged_file`) and compare what the
screen shows with what the staging file says. Snapshot tests use a download of the same tiny
clinic generated for a fixed day (the session's clinic is generated for today, so its ids and
names change from day to day), with the run times fixed, the sandbox's random port taken out
of the records' links, and rows in id order (parallel lists land in any order).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static, TextArea

from engine.api import (
    StagingDB,
    StagingError,
    open_for_review,
    parse_key,
    resources_for,
)
from engine.resources import RESOURCES
from sandbox.runner import SandboxHandle
from tests.tui.conftest import SNAP_SIZES, stage_fixed_clinic
from tui.app import SwitchApp
from tui.screens import review as review_module
from tui.screens.record import RecordScreen, link_target, readable_fields
from tui.screens.review import (
    AnomaliesScreen,
    QuarantineScreen,
    ReviewScreen,
    columns_for,
    label_of,
)

AppFactory = Callable[..., SwitchApp]

SNAP_ANCHOR = date(2026, 3, 2)
"""The day the snapshot clinic is generated for (its ids and dates derive from it)."""
FIXED_START = "2026-03-02T09:00:00Z"
FIXED_FINISH = "2026-03-02T09:01:30Z"
FIXED_API = "https://api.au1.cliniko.com"


# -- helpers ------------------------------------------------------------------------------------


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers (the queries run in threads) finish and the screen repaint."""
    for _ in range(4):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def review_of(app: SwitchApp) -> ReviewScreen:
    for screen in reversed(app.screen_stack):
        if isinstance(screen, ReviewScreen):
            return screen
    raise AssertionError(f"no review screen in {app.screen_stack}")


def table_keys(table: DataTable[Any]) -> list[str]:
    return [str(key.value) for key in table.rows]


def page_info(screen: ReviewScreen) -> str:
    return str(screen.query_one("#review-page", Static).render())


def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def review_app(make_app: AppFactory, path: Path | str) -> SwitchApp:
    return make_app(review_only=Path(path))


async def highlight(pilot: Pilot[Any], screen: ReviewScreen, resource: str) -> None:
    options = screen.query_one("#review-resources", OptionList)
    options.focus()
    ids = [o.id for o in options.options]
    options.highlighted = ids.index(resource)
    await settle(pilot)


async def open_row(pilot: Pilot[Any], screen: ReviewScreen, record_id: str) -> None:
    """Put the table's cursor on `record_id` and press enter."""
    table = screen.query_one("#review-table", DataTable)
    table.focus()
    table.move_cursor(row=table_keys(table).index(record_id), animate=False)
    await pilot.pause()
    await pilot.press("enter")
    await settle(pilot)


def make_anomalies(path: Path) -> None:
    """Delete the patient of the first appointment, and quarantine one invoice (test copy
    only): the appointment, and whatever else belongs to that patient, now link to a record
    that is not staged."""
    conn = sqlite3.connect(path)
    try:
        (patient,) = conn.execute(
            "SELECT patient_id FROM individual_appointments WHERE patient_id IS NOT NULL"
            " ORDER BY id LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM patients WHERE id = ?", [patient])
        conn.execute(
            "INSERT INTO _quarantine (resource, variant, record_id, reason, raw, digest,"
            " run_id, at) VALUES ('invoices', 'active', '4242', 'record has no id',"
            ' \'{"number": 4242, "total_amount": "12.5"}\', \'d1\', 1, ?)',
            [FIXED_FINISH],
        )
        conn.commit()
    finally:
        conn.close()


def plain(renderable: Any) -> str:
    """A Rich renderable as plain text (wide, so nothing wraps)."""
    console = Console(width=400, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in capture.get().splitlines())


def fresh(path: Path, fn: Callable[[StagingDB], Any]) -> Any:
    with open_for_review(path) as db:
        return fn(db)


# -- the snapshot clinic -----------------------------------------------------------------------


def _normalise(path: Path) -> None:
    """Fixed run times, links without the sandbox's port, rows in id order."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.create_function(
            "fixed_api",
            1,
            lambda raw: re.sub(r"http://127\.0\.0\.1:\d+", FIXED_API, raw),
            deterministic=True,
        )
        conn.execute("BEGIN")
        conn.execute(
            "UPDATE _runs SET started_at = ?, finished_at = ?", [FIXED_START, FIXED_FINISH]
        )
        for resource in RESOURCES:
            table = f'"{resource.name}"'
            cols = [r[1] for r in conn.execute(f"PRAGMA table_xinfo({table})") if r[6] == 0]
            names = ", ".join(f'"{c}"' for c in cols)
            conn.execute(f"CREATE TEMP TABLE copied AS SELECT {names} FROM {table}")
            conn.execute(f"DELETE FROM {table}")
            conn.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM copied ORDER BY length(id), id"
            )
            conn.execute("DROP TABLE copied")
            conn.execute(f"UPDATE {table} SET raw = fixed_api(raw)")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def snap_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("review-snap") / "tiny.sqlite"
    stage_fixed_clinic(path, SNAP_ANCHOR)
    _normalise(path)
    return path


@pytest.fixture
def snap_file(snap_master: Path, in_tmp: Path) -> Path:
    dest = in_tmp / "staging.sqlite"
    shutil.copyfile(snap_master, dest)
    dest.chmod(0o600)
    return Path("staging.sqlite")


# -- pure parts ---------------------------------------------------------------------------------


def test_links_become_ids_and_nested_objects_flatten_one_level() -> None:
    data: dict[str, object] = {
        "id": 7,
        "first_name": "Ada",
        "archived": False,
        "patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/123"}},
        "appointments": {"links": {"self": "https://x/v1/patients/7/appointments?page=1"}},
        "account": {"name": "Clinic", "admin": {"email": "a@example.test"}},
        "tags": ["a", "b"],
        "links": {"self": "https://x/v1/things/7"},
    }
    fields = dict(readable_fields(data))
    assert fields["patient"] == "123"
    assert "appointments" not in fields  # a sub-list, not a record
    assert "links" not in fields
    assert fields["account.name"] == "Clinic"
    assert json.loads(fields["account.admin"]) == {"email": "a@example.test"}
    assert fields["archived"] == "no"
    assert fields["tags"] == "a, b"
    assert link_target({"links": {"self": "https://x/v1/businesses/55"}}) == ("record", "55")
    assert link_target({"name": "x"}) is None


def test_every_resource_has_a_short_label_and_columns() -> None:
    for resource in RESOURCES:
        assert len(label_of(resource.name)) <= 18, resource.name
        assert isinstance(columns_for(resource.name), tuple)
    assert [name for name, _ in columns_for("invoices")] == ["number", "status", "total"]
    assert columns_for("not_a_resource") == review_module.FALLBACK_COLUMNS


# -- browsing -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resource_list_shows_the_files_counts(
    make_app: AppFactory, staged_file: Path
) -> None:
    counts = fresh(staged_file, lambda db: db.table_counts())
    runs = fresh(staged_file, lambda db: db.runs())
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        options = screen.query_one("#review-resources", OptionList)
        listed = [o.id for o in options.options]
        selected = {r.name for run in runs for r in resources_for(run.selection)}
        assert listed == [name for name, c in counts.items() if c.total or name in selected]
        assert {name for name, c in counts.items() if c.total} <= set(listed)
        for option in options.options:
            assert option.id is not None
            text = str(option.prompt)
            assert label_of(option.id) in text
            assert text.split()[-1] == f"{counts[option.id].total:,}", text
        total = sum(c.total for c in counts.values())
        summary = static_text(screen, "#review-summary")
        assert "staging.sqlite" in summary
        assert f"{total:,} records" in summary
        assert "Last run: full, complete" in summary


@pytest.mark.anyio
async def test_selecting_a_resource_shows_its_rows(make_app: AppFactory, staged_file: Path) -> None:
    patients = fresh(staged_file, lambda db: [r.id for r in db.rows("patients", limit=1000)])
    users = fresh(staged_file, lambda db: [r.id for r in db.rows("users", limit=1000)])
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        table = screen.query_one("#review-table", DataTable)
        await highlight(pilot, screen, "users")
        assert table_keys(table) == users
        await highlight(pilot, screen, "patients")
        assert table_keys(table) == patients
        assert len(patients) > 1
        assert page_info(screen) == f"Patients: rows 1-{len(patients)} of {len(patients)}"
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[:3] == ["id", "name", "born"]
        # tab moves between the panes: resources, search, records.
        assert app.focused is screen.query_one("#review-resources", OptionList)
        await pilot.press("tab")
        assert app.focused is screen.query_one("#review-search", Input)
        await pilot.press("tab")
        assert app.focused is table
        await pilot.press("slash")
        assert app.focused is screen.query_one("#review-search", Input)
        await pilot.press("escape")  # leaves the search, not the screen
        assert app.focused is table
        assert app.screen is screen


@pytest.mark.anyio
async def test_search_narrows_the_table_to_matching_rows(
    make_app: AppFactory, staged_file: Path
) -> None:
    rows = fresh(staged_file, lambda db: db.rows("patients", limit=1000))
    # A last name that only some patients share.
    names = [r.data().get("last_name") for r in rows]
    last = next(n for n in names if isinstance(n, str) and n and names.count(n) < len(rows))
    expected = [r.id for r in rows if last.casefold() in r.raw.casefold()]
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        table = screen.query_one("#review-table", DataTable)
        assert len(table_keys(table)) == len(rows)
        await pilot.press("slash")
        assert app.focused is screen.query_one("#review-search", Input)
        await pilot.press(*last, "enter")
        await settle(pilot)
        keys = table_keys(table)
        assert keys == expected
        assert 0 < len(keys) < len(rows)
        assert f"of {len(expected)} matching {last}" in page_info(screen)
        assert app.focused is table
        # Clearing the search shows every row again.
        await pilot.press("slash", *["backspace"] * len(last), "enter")
        await settle(pilot)
        assert len(table_keys(table)) == len(rows)


@pytest.mark.anyio
async def test_a_search_that_matches_nothing_says_so(
    make_app: AppFactory, staged_file: Path
) -> None:
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        await pilot.press("slash", *"zzqx-nothing", "enter")
        await settle(pilot)
        assert table_keys(screen.query_one("#review-table", DataTable)) == []
        assert page_info(screen) == "Patients: no rows match zzqx-nothing"


@pytest.mark.anyio
async def test_enter_opens_the_record_and_j_shows_its_raw_json(
    make_app: AppFactory, staged_file: Path
) -> None:
    rows = fresh(staged_file, lambda db: db.rows("patients", limit=1000))
    target = rows[len(rows) // 2]
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        await open_row(pilot, screen, target.id)
        detail = app.screen
        assert isinstance(detail, RecordScreen)
        assert target.id in detail.record_title
        rendered = plain(detail.query_one("#record-fields-body", Static).content)
        assert re.search(rf"^id +{target.id}$", rendered, re.MULTILINE)  # the staged id line
        first = target.data().get("first_name")
        if isinstance(first, str) and first.isascii():
            assert re.search(rf"^first_name +{re.escape(first)}$", rendered, re.MULTILINE)
        assert not detail.showing_raw
        await pilot.press("j")
        await pilot.pause()
        assert detail.showing_raw
        raw = detail.query_one("#record-raw", TextArea)
        assert app.focused is raw
        assert json.loads(raw.text) == json.loads(target.raw)
        await pilot.press("j")
        await pilot.pause()
        assert not detail.showing_raw
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


@pytest.mark.anyio
async def test_the_record_fields_show_links_as_ids(make_app: AppFactory, staged_file: Path) -> None:
    appointment = fresh(staged_file, lambda db: db.rows("individual_appointments", limit=1)[0])
    patient_id = appointment.refs["patient"]
    assert patient_id
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        await highlight(pilot, screen, "individual_appointments")
        table = screen.query_one("#review-table", DataTable)
        cells = [str(c) for c in table.get_row(appointment.id)]
        assert patient_id in cells  # the patient column
        await open_row(pilot, screen, appointment.id)
        detail = app.screen
        assert isinstance(detail, RecordScreen)
        fields = dict(readable_fields(appointment.data()))
        assert fields["patient"] == patient_id
        rendered = plain(detail.query_one("#record-fields-body", Static).content)
        assert re.search(rf"^patient +{patient_id}$", rendered, re.MULTILINE)
        assert "127.0.0.1" not in rendered


@pytest.mark.anyio
async def test_pages_of_rows(
    make_app: AppFactory, staged_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_module, "PAGE_SIZE", 5)
    ids = fresh(staged_file, lambda db: [r.id for r in db.rows("attendees", limit=1000)])
    assert len(ids) > 10
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        await highlight(pilot, screen, "attendees")
        table = screen.query_one("#review-table", DataTable)
        table.focus()
        assert table_keys(table) == ids[:5]
        assert page_info(screen) == f"Attendees: rows 1-5 of {len(ids)}"
        table.move_cursor(row=3, animate=False)
        await pilot.press("n")
        await settle(pilot)
        assert table_keys(table) == ids[5:10]
        assert table.cursor_row == 0  # a new page starts at its top
        assert page_info(screen) == f"Attendees: rows 6-10 of {len(ids)}"
        await pilot.press("p")
        await settle(pilot)
        assert table_keys(table) == ids[:5]
        await pilot.press("p")  # no page before the first
        await settle(pilot)
        assert table_keys(table) == ids[:5]


# -- anomalies ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_anomalies_view_lists_what_staging_reports(
    make_app: AppFactory, staged_file: Path
) -> None:
    make_anomalies(staged_file)
    found = fresh(staged_file, lambda db: db.anomalies())
    kinds = {a.kind for a in found}
    assert kinds == {"missing_reference", "quarantined"}
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnomaliesScreen)
        table = screen.query_one("#anomaly-table", DataTable)
        shown = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert len(shown) == len(found)
        for row, anomaly in zip(shown, found, strict=True):
            assert row[1] == label_of(anomaly.resource)
            assert row[2] == anomaly.detail
            assert row[3] == f"{anomaly.count:,}"
        detail = static_text(screen, "#anomaly-detail")
        assert found[0].sample_ids[0] in detail

        # The quarantined records, as received.
        quarantined = next(i for i, a in enumerate(found) if a.kind == "quarantined")
        table.move_cursor(row=quarantined, animate=False)
        await pilot.press("enter")
        await settle(pilot)
        drill = app.screen
        assert isinstance(drill, QuarantineScreen)
        raw = drill.query_one("#quarantine-raw", TextArea)
        assert json.loads(raw.text) == {"number": 4242, "total_amount": "12.5"}
        await pilot.press("escape")
        await pilot.pause()

        # A missing link: back to the review, searching for the missing id.
        missing = next(a for a in found if a.kind == "missing_reference")
        table.move_cursor(row=found.index(missing), animate=False)
        await pilot.press("enter")
        await settle(pilot)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert review.resource == missing.resource
        assert review.query_one("#review-search", Input).value == missing.sample_ids[0]
        keys = table_keys(review.query_one("#review-table", DataTable))
        column = missing.detail
        expected = fresh(
            staged_file,
            lambda db: [
                r.id
                for r in db.rows(missing.resource, limit=1000)
                if r.refs.get(column.removesuffix("_id")) == missing.sample_ids[0]
            ],
        )
        assert expected
        assert set(expected) <= set(keys)


@pytest.mark.anyio
async def test_a_clean_file_shows_no_anomalies_table(
    make_app: AppFactory, staged_file: Path
) -> None:
    found = fresh(staged_file, lambda db: db.anomalies())
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnomaliesScreen)
        table = screen.query_one("#anomaly-table", DataTable)
        assert table.row_count == len(found)
        status = static_text(screen, "#anomaly-status")
        if found:
            assert f"{len(found)} kind(s)" in status
        else:
            assert "No anomalies" in status
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)


# -- bad files and leaving ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_offline_missing_file_shows_the_message_and_q_quits(make_app: AppFactory) -> None:
    app = review_app(make_app, "missing.sqlite")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        message = static_text(screen, "#review-error-message")
        assert "missing.sqlite" in message
        assert "no such file" in message
        assert "q to quit" in static_text(screen, "#review-error-hint")
        assert screen.query_one("#review-body").display is False
        await pilot.press("escape")  # offline: escape does not leave the only screen
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert app.crash_log_path is None


@pytest.mark.anyio
async def test_offline_text_file_is_not_a_staging_file(make_app: AppFactory, in_tmp: Path) -> None:
    (in_tmp / "notes.txt").write_text("this is not a database\n" * 100)
    app = review_app(make_app, "notes.txt")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        message = static_text(screen, "#review-error-message")
        assert message.startswith("notes.txt: ")
        assert "not a SQLite database" in message
        assert "Traceback" not in message
    assert app.return_code in (None, 0)
    assert app.crash_log_path is None
    assert (in_tmp / "notes.txt").read_text() == "this is not a database\n" * 100


@pytest.mark.anyio
async def test_from_the_wizard_escape_goes_back(make_app: AppFactory, staged_file: Path) -> None:
    app = review_app(make_app, "missing.sqlite")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        below = app.screen
        app.show_review(staged_file)  # pushed, as from the download screen
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        assert not screen.offline
        await pilot.press("q")  # not a quit key inside the wizard
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is below


@pytest.mark.anyio
async def test_r_tries_again_once_the_file_is_there(
    make_app: AppFactory, staged_file: Path, in_tmp: Path
) -> None:
    later = in_tmp / "later.sqlite"
    app = review_app(make_app, "later.sqlite")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        assert "no such file" in (screen.error or "")
        await pilot.press("r")
        await settle(pilot)
        assert "no such file" in (screen.error or "")
        shutil.copyfile(in_tmp / staged_file, later)
        await pilot.press("r")
        await settle(pilot)
        assert screen.error is None
        assert screen.query_one("#review-body").display is True
        patients = fresh(later, lambda db: db.count_rows("patients"))
        assert len(table_keys(screen.query_one("#review-table", DataTable))) == patients


# -- a file that changes while it is open ------------------------------------------------------


@pytest.mark.anyio
async def test_refresh_shows_rows_written_since_opening(
    make_app: AppFactory, staged_file: Path
) -> None:
    before = fresh(staged_file, lambda db: db.count_rows("patients"))
    app = review_app(make_app, staged_file)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = review_of(app)
        conn = sqlite3.connect(staged_file)
        conn.execute(
            "INSERT INTO patients (id, variants, created_at, updated_at, run_id, raw)"
            " SELECT '1', variants, created_at, updated_at, run_id, raw FROM patients LIMIT 1"
        )
        conn.commit()
        conn.close()
        await pilot.press("r")
        await settle(pilot)
        assert screen.overview is not None
        assert screen.overview.counts["patients"].total == before + 1
        assert "1" in table_keys(screen.query_one("#review-table", DataTable))
        assert page_info(screen) == f"Patients: rows 1-{before + 1} of {before + 1}"


@pytest.mark.anyio
async def test_counts_follow_a_download_that_is_still_writing(
    make_app: AppFactory,
    make_sandbox: Callable[..., SandboxHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_module, "AUTO_REFRESH_SECONDS", 0.05)
    handle = make_sandbox(rate_limit=(100_000, 60.0), latency_ms=80.0)
    app = make_app(api_url=handle.base_url, rate_limit=(100_000, 60.0), parallel=1)
    monkeypatch.setattr(app, "show_connect", lambda: None)
    app.state.key = parse_key(handle.api_key)
    app.state.base_url = handle.base_url
    path = app.state.staging_path
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_download()
        with anyio.fail_after(20):
            while not path.exists() or not fresh_or_none(path):
                await pilot.pause(0.02)
        app.show_review(path)
        await pilot.pause(0.1)
        screen = review_of(app)
        assert screen.error is None
        assert app.download_running
        seen: set[int] = set()
        with anyio.fail_after(60):
            while app.download_running:
                await pilot.pause(0.05)
                if screen.overview is not None:
                    seen.add(screen.overview.total)
        await settle(pilot)
        final = fresh(path, lambda db: db.table_counts())
        assert screen.overview is not None
        assert screen.overview.total == sum(c.total for c in final.values())
        assert {k: c.total for k, c in screen.overview.counts.items()} == {
            k: c.total for k, c in final.items()
        }
        assert len(seen) >= 2  # the counts moved while the download ran


@pytest.mark.anyio
async def test_opened_before_the_download_starts_it_catches_up(
    make_app: AppFactory,
    make_sandbox: Callable[..., SandboxHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_module, "AUTO_REFRESH_SECONDS", 0.05)
    handle = make_sandbox(rate_limit=(100_000, 60.0), latency_ms=20.0)
    app = make_app(api_url=handle.base_url, rate_limit=(100_000, 60.0))
    monkeypatch.setattr(app, "show_connect", lambda: None)
    app.state.key = parse_key(handle.api_key)
    app.state.base_url = handle.base_url
    path = app.state.staging_path
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_review(path)
        await settle(pilot)
        screen = review_of(app)
        assert "no such file" in (screen.error or "")
        app.start_download()
        with anyio.fail_after(60):
            while app.download_running:
                await pilot.pause(0.05)
        await settle(pilot)
        assert screen.error is None
        final = fresh(path, lambda db: db.table_counts())
        assert screen.overview is not None
        assert screen.overview.total == sum(c.total for c in final.values()) > 0
        assert screen.resource == "patients"
        patients = len(table_keys(screen.query_one("#review-table", DataTable)))
        assert patients == final["patients"].total


def fresh_or_none(path: Path) -> bool:
    """The file can be opened for review (a download has created its schema)."""
    try:
        fresh(path, lambda db: db.runs())
    except (StagingError, sqlite3.Error):
        return False
    return True


# -- snapshots ----------------------------------------------------------------------------------

SNAP_PATIENT_INDEX = 2
"""The patient whose record the detail snapshots show (by position in id order)."""


def snap_app(make_app: AppFactory) -> SwitchApp:
    return make_app(review_only=Path("staging.sqlite"))


async def _opened(pilot: Pilot[Any]) -> None:
    await settle(pilot)


async def _patient_detail(pilot: Pilot[Any], *, raw: bool = False) -> None:
    await settle(pilot)
    screen = review_of(pilot.app)  # type: ignore[arg-type]
    table = screen.query_one("#review-table", DataTable)
    await open_row(pilot, screen, table_keys(table)[SNAP_PATIENT_INDEX])
    if raw:
        await pilot.press("j")
        await settle(pilot)


async def _raw_detail(pilot: Pilot[Any]) -> None:
    await _patient_detail(pilot, raw=True)


async def _anomalies(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await pilot.press("a")
    await settle(pilot)


async def _quarantine(pilot: Pilot[Any]) -> None:
    await _anomalies(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, AnomaliesScreen)
    assert screen.anomalies is not None
    index = next(i for i, a in enumerate(screen.anomalies) if a.kind == "quarantined")
    screen.query_one("#anomaly-table", DataTable).move_cursor(row=index, animate=False)
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_review_patients(
    snap_compare: Any, make_app: AppFactory, snap_file: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_opened)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_record_detail(
    snap_compare: Any, make_app: AppFactory, snap_file: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_patient_detail)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_record_raw_json(
    snap_compare: Any, make_app: AppFactory, snap_file: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_raw_detail)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_anomalies(
    snap_compare: Any, make_app: AppFactory, snap_file: Path, size: tuple[int, int]
) -> None:
    make_anomalies(snap_file)
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_anomalies)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_quarantine(
    snap_compare: Any, make_app: AppFactory, snap_file: Path, size: tuple[int, int]
) -> None:
    make_anomalies(snap_file)
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_quarantine)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_bad_file(
    snap_compare: Any, make_app: AppFactory, in_tmp: Path, size: tuple[int, int]
) -> None:
    (in_tmp / "staging.sqlite").write_text("not a database\n")
    assert snap_compare(snap_app(make_app), terminal_size=size, run_before=_opened)
