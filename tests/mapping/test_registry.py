"""The registry, the example payloads end to end, and fuzzing: mapping never raises."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.mapping import KINDS_IN_ORDER, MAPPERS, RECORD_TYPES, RESOURCE_KINDS, map_row
from engine.mapping.records import Mapped, Skip
from engine.mapping.staged import StagedRow
from engine.resources import BY_NAME

from .helpers import EXAMPLES, example_context, example_rows

CTX = example_context()

# Example payloads that legitimately skip, and why.
EXPECTED_SKIPS = {
    ("patients__deleted_list.json", "deleted_in_cliniko"),
    ("individual_appointments__deleted_list.json", "deleted_in_cliniko"),
    ("group_appointments__deleted_list.json", "deleted_in_cliniko"),
    ("attendees__deleted_list.json", "deleted_in_cliniko"),
    ("treatment_notes__deleted_list.json", "deleted_in_cliniko"),
    ("invoices__deleted_list.json", "deleted_in_cliniko"),
    ("treatment_notes__get.json", "draft_note"),  # the documented examples are drafts
    ("treatment_notes__list.json", "draft_note"),
}


def test_registry_is_complete() -> None:
    assert set(MAPPERS) == set(RECORD_TYPES) == set(KINDS_IN_ORDER)
    assert set(RESOURCE_KINDS.values()) == set(MAPPERS)
    assert set(RESOURCE_KINDS) <= set(BY_NAME)
    assert map_row(StagedRow("invoice_items", "1", {}), CTX) is None


def test_every_example_maps_or_skips_as_documented() -> None:
    seen = set()
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = path.name.split("__", 1)[0]
        if resource not in RESOURCE_KINDS:
            continue
        for staged in example_rows(path.name):
            result = map_row(staged, CTX)
            assert result is not None
            assert result.kind == RESOURCE_KINDS[resource]
            if isinstance(result, Skip):
                assert (path.name, result.code) in EXPECTED_SKIPS, (path.name, result)
                seen.add((path.name, result.code))
            else:
                assert isinstance(result.record, RECORD_TYPES[result.kind])
                assert all(isinstance(v, str) and v.isdigit() for v in result.refs.values())
    assert seen == EXPECTED_SKIPS


def test_ref_keys_are_kinds_loaded_earlier() -> None:
    order = {k: i for i, k in enumerate(KINDS_IN_ORDER)}
    ref_kind = {"merged_into": "patient"}
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = path.name.split("__", 1)[0]
        if resource not in RESOURCE_KINDS:
            continue
        for staged in example_rows(path.name):
            result = map_row(staged, CTX)
            if isinstance(result, Mapped):
                for key in result.refs:
                    target = ref_kind.get(key, key)
                    assert target in order
                    assert order[target] <= order[result.kind]


# --- fuzzing -------------------------------------------------------------------------------

SENTINEL = "PHI-SENTINEL"
FIELD_NAMES = sorted(
    {
        key
        for path in EXAMPLES.glob("*.json")
        for key in json.dumps(json.loads(path.read_text())).split('"')[1::2]
        if key.isidentifier()
    }
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "0", "10", "2016-07-21T03:45:00Z", "2001-02-30", "<div>x</div>"]),
    st.text(max_size=12).map(lambda s: f"{SENTINEL}{s}"),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=4),
    ),
    max_leaves=12,
)
link_values = st.builds(
    lambda coll, rid: {"links": {"self": f"https://api.au1.cliniko.com/v1/{coll}/{rid}"}},
    st.sampled_from(["patients", "bookings", "invoices", "practitioners"]),
    st.one_of(st.integers(0, 10**18).map(str), st.sampled_from(["", "x", "-1"])),
)
raw_dicts = st.dictionaries(
    st.sampled_from(FIELD_NAMES), st.one_of(json_values, link_values), max_size=25
)
variant_sets = st.frozensets(
    st.sampled_from(["active", "archived", "deleted", "cancelled", "inactive"]), max_size=3
)


def check(result: object, kind: str) -> None:
    assert isinstance(result, (Mapped, Skip))
    assert result.kind == kind
    if isinstance(result, Skip):
        assert SENTINEL not in result.reason
        assert result.code in {
            "deleted_in_cliniko",
            "draft_note",
            "missing_start_time",
            "malformed_record",
            "covered_by_appointment",
            "unknown_booking",
        }
    else:
        assert isinstance(result.record, RECORD_TYPES[result.kind])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    resource=st.sampled_from(sorted(RESOURCE_KINDS)),
    raw=raw_dicts,
    rid=st.one_of(st.integers(0, 10**18).map(str), st.sampled_from(["", "x1", "001"])),
    variants=variant_sets,
    state=st.sampled_from(["active", "deleted", "archived", "cancelled", "inactive", ""]),
)
def test_arbitrary_dicts_never_raise(
    resource: str, raw: dict[str, Any], rid: str, variants: frozenset[str], state: str
) -> None:
    staged = StagedRow(resource, rid, raw, variants, state, {})
    check(map_row(staged, CTX), RESOURCE_KINDS[resource])


EXAMPLE_ROWS = [
    staged
    for path in sorted(EXAMPLES.glob("*.json"))
    if path.name.split("__", 1)[0] in RESOURCE_KINDS
    for staged in example_rows(path.name)
]


@settings(max_examples=500, deadline=None)
@given(
    index=st.integers(0, len(EXAMPLE_ROWS) - 1),
    data=st.data(),
)
def test_mutated_examples_never_raise(index: int, data: st.DataObject) -> None:
    base = EXAMPLE_ROWS[index]
    raw = copy.deepcopy(base.raw)
    keys = sorted(raw)
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=6, unique=True)):
        if data.draw(st.booleans()):
            del raw[key]
        else:
            raw[key] = data.draw(json_values)
    refs = {} if data.draw(st.booleans()) else dict(base.refs)
    staged = StagedRow(base.resource, base.id, raw, base.variants, base.state, refs)
    check(map_row(staged, CTX), RESOURCE_KINDS[base.resource])


@given(
    raw=st.one_of(json_values, st.just(None)),
    rid=st.one_of(st.none(), st.integers(), st.text(max_size=5)),
    variants=st.one_of(st.none(), st.text(max_size=3), variant_sets),
    refs=st.one_of(st.none(), st.just({"patient": 5}), st.just({"booking": "x"})),
)
@settings(max_examples=200, deadline=None)
def test_wrong_row_shapes_never_raise(raw: Any, rid: Any, variants: Any, refs: Any) -> None:
    for kind, fn in MAPPERS.items():
        check(fn(StagedRow("x", rid, raw, variants, "active", refs), CTX), kind)


def test_engine_mapping_imports_no_ui() -> None:
    code = (
        "import sys, engine.mapping; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'tui')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
