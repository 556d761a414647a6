from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.mapping.context import MappingContext, build_context
from engine.mapping.diary import (
    CANCELLATION_REASONS,
    map_appointment,
    map_attendance,
    map_group_appointment,
)
from engine.mapping.records import Appointment, Attendance, GroupAppointment, Mapped, Skip

from .helpers import example_context, example_rows, load, row

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MELBOURNE = build_context({"account": {"time_zone": "Melbourne"}}, NOW)


def appt_raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load("individual_appointments__get.json"))
    raw.update(changes)
    return raw


def appointment(
    raw: dict[str, Any], ctx: MappingContext = MELBOURNE, **kw: Any
) -> tuple[Appointment, dict[str, str]]:
    result = map_appointment(row("individual_appointments", raw, **kw), ctx)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, Appointment)
    return result.record, result.refs


def skip(raw: dict[str, Any], ctx: MappingContext = MELBOURNE, **kw: Any) -> Skip:
    result = map_appointment(row("individual_appointments", raw, **kw), ctx)
    assert isinstance(result, Skip), result
    return result


def test_example_appointments_map() -> None:
    ctx = example_context()
    for fn in ("individual_appointments__get.json", "individual_appointments__list.json"):
        (r,) = example_rows(fn)
        result = map_appointment(r, ctx)
        assert isinstance(result, Mapped)
        assert result.refs == {
            "patient": "82",
            "practitioner": "1",
            "service": "2",
            "location": "1",
        }
        rec = result.record
        assert isinstance(rec, Appointment)
        assert rec.starts_at == datetime(2016, 7, 21, 3, 45, tzinfo=UTC)
        assert rec.ends_at == datetime(2016, 7, 21, 4, 30, tzinfo=UTC)
        assert rec.status == "completed"
        assert rec.local_starts_at == "2016-07-20T23:45:00-04:00"  # the account is New York
        assert rec.imported_history is True
        assert rec.cancellation_reason is None  # "" when not cancelled
    (cancelled,) = example_rows("individual_appointments__cancelled_list.json")
    result = map_appointment(cancelled, ctx)
    assert isinstance(result, Mapped)
    assert isinstance(result.record, Appointment)
    rec = result.record
    assert (rec.status, rec.cancellation_reason_code, rec.cancellation_reason) == (
        "cancelled",
        50,
        "Other",
    )
    assert rec.cancellation_note == "Last minute cancellation"
    assert rec.cancelled_at == datetime(2016, 7, 22, 15, 10, 8, tzinfo=UTC)
    (deleted,) = example_rows("individual_appointments__deleted_list.json")
    d = map_appointment(deleted, ctx)
    assert isinstance(d, Skip)
    assert d.code == "deleted_in_cliniko"


def test_status_booked_completed_boundary() -> None:
    future, _ = appointment(appt_raw(starts_at="2024-06-01T12:00:00Z", ends_at=None))
    assert (future.status, future.is_upcoming) == ("booked", True)  # starts exactly at now
    past, _ = appointment(appt_raw(starts_at="2024-06-01T11:59:59Z", ends_at=None))
    assert (past.status, past.is_upcoming) == ("completed", False)
    arrived, _ = appointment(appt_raw(patient_arrived=True))
    assert arrived.status == "completed"
    assert arrived.patient_arrived


@pytest.mark.parametrize("starts", ["2016-07-21T03:45:00Z", "2030-01-01T00:00:00Z"])
def test_did_not_arrive(starts: str) -> None:
    rec, _ = appointment(appt_raw(did_not_arrive=True, starts_at=starts, ends_at=None))
    assert rec.status == "did_not_arrive"


@pytest.mark.parametrize(("code", "label"), sorted(CANCELLATION_REASONS.items()))
def test_each_cancellation_code(code: int, label: str) -> None:
    raw = appt_raw(
        cancelled_at="2016-07-20T00:00:00Z",
        cancellation_reason=code,
        cancellation_reason_description="",
        cancellation_note=None,
        did_not_arrive=True,  # cancelled wins
    )
    rec, _ = appointment(raw)
    assert (rec.status, rec.cancellation_reason_code, rec.cancellation_reason) == (
        "cancelled",
        code,
        label,
    )
    # Cliniko's own description text, when given, is kept as it is.
    raw["cancellation_reason_description"] = "Cliniko's words"
    raw["cancellation_reason"] = str(code)
    rec, _ = appointment(raw)
    assert (rec.cancellation_reason_code, rec.cancellation_reason) == (code, "Cliniko's words")


def test_cancellation_labels_are_the_documented_ones() -> None:
    assert CANCELLATION_REASONS == {
        10: "Feeling better",
        20: "Condition worse",
        30: "Sick",
        31: "COVID-19 related",
        40: "Away",
        50: "Other",
        60: "Work",
    }


def test_cancelled_by_list_or_undocumented_code() -> None:
    rec, _ = appointment(appt_raw(), variants={"active", "cancelled"})
    assert rec.status == "cancelled"
    assert rec.cancelled_at is None
    rec, _ = appointment(appt_raw(cancelled_at="2016-07-20T00:00:00Z", cancellation_reason=70))
    assert (rec.status, rec.cancellation_reason_code, rec.cancellation_reason) == (
        "cancelled",
        70,
        None,
    )


@pytest.mark.parametrize(
    ("utc", "local"),
    [
        # Daylight saving ends 2024-04-07 03:00 AEDT -> 02:00 AEST: 02:30 happens twice.
        ("2024-04-06T15:30:00Z", "2024-04-07T02:30:00+11:00"),
        ("2024-04-06T16:30:00Z", "2024-04-07T02:30:00+10:00"),
        ("2024-04-06T17:30:00Z", "2024-04-07T03:30:00+10:00"),
        # Daylight saving starts 2024-10-06 02:00 AEST -> 03:00 AEDT: 02:30 never happens.
        ("2024-10-05T15:30:00Z", "2024-10-06T01:30:00+10:00"),
        ("2024-10-05T16:30:00Z", "2024-10-06T03:30:00+11:00"),
        ("2024-10-06T23:00:00Z", "2024-10-07T10:00:00+11:00"),
    ],
)
def test_local_start_around_daylight_saving(utc: str, local: str) -> None:
    rec, _ = appointment(appt_raw(starts_at=utc, ends_at=None))
    assert rec.time_zone == "Australia/Melbourne"
    assert rec.local_starts_at == local
    assert rec.starts_at == datetime.fromisoformat(utc)
    assert rec.starts_at.utcoffset() is not None
    assert rec.starts_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_timestamps_with_offsets_are_normalised_to_utc() -> None:
    rec, _ = appointment(appt_raw(starts_at="2024-04-07T02:30:00+11:00", ends_at=None))
    assert rec.starts_at == datetime(2024, 4, 6, 15, 30, tzinfo=UTC)
    assert rec.starts_at.tzinfo is UTC


@pytest.mark.parametrize("starts", [None, "", "   "])
def test_missing_start(starts: object) -> None:
    s = skip(appt_raw(starts_at=starts))
    assert s.code == "missing_start_time"
    del_raw = appt_raw()
    del del_raw["starts_at"]
    assert skip(del_raw).code == "missing_start_time"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("starts_at", "2016-13-01T00:00:00Z"),
        ("starts_at", "yesterday"),
        ("starts_at", 1469072700),
        ("ends_at", "2016-07-21T03:00:00Z"),  # before the start
        ("did_not_arrive", "NOPE-VALUE"),
        ("cancellation_reason", "fifty"),
        ("patient", None),
        ("patient", {"links": {"self": "https://api.au1.cliniko.com/v1/patients"}}),
        ("business", "1"),
    ],
)
def test_malformed_appointment_names_the_field(field: str, value: object) -> None:
    s = map_appointment(
        row("individual_appointments", appt_raw(**{field: value}), refs={}), MELBOURNE
    )
    assert isinstance(s, Skip)
    assert s.code == "malformed_record"
    assert field in s.reason
    if isinstance(value, str) and value:
        assert value not in s.reason


def test_deleted_by_marker_or_list() -> None:
    assert skip(appt_raw(deleted_at="2020-01-01T00:00:00Z")).code == "deleted_in_cliniko"
    assert skip(appt_raw(), variants={"deleted"}).code == "deleted_in_cliniko"


def test_refs_from_staging_win_and_missing_links_are_left_out() -> None:
    raw = appt_raw()
    del raw["appointment_type"]
    result = map_appointment(
        row("individual_appointments", raw, refs={"patient": "82", "practitioner": None}),
        MELBOURNE,
    )
    assert isinstance(result, Mapped)
    assert result.refs == {"patient": "82", "location": "1"}


def group_ctx(starts: str | None = "2016-07-13T03:45:00Z") -> MappingContext:
    groups = [row("group_appointments", {"id": 1, "starts_at": starts})]
    individual = [row("individual_appointments", {"id": 2})]
    return build_context(
        load("settings__get.json"),
        NOW,
        group_appointments=groups,
        individual_appointments=individual,
    )


def test_group_appointment_example() -> None:
    ctx = example_context(NOW)
    for fn in ("group_appointments__get.json", "group_appointments__list.json"):
        (r,) = example_rows(fn)
        result = map_group_appointment(r, ctx)
        assert isinstance(result, Mapped)
        assert result.refs == {"practitioner": "1", "service": "7", "location": "1"}
        g = result.record
        assert isinstance(g, GroupAppointment)
        assert (g.max_attendees, g.notes, g.is_upcoming, g.imported_history) == (
            13,
            None,
            False,
            True,
        )
        assert g.local_starts_at == "2016-07-12T23:45:00-04:00"
    (deleted,) = example_rows("group_appointments__deleted_list.json")
    s = map_group_appointment(deleted, ctx)
    assert isinstance(s, Skip)
    assert s.code == "deleted_in_cliniko"
    raw = copy.deepcopy(load("group_appointments__get.json"))
    raw["starts_at"] = None
    s = map_group_appointment(row("group_appointments", raw), ctx)
    assert isinstance(s, Skip)
    assert s.code == "missing_start_time"


def attendee(ctx: MappingContext, booking: str = "1", **changes: Any) -> Mapped | Skip:
    raw = copy.deepcopy(load("attendees__get.json"))
    raw["booking"] = {"links": {"self": f"https://api.au1.cliniko.com/v1/bookings/{booking}"}}
    raw.update(changes)
    variants = {"cancelled"} if raw.get("cancelled_at") else {"active"}
    return map_attendance(row("attendees", raw, variants), ctx)


def attendance(ctx: MappingContext, **changes: Any) -> Attendance:
    result = attendee(ctx, **changes)
    assert isinstance(result, Mapped), result
    assert result.refs == {"patient": "82", "group_appointment": "1"}
    assert isinstance(result.record, Attendance)
    return result.record


@pytest.mark.parametrize(
    ("starts", "arrived", "status"),
    [
        ("2016-07-13T03:45:00Z", None, "completed"),
        ("2016-07-13T03:45:00Z", True, "completed"),
        ("2016-07-13T03:45:00Z", False, "did_not_arrive"),
        ("2030-01-01T00:00:00Z", None, "booked"),
        ("2030-01-01T00:00:00Z", False, "booked"),
        ("2030-01-01T00:00:00Z", True, "completed"),
    ],
)
def test_attendance_status(starts: str, arrived: bool | None, status: str) -> None:
    a = attendance(group_ctx(starts), arrived=arrived)
    assert a.status == status
    assert a.arrived is arrived
    assert a.is_upcoming == (starts > "2024")
    assert a.imported_history


@pytest.mark.parametrize(("code", "label"), sorted(CANCELLATION_REASONS.items()))
def test_attendance_cancelled(code: int, label: str) -> None:
    a = attendance(
        group_ctx("2030-01-01T00:00:00Z"),
        cancelled_at="2016-06-28T21:33:26Z",
        cancellation_reason=code,
        cancellation_reason_description=None,
        cancellation_note="Last minute cancellation",
        arrived=True,
    )
    assert (a.status, a.cancellation_reason_code, a.cancellation_reason) == (
        "cancelled",
        code,
        label,
    )
    assert a.cancellation_note == "Last minute cancellation"


def test_attendee_examples() -> None:
    ctx = example_context(NOW)
    (cancelled,) = example_rows("attendees__cancelled_list.json")
    result = map_attendance(cancelled, ctx)
    assert isinstance(result, Mapped)
    assert isinstance(result.record, Attendance)
    assert (result.record.status, result.record.cancellation_reason) == ("cancelled", "Other")
    (deleted,) = example_rows("attendees__deleted_list.json")
    s = map_attendance(deleted, ctx)
    assert isinstance(s, Skip)
    assert s.code == "deleted_in_cliniko"


def test_attendee_of_individual_or_unknown_booking() -> None:
    ctx = group_ctx()
    covered = attendee(ctx, booking="2")
    assert isinstance(covered, Skip)
    assert covered.code == "covered_by_appointment"
    unknown = attendee(ctx, booking="3")
    assert isinstance(unknown, Skip)
    assert unknown.code == "unknown_booking"
    raw = copy.deepcopy(load("attendees__get.json"))
    raw["booking"] = None
    no_booking = map_attendance(row("attendees", raw), ctx)
    assert isinstance(no_booking, Skip)
    assert no_booking.code == "malformed_record"
    assert "booking" in no_booking.reason
