"""What to spot-check after a load: a few records the operator compares with Cliniko by eye.

After a load the wizard's summary lists

- imported patients whose balance in the clinic is not zero (largest first), by Cliniko id and
  clinic id with the balance; and
- imported appointments in the next seven days, with their start in the clinic's local time
  (the account's time zone, from the staging file), the practitioner and the patient's ids.

Everything is read: the staging file read-only (for the account's time zone and the import
source), the clinic store read-only. Names are carried for the screen only: they are left out
of `repr()` so that a log line of these objects never holds one.

    checks = spot_checks("staging.sqlite", "sqlite:///clinic.db", now, limit=5)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.mapping import fields as mf
from engine.mapping.timezones import resolve_zone
from engine.staged_input import open_for_reading
from staging import StagingDB
from target import KIND_TABLES, ClinicBackend, open_target

WINDOW = timedelta(days=7)
"""How far ahead "next week's appointments" look."""


@dataclass(frozen=True, slots=True)
class PatientBalance:
    cliniko_id: str
    clinic_id: int
    balance: Decimal
    """What the patient owes in the clinic (negative: in credit)."""
    name: str | None = field(default=None, repr=False)
    """For the screen only (never logged)."""


@dataclass(frozen=True, slots=True)
class UpcomingAppointment:
    cliniko_id: str
    clinic_id: int
    starts_at: datetime
    """In the clinic's local time zone."""
    status: str
    patient_cliniko_id: str | None
    patient_clinic_id: int
    practitioner_clinic_id: int
    practitioner: str | None = field(default=None, repr=False)
    """The practitioner's display name (for the screen)."""


@dataclass
class SpotChecks:
    time_zone: str
    """The IANA zone the appointment times are in."""
    now: datetime
    """The start of the window, in `time_zone`."""
    until: datetime
    patients_with_balance: list[PatientBalance] = field(default_factory=list)
    patients_with_balance_total: int = 0
    """How many imported patients have a non-zero balance (the list holds the first few)."""
    next_week_appointments: list[UpcomingAppointment] = field(default_factory=list)
    next_week_total: int = 0
    """How many imported appointments (not cancelled) start in the window."""


def spot_checks(
    staging_path: str | os.PathLike[str],
    target_url: str,
    now: datetime | None = None,
    limit: int = 5,
    *,
    source: str | None = None,
) -> SpotChecks:
    """The records to spot-check in the clinic at `target_url` after loading `staging_path`.

    `source` is the import source of the links (`Plan.source`); by default it is worked out
    from the staging file the way the planner does. Raises `staging.StagingError` or
    `target.TargetError` with a message for the operator.
    """
    moment = _aware(now)
    with open_for_reading(staging_path) as staging:
        settings = _settings(staging)
        zone_name = _zone_name(staging, settings)
        the_source = source or _source(staging, settings)
    store = open_target(target_url, readonly=True)
    try:
        if not zone_name:
            zone_name = str(store.settings().get("clinic_time_zone") or "")
        zone = ZoneInfo(resolve_zone(zone_name).iana)
        checks = SpotChecks(
            time_zone=str(zone.key),
            now=moment.astimezone(zone),
            until=(moment + WINDOW).astimezone(zone),
        )
        _balances(store, the_source, max(0, limit), checks)
        _appointments(store, the_source, moment, zone, max(0, limit), checks)
    finally:
        store.close()
    return checks


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


# -- the staging file: the account's time zone and the import source -------------------------


def _settings(staging: StagingDB) -> Mapping[str, Any]:
    counts = staging.table_counts()
    count = counts.get("settings")
    if count is None or not count.total:
        return {}
    for row in staging.iter_records("settings"):
        data = row.data()
        return data if isinstance(data, dict) else {}
    return {}


def _account(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    account = settings.get("account")
    return account if isinstance(account, Mapping) else {}


def _zone_name(staging: StagingDB, settings: Mapping[str, Any]) -> str:
    zone = _account(settings).get("time_zone")
    if isinstance(zone, str) and zone.strip():
        return zone
    return staging.get_meta("time_zone") or ""


def _source(staging: StagingDB, settings: Mapping[str, Any]) -> str:
    """`cliniko:<shard>:<account id>`, as `engine.staged_input.StagedInput` makes it."""
    shard = staging.meta().get("shard")
    if not shard:
        for run in reversed(staging.runs()):
            if run.shard:
                shard = run.shard
                break
    account_id = None
    try:
        account_id = mf.optional_id(_account(settings).get("id"), "account.id")
    except mf.Malformed:
        account_id = None
    return f"cliniko:{shard or 'unknown'}:{account_id or 'unknown'}"


# -- the clinic store ---------------------------------------------------------------------------


def _balances(store: ClinicBackend, source: str, limit: int, checks: SpotChecks) -> None:
    links = store.load_links(source, "patient")
    cliniko_of = {link.target_id: sid for sid, link in links.items()}
    owing = [
        (pid, amount)
        for pid, amount in store.balances().items()
        if pid in cliniko_of and amount != 0
    ]
    owing.sort(key=lambda p: (-abs(p[1]), p[0]))
    checks.patients_with_balance_total = len(owing)
    shown = owing[:limit]
    rows = store.fetch_rows(KIND_TABLES["patient"], [pid for pid, _ in shown]) if shown else {}
    checks.patients_with_balance = [
        PatientBalance(cliniko_of[pid], pid, amount, _patient_name(rows.get(pid)))
        for pid, amount in shown
    ]


def _patient_name(row: Mapping[str, Any] | None) -> str | None:
    if row is None:
        return None
    first = row.get("preferred_name") or row.get("first_name") or ""
    name = f"{first} {row.get('last_name') or ''}".strip()
    return name or None


def _appointments(
    store: ClinicBackend,
    source: str,
    now: datetime,
    zone: ZoneInfo,
    limit: int,
    checks: SpotChecks,
) -> None:
    links = store.load_links(source, "appointment")
    cliniko_of = {link.target_id: sid for sid, link in links.items()}
    until = now + WINDOW
    found: list[dict[str, Any]] = []
    columns = ["starts_at", "status", "patient_id", "practitioner_id"]
    for row in store.iter_rows(KIND_TABLES["appointment"], columns):
        starts = row.get("starts_at")
        if (
            row["id"] not in cliniko_of
            or not isinstance(starts, datetime)
            or row.get("status") == "cancelled"
        ):
            continue
        if now <= starts < until:
            found.append(row)
    found.sort(key=lambda r: (r["starts_at"], r["id"]))
    checks.next_week_total = len(found)
    shown = found[:limit]
    if not shown:
        return
    patient_links = store.load_links(source, "patient")
    patient_cliniko = {link.target_id: sid for sid, link in patient_links.items()}
    practitioners = store.fetch_rows(
        KIND_TABLES["practitioner"], sorted({r["practitioner_id"] for r in shown})
    )
    checks.next_week_appointments = [
        UpcomingAppointment(
            cliniko_id=cliniko_of[r["id"]],
            clinic_id=r["id"],
            starts_at=r["starts_at"].astimezone(zone),
            status=str(r.get("status") or ""),
            patient_cliniko_id=patient_cliniko.get(r["patient_id"]),
            patient_clinic_id=r["patient_id"],
            practitioner_clinic_id=r["practitioner_id"],
            practitioner=_display_name(practitioners.get(r["practitioner_id"])),
        )
        for r in shown
    ]


def _display_name(row: Mapping[str, Any] | None) -> str | None:
    if row is None:
        return None
    name = row.get("display_name")
    return str(name) if name else None


__all__ = ["WINDOW", "PatientBalance", "SpotChecks", "UpcomingAppointment", "spot_checks"]
