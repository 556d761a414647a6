"""Turning example payloads into staged rows, the way the staging file would hold them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.mapping.context import MappingContext, build_context
from engine.mapping.fields import link_id
from engine.mapping.staged import StagedRow
from engine.resources import BY_NAME

EXAMPLES = Path(__file__).parent / "examples"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def variant_of(filename: str) -> str:
    for variant in ("archived", "deleted", "cancelled", "inactive"):
        if f"__{variant}_" in filename:
            return variant
    return "active"


def state_of(raw: dict[str, Any], variants: frozenset[str]) -> str:
    """As staging derives it: deleted > archived > cancelled > inactive > active."""
    for marker, state in (
        ("deleted_at", "deleted"),
        ("archived_at", "archived"),
        ("cancelled_at", "cancelled"),
    ):
        if raw.get(marker) not in (None, ""):
            return state
    return "inactive" if variants == {"inactive"} else "active"


def row(
    resource: str,
    raw: dict[str, Any],
    variants: frozenset[str] | set[str] = frozenset({"active"}),
    *,
    row_id: str | None = None,
    state: str | None = None,
    refs: dict[str, str | None] | None = None,
) -> StagedRow:
    """A staged row for `raw`; id and refs recovered from the links as staging does."""
    variants = frozenset(variants)
    if row_id is None:
        rid = raw.get("id")
        row_id = str(int(str(rid))) if rid not in (None, "") else link_id(raw, "links_self")
    if refs is None:
        refs = {}
        for ref in BY_NAME[resource].refs:
            if isinstance(raw.get(ref), dict):
                refs[ref] = link_id(raw, ref)
    return StagedRow(
        resource=resource,
        id=str(row_id),
        raw=raw,
        variants=variants,
        state=state or state_of(raw, variants),
        refs=refs,
    )


def example_rows(filename: str) -> list[StagedRow]:
    """Rows of an example list or get payload."""
    resource = filename.split("__", 1)[0]
    data = load(filename)
    records = data.get(resource, [data])
    variants = frozenset({variant_of(filename)})
    out = []
    for raw in records:
        if "id" not in raw:  # /patients/deleted: only deleted_at and links.self
            raw_id = link_id({"x": raw}, "x")
            out.append(row(resource, raw, variants, row_id=raw_id))
        else:
            out.append(row(resource, raw, variants))
    return out


def example_context(now: datetime = NOW, **extra: Any) -> MappingContext:
    def rows(*files: str) -> list[StagedRow]:
        return [r for fn in files for r in example_rows(fn)]

    kwargs: dict[str, Any] = {
        "practitioners": rows("practitioners__list.json", "practitioners__inactive_list.json"),
        "billable_items": rows("billable_items__list.json"),
        "medical_alerts": rows("medical_alerts__list.json", "medical_alerts__deleted_list.json"),
        "invoice_items": rows("invoice_items__list.json", "invoice_items__deleted_list.json"),
        "group_appointments": rows("group_appointments__list.json"),
        "individual_appointments": rows("individual_appointments__list.json"),
    }
    kwargs.update(extra)
    return build_context(load("settings__get.json"), now, **kwargs)
