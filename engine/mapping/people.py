"""Patients.

Merged patients are the archived duplicates Cliniko keeps after a merge (`merged_with_patient`
points at the survivor). They are imported as archived patients with `merged_into` set rather
than skipped: their appointments, notes and invoices may still point at them, and skipping them
would orphan that history. The clinic can hide them like any archived patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from engine.mapping import fields as f
from engine.mapping.context import CustomFieldDefinitions, MappingContext
from engine.mapping.records import CustomFieldValue, Mapped, MapResult, Patient, PhoneNumber
from engine.mapping.staged import StagedRow
from engine.mapping.text import fold_name, html_to_text
from engine.mapping.timezones import is_iana_zone, resolve_zone


def _phones(raw: Mapping[str, Any]) -> tuple[PhoneNumber, ...]:
    value = raw.get("patient_phone_numbers")
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise f.Malformed("patient_phone_numbers", "is not a list")
    phones: list[PhoneNumber] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise f.Malformed("patient_phone_numbers", "has an entry that is not an object")
        number = f.text(entry, "number")
        if number is None:
            continue  # an empty slot says nothing
        phones.append({"type": f.text(entry, "phone_type"), "number": number})
    return tuple(phones)


def _chosen(value: Mapping[str, Any], option_names: Mapping[str, str], field: str) -> str:
    """Selected options (by definition name when the token is known) and the Other text."""
    options = value.get("options")
    if options is not None and not isinstance(options, list):
        raise f.Malformed(field, "options is not a list")
    chosen: list[str] = []
    for option in options or []:
        if not isinstance(option, Mapping):
            raise f.Malformed(field, "has an option that is not an object")
        if option.get("selected") is not True:
            continue
        token = option.get("token")
        name = option_names.get(token) if isinstance(token, str) else None
        name = name or f.text(option, "name")
        if name:
            chosen.append(name)
    other = value.get("other")
    if isinstance(other, Mapping) and other.get("selected") is True:
        chosen.append(f.text(other, "value") or "Other")
    return ", ".join(chosen)


def render_custom_fields(
    value: object, defs: CustomFieldDefinitions
) -> tuple[CustomFieldValue, ...]:
    """A patient's answered custom fields as readable text; archived fields are kept."""
    if value is None or value == "":
        return ()
    if not isinstance(value, Mapping):
        raise f.Malformed("custom_fields", "is not an object")
    sections = value.get("sections") or []
    if not isinstance(sections, list):
        raise f.Malformed("custom_fields", "sections is not a list")
    out: list[CustomFieldValue] = []
    for section in sections:
        if not isinstance(section, Mapping):
            raise f.Malformed("custom_fields", "has a section that is not an object")
        s_token = section.get("token")
        s_def = defs.sections.get(s_token) if isinstance(s_token, str) else None
        section_name = (s_def[0] if s_def else None) or f.text(section, "name") or ""
        section_archived = bool(s_def and s_def[1]) or section.get("archived") is True
        items = section.get("fields") or []
        if not isinstance(items, list):
            raise f.Malformed("custom_fields", "fields is not a list")
        for item in items:
            if not isinstance(item, Mapping):
                raise f.Malformed("custom_fields", "has a field that is not an object")
            token = item.get("token")
            d = defs.fields.get(token) if isinstance(token, str) else None
            name = (d.name if d else None) or f.text(item, "name") or ""
            kind = (d.type if d else None) or f.text(item, "type") or ""
            where = "custom_fields"
            if kind in ("checkboxes", "radiobuttons") or (
                kind not in ("text", "paragraph", "date") and "options" in item
            ):
                text = _chosen(item, d.options if d else {}, where)
            else:
                raw_value = f.text(item, "value")
                if raw_value is None:
                    text = ""
                elif kind == "paragraph" and "<" in raw_value:
                    text = html_to_text(raw_value)
                else:
                    text = raw_value
            if not text:
                continue  # unanswered
            out.append(
                {
                    "section": section_name,
                    "name": name,
                    "type": kind,
                    "value_text": text,
                    "archived": section_archived
                    or bool(d and d.archived)
                    or item.get("archived") is True,
                }
            )
    return tuple(out)


def _patient_zone(raw: Mapping[str, Any]) -> str | None:
    zone = f.text(raw, "time_zone")
    if zone is None:
        return None
    if is_iana_zone(zone):
        return zone
    resolved = resolve_zone(zone)  # a Rails name, just in case
    return resolved.iana if resolved.known else None


def match_key(first: str | None, last: str | None, dob: date | None) -> str:
    """Folded first name | folded last name | ISO date of birth ("" when unknown)."""
    iso = dob.isoformat() if dob is not None else ""
    return f"{fold_name(first or '')}|{fold_name(last or '')}|{iso}"


@f.guarded("patient")
def map_patient(row: StagedRow, ctx: MappingContext) -> MapResult:
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        if f.text(raw, "first_name") is None and f.text(raw, "last_name") is None:
            return f.deleted_skip(
                "patient", source_id, "patient", "Cliniko keeps only its id and deletion time"
            )
        return f.deleted_skip("patient", source_id, "patient")
    first = f.text(raw, "first_name")
    last = f.text(raw, "last_name")
    if first is None and last is None:
        raise f.Malformed("first_name and last_name", "are both missing")
    dob = f.calendar_date(raw, "date_of_birth")
    archived_at = f.timestamp(raw, "archived_at")
    archived = (
        archived_at is not None or row.state == "archived" or "archived" in f.variants_of(row)
    )
    merged_into = f.ref_id(row, "merged_with_patient")
    refs = {"merged_into": merged_into} if merged_into is not None else {}
    record = Patient(
        title=f.text(raw, "title"),
        first_name=first,
        last_name=last,
        preferred_name=f.text(raw, "preferred_first_name"),
        date_of_birth=dob,
        sex=f.text(raw, "sex"),
        gender_identity=f.text(raw, "gender_identity"),
        gender_legacy=f.text(raw, "gender"),
        email=f.text(raw, "email"),
        phones=_phones(raw),
        address_1=f.text(raw, "address_1"),
        address_2=f.text(raw, "address_2"),
        address_3=f.text(raw, "address_3"),
        city=f.text(raw, "city"),
        state=f.text(raw, "state"),
        post_code=f.text(raw, "post_code"),
        country=f.text(raw, "country"),
        emergency_contact=f.text(raw, "emergency_contact"),
        occupation=f.text(raw, "occupation"),
        notes=f.text(raw, "notes"),
        appointment_notes=f.text(raw, "appointment_notes"),
        medicare=f.text(raw, "medicare"),
        medicare_reference_number=f.text(raw, "medicare_reference_number"),
        dva_card_number=f.text(raw, "dva_card_number"),
        old_reference_id=f.text(raw, "old_reference_id"),
        referral_source=f.text(raw, "referral_source"),
        invoice_default_to=f.text(raw, "invoice_default_to"),
        invoice_email=f.text(raw, "invoice_email"),
        invoice_extra_information=f.text(raw, "invoice_extra_information"),
        time_zone=_patient_zone(raw),
        # Merged duplicates are archived in Cliniko; import them archived even if a list
        # forgot to say so, so they never show up as live patients.
        archived=archived or merged_into is not None,
        archived_at=archived_at,
        merged_into=merged_into,
        merged_at=f.timestamp(raw, "merged_at"),
        custom_fields=render_custom_fields(raw.get("custom_fields"), ctx.custom_fields),
        medical_alerts=tuple(ctx.medical_alerts.get(source_id, ())),
        reminder_type=f.text(raw, "reminder_type"),
        accepted_privacy_policy=f.flag(raw, "accepted_privacy_policy"),
        accepted_email_marketing=f.flag(raw, "accepted_email_marketing"),
        accepted_sms_marketing=f.flag(raw, "accepted_sms_marketing"),
        match_key=match_key(first, last, dob),
    )
    return Mapped("patient", source_id, record, refs)
