"""Structured content: treatment-note templates and answers, patient custom fields.

Treatment notes follow API-FACTS.md section 9.10a: questions of every type (`text`,
`paragraph`, `checkboxes`, `radiobuttons`, `date`), paragraph answers as HTML with `<div>`,
`<br>` and entities, checkbox/radio `answers` listing every option with `selected: true` on the
chosen ones, "Other" answers (`other.enabled/selected/value`), unanswered questions without an
`answer` key, and radiobuttons with nothing selected when "Other" is. Templates use the template
grammar (section 9.11): a default `answer` on paragraphs only, `answers` with `value` only,
`other` with `enabled` only.

Patient custom fields follow section 9.1a; their tokens are the ones of
`settings.patient_custom_fields_definition`, including archived sections, fields and options.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

JSON = dict[str, Any]

QUESTION_TYPES = ("text", "paragraph", "checkboxes", "radiobuttons", "date")


def _q(name: str, qtype: str, options: tuple[str, ...] = (), **extra: Any) -> JSON:
    question: JSON = {"name": name, "type": qtype}
    if "answer" in extra:
        question["answer"] = extra["answer"]
    if options:
        question["answers"] = [{"value": v} for v in options]
    if "other" in extra:
        question["other"] = {"enabled": extra["other"]}
    return question


TEMPLATES: tuple[tuple[str, JSON], ...] = (
    (
        "Standard Consultation",
        {
            "sections": [
                {
                    "name": "Subjective",
                    "description": "What the patient reports today",
                    "questions": [
                        _q("Presenting complaint", "text"),
                        _q(
                            "History",
                            "paragraph",
                            answer="<div>Onset:&nbsp;</div><div>Aggravating factors:</div>",
                        ),
                        _q("Date of injury", "date"),
                    ],
                },
                {
                    "name": "Objective",
                    "questions": [
                        _q(
                            "Areas treated",
                            "checkboxes",
                            ("Neck", "Shoulder", "Lower back", "Knee", "Ankle"),
                            other=True,
                        ),
                        _q(
                            "Pain (0–10)", "radiobuttons", ("0–2", "3–5", "6–8", "9–10"), other=True
                        ),
                    ],
                },
                {
                    "name": "Plan",
                    "questions": [
                        _q("Treatment plan", "paragraph"),
                        _q("Home exercises given", "radiobuttons", ("Yes", "No"), other=False),
                    ],
                },
            ]
        },
    ),
    (
        "Évaluation initiale · 初診",
        {
            "sections": [
                {
                    "name": "主訴 — chief complaint",
                    "questions": [
                        _q("Motif de consultation", "text"),
                        _q("Antécédents", "paragraph"),
                        _q("Date de début", "date"),
                        _q(
                            "Red flags",
                            "checkboxes",
                            ("Night pain", "Weight loss", "Numbness", "None"),
                            other=True,
                        ),
                    ],
                },
                {
                    "name": "Consent",
                    "questions": [
                        _q(
                            "Consent to treatment",
                            "radiobuttons",
                            ("Given", "Declined"),
                            other=True,
                        )
                    ],
                },
            ]
        },
    ),
    (
        "Group Class Notes",
        {
            "sections": [
                {
                    "questions": [
                        _q("Exercises", "checkboxes", ("Mat", "Reformer", "Balance"), other=True),
                        _q("Comments", "paragraph"),
                    ]
                }
            ]
        },
    ),
    (
        "Old SOAP (retired)",
        {
            "sections": [
                {
                    "name": "SOAP",
                    "questions": [
                        _q("S", "text"),
                        _q("O", "text"),
                        _q("A", "paragraph"),
                        _q("P", "paragraph", answer="<div>Review in 2 weeks</div>"),
                    ],
                }
            ]
        },
    ),
)
DELETED_TEMPLATE = "Old SOAP (retired)"

TEXT_ANSWERS = (
    "Lower back pain after gardening",
    "Right shoulder stiffness",
    "Follow-up: knee rehab, week 3",
    "Douleur cervicale depuis 2 semaines",
    "腰痛 — lower back pain",
    "ألم في الركبة",
    "Headaches ~3×/week 😣",
    'Says "much better" & sleeping well',
)
PARAGRAPH_ANSWERS = (
    "<div>Pain &amp; stiffness in the morning.<br>Better after exercise.</div>"
    "<div>Reports &lt;50% improvement since last visit.</div>",
    "<div>Patient says “much better” — 😊</div><div><br></div><div>Continue plan.</div>",
    "<div>Référé par son médecin.<br>Pas de drapeaux rouges.</div>",
    "<div>Reviewed home program:<br>- bridges 3&times;10<br>- calf raises 3&times;15</div>",
    "<div>&gt; 6/10 pain on flexion; &lt; 2/10 at rest.</div>",
    "<div>既往歴なし。<br>No previous history.</div>",
)
OTHER_ANSWERS = ("Left wrist", "Jaw (TMJ)", "Autre : hanche", "背中 upper back", "See notes")


def fill_note(template: JSON, rng: random.Random, mode: str, day: str) -> JSON | None:
    """A note's `content` from its template. Modes: "full_other" (every question answered,
    "Other" chosen wherever offered), "normal", "sparse", "empty" (None)."""
    if mode == "empty":
        return None
    content = copy.deepcopy(template)
    for section in content["sections"]:
        for i, question in enumerate(section.get("questions", [])):
            if mode == "sparse":
                answered = i % 2 == 1  # every other question left unanswered
            else:
                answered = mode == "full_other" or rng.random() < 0.85
            _answer(question, rng, answered, mode == "full_other", day)
    return content


def _answer(question: JSON, rng: random.Random, answered: bool, other: bool, day: str) -> None:
    qtype = question["type"]
    question.pop("answer", None)
    if qtype in ("text", "paragraph", "date"):
        if answered:
            if qtype == "text":
                question["answer"] = rng.choice(TEXT_ANSWERS)
            elif qtype == "paragraph":
                question["answer"] = rng.choice(PARAGRAPH_ANSWERS)
            else:
                question["answer"] = day
        return
    offers_other = bool(question.get("other", {}).get("enabled"))
    pick_other = answered and offers_other and (other or rng.random() < 0.15)
    options = question.get("answers", [])
    if answered and options:
        if qtype == "checkboxes":
            for option in options:
                if rng.random() < 0.4:
                    option["selected"] = True
        elif not pick_other:
            rng.choice(options)["selected"] = True
    if pick_other:
        question["other"] = {"enabled": True, "selected": True, "value": rng.choice(OTHER_ANSWERS)}


def _token(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def custom_fields_definition(rng: random.Random) -> JSON:
    """`settings.patient_custom_fields_definition` with fresh (seeded) tokens."""

    def opts(*names: str, archived: tuple[str, ...] = ()) -> list[JSON]:
        out: list[JSON] = []
        for n in names:
            option: JSON = {"name": n, "token": _token(rng)}
            if n in archived:
                option["archived"] = True
            out.append(option)
        return out

    return {
        "sections": [
            {
                "name": "Insurance coverage",
                "token": _token(rng),
                "fields": [
                    {
                        "name": "Provider",
                        "type": "radiobuttons",
                        "other": {"enabled": True},
                        "token": _token(rng),
                        "options": opts(
                            "Great Insurance",
                            "Super Insurance",
                            "Ōtautahi Health",
                            archived=("Ōtautahi Health",),
                        ),
                    },
                    {"name": "Policy number", "type": "text", "token": _token(rng)},
                ],
            },
            {
                "name": "Clinical background",
                "token": _token(rng),
                "fields": [
                    {
                        "name": "Conditions",
                        "type": "checkboxes",
                        "other": {"enabled": True},
                        "token": _token(rng),
                        "options": opts(
                            "Asthma",
                            "Diabetes",
                            "Hypertension",
                            "Old option",
                            archived=("Old option",),
                        ),
                    },
                    {"name": "History notes", "type": "paragraph", "token": _token(rng)},
                    {"name": "Last X-ray", "type": "date", "token": _token(rng)},
                ],
            },
            {
                "name": "Legacy",
                "token": _token(rng),
                "archived": True,
                "fields": [
                    {
                        "name": "Old file number",
                        "type": "text",
                        "token": _token(rng),
                        "archived": True,
                    },
                ],
            },
        ]
    }


def custom_fields_for(definition: JSON, rng: random.Random, day: str) -> JSON | None:
    """A patient's `custom_fields`: the definition with values (None for ~30% of patients)."""
    if rng.random() < 0.3:
        return None
    fields = copy.deepcopy(definition)
    for section in fields["sections"]:
        for f in section["fields"]:
            if rng.random() < 0.4:
                continue
            ftype = f["type"]
            if ftype == "text":
                f["value"] = f"ABC-{rng.randrange(10_000, 99_999)}"
            elif ftype == "paragraph":
                f["value"] = rng.choice(PARAGRAPH_ANSWERS)
            elif ftype == "date":
                f["value"] = day
            else:
                other = f.get("other", {})
                if other.get("enabled") and rng.random() < 0.15:
                    f["other"] = {
                        "enabled": True,
                        "selected": True,
                        "value": rng.choice(OTHER_ANSWERS),
                    }
                    if ftype == "radiobuttons":
                        continue
                live = [o for o in f["options"] if not o.get("archived")] or f["options"]
                if ftype == "radiobuttons":
                    rng.choice(live)["selected"] = True
                else:
                    for o in f["options"]:
                        if rng.random() < 0.35:
                            o["selected"] = True
    return fields
