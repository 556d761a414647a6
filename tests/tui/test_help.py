"""Help: F1 from any step opens it over the step, escape (or F1) closes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import Static

from tests.tui.conftest import SNAP_SIZES
from tui.app import SwitchApp
from tui.screens.connect import ConnectScreen
from tui.screens.help import HelpScreen
from tui.screens.select import SelectScreen


def help_text(app: SwitchApp) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query(".help-section").results(Static))


@pytest.mark.anyio
async def test_f1_opens_help_over_the_step_and_escape_closes_it(
    make_app: Callable[..., SwitchApp],
) -> None:
    app = make_app(target_url="postgresql://clinic:s3cret@db.example.org/clinic")
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, ConnectScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = help_text(app)
        for words in ("Connect", "Select", "Download", "Review", "Load", "Summary"):
            assert words in text
        assert "staging.sqlite" in text
        assert "postgresql://clinic:***@db.example.org/clinic" in text
        assert "s3cret" not in text
        assert "Not copied" in text and "Attachment files" in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConnectScreen)
        # F1 toggles: it opens help, and closes it again.
        await pilot.press("f1")
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, ConnectScreen)


@pytest.mark.anyio
async def test_help_from_the_select_step_returns_to_it(
    make_app: Callable[..., SwitchApp],
) -> None:
    from tests.tui.test_select import fixed_state

    app = make_app(state=fixed_state())
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_select()
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")  # closes help, does not go back a step
        await pilot.pause()
        assert isinstance(app.screen, SelectScreen)


@pytest.mark.parametrize("size", SNAP_SIZES)
def test_snapshot_help(
    snap_compare: Any, make_app: Callable[..., SwitchApp], size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size, press=["f1"])
