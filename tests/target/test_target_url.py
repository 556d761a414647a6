"""--target values: sqlite URLs and plain paths, postgresql URLs (schema option, passwords
never shown), everything else refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from target import BackendUnavailable, BadTargetURL, open_target, parse_target_url, redact
from target.url import ACCEPTED_FORMS


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///clinic.db", Path("clinic.db")),
        ("sqlite:///data/clinic.db", Path("data/clinic.db")),
        ("sqlite:////srv/clinics/clinic.db", Path("/srv/clinics/clinic.db")),
        ("SQLITE:///clinic.db", Path("clinic.db")),
        ("sqlite:///my%20clinic.db", Path("my clinic.db")),
        ("clinic.db", Path("clinic.db")),
        ("./x/clinic.db", Path("x/clinic.db")),
        ("/srv/clinic.db", Path("/srv/clinic.db")),
        ("  clinic.db  ", Path("clinic.db")),
    ],
)
def test_sqlite_forms(url: str, path: Path) -> None:
    location = parse_target_url(url)
    assert location.backend == "sqlite"
    assert location.path == path


def test_home_is_expanded() -> None:
    location = parse_target_url("~/clinic.db")
    assert location.path == Path.home() / "clinic.db"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "sqlite://clinic.db",
        "sqlite://host/clinic.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///clinic.db?mode=ro",
        "sqlite:clinic.db",
        "mysql://user@db/clinic",
        "http://example.org/clinic.db",
        "file:///srv/clinic.db",
    ],
)
def test_bad_urls_say_what_is_accepted(url: str) -> None:
    with pytest.raises(BadTargetURL) as info:
        parse_target_url(url)
    message = str(info.value)
    assert "sqlite:///" in message


def test_unsupported_schemes_list_the_accepted_forms_without_the_password() -> None:
    with pytest.raises(BadTargetURL) as info:
        open_target("mysql://clinic:hunter2@db.example.org/clinic")
    assert ACCEPTED_FORMS in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "clinic:***@" in str(info.value)


@pytest.mark.parametrize(
    ("url", "conninfo", "schema", "display"),
    [
        (
            "postgresql://clinic:hunter2@db.example.org:5432/clinic?schema=clinic_a",
            "postgresql://clinic:hunter2@db.example.org:5432/clinic",
            "clinic_a",
            "postgresql://clinic:***@db.example.org:5432/clinic?schema=clinic_a",
        ),
        ("postgres://db/clinic", "postgresql://db/clinic", "public", "postgres://db/clinic"),
        (
            "postgresql+psycopg://db/clinic?sslmode=require&schema=c2",
            "postgresql://db/clinic?sslmode=require",
            "c2",
            "postgresql+psycopg://db/clinic?sslmode=require&schema=c2",
        ),
        (
            "postgresql:///clinic?host=/run/postgresql&port=5433&password=hunter2",
            "postgresql:///clinic?host=%2Frun%2Fpostgresql&port=5433&password=hunter2",
            "public",
            "postgresql:///clinic?host=/run/postgresql&port=5433&password=***",
        ),
    ],
)
def test_postgresql_forms(url: str, conninfo: str, schema: str, display: str) -> None:
    location = parse_target_url(url)
    assert location.backend == "postgresql"
    assert location.path is None
    assert (location.conninfo, location.schema, location.display) == (conninfo, schema, display)
    assert "hunter2" not in repr(location)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("postgresql://db/clinic?schema=Clinic", "lower-case"),
        ("postgresql://db/clinic?schema=1st", "lower-case"),
        ("postgresql://db/clinic?schema=pg_catalog", "pg_"),
        ("postgresql://db/clinic?schema=a;drop", "lower-case"),
        ("postgresql://db/clinic?schema=a&schema=b", "once"),
        ("postgresql://u:hunter2@db/clinic?sslmode=sometimes", "sslmode"),
        ("postgresql://u:hunter2@db/clinic#x", "'#'"),
    ],
)
def test_bad_postgresql_urls_say_why_without_the_password(url: str, complaint: str) -> None:
    with pytest.raises(BadTargetURL) as info:
        parse_target_url(url)
    assert complaint in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:hunter2@db/c", "postgresql://u:***@db/c"),
        ("postgresql://:hunter2@db/c", "postgresql://:***@db/c"),
        (
            "postgresql://u@db/c?password=hunter2&schema=x",
            "postgresql://u@db/c?password=***&schema=x",
        ),
        ("postgresql://u@db/c?sslpassword=hunter2", "postgresql://u@db/c?sslpassword=***"),
        (
            "postgresql://u@db/c?schema=x&PASSWORD=hunter2",
            "postgresql://u@db/c?schema=x&PASSWORD=***",
        ),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_postgresql_without_psycopg_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    with pytest.raises(BackendUnavailable) as info:
        open_target("postgresql://clinic:hunter2@db.example.org:5432/clinic")
    message = str(info.value)
    assert "cliniko-switch[postgres]" in message
    assert "hunter2" not in message


def test_open_target_creates_a_relative_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_target("sqlite:///clinic.db") as store:
        assert store.url == "sqlite:///clinic.db"
        assert store.schema_version() >= 1
    assert (tmp_path / "clinic.db").is_file()


def test_a_missing_absolute_folder_hints_at_four_slashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="four slashes"):
        open_target("sqlite:///home/someone/clinic.db")
