"""Walking one Cliniko list completely, in parallel, without gaps, resumably.

Page numbers alone are not safe while a clinic keeps working: when a row leaves a list
(deleted, archived) every later row shifts back by one and a page fetched afterwards skips the
row that crossed the boundary. Keyset paging (`id:>cursor`, sorted by id) cannot skip, but it
is sequential. So a list is walked like this:

1. Page 1 (sorted by the key) gives the first rows and `total_entries`, hence P pages.
2. "Anchor" pages 1+s, 1+2s, ... (s >= 2) are fetched by page number, in parallel. Whatever
   they contain is real data, and their first and last keys cut the key space into segments.
3. Each segment between two anchors, and the tail after the last one, is walked by keyset:
   `key > last key of the anchor below` and `key < first key of the anchor above`.

Every row that exists for the whole walk lies inside an anchor page or strictly between two
anchors' keys, so it is fetched whatever moves meanwhile; rows that change during the walk
have a newer `updated_at` and are swept up by the next top-up. When nothing changes, the
segments hold exactly the pages between the anchors, so the walk costs exactly P requests.

Lists whose `id` filter is typed String (treatment notes, practitioners, appointment types,
businesses) cannot say `id:>x`; they use `created_at` with inclusive bounds and lean on the
upsert-by-id to drop the one or two boundary rows each page repeats. Lists with no filter at
all (services, referral sources, per-practitioner reference numbers) fall back to page numbers.

Checkpoints are per *unit* (the plan, one anchor page, one segment, one numbered page), and a
unit only ever moves forward with its own pages, which one task fetches in order. So a unit's
checkpoint can be committed with the unit's page in one transaction, in whatever order the
pages of different units reach the writer, and a resumed walk continues exactly where each
unit stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.cliniko.links import norm_id
from engine.resources import KeysetField

PER_PAGE = 100
MAX_TIE_RESTARTS = 20

Params = list[tuple[str, str]]
Fetch = Callable[[str, Params], Awaitable[dict[str, Any]]]
"""GET a path with query parameters and return the parsed JSON object."""


class CrawlError(Exception):
    """A list could not be walked (its pages make no progress); other lists carry on."""


@dataclass
class PageOut:
    """One fetched page, and the checkpoint of the unit it advances."""

    records: list[Any]
    unit: str
    state: str
    done: bool
    extra_units: list[tuple[str, str, bool]] = field(default_factory=list)
    """Other units committed with this page (the plan, written with page 1)."""


OnPage = Callable[[PageOut], Awaitable[None]]


def total_entries(data: Mapping[str, Any], list_key: str) -> int:
    """A list response's `total_entries`, however the server spelt or typed it."""
    records = data.get(list_key)
    return _total(data, len(records) if isinstance(records, list) else 0)


def _total(data: Mapping[str, Any], fallback: int) -> int:
    # The docs show total_entries as a number, as a string and once misspelt; a page that
    # does not say is treated as if it held everything left.
    for name in ("total_entries", "total_entires"):
        value = data.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    return fallback


def _records(data: Mapping[str, Any], list_key: str) -> list[Any]:
    value = data.get(list_key)
    if not isinstance(value, list):
        raise CrawlError(f"the response has no {list_key!r} list")
    return value


def _key_of(record: Any, key: KeysetField) -> str | None:
    if not isinstance(record, dict):
        return None
    if key == "id":
        try:
            return norm_id(record.get("id"))
        except (TypeError, ValueError):
            return None
    if key == "created_at":
        value = record.get("created_at")
        return value if isinstance(value, str) and len(value) >= 20 else None
    return None


def _key_lt(a: str, b: str, key: KeysetField) -> bool:
    if key == "id":
        return int(a) < int(b)
    return a < b


def _keys(records: Sequence[Any], key: KeysetField) -> list[str]:
    return [k for k in (_key_of(r, key) for r in records) if k is not None]


@dataclass
class Segment:
    lo: str | None
    hi: str | None
    """Exclusive key bounds (None: open)."""
    expected: int | None = None
    """Rows the anchors' page positions leave between them (created_at walks check it)."""
    cursor: str | None = None
    remaining: int | None = None
    """created_at: rows the last response said were left above the cursor."""
    first_total: int | None = None
    ties: list[str] = field(default_factory=list)
    """created_at values whose rows may straddle a boundary: fetched as a group at the end."""
    tie_page: int = 0
    tie_total: int | None = None
    tie_restarts: int = 0
    range_done: bool = False
    pages: int = 0
    records: int = 0
    done: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Segment:
        return cls(**json.loads(text))


@dataclass
class ListCrawl:
    """Walks one list. Create one per (resource, variant[, parent]) per run."""

    fetch: Fetch
    path: str
    list_key: str
    key: KeysetField
    on_page: OnPage
    filters: Sequence[str] = ()
    units: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    """Checkpoints of an interrupted walk: unit -> (state JSON, done)."""
    parallel: int = 16
    per_page: int = PER_PAGE
    on_progress: Callable[[ListCrawl], None] | None = None
    created_before: str | None = None
    """created_at walks only: the run's start on the server's clock. Rows created later are
    the next top-up's, so they cannot change the totals the tie checks rely on."""

    pages_done: int = 0
    records_done: int = 0
    pages_expected: int | None = None
    records_expected: int | None = None

    def __post_init__(self) -> None:
        for unit, (state, _done) in self.units.items():
            if unit == "plan":
                continue
            info = json.loads(state)
            self.pages_done += int(info.get("pages", 0))
            self.records_done += int(info.get("records", 0))
        plan = self.units.get("plan")
        if plan:
            info = json.loads(plan[0])
            self.pages_expected = info.get("pages")
            self.records_expected = info.get("total")

    # -- plumbing -------------------------------------------------------------------------

    def _params(self, extra: Sequence[tuple[str, str]]) -> Params:
        params: Params = [("per_page", str(self.per_page))]
        params += [("q[]", f) for f in self.filters]
        params += list(extra)
        if self.key == "id":
            params.append(("sort", "id"))
        elif self.key == "created_at":
            if self.created_before:
                params.append(("q[]", f"created_at:<{self.created_before}"))
            params.append(("sort", "created_at,id"))
        return params

    async def _emit(self, page: PageOut) -> None:
        self.pages_done += 1
        self.records_done += len(page.records)
        await self.on_page(page)
        if self.on_progress is not None:
            self.on_progress(self)

    # -- the walk -------------------------------------------------------------------------

    async def run(self) -> None:
        self._unit_state: dict[str, tuple[str, bool]] = dict(self.units)
        if self.key is None:
            await self._run_numbered()
        else:
            await self._run_keyset()

    async def _fetch_numbered(self, page: int) -> tuple[list[Any], int]:
        data = await self.fetch(self.path, self._params([("page", str(page))]))
        records = _records(data, self.list_key)
        return records, _total(data, (page - 1) * self.per_page + len(records))

    def _plan_after_first_page(self, total: int) -> dict[str, Any]:
        pages = max(1, math.ceil(total / self.per_page))
        self.pages_expected = pages
        self.records_expected = total
        if self.key is None:
            return {"total": total, "pages": pages, "anchors": list(range(1, pages + 1))}
        step = max(2, math.ceil(pages / max(1, self.parallel)))
        return {"total": total, "pages": pages, "anchors": list(range(1, pages + 1, step))}

    async def _first_page(self) -> dict[str, Any]:
        if "plan" in self._unit_state:
            return dict(json.loads(self._unit_state["plan"][0]))
        records, total = await self._fetch_numbered(1)
        plan = self._plan_after_first_page(total)
        unit = self._anchor_state(1, records, total)
        plan_json = json.dumps(plan, sort_keys=True)
        self._unit_state["plan"] = (plan_json, True)
        self._unit_state["a:1"] = (unit, True)
        await self._emit(
            PageOut(records, "a:1", unit, True, extra_units=[("plan", plan_json, True)])
        )
        return plan

    def _anchor_state(self, page: int, records: Sequence[Any], total: int) -> str:
        keys = _keys(records, self.key)
        return json.dumps(
            {
                "total": total,
                "page": page,
                "first": keys[0] if keys else None,
                "last": keys[-1] if keys else None,
                "count": len(records),
                "pages": 1,
                "records": len(records),
            },
            sort_keys=True,
        )

    async def _run_numbered(self) -> None:
        plan = await self._first_page()
        pending = [p for p in plan["anchors"] if not self._done(f"a:{p}")]
        await self._fetch_anchors(pending)

    def _done(self, unit: str) -> bool:
        return unit in self._unit_state and self._unit_state[unit][1]

    async def _fetch_anchors(self, pages: Sequence[int]) -> None:
        limit = anyio.Semaphore(max(1, self.parallel))

        async def one(page: int) -> None:
            async with limit:
                records, total = await self._fetch_numbered(page)
                unit = self._anchor_state(page, records, total)
                self._unit_state[f"a:{page}"] = (unit, True)
                await self._emit(PageOut(records, f"a:{page}", unit, True))

        async with anyio.create_task_group() as tg:
            for page in pages:
                tg.start_soon(one, page)

    async def _run_keyset(self) -> None:
        plan = await self._first_page()
        anchors: list[int] = plan["anchors"]
        await self._fetch_anchors([p for p in anchors if not self._done(f"a:{p}")])

        bounds: list[tuple[int, str | None, str | None, bool]] = []
        # If every anchor saw the total page 1 saw, no row left or joined the list before the
        # anchors were read, so their page positions are exact.
        self._steady = True
        for page in anchors:
            info = json.loads(self._unit_state[f"a:{page}"][0])
            self._steady &= info.get("total") == plan["total"]
            if info["first"] is None:
                continue  # the list shrank past this page; its neighbours' segments meet
            last_page = info["count"] < self.per_page or page * self.per_page >= plan["total"]
            bounds.append((page, info["first"], info["last"], last_page))

        segments: list[tuple[str, Segment]] = []
        if not bounds:
            # Even page 1 had no keyed rows: nothing more to walk (an empty list, or a page
            # whose rows are all malformed and already quarantined).
            return
        for i, (page, _first, last, is_last) in enumerate(bounds):
            unit = f"s:{page}"
            if unit in self._unit_state:
                segments.append((unit, Segment.from_json(self._unit_state[unit][0])))
                continue
            upper = bounds[i + 1][1] if i + 1 < len(bounds) else None
            below = (bounds[i + 1][0] - 1) * self.per_page if upper is not None else plan["total"]
            seg = Segment(lo=last, hi=upper, expected=max(0, below - page * self.per_page))
            # An anchor that was the last page needs no tail walk: rows added since are newer
            # than the run's start and belong to the next top-up.
            if upper is None and is_last:
                seg.done = True
            elif upper is not None and last is not None and not _key_lt(last, upper, self.key):
                if self.key == "created_at" and last == upper:
                    # Both anchors sit inside one run of rows sharing a timestamp: the rows
                    # between them are exactly that group.
                    seg.range_done, seg.ties = True, [last]
                else:
                    seg.done = True  # rows shifted so far that the anchors overlap
            if seg.done:
                self._unit_state[unit] = (seg.to_json(), True)
            segments.append((unit, seg))

        async with anyio.create_task_group() as tg:
            for unit, seg in segments:
                if not seg.done:
                    tg.start_soon(self._walk_segment, unit, seg)

    def _segment_params(self, seg: Segment) -> Params:
        extra: Params = []
        if seg.range_done:
            # One created_at value shared by rows on both sides of a boundary: its whole group.
            value = seg.ties[0]
            extra += [("q[]", f"created_at:>={value}"), ("q[]", f"created_at:<={value}")]
            extra.append(("page", str(seg.tie_page)))
            return self._params(extra)
        lower = seg.cursor if seg.cursor is not None else seg.lo
        if lower is not None:
            extra.append(("q[]", f"{self.key}:>{lower}"))
        if seg.hi is not None:
            extra.append(("q[]", f"{self.key}:<{seg.hi}"))
        return self._params(extra)

    async def _walk_segment(self, unit: str, seg: Segment) -> None:
        while not seg.done:
            if seg.range_done and seg.tie_page == 0:
                seg.tie_page = 1
            data = await self.fetch(self.path, self._segment_params(seg))
            records = _records(data, self.list_key)
            total = _total(data, len(records))
            seg.pages += 1
            seg.records += len(records)
            if seg.range_done:
                self._advance_tie(seg, records, total)
            else:
                self._advance(seg, records, total)
            state = seg.to_json()
            self._unit_state[unit] = (state, seg.done)
            await self._emit(PageOut(records, unit, state, seg.done))

    def _advance(self, seg: Segment, records: Sequence[Any], total: int) -> None:
        """Move a segment's cursor past a page, or finish its range."""
        by_time = self.key == "created_at"
        if by_time and seg.remaining is not None and total < seg.remaining:
            # Fewer rows above the cursor than the last page promised: rows sharing the
            # cursor's timestamp were cut off by the exclusive bound (or rows left the list).
            self._add_tie(seg, seg.cursor)
        if seg.first_total is None:
            seg.first_total = total
        if not records or len(records) >= total:
            seg.range_done = True
            if by_time and not (self._steady and seg.first_total == seg.expected):
                # Rows sharing an anchor's boundary timestamp lie outside both exclusive
                # bounds. Only when the list provably held still, and the range held exactly
                # the rows between the anchors' positions, can there be none.
                self._add_tie(seg, seg.lo)
                self._add_tie(seg, seg.hi)
            seg.done = not seg.ties
            return
        keys = _keys(records, self.key)
        if not keys:
            raise CrawlError(f"{self.path}: a full page without a usable {self.key}")
        seg.cursor = keys[-1]
        seg.remaining = total - len(records)

    @staticmethod
    def _add_tie(seg: Segment, value: str | None) -> None:
        if value is not None and value not in seg.ties:
            seg.ties.append(value)

    def _advance_tie(self, seg: Segment, records: Sequence[Any], total: int) -> None:
        # Inside one timestamp there is no filter left to keyset on (these lists' ids are
        # String-typed), so the group is paged by number; if its size moves between its pages
        # a row may have shifted past a page edge, and the group is read again.
        if seg.tie_page == 1:
            seg.tie_total = total
        elif total != seg.tie_total and seg.tie_restarts < MAX_TIE_RESTARTS:
            seg.tie_restarts += 1
            seg.tie_page = 1
            return
        if len(records) < self.per_page or seg.tie_page * self.per_page >= total:
            seg.ties.pop(0)
            seg.tie_page = 0
            seg.done = not seg.ties
        else:
            seg.tie_page += 1
