"""row_hash: stable, canonical, and blind to representation but not to content."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from target.hashing import canonical_json, row_hash

BASE: dict[str, Any] = {
    "first_name": "Zoë",
    "total": Decimal("81.80"),
    "count": 3,
    "born": date(1990, 1, 2),
    "at": datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
    "phones": [{"type": "Mobile", "number": "021"}],
    "archived": False,
    "note": None,
}


def test_key_order_does_not_matter() -> None:
    assert row_hash(BASE) == row_hash(dict(reversed(list(BASE.items()))))
    nested = {"a": {"x": 1, "y": [1, {"p": 1, "q": 2}]}}
    assert row_hash(nested) == row_hash({"a": {"y": [1, {"q": 2, "p": 1}], "x": 1}})


@pytest.mark.parametrize(
    ("key", "same"),
    [
        ("total", Decimal("81.8")),
        ("total", Decimal("81.800000")),
        ("count", Decimal("3.00")),
        ("count", 3.0),
        ("at", datetime(2024, 5, 1, 21, 0, tzinfo=timezone(timedelta(hours=12)))),
        ("phones", ({"number": "021", "type": "Mobile"},)),
    ],
)
def test_equal_values_in_other_forms_hash_alike(key: str, same: Any) -> None:
    assert row_hash({**BASE, key: same}) == row_hash(BASE)


@pytest.mark.parametrize(
    ("key", "other"),
    [
        ("total", Decimal("81.81")),
        ("first_name", "Zoe"),
        ("first_name", "zoë"),
        ("count", 4),
        ("archived", True),
        ("archived", None),
        ("note", ""),
        ("born", date(1990, 1, 3)),
        ("at", datetime(2024, 5, 1, 9, 0, 0, 1, tzinfo=UTC)),
        ("phones", []),
    ],
)
def test_different_content_hashes_differently(key: str, other: Any) -> None:
    assert row_hash({**BASE, key: other}) != row_hash(BASE)


def test_a_missing_key_differs_from_none_and_ignore_drops_keys() -> None:
    without = {k: v for k, v in BASE.items() if k != "note"}
    assert row_hash(without) != row_hash(BASE)
    assert row_hash(BASE, ignore={"note"}) == row_hash(without)
    assert row_hash({**BASE, "updated_at": datetime.now(UTC)}, ignore={"updated_at"}) == row_hash(
        BASE
    )


def test_the_hash_is_stable_across_runs() -> None:
    # A fixed value: changing the canonical form would make every rerun look like a change.
    assert canonical_json({"b": Decimal("1.50"), "a": "é", "c": date(2020, 1, 1)}) == (
        '{"a":"é","b":1.5,"c":"2020-01-01"}'
    )
    assert row_hash({"a": 1, "b": Decimal("1.50")}) == "f43be02dd40029a8b64707d819f0d1e7"


def test_unhashable_values_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        row_hash({"at": datetime(2024, 1, 1)})
    with pytest.raises(ValueError, match="non-finite"):
        row_hash({"x": Decimal("NaN")})
    with pytest.raises(TypeError):
        row_hash({"x": object()})
    with pytest.raises(TypeError):
        row_hash({"x": {1: "a"}})


def test_enum_values_hash_as_their_value() -> None:
    class Status(StrEnum):
        OPEN = "open"

    assert row_hash({"s": Status.OPEN}) == row_hash({"s": "open"})


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, max_value=10**9, min_value=-(10**9)
    )
)
def test_decimals_hash_by_value(value: Decimal) -> None:
    assert row_hash({"x": value}) == row_hash({"x": Decimal(str(value)).normalize()})
    if value == value.to_integral_value():
        assert row_hash({"x": value}) == row_hash({"x": int(value)})
