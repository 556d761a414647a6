"""A throwaway PostgreSQL server for the test session (a pytest plugin, see tests/conftest.py).

`pg_server` (session scope) finds PostgreSQL's server binaries, makes a cluster under a
temporary folder and starts it on a Unix socket in that folder and on a free loopback TCP
port; it is stopped (and the folder removed) at the end of the session, and at exit if the
session dies first. Unix-socket connections are trusted; TCP ones need a password (the
`clinic` role's, generated here), so that password handling can be tested for real.

When no server can be started (no PostgreSQL installed, no psycopg), the PostgreSQL tests are
skipped with the reason, except under CI (CI=true), where that is a failure:
`.ci/ensure-postgres` installs PostgreSQL first there (`make test` runs it).

Run as root (as CI does), initdb and the server run as an unprivileged user: `postgres` if
the system has one, else `nobody`. `CLINIKO_SWITCH_TEST_PG_BIN` names the folder holding
initdb, pg_ctl and postgres if they are somewhere unusual. A server left running by a session
that was killed outright (its folder names the process that started it) is stopped by the
next session.

    def test_x(pg_server: PgServer) -> None:
        url = pg_server.url(schema="clinic_x")      # postgresql://...?...&schema=clinic_x
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

BIN_ENV = "CLINIKO_SWITCH_TEST_PG_BIN"
DATABASE = "clinics"
ROLE = "clinic"
"""A login role with a password, for the TCP (password) tests; owns nothing special."""
PREFIX = "cliniko-pg-"
"""Temporary folders of the throwaway servers."""
OWNER_FILE = "owner.pid"
"""The process that started the server (a server whose owner is gone is reaped)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_bin() -> Path | None:
    """The folder with initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):  # named: that folder or nothing
        folder = Path(os.environ[BIN_ENV])
        found = all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))
        return folder if found else None
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    candidates += [Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin"), Path("/usr/bin")]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _temp_root() -> Path:
    """Where the server's folder goes: the temporary folder, unless the server's user could
    not reach it (root's own TMPDIR, say), then /tmp; short, for the socket's path."""
    root = Path(tempfile.gettempdir())
    if os.geteuid() == 0:
        reachable = all(p.stat().st_mode & 0o001 for p in (root, *root.parents))
        if not reachable or len(str(root)) > 40:
            root = Path("/tmp")  # world-traversable and sticky; our folder inside is 0700
    return root


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and there is no postgres or nobody user to run as")


@dataclass
class PgServer:
    bin: Path
    folder: Path
    port: int
    superuser: str
    password: str
    """The `clinic` role's password (TCP connections need it)."""
    user: pwd.struct_passwd | None = None
    durable: bool = False
    """Production durability (fsync, synchronous commit: for benchmarks); tests go without."""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "server.log"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, schema: str | None = None, database: str = DATABASE, **options: str) -> str:
        """A URL for the superuser over the Unix socket (no password needed)."""
        query = {"host": str(self.socket_dir), "port": str(self.port), **options}
        if schema is not None:
            query["schema"] = schema
        text = "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
        return f"postgresql://{self.superuser}@/{database}?{text}"

    def tcp_url(
        self,
        schema: str | None = None,
        *,
        user: str = ROLE,
        password: str | None = None,
        database: str = DATABASE,
        **options: str,
    ) -> str:
        """A URL over TCP on 127.0.0.1 (password authentication)."""
        auth = user if password is None else f"{user}:{quote(password, safe='')}"
        query = dict(options)
        if schema is not None:
            query["schema"] = schema
        text = "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}" + (
            f"?{text}" if text else ""
        )

    def connect(self, database: str = DATABASE) -> Any:
        """A psycopg connection (autocommit) as the superuser."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=database,
            autocommit=True,
        )

    def _as_server_user(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.folder,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            **self._as_server_user(),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def start(self) -> None:
        (self.folder / OWNER_FILE).write_text(str(os.getpid()))
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.folder.chmod(0o700)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "shared_buffers": "128MB" if self.durable else "64MB",
            "max_connections": "60",
            "log_min_messages": "warning",
        }
        if not self.durable:  # a throwaway server: durability is not what is tested
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with (self.data / "postgresql.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE} ENCODING 'UTF8'")
        with self.connect() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")
            conn.execute(f"GRANT CREATE ON DATABASE {DATABASE} TO {ROLE}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def drop_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def schema_exists(self, schema: str) -> bool:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)
            ).fetchone()
        return bool(row[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(bin_dir: Path) -> None:
    """Stop the servers of earlier sessions that died without stopping theirs (killed with
    SIGKILL, say): only folders this module made, whose owning process is gone."""
    for folder in _temp_root().glob(f"{PREFIX}*"):
        owner = folder / OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            continue
        data = folder / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                stat = folder.stat()
                subprocess.run(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                    capture_output=True,
                    timeout=60,
                    check=False,
                    **(
                        {"user": stat.st_uid, "group": stat.st_gid, "extra_groups": []}
                        if os.geteuid() == 0 and stat.st_uid != 0
                        else {}
                    ),
                )
        shutil.rmtree(folder, ignore_errors=True)


def start_server(*, durable: bool = False) -> PgServer:
    """Start a throwaway server (raises with the reason when it cannot)."""
    import psycopg  # noqa: F401 - no psycopg, no PostgreSQL tests

    folder = find_bin()
    if folder is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: install "
            "PostgreSQL (.ci/ensure-postgres does, with apt-get), or set "
            f"{BIN_ENV} to their folder"
        )
    reap_orphans(folder)
    last: Exception | None = None
    for _attempt in range(3):  # a free port may be taken between finding and binding it
        server = PgServer(
            bin=folder,
            folder=Path(tempfile.mkdtemp(prefix=PREFIX, dir=_temp_root())),
            port=_free_port(),
            superuser="cliniko_test",
            password=secrets.token_urlsafe(18),
            user=_server_user(),
            durable=durable,
        )
        try:
            server.start()
        except Exception as e:  # reported below with the server's log
            tail = server.log.read_text(errors="replace")[-1500:] if server.log.exists() else ""
            last = RuntimeError(f"{e}\n{tail}".strip())
            server.stop()
            time.sleep(0.2)
            continue
        return server
    assert last is not None
    raise last


_SERVER: PgServer | None = None
_FAILURE: str | None = None


def _stop_at_exit() -> None:
    if _SERVER is not None:
        _SERVER.stop()


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The session's throwaway PostgreSQL server (skips, or fails under CI, without one)."""
    global _SERVER, _FAILURE
    if _SERVER is None and _FAILURE is None:
        try:
            _SERVER = start_server()
        except ImportError:
            _FAILURE = "psycopg is not installed (.venv/bin/pip install -e '.[postgres]')"
        except Exception as e:  # the reason is the skip message
            _FAILURE = f"cannot start a throwaway PostgreSQL server: {e}"
        else:
            atexit.register(_stop_at_exit)
    if _SERVER is None:
        reason = _FAILURE or "no PostgreSQL server"
        if in_ci():
            pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    return _SERVER


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


def new_schema(prefix: str = "t") -> str:
    """A schema name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
