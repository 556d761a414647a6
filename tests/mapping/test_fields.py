from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from engine.mapping import fields as f
from engine.mapping.staged import StagedRow


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "1"), ("1", "1"), (" 42 ", "42"), ("007", "7"), (514810976554457178, "514810976554457178"),
     ("514810976554457178", "514810976554457178")],
)  # fmt: skip
def test_canonical_id(value: object, expected: str) -> None:
    assert f.canonical_id(value) == expected


@pytest.mark.parametrize("value", [None, "", "x", -1, 1.0, True, "1e3", [1]])
def test_bad_ids(value: object) -> None:
    with pytest.raises(f.Malformed):
        f.canonical_id(value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.au1.cliniko.com/v1/patients/82", "82"),
        ("http://api.cliniko.dev:3000/v1/practitioners/7?x=1", "7"),
        ("https://api.au1.cliniko.test/v1/patients/1001/", "1001"),
        ("/v1/internal/daily_availabilities/15", "15"),
        ("https://api.au1.cliniko.com/v1/appointments/70644", "70644"),
        ("", None),
        (None, None),
    ],
)
def test_link_id(url: str | None, expected: str | None) -> None:
    assert f.link_id({"x": {"links": {"self": url}}}, "x") == expected


@pytest.mark.parametrize(
    "obj",
    [
        "https://x/v1/patients/1",
        {"links": "x"},
        {"links": {"self": 5}},
        {"links": {"self": "https://api.au1.cliniko.com/v1/patients/1/invoices?page=1"}},
    ],
)
def test_bad_links(obj: object) -> None:
    with pytest.raises(f.Malformed, match=r"^x:"):
        f.link_id({"x": obj}, "x")
    assert f.link_id({}, "x") is None


def test_ref_id_prefers_staging_refs() -> None:
    raw = {"patient": {"links": {"self": "https://x/v1/patients/9"}}}
    assert f.ref_id(StagedRow("r", "1", raw, refs={"patient": "8"}), "patient") == "8"
    assert f.ref_id(StagedRow("r", "1", raw, refs={"patient": None}), "patient") is None
    assert f.ref_id(StagedRow("r", "1", raw), "patient") == "9"


def test_scalars() -> None:
    raw = {
        "s": "  a\r\nb  ",
        "n": 104,
        "e": "",
        "dec": "81.818",
        "neg": "-30.05",
        "int_s": "60",
        "d": "2024-02-29",
        "ts": "2016-07-21T03:45:00Z",
        "naive": "2016-07-21T03:45:00",
        "off": "2016-07-21T13:45:00+10:00",
    }
    assert f.text(raw, "s") == "a\nb"
    assert f.text(raw, "n") == "104"
    assert f.text(raw, "e") is None
    assert f.text(raw, "missing") is None
    assert f.decimal(raw, "dec") == Decimal("81.818")
    assert str(f.decimal(raw, "dec")) == "81.818"
    assert f.decimal(raw, "neg") == Decimal("-30.05")
    assert f.integer(raw, "int_s") == 60
    assert f.calendar_date(raw, "d") == date(2024, 2, 29)
    moment = datetime(2016, 7, 21, 3, 45, tzinfo=UTC)
    assert f.timestamp(raw, "ts") == moment
    assert f.timestamp(raw, "naive") == moment
    assert f.timestamp(raw, "off") == moment
    assert f.flag({"b": ""}, "b", False) is False


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        (f.decimal, "1,5"),
        (f.decimal, "Infinity"),
        (f.decimal, {}),
        (f.integer, "1.5"),
        (f.integer, 1.5),
        (f.integer, True),
        (f.calendar_date, "2023-02-29"),
        (f.calendar_date, "2023-2-1"),
        (f.timestamp, "2016-07-21"),
        (f.timestamp, "2016-07-21T25:00:00Z"),
        (f.timestamp, 0),
        (f.flag, "TRUE-ish"),
        (f.flag, 1),
        (f.text, ["a"]),
        (f.text, True),
    ],
)
def test_malformed_values_name_the_field_not_the_value(reader: object, value: object) -> None:
    with pytest.raises(f.Malformed) as info:
        reader({"the_field": value}, "the_field")  # type: ignore[operator]
    assert str(info.value).startswith("the_field:")
    assert str(value) not in str(info.value) or str(value) in ("True", "0", "1")


def test_is_deleted() -> None:
    live = StagedRow("r", "1", {"deleted_at": ""})
    assert not f.is_deleted(live, live.raw)
    assert f.is_deleted(StagedRow("r", "1", {}, state="deleted"), {})
    assert f.is_deleted(StagedRow("r", "1", {}, frozenset({"deleted"})), {})
    assert f.is_deleted(live, {"deleted_at": "2020-01-01T00:00:00Z"})
