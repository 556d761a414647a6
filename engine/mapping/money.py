"""Invoices, their lines, and the balance rule (DESIGN.md section 5, "Balances").

Cliniko's API (as documented) gives an invoice's status and totals but no amount paid or owing.
The rule, per invoice:
  an owing/paid amount field present  outstanding = that amount owing (or total - paid);
                                      basis "amount_field"
  20 paid, 30 closed                  outstanding = 0 (a settlement for the total reconciles it)
  10 open                             outstanding = total; `status_only_open` (it may have been
                                      part-paid in Cliniko: the summary lists it for a check)
  40 open credit                      outstanding = total (negative: it reduces the balance)
and always settlement_amount = total - outstanding. A patient's balance is the sum of the
outstanding amounts of their invoices (`patient_balance_rule`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from engine.mapping import fields as f
from engine.mapping.context import MappingContext
from engine.mapping.records import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Mapped,
    MapResult,
    OutstandingBasis,
)
from engine.mapping.staged import StagedRow

INVOICE_STATUSES: dict[int, InvoiceStatus] = {10: "open", 20: "paid", 30: "closed", 40: "credit"}

OWING_FIELDS: tuple[str, ...] = (
    "amount_outstanding",
    "outstanding_amount",
    "amount_owing",
    "balance",
    "amount_due",
)
"""Fields a newer API version might carry with the amount still owed (first present wins)."""
PAID_FIELDS: tuple[str, ...] = ("amount_paid", "paid_amount", "total_paid")
"""Fields a newer API version might carry with the amount already paid."""


def map_line(row: StagedRow, position: int) -> InvoiceLine:
    """One invoice item. Raises Malformed naming the item and the field."""
    item_id = f.safe_source_id(row)
    raw = row.raw
    if not isinstance(raw, Mapping):
        raise f.Malformed(f"invoice item {item_id}", "is not a JSON object")
    try:
        return InvoiceLine(
            source_id=f.canonical_id(row.id),
            position=position,
            description=f.text(raw, "name"),
            code=f.text(raw, "code"),
            quantity=f.decimal(raw, "quantity"),
            unit_price=f.decimal(raw, "unit_price"),
            discount_percentage=f.decimal(raw, "discount_percentage"),
            discounted_amount=f.decimal(raw, "discounted_amount"),
            net_price=f.decimal(raw, "net_price"),
            tax_name=f.text(raw, "tax_name"),
            tax_rate=f.decimal(raw, "tax_rate"),
            total_including_tax=f.decimal(raw, "total_including_tax"),
            concession=f.text(raw, "concession_type_name"),
        )
    except f.Malformed as exc:
        raise f.Malformed(f"invoice item {item_id} {exc.field}", exc.problem) from None


def _lines(items: Iterable[StagedRow]) -> tuple[InvoiceLine, ...]:
    live = []
    for row in items:
        raw = row.raw if isinstance(row.raw, Mapping) else {}
        if not f.is_deleted(row, raw):
            live.append(row)
    return tuple(map_line(row, i) for i, row in enumerate(live))


def balance(
    raw: Mapping[str, Any], status: InvoiceStatus, total: Decimal
) -> tuple[Decimal, OutstandingBasis]:
    """The amount still owed on an invoice and what that rests on."""
    for key in OWING_FIELDS:
        owing = f.decimal(raw, key)
        if owing is not None:
            return owing, "amount_field"
    for key in PAID_FIELDS:
        paid = f.decimal(raw, key)
        if paid is not None:
            return f.storable_decimal(key, total - paid), "amount_field"
    if status == "paid":
        return Decimal(0), "status_paid"
    if status == "closed":
        return Decimal(0), "status_closed"
    if status == "credit":
        return total, "status_credit"
    return total, "status_open"


@f.guarded("invoice")
def map_invoice(row: StagedRow, ctx: MappingContext) -> MapResult:
    raw = row.raw
    source_id = f.canonical_id(row.id)
    if f.is_deleted(row, raw):
        return f.deleted_skip("invoice", source_id, "invoice")
    code = f.required(f.integer(raw, "status"), "status")
    status = INVOICE_STATUSES.get(code)
    if status is None:
        raise f.Malformed("status", "is not a known invoice status (10, 20, 30, 40)")
    total = f.required(f.decimal(raw, "total_amount"), "total_amount")
    outstanding, basis = balance(raw, status, total)
    record = Invoice(
        number=f.text(raw, "number"),
        issue_date=f.calendar_date(raw, "issue_date"),
        status=status,
        status_code=code,
        total=total,
        net=f.decimal(raw, "net_amount"),
        tax=f.decimal(raw, "tax_amount"),
        discount=f.decimal(raw, "discounted_amount"),
        invoice_to=f.text(raw, "invoice_to"),
        notes=f.text(raw, "notes"),
        patient_extra_information=f.text(raw, "patient_extra_information"),
        closed_at=f.timestamp(raw, "closed_at"),
        lines=_lines(ctx.invoice_items.get(source_id, ())),
        outstanding=outstanding,
        outstanding_basis=basis,
        settlement_amount=f.storable_decimal("total_amount", total - outstanding),
        status_only_open=basis == "status_open",
    )
    refs: dict[str, str] = {}
    for kind, link in (("patient", "patient"), ("practitioner", "practitioner")):
        value = f.ref_id(row, link)
        if value is not None:
            refs[kind] = value
    location = f.ref_id(row, "business")
    if location is not None:
        refs["location"] = location
    refs.update(ctx.booking_ref(f.ref_id(row, "appointment")))
    return Mapped("invoice", source_id, record, refs)


def patient_balance_rule(invoices: Iterable[Invoice]) -> Decimal:
    """A patient's balance: the sum of their invoices' outstanding amounts (credit reduces)."""
    return sum((inv.outstanding for inv in invoices), Decimal(0))
