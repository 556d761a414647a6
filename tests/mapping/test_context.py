from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.mapping.context import build_context, parse_custom_field_definitions
from engine.mapping.staged import StagedRow

from .helpers import NOW, example_context, load, row


def alert(rid: int, patient: str, name: object, created: str, **extra: object) -> StagedRow:
    raw = {
        "id": rid,
        "name": name,
        "created_at": created,
        "deleted_at": None,
        "patient": {"links": {"self": f"https://api.au1.cliniko.com/v1/patients/{patient}"}},
        **extra,
    }
    return row("medical_alerts", raw)


def test_example_settings() -> None:
    ctx = example_context()
    assert ctx.time_zone == "America/New_York"
    assert ctx.time_zone_known
    assert ctx.time_zone_source == "Eastern Time (US & Canada)"
    assert ctx.now == NOW
    provider = ctx.custom_fields.fields["b16839e0-26a4-48d6-83d6-36658e357c81"]
    assert provider.name == "Provider"
    assert provider.type == "radiobuttons"
    assert provider.options["d656a93c-a0b6-43ea-ab50-06fd1a00ea44"] == "Super Insurance"
    assert ctx.custom_fields.sections["ef4c43ec-105d-489c-88cc-0f3c5f67dc70"] == (
        "Insurance coverage",
        False,
    )
    assert ctx.practitioner_names == {"514810972972521916": "Randy Savage", "3": "Andy Savage"}
    assert ctx.billable_item_prices == {"1": Decimal("10.0")}
    assert ctx.medical_alerts == {"12345": ("a medical alert",)}
    assert [r.id for r in ctx.invoice_items["1"]] == ["1", "1"]  # live and deleted copies
    assert "1" in ctx.group_appointment_starts
    assert ctx.individual_appointment_ids == frozenset({"1"})
    assert ctx.problems == ()


def test_public_settings_and_missing_settings() -> None:
    assert build_context(load("settings__public.json"), NOW).time_zone == "America/New_York"
    for settings in (None, {}, {"account": None}, {"account": {"time_zone": "Narnia"}}, []):
        ctx = build_context(settings, NOW)  # type: ignore[arg-type]
        assert ctx.time_zone == "UTC"
        assert not ctx.time_zone_known


def test_melbourne_account() -> None:
    ctx = build_context({"account": {"time_zone": "Melbourne"}}, NOW)
    assert (ctx.time_zone, ctx.time_zone_known) == ("Australia/Melbourne", True)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        build_context({}, datetime(2024, 1, 1))


def test_alerts_ordered_live_only_and_problems_reported() -> None:
    ctx = build_context(
        {},
        NOW,
        medical_alerts=[
            alert(3, "7", "Latex allergy", "2020-02-01T00:00:00Z"),
            alert(2, "7", "Penicillin", "2020-01-01T00:00:00Z"),
            alert(4, "7", "Old alert", "2019-01-01T00:00:00Z", deleted_at="2021-01-01T00:00:00Z"),
            alert(5, "8", None, "2020-01-01T00:00:00Z"),
            StagedRow("medical_alerts", "6", "not a dict", frozenset({"active"}), "active", {}),  # type: ignore[arg-type]
        ],
    )
    assert ctx.medical_alerts == {"7": ("Penicillin", "Latex allergy")}
    assert [(p.source_id, p.reason) for p in ctx.problems] == [
        ("5", "name: is missing"),
        ("6", "raw: the record is not a JSON object"),
    ]


def test_invoice_items_sorted_by_created_then_id() -> None:
    def item(rid: int, created: str) -> StagedRow:
        return row(
            "invoice_items",
            {
                "id": rid,
                "created_at": created,
                "invoice": {"links": {"self": "https://x/v1/invoices/9"}},
            },
        )

    ctx = build_context(
        {},
        NOW,
        invoice_items=[
            item(10, "2020-01-02T00:00:00Z"),
            item(9, "2020-01-02T00:00:00Z"),
            item(100, "2020-01-01T00:00:00Z"),
        ],
    )
    assert [r.id for r in ctx.invoice_items["9"]] == ["100", "9", "10"]


def test_custom_field_definitions_tolerate_any_shape() -> None:
    for junk in (None, [], "x", {"sections": "x"}, {"sections": [None, {"fields": [1, {}]}]}):
        defs = parse_custom_field_definitions(junk)
        assert dict(defs.fields) == {}
    defs = parse_custom_field_definitions(
        {
            "sections": [
                {
                    "name": "Old",
                    "token": "s1",
                    "archived": True,
                    "fields": [{"name": "Legacy", "type": "text", "token": "f1"}],
                }
            ]
        }
    )
    assert defs.fields["f1"].archived
    assert defs.sections["s1"] == ("Old", True)


def test_location_zone_and_booking_ref() -> None:
    ctx = build_context(
        {"account": {"time_zone": "Sydney"}},
        datetime(2024, 1, 1, tzinfo=UTC),
        group_appointments=[row("group_appointments", {"id": 5, "starts_at": None})],
    )
    assert ctx.zone_for_location(None) == "Australia/Sydney"
    assert ctx.zone_for_location("1") == "Australia/Sydney"
    assert ctx.booking_ref("5") == {"group_appointment": "5"}
    assert ctx.booking_ref("6") == {"appointment": "6"}
    assert ctx.booking_ref(None) == {}
