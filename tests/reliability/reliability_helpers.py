"""Helpers shared by the reliability tests: staging a sandbox clinic without the network, and
reading a clinic store's content for comparison.

What a comparison leaves out, and why (everything else must be equal, row by row):

- `created_at` / `updated_at` of clinic rows: the store stamps them with the wall clock at
  write time, so two loads of the same plan differ there and nowhere else;
- `import_runs`: one row per load, and a killed load leaves its row unfinished; a clean load
  has one run, a killed-and-rerun one has several (checked apart: only the last is complete);
- the `run_id`, `created_at`, `updated_at` of `import_links` (which run last wrote a link, and
  when), and of `audit_log` its `id`, `at` and `run_id` (entries are written batch by batch, so
  a rerun's are spread over several runs): audit entries are compared as the multiset of
  (action, kind, Cliniko id, clinic id) they record, which must be the clean load's exactly;
  a record created twice would show there twice.

Clinic row ids are compared as they are: a killed batch rolls back with its id allocation, and
a rerun creates the remaining records in plan order, so they get the ids a clean load gives.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from engine.resources import ALL_PARTS, BY_NAME, RESOURCES
from sandbox.store import ClinicStore
from staging import open_staging
from target import TABLES

BASE = "https://api.au1.cliniko.com/v1"
LISTS = frozenset(r.name for r in RESOURCES if not r.single)

STAMPS = frozenset({"created_at", "updated_at"})
RUN_TABLES = frozenset({"import_runs", "audit_log", "import_links"})
CLINIC_TABLES = tuple(name for name in TABLES if name not in RUN_TABLES)


FIGURES_ENV = "CLINIKO_SWITCH_FIGURES"


def record_figure(name: str, **values: Any) -> None:
    """Append one line of figures (faults injected, kills landed, ...) to the JSON-lines file
    named by $CLINIKO_SWITCH_FIGURES, when set: what the README's "What we test" table is
    written from."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"figure": name, **values}, default=str) + "\n")


def stage_store(store: ClinicStore, path: Path) -> Path:
    """Write a sandbox store's lists and settings into a staging file as one complete run
    (what a download stages, without the network; its links point at `BASE`)."""
    with open_staging(path, create=True) as db:
        run_id = db.start_run(mode="full", selection=list(ALL_PARTS), shard="au1")
        writer = db.writer(run_id)
        writer.set_single(BY_NAME["settings"], store.settings(BASE))
        for (resource, variant), _n in sorted(store.counts().items()):
            if resource not in LISTS:
                continue
            records = list(store.raw_records(resource, variant, BASE))
            for start in range(0, len(records), 100):
                writer.write_page(BY_NAME[resource], variant, records[start : start + 100])
        db.finish_run(run_id, "complete")
    return path


def connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _rows(con: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM {table} ORDER BY id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def clinic_content(path: Path) -> dict[str, Any]:
    """A clinic store's content, less what legitimately differs between two loads (above)."""
    con = connect_ro(path)
    try:
        tables = {
            table: {
                row["id"]: {k: v for k, v in row.items() if k not in STAMPS}
                for row in _rows(con, table)
            }
            for table in CLINIC_TABLES
        }
        links = {
            (r["source"], r["kind"], r["source_id"]): (
                r["target_id"],
                r["source_hash"],
                r["target_hash"],
            )
            for r in _rows(con, "import_links")
        }
        audit: Counter[tuple[Any, ...]] = Counter()
        for r in _rows(con, "audit_log"):
            detail = json.loads(r["detail"]) if r["detail"] else {}
            if "cliniko_ids" in detail:
                for sid, tid in zip(detail["cliniko_ids"], detail["target_ids"], strict=True):
                    audit[(r["action"], r["kind"], sid, tid)] += 1
            else:
                audit[(r["action"], r["kind"], detail.get("cliniko_id"), r["target_id"])] += 1
        balances = dict(con.execute("SELECT patient_id, balance FROM patient_balances"))
        return {"tables": tables, "links": links, "audit": audit, "balances": balances}
    finally:
        con.close()


def clinic_is_new(path: Path) -> bool:
    """True for a clinic file a load created but had not yet given its schema (killed between
    creating the file and committing the migration, which is one transaction): the next load
    takes it as a new clinic. False for a file with the whole schema; anything in between is
    a half-made clinic and fails."""
    if path.stat().st_size == 0:
        return True
    con = connect_ro(path)
    try:
        names = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()
    assert not names or names >= set(TABLES), f"a half-made schema: {sorted(names)}"
    return not names


def assert_clinic_sound(path: Path) -> None:
    """Integrity and foreign keys ok; every imported row has exactly one link and every link
    its row (a row without its link would be created again by the next load)."""
    con = connect_ro(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        kinds = {
            kind: table
            for kind, table in (
                ("location", "locations"),
                ("practitioner", "practitioners"),
                ("service", "services"),
                ("patient", "patients"),
                ("appointment", "appointments"),
                ("group_appointment", "group_appointments"),
                ("attendance", "group_attendances"),
                ("treatment_note", "treatment_notes"),
                ("invoice", "invoices"),
                ("settlement", "settlements"),
            )
        }
        for kind, table in kinds.items():
            rows = {r for (r,) in con.execute(f"SELECT id FROM {table}")}
            query = "SELECT target_id FROM import_links WHERE kind = ?"
            linked = [t for (t,) in con.execute(query, [kind])]
            assert len(linked) == len(set(linked)), f"two links to one {kind} row"
            assert set(linked) == rows, f"{kind}: rows and links differ"
        assert con.execute("SELECT count(*) FROM message_outbox").fetchone() == (0,)
        flags = con.execute("SELECT messaging_enabled, ai_enabled FROM clinic_settings").fetchall()
        assert all(row == (0, 0) for row in flags), flags
    finally:
        con.close()


def assert_same_clinic(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Row by row, with a message naming the first difference."""
    for table, rows in want["tables"].items():
        have = got["tables"][table]
        assert sorted(have) == sorted(rows), f"{table}: ids differ ({len(have)} vs {len(rows)})"
        for rid, row in rows.items():
            assert have[rid] == row, f"{table} row {rid} differs"
    assert got["links"] == want["links"], "import_links differ"
    assert got["audit"] == want["audit"], "audit entries differ (a record written twice?)"
    assert got["balances"] == want["balances"], "balances differ"


def assert_part_of(got: dict[str, Any], want: dict[str, Any]) -> None:
    """A killed load's clinic: whatever is there is exactly what the clean load has there (no
    half-written row, no invoice with some of its lines), and every link points at it."""
    for table, rows in got["tables"].items():
        for rid, row in rows.items():
            assert rid in want["tables"][table], f"{table} row {rid} is not in a clean load"
            assert row == want["tables"][table][rid], f"{table} row {rid} is half-written"
    lines_by_invoice: Counter[int] = Counter(
        r["invoice_id"] for r in got["tables"]["invoice_lines"].values()
    )
    want_lines: Counter[int] = Counter(
        r["invoice_id"] for r in want["tables"]["invoice_lines"].values()
    )
    for invoice in got["tables"]["invoices"]:
        assert lines_by_invoice[invoice] == want_lines[invoice], f"invoice {invoice}: lines"
    for key, link in got["links"].items():
        assert want["links"].get(key) == link, f"link {key} differs"
    for entry, n in got["audit"].items():
        assert n == 1 and want["audit"][entry] == 1, f"audit {entry} written {n} times"
