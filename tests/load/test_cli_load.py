"""`cliniko-switch plan` and `cliniko-switch load`: JSON, confirmation, exit codes."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from staging import open_staging
from target import open_target
from tests.backends import Clinics, raw
from tui.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_VERIFY_FAILED, cli

from .clinic import small_clinic
from .conftest import SOURCE, assert_quiet


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def fresh_staging(tmp_path: Path) -> Path:
    """The small clinic, staged (the command line plans with the real clock)."""
    return small_clinic().stage(tmp_path / "cli.staging")


def test_plan_json_and_exit_0(fresh_staging: Path, target_url: str, clinics: Clinics) -> None:
    result = run("plan", "--staging", str(fresh_staging), "--target", target_url, "--json")
    assert result.exit_code == EXIT_OK, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == SOURCE
    assert doc["counts"]["patient"] == {
        "create": 3,
        "update": 0,
        "unchanged": 0,
        "conflict": 0,
        "skip": 1,
        "matched": 0,
    }
    assert {s["code"] for s in doc["skipped"]} >= {"deleted_in_cliniko", "draft_note"}
    assert doc["conflicts"] == []
    assert "plan for cliniko:au1:4711" in result.stderr
    assert not clinics.exists()


def test_plan_only_parts(fresh_staging: Path, target_url: str) -> None:
    result = run(
        "plan",
        "--staging",
        str(fresh_staging),
        "--target",
        target_url,
        "--only",
        "patients",
        "--json",
    )
    assert result.exit_code == EXIT_OK
    assert set(json.loads(result.stdout)["counts"]) == {"patient"}
    bad = run("plan", "--staging", str(fresh_staging), "--only", "appointments")
    assert bad.exit_code == EXIT_BAD_INPUT
    assert "unknown part" in bad.stderr


def test_load_needs_yes_without_a_terminal(
    fresh_staging: Path, target_url: str, clinics: Clinics
) -> None:
    result = run("load", "--staging", str(fresh_staging), "--target", target_url)
    assert result.exit_code == EXIT_BAD_INPUT
    assert "--yes" in result.stderr
    assert not clinics.exists()


def test_load_yes_json_and_skipped_csv(
    fresh_staging: Path, target_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "skipped.csv"
    result = run(
        "load",
        "--staging",
        str(fresh_staging),
        "--target",
        target_url,
        "--yes",
        "--json",
        "--skipped-csv",
        str(report),
    )
    assert result.exit_code == EXIT_OK, result.stderr
    doc = json.loads(result.stdout)
    assert doc["verification"]["ok"] is True
    assert doc["plan"]["totals"]["create"] == 19
    assert doc["verification"]["counts"]["invoice"] == {"expected": 4, "linked": 4}
    assert doc["verification"]["outbox_count"] == 0
    assert [s["cliniko_id"] for s in doc["verification"]["status_only_open"]] == ["101"]
    with report.open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    assert "verification: ok" in result.stderr
    with open_target(target_url) as store:
        assert_quiet(store)
    again = run("load", "--staging", str(fresh_staging), "--target", target_url, "--yes", "--json")
    assert again.exit_code == EXIT_OK
    assert json.loads(again.stdout)["plan"]["totals"]["unchanged"] == 19


def test_load_exit_1_when_verification_fails(fresh_staging: Path, target_url: str) -> None:
    assert (
        run("load", "--staging", str(fresh_staging), "--target", target_url, "--yes").exit_code == 0
    )
    with open_target(target_url) as store:
        raw(store, "UPDATE clinic_settings SET messaging_enabled = TRUE")  # someone did
    result = run("load", "--staging", str(fresh_staging), "--target", target_url, "--yes", "--json")
    assert result.exit_code == EXIT_VERIFY_FAILED
    doc = json.loads(result.stdout)
    assert [d["check"] for d in doc["verification"]["differences"]] == ["settings"]


def test_bad_inputs_exit_2_with_a_message(
    tmp_path: Path, fresh_staging: Path, target_url: str, clinics: Clinics
) -> None:
    missing = run("plan", "--staging", str(tmp_path / "nope.staging"))
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "no such file" in missing.stderr

    junk = tmp_path / "junk.staging"
    junk.write_bytes(b"this is not a database at all" * 100)
    not_db = run("plan", "--staging", str(junk), "--target", target_url)
    assert not_db.exit_code == EXIT_BAD_INPUT
    assert "error:" in not_db.stderr

    bad_url = run("plan", "--staging", str(fresh_staging), "--target", "mysql://x/y")
    assert bad_url.exit_code == EXIT_BAD_INPUT
    assert "Unsupported target" in bad_url.stderr

    with open_staging(fresh_staging, create=False) as staging:  # a download is writing it
        locked = run("load", "--staging", str(fresh_staging), "--target", target_url, "--yes")
        assert staging.path == fresh_staging
    assert locked.exit_code == EXIT_BAD_INPUT
    assert "download is writing" in locked.stderr

    newer = tmp_path / "newer.staging"
    newer.write_bytes(fresh_staging.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE _meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    too_new = run("plan", "--staging", str(newer), "--target", target_url)
    assert too_new.exit_code == EXIT_BAD_INPUT
    assert "newer" in too_new.stderr

    clinic = clinics.url("newer-clinic")
    with open_target(clinic) as store:
        raw(
            store,
            "INSERT INTO schema_migrations (version, description, applied_at) "
            "VALUES (99, 'future', CURRENT_TIMESTAMP)",
        )
    newer_clinic = run("load", "--staging", str(fresh_staging), "--target", clinic, "--yes")
    assert newer_clinic.exit_code == EXIT_BAD_INPUT
    assert "newer" in newer_clinic.stderr

    staging_as_target = run("plan", "--staging", str(fresh_staging), "--target", str(fresh_staging))
    assert staging_as_target.exit_code == EXIT_BAD_INPUT
    assert "not a clinic store" in staging_as_target.stderr
