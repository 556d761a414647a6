"""Malformed Cliniko records are quarantined with a reason; nothing crashes (DESIGN.md 8).

(a) Hypothesis builds Cliniko-like records - real sandbox records with keys dropped, nulled,
    given the wrong type, huge strings, invalid dates, unknown enum codes and odd Unicode, plus
    things that are not records at all - and feeds pages of them straight to the staging
    writer: every record lands or is quarantined with a reason, the counts add up.
(b) Records in a sandbox store are changed to hold odd values, the clinic is downloaded with
    the real command, and the run completes with every record staged or quarantined;
(c) planning and loading that staging file into SQLite skip what they cannot map, with a
    reason, and never crash;
(d) loading is idempotent on malformed data too: hypothesis tops a staged clinic up with
    fuzzed pages, loads it, and planning again finds nothing to write (a record the clinic
    store refused at load time would otherwise be planned as a write on every rerun).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import record_figure

from engine.load import LoadResult, load
from engine.mapping import fields
from engine.plan import plan
from engine.resources import ALL_PARTS, BY_NAME, RESOURCES, Resource
from sandbox.runner import SandboxHandle, running_sandbox
from sandbox.store import ClinicStore
from staging import Page, StagingDB, open_staging
from target import SQLiteClinicStore
from target import schema as target_schema

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


EXTREME_NUMBERS: list[Any] = [
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**70,
    10**30,
    1e308,
    -0.0,
    "1e30",
    "1E+400",
    "NaN",
    "-Infinity",
    "999999999.999999",
    "1000000000",
    "-1000000000.00",
    "0.0000001",
    "1.23456789",
    "-0",
    "00012.50",
]
"""Numbers at and past the edges of what a clinic store can hold (64-bit integers, decimals
below 10^9 with 6 places), for fields that hold numbers: the mapping must refuse what the
store would, or a load meets the refusal and every later plan plans the record again."""


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


@st.composite
def extreme_numbers(draw: st.DrawFn, resource: Resource) -> object:
    """A real record of `resource` with its number fields pushed to the edges."""
    base = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES[resource.name]))))
    keys = sorted(k for k, v in base.items() if k != "id" and _numeric(v))
    if keys:
        for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
            base[key] = draw(st.sampled_from(EXTREME_NUMBERS))
    return base


def records_for(resource: Resource) -> st.SearchStrategy[object]:
    return st.one_of(
        st.sampled_from(TEMPLATES[resource.name]),  # good ones, so pages mix both
        mutated(resource),
        mutated(resource),
        mutated(resource),
        extreme_numbers(resource),
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


FUZZED: Counter[str] = Counter()
"""Examples hypothesis ran and records they held, for the README's figures."""


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    if FUZZED:
        record_figure("fuzz", **FUZZED)


def _write_and_check(db: StagingDB, batch: list[Page]) -> None:
    FUZZED["staging_examples"] += 1
    FUZZED["staging_records"] += sum(len(page.records) for page in batch)
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
        except (ValueError, TypeError, ArithmeticError, sqlite3.Error):
            # The store cannot hold that value in that field (an invoice total that is not a
            # number, an integer past 64 bits, ...): try another record.
            continue
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
    assert again.writes() == 0, [i.to_json() for i in again.all_items() if i.writes]
    second = load(again, target, now=NOW)
    assert second.ok and second.rows_written() == 0 and not second.rejected
    with SQLiteClinicStore.open(tmp_path / "clinic.db") as store:
        assert store.outbox_count() == 0
        assert store.settings()["messaging_enabled"] is False
        assert store.settings()["ai_enabled"] is False


# --- (d) load, plan again: nothing to write -----------------------------------------------------

IDEMPOTENCE_EXAMPLES = 25
HARD_IDEMPOTENCE_EXAMPLES = 400


def stage_store(store: ClinicStore, path: Path) -> Path:
    """Write a sandbox store's lists and settings into a staging file, as one complete run."""
    with open_staging(path, create=True) as db:
        run_id = db.start_run(mode="full", selection=list(ALL_PARTS), shard="au1")
        writer = db.writer(run_id)
        writer.set_single(BY_NAME["settings"], store.settings(BASE))
        for (resource, variant), _n in sorted(store.counts().items()):
            if resource not in {r.name for r in LISTS}:
                continue
            records = list(store.raw_records(resource, variant, BASE))
            for start in range(0, len(records), 100):
                writer.write_page(BY_NAME[resource], variant, records[start : start + 100])
        db.finish_run(run_id, "complete")
    return path


@pytest.fixture(scope="module")
def tiny_store() -> Iterator[ClinicStore]:
    """The tiny clinic the templates come from."""
    with ClinicStore.generate("tiny", seed=1) as store:
        yield store


@pytest.fixture(scope="module")
def base_staging(tiny_store: ClinicStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny clinic, staged (fuzzed pages overwrite some of it)."""
    return stage_store(tiny_store, tmp_path_factory.mktemp("base") / "base.staging")


def load_twice_plans_nothing(base: Path, batch: list[Page]) -> LoadResult:
    """Top `base` up with `batch`, load it into a new clinic, plan again: no writes."""
    FUZZED["load_examples"] += 1
    FUZZED["load_records"] += sum(len(page.records) for page in batch)
    folder = Path(tempfile.mkdtemp(prefix="idem-"))
    try:
        staging = folder / "clinic.staging"
        shutil.copyfile(base, staging)
        staging.chmod(0o600)
        with open_staging(staging, create=False) as db:
            run_id = db.start_run(mode="topup", selection=list(ALL_PARTS), shard="au1")
            db.writer(run_id).write_batch(batch)
            db.finish_run(run_id, "complete")
        url = f"sqlite:///{folder / 'clinic.db'}"
        first = load(staging, url, now=NOW)
        # The mapping refuses what the clinic store would: nothing is refused at load time.
        assert not first.rejected, [i.to_json() for i in first.rejected]
        again = plan(staging, url, now=NOW)
        assert again.writes() == 0, [i.to_json() for i in again.all_items() if i.writes]
        for item in again.skipped():
            assert item.skip_code and item.skip_reason, item
        return first
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@settings(FUZZ, max_examples=IDEMPOTENCE_EXAMPLES)
@given(batch=st.lists(pages(), min_size=1, max_size=4))
def test_a_fuzzed_clinic_loaded_once_plans_no_writes_again(
    base_staging: Path, batch: list[Page]
) -> None:
    load_twice_plans_nothing(base_staging, batch)


@pytest.mark.hard
@settings(FUZZ, max_examples=HARD_IDEMPOTENCE_EXAMPLES)
@given(batch=st.lists(pages(), min_size=1, max_size=4))
def test_a_fuzzed_clinic_loaded_once_plans_no_writes_again_many(
    base_staging: Path, batch: list[Page]
) -> None:
    load_twice_plans_nothing(base_staging, batch)


def test_numbers_past_the_clinic_stores_range_are_skipped_at_plan_time(
    tiny_store: ClinicStore, base_staging: Path
) -> None:
    """The defect the fuzz found: a 2^70 `max_attendees`, an invoice item's unit price of
    2^70 or a billable item's price of 10^30 reached the load, which crashed (an integer past
    64 bits) or had the row refused, so every later plan planned it as a write again."""
    live_invoices = tiny_store.ids("invoices", "active")
    line = next(
        dict(r, unit_price=2**70)
        for r in tiny_store.raw_records("invoice_items", "active", BASE)
        if r["invoice"]["links"]["self"].rsplit("/", 1)[1] in live_invoices
    )
    service = dict(TEMPLATES["appointment_types"][0], max_attendees=2**70)
    price = dict(TEMPLATES["billable_items"][0], price="1e30")
    batch = [
        Page(BY_NAME["appointment_types"], "active", [service], []),
        Page(BY_NAME["billable_items"], "active", [price], []),
        Page(BY_NAME["invoice_items"], "active", [line], []),
    ]
    first = load_twice_plans_nothing(base_staging, batch)
    skipped = {(i.kind, i.source_id): i for i in first.plan.skipped()}
    invoice_id = line["invoice"]["links"]["self"].rsplit("/", 1)[1]
    for kind, sid, field in (
        ("service", str(service["id"]), "max_attendees"),
        ("invoice", invoice_id, "unit_price"),
    ):
        item = skipped[(kind, sid)]
        assert item.skip_code == "malformed_record", item
        assert field in (item.skip_reason or "") and "out of range" in (item.skip_reason or "")


def test_the_mappings_number_limits_are_the_clinic_stores() -> None:
    assert fields.DECIMAL_LIMIT == target_schema.DECIMAL_LIMIT
    assert fields.DECIMAL_PLACES == target_schema.DECIMAL_PLACES
    with pytest.raises(fields.Malformed, match="out of range"):
        fields.integer({"n": 2**63}, "n")
    assert fields.integer({"n": 2**63 - 1}, "n") == 2**63 - 1
    with pytest.raises(fields.Malformed, match="out of range"):
        fields.decimal({"n": "1000000000"}, "n")
    with pytest.raises(fields.Malformed, match="decimal places"):
        fields.decimal({"n": "0.0000001"}, "n")
    assert fields.decimal({"n": "999999999.999999"}, "n") == Decimal("999999999.999999")
    assert fields.decimal({"n": "12.5000000"}, "n") == Decimal("12.5")
