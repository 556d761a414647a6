from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.mapping.context import build_context
from engine.mapping.notes import map_treatment_note, render_content
from engine.mapping.records import Mapped, Skip, TreatmentNote

from .helpers import NOW, example_context, example_rows, load, row

CTX = example_context()


def note_raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load("treatment_notes__get.json"))
    raw["draft"] = False
    raw.update(changes)
    return raw


def note(raw: dict[str, Any], ctx: Any = CTX) -> Mapped:
    result = map_treatment_note(row("treatment_notes", raw), ctx)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, TreatmentNote)
    return result


def test_example_notes_are_drafts_or_deleted() -> None:
    for fn in ("treatment_notes__get.json", "treatment_notes__list.json"):
        (r,) = example_rows(fn)
        s = map_treatment_note(r, CTX)
        assert isinstance(s, Skip)
        assert s.code == "draft_note"
    (deleted,) = example_rows("treatment_notes__deleted_list.json")
    s = map_treatment_note(deleted, CTX)
    assert isinstance(s, Skip)
    assert s.code == "deleted_in_cliniko"


def test_finalised_example_note() -> None:
    result = note(note_raw())
    rec = result.record
    assert isinstance(rec, TreatmentNote)
    assert result.refs == {"patient": "123", "practitioner": "456"}
    assert rec.title == "Standard Consultation"
    assert rec.written_at == datetime(2017, 6, 12, 16, 56, 57, tzinfo=UTC)
    assert rec.updated_at_source == datetime(2017, 6, 12, 16, 56, 57, tzinfo=UTC)
    assert rec.author_name == "Natasha Hermiston"
    assert rec.read_only
    assert rec.finalised
    assert rec.content == load("treatment_notes__get.json")["content"]
    assert rec.body_text == (
        "Section 1\n"
        "Patient progress report: Answers to paragraph questions support basic HTML!\n"
        "Assessment: Answers to text questions are single lines and do not support HTML\n"
        "\n"
        "Section 2\n"
        "Choose just one: Choice 2\n"
        "Choose one or more: Choice 1, Choice 2"
    )


def q(qtype: str, **kw: Any) -> dict[str, Any]:
    return {"name": f"Q {qtype}", "type": qtype, **kw}


OPTIONS = [{"value": "Neck"}, {"value": "Back", "selected": True}, {"value": "Knee"}]


@pytest.mark.parametrize(
    ("question", "line"),
    [
        (q("text", answer="Sore neck"), "Q text: Sore neck"),
        (q("text", answer="  padded  "), "Q text: padded"),
        (q("date", answer="2024-03-01"), "Q date: 2024-03-01"),
        (q("paragraph", answer="<div>one line</div>"), "Q paragraph: one line"),
        (q("paragraph", answer="first<br>second"), "Q paragraph:\nfirst\nsecond"),
        (
            q("paragraph", answer="<div>a &amp; b</div><div>&lt;c&gt;</div>"),
            "Q paragraph:\na & b\n<c>",
        ),
        (q("checkboxes", answers=OPTIONS), "Q checkboxes: Back"),
        (
            q(
                "checkboxes",
                answers=[{"value": "A", "selected": True}, {"value": "B", "selected": True}],
            ),
            "Q checkboxes: A, B",
        ),
        (
            q(
                "checkboxes",
                answers=OPTIONS,
                other={"enabled": True, "selected": True, "value": "Hip"},
            ),
            "Q checkboxes: Back, Hip",
        ),
        (
            q("checkboxes", answers=OPTIONS, other={"enabled": True, "selected": False}),
            "Q checkboxes: Back",
        ),
        (q("radiobuttons", answers=OPTIONS), "Q radiobuttons: Back"),
        (
            q(
                "radiobuttons",
                answers=[{"value": "Neck"}, {"value": "Back"}],
                other={"enabled": True, "selected": True, "value": "Shoulder"},
            ),
            "Q radiobuttons: Shoulder",
        ),
        (
            q(
                "radiobuttons",
                answers=[{"value": "Neck"}],
                other={"enabled": True, "selected": True},
            ),
            "Q radiobuttons: Other",
        ),
        (
            q(
                "radiobuttons",
                answers=[{"value": "Neck", "selected": True}],
                other={"enabled": True, "selected": False, "value": "stale"},
            ),
            "Q radiobuttons: Neck",
        ),
    ],
)
def test_every_question_type(question: dict[str, Any], line: str) -> None:
    body = render_content({"sections": [{"name": "S", "questions": [question]}]})
    assert body == f"S\n{line}"


@pytest.mark.parametrize(
    "question",
    [
        q("text"),
        q("text", answer=""),
        q("paragraph", answer="<div><br></div>"),
        q("date"),
        q("checkboxes", answers=[{"value": "A"}, {"value": "B"}]),
        q("radiobuttons", answers=[{"value": "A"}], other={"enabled": True}),
        q("radiobuttons", answers=[{"value": None, "selected": True}]),
        q("checkboxes"),
    ],
)
def test_unanswered_questions_are_omitted(question: dict[str, Any]) -> None:
    content = {
        "sections": [
            {"name": "Empty", "questions": [question]},
            {"name": "Kept", "questions": [question, q("text", answer="yes")]},
        ]
    }
    assert render_content(content) == "Kept\nQ text: yes"


def test_sections_without_names_or_questions() -> None:
    content = {
        "sections": [
            {"questions": [q("text", answer="no heading")]},
            {"name": "Only a name"},
            {"name": "Desc", "description": "template text", "questions": []},
        ]
    }
    assert render_content(content) == "Q text: no heading"
    assert render_content(None) == ""
    assert render_content({}) == ""


def test_empty_content_note_maps_with_empty_body() -> None:
    rec = note(note_raw(content=None)).record
    assert isinstance(rec, TreatmentNote)
    assert (rec.body_text, rec.content) == ("", None)


@pytest.mark.parametrize(
    "content",
    [
        "text",
        [1],
        {"sections": "x"},
        {"sections": [1]},
        {"sections": [{"questions": "x"}]},
        {"sections": [{"questions": [1]}]},
        {"sections": [{"questions": [{"type": "text", "answer": 5}]}]},
        {"sections": [{"questions": [{"type": "checkboxes", "answers": "x"}]}]},
        {"sections": [{"questions": [{"type": "checkboxes", "answers": [1]}]}]},
        {"sections": [{"questions": [{"type": "radiobuttons", "answers": [], "other": 1}]}]},
    ],
)
def test_malformed_content(content: object) -> None:
    s = map_treatment_note(row("treatment_notes", note_raw(content=content)), CTX)
    assert isinstance(s, Skip)
    assert s.code == "malformed_record"
    assert s.reason.startswith("content")


def test_draft_flag() -> None:
    s = map_treatment_note(row("treatment_notes", note_raw(draft=True)), CTX)
    assert isinstance(s, Skip)
    assert s.code == "draft_note"
    for bad in (None, "false", 0):
        s = map_treatment_note(row("treatment_notes", note_raw(draft=bad)), CTX)
        assert isinstance(s, Skip)
        assert s.code == "malformed_record"
        assert "draft" in s.reason


def test_deleted_beats_draft() -> None:
    raw = note_raw(draft=True, deleted_at="2020-01-01T00:00:00Z")
    s = map_treatment_note(row("treatment_notes", raw), CTX)
    assert isinstance(s, Skip)
    assert s.code == "deleted_in_cliniko"


def test_author_from_practitioner_when_name_missing() -> None:
    raw = note_raw(author_name="")
    raw["practitioner"] = {
        "links": {"self": "https://api.au1.cliniko.com/v1/practitioners/514810972972521916"}
    }
    rec = note(raw).record
    assert isinstance(rec, TreatmentNote)
    assert rec.author_name == "Randy Savage"


def test_booking_ref_individual_or_group() -> None:
    ctx = build_context(
        {},
        NOW,
        group_appointments=[row("group_appointments", {"id": 77, "starts_at": None})],
    )
    for booking, expected in (("76", {"appointment": "76"}), ("77", {"group_appointment": "77"})):
        raw = note_raw(
            booking={"links": {"self": f"https://api.au1.cliniko.com/v1/bookings/{booking}"}}
        )
        refs = note(raw, ctx).refs
        assert refs == {"patient": "123", "practitioner": "456", **expected}


@pytest.mark.parametrize(
    ("field", "value"), [("created_at", None), ("patient", None), ("created_at", "x")]
)
def test_required_fields(field: str, value: object) -> None:
    s = map_treatment_note(row("treatment_notes", note_raw(**{field: value}), refs={}), CTX)
    assert isinstance(s, Skip)
    assert s.code == "malformed_record"
    assert field in s.reason
