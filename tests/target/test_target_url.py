"""--target values: sqlite URLs and plain paths, PostgreSQL not yet, everything else refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from target import BackendUnavailable, BadTargetURL, open_target, parse_target_url
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
    "url",
    [
        "postgresql://clinic:hunter2@db.example.org:5432/clinic",
        "postgres://db/clinic",
        "postgresql+psycopg://db/clinic",
    ],
)
def test_postgresql_is_not_available_yet(url: str) -> None:
    with pytest.raises(BackendUnavailable) as info:
        open_target(url)
    message = str(info.value)
    assert "postgres" in message
    assert "extra" in message
    assert "hunter2" not in message
    assert parse_target_url(url).backend == "postgresql"


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
