"""The `patient_balances` view: non-void invoice totals minus settlements, exactly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from target import ClinicBackend


def _settle(store: ClinicBackend, invoice_id: int, patient_id: int, amount: str) -> None:
    store.insert_rows(
        "settlements",
        [
            {
                "invoice_id": invoice_id,
                "patient_id": patient_id,
                "amount": Decimal(amount),
                "kind": "import_reconciliation",
            }
        ],
    )


def test_open_paid_credit_void_and_nothing(store: ClinicBackend, rows: Any) -> None:
    open_p, paid_p, credit_p, void_p, mixed_p, none_p = store.insert_rows(
        "patients", [rows.patient() for _ in range(6)]
    )
    store.insert_rows("invoices", [rows.invoice(open_p, "120.50")])
    [paid] = store.insert_rows("invoices", [rows.invoice(paid_p, "99.99", "paid")])
    _settle(store, paid, paid_p, "99.99")
    store.insert_rows("invoices", [rows.invoice(credit_p, "-25.00", "credit")])
    store.insert_rows("invoices", [rows.invoice(void_p, "500", "void")])
    # One patient with everything: open 81.818 + paid 40 (settled) + closed 10 (settled)
    # + credit -5 = 76.818 owed.
    [_, paid2, closed] = store.insert_rows(
        "invoices",
        [
            rows.invoice(mixed_p, "81.818"),
            rows.invoice(mixed_p, "40", "paid"),
            rows.invoice(mixed_p, "10", "closed"),
        ],
    )
    store.insert_rows("invoices", [rows.invoice(mixed_p, "-5", "credit")])
    _settle(store, paid2, mixed_p, "40")
    _settle(store, closed, mixed_p, "10.00")

    balances = store.balances()
    assert balances == {
        open_p: Decimal("120.50"),
        paid_p: Decimal(0),
        credit_p: Decimal("-25"),
        void_p: Decimal(0),
        mixed_p: Decimal("76.818"),
        none_p: Decimal(0),
    }
    assert str(balances[open_p]) == "120.50"
    assert str(balances[mixed_p]) == "76.818"
    assert str(balances[credit_p]) == "-25.00"


def test_sums_are_exact_where_floats_would_drift(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    store.insert_rows("invoices", [rows.invoice(pid, "0.1") for _ in range(10)])
    store.insert_rows("invoices", [rows.invoice(pid, "0.000001") for _ in range(3)])
    store.insert_rows("invoices", [rows.invoice(pid, "-999999999.999999", "credit")])
    balance = store.balances()[pid]
    assert balance == Decimal("1.000003") - Decimal("999999999.999999")
    assert str(balance) == "-999999998.999996"


def test_a_part_settlement_leaves_the_rest_owing(store: ClinicBackend, rows: Any) -> None:
    [pid] = store.insert_rows("patients", [rows.patient()])
    [iid] = store.insert_rows("invoices", [rows.invoice(pid, "200")])
    _settle(store, iid, pid, "50.25")
    assert store.balances() == {pid: Decimal("149.75")}


@pytest.mark.parametrize("amount", ["0.0000001", "1000000000"])
def test_amounts_the_view_cannot_sum_exactly_are_refused(
    store: ClinicBackend, rows: Any, amount: str
) -> None:
    from target import InvalidValue

    [pid] = store.insert_rows("patients", [rows.patient()])
    with pytest.raises(InvalidValue, match=r"invoices\.total"):
        store.insert_rows("invoices", [rows.invoice(pid, amount)])
