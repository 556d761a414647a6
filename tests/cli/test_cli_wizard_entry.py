"""The commands that open the full-screen app, run without a terminal (as CI runs them):
the wizard and `review` refuse with a one-line message, and `demo` falls back to the whole job
on stderr, so `make demo` still ends with a verified clinic where there is no screen."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli


def test_wizard_without_a_terminal_says_what_to_use_instead(tmp_path: Path) -> None:
    ran = run_cli(key=None, cwd=tmp_path)
    assert ran.code == 2, ran
    assert "needs a terminal" in ran.stderr
    assert "download" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert list(tmp_path.iterdir()) == []


def test_wizard_refuses_plain_http_to_another_host(tmp_path: Path) -> None:
    ran = run_cli("--api-url", "http://api.example.com/v1", key=None, cwd=tmp_path)
    assert ran.code == 2, ran
    assert "--api-url" in ran.stderr and "Plain http" in ran.stderr


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not a database\n" * 20), "not a sqlite database"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["missing", "not-sqlite", "directory"],
)
def test_review_refuses_a_file_it_cannot_open(tmp_path: Path, setup: object, message: str) -> None:
    target = tmp_path / "clinic.sqlite"
    setup(target)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.iterdir())
    ran = run_cli("review", str(target), key=None, cwd=tmp_path)
    assert ran.code == 2, ran
    assert message in ran.stderr.lower()
    assert "Traceback" not in ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_review_of_a_good_file_needs_a_terminal_not_a_key(
    tmp_path: Path, tiny_staged_copy: Path
) -> None:
    ran = run_cli("review", str(tiny_staged_copy), key=None, cwd=tmp_path)
    assert ran.code == 2, ran
    assert "needs a terminal" in ran.stderr
    assert "key" not in ran.stderr.lower()


def test_demo_without_a_terminal_runs_the_whole_job(tmp_path: Path) -> None:
    ran = run_cli("demo", "--size", "tiny", key=None, cwd=tmp_path, timeout=180)
    assert ran.code == 0, ran
    assert "verification: ok" in ran.stderr
    with sqlite3.connect(tmp_path / "clinic.db") as db:
        patients = db.execute("SELECT count(*) FROM patients").fetchone()[0]
        outbox = db.execute("SELECT count(*) FROM message_outbox").fetchone()[0]
    assert patients > 0
    assert outbox == 0
    assert (tmp_path / "demo-staging.sqlite").stat().st_mode & 0o777 == 0o600


# --- in a real terminal (a pseudo-terminal), as an operator over SSH runs it --------------------


class Terminal:
    """`cliniko-switch ARGS` on a 80x24 pseudo-terminal; what it drew is kept as bytes."""

    def __init__(self, *args: str, cwd: Path) -> None:
        import fcntl
        import os
        import pty
        import struct
        import termios

        from tests.cli.conftest import CLI, cli_env

        env = cli_env(None)
        env.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the command
            os.chdir(cwd)
            os.execve(str(CLI), [str(CLI), *args], env)  # noqa: S606 - our own command
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.out = b""

    def read_until(self, needle: bytes, seconds: float = 60.0) -> None:
        import os
        import select
        import time

        end = time.monotonic() + seconds
        while needle not in self.out:
            assert time.monotonic() < end, f"{needle!r} never appeared"
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:  # the child has gone
                    assert needle in self.out, f"{needle!r} never appeared"

    def send(self, keys: bytes) -> None:
        import os

        os.write(self.fd, keys)

    def wait(self, seconds: float = 30.0) -> int:
        import os
        import time

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with contextlib.suppress(OSError):
                self.out += os.read(self.fd, 65536)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError("the app did not exit")


LEAVE_ALT_SCREEN = b"\x1b[?1049l"
CTRL_N, CTRL_Q = b"\x0e", b"\x11"


def test_demo_in_a_terminal_downloads_and_quits_cleanly(tmp_path: Path) -> None:
    term = Terminal("demo", "--size", "tiny", cwd=tmp_path)
    term.read_until(b"Connect to Cliniko")
    term.send(CTRL_N)  # connect & preview with the sandbox's key
    term.read_until(b"Preview and select")
    term.send(CTRL_N)  # download everything
    term.read_until(b"Download complete")
    term.send(CTRL_Q)
    assert term.wait() == 0
    assert LEAVE_ALT_SCREEN in term.out  # the terminal is given back as it was
    assert (tmp_path / "demo-staging.sqlite").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "cliniko-switch-crash.log").exists()


def test_sigterm_stops_the_wizard_resumably_and_restores_the_terminal(tmp_path: Path) -> None:
    import os
    import signal

    term = Terminal("demo", "--size", "tiny", cwd=tmp_path)
    term.read_until(b"Connect to Cliniko")
    os.kill(term.pid, signal.SIGTERM)
    assert term.wait() == 3  # interrupted: run it again to resume
    assert LEAVE_ALT_SCREEN in term.out
