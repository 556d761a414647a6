"""The double-booking check and the match-key rule, on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.matching import SlotBook, source_id_order, usable_match_key
from target import Slot

T = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.fixture
def book() -> SlotBook:
    return SlotBook(
        {
            1: [
                Slot(T, T + 30 * M, 10),
                Slot(T - 8 * 60 * M, T - 4 * 60 * M, 11),  # a long block in the early morning
                Slot(T + 120 * M, None, 12, "group_appointments"),  # no end: an instant
            ],
            2: [],
        }
    )


@pytest.mark.parametrize(
    ("start", "minutes", "taken"),
    [
        (T, 30, 10),  # the same slot
        (T + 29 * M, 30, 10),  # overlaps its end
        (T - 29 * M, 30, 10),  # overlaps its start
        (T + 30 * M, 30, None),  # starts as it ends: back to back is fine
        (T - 30 * M, 30, None),  # ends as it starts
        (T - 5 * 60 * M, 15, 11),  # inside a long earlier block
        (T + 110 * M, 30, 12),  # covers an instant booking
        (T + 120 * M, 0, 12),  # two bookings starting at the same moment always collide
        (T + 121 * M, 30, None),
    ],
)
def test_overlaps(book: SlotBook, start: datetime, minutes: int, taken: int | None) -> None:
    end = start + minutes * M if minutes else None
    found = book.taken(1, start, end)
    assert (found.appointment_id if found else None) == taken


def test_other_practitioners_are_free(book: SlotBook) -> None:
    assert book.taken(2, T, T + 30 * M) is None
    assert book.taken(3, T, T + 30 * M) is None


def test_match_keys_need_a_date_of_birth_and_a_name() -> None:
    assert usable_match_key("zoe|ngata|1990-01-02")
    assert usable_match_key("|ngata|1990-01-02")
    assert not usable_match_key("zoe|ngata|")
    assert not usable_match_key("||1990-01-02")


def test_cliniko_ids_sort_numerically() -> None:
    ids = ["1000", "99", "514810972972521916", "7"]
    assert sorted(ids, key=source_id_order) == ["7", "99", "1000", "514810972972521916"]
