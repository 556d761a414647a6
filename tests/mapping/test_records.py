from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.mapping.records import (
    RECORD_TYPES,
    Column,
    Invoice,
    InvoiceLine,
    Location,
    columns,
)


@pytest.mark.parametrize("record_type", [*RECORD_TYPES.values(), InvoiceLine])
def test_columns_are_snake_case_and_typed(record_type: type) -> None:
    cols = columns(record_type)
    assert cols
    assert len({c.name for c in cols}) == len(cols)
    for col in cols:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", col.name), col.name
        assert col.name not in {"id", "kind", "source_id"} or record_type is InvoiceLine


def test_column_descriptions() -> None:
    by_name = {c.name: c for c in columns(Invoice)}
    assert by_name["total"] == Column("total", "decimal", False)
    assert by_name["issue_date"] == Column("issue_date", "date", True)
    assert by_name["closed_at"] == Column("closed_at", "timestamp", True)
    assert by_name["lines"] == Column("lines", "child", False)
    assert by_name["status"] == Column("status", "text", False)
    assert by_name["status_only_open"].type == "boolean"
    patient = {c.name: c for c in columns(RECORD_TYPES["patient"])}
    assert patient["phones"].type == "json"
    assert patient["custom_fields"].type == "json"
    assert patient["medical_alerts"].type == "json"
    assert patient["date_of_birth"] == Column("date_of_birth", "date", True)
    note = {c.name: c for c in columns(RECORD_TYPES["treatment_note"])}
    assert note["content"] == Column("content", "json", True)


def test_records_are_frozen() -> None:
    loc = Location(
        name="A",
        legal_name=None,
        address_1=None,
        address_2=None,
        city=None,
        state=None,
        post_code=None,
        country=None,
        country_code=None,
        contact_information=None,
        email=None,
        website=None,
        registration_label=None,
        registration_value=None,
        time_zone="UTC",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        loc.name = "B"  # type: ignore[misc]


def test_json_columns_serialise() -> None:
    phones = ({"type": "Mobile", "number": "0400"},)
    assert json.loads(json.dumps(phones)) == [{"type": "Mobile", "number": "0400"}]
    assert Decimal("81.818") == Decimal("81.818")
    assert datetime(2024, 1, 1, tzinfo=UTC).utcoffset() is not None
