"""Secrets and privacy after a whole run (issue 6, item 6; DESIGN.md 8).

The real commands run one after another as an operator would run them, in a folder of their
own with HOME and the XDG folders pointed inside it (so whatever a command writes anywhere
lands where it is scanned): preview, download, a top-up, plan --json, load --yes --json
--skipped-csv, a second load, and the offline review in the full-screen app (under a pseudo
terminal). Then:

- the key, its body without the shard suffix and its HTTP Basic form appear in no file the
  run wrote (the staging and clinic files included, byte for byte), in no output, in the
  command line of any process it started, in the TUI's snapshot files, or in a crash log;
- no output (human or JSON) and no file other than the staging and clinic databases holds a
  patient's name, email, phone number, address or note text (a sample of the sandbox's real
  values): the plan and load documents carry ids, codes and field names only, the skipped
  records CSV ids and reasons;
- the staging and clinic files and every side file beside them (-wal, -shm, -journal, lock)
  are 0600.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pty
import re
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_helpers import record_figure

from sandbox.runner import SandboxHandle, running_sandbox

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("cliniko-switch")
REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "tests" / "tui" / "__snapshots__"
TUI_TEST_KEYS = ("Zk3mQ9vTw1LpX7aB2cD4eF6gH8jK0nRs-au1",)
"""Fixed keys the TUI's tests type (its sandbox keys are random per run)."""
DATABASES = re.compile(r"\.(staging|db)(-wal|-shm|-journal)?$")
PRIVATE = re.compile(r"\.(staging|db)(-wal|-shm|-journal|\.lock)?$")
TIMEOUT_S = 120.0


def secret_forms(key: str) -> list[bytes]:
    body = key.rsplit("-", 1)[0]
    basic = base64.b64encode(f"{key}:".encode()).decode()
    return [key.encode(), body.encode(), basic.encode(), basic.rstrip("=").encode()]


@dataclass
class Ran:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    cmdlines: list[bytes] = field(default_factory=list)


@dataclass
class Session:
    """One operator's whole run, and what it left behind."""

    handle: SandboxHandle
    root: Path
    work: Path
    env: dict[str, str]
    runs: list[Ran] = field(default_factory=list)
    review: Ran | None = None
    review_skipped: str = ""
    modes: set[tuple[str, int]] = field(default_factory=set)
    """(file name, mode) of the staging and clinic files and their side files, as seen
    while the commands ran."""
    live_scans: int = 0
    """Reads of -wal, -shm and lock files while the commands ran (they are gone after)."""
    live_hits: list[str] = field(default_factory=list)


def _cmdlines(pid: int) -> list[bytes]:
    """The command lines of `pid` and its children, as the kernel shows them to `ps`."""
    out = []
    for proc in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):  # it may have ended already
            out.append(Path(f"/proc/{proc}/cmdline").read_bytes())
    return out


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def run(session: Session, *args: str) -> Ran:
    """Run a command to its end, reading its command line (and its children's) from /proc
    every few milliseconds while it runs."""
    argv = [str(CLI), *args]
    out_path, err_path = session.root / "tmp" / "out", session.root / "tmp" / "err"
    with out_path.open("w+") as out, err_path.open("w+") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=session.env,
            cwd=session.work,
        )  # fmt: skip
        cmdlines: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        forms = secret_forms(session.handle.api_key)
        while proc.poll() is None and time.monotonic() < deadline:
            cmdlines += [c for c in _cmdlines(proc.pid) if c and c not in cmdlines]
            for path in session.work.iterdir():  # side files come and go: see them live
                if PRIVATE.search(path.name):
                    with contextlib.suppress(OSError):
                        session.modes.add((path.name, stat.S_IMODE(path.stat().st_mode)))
                        if not path.name.endswith((".staging", ".db")):
                            data = path.read_bytes()
                            session.live_scans += 1
                            session.live_hits += [path.name for f in forms if f in data]
            time.sleep(0.005)
        proc.wait(timeout=5)
        out.seek(0)
        err.seek(0)
        ran = Ran(argv, proc.returncode, out.read(), err.read(), cmdlines)
    out_path.unlink()
    err_path.unlink()
    session.runs.append(ran)
    return ran


def run_in_terminal(session: Session, *args: str, seconds: float = 4.0) -> Ran:
    """Start the full-screen app under a pseudo terminal, let it draw, ask it to quit
    (ctrl+q, then SIGTERM if needed); what it printed on the terminal is its stdout."""
    argv = [str(CLI), *args]
    env = dict(session.env, TERM="xterm-256color", COLUMNS="80", LINES="24")
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.chdir(session.work)
        os.execve(argv[0], argv, env)  # noqa: S606 - our own console script, no shell
    cmdlines: list[bytes] = []
    screen = bytearray()

    def drain(until: float) -> bool:
        while time.monotonic() < until:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return True  # the terminal closed: the app is gone
                if not chunk:
                    return True
                screen.extend(chunk)
                cmdlines.extend(c for c in _cmdlines(pid) if c and c not in cmdlines)
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return True
        return False

    code: int | None = None
    if not drain(time.monotonic() + seconds):
        cmdlines += _cmdlines(pid)
        os.write(fd, b"\x11")  # ctrl+q
        if not drain(time.monotonic() + 3.0):
            os.kill(pid, signal.SIGTERM)
            drain(time.monotonic() + 3.0)
    try:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        code = 0
    os.close(fd)
    ran = Ran(argv, code, screen.decode(errors="replace"), "", cmdlines)
    return ran


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("operator")
    home = root / "home"
    work = root / "work"
    for folder in (home, work):
        folder.mkdir()
    with running_sandbox("small", 1, rate_limit=(100_000, 60.0)) as handle:
        env = {k: v for k, v in os.environ.items() if k != "CLINIKO_API_KEY"}
        env.update(
            CLINIKO_API_KEY=handle.api_key,
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            XDG_CACHE_HOME=str(home / ".cache"),
            TMPDIR=str(root / "tmp"),
            PYTHONUNBUFFERED="1",
        )
        (root / "tmp").mkdir()
        s = Session(handle, root, work, env)
        api = ("--api-url", handle.base_url, "--rate-limit", "100000/60")
        target = f"sqlite:///{work / 'clinic.db'}"
        staging = str(work / "clinic.staging")
        steps = [
            ("preview", *api),
            ("preview", *api, "--json"),
            ("download", "--staging", staging, *api),
            ("download", "--staging", staging, *api, "--json"),  # a top-up
            ("plan", "--staging", staging, "--target", target),
            ("plan", "--staging", staging, "--target", target, "--json"),
            ("load", "--staging", staging, "--target", target, "--yes", "--json",
             "--skipped-csv", str(work / "skipped.csv")),
            ("load", "--staging", staging, "--target", target, "--yes"),
        ]  # fmt: skip
        for step in steps:
            ran = run(s, *step)
            assert ran.code == 0, f"{step}: exit {ran.code}\n{ran.stderr}"
        help_text = run(s, "--help").stdout
        s.runs.pop()
        if re.search(r"^\s+review\b", help_text, re.MULTILINE):
            reviewer = dict(env)
            reviewer.pop("CLINIKO_API_KEY")  # the review is offline: it needs no key
            s.env, saved = reviewer, s.env
            s.review = run_in_terminal(s, "review", staging)
            s.env = saved
        else:
            s.review_skipped = "this build has no `cliniko-switch review` command yet"
        yield s


def files_written(session: Session) -> list[Path]:
    return sorted(p for p in session.root.rglob("*") if p.is_file())


def crash_logs() -> list[Path]:
    """Crash logs the TUI may have left in the checkout (its default is the working folder)."""
    return sorted(REPO.glob("cliniko-switch-crash*.log"))


def patient_values(handle: SandboxHandle) -> list[str]:
    """Real patient details and note text from the sandbox's clinic."""
    store = handle.store
    values: set[str] = set()
    for variant in ("active", "archived"):
        for patient in store.raw_records("patients", variant, handle.base_url):
            first, last = patient.get("first_name"), patient.get("last_name")
            if first and last:
                values.add(f"{first} {last}")
            for key in ("email", "address_1", "notes"):
                value = patient.get(key)
                if isinstance(value, str) and len(value.strip()) >= 8:
                    values.add(value.strip())
            for phone in patient.get("patient_phone_numbers") or []:
                number = (phone or {}).get("number")
                if isinstance(number, str) and len(re.sub(r"\D", "", number)) >= 8:
                    values.add(number)
    for note in store.raw_records("treatment_notes", "active", handle.base_url):
        for section in (note.get("content") or {}).get("sections") or []:
            for question in section.get("questions") or []:
                answer = question.get("answer")
                if isinstance(answer, str) and len(answer) >= 20 and "<" not in answer:
                    values.add(answer)
    return sorted(values)


def test_the_key_is_in_no_file_output_or_command_line(session: Session) -> None:
    key = session.handle.api_key
    forms = secret_forms(key)
    scanned = files_written(session)
    assert any(p.name == "clinic.staging" for p in scanned)
    assert any(p.name == "clinic.db" for p in scanned)
    for path in [*scanned, *crash_logs()]:
        data = path.read_bytes()
        for form in forms:
            assert form not in data, f"a form of the API key is in {path}"
    assert session.live_scans > 0 and session.live_hits == [], session.live_hits
    runs = [*session.runs, *([session.review] if session.review else [])]
    for ran in runs:
        for text in (ran.stdout, ran.stderr):
            for form in forms:
                assert form.decode() not in text, f"{ran.argv[1]} printed the key"
        # Read while it ran, after exec: the console script and the arguments given.
        assert ran.cmdlines, f"no command line read for {ran.argv[1]}"
        assert all(b"cliniko-switch" in c for c in ran.cmdlines), ran.cmdlines
        for cmdline in ran.cmdlines:
            for form in forms:
                assert form not in cmdline, f"the key is on {ran.argv[1]}'s command line"
    snapshots = sorted(p for p in SNAPSHOTS.rglob("*") if p.is_file()) if SNAPSHOTS.is_dir() else []
    for path in snapshots:
        data = path.read_bytes()
        for form in [f for k in TUI_TEST_KEYS for f in secret_forms(k)]:
            assert form not in data, f"a key the TUI tests type is in {path.name}"
    record_figure(
        "secrets",
        files_scanned=len(scanned) + len(snapshots) + len(crash_logs()),
        side_file_reads=session.live_scans,
        side_files={name for name, _ in session.modes},
        snapshots=len(snapshots),
        outputs=2 * len(runs),
        processes=len(runs),
        review=session.review is not None,
    )


def test_the_offline_review_ran_without_a_key(session: Session) -> None:
    if session.review is None:
        pytest.skip(session.review_skipped)
    ran = session.review
    # It drew something on the terminal and did not crash (70) or refuse the file (2).
    assert ran.stdout, "the review drew nothing"
    assert ran.code not in (2, 70), f"exit {ran.code}\n{ran.stdout[-2000:]}"
    assert not crash_logs() and not list(session.work.glob("*crash*"))


def test_no_patient_detail_leaves_the_databases(session: Session) -> None:
    values = patient_values(session.handle)
    assert len(values) > 100, "too small a sample of patient details"
    encoded = [(v, v.encode()) for v in values]
    for ran in session.runs:  # every output, human or JSON (the review screen shows data)
        for text in (ran.stdout, ran.stderr):
            leaked = [v for v in values if v in text]
            assert not leaked, f"{' '.join(ran.argv[1:3])} printed {leaked[:3]}"
    others = [p for p in files_written(session) if not DATABASES.search(p.name)]
    assert any(p.name == "skipped.csv" for p in others)
    for path in others:
        data = path.read_bytes()
        leaked = [v for v, b in encoded if b in data]
        assert not leaked, f"{path.name} holds {leaked[:3]}"
    # ... and the databases do hold them (the sample is real, the scan would see it).
    staging = (session.work / "clinic.staging").read_bytes()
    assert sum(1 for _, b in encoded if b in staging) > len(values) // 2


def test_staging_and_clinic_files_are_private(session: Session) -> None:
    private = [p for p in files_written(session) if PRIVATE.search(p.name)]
    assert {p.name for p in private} >= {"clinic.staging", "clinic.db"}
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path.name} is not 0600"
    seen = {name for name, _ in session.modes}
    assert {"clinic.staging-wal", "clinic.staging.lock", "clinic.db-wal"} <= seen, seen
    loose = sorted((name, oct(mode)) for name, mode in session.modes if mode != 0o600)
    assert not loose, f"not 0600 while the commands ran: {loose}"


def test_the_json_documents_carry_ids_codes_and_field_names(session: Session) -> None:
    docs = [json.loads(r.stdout) for r in session.runs if "--json" in r.argv]
    assert len(docs) == 4
    plan_doc = next(d for d in docs if "skipped" in d and "run_id" not in d)
    for item in plan_doc["skipped"]:
        assert set(item) <= {"kind", "cliniko_id", "action", "target_id", "code", "reason",
                             "fields", "matched", "unresolved", "note"}  # fmt: skip


def test_nothing_was_queued_for_patients(session: Session) -> None:
    con = sqlite3.connect(f"file:{session.work / 'clinic.db'}?mode=ro", uri=True)
    try:
        assert con.execute("SELECT count(*) FROM message_outbox").fetchone() == (0,)
        flags = con.execute("SELECT messaging_enabled, ai_enabled FROM clinic_settings").fetchall()
        assert all(row == (0, 0) for row in flags), flags
        assert con.execute("SELECT count(*) FROM patients").fetchone()[0] > 100
    finally:
        con.close()
