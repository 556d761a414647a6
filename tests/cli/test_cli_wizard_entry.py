"""The commands that open the full-screen app, run without a terminal (as CI runs them):
the wizard and `review` refuse with a one-line message, and `demo` falls back to the whole job
on stderr, so `make demo` still ends with a verified clinic where there is no screen."""

from __future__ import annotations

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
