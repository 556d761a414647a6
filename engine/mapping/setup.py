"""Clinic set-up: businesses -> locations, practitioners, appointment types -> services."""

from __future__ import annotations

from engine.mapping import fields as f
from engine.mapping.context import MappingContext, practitioner_display_name
from engine.mapping.records import Location, Mapped, MapResult, Practitioner, Service
from engine.mapping.staged import StagedRow
from engine.mapping.text import fold_name


@f.guarded("location")
def map_location(row: StagedRow, ctx: MappingContext) -> MapResult:
    """A Cliniko business. Its name is the display name when set, else the business name."""
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("location", source_id, "business")
    legal_name = f.text(raw, "business_name")
    name = f.text(raw, "display_name") or legal_name
    if name is None:
        raise f.Malformed("business_name", "is missing")
    record = Location(
        name=name,
        legal_name=legal_name,
        address_1=f.text(raw, "address_1"),
        address_2=f.text(raw, "address_2"),
        city=f.text(raw, "city"),
        state=f.text(raw, "state"),
        post_code=f.text(raw, "post_code"),
        country=f.text(raw, "country"),
        country_code=f.text(raw, "country_code"),
        contact_information=f.text(raw, "contact_information"),
        email=f.text(raw, "email_reply_to"),
        website=f.text(raw, "website_address"),
        registration_label=f.text(raw, "business_registration_name"),
        registration_value=f.text(raw, "business_registration_value"),
        time_zone=ctx.zone_for_location(source_id),
    )
    return Mapped("location", source_id, record, {})


@f.guarded("practitioner")
def map_practitioner(row: StagedRow, ctx: MappingContext) -> MapResult:
    """Active unless Cliniko lists the practitioner only as inactive."""
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("practitioner", source_id, "practitioner")
    display_name = practitioner_display_name(raw)
    if display_name is None:
        raise f.Malformed("first_name, last_name and label", "are all missing")
    variants = f.variants_of(row)
    inactive = ("inactive" in variants or row.state == "inactive") and "active" not in variants
    record = Practitioner(
        title=f.text(raw, "title"),
        first_name=f.text(raw, "first_name"),
        last_name=f.text(raw, "last_name"),
        display_name=display_name,
        designation=f.text(raw, "designation"),
        description=f.text(raw, "description"),
        active=not inactive,
        match_name=fold_name(display_name),
    )
    return Mapped("practitioner", source_id, record, {})


@f.guarded("service")
def map_service(row: StagedRow, ctx: MappingContext) -> MapResult:
    """A Cliniko appointment type; archived ones are kept, marked archived."""
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("service", source_id, "appointment type")
    name = f.text(raw, "name")
    if name is None:
        raise f.Malformed("name", "is missing")
    archived_at = f.timestamp(raw, "archived_at")
    archived = (
        archived_at is not None or row.state == "archived" or "archived" in f.variants_of(row)
    )
    billable_item = f.ref_id(row, "billable_item")
    price = ctx.billable_item_prices.get(billable_item) if billable_item is not None else None
    record = Service(
        name=name,
        description=f.text(raw, "description"),
        category=f.text(raw, "category"),
        color=f.text(raw, "color"),
        duration_minutes=f.integer(raw, "duration_in_minutes"),
        max_attendees=f.integer(raw, "max_attendees"),
        archived=archived,
        archived_at=archived_at,
        match_name=fold_name(name),
        default_price=price,
    )
    return Mapped("service", source_id, record, {})
