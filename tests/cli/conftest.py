"""Helpers for running the real `cliniko-switch` console command against a sandbox.

The command runs as a separate process, exactly as an operator would start it: the key only in
the environment (`CLINIKO_API_KEY`), stdin not a terminal, stdout and stderr captured apart.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.extract import expected_requests
from engine.resources import ALL_PARTS, list_variants, resources_for
from sandbox.runner import SandboxHandle

CLI = Path(sys.executable).with_name("cliniko-switch")
NESTED = ("practitioner_reference_numbers", "active")
FAST = "200/2"
"""The client budget the tests run with; sandboxes are set to the same window."""
FAST_RATE = (200, 2.0)
TIMEOUT_S = 120.0


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # what pytest shows when an assertion about it fails
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def cli_env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLINIKO_API_KEY"}
    if key is not None:
        env["CLINIKO_API_KEY"] = key
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored: give the command the default, as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, key: str | None, cwd: Path, timeout: float = TIMEOUT_S) -> Ran:
    """Run `cliniko-switch ARGS` to completion, stdin not a terminal."""
    done = subprocess.run(
        [str(CLI), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=cli_env(key),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@dataclass
class Running:
    """A command started in the background; stderr is read line by line as it comes."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    stdout: str = ""
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _readers: list[threading.Thread] = field(default_factory=list)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for_line(self, needle: str, timeout: float = 30.0) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(needle in line for line in self.lines) or self.proc.poll() is not None,
                timeout=timeout,
            )
            hits = [line for line in self.lines if needle in line]
        if not found or not hits:
            raise AssertionError(f"no {needle!r} on stderr:\n{''.join(self.lines)}")
        return hits[0]

    def finish(self, timeout: float = TIMEOUT_S) -> Ran:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return Ran(code, self.stdout, "".join(self.lines))


def start_cli(*args: str, key: str | None, cwd: Path) -> Running:
    proc = subprocess.Popen(
        [str(CLI), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(key),
        cwd=cwd,
        preexec_fn=_default_sigint,
    )
    running = Running(proc)
    running._readers = [
        threading.Thread(target=running._read_stderr, daemon=True),
        threading.Thread(target=running._read_stdout, daemon=True),
    ]
    for reader in running._readers:
        reader.start()
    return running


class Seen:
    """What a sandbox served from now on (its stats are shared with other tests)."""

    def __init__(self, handle: SandboxHandle) -> None:
        self.handle = handle
        self._before = handle.stats.snapshot()

    @property
    def requests(self) -> int:
        return self.handle.stats.total - self._before.total

    @property
    def by_method(self) -> dict[str, int]:
        now = Counter(self.handle.stats.by_method)
        now.subtract(self._before.by_method)
        return {method: n for method, n in now.items() if n}

    @property
    def rate_limited(self) -> int:
        return self.handle.stats.rate_limited - self._before.rate_limited


def list_counts(handle: SandboxHandle) -> dict[tuple[str, str], int]:
    """(resource, variant) -> rows, for every list a preview counts (no nested lists)."""
    return {k: n for k, n in handle.store.counts().items() if k != NESTED}


def minimum_requests(handle: SandboxHandle) -> int:
    """A full download's floor: a page per list (at least one each), one list per
    practitioner for its reference numbers, /user and /settings."""
    counts = list_counts(handle)
    practitioners = sum(n for (r, _v), n in counts.items() if r == "practitioners")
    return expected_requests(counts) + practitioners


def unfiltered_pages(handle: SandboxHandle) -> int:
    """Pages of the lists Cliniko gives no `updated_at` filter for (a top-up reads them whole)."""
    counts = list_counts(handle)
    return sum(
        max(1, math.ceil(counts[(r.name, v)] / 100))
        for r, v in list_variants(resources_for(ALL_PARTS))
        if not r.incremental
    )


def referral_pages(handle: SandboxHandle) -> int:
    """Pages of the referral sources list, which a top-up skips when fewer patients changed."""
    return max(1, math.ceil(list_counts(handle)[("referral_sources", "active")] / 100))


def topup_floor(handle: SandboxHandle) -> int:
    """A top-up with nothing changed, at most: /user, /settings, one page per filtered list,
    and the unfiltered lists whole (referral sources may instead cost one request per patient
    the top-up saw change, when that is fewer)."""
    lists = list_variants(resources_for(ALL_PARTS))
    filtered = sum(1 for r, _v in lists if r.incremental)
    return 2 + filtered + unfiltered_pages(handle)


def written_files(folder: Path) -> Iterator[Path]:
    yield from (p for p in sorted(folder.rglob("*")) if p.is_file())


def assert_key_nowhere(key: str, folder: Path, *outputs: Ran) -> None:
    """The key is in no file under `folder` (staging, -wal, -shm, lock) and no output."""
    secret = key.encode()
    body = secret.rsplit(b"-", 1)[0]  # the key without its shard suffix, too
    for path in written_files(folder):
        data = path.read_bytes()
        assert secret not in data and body not in data, f"the API key is in {path.name}"
    for ran in outputs:
        for text in (ran.stdout, ran.stderr):
            assert key not in text and body.decode() not in text, "the API key was printed"


def assert_one_error_line(ran: Ran) -> None:
    """A refusal is a message for the operator, never a traceback."""
    assert ran.stderr.strip(), ran
    assert "Traceback" not in ran.stderr and "Exception Group" not in ran.stderr, ran
    assert "error: " in ran.stderr, ran


@pytest.fixture
def tiny(sandbox: SandboxHandle) -> SandboxHandle:
    """The session's tiny clinic with the fast window (restored by `sandbox` afterwards)."""
    sandbox.set_rate_limit(*FAST_RATE)
    return sandbox
