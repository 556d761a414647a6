from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest

from engine.mapping.context import build_context
from engine.mapping.people import map_patient, match_key, render_custom_fields
from engine.mapping.records import Mapped, Patient, Skip

from .helpers import NOW, example_context, example_rows, load, row

CTX = example_context()


def patient(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load("patients__get.json"))
    raw.update(changes)
    return raw


def mapped(raw: dict[str, Any], ctx: Any = CTX, **kw: Any) -> Mapped:
    result = map_patient(row("patients", raw, **kw), ctx)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, Patient)
    return result


def record(raw: dict[str, Any], ctx: Any = CTX, **kw: Any) -> Patient:
    rec = mapped(raw, ctx, **kw).record
    assert isinstance(rec, Patient)
    return rec


def skipped(raw: Any, **kw: Any) -> Skip:
    result = map_patient(row("patients", raw, row_id="1", **kw), CTX)
    assert isinstance(result, Skip), result
    return result


def test_example_patient() -> None:
    p = record(load("patients__get.json"))
    assert (p.title, p.first_name, p.last_name, p.preferred_name) == (
        "Mr",
        "Peter",
        "Patientman",
        "Pete",
    )
    assert p.date_of_birth == date(2001, 5, 26)
    assert (p.sex, p.gender_identity, p.gender_legacy) == ("Female to Male", "Transgender", "Male")
    # The duplicate key in the example: the last (populated) list wins.
    assert p.phones == (
        {"type": "Mobile", "number": "61444444444"},
        {"type": "Home", "number": "61399999999"},
    )
    assert p.address_1 == "1 Smith Street"
    assert p.address_2 is None  # "" -> None
    assert p.invoice_extra_information == "Insurance #123456\nClaim #123456"
    assert p.time_zone == "Australia/Melbourne"
    assert p.archived is False
    assert p.merged_into is None
    assert p.reminder_type == "None"
    assert (p.accepted_privacy_policy, p.accepted_email_marketing, p.accepted_sms_marketing) == (
        True,
        True,
        False,
    )
    assert p.match_key == "peter|patientman|2001-05-26"
    assert p.custom_fields == (
        {
            "section": "Insurance coverage",
            "name": "Provider",
            "type": "radiobuttons",
            "value_text": "Super Insurance",
            "archived": False,
        },
        {
            "section": "Insurance coverage",
            "name": "Policy number",
            "type": "text",
            "value_text": "ABC-12345",
            "archived": False,
        },
    )


def test_list_example_and_archived_merged_example() -> None:
    (active,) = example_rows("patients__list.json")
    assert isinstance(map_patient(active, CTX), Mapped)
    (archived,) = example_rows("patients__archived_list.json")
    result = map_patient(archived, CTX)
    assert isinstance(result, Mapped)
    rec = result.record
    assert isinstance(rec, Patient)
    assert rec.archived
    assert rec.archived_at == datetime(2013, 6, 5, 14, 37, 18, tzinfo=UTC)
    assert rec.merged_into == "1001"
    assert rec.merged_at == datetime(2013, 6, 5, 14, 37, 18, tzinfo=UTC)
    assert result.refs == {"merged_into": "1001"}
    assert rec.custom_fields == ()  # custom_fields: null


def test_archived_by_list_or_by_merge_only() -> None:
    assert record(patient(), variants={"archived"}).archived
    merged = patient(
        merged_with_patient={"links": {"self": "https://api.au1.cliniko.test/v1/patients/9"}}
    )
    assert record(merged).archived


def test_deleted_list_row_is_skipped() -> None:
    (deleted,) = example_rows("patients__deleted_list.json")
    result = map_patient(deleted, CTX)
    assert isinstance(result, Skip)
    assert result.code == "deleted_in_cliniko"
    assert result.source_id == "1"
    assert "only its id" in result.reason


def test_deleted_full_patient_is_skipped() -> None:
    s = skipped(patient(deleted_at="2020-01-01T00:00:00Z"))
    assert s.code == "deleted_in_cliniko"
    assert "Peter" not in s.reason
    assert skipped(patient(), variants={"deleted"}).code == "deleted_in_cliniko"


@pytest.mark.parametrize("dob", ["", None, "   "])
def test_empty_date_of_birth(dob: object) -> None:
    p = record(patient(date_of_birth=dob))
    assert p.date_of_birth is None
    assert p.match_key == "peter|patientman|"


@pytest.mark.parametrize(
    "dob", ["2001-02-30", "26/05/2001", "2001-5-26", 20010526, "2001-05-26T00:00"]
)
def test_invalid_date_of_birth_is_malformed_and_names_the_field(dob: object) -> None:
    s = skipped(patient(date_of_birth=dob))
    assert s.code == "malformed_record"
    assert "date_of_birth" in s.reason
    assert str(dob) not in s.reason


def test_empty_and_null_fields() -> None:
    keys = [
        "title", "preferred_first_name", "sex", "gender_identity", "gender", "email",
        "address_1", "address_2", "address_3", "city", "state", "post_code", "country",
        "emergency_contact", "occupation", "notes", "appointment_notes", "medicare",
        "medicare_reference_number", "dva_card_number", "old_reference_id", "time_zone",
        "reminder_type", "archived_at", "custom_fields", "patient_phone_numbers",
        "accepted_privacy_policy", "invoice_default_to",
    ]  # fmt: skip
    for empty in ("", None):
        p = record(patient(**dict.fromkeys(keys, empty)))
        assert p.title is None
        assert p.email is None
        assert p.time_zone is None
        assert p.phones == ()
        assert p.custom_fields == ()
        assert p.accepted_privacy_policy is None
        assert not p.archived
    bare = record({"id": 5, "first_name": "Solo"})
    assert bare.last_name is None
    assert bare.match_key == "solo||"


def test_no_name_at_all_is_malformed() -> None:
    s = skipped({"id": 5, "first_name": "", "last_name": None})
    assert s.code == "malformed_record"
    assert "first_name" in s.reason


def test_unicode_and_very_long_names() -> None:
    first = "Zoë-Åsa " + "Ŋ" * 250
    p = record(patient(first_name=first, last_name="Nguyễn  Thị"))
    assert p.first_name == first
    assert len(p.first_name or "") > 200
    assert p.match_key.split("|")[1] == "nguyen thi"


@pytest.mark.parametrize("rid", [1, "1", " 1 ", "0001"])
def test_ids_as_numbers_or_strings(rid: object) -> None:
    raw = patient(id=rid)
    result = map_patient(row("patients", raw, row_id=str(rid)), CTX)
    assert isinstance(result, Mapped)
    assert result.source_id == "1"


def test_medical_alerts_from_context() -> None:
    alerts = [
        row(
            "medical_alerts",
            {
                "id": i,
                "name": name,
                "created_at": f"2020-01-0{i}T00:00:00Z",
                "deleted_at": deleted,
                "patient": {"links": {"self": "https://api.au1.cliniko.com/v1/patients/1"}},
            },
        )
        for i, name, deleted in [
            (1, "Asthma", None),
            (2, "Removed", "2021-01-01T00:00:00Z"),
            (3, "Bee sting", ""),
        ]
    ]
    ctx = build_context(load("settings__get.json"), NOW, medical_alerts=alerts)
    assert record(patient(), ctx).medical_alerts == ("Asthma", "Bee sting")
    assert record(patient(id=2), ctx).medical_alerts == ()


def test_phone_entries() -> None:
    p = record(
        patient(
            patient_phone_numbers=[
                {"phone_type": "Mobile", "number": 61400000000},
                {"phone_type": None, "number": "0390000000"},
                {"phone_type": "Home", "number": ""},
            ]
        )
    )
    assert p.phones == (
        {"type": "Mobile", "number": "61400000000"},
        {"type": None, "number": "0390000000"},
    )
    for bad in ("0400", [1], {"number": "1"}):
        s = skipped(patient(patient_phone_numbers=bad))
        assert "patient_phone_numbers" in s.reason


def test_patient_time_zone_rails_name_or_unknown() -> None:
    assert record(patient(time_zone="Melbourne")).time_zone == "Australia/Melbourne"
    assert record(patient(time_zone="Moon/Base")).time_zone is None


SETTINGS_DEFS = {
    "patient_custom_fields_definition": {
        "sections": [
            {
                "name": "Health",
                "token": "sec-h",
                "fields": [
                    {"name": "Sports", "type": "checkboxes", "token": "f-sports",
                     "other": {"enabled": True},
                     "options": [{"name": "Running", "token": "o-run"},
                                 {"name": "Swimming", "token": "o-swim"},
                                 {"name": "Golf", "token": "o-golf", "archived": True}]},
                    {"name": "Referred by", "type": "radiobuttons", "token": "f-ref",
                     "other": {"enabled": True},
                     "options": [{"name": "GP", "token": "o-gp"}]},
                    {"name": "History", "type": "paragraph", "token": "f-hist"},
                    {"name": "Last X-ray", "type": "date", "token": "f-xray"},
                    {"name": "Old field", "type": "text", "token": "f-old", "archived": True},
                    {"name": "Unanswered", "type": "text", "token": "f-none"},
                ],
            },
            {"name": "Archived section", "token": "sec-old", "archived": True,
             "fields": [{"name": "Legacy", "type": "text", "token": "f-leg"}]},
        ]
    }
}  # fmt: skip


def test_custom_fields_every_type() -> None:
    ctx = build_context(SETTINGS_DEFS, NOW)
    value = {
        "sections": [
            {
                "name": "Renamed since",
                "token": "sec-h",
                "fields": [
                    {"name": "Sports (old name)", "type": "checkboxes", "token": "f-sports",
                     "options": [{"name": "Running", "token": "o-run", "selected": True},
                                 {"name": "Swimming", "token": "o-swim"},
                                 {"name": "Golf", "token": "o-golf", "selected": True}],
                     "other": {"enabled": True, "selected": True, "value": "Rock climbing"}},
                    {"name": "Referred by", "type": "radiobuttons", "token": "f-ref",
                     "options": [{"name": "GP", "token": "o-gp"}],
                     "other": {"enabled": True, "selected": True, "value": "A friend"}},
                    {"name": "History", "type": "paragraph", "token": "f-hist",
                     "value": "Line one\nLine two"},
                    {"name": "Last X-ray", "type": "date", "token": "f-xray",
                     "value": "2023-02-01"},
                    {"name": "Old field", "type": "text", "token": "f-old", "value": "kept"},
                    {"name": "Unanswered", "type": "text", "token": "f-none"},
                    {"name": "Not in settings", "type": "text", "token": "f-unknown", "value": "x"},
                ],
            },
            {"name": "Archived section", "token": "sec-old",
             "fields": [{"name": "Legacy", "type": "text", "token": "f-leg", "value": "y"}]},
        ]
    }  # fmt: skip
    rendered = render_custom_fields(value, ctx.custom_fields)
    assert [(c["section"], c["name"], c["value_text"], c["archived"]) for c in rendered] == [
        ("Health", "Sports", "Running, Golf, Rock climbing", False),
        ("Health", "Referred by", "A friend", False),
        ("Health", "History", "Line one\nLine two", False),
        ("Health", "Last X-ray", "2023-02-01", False),
        ("Health", "Old field", "kept", True),
        ("Health", "Not in settings", "x", False),
        ("Archived section", "Legacy", "y", True),
    ]
    assert [c["type"] for c in rendered][:4] == ["checkboxes", "radiobuttons", "paragraph", "date"]


def test_custom_fields_other_unselected_and_selected_without_text() -> None:
    ctx = build_context(SETTINGS_DEFS, NOW)
    value = {
        "sections": [
            {
                "token": "sec-h",
                "fields": [
                    {"token": "f-sports", "type": "checkboxes",
                     "options": [{"token": "o-swim", "selected": True}],
                     "other": {"enabled": True, "selected": False, "value": "ignored"}},
                    {"token": "f-ref", "type": "radiobuttons", "options": [{"token": "o-gp"}],
                     "other": {"enabled": True, "selected": True}},
                ],
            }
        ]
    }  # fmt: skip
    rendered = render_custom_fields(value, ctx.custom_fields)
    assert [c["value_text"] for c in rendered] == ["Swimming", "Other"]


@pytest.mark.parametrize(
    "bad",
    ["text", [1], {"sections": "x"}, {"sections": [1]}, {"sections": [{"fields": [1]}]},
     {"sections": [{"fields": [{"type": "checkboxes", "options": "x"}]}]}],
)  # fmt: skip
def test_malformed_custom_fields(bad: object) -> None:
    s = skipped(patient(custom_fields=bad))
    assert s.code == "malformed_record"
    assert "custom_fields" in s.reason


def test_match_key() -> None:
    assert match_key("  José ", "ÁLVAREZ", date(1990, 1, 2)) == "jose|alvarez|1990-01-02"
    assert match_key(None, None, None) == "||"
