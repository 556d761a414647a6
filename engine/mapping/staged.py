"""The input of mapping: one record as the staging file holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

State = str
"""deleted, archived, cancelled, inactive or active (the staging file derives it)."""


@dataclass(frozen=True, slots=True)
class StagedRow:
    resource: str
    """Staging table = Cliniko resource name ("patients", "individual_appointments", ...)."""
    id: str
    """Cliniko id as canonical decimal text."""
    raw: dict[str, Any]
    """The JSON exactly as Cliniko sent it."""
    variants: frozenset[str] = frozenset({"active"})
    """The lists the record was seen in: active, archived, deleted, cancelled, inactive."""
    state: State = "active"
    refs: dict[str, str | None] = field(default_factory=dict)
    """Ids of linked records recovered by staging, keyed by Cliniko's link name ("patient",
    "appointment_type", "business", "booking", ...). A name absent here is read from `raw`."""
