from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.mapping.context import MappingContext, build_context
from engine.mapping.money import map_invoice, patient_balance_rule
from engine.mapping.records import Invoice, Mapped, Skip
from engine.mapping.staged import StagedRow

from .helpers import NOW, example_context, example_rows, load, row

CTX = example_context()


def inv_raw(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load("invoices__list.json")["invoices"][0])
    raw.update(changes)
    return raw


def invoice(raw: dict[str, Any], ctx: MappingContext = CTX, **kw: Any) -> Invoice:
    result = map_invoice(row("invoices", raw, **kw), ctx)
    assert isinstance(result, Mapped), result
    assert isinstance(result.record, Invoice)
    return result.record


def skip(raw: dict[str, Any], ctx: MappingContext = CTX) -> Skip:
    result = map_invoice(row("invoices", raw), ctx)
    assert isinstance(result, Skip), result
    return result


def test_example_invoices() -> None:
    (listed,) = example_rows("invoices__list.json")
    result = map_invoice(listed, CTX)
    assert isinstance(result, Mapped)
    assert result.refs == {
        "patient": "1593",
        "practitioner": "26",
        "location": "26",
        "appointment": "70644",
    }
    inv = result.record
    assert isinstance(inv, Invoice)
    assert (inv.number, inv.issue_date, inv.status, inv.status_code) == (
        "104",
        date(2015, 4, 2),
        "open",
        10,
    )
    assert (inv.total, inv.net, inv.tax, inv.discount) == (
        Decimal("50.0"),
        Decimal("50.0"),
        Decimal("0.0"),
        Decimal("0.0"),
    )
    assert inv.invoice_to is not None
    assert inv.invoice_to.count("\n") == 4
    (get,) = example_rows("invoices__get.json")
    paid = map_invoice(get, CTX)
    assert isinstance(paid, Mapped)
    assert isinstance(paid.record, Invoice)
    assert paid.refs == {"patient": "380", "location": "26"}  # no practitioner, no appointment
    assert paid.record.closed_at == datetime(2014, 12, 18, 10, 47, 8, tzinfo=UTC)
    assert (paid.record.status, paid.record.outstanding, paid.record.settlement_amount) == (
        "paid",
        Decimal(0),
        Decimal("2367.18"),
    )
    (deleted,) = example_rows("invoices__deleted_list.json")
    s = map_invoice(deleted, CTX)
    assert isinstance(s, Skip)
    assert s.code == "deleted_in_cliniko"


@pytest.mark.parametrize(
    ("code", "status", "total", "outstanding", "settlement", "basis", "status_only"),
    [
        (10, "open", "120.50", "120.50", "0", "status_open", True),
        (20, "paid", "120.50", "0", "120.50", "status_paid", False),
        (30, "closed", "120.50", "0", "120.50", "status_closed", False),
        (40, "credit", "-35.00", "-35.00", "0", "status_credit", False),
        ("20", "paid", "0.0", "0", "0.0", "status_paid", False),
    ],
)
def test_status_and_balance_rule(
    code: object,
    status: str,
    total: str,
    outstanding: str,
    settlement: str,
    basis: str,
    status_only: bool,
) -> None:
    inv = invoice(inv_raw(status=code, total_amount=total))
    assert inv.status == status
    assert inv.status_code == int(str(code))
    assert inv.total == Decimal(total)
    assert inv.outstanding == Decimal(outstanding)
    assert inv.settlement_amount == Decimal(settlement)
    assert inv.total - inv.settlement_amount == inv.outstanding
    assert inv.outstanding_basis == basis
    assert inv.status_only_open is status_only


@pytest.mark.parametrize(
    ("field", "value", "status", "outstanding"),
    [
        ("amount_outstanding", "20.25", 10, "20.25"),
        ("outstanding_amount", "0.0", 10, "0.0"),
        ("balance", "5", 20, "5"),
        ("amount_owing", 7, 30, "7"),
        ("amount_paid", "100.25", 10, "20.25"),
        ("amount_paid", "0", 40, "120.50"),
    ],
)
def test_amount_field_overrides_status(
    field: str, value: object, status: int, outstanding: str
) -> None:
    inv = invoice(inv_raw(status=status, total_amount="120.50", **{field: value}))
    assert inv.outstanding_basis == "amount_field"
    assert inv.outstanding == Decimal(outstanding)
    assert inv.settlement_amount == Decimal("120.50") - Decimal(outstanding)
    assert inv.status_only_open is False


def test_null_amount_field_is_ignored_and_bad_one_is_malformed() -> None:
    inv = invoice(inv_raw(amount_outstanding=None, amount_paid=""))
    assert inv.outstanding_basis == "status_open"
    s = skip(inv_raw(amount_outstanding="lots"))
    assert s.code == "malformed_record"
    assert "amount_outstanding" in s.reason
    assert "lots" not in s.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", 50),
        ("status", None),
        ("status", "paid"),
        ("total_amount", None),
        ("total_amount", "12,50"),
        ("total_amount", True),
        ("total_amount", "NaN"),
        ("issue_date", "2015-02-29"),
        ("closed_at", "never"),
        ("net_amount", [1]),
    ],
)
def test_malformed_invoice_names_the_field(field: str, value: object) -> None:
    s = skip(inv_raw(**{field: value}))
    assert s.code == "malformed_record"
    assert field in s.reason


def test_float_total_is_read_by_its_shortest_repr() -> None:
    # A JSON number (not the documented decimal string) never turns into binary noise.
    assert invoice(inv_raw(total_amount=0.1)).total == Decimal("0.1")
    assert invoice(inv_raw(total_amount=12)).total == Decimal(12)


def test_number_kept_as_text() -> None:
    assert invoice(inv_raw(number=104)).number == "104"
    assert invoice(inv_raw(number="INV-0042")).number == "INV-0042"
    assert invoice(inv_raw(number=None)).number is None


def item(
    rid: int | str, invoice_id: str, created: str, deleted: str | None = None, **changes: Any
) -> StagedRow:
    raw = copy.deepcopy(load("invoice_items__get.json"))
    raw.update(
        id=rid,
        created_at=created,
        deleted_at=deleted,
        invoice={"links": {"self": f"https://api.au1.cliniko.com/v1/invoices/{invoice_id}"}},
        **changes,
    )
    return row("invoice_items", raw)


def test_lines_exact_ordered_and_live_only() -> None:
    ctx = build_context(
        {},
        NOW,
        invoice_items=[
            item(12, "108", "2015-10-25T05:34:34Z", name="Second"),
            item("11", "108", "2015-10-25T05:34:34Z", name="First"),
            item(10, "108", "2015-10-26T00:00:00Z", name="Third", quantity="1.5"),
            item(9, "108", "2015-10-24T00:00:00Z", deleted="2015-10-25T00:00:00Z"),
            item(8, "999", "2015-10-24T00:00:00Z"),
        ],
    )
    inv = invoice(inv_raw(), ctx)
    assert [(ln.source_id, ln.position, ln.description) for ln in inv.lines] == [
        ("11", 0, "First"),
        ("12", 1, "Second"),
        ("10", 2, "Third"),
    ]
    line = inv.lines[0]
    assert line.net_price == Decimal("81.818")
    assert str(line.net_price) == "81.818"
    assert str(line.discount_percentage) == "18.1818"
    assert (line.quantity, line.unit_price, line.discounted_amount) == (
        Decimal(1),
        Decimal("100.0"),
        Decimal("20.0"),
    )
    assert (line.tax_name, line.tax_rate, line.total_including_tax) == (
        "GST",
        Decimal("10.0"),
        Decimal("90.0"),
    )
    assert (line.code, line.concession) == ("2020", None)
    assert inv.lines[2].quantity == Decimal("1.5")


def test_example_items_attach_to_invoice_1() -> None:
    inv = invoice(inv_raw(id=1))
    assert len(inv.lines) == 1  # the deleted copy is left out
    assert inv.lines[0].description == "Initial consultation and treatment"


def test_malformed_line_skips_the_invoice_naming_item_and_field() -> None:
    ctx = build_context(
        {}, NOW, invoice_items=[item(5, "108", "2015-01-01T00:00:00Z", unit_price="ten")]
    )
    s = skip(inv_raw(), ctx)
    assert s.code == "malformed_record"
    assert "invoice item 5" in s.reason
    assert "unit_price" in s.reason


def test_patient_balance_rule() -> None:
    invoices = [
        invoice(inv_raw(status=10, total_amount="100.10")),
        invoice(inv_raw(status=20, total_amount="55.55")),
        invoice(inv_raw(status=30, total_amount="10.00")),
        invoice(inv_raw(status=40, total_amount="-30.05")),
        invoice(inv_raw(status=10, total_amount="81.818", amount_paid="1.818")),
    ]
    balance = patient_balance_rule(invoices)
    assert balance == Decimal("150.05")
    assert str(balance) == "150.050"
    assert patient_balance_rule([]) == Decimal(0)
    assert patient_balance_rule(iter(invoices[3:4])) == Decimal("-30.05")
