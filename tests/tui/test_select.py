"""Step 2, preview and select: counts as they arrive (a refused list shown on its row), tick
boxes that keep their dependencies, the live estimate, the staging path, and the download."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

import tui.screens.select as select_module
from engine.api import (
    ALL_PARTS,
    Account,
    AuthError,
    CountReady,
    PreviewResult,
    estimate_requests,
    parse_key,
    preview,
)
from sandbox.runner import SandboxHandle
from tests.tui.conftest import SNAP_SIZES
from tui.app import SwitchApp
from tui.screens.connect import ConnectScreen
from tui.screens.select import PartBox, SelectScreen, estimate_for, selection_lists
from tui.state import WizardState

FAST = (100_000, 60.0)


def fixed_counts() -> dict[tuple[str, str], int]:
    """Made-up counts for every list: a mid-sized clinic."""
    sizes = {
        "businesses": 2,
        "practitioners": 6,
        "users": 9,
        "appointment_types": 14,
        "services": 20,
        "billable_items": 40,
        "taxes": 2,
        "concession_types": 3,
        "treatment_note_templates": 5,
        "referral_source_types": 7,
        "patients": 4_210,
        "contacts": 130,
        "medical_alerts": 380,
        "patient_cases": 95,
        "referral_sources": 1_200,
        "individual_appointments": 38_400,
        "group_appointments": 60,
        "attendees": 410,
        "unavailable_blocks": 900,
        "treatment_notes": 22_750,
        "invoices": 31_000,
        "invoice_items": 45_500,
        "patient_attachments": 2_300,
    }
    out: dict[tuple[str, str], int] = {}
    for resource, variant in selection_lists(ALL_PARTS):
        n = sizes[resource]
        out[(resource, variant)] = n if variant == "active" else max(1, n // 25)
    return out


def fixed_state(**changes: Any) -> WizardState:
    counts = fixed_counts()
    errors = {("patient_attachments", "active"): "Cliniko refused GET /patient_attachments (403)"}
    del counts[("patient_attachments", "active")]
    result = PreviewResult(
        account_name="Harbourside Physio",
        shard="au2",
        time_zone="Australia/Sydney",
        counts=counts,
        errors=errors,
        rate_per_minute=200.0,
    )
    state = WizardState(
        key=parse_key("k" * 30 + "-au2"),
        base_url="https://api.au2.cliniko.com/v1",
        account=Account(name="Harbourside Physio", shard="au2", time_zone="Australia/Sydney"),
        preview=result,
        staging_path=Path("staging.sqlite"),
        target_url="sqlite:///clinic.db",
    )
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def text_of(app: SwitchApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def box(app: SwitchApp, part: str) -> PartBox:
    return app.screen.query_one(f"#part-{part}", PartBox)


async def to_select(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, SwitchApp)
    app.show_select()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def toggle(pilot: Pilot[Any], part: str) -> None:
    target = pilot.app.screen.query_one(f"#part-{part}", PartBox)
    target.focus()
    await pilot.pause()
    await pilot.press("space")
    await pilot.pause()


# --- the preview ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_counts_match_the_engine_preview_of_the_sandbox(
    make_app: Callable[..., SwitchApp], tiny_sandbox: SandboxHandle
) -> None:
    key = parse_key(tiny_sandbox.api_key)
    direct = await preview(key, base_url=tiny_sandbox.base_url, rate_limit=FAST)
    state = WizardState(
        key=key,
        base_url=tiny_sandbox.base_url,
        account=Account(name=direct.account_name, shard=key.shard, time_zone=None),
        staging_path=Path("staging.sqlite"),
    )
    app = make_app(state=state, api_url=tiny_sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_select(pilot)
        screen = app.screen
        assert isinstance(screen, SelectScreen)
        assert screen.counts == direct.counts
        assert app.state.preview is not None and app.state.preview.counts == direct.counts
        assert f"Account: {direct.account_name}" in text_of(app, "#account")
        assert "shard au1 (Australia)" in text_of(app, "#account")
        n = direct.counts[("treatment_notes", "active")]
        assert f"treatment notes {n:,}" in text_of(app, "#counts-treatment_notes")
        # The estimate for everything is the engine's own.
        requests = f"{direct.estimated_requests:,} requests"
        assert requests in text_of(app, "#estimate")


@pytest.mark.anyio
async def test_a_refused_list_is_shown_on_its_row_and_the_rest_goes_on(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_preview(key: Any, **kw: Any) -> PreviewResult:
        sink = kw["sink"]
        sink(CountReady(resource="patients", variant="active", count=12))
        sink(
            CountReady(
                resource="invoices",
                variant="deleted",
                count=None,
                error="Cliniko refused GET /invoices/deleted (403)",
            )
        )
        return PreviewResult(
            account_name="Test",
            shard="au1",
            time_zone=None,
            counts={("patients", "active"): 12},
            errors={("invoices", "deleted"): "Cliniko refused GET /invoices/deleted (403)"},
        )

    monkeypatch.setattr(select_module, "preview", fake_preview)
    state = fixed_state(preview=None)
    app = make_app(state=state)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        invoices = text_of(app, "#counts-invoices")
        assert "✗ invoices (deleted): Cliniko refused GET /invoices/deleted (403)" in invoices
        assert "patients 12" in text_of(app, "#counts-patients")
        assert not app.screen.query_one("#preview-error", Static).display
        assert app.screen.check_action("retry", ()) is False


@pytest.mark.anyio
async def test_a_fatal_preview_error_is_shown_with_a_retry(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def failing_then_working(key: Any, **kw: Any) -> PreviewResult:
        calls.append(1)
        if len(calls) == 1:
            raise AuthError("Cliniko refused the API key (401): key unknown or revoked.")
        return PreviewResult(
            account_name="Test", shard="au1", time_zone=None, counts={("patients", "active"): 7}
        )

    monkeypatch.setattr(select_module, "preview", failing_then_working)
    app = make_app(state=fixed_state(preview=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        error = app.screen.query_one("#preview-error", Static)
        assert error.display
        assert "(401)" in str(error.render()) and "ctrl+r" in str(error.render())
        assert app.screen.check_action("retry", ()) is True
        await pilot.press("ctrl+r")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(calls) == 2
        assert not error.display
        assert "patients 7" in text_of(app, "#counts-patients")
        assert app.return_code is None


@pytest.mark.anyio
async def test_a_preview_already_made_is_shown_without_asking_again(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def must_not_run(key: Any, **kw: Any) -> PreviewResult:
        raise AssertionError("the preview was asked for again")

    monkeypatch.setattr(select_module, "preview", must_not_run)
    app = make_app(state=fixed_state())
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        assert "patients 4,210 (archived 168, deleted 168)" in text_of(app, "#counts-patients")
        assert "Harbourside Physio" in text_of(app, "#account")


# --- ticking -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ticking_a_part_ticks_what_it_needs_and_says_why(
    make_app: Callable[..., SwitchApp],
) -> None:
    app = make_app(state=fixed_state(selection=("practitioners",)))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        assert not box(app, "patients").value and not box(app, "treatment_notes").value
        await toggle(pilot, "treatment_notes")
        assert box(app, "treatment_notes").value
        assert box(app, "patients").value and box(app, "practitioners").value
        note = text_of(app, "#dep-note")
        assert "Ticked Patients too" in note
        assert "a note belongs to a patient and keeps its author" in note


@pytest.mark.anyio
async def test_a_part_that_a_ticked_part_needs_stays_ticked(
    make_app: Callable[..., SwitchApp],
) -> None:
    app = make_app(state=fixed_state(selection=("patients", "practitioners", "attachments")))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        await toggle(pilot, "patients")
        assert box(app, "patients").value  # refused: attachments need it
        note = text_of(app, "#dep-note")
        assert "Patients stays ticked: Attachments needs it" in note
        assert "an attachment belongs to a patient" in note
        # Untick the dependant first; then the dependency can go.
        await toggle(pilot, "attachments")
        await toggle(pilot, "patients")
        assert not box(app, "patients").value
        assert box(app, "practitioners").value


@pytest.mark.anyio
async def test_the_estimate_follows_the_selection(make_app: Callable[..., SwitchApp]) -> None:
    app = make_app(state=fixed_state(), rate_limit=(200, 60.0))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        counts = app.state.preview.counts if app.state.preview else {}
        everything = estimate_for(ALL_PARTS, counts)
        assert f"{everything:,} requests" in text_of(app, "#estimate")
        assert f"about {-(-everything // 200)} minutes" in text_of(app, "#estimate")
        for part in ("upcoming_appointments", "appointment_history", "invoices"):
            await toggle(pilot, part)
        fewer = estimate_for(
            ("patients", "practitioners", "treatment_notes", "unavailable_blocks", "attachments"),
            counts,
        )
        assert fewer < everything
        assert f"{fewer:,} requests" in text_of(app, "#estimate")


def test_estimate_for_everything_matches_the_engine() -> None:
    counts = fixed_counts()
    practitioners = counts[("practitioners", "active")] + counts[("practitioners", "inactive")]
    assert estimate_for(ALL_PARTS, counts) == estimate_requests(counts, practitioners)
    # Without the practitioners part there are no reference numbers to ask for.
    only_patients = {k: v for k, v in counts.items() if k in selection_lists(("patients",))}
    assert estimate_for(("patients",), counts) == estimate_requests(only_patients, 0)


# --- download and back --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_download_starts_with_the_chosen_selection_and_path(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(state=fixed_state())
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(app, "start_download", lambda: calls.append(("start", app.state.selection)))
    monkeypatch.setattr(app, "show_download", lambda: calls.append(("show", None)))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        for part in ("unavailable_blocks", "appointment_history"):
            await toggle(pilot, part)
        staging = app.screen.query_one("#staging", Input)
        staging.value = "clinic-2026.sqlite"
        await pilot.pause()
        assert "New file" in text_of(app, "#staging-note")
        await pilot.press("ctrl+n")
        await pilot.pause()
    expected = (
        "patients",
        "practitioners",
        "upcoming_appointments",
        "treatment_notes",
        "invoices",
        "attachments",
    )
    assert calls == [("start", expected), ("show", None)]
    assert app.state.selection == expected
    assert app.state.staging_path == Path("clinic-2026.sqlite")
    assert app.state.preview is not None


@pytest.mark.anyio
async def test_a_folder_is_not_a_staging_file(
    make_app: Callable[..., SwitchApp], in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "exports").mkdir()
    (in_tmp / "old.sqlite").write_bytes(b"")
    app = make_app(state=fixed_state())
    calls: list[str] = []
    monkeypatch.setattr(app, "start_download", lambda: calls.append("start"))
    monkeypatch.setattr(app, "show_download", lambda: calls.append("show"))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        staging = app.screen.query_one("#staging", Input)
        staging.value = "exports"
        await pilot.pause()
        assert "is a folder" in text_of(app, "#staging-note")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert calls == []
        staging.value = "missing-dir/x.sqlite"
        await pilot.pause()
        assert "does not exist" in text_of(app, "#staging-note")
        staging.value = "old.sqlite"
        await pilot.pause()
        note = text_of(app, "#staging-note")
        assert "resume an interrupted run or top up what changed" in note
        await pilot.press("ctrl+n")
        await pilot.pause()
    assert calls == ["start", "show"]
    assert app.state.staging_path == Path("old.sqlite")


@pytest.mark.anyio
async def test_escape_goes_back_to_connect(make_app: Callable[..., SwitchApp]) -> None:
    app = make_app(state=fixed_state())
    async with app.run_test(size=(80, 24)) as pilot:
        await to_select(pilot)
        assert isinstance(app.screen, SelectScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConnectScreen)


# --- snapshots -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_select_with_fixed_counts(
    snap_compare: Any, make_app: Callable[..., SwitchApp], size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(state=fixed_state()), terminal_size=size, run_before=to_select)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_select_after_a_dependency_refusal(
    snap_compare: Any, make_app: Callable[..., SwitchApp], size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await to_select(pilot)
        await toggle(pilot, "practitioners")

    assert snap_compare(make_app(state=fixed_state()), terminal_size=size, run_before=run_before)
