"""Step 1, connect: the key (typed, or from CLINIKO_API_KEY), its region, the connection check
against the sandbox, and every way it can be refused shown on screen without a crash."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

import engine.cliniko.client as cliniko_client
from engine.api import ENV_VAR
from engine.cliniko.retry import RetryPolicy
from sandbox.runner import SandboxHandle
from tests.tui.conftest import SNAP_SIZES
from tui.app import SwitchApp
from tui.screens.connect import ConnectScreen, safe_url
from tui.screens.select import SelectScreen

UNKNOWN_KEY = "Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1"
FAST = (100_000, 60.0)


def text_of(app: SwitchApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settle(pilot: Pilot[Any], rounds: int = 6) -> None:
    """Let workers finish, and the screens they start (with their own workers) too."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def type_key(pilot: Pilot[Any], key: str) -> None:
    """Paste all but the last character, then type that one as a key press."""
    field = pilot.app.screen.query_one("#key", Input)
    field.focus()
    field.insert_text_at_cursor(key[:-1])
    await pilot.press(key[-1])
    await pilot.pause()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def screen_text(app: SwitchApp) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query(Static))


# --- success --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_connect_reaches_select_with_the_sandbox_counts(
    make_app: Callable[..., SwitchApp], tiny_sandbox: SandboxHandle
) -> None:
    app = make_app(api_url=tiny_sandbox.base_url, rate_limit=FAST)
    truth = tiny_sandbox.store.counts()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, ConnectScreen)
        await type_key(pilot, tiny_sandbox.api_key)
        # The region follows the key's suffix as it is typed.
        assert app.screen.query_one("#region", Select).value == tiny_sandbox.shard
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SelectScreen)
        assert app.state.key is not None and app.state.key.shard == tiny_sandbox.shard
        assert app.state.base_url == tiny_sandbox.base_url
        assert app.state.account is not None
        settings = tiny_sandbox.store.settings(tiny_sandbox.base_url)
        assert app.state.account.name == settings["account"]["name"]
        # The preview ran to the end and its counts are the sandbox's truth.
        assert app.state.preview is not None
        for key in [("patients", "active"), ("patients", "archived"), ("practitioners", "active")]:
            assert screen.counts[key] == truth[key], key
        patients = text_of(app, "#counts-patients")
        assert f"patients {truth[('patients', 'active')]:,}" in patients
        assert f"archived {truth[('patients', 'archived')]:,}" in patients
        invoices = text_of(app, "#counts-invoices")
        assert f"invoices {truth[('invoices', 'active')]:,}" in invoices
        assert "lists counted" in text_of(app, "#account")


@pytest.mark.anyio
async def test_key_from_the_environment_is_used_and_never_shown(
    make_app: Callable[..., SwitchApp],
    tiny_sandbox: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, tiny_sandbox.api_key)
    app = make_app(api_url=tiny_sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "Key taken from CLINIKO_API_KEY" in text_of(app, "#key-note")
        assert app.screen.query_one("#key", Input).value == ""
        assert app.screen.query_one("#region", Select).value == tiny_sandbox.shard
        assert tiny_sandbox.api_key not in app.export_screenshot()
        assert tiny_sandbox.api_key not in screen_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, SelectScreen)
        assert app.state.key is not None
        assert app.state.key.reveal() == tiny_sandbox.api_key
        assert tiny_sandbox.api_key not in app.export_screenshot()


@pytest.mark.anyio
async def test_a_typed_key_replaces_the_one_from_the_environment(
    make_app: Callable[..., SwitchApp],
    tiny_sandbox: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, tiny_sandbox.api_key)
    app = make_app(api_url=tiny_sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, UNKNOWN_KEY)
        assert "instead of the one from CLINIKO_API_KEY" in text_of(app, "#key-note")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        assert "(401)" in text_of(app, "#error")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_malformed_key_is_explained_before_any_request(
    make_app: Callable[..., SwitchApp], sandbox: SandboxHandle
) -> None:
    app = make_app(api_url=sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, "abc123-au1")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        assert "too short" in text_of(app, "#error")
        assert "Copy the API key again" in text_of(app, "#error-hint")
        assert app.screen.query_one("#key", Input).value == "abc123-au1"  # kept to fix
        assert app.state.key is None
    assert sandbox.stats.total == 0


@pytest.mark.anyio
async def test_no_key_at_all_says_so(make_app: Callable[..., SwitchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "No Cliniko API key was given" in text_of(app, "#error")


@pytest.mark.anyio
async def test_a_region_picked_by_hand_that_disagrees_names_the_right_shard(
    make_app: Callable[..., SwitchApp], sandbox: SandboxHandle
) -> None:
    app = make_app(api_url=sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#region", Select).value = "uk1"
        await pilot.pause()
        await type_key(pilot, sandbox.api_key)
        # The hand-picked region stays; the mismatch is explained as the key is typed.
        assert app.screen.query_one("#region", Select).value == "uk1"
        note = text_of(app, "#region-note")
        assert "au1 (Australia)" in note and "choose au1 (not uk1)" in note
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        error = text_of(app, "#error")
        assert "This key belongs to shard au1 (Australia); choose au1 (not uk1)." in error
        assert app.state.key is None
    assert sandbox.stats.total == 0


@pytest.mark.anyio
async def test_region_from_the_command_line_is_preselected(
    make_app: Callable[..., SwitchApp],
) -> None:
    app = make_app(region="uk1")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.screen.query_one("#region", Select).value == "uk1"
        await type_key(pilot, "k" * 30 + "-uk1")
        assert not app.screen.query_one("#region-note", Static).display
        await type_key(pilot, "-x")  # no suffix any more: an older key means au1
        assert "choose au1 (not uk1)" in text_of(app, "#region-note")
        assert "without a region suffix" in text_of(app, "#region-note")


@pytest.mark.anyio
async def test_an_unknown_key_is_a_401_shown_with_its_hint(
    make_app: Callable[..., SwitchApp], tiny_sandbox: SandboxHandle
) -> None:
    app = make_app(api_url=tiny_sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, UNKNOWN_KEY)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        error = text_of(app, "#error")
        assert "(401)" in error and "unknown or revoked" in error
        assert app.screen.query_one("#key", Input).value == UNKNOWN_KEY
        assert not app.screen.query_one("#status", Static).display  # no longer "checking"
        assert app.state.key is None and app.state.account is None
        assert UNKNOWN_KEY not in screen_text(app)
        # Fixing the key and trying again works from the same screen.
        key_input = app.screen.query_one("#key", Input)
        key_input.value = tiny_sandbox.api_key
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, SelectScreen)


@pytest.mark.anyio
async def test_an_unreachable_api_is_a_network_error_not_a_crash(
    make_app: Callable[..., SwitchApp],
    tiny_sandbox: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client retries a refused connection with backoff; make the backoff tiny.
    fast = functools.partial(RetryPolicy, max_attempts=2, base_s=0.001, cap_s=0.005)
    monkeypatch.setattr(cliniko_client, "RetryPolicy", fast)
    app = make_app(api_url=f"http://127.0.0.1:{closed_port()}/v1", rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, tiny_sandbox.api_key)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        assert "could not be reached" in text_of(app, "#error")
        assert "Check the network connection" in text_of(app, "#error-hint")
        assert app.return_code is None  # still running: no crash


@pytest.mark.anyio
async def test_a_key_without_permission_is_a_403(
    make_app: Callable[..., SwitchApp], make_sandbox: Callable[..., SandboxHandle]
) -> None:
    own = make_sandbox(rate_limit=FAST)
    restricted = own.keys.add_key("restricted")
    app = make_app(api_url=own.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, restricted)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        assert "(403)" in text_of(app, "#error")
        assert "administrator" in text_of(app, "#error-hint")


@pytest.mark.anyio
async def test_checking_is_shown_and_can_be_cancelled(
    make_app: Callable[..., SwitchApp], sandbox: SandboxHandle
) -> None:
    sandbox.set_latency(2000, 0)
    app = make_app(api_url=sandbox.base_url, rate_limit=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_key(pilot, sandbox.api_key)
        await pilot.press("ctrl+n")
        await pilot.pause()
        status = app.screen.query_one("#status", Static)
        assert status.display and "Checking the key" in str(status.render())
        assert app.screen.check_action("cancel_check", ()) is True
        await pilot.press("ctrl+n")  # a second press while checking does nothing
        await pilot.press("escape")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert not status.display
        assert "cancelled" in text_of(app, "#error")
        assert isinstance(app.screen, ConnectScreen) and app.state.key is None


# --- the rest of the screen ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_demo_says_it_is_the_sandbox_and_fills_in_its_key(
    make_app: Callable[..., SwitchApp], tiny_sandbox: SandboxHandle
) -> None:
    app = make_app(
        api_url=tiny_sandbox.base_url, rate_limit=FAST, demo=True, demo_key=tiny_sandbox.api_key
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "built-in sandbox" in text_of(app, "#demo-note")
        assert "made-up key" in text_of(app, "#demo-note")
        assert "built-in sandbox" in text_of(app, "#key-note")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, SelectScreen)


@pytest.mark.anyio
async def test_files_panel_and_review_only_when_the_staging_file_exists(
    make_app: Callable[..., SwitchApp], in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(target_url="postgresql://clinic:s3cret@db.example.org:5432/clinic")
    reviewed: list[object] = []
    monkeypatch.setattr(app, "show_review", lambda path=None, **kw: reviewed.append(path))
    async with app.run_test(size=(80, 24)) as pilot:
        assert "staging.sqlite (new" in text_of(app, "#staging-line")
        target = text_of(app, "#target-line")
        assert "postgresql://clinic:***@db.example.org:5432/clinic" in target
        assert "s3cret" not in target
        assert app.screen.check_action("review", ()) is False
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert reviewed == []
    (in_tmp / "staging.sqlite").write_bytes(b"")
    app = make_app()
    monkeypatch.setattr(app, "show_review", lambda path=None, **kw: reviewed.append(path))
    async with app.run_test(size=(80, 24)) as pilot:
        assert "exists" in text_of(app, "#staging-line")
        assert app.screen.check_action("review", ()) is True
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert reviewed == [Path("staging.sqlite")]


def test_safe_url_hides_only_the_password() -> None:
    assert safe_url("sqlite:///clinic.db") == "sqlite:///clinic.db"
    assert safe_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert safe_url("postgresql://u@h:5/db") == "postgresql://u@h:5/db"


# --- snapshots ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_connect_empty(
    snap_compare: Any, make_app: Callable[..., SwitchApp], size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_connect_with_an_error(
    snap_compare: Any, make_app: Callable[..., SwitchApp], size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await type_key(pilot, "k" * 30 + "-au1")
        pilot.app.screen.query_one("#region", Select).value = "uk1"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
