"""The whole wizard, driven by keys against the sandbox over real sockets: connect, select,
download, review while it is staged, plan, load, summary; then the files it left."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from sandbox.runner import SandboxHandle
from tests.tui.conftest import settle, wait_until
from tui.app import SwitchApp
from tui.screens.connect import ConnectScreen
from tui.screens.download import DownloadScreen
from tui.screens.load import ConfirmLoadScreen, LoadScreen
from tui.screens.review import ReviewScreen
from tui.screens.select import SelectScreen
from tui.screens.summary import SummaryScreen

AppFactory = Callable[..., SwitchApp]


def _text(app: SwitchApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@pytest.mark.anyio
async def test_from_key_entry_to_a_verified_summary(
    make_app: AppFactory,
    tiny_sandbox: SandboxHandle,
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINIKO_API_KEY", tiny_sandbox.api_key)
    app = make_app(api_url=tiny_sandbox.base_url, rate_limit=(100_000, 60.0))
    store = tiny_sandbox.store
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConnectScreen))
        await pilot.press("ctrl+n")  # connect & preview, with the key from the environment
        await wait_until(pilot, lambda: isinstance(app.screen, SelectScreen))
        await settle(pilot)  # every count has arrived
        assert app.state.account is not None and app.state.account.shard == "au1"

        await pilot.press("ctrl+n")  # download everything
        await wait_until(pilot, lambda: isinstance(app.screen, DownloadScreen))
        await wait_until(pilot, lambda: app.progress.outcome is not None)
        assert app.progress.outcome == "complete"
        assert app.state.download is not None
        assert app.state.download.records > 0

        await pilot.press("r")  # review what was staged, then come back
        await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        await settle(pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, DownloadScreen))

        await pilot.press("n")  # plan the load
        await wait_until(pilot, lambda: isinstance(app.screen, LoadScreen))
        await settle(pilot)
        assert app.state.plan is None or app.state.plan.writes() > 0
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmLoadScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), seconds=120)
        await settle(pilot)
        verification = _text(app, "#verification")
        assert app.state.load is not None and app.state.load.ok
        assert app.state.key is None  # forgotten once no run needs it
        await pilot.press("q")
    assert app.return_code == 0
    assert "ok" in verification.lower()

    staging = in_tmp / "staging.sqlite"
    clinic = in_tmp / "clinic.db"
    assert staging.stat().st_mode & 0o777 == 0o600
    assert clinic.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(clinic) as db:
        patients = db.execute("SELECT count(*) FROM patients").fetchone()[0]
        outbox = db.execute("SELECT count(*) FROM message_outbox").fetchone()[0]
    live = (store.ids("patients", "active") | store.ids("patients", "archived")) - store.ids(
        "patients", "deleted"
    )
    assert patients == len(live)
    assert outbox == 0
    assert app.state.skipped_csv is not None and (in_tmp / app.state.skipped_csv).exists()

    # The key went nowhere: not in any file the run wrote, in either form it was sent in.
    basic = base64.b64encode(f"{tiny_sandbox.api_key}:".encode()).decode()
    for path in in_tmp.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert tiny_sandbox.api_key.encode() not in data, path
            assert basic.encode() not in data, path
