"""SIGKILL the load at seeded points, rerun, and get a clean load's clinic (DESIGN.md 8).

The load runs in a child process exactly as `cliniko-switch load` does it (plan the staging
file against the clinic, then apply that plan in batches), with a fixed clock, and prints a
line when it has planned, after each committed batch (how many of the plan's records are now
in the clinic, counting what earlier runs loaded), and when the last batch is in. A seeded
`random.Random` picks the kill points from the rhythm a clean load showed: one while it
plans, the middle ones each in its own equal slice of the records (plus a delay of up to two
batch gaps, so the SIGKILL lands inside a transaction or between two), and one while it
verifies and closes the run. Each run is killed at its point and the load is run again; after
the last point, once more to completion.

After every kill the clinic file must hold only whole records: integrity and foreign keys
ok, every row exactly the one a clean load writes under the same id, every invoice with all
its lines, every row with its import link. At the end: the same rows, links, audit entries
and balances as a clean load (what legitimately differs is listed in reliability_helpers),
the last import run `complete` and none failed, nothing in `message_outbox`, messaging and
AI off, and a further plan with nothing to write.
"""

from __future__ import annotations

import itertools
import random
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import (
    assert_clinic_sound,
    assert_part_of,
    assert_same_clinic,
    clinic_content,
    clinic_is_new,
    connect_ro,
    record_figure,
    stage_store,
)

from engine.plan import plan
from sandbox.store import ClinicStore

NOW = "2026-11-01T00:00:00+00:00"
BATCH = 50
"""Small batches: many commits, so kills fall before, inside and after transactions."""
TIMEOUT_S = 120.0

CHILD = """
import sys
from datetime import datetime

from engine.events import LoadProgress
from engine.load import load
from engine.plan import plan

staging, url, batch, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


done = {}


def sink(event):
    if not isinstance(event, LoadProgress) or event.phase != "load":
        return
    if event.done:  # after the batch's transaction committed
        done[event.record_kind] = event.done
        print("progress", already + sum(done.values()), flush=True)
    if event.record_kind == last and event.done == event.total:
        print("loaded", flush=True)  # verification and the run's record come next


print("ready", flush=True)
the_plan = plan(staging, url, now=datetime.fromisoformat(now))
last = the_plan.kinds[-1]
already = sum(1 for i in the_plan.all_items() if i.action == "unchanged" and not i.writes)
print("planned", flush=True)
print("progress", already, flush=True)
result = load(the_plan, url, sink=sink, batch_size=batch)
print("complete" if result.ok else "verification failed", flush=True)
sys.exit(0 if result.ok else 1)
"""


@dataclass(frozen=True)
class Point:
    after: str
    """Kill once the run has printed this ("ready", "progress" or "loaded") ..."""
    records: int
    """... ("progress") showing at least this many of the plan's records in the clinic ..."""
    delay_s: float
    """... this long after it was seen."""


@dataclass
class Run:
    code: int
    lines: list[str]
    """What the child printed before it ended or was killed."""
    stderr: str

    @property
    def phase(self) -> str:
        """Where it was when it ended: planning, loading batches, verifying (and recording
        the run), or past all of that (the process not yet gone)."""
        if "planned" not in self.lines:
            return "planning"
        if "loaded" not in self.lines:
            return "loading"
        return "verifying" if self.lines[-1] == "loaded" else "finished"


def start(staging: Path, clinic: Path, stderr: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(staging), f"sqlite:///{clinic}", str(BATCH), NOW],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=clinic.parent,
    )


def _reached(line: str, point: Point) -> bool:
    word, _, value = line.partition(" ")
    return word == point.after and (word != "progress" or int(value) >= point.records)


def run_load(staging: Path, clinic: Path, kill: Point | None = None) -> Run:
    """Run the load; SIGKILL it at `kill`, if given. Returns when the process has ended."""
    with tempfile.TemporaryFile("w+") as err:
        proc = start(staging, clinic, err)
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            if kill is not None:
                for line in proc.stdout:
                    lines.append(line.strip())
                    if _reached(lines[-1], kill):
                        time.sleep(kill.delay_s)
                        proc.send_signal(signal.SIGKILL)
                        break
            rest, _ = proc.communicate(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        lines.extend(rest.splitlines())
        return Run(proc.returncode, lines, err.read())


def kill_points(seed: int, n: int, ref: Reference) -> list[Point]:
    """`n` >= 3 points over a load like `ref`: one while it plans, `n - 2` spread over its
    records (one in each equal slice, in order, short of the last two batches) and one while
    it verifies."""
    rng = random.Random(seed)
    middle = n - 2
    span = ref.records - 2 * BATCH
    edges = [1 + span * i // middle for i in range(middle + 1)]
    points = [Point("ready", 0, rng.uniform(0, ref.plan_s))]
    for lo, hi in itertools.pairwise(edges):
        at = rng.randint(lo, max(lo, hi - 1))
        points.append(Point("progress", at, rng.uniform(0, 2 * ref.gap_s)))
    points.append(Point("loaded", 0, rng.uniform(0, ref.verify_s)))
    return points


@dataclass(frozen=True)
class Reference:
    staging: Path
    content: dict[str, Any]
    records: int
    """The plan's records a clean load writes."""
    batches: int
    gap_s: float
    """The median time between two committed batches."""
    plan_s: float
    """From start (imports done) to planned."""
    verify_s: float
    """From the last batch to the end of the run."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The small sandbox clinic (~5,000 records, ~3,500 clinic rows), staged once; a clean
    load of it in a child process, timed batch by batch."""
    folder = tmp_path_factory.mktemp("clean-load")
    with ClinicStore.generate("small", seed=1) as store:
        staging = stage_store(store, folder / "clinic.staging")
    clinic = folder / "clean.db"
    with tempfile.TemporaryFile("w+") as err:
        proc = start(staging, clinic, err)
        assert proc.stdout is not None
        stamps: dict[str, list[float]] = {}
        progress: list[int] = []
        for line in proc.stdout:
            word, _, value = line.strip().partition(" ")
            stamps.setdefault(word, []).append(time.monotonic())
            if word == "progress":
                progress.append(int(value))
        proc.wait(timeout=TIMEOUT_S)
        err.seek(0)
        assert proc.returncode == 0, err.read()
    batches = len(progress) - 1
    assert batches >= 40, f"only {batches} batches: the load is too short to kill inside"
    assert progress[0] == 0 and progress == sorted(progress)
    gaps = [b - a for a, b in itertools.pairwise(stamps["progress"][1:])]
    assert_clinic_sound(clinic)
    return Reference(
        staging=staging,
        content=clinic_content(clinic),
        records=progress[-1],
        batches=batches,
        gap_s=statistics.median(gaps),
        plan_s=stamps["planned"][0] - stamps["ready"][0],
        verify_s=stamps["complete"][0] - stamps["loaded"][0],
    )


def import_runs(clinic: Path) -> list[str | None]:
    con = connect_ro(clinic)
    try:
        return [o for (o,) in con.execute("SELECT outcome FROM import_runs ORDER BY id")]
    finally:
        con.close()


def kill_and_rerun(reference: Reference, clinic: Path, points: list[Point]) -> Counter[str]:
    """Kill at each point, checking the clinic holds only whole records after each kill;
    then run to completion and compare with the clean load. Returns the kills that landed,
    by the phase they landed in."""
    killed: Counter[str] = Counter()
    for point in points:
        run = run_load(reference.staging, clinic, point)
        progress = [int(line.split()[1]) for line in run.lines if line.startswith("progress ")]
        assert all(n <= reference.records for n in progress), progress
        if run.code != -signal.SIGKILL:  # it finished before its point: fine, and complete
            assert run.code == 0, f"exit {run.code}\n{run.stderr}"
            assert "Traceback" not in run.stderr, run.stderr
            continue
        killed[run.phase] += 1
        if clinic.exists():
            assert stat.S_IMODE(clinic.stat().st_mode) == 0o600
            if not clinic_is_new(clinic):
                assert_clinic_sound(clinic)
                assert_part_of(clinic_content(clinic), reference.content)
    final = run_load(reference.staging, clinic)
    assert final.code == 0, f"exit {final.code}\n{final.stderr}"
    assert "Traceback" not in final.stderr, final.stderr
    assert_clinic_sound(clinic)
    assert_same_clinic(clinic_content(clinic), reference.content)
    # A killed run left its import run unfinished (None), or `complete` when the kill came
    # after it had finished; none failed verification.
    outcomes = import_runs(clinic)
    assert outcomes[-1] == "complete" and set(outcomes) <= {None, "complete"}, outcomes
    again = plan(reference.staging, f"sqlite:///{clinic}", now=datetime.fromisoformat(NOW))
    assert again.writes() == 0, [i.to_json() for i in again.all_items() if i.writes]
    return killed


def test_kill_points_are_seeded_and_spread(reference: Reference) -> None:
    points = kill_points(5, 12, reference)
    assert points == kill_points(5, 12, reference)
    assert points[0].after == "ready" and points[-1].after == "loaded"
    assert [p.after for p in points[1:-1]] == ["progress"] * 10
    middle = [p.records for p in points[1:-1]]
    span = reference.records - 2 * BATCH
    for i, at in enumerate(middle):
        assert 1 + span * i // 10 <= at < max(1 + span * (i + 1) // 10, 2)


@pytest.mark.parametrize("seed", [1])
def test_sigkilled_load_reruns_to_a_clean_loads_clinic(
    reference: Reference, tmp_path: Path, seed: int
) -> None:
    points = kill_points(seed, 3, reference)
    killed = kill_and_rerun(reference, tmp_path / "clinic.db", points)
    record_figure("load_kill", seed=seed, points=len(points), killed=dict(killed))
    assert killed.total() >= 2, killed


@pytest.mark.hard
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_sigkilled_load_many_times_reruns_to_a_clean_loads_clinic(
    reference: Reference, tmp_path: Path, seed: int
) -> None:
    points = kill_points(seed, 12, reference)
    killed = kill_and_rerun(reference, tmp_path / "clinic.db", points)
    record_figure("load_kill", seed=seed, points=len(points), killed=dict(killed))
    assert killed.total() >= 10, killed


def test_the_clean_reference_is_whole(reference: Reference) -> None:
    tables = reference.content["tables"]
    assert len(tables["patients"]) > 100 and len(tables["invoice_lines"]) > 100
    assert len(tables["appointments"]) > 100 and len(tables["settlements"]) > 10
    assert reference.content["balances"], "no balances to compare"
