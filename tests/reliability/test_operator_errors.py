"""Every bad input an operator can give, in one table (issue 6, item 5).

Each case runs the real `cliniko-switch` command as a separate process (key only in the
environment, stdin not a terminal, HOME in the test's folder) and must:

- exit with the code DESIGN.md section 2 gives (2 bad input, 3 interrupted: run it again);
- say what is wrong on one `error:` line of stderr (click's own usage errors say `Error:`),
  with the words the table expects, and no traceback;
- print nothing on stdout (with `--json`: nothing, or one valid JSON document);
- leave no file half-written: nothing new in the folder (or in HOME) but the empty `-wal`
  and `-shm` side files SQLite itself keeps beside a database it opened, and every file that
  was there byte for byte and mode for mode as it was;
- not reach the sandbox when the input can be refused before the network, and never show
  the key.

The cases are data: `EXTRACT_CASES` (download, preview), `LOAD_CASES` (plan, load) and
`TUI_CASES` (the full-screen app's refusals: `cliniko-switch`, `review`, `demo`), all run by
`test_a_bad_input_is_refused_cleanly`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import stage_store

from engine.load import load
from sandbox.runner import SandboxHandle
from sandbox.store import ClinicStore
from staging import open_staging

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("cliniko-switch")
TIMEOUT_S = 180.0
EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 3
UNKNOWN_KEY = "Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1"


# --- the world a case runs in -------------------------------------------------------------------


@dataclass
class World:
    """The test's folder and what a case's argv may name (as `{name}` placeholders)."""

    tmp: Path
    sandbox: SandboxHandle
    good_staging: Path
    good_clinic: Path

    @property
    def staging(self) -> Path:
        return self.tmp / "clinic.staging"

    @property
    def clinic(self) -> Path:
        return self.tmp / "clinic.db"

    @property
    def folder(self) -> Path:
        return self.tmp / "a-folder"

    def placeholders(self) -> dict[str, str]:
        return {
            "staging": str(self.staging),
            "clinic": str(self.clinic),
            "target": f"sqlite:///{self.clinic}",
            "folder": str(self.folder),
            "tmp": str(self.tmp),
            "api": self.sandbox.base_url,
            "closed": f"http://127.0.0.1:{closed_port()}/v1",
        }


Setup = Callable[[World], AbstractContextManager[Any] | None]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy(src: Path, dest: Path) -> None:
    shutil.copyfile(src, dest)
    dest.chmod(0o600)


def _damage(path: Path) -> None:
    """Overwrite pages 2 to 10: the header still says SQLite, the b-trees are garbage."""
    data = bytearray(path.read_bytes())
    assert len(data) > 10 * 4096, "the file is too small to damage meaningfully"
    data[4096 : 10 * 4096] = b"\x5a" * (9 * 4096)
    path.write_bytes(bytes(data))


def good_staging(w: World) -> None:
    _copy(w.good_staging, w.staging)


def good_clinic(w: World) -> None:
    _copy(w.good_clinic, w.clinic)


def folder_at_staging(w: World) -> None:
    w.staging.mkdir()


def folder_at_clinic(w: World) -> None:
    w.clinic.mkdir()


def text_at_staging(w: World) -> None:
    w.staging.write_text("not a staging file\n" * 50)


def clinic_at_staging(w: World) -> None:
    _copy(w.good_clinic, w.staging)


def staging_at_clinic(w: World) -> None:
    _copy(w.good_staging, w.clinic)


def damaged_staging(w: World) -> None:
    good_staging(w)
    _damage(w.staging)


def damaged_clinic(w: World) -> None:
    good_clinic(w)
    _damage(w.clinic)


def garbage_clinic(w: World) -> None:
    w.clinic.write_bytes(b"this is not a database\n" * 500)


def newer_staging(w: World) -> None:
    good_staging(w)
    con = sqlite3.connect(w.staging)
    with con:
        con.execute("UPDATE _meta SET value = '999' WHERE key = 'schema_version'")
    con.close()


def newer_clinic(w: World) -> None:
    good_clinic(w)
    con = sqlite3.connect(w.clinic)
    with con:
        con.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) "
            "VALUES (999, 'from a newer cliniko-switch', '2030-01-01T00:00:00Z')"
        )
    con.close()


@contextlib.contextmanager
def _locked_staging(w: World) -> Iterator[None]:
    with open_staging(w.staging, create=False):  # this process is the other writer
        yield


def locked_staging(w: World) -> AbstractContextManager[None]:
    good_staging(w)
    return _locked_staging(w)


@contextlib.contextmanager
def _locked_clinic(w: World) -> Iterator[None]:
    con = sqlite3.connect(w.clinic, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")  # another program is writing the clinic
        yield
        con.execute("ROLLBACK")
    finally:
        con.close()


def locked_clinic(w: World) -> AbstractContextManager[None]:
    good_clinic(w)
    return _locked_clinic(w)


def a_folder(w: World) -> None:
    w.folder.mkdir()


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    """The command's arguments, with `{placeholders}` from `World.placeholders`."""
    message: str
    """Words the error line must contain."""
    code: int = EXIT_BAD_INPUT
    key: str | None = "admin"
    """admin, revoked, restricted, unknown (the sandbox's), None (unset) or the key itself."""
    setup: tuple[Setup, ...] = ()
    network: bool = False
    """Whether the command may reach the sandbox before refusing (a key only Cliniko can
    judge); when False the sandbox must see no request at all."""
    absent: tuple[str, ...] = ()
    """Words that must not appear in any output (a password given in a URL, say)."""
    env: dict[str, str] = field(default_factory=dict)


def case(id: str, *argv: str, marks: Any = (), **kw: Any) -> Any:
    return pytest.param(Case(argv=argv, **kw), id=id, marks=marks)


API = ("--api-url", "{api}", "--rate-limit", "200/2")
DOWNLOAD = ("download", "--staging", "{staging}", *API)
PLAN = ("plan", "--staging", "{staging}", "--target", "{target}")
LOAD = ("load", "--staging", "{staging}", "--target", "{target}", "--yes")

EXTRACT_CASES = [
    case("download-no-key-no-terminal", *DOWNLOAD, key=None, message="set CLINIKO_API_KEY"),
    case("download-key-with-spaces", *DOWNLOAD, key="not a key at all", message="spaces"),
    case("download-key-cut-short", *DOWNLOAD, key="a1b2c3", message="too short"),
    case("download-key-in-quotes", *DOWNLOAD, key='"QUOTED"', message="quotes"),
    case("download-wrong-region", *DOWNLOAD, "--region", "uk1", message="choose au1"),
    case("download-unknown-region", *DOWNLOAD, "--region", "mars", message="choose au1"),
    case("download-unknown-key-401", *DOWNLOAD, key="unknown", message="(401)", network=True),
    case("download-revoked-key-401", *DOWNLOAD, key="revoked", message="(401)", network=True),
    case(
        "download-restricted-key-403",
        *DOWNLOAD,
        key="restricted",
        message="(403)",
        network=True,
    ),
    case(
        "download-unreachable-network",
        "download",
        "--staging",
        "{staging}",
        "--api-url",
        "{closed}",
        code=EXIT_INTERRUPTED,
        message="could not be reached",
        marks=pytest.mark.hard,  # the client retries a refused connection with backoff
    ),
    case(
        "download-plain-http-to-a-remote-host",
        *DOWNLOAD,
        "--api-url",
        "http://api.au1.cliniko.com/v1",
        message="Plain http",
    ),
    case(
        "download-plain-http-to-a-name-that-looks-local",
        *DOWNLOAD,
        "--api-url",
        "http://127.0.0.1.nip.io/v1",
        message="Plain http",
    ),
    case(
        "download-api-url-not-http", *DOWNLOAD, "--api-url", "ftp://x.example/v1", message="https"
    ),
    case(
        "download-api-url-with-a-password",
        *DOWNLOAD,
        "--api-url",
        "https://me:hunter2@api.au1.cliniko.com/v1",
        message="user name or password",
        absent=("hunter2",),
    ),
    case("download-rate-not-n-per-s", *DOWNLOAD, "--rate-limit", "fast", message="--rate-limit"),
    case("download-rate-zero", *DOWNLOAD, "--rate-limit", "0/60", message="--rate-limit"),
    case("download-rate-zero-window", *DOWNLOAD, "--rate-limit", "200/0", message="--rate-limit"),
    case("download-rate-negative", *DOWNLOAD, "--rate-limit", "-5/60", message="--rate-limit"),
    case("download-unknown-only-part", *DOWNLOAD, "--only", "patients,bogus", message="'bogus'"),
    case(
        "download-staging-is-a-folder",
        *DOWNLOAD,
        setup=(folder_at_staging,),
        message="is a directory",
    ),
    case(
        "download-staging-folder-missing",
        "download",
        "--staging",
        "{tmp}/no-such-folder/clinic.staging",
        *API,
        message="cannot create the file",
        network=True,  # the file is made only once the key is proven (/user, /settings)
    ),
    case(
        "download-staging-is-a-text-file",
        *DOWNLOAD,
        setup=(text_at_staging,),
        message="not a SQLite database",
    ),
    case(
        "download-staging-is-a-clinic-store",
        *DOWNLOAD,
        setup=(clinic_at_staging,),
        message="not a cliniko-switch staging file",
    ),
    case("download-staging-damaged", *DOWNLOAD, setup=(damaged_staging,), message="damaged"),
    case(
        "download-staging-locked-by-another-download",
        *DOWNLOAD,
        setup=(locked_staging,),
        message="another cliniko-switch",
    ),
    case(
        "download-staging-from-a-newer-version",
        *DOWNLOAD,
        setup=(newer_staging,),
        message="newer than this cliniko-switch",
    ),
    case("download-json-bad-key", *DOWNLOAD, "--json", key="not a key at all", message="spaces"),
    case(
        "download-json-revoked-key",
        *DOWNLOAD,
        "--json",
        key="revoked",
        message="(401)",
        network=True,
    ),
    case("preview-no-key", "preview", *API, key=None, message="set CLINIKO_API_KEY"),
    case(
        "preview-json-restricted-key",
        "preview",
        *API,
        "--json",
        key="restricted",
        message="(403)",
        network=True,
    ),
    case("preview-wrong-region", "preview", *API, "--region", "eu1", message="choose au1"),
]

LOAD_CASES = [
    case("plan-staging-missing", *PLAN, message="no such file"),
    case("load-staging-missing", *LOAD, message="no such file"),
    case("plan-json-staging-missing", *PLAN, "--json", message="no such file"),
    case("plan-staging-is-a-folder", *PLAN, setup=(folder_at_staging,), message="is a directory"),
    case(
        "plan-staging-is-a-text-file",
        *PLAN,
        setup=(text_at_staging,),
        message="not a SQLite database",
    ),
    case(
        "plan-staging-is-a-clinic-store",
        *PLAN,
        setup=(clinic_at_staging,),
        message="not a cliniko-switch staging file",
    ),
    case("plan-staging-damaged", *PLAN, setup=(damaged_staging,), message="damaged"),
    case("load-staging-damaged", *LOAD, setup=(damaged_staging,), message="damaged"),
    case(
        "load-staging-from-a-newer-version",
        *LOAD,
        setup=(newer_staging,),
        message="newer than this cliniko-switch",
    ),
    case(
        "plan-unknown-only-part",
        *PLAN,
        "--only",
        "patients,bogus",
        setup=(good_staging,),
        message="unknown part",
    ),
    case(
        "load-unknown-only-part",
        *LOAD,
        "--only",
        "bogus",
        setup=(good_staging,),
        message="unknown part",
    ),
    case(
        "load-target-unknown-scheme",
        "load",
        "--staging",
        "{staging}",
        "--target",
        "mysql://clinic@db.example/clinic",
        "--yes",
        setup=(good_staging,),
        message="Unsupported target",
    ),
    case(
        "load-target-two-slashes",
        "load",
        "--staging",
        "{staging}",
        "--target",
        "sqlite://clinic.db",
        "--yes",
        setup=(good_staging,),
        message="three slashes",
    ),
    case(
        "load-target-postgresql-unreachable",
        "load",
        "--staging",
        "{staging}",
        "--target",
        "postgresql://clinic@127.0.0.1:1/clinic",
        "--yes",
        setup=(good_staging,),
        message="127.0.0.1",
    ),
    case(
        "load-target-is-a-folder",
        *LOAD,
        setup=(good_staging, folder_at_clinic),
        message="is a directory",
    ),
    case(
        "load-target-folder-missing",
        "load",
        "--staging",
        "{staging}",
        "--target",
        "sqlite:///{tmp}/no-such-folder/clinic.db",
        "--yes",
        setup=(good_staging,),
        message="does not exist",
    ),
    case(
        "load-target-not-a-database",
        *LOAD,
        setup=(good_staging, garbage_clinic),
        message="not an SQLite database",
    ),
    case(
        "load-target-damaged",
        *LOAD,
        setup=(good_staging, damaged_clinic),
        message="not a usable SQLite database",
    ),
    case(
        "load-target-is-the-staging-file",
        *LOAD,
        setup=(good_staging, staging_at_clinic),
        message="not a clinic store",
    ),
    case(
        "plan-target-from-a-newer-version",
        *PLAN,
        setup=(good_staging, newer_clinic),
        message="newer than this cliniko-switch",
    ),
    case(
        "load-target-from-a-newer-version",
        *LOAD,
        setup=(good_staging, newer_clinic),
        message="newer than this cliniko-switch",
    ),
    case(
        "load-target-locked-by-another-program",
        *LOAD,
        setup=(good_staging, locked_clinic),
        message="locked by another program",
    ),
    case(
        "load-json-target-damaged",
        *LOAD,
        "--json",
        setup=(good_staging, damaged_clinic),
        message="not a usable SQLite database",
    ),
    case(
        "load-without-yes-and-no-terminal",
        "load",
        "--staging",
        "{staging}",
        "--target",
        "{target}",
        setup=(good_staging,),
        message="--yes",
    ),
    case(
        "load-skipped-csv-folder-missing",
        *LOAD,
        "--skipped-csv",
        "{tmp}/no-such-folder/skipped.csv",
        setup=(good_staging,),
        message="the folder",
    ),
]

TUI_CASES: list[Any] = [
    # The full-screen app's own refusals, before it takes the screen (the in-screen ones, a
    # bad key, a wrong region, a 401 or 403, the network down, a bad target, are asserted on
    # the screens themselves in tests/tui/test_connect.py and test_load_screen.py).
    case("wizard-without-a-terminal", key=None, message="needs a terminal"),
    case(
        "wizard-plain-http-to-a-remote-host",
        "--api-url",
        "http://api.au1.cliniko.com/v1",
        key=None,
        message="Plain http",
    ),
    case("wizard-bad-rate-limit", "--rate-limit", "lots", key=None, message="--rate-limit"),
    case("review-missing-file", "review", "{staging}", key=None, message="no such file"),
    case(
        "review-not-a-database",
        "review",
        "{staging}",
        key=None,
        setup=(text_at_staging,),
        message="not a SQLite database",
    ),
    case(
        "review-a-clinic-store-not-a-staging-file",
        "review",
        "{staging}",
        key=None,
        setup=(clinic_at_staging,),
        message="not a cliniko-switch staging file",
    ),
    case(
        "review-damaged-file",
        "review",
        "{staging}",
        key=None,
        setup=(damaged_staging,),
        message="damaged",
    ),
    case(
        "review-a-folder",
        "review",
        "{folder}",
        key=None,
        setup=(a_folder,),
        message="is a directory",
    ),
    case(
        "review-newer-staging",
        "review",
        "{staging}",
        key=None,
        setup=(newer_staging,),
        message="newer",
    ),
    case(
        "review-good-file-without-a-terminal",
        "review",
        "{staging}",
        key=None,
        setup=(good_staging,),
        message="needs a terminal",
    ),
]

CASES = [*EXTRACT_CASES, *LOAD_CASES, *TUI_CASES]


# --- running a case -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    data: bytes
    mode: int


def files_under(*roots: Path) -> dict[Path, FileState]:
    out: dict[Path, FileState] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out[path] = FileState(path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return out


def assert_nothing_half_written(
    before: dict[Path, FileState], after: dict[Path, FileState]
) -> None:
    for path, state in before.items():
        assert path in after, f"{path.name} was removed"
        assert after[path] == state, f"{path.name} was changed"
    for path in sorted(set(after) - set(before)):
        # SQLite's own side files beside a database it opened (a read-only connection keeps
        # them): allowed when they hold nothing and are as private as the database.
        base = path.with_name(path.name.rsplit("-", 1)[0])
        sqlite_side = path.name.endswith(("-wal", "-shm")) and base in before
        assert sqlite_side, f"{path.name} was left behind"
        assert after[path].mode == 0o600, f"{path.name} is not 0600"
        if path.name.endswith("-wal"):
            assert after[path].data == b"", f"{path.name} holds writes"


def key_for(kind: str | None, handle: SandboxHandle) -> str | None:
    if kind == "admin":
        return handle.api_key
    if kind == "unknown":
        return UNKNOWN_KEY
    if kind == "revoked":
        key = handle.keys.add_key("administrator")
        handle.keys.revoke(key)
        return key
    if kind == "restricted":
        return handle.keys.add_key("restricted")
    if kind == '"QUOTED"':
        return f'"{handle.api_key}"'
    return kind


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error: ", "Error: "))]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A staged tiny clinic and the clinic store a load of it makes (copied into each case)."""
    folder = tmp_path_factory.mktemp("prepared")
    with ClinicStore.generate("tiny", seed=1) as store:
        staging = stage_store(store, folder / "good.staging")
    clinic = folder / "good.db"
    result = load(staging, f"sqlite:///{clinic}", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert result.ok
    return staging, clinic


@pytest.mark.parametrize("c", CASES)
def test_a_bad_input_is_refused_cleanly(
    c: Case, sandbox: SandboxHandle, prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    world = World(work, sandbox, *prepared)
    key = key_for(c.key, sandbox)
    env = {k: v for k, v in os.environ.items() if k != "CLINIKO_API_KEY"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONUNBUFFERED="1")
    env.update(XDG_DATA_HOME=str(home / ".local/share"), XDG_CACHE_HOME=str(home / ".cache"))
    env.update(XDG_STATE_HOME=str(home / ".local/state"), **c.env)
    if key is not None:
        env["CLINIKO_API_KEY"] = key
    argv = [str(CLI), *(a.format(**world.placeholders()) for a in c.argv)]

    holders = [held for setup in c.setup if (held := setup(world)) is not None]
    # Before taking a lock: reading a database file in this process would drop the POSIX
    # locks SQLite holds on it here (closing any descriptor of a file does that).
    before = files_under(work, home)
    with contextlib.ExitStack() as stack:
        for held in holders:
            stack.enter_context(held)
        seen = sandbox.stats.snapshot()
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=TIMEOUT_S,
            check=False,
        )
    after = files_under(work, home)
    now = sandbox.stats.snapshot()
    shown = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"

    assert done.returncode == c.code, shown
    assert "Traceback" not in done.stderr and "Exception Group" not in done.stderr, shown
    errors = error_lines(done.stderr)
    assert len(errors) == 1, shown
    assert c.message in errors[0], shown
    if "--json" in c.argv and done.stdout.strip():
        json.loads(done.stdout)  # one valid JSON document, nothing else
    else:
        assert done.stdout == "", shown
    assert_nothing_half_written(before, after)
    requests = now.total - seen.total
    if not c.network:
        assert requests == 0, f"the sandbox saw {requests} request(s) for a refusable input"
    assert now.non_get == seen.non_get
    for secret in (sandbox.api_key, key or sandbox.api_key, *c.absent):
        assert secret not in done.stdout and secret not in done.stderr, "a secret was shown"


def test_the_table_covers_every_command_that_takes_input() -> None:
    commands = {(c.values[0].argv or ("(wizard)",))[0] for c in CASES}
    assert {"download", "preview", "plan", "load", "review"} <= commands
    assert {"(wizard)", "--api-url", "--rate-limit"} <= commands  # the wizard's own options
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
