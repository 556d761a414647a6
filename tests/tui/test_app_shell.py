"""The App around the screens: crashes are reported without patient data, quitting forgets
the key and stops the download, and NO_COLOR is honoured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen
from textual.widgets import Static

from engine.api import parse_key
from tui.app import SwitchApp
from tui.crashlog import crash_report

SECRET_NAME = "Zebedee Quillfeather"


class _Exploding(Screen[None]):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("about to fail")

    def on_mount(self) -> None:
        record = {"first_name": SECRET_NAME, "email": "zq@example.org"}
        raise ValueError(f"cannot map {record}")


@pytest.mark.anyio
async def test_a_crash_is_logged_without_values(
    make_app: Callable[..., SwitchApp], in_tmp: Path
) -> None:
    app = make_app()

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await app.push_screen(_Exploding())
            await pilot.pause()

    with pytest.raises(ValueError, match="cannot map"):
        await drive()
    log = in_tmp / "crash.log"
    text = log.read_text()
    assert "builtins.ValueError" in text
    assert "test_app_shell.py" in text and "on_mount" in text
    assert SECRET_NAME not in text and "zq@example.org" not in text
    assert log.stat().st_mode & 0o777 == 0o600
    assert app.return_code == 1
    assert app.crash_log_path == str(log)


def test_crash_report_follows_the_cause_chain() -> None:
    try:
        try:
            raise KeyError(SECRET_NAME)
        except KeyError as inner:
            raise RuntimeError("while loading " + SECRET_NAME) from inner
    except RuntimeError as exc:
        report = crash_report(exc)
    assert "builtins.RuntimeError" in report and "builtins.KeyError" in report
    assert SECRET_NAME not in report


@pytest.mark.anyio
async def test_quit_forgets_the_key(make_app: Callable[..., SwitchApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.state.key = parse_key("a" * 24 + "-au1")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.state.key is None
    assert app.return_code == 0


def test_no_color_is_honoured(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_app().no_color
    monkeypatch.delenv("NO_COLOR")
    assert not make_app().no_color


def test_snapshot_connect_without_colour(
    make_app: Callable[..., SwitchApp], monkeypatch: pytest.MonkeyPatch, snap_compare: Any
) -> None:
    """NO_COLOR: the first screen still reads (labels, not colours, carry the meaning)."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_app(), terminal_size=(80, 24))
