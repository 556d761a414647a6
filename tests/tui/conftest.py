"""Fixtures for the TUI tests: apps built from a factory, a frozen clock, staged files.

Snapshot tests must be byte-for-byte stable: they run in a temporary working directory with
relative file names (no tmp path on screen), a frozen clock, no animation or cursor blink,
and never show the sandbox's random port.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.api import DownloadOptions, download, parse_key
from sandbox.runner import start_sandbox
from sandbox.store import ClinicStore
from tui.app import SwitchApp
from tui.state import WizardConfig, WizardState

SNAP_SIZES = [(80, 24), (120, 40)]

FIXED_DAY = date(2025, 6, 2)
"""The day the snapshot clinic is generated for (its ids and dates follow from it)."""
FIXED_NOW = datetime(2025, 6, 23, 0, 0, tzinfo=UTC)
"""The snapshots' "now": an appointment of the fixed clinic starts within the next week."""


def stage_fixed_clinic(
    path: Path, anchor: date, clock: Callable[[], datetime] | None = None
) -> Path:
    """Download a tiny clinic generated for `anchor` (seed 1) into `path`, through a sandbox
    of its own: the same ids and dates on every day the tests run."""
    store = ClinicStore.generate("tiny", seed=1, anchor=anchor, clock=clock)
    handle = start_sandbox(store, rate_limit=(100_000, 60.0))
    try:
        opts = DownloadOptions(
            staging_path=path, base_url=handle.base_url, rate_limit=(100_000, 60.0)
        )

        async def run() -> None:
            result = await download(parse_key(handle.api_key), opts)
            assert result.outcome == "complete"

        anyio.run(run)
    finally:
        handle.stop()
        store.close()
    return path


@pytest.fixture(scope="session")
def fixed_staged_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete download of a tiny clinic generated for `FIXED_DAY` (copy before use)."""
    path = tmp_path_factory.mktemp("fixed-staged") / "fixed.sqlite"
    stage_fixed_clinic(path, FIXED_DAY, clock=lambda: datetime(2025, 6, 2, 8, tzinfo=UTC))
    in_id_order(path)
    return path


def in_id_order(path: Path) -> None:
    """Rewrite each staged table in Cliniko id order. Lists download in parallel, so rows land
    in a different order each time; a plan follows that order and a load gives clinic ids in
    it. Put in one order, the ids and rows on screen are the same on every run."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith(("_", "sqlite_"))
        ]
        for table in tables:
            # Stored columns only (`state` is generated).
            columns = [r[1] for r in conn.execute(f'PRAGMA table_xinfo("{table}")') if r[6] == 0]
            if "id" not in columns:
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {names} FROM "{table}" ORDER BY length(id), id').fetchall()
            conn.execute(f'DELETE FROM "{table}"')
            conn.executemany(
                f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in columns)})',
                rows,
            )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def fixed_staged(fixed_staged_master: Path, in_tmp: Path) -> Path:
    """The fixed clinic's staged file as ./staging.sqlite."""
    dest = in_tmp / "staging.sqlite"
    shutil.copyfile(fixed_staged_master, dest)
    dest.chmod(0o600)
    return Path("staging.sqlite")


class FrozenClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from a fresh temporary directory (relative paths on screen)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINIKO_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def make_app(in_tmp: Path, frozen_clock: FrozenClock) -> Callable[..., SwitchApp]:
    """`make_app(state=None, **config)`: a SwitchApp for tests (frozen clock, no animation)."""

    def factory(state: WizardState | None = None, **config: Any) -> SwitchApp:
        config.setdefault("clock", frozen_clock)
        config.setdefault("animate", False)
        config.setdefault("staging_path", Path("staging.sqlite"))
        config.setdefault("target_url", "sqlite:///clinic.db")
        config.setdefault("crash_log", in_tmp / "crash.log")
        cfg = WizardConfig(**config)
        return SwitchApp(
            cfg,
            state or WizardState(staging_path=cfg.staging_path, target_url=cfg.target_url),
        )

    return factory


@pytest.fixture
def staged_file(tiny_staged_master: Path, in_tmp: Path) -> Path:
    """A private copy of the tiny staged file, as `staging.sqlite` in the working directory."""
    dest = in_tmp / "staging.sqlite"
    shutil.copyfile(tiny_staged_master, dest)
    dest.chmod(0o600)
    return Path("staging.sqlite")


async def wait_until(pilot: Any, condition: Callable[[], bool], seconds: float = 60.0) -> None:
    """Let the app run until `condition()` holds (fail after `seconds`)."""
    with anyio.fail_after(seconds):
        while not condition():
            await pilot.pause(0.02)


async def settle(pilot: Any) -> None:
    """Let the screen's workers finish and their results land."""
    app = pilot.app
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()
