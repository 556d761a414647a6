"""Matching imported records with what MyNewClinic already holds (DESIGN.md section 5).

- Practitioners and services match existing clinic rows by `match_name` (the folded name:
  case, spacing and accents); patients by `match_key` (folded first | folded last | date of
  birth; never without a date of birth).
- Matching is one to one: a clinic row is matched by at most one Cliniko record, and never by
  one while another record of the same Cliniko account is linked to it. Records are taken
  active first (not inactive, not archived), then by lowest Cliniko id; each takes the free
  clinic row with the lowest id. Two Cliniko practitioners with the same full name are two
  people: they are never merged into one clinic row; the one left without a clinic row to
  match is created. Every choice that had an alternative is reported as an `Ambiguity`.
  Because linked rows are never candidates again, a load stopped half-way and rerun matches
  exactly as an uninterrupted one.
- An imported appointment must not double-book a practitioner's slot already taken in the
  clinic by one of its own (not imported, not cancelled) bookings.

A matched link is written with its source hash prefixed `m:`: the clinic's own row wins, so a
later change in Cliniko refreshes the link and never overwrites the clinic's row.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from target import Slot

MATCH_PREFIX = "m:"
PARTIAL_SUFFIX = ":p"
"""Source hash suffix for a row written with an optional reference left empty (its record
was not in the clinic yet): the row is re-planned until the reference resolves."""


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """A match the planner had to choose. Ids only (a patient's name is never in it)."""

    kind: str
    key: str | None
    """The folded name for practitioners and services; None for patients."""
    source_ids: tuple[str, ...]
    target_ids: tuple[int, ...]
    resolution: str

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "key": self.key,
            "cliniko_ids": list(self.source_ids),
            "target_ids": list(self.target_ids),
            "resolution": self.resolution,
        }


def source_id_order(source_id: str) -> tuple[int, str]:
    """Numeric order of Cliniko ids (text ids sort after, by text)."""
    return (int(source_id), "") if source_id.isdigit() else (2**64, source_id)


def usable_match_key(key: str) -> bool:
    """A patient key is only used with a date of birth and at least one name."""
    first, _, rest = key.partition("|")
    last, _, dob = rest.partition("|")
    return bool(dob) and bool(first or last)


class SlotBook:
    """The clinic's own bookings per practitioner, for double-booking checks."""

    def __init__(self, slots: Mapping[int, Iterable[Slot]]) -> None:
        self._starts: dict[int, list[datetime]] = {}
        self._slots: dict[int, list[Slot]] = {}
        self._longest: dict[int, timedelta] = {}
        for practitioner, booked in slots.items():
            ordered = sorted(booked, key=lambda s: (s.starts_at, s.appointment_id))
            if not ordered:
                continue
            self._slots[practitioner] = ordered
            self._starts[practitioner] = [s.starts_at for s in ordered]
            self._longest[practitioner] = max(
                ((s.ends_at or s.starts_at) - s.starts_at for s in ordered), default=timedelta()
            )

    def taken(
        self, practitioner_id: int, starts_at: datetime, ends_at: datetime | None
    ) -> Slot | None:
        """The clinic booking that [starts_at, ends_at) overlaps, if any. A booking without
        an end is an instant; two bookings starting at the same moment always collide."""
        slots = self._slots.get(practitioner_id)
        if not slots:
            return None
        end = ends_at if ends_at is not None and ends_at > starts_at else starts_at
        starts = self._starts[practitioner_id]
        # Candidates start before our end (or at our start) and no earlier than the longest
        # booking could reach back from our start.
        hi = bisect_left(starts, end)
        while hi < len(starts) and starts[hi] == starts_at:
            hi += 1
        lo = bisect_left(starts, starts_at - self._longest[practitioner_id])
        for slot in slots[lo:hi]:
            slot_end = (
                slot.ends_at
                if slot.ends_at is not None and slot.ends_at > slot.starts_at
                else slot.starts_at
            )
            if slot.starts_at == starts_at:
                return slot
            if slot.starts_at < end and starts_at < slot_end:
                return slot
        return None


__all__ = [
    "MATCH_PREFIX",
    "PARTIAL_SUFFIX",
    "Ambiguity",
    "SlotBook",
    "source_id_order",
    "usable_match_key",
]
