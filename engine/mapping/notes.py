"""Treatment notes: finalised notes only, read-only, with a readable body.

The body renders Cliniko's structured content (API-FACTS.md 9.10a): each section's name as a
heading line, then one "Question: answer" line per answered question; sections are separated by
a blank line. A multi-line answer (a paragraph) goes on the lines under "Question:".
Unanswered questions, and sections with no answered question, are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping import fields as f
from engine.mapping.context import MappingContext
from engine.mapping.records import Mapped, MapResult, Skip, TreatmentNote
from engine.mapping.staged import StagedRow
from engine.mapping.text import html_to_text

_FIELD = "content"


def _answer_text(question: Mapping[str, Any]) -> str:
    """The answer of one question as plain text ("" when unanswered)."""
    qtype = question.get("type")
    answer = question.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise f.Malformed(_FIELD, "has an answer that is not text")
    answers = question.get("answers")
    if answers is not None and not isinstance(answers, list):
        raise f.Malformed(_FIELD, "has answers that are not a list")
    if qtype in ("checkboxes", "radiobuttons") or (answers and qtype != "paragraph"):
        chosen: list[str] = []
        for option in answers or []:
            if not isinstance(option, Mapping):
                raise f.Malformed(_FIELD, "has an answer option that is not an object")
            if option.get("selected") is True:
                value = f.text(option, "value")
                if value:
                    chosen.append(value)
        other = question.get("other")
        if other is not None and not isinstance(other, Mapping):
            raise f.Malformed(_FIELD, "has an 'other' that is not an object")
        if other is not None and other.get("selected") is True:
            chosen.append(f.text(other, "value") or "Other")
        # Radiobuttons allow one choice; should Cliniko send more, all are kept, not guessed.
        return ", ".join(chosen)
    if answer is None:
        return ""
    if qtype == "paragraph" or "<" in answer:
        return html_to_text(answer)
    return answer.strip()


def render_content(content: object) -> str:
    """Cliniko's note content as readable plain text ("" for null or empty content)."""
    if content is None or content == "":
        return ""
    if not isinstance(content, Mapping):
        raise f.Malformed(_FIELD, "is not an object")
    sections = content.get("sections") or []
    if not isinstance(sections, list):
        raise f.Malformed(_FIELD, "sections is not a list")
    blocks: list[str] = []
    for section in sections:
        if not isinstance(section, Mapping):
            raise f.Malformed(_FIELD, "has a section that is not an object")
        questions = section.get("questions") or []
        if not isinstance(questions, list):
            raise f.Malformed(_FIELD, "has questions that are not a list")
        lines: list[str] = []
        for question in questions:
            if not isinstance(question, Mapping):
                raise f.Malformed(_FIELD, "has a question that is not an object")
            answer = _answer_text(question)
            if not answer:
                continue
            name = f.text(question, "name") or "Question"
            if "\n" in answer:
                lines.append(f"{name}:")
                lines.append(answer)
            else:
                lines.append(f"{name}: {answer}")
        if not lines:
            continue
        heading = f.text(section, "name")
        blocks.append("\n".join([heading, *lines] if heading else lines))
    return "\n\n".join(blocks)


@f.guarded("treatment_note")
def map_treatment_note(row: StagedRow, ctx: MappingContext) -> MapResult:
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("treatment_note", source_id, "treatment note")
    draft = f.flag(raw, "draft")
    if draft is None:
        raise f.Malformed("draft", "is missing")
    if draft:
        return Skip("treatment_note", source_id, "draft_note", "a draft never finalised in Cliniko")
    written_at = f.required(f.timestamp(raw, "created_at"), "created_at")
    patient = f.ref_id(row, "patient")
    if patient is None:
        raise f.Malformed("patient", "is missing")
    practitioner = f.ref_id(row, "practitioner")
    author = f.text(raw, "author_name")
    if author is None and practitioner is not None:
        author = ctx.practitioner_names.get(practitioner)
    content = raw.get("content")
    body = render_content(content)
    record = TreatmentNote(
        title=f.text(raw, "title"),
        written_at=written_at,
        updated_at_source=f.timestamp(raw, "updated_at"),
        author_name=author,
        body_text=body,
        content=dict(content) if isinstance(content, Mapping) else None,
        read_only=True,
        finalised=True,
    )
    refs = {"patient": patient}
    if practitioner is not None:
        refs["practitioner"] = practitioner
    refs.update(ctx.booking_ref(f.ref_id(row, "booking")))
    return Mapped("treatment_note", source_id, record, refs)
