"""After a load: does the clinic hold what the staging file says it should?

Checks (each difference is listed, with ids and amounts only):

- counts: every staged record the plan did not skip has an import link to a clinic row that
  exists (per kind: staged mappable rows vs clinic rows linked);
- balances: each imported patient's balance in the clinic (`patient_balances`), less what the
  clinic holds of its own for that patient (invoices and settlements the import did not write),
  equals the balance rule applied to the patient's staged invoices
  (`engine.mapping.money`: paid and closed settle, open carries, credit is negative, an owing
  or paid amount field wins);
- nothing queued in `message_outbox`; messaging and AI still off.

It also lists the patients whose balance rests on status alone (an open invoice that may have
been part-paid in Cliniko) for the operator to spot-check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.clinic_rows import SETTLEMENT_LINK
from engine.mapping import fields as mf
from engine.mapping.money import INVOICE_STATUSES, balance
from engine.staged_input import KIND_RESOURCE
from staging import StagingDB
from target import KIND_TABLES, ClinicBackend


@dataclass(frozen=True, slots=True)
class Difference:
    check: str
    """counts, balance, outbox or settings."""
    kind: str | None
    source_id: str | None
    target_id: int | None
    expected: str
    actual: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "cliniko_id": self.source_id,
            "target_id": self.target_id,
            "expected": self.expected,
            "actual": self.actual,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class StatusOnly:
    """A patient whose balance includes open invoices that rest on their status alone."""

    patient_target_id: int
    patient_source_id: str
    open_invoices: int
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "target_id": self.patient_target_id,
            "cliniko_id": self.patient_source_id,
            "open_invoices": self.open_invoices,
            "amount": str(self.amount),
        }


@dataclass
class Verification:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Kind -> {"expected": staged mappable rows, "linked": clinic rows linked}."""
    differences: list[Difference] = field(default_factory=list)
    balances_checked: int = 0
    status_only_open: list[StatusOnly] = field(default_factory=list)
    outbox_count: int = 0
    messaging_enabled: bool = False
    ai_enabled: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "differences": [d.to_json() for d in self.differences],
            "balances_checked": self.balances_checked,
            "status_only_open": [s.to_json() for s in self.status_only_open],
            "outbox_count": self.outbox_count,
            "messaging_enabled": self.messaging_enabled,
            "ai_enabled": self.ai_enabled,
        }

    def summary_lines(self) -> list[str]:
        lines = ["verification: " + ("ok" if self.ok else f"{len(self.differences)} difference(s)")]
        for kind, c in self.counts.items():
            lines.append(f"  {kind:<18} expected {c['expected']:>8}  linked {c['linked']:>8}")
        lines.append(f"  balances checked: {self.balances_checked}")
        if self.status_only_open:
            lines.append(
                f"  {len(self.status_only_open)} patient balance(s) rest on open-invoice "
                "status alone: spot-check them"
            )
        lines.append(
            f"  outbox {self.outbox_count}, messaging "
            f"{'ON' if self.messaging_enabled else 'off'}, AI {'ON' if self.ai_enabled else 'off'}"
        )
        for d in self.differences[:20]:
            lines.append(
                f"  {d.check} {d.kind or ''} cliniko {d.source_id} clinic {d.target_id}: "
                f"expected {d.expected}, found {d.actual} {d.detail}".rstrip()
            )
        if len(self.differences) > 20:
            lines.append(f"  ... and {len(self.differences) - 20} more (see --json)")
        return lines


def verify(
    store: ClinicBackend,
    staging: StagingDB,
    *,
    source: str,
    kinds: Iterable[str],
    mappable: Mapping[str, set[str]],
) -> Verification:
    """Check the clinic against the staged records.

    `mappable`: per kind, the Cliniko ids the load should have in the clinic (the plan's items
    that were not skipped, less anything the load had to reject).
    """
    result = Verification()
    kinds = list(kinds)
    patient_links = store.load_links(source, "patient")
    for kind in kinds:
        _check_counts(store, source, kind, mappable.get(kind, set()), result, patient_links)
    if "invoice" in kinds:
        _check_balances(
            store, staging, source, mappable.get("invoice", set()), patient_links, result
        )
    result.outbox_count = store.outbox_count()
    if result.outbox_count:
        result.differences.append(
            Difference(
                "outbox",
                None,
                None,
                None,
                "0",
                str(result.outbox_count),
                "messages are queued for patients",
            )
        )
    settings = store.settings()
    result.messaging_enabled = bool(settings.get("messaging_enabled"))
    result.ai_enabled = bool(settings.get("ai_enabled"))
    for name, on in (("messaging", result.messaging_enabled), ("ai", result.ai_enabled)):
        if on:
            result.differences.append(
                Difference("settings", None, None, None, "off", "on", f"{name} is switched on")
            )
    return result


def _check_counts(
    store: ClinicBackend,
    source: str,
    kind: str,
    expected: set[str],
    result: Verification,
    patient_links: Mapping[str, Any],
) -> None:
    links = patient_links if kind == "patient" else store.load_links(source, kind)
    existing = {row["id"] for row in store.iter_rows(KIND_TABLES[kind], ["id"])}
    linked = 0
    for source_id in sorted(expected, key=lambda s: (len(s), s)):
        link = links.get(source_id)
        if link is not None and link.target_id in existing:
            linked += 1
            continue
        result.differences.append(
            Difference(
                "counts",
                kind,
                source_id,
                link.target_id if link is not None else None,
                "linked",
                "missing" if link is None else "linked row gone",
            )
        )
    result.counts[kind] = {"expected": len(expected), "linked": linked}


def _check_balances(
    store: ClinicBackend,
    staging: StagingDB,
    source: str,
    invoices: set[str],
    patient_links: Mapping[str, Any],
    result: Verification,
) -> None:
    expected: dict[int, Decimal] = {}
    status_only: dict[int, tuple[str, int, Decimal]] = {}
    source_of_patient: dict[int, str] = {}
    resource = KIND_RESOURCE["invoice"]
    tables = {name for name, count in staging.table_counts().items() if count.total}
    rows = staging.iter_records(resource) if resource in tables else iter(())
    for row in rows:
        if row.id not in invoices:
            continue
        patient = row.refs.get("patient")
        link = patient_links.get(patient) if patient is not None else None
        if link is None:
            continue
        owing, basis = _outstanding(row.raw)
        pid = link.target_id
        source_of_patient[pid] = str(patient)
        expected[pid] = expected.get(pid, Decimal(0)) + owing
        if basis == "status_open":
            _, n, amount = status_only.get(pid, (str(patient), 0, Decimal(0)))
            status_only[pid] = (str(patient), n + 1, amount + owing)
    for link_source, link in patient_links.items():
        source_of_patient.setdefault(link.target_id, link_source)
        expected.setdefault(link.target_id, Decimal(0))
    imported_invoices = {link.target_id for link in store.load_links(source, "invoice").values()}
    our_settlements = {
        link.target_id for link in store.load_links(source, SETTLEMENT_LINK).values()
    }
    own: dict[int, Decimal] = {}
    for inv in store.iter_rows("invoices", ["patient_id", "total", "status"]):
        if inv["id"] not in imported_invoices and inv["status"] != "void":
            own[inv["patient_id"]] = own.get(inv["patient_id"], Decimal(0)) + inv["total"]
    for s in store.iter_rows("settlements", ["patient_id", "amount"]):
        if s["id"] not in our_settlements:
            own[s["patient_id"]] = own.get(s["patient_id"], Decimal(0)) - s["amount"]
    balances = store.balances()
    for pid in sorted(expected):
        want = expected[pid]
        have = balances.get(pid, Decimal(0)) - own.get(pid, Decimal(0))
        result.balances_checked += 1
        if have != want:
            result.differences.append(
                Difference(
                    "balance",
                    "patient",
                    source_of_patient.get(pid),
                    pid,
                    str(want),
                    str(have),
                    "imported balance differs from the rule applied to the staged invoices",
                )
            )
    result.status_only_open = [
        StatusOnly(pid, sid, n, amount) for pid, (sid, n, amount) in sorted(status_only.items())
    ]


def _outstanding(raw: str) -> tuple[Decimal, str]:
    """An invoice's outstanding amount and its basis, by the balance rule."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            return Decimal(0), "malformed"
        code = mf.integer(data, "status")
        status = INVOICE_STATUSES.get(code) if code is not None else None
        total = mf.decimal(data, "total_amount")
        if status is None or total is None:
            return Decimal(0), "malformed"
        owing, basis = balance(data, status, total)
        return owing, basis
    except (ValueError, mf.Malformed):
        return Decimal(0), "malformed"


__all__ = ["Difference", "StatusOnly", "Verification", "verify"]
