"""The list walk: exact request counts, no gaps while rows move, resumable per unit.

These drive `ListCrawl` against an in-memory list that applies Cliniko's paging and filter
rules, so the algorithm can be checked on thousands of adversarial interleavings quickly;
the same walk against the real sandbox over sockets lives in the extract tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from engine.crawl import PER_PAGE, CrawlError, ListCrawl, PageOut, Params

pytestmark = pytest.mark.anyio


def _ts(i: int) -> str:
    return (
        f"2024-01-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
    )


class FakeList:
    """A list endpoint with Cliniko's semantics for page, per_page, q[] and sort."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.requests: list[Params] = []
        self.before_fetch: Callable[[FakeList], None] | None = None

    async def fetch(self, path: str, params: Params) -> dict[str, Any]:
        self.requests.append(params)
        if self.before_fetch:
            self.before_fetch(self)
        await anyio.lowlevel.checkpoint()
        page, per_page, sort, rows = 1, 50, "created_at", list(self.rows)
        for name, value in params:
            if name == "page":
                page = int(value)
            elif name == "per_page":
                per_page = min(100, int(value))
            elif name == "sort":
                sort = value
            elif name == "q[]":
                rows = [r for r in rows if self._match(r, value)]
        if sort == "id":
            rows.sort(key=lambda r: int(r["id"]))
        else:
            rows.sort(key=lambda r: (r["created_at"], int(r["id"])))
        chunk = rows[(page - 1) * per_page : page * per_page]
        return {"things": chunk, "total_entries": len(rows), "links": {}}

    @staticmethod
    def _match(row: dict[str, Any], spec: str) -> bool:
        field, rest = spec.split(":", 1)
        for op in (">=", "<=", ">", "<", "="):
            if rest.startswith(op):
                value = rest[len(op) :]
                break
        else:
            raise AssertionError(spec)
        have: Any = row[field]
        want: Any = value
        if field == "id":
            have, want = int(have), int(value)
        return {
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
            "=": have == want,
        }[op]


def make_rows(n: int, *, ties: int = 0, start_id: int = 10**15) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        # Ids step unevenly, as snowflake ids do; `ties` rows share one created_at second.
        created = _ts(1000) if i < ties else _ts(2000 + i * 7)
        rows.append({"id": start_id + i * 13 + (i % 5), "created_at": created})
    return rows


async def walk(
    lst: FakeList,
    key: Any,
    *,
    units: dict[str, tuple[str, bool]] | None = None,
    parallel: int = 8,
    stop_after: int | None = None,
) -> tuple[list[PageOut], ListCrawl]:
    pages: list[PageOut] = []

    async def on_page(page: PageOut) -> None:
        if stop_after is not None and len(pages) >= stop_after:
            raise KeyboardInterrupt
        pages.append(page)

    crawl = ListCrawl(
        fetch=lst.fetch,
        path="/things",
        list_key="things",
        key=key,
        on_page=on_page,
        units=units or {},
        parallel=parallel,
    )
    await crawl.run()
    return pages, crawl


def ids_of(pages: list[PageOut]) -> list[int]:
    return [int(r["id"]) for p in pages for r in p.records]


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250, 1000, 4321])
async def test_unchanged_list_costs_exactly_its_pages(n: int) -> None:
    lst = FakeList(make_rows(n))
    pages, crawl = await walk(lst, "id")
    assert len(lst.requests) == max(1, math.ceil(n / PER_PAGE))
    got = ids_of(pages)
    assert sorted(got) == sorted(int(r["id"]) for r in lst.rows)
    assert len(got) == len(set(got)), "an unchanged list must not be fetched twice"
    assert crawl.pages_expected == max(1, math.ceil(n / PER_PAGE))


async def test_walk_runs_segments_in_parallel() -> None:
    lst = FakeList(make_rows(3000))
    in_flight = 0
    peak = 0
    real_fetch = lst.fetch

    async def slow_fetch(path: str, params: Params) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.001)
        try:
            return await real_fetch(path, params)
        finally:
            in_flight -= 1

    lst.fetch = slow_fetch  # type: ignore[method-assign]
    await walk(lst, "id", parallel=10)
    assert peak >= 8, f"one large list must keep several requests in flight, saw {peak}"


@pytest.mark.parametrize("seed", range(40))
async def test_no_gaps_while_rows_leave_and_join(seed: int) -> None:
    rng = random.Random(seed)
    rows = make_rows(1200)
    original = {int(r["id"]) for r in rows}
    lst = FakeList(rows)
    removed: set[int] = set()
    next_id = [10**16]

    def churn(target: FakeList) -> None:
        # Between requests rows are deleted/archived (they leave the list, shifting every
        # later row) and new ones are created (higher ids, at the end).
        for _ in range(rng.randint(0, 3)):
            victim = target.rows.pop(rng.randrange(len(target.rows)))
            removed.add(int(victim["id"]))
        if rng.random() < 0.3:
            next_id[0] += 17
            target.rows.append({"id": next_id[0], "created_at": _ts(10**6)})

    lst.before_fetch = churn
    pages, _ = await walk(lst, "id", parallel=rng.choice([1, 3, 8, 16]))
    got = set(ids_of(pages))
    assert original - removed <= got, "a row present for the whole walk was skipped"


async def test_page_numbers_alone_would_skip_rows() -> None:
    """The churn above really does defeat plain page numbers (so the previous test can fail)."""
    rng = random.Random(7)
    lst = FakeList(make_rows(1200))
    original = {int(r["id"]) for r in lst.rows}
    removed: set[int] = set()

    def churn(target: FakeList) -> None:
        victim = target.rows.pop(rng.randrange(len(target.rows)))
        removed.add(int(victim["id"]))

    lst.before_fetch = churn
    got: set[int] = set()
    for page in range(1, 14):
        data = await lst.fetch("/things", [("page", str(page)), ("per_page", "100")])
        got |= {int(r["id"]) for r in data["things"]}
    assert original - removed - got, "expected plain page numbers to miss a shifted row"


@pytest.mark.parametrize("ties", [0, 5, 150, 420])
async def test_created_at_keyset_handles_shared_timestamps(ties: int) -> None:
    lst = FakeList(make_rows(1500, ties=ties))
    pages, _ = await walk(lst, "created_at")
    assert set(ids_of(pages)) == {int(r["id"]) for r in lst.rows}
    minimum = math.ceil(1500 / PER_PAGE)
    # Inclusive bounds re-read a boundary row per page; ties cost a few pages more.
    assert len(lst.requests) <= minimum + 2 + ties // PER_PAGE + 2


@pytest.mark.parametrize("seed", range(30))
async def test_created_at_keyset_no_gaps_under_churn(seed: int) -> None:
    rng = random.Random(seed)
    lst = FakeList(make_rows(900, ties=130))
    original = {int(r["id"]) for r in lst.rows}
    removed: set[int] = set()

    def churn(target: FakeList) -> None:
        if rng.random() < 0.5:
            victim = target.rows.pop(rng.randrange(len(target.rows)))
            removed.add(int(victim["id"]))

    lst.before_fetch = churn
    pages, _ = await walk(lst, "created_at", parallel=rng.choice([2, 6]))
    assert original - removed <= set(ids_of(pages))


class Stop(Exception):
    """Stands in for the process dying between two pages."""


@pytest.mark.parametrize("stop_after", [1, 2, 5, 17, 33])
async def test_resume_continues_each_unit_where_it_stopped(stop_after: int) -> None:
    lst = FakeList(make_rows(4000))
    handed: list[PageOut] = []

    async def on_page(page: PageOut) -> None:
        if len(handed) >= stop_after:
            raise Stop
        handed.append(page)

    crawl = ListCrawl(lst.fetch, "/things", "things", "id", on_page, parallel=8)
    with pytest.raises((Stop, ExceptionGroup)):
        await crawl.run()
    # What the writer committed: each page with its unit's checkpoint.
    committed: dict[str, tuple[str, bool]] = {}
    for page in handed:
        committed[page.unit] = (page.state, page.done)
        for unit, state, done in page.extra_units:
            committed[unit] = (state, done)
    before = len(lst.requests)
    pages, resumed = await walk(lst, "id", units=committed)
    seen = ids_of(handed) + ids_of(pages)
    assert set(seen) == {int(r["id"]) for r in lst.rows}
    # Only pages that were in flight (fetched, never committed) are fetched again.
    refetched = (len(lst.requests) - before) - (40 - len(handed))
    assert 0 <= refetched <= 8 + 1
    assert resumed.pages_done == 40 + refetched


async def test_numbered_lists_fetch_every_page_once() -> None:
    lst = FakeList(make_rows(730))
    pages, _ = await walk(lst, None)
    assert len(lst.requests) == 8
    assert sorted(ids_of(pages)) == sorted(int(r["id"]) for r in lst.rows)


async def test_a_page_without_the_list_is_an_error() -> None:
    async def fetch(path: str, params: Params) -> dict[str, Any]:
        return {"other": [], "total_entries": 0}

    async def on_page(page: PageOut) -> None:
        raise AssertionError("no page expected")

    with pytest.raises(CrawlError, match="no 'things' list"):
        await ListCrawl(fetch, "/things", "things", "id", on_page).run()


async def test_string_total_entries_is_understood() -> None:
    lst = FakeList(make_rows(250))
    real = lst.fetch

    async def stringly(path: str, params: Params) -> dict[str, Any]:
        data = await real(path, params)
        return {"things": data["things"], "total_entires": str(data["total_entries"])}

    pages, _ = await walk(FakeList([]), "id")  # empty list: one request, nothing staged
    assert ids_of(pages) == []
    lst.fetch = stringly  # type: ignore[method-assign]
    pages, _ = await walk(lst, "id")
    assert len(lst.requests) == 3
    assert len(set(ids_of(pages))) == 250
