"""Read-only over the whole test session (issue 6, item 7): every request any in-process
sandbox receives is counted by method and by the test file that was running; when the
session ends, a request other than GET from anywhere but the sandbox's own tests (which send
POST, PUT, ... on purpose, to see them refused) fails the session. The faults the sandboxes
injected are counted too, by kind, for the README's figures.

Active whenever this folder is collected (`make test`, `make test-hard`, or this folder
alone); the tally is printed at the end and, with $CLINIKO_SWITCH_FIGURES set, recorded.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

import pytest
from reliability_helpers import record_figure

from sandbox.server import SandboxStats

DELIBERATE = ("tests/sandbox/",)
"""Tests that send other methods to a sandbox on purpose (never through cliniko-switch)."""

_SEEN: Counter[tuple[str, str]] = Counter()
_FAULTS: Counter[str] = Counter()
_LOCK = threading.Lock()
_ARRIVED = SandboxStats.arrived
_FAULT = SandboxStats.fault


def _counted(self: SandboxStats, method: str, path: str) -> None:
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]
    with _LOCK:
        _SEEN[(method, current)] += 1
    _ARRIVED(self, method, path)


def _counted_fault(self: SandboxStats, kind: str) -> None:
    with _LOCK:
        _FAULTS[kind] += 1
    _FAULT(self, kind)


if SandboxStats.arrived.__name__ != _counted.__name__:  # once, however often imported
    SandboxStats.arrived = _counted  # type: ignore[method-assign]
    SandboxStats.fault = _counted_fault  # type: ignore[method-assign]


def _tally() -> tuple[int, Counter[str], Counter[str]]:
    gets = 0
    deliberate: Counter[str] = Counter()
    stray: Counter[str] = Counter()
    with _LOCK:
        for (method, test), n in _SEEN.items():
            if method == "GET":
                gets += n
            elif test.startswith(DELIBERATE):
                deliberate[method] += n
            else:
                stray[f"{method} during {test or 'no test'}"] += n
    return gets, deliberate, stray


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gets, deliberate, stray = _tally()
    if not gets and not deliberate and not stray:
        return
    with _LOCK:
        faults = dict(_FAULTS)
    record_figure(
        "sandbox_methods",
        get=gets,
        deliberate=dict(deliberate),
        other=sum(stray.values()),
        faults=faults,
    )
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"sandboxes saw {gets} GET request(s); {sum(deliberate.values())} other from the "
        f"sandbox's own method tests; {sum(stray.values())} other from anywhere else; "
        f"faults injected: {sum(faults.values())} {faults or ''}"
    )
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)
    if stray:
        if reporter is not None:
            for what, n in sorted(stray.items()):
                reporter.write_line(f"  NOT GET: {n} x {what}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
