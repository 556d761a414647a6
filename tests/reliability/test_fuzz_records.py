"""Malformed Cliniko records are quarantined with a reason; nothing crashes (DESIGN.md 8).

(a) Hypothesis builds Cliniko-like records - real sandbox records with keys dropped, nulled,
    given the wrong type, huge strings, invalid dates, unknown enum codes and odd Unicode, plus
    things that are not records at all - and feeds pages of them straight to the staging
    writer: every record lands or is quarantined with a reason, the counts add up.
(b) Records in a sandbox store are changed to hold odd values, the clinic is downloaded with
    the real command, and the run completes with every record staged or quarantined;
(c) planning and loading that staging file into SQLite skip what they cannot map, with a
    reason, and never crash.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.load import load
from engine.plan import plan
from engine.resources import RESOURCES, Resource
from sandbox.runner import SandboxHandle, running_sandbox
from sandbox.store import ClinicStore
from staging import Page, StagingDB, open_staging

CLI = Path(sys.executable).with_name("cliniko-switch")
BASE = "https://api.au1.cliniko.com/v1"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

EXAMPLES = 60
HARD_EXAMPLES = 600

LISTS = [r for r in RESOURCES if not r.single]


def _templates() -> dict[str, list[dict[str, Any]]]:
    """A few real records per (resource) from the tiny clinic, as the API shows them."""
    out: dict[str, list[dict[str, Any]]] = {}
    with ClinicStore.generate("tiny", seed=1) as store:
        for resource, variant in store.counts():
            if resource not in {r.name for r in LISTS}:
                continue
            rows = out.setdefault(resource, [])
            for record in store.raw_records(resource, variant, BASE):
                if len(rows) < 3:
                    rows.append(record)
    return out


TEMPLATES = _templates()

# --- odd values -------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ufeff",  # byte order mark
        "\u200b\u200d",  # zero-width space and joiner
        "\U0010ffff",  # the last code point, a noncharacter
        "\ufffe\uffff",  # noncharacters
        "e\u0301",  # combining accent
        "\u202eevil",  # right-to-left override
        "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # a ZWJ emoji sequence
        "𝕏𝔂𝔃",
        "\x7f\x1b[31m",
        "'; DROP TABLE patients; --",
        "null",
        "2024-02-30T25:61:61Z",
        "0000-00-00",
        "not a date",
        "-1",
        "/v1/patients/0",
        "https://api.au1.cliniko.com/v1/patients/99999999999999999999",
    ]
)
HUGE_TEXT = st.integers(min_value=10_000, max_value=200_000).map(lambda n: "x" * n)
UNICODE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40
)  # surrogates cannot be a Python str's content after JSON decoding: every other code point
INVALID_DATES = st.sampled_from(
    ["2024-13-01", "2024-02-30", "24/12/2024", "2024-12-01T99:00:00Z", "yesterday", "", "T"]
)
ODD_NUMBERS = st.one_of(
    st.sampled_from([0, -1, 2**63, 2**64, -(2**63), 999, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), ODD_NUMBERS, ODD_TEXT, UNICODE_TEXT, INVALID_DATES, HUGE_TEXT
)
ODD_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(UNICODE_TEXT, inner, max_size=4)
    ),
    max_leaves=8,
)
ODD_LINKS = st.one_of(
    st.none(),
    st.just({}),
    st.just({"links": None}),
    st.just({"links": {}}),
    st.builds(lambda v: {"links": {"self": v}}, SCALARS),
    st.just({"links": {"self": f"{BASE}/patients/notanumber"}}),
    st.just({"links": {"self": f"{BASE}/patients/{2**64}"}}),
    st.just({"links": {"self": f"{BASE}/patients/0"}}),
)
ODD_IDS = st.one_of(
    st.none(),
    st.sampled_from(["", "0", "-5", "12a", "١٢٣", " 42", str(2**63), "00042"]),
    ODD_NUMBERS,
    st.booleans(),
    st.just([1]),
)


@st.composite
def mutated(draw: st.DrawFn, resource: Resource) -> object:
    """A real record of `resource` with some of its keys dropped or given odd values."""
    base = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES[resource.name]))))
    keys = sorted(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=6, unique=True)) if keys else []:
        how = draw(st.sampled_from(["drop", "null", "odd", "odd", "link", "id"]))
        if how == "drop":
            del base[key]
        elif how == "null":
            base[key] = None
        elif how == "link":
            base[key] = draw(ODD_LINKS)
        elif how == "id":
            base[key] = draw(ODD_IDS)
        else:
            base[key] = draw(ODD_VALUES)
    if draw(st.booleans()):
        base["id"] = draw(ODD_IDS)
    for extra in draw(st.lists(UNICODE_TEXT, max_size=2)):
        base[extra] = draw(ODD_VALUES)
    return base


def records_for(resource: Resource) -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from(TEMPLATES[resource.name]),  # good ones, so pages mix both
        mutated(resource),
        mutated(resource),
        mutated(resource),
        ODD_VALUES,  # not a JSON object at all
        st.dictionaries(UNICODE_TEXT, ODD_VALUES, max_size=5),
    )


@st.composite
def pages(draw: st.DrawFn) -> Page:
    resource = draw(st.sampled_from([r for r in LISTS if r.name in TEMPLATES]))
    variant = draw(st.sampled_from(resource.variants))
    records = draw(st.lists(records_for(resource), min_size=1, max_size=8))
    return Page(resource, variant, records, [])


# --- (a) straight through the staging writer ---------------------------------------------------


@pytest.fixture(scope="module")
def staging_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StagingDB]:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.staging"
    with open_staging(path, create=True) as db:
        yield db


def _write_and_check(db: StagingDB, batch: list[Page]) -> None:
    run_id = db.start_run(mode="full", selection=["all"])
    writer = db.writer(run_id)
    conn = db.conn
    before = conn.execute("SELECT count(*) FROM _quarantine WHERE run_id = ?", [run_id])
    assert before.fetchone() == (0,)
    result = writer.write_batch(batch)  # nothing raises
    sent = sum(len(page.records) for page in batch)
    assert result.written + result.quarantined == sent
    quarantined = conn.execute(
        "SELECT resource, variant, reason, raw FROM _quarantine WHERE run_id = ?", [run_id]
    ).fetchall()
    # The same malformed record twice in a run is one row; every row has a reason.
    assert (len(quarantined) == 0) == (result.quarantined == 0)
    assert len(quarantined) <= result.quarantined
    for resource, variant, reason, raw in quarantined:
        assert reason and isinstance(reason, str)
        assert raw
        assert any(p.resource.name == resource and p.variant == variant for p in batch)
    landed = conn.execute(
        " UNION ALL ".join(
            f'SELECT count(*) FROM "{p.resource.name}" WHERE run_id = ?' for p in batch
        ),
        [run_id] * len(batch),
    ).fetchall()
    assert (sum(n for (n,) in landed) > 0) == (result.written > 0)
    db.finish_run(run_id, "complete")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


@FUZZ
@given(batch=st.lists(pages(), min_size=1, max_size=3))
def test_fuzzed_pages_land_or_are_quarantined_with_a_reason(
    staging_db: StagingDB, batch: list[Page]
) -> None:
    _write_and_check(staging_db, batch)


@pytest.mark.hard
@settings(FUZZ, max_examples=HARD_EXAMPLES)
@given(batch=st.lists(pages(), min_size=1, max_size=3))
def test_fuzzed_pages_land_or_are_quarantined_with_a_reason_many(
    staging_db: StagingDB, batch: list[Page]
) -> None:
    _write_and_check(staging_db, batch)


def test_staged_fuzz_file_is_sound(staging_db: StagingDB) -> None:
    """After the examples above (in this module's order), the file is whole."""
    conn: sqlite3.Connection = staging_db.conn
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    missing = conn.execute("SELECT count(*) FROM _quarantine WHERE reason IS NULL OR reason = ''")
    assert missing.fetchone() == (0,)


# --- (b) through the sandbox and the download command; (c) plan and load ---------------------

SANDBOX_ODD: list[Any] = [
    None,
    12345,
    -1,
    2**70,
    1.5e300,
    True,
    [],
    {"nested": ["x", None]},
    "",
    "2024-02-30",
    "2024-13-45T25:61:00Z",
    "not a date",
    "x" * 100_000,
    "\x00\ufeff\u200b\U0010ffff\u202e",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 𝕏",
    999,  # an enum code Cliniko never sends
    "unknown_code",
]
FIXED = {"id", "links", "created_at", "updated_at"}
MUTATIONS = 80
FAST = ("--rate-limit", "10000/60", "--json")


def mutate_store(store: ClinicStore, seed: int, n: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Give `n` seeded-random records odd values in fields the store lets us write."""
    rng = random.Random(seed)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    candidates = sorted(
        (resource.name, variant, rid)
        for resource in LISTS
        for variant in resource.variants
        if store.has_list(resource.name, variant) and resource.name != "services"
        for rid in store.ids(resource.name, variant)
    )
    for resource, _variant, rid in rng.sample(candidates, min(n, len(candidates))):
        if (resource, rid) in done:
            continue
        try:
            record = store.get_one(resource, rid, BASE)
        except (KeyError, ValueError, LookupError):
            continue
        refs = set(next(r for r in LISTS if r.name == resource).refs)
        fields = sorted(
            k
            for k, v in record.items()
            if k not in FIXED and k not in refs and not (isinstance(v, dict) and "links" in v)
        )
        if not fields:
            continue
        changes = {f: rng.choice(SANDBOX_ODD) for f in rng.sample(fields, min(3, len(fields)))}
        try:
            store.update(resource, rid, **changes)
        except (ValueError, TypeError, sqlite3.Error):
            continue  # the store cannot hold that value in that field: try another record
        done[(resource, rid)] = changes
    return done


@pytest.fixture(scope="module")
def odd_sandbox() -> Iterator[tuple[SandboxHandle, dict[tuple[str, str], dict[str, Any]]]]:
    with running_sandbox("tiny", 3, rate_limit=(10_000, 60.0)) as handle:
        changed = mutate_store(handle.store, seed=7, n=MUTATIONS)
        yield handle, changed


@pytest.fixture(scope="module")
def odd_staging(
    odd_sandbox: tuple[SandboxHandle, dict[tuple[str, str], dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    handle, _ = odd_sandbox
    staging = tmp_path_factory.mktemp("odd") / "odd.staging"
    env = {k: v for k, v in os.environ.items() if k != "CLINIKO_API_KEY"}
    env["CLINIKO_API_KEY"] = handle.api_key
    done = subprocess.run(
        [str(CLI), "download", "--staging", str(staging), "--api-url", handle.base_url, *FAST],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert doc["outcome"] == "complete", doc
    return staging


@pytest.mark.integration
def test_download_of_a_clinic_with_odd_values_completes_staged_or_quarantined(
    odd_sandbox: tuple[SandboxHandle, dict[tuple[str, str], dict[str, Any]]],
    odd_staging: Path,
) -> None:
    _, changed = odd_sandbox
    assert len(changed) >= MUTATIONS // 2  # the store took most of the changes
    con = sqlite3.connect(f"file:{odd_staging}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        last = con.execute("SELECT outcome FROM _runs ORDER BY run_id DESC LIMIT 1").fetchone()
        assert last == ("complete",)
        quarantined = {
            (r, str(i)): reason
            for r, i, reason in con.execute("SELECT resource, record_id, reason FROM _quarantine")
        }
        assert all(quarantined.values())
        for (resource, rid), changes in changed.items():
            staged = con.execute(f'SELECT raw FROM "{resource}" WHERE id = ?', [rid]).fetchone()
            if staged is None:
                assert (resource, rid) in quarantined, (resource, rid, changes)
                continue
            assert isinstance(json.loads(staged[0]), dict)  # staged as served, odd values too
    finally:
        con.close()


@pytest.mark.integration
def test_plan_and_load_of_odd_records_skip_with_reasons_and_never_crash(
    odd_staging: Path, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'clinic.db'}"
    the_plan = plan(odd_staging, target, now=NOW)
    for item in the_plan.skipped():
        assert item.skip_code and item.skip_reason, item
    result = load(the_plan, target, now=NOW)
    for item in result.rejected:
        assert item.skip_code and item.skip_reason, item
    assert result.ok, result.verification
    again = plan(odd_staging, target, now=NOW)  # planning the loaded clinic again: no crash
    for item in again.skipped():
        assert item.skip_code and item.skip_reason, item
