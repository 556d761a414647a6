from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.mapping.context import build_context
from engine.mapping.records import Location, Mapped, Practitioner, Service, Skip
from engine.mapping.setup import map_location, map_practitioner, map_service

from .helpers import NOW, example_context, example_rows, load, row

CTX = example_context()


def test_example_businesses() -> None:
    for fn in ("businesses__get.json", "businesses__list.json"):
        for r in example_rows(fn):
            result = map_location(r, CTX)
            assert isinstance(result, Mapped)
            loc = result.record
            assert isinstance(loc, Location)
            assert result.source_id == "514810976554457178"
    loc = map_location(example_rows("businesses__get.json")[0], CTX).record  # type: ignore[union-attr]
    assert isinstance(loc, Location)
    assert loc.name == "Healthy Times"  # display_name null -> business name
    assert loc.legal_name == "Healthy Times"
    assert loc.address_2 is None
    assert (loc.city, loc.state, loc.post_code, loc.country, loc.country_code) == (
        "Smithytown",
        "Victoria",
        "3000",
        "Australia",
        "AU",
    )
    assert loc.email == "healthytimes@example.com"
    assert loc.website == "http://www.healthytimes.com"
    assert (loc.registration_label, loc.registration_value) == ("ABN", "1111111111")
    assert loc.contact_information == "Phone: 99999 99999"
    assert loc.time_zone == "America/New_York"  # the account's zone


def test_display_name_wins_and_missing_names_are_malformed() -> None:
    raw = copy.deepcopy(load("businesses__get.json"))
    raw["display_name"] = "Healthy Times — Fitzroy"
    loc = map_location(row("businesses", raw), CTX)
    assert isinstance(loc, Mapped)
    assert isinstance(loc.record, Location)
    assert (loc.record.name, loc.record.legal_name) == ("Healthy Times — Fitzroy", "Healthy Times")
    raw["display_name"] = raw["business_name"] = ""
    bad = map_location(row("businesses", raw), CTX)
    assert isinstance(bad, Skip)
    assert bad.code == "malformed_record"
    assert "business_name" in bad.reason


def practitioner(variants: set[str], **changes: Any) -> Practitioner:
    raw = copy.deepcopy(load("practitioners__get.json"))
    raw.update(changes)
    result = map_practitioner(row("practitioners", raw, variants), CTX)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, Practitioner)
    return result.record


def test_example_practitioners() -> None:
    p = practitioner({"active"})
    assert (p.title, p.first_name, p.last_name, p.display_name) == (
        "Mr",
        "Randy",
        "Savage",
        "Randy Savage",
    )
    assert (p.designation, p.description, p.active, p.match_name) == (
        "Osteopath",
        None,
        True,
        "randy savage",
    )
    (inactive,) = example_rows("practitioners__inactive_list.json")
    result = map_practitioner(inactive, CTX)
    assert isinstance(result, Mapped)
    assert isinstance(result.record, Practitioner)
    assert result.source_id == "3"  # a JSON number in this example
    assert result.record.active is False
    assert result.record.display_name == "Andy Savage"  # no label: built from the names


def test_active_flag_from_lists() -> None:
    assert practitioner({"active", "inactive"}).active  # seen in both: active wins
    assert not practitioner({"inactive"}).active
    assert practitioner(set()).active


def test_practitioner_names() -> None:
    p = practitioner({"active"}, label=None, first_name="  Dr  José", last_name="ÁLVAREZ ")
    assert p.display_name == "Dr  José ÁLVAREZ"
    assert p.match_name == "dr jose alvarez"
    long_name = "Ŵ" * 220
    assert practitioner({"active"}, label=long_name).display_name == long_name
    only_title = practitioner({"active"}, label="", first_name="", last_name=None)
    assert only_title.display_name == "Mr"
    raw = {"id": "9", "title": "", "first_name": "", "last_name": None, "label": None}
    bad = map_practitioner(row("practitioners", raw), CTX)
    assert isinstance(bad, Skip)
    assert bad.code == "malformed_record"


def service(fn: str = "appointment_types__get.json", ctx: Any = CTX, **changes: Any) -> Service:
    raw = copy.deepcopy(load(fn))
    if "appointment_types" in raw:
        raw = raw["appointment_types"][0]
    raw.update(changes)
    variants = {"archived"} if "archived" in fn else {"active"}
    result = map_service(row("appointment_types", raw, variants), ctx)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, Service)
    return result.record


def test_example_appointment_types() -> None:
    s = service()
    assert (s.name, s.category, s.color, s.duration_minutes, s.max_attendees) == (
        "Initial Consultation",
        "Osteopathy",
        "#00FF00",
        60,
        1,
    )
    assert (s.archived, s.archived_at, s.description, s.match_name) == (
        False,
        None,
        None,
        "initial consultation",
    )
    a = service("appointment_types__archived_list.json")
    assert a.archived
    assert a.archived_at == datetime(2016, 6, 28, 21, 33, 26, tzinfo=UTC)
    assert service("appointment_types__list.json").archived is False


def test_default_price_from_billable_item() -> None:
    assert service().default_price is None  # billable item 3 was not staged
    items = [row("billable_items", {"id": 3, "price": "81.818"})]
    ctx = build_context(load("settings__get.json"), NOW, billable_items=items)
    price = service(ctx=ctx).default_price
    assert price == Decimal("81.818")
    assert str(price) == "81.818"
    assert service(ctx=ctx, billable_item=None).default_price is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("duration_in_minutes", "sixty"), ("max_attendees", 1.5), ("name", ""), ("archived_at", "x")],
)
def test_malformed_service_names_field(field: str, value: object) -> None:
    raw = copy.deepcopy(load("appointment_types__get.json"))
    raw[field] = value
    result = map_service(row("appointment_types", raw), CTX)
    assert isinstance(result, Skip)
    assert result.code == "malformed_record"
    assert field in result.reason


def test_numeric_strings_accepted() -> None:
    assert service(duration_in_minutes="45").duration_minutes == 45
