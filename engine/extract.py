"""The download: every selected list, in parallel, into the staging file.

One run = one rate limiter shared by every request, one writer that commits each page with the
checkpoint of the unit it advances, and a task per list (see `engine.crawl`). A run is one of:

- full:   the first download into a file;
- resume: an interrupted run continues from its checkpoints (same mode, same cut-off times);
- topup:  on a file whose last run completed, only rows updated since that run started (minus a
          safety overlap) are asked for, so the cost follows what changed, not the clinic's size.

Times that decide what a run covers come from the server's clock (the `Date` header of the
first response), never from this machine's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from engine.cliniko import (
    DEFAULT_USER_AGENT,
    ApiKey,
    ClientEvent,
    ClientRequestError,
    ClinikoClient,
    ClinikoError,
    PermissionDenied,
    RateLimiter,
    RetryPolicy,
    SetupError,
    norm_id,
)
from engine.cliniko import Page as ClientPage
from engine.crawl import PER_PAGE, CrawlError, ListCrawl, PageOut
from engine.events import (
    EventSink,
    ListProgress,
    Notice,
    RequestStats,
    RunFinished,
    RunStarted,
    discard,
)
from engine.resources import (
    BY_NAME,
    DEFAULT_PARTS,
    Resource,
    Variant,
    list_variants,
    resources_for,
)
from staging import Page, RunCounters, StagingDB, StagingError, open_staging

LOG = logging.getLogger("cliniko_switch.extract")

Outcome = Literal["complete", "interrupted", "failed"]

TOPUP_OVERLAP = timedelta(minutes=5)
WRITER_BATCH_PAGES = 64
"""At most this many pages per staging transaction (the writer takes whatever is ready)."""
META_PENDING = "pending_run"
META_LAST_COMPLETE = "last_complete_server_start"


@dataclass(frozen=True)
class DownloadOptions:
    staging_path: Path
    base_url: str
    selection: tuple[str, ...] = DEFAULT_PARTS
    rate_limit: tuple[int, float] = (200, 60.0)
    parallel: int = 16
    """Parallel walks within one large list (what keeps the tail at full rate)."""
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 30.0
    retry: RetryPolicy | None = None
    overlap: timedelta = TOPUP_OVERLAP
    stats_every_s: float = 1.0


@dataclass
class ListResult:
    resource: str
    variant: str
    pages: int = 0
    records: int = 0
    expected: int | None = None
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class DownloadResult:
    run_id: int
    mode: str
    outcome: str
    staging_path: str
    shard: str
    account_name: str | None
    lists: list[ListResult] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    records: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed_lists(self) -> list[ListResult]:
        return [lst for lst in self.lists if lst.error]


class DownloadFailed(Exception):
    """The run stopped on an error that concerns the whole run (key, network, staging)."""

    def __init__(self, result: DownloadResult, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.result = result
        self.cause = cause


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class _Walk:
    """One list walk of this run: a resource, a variant, and for nested lists their parent."""

    resource: Resource
    variant: Variant
    path: str
    parent: str = ""
    crawl: ListCrawl | None = None
    result: ListResult | None = None

    @property
    def scope_tag(self) -> str:
        return f"{self.parent}|" if self.parent else ""


class Download:
    """A single run of the download; use `download()` rather than this class directly."""

    def __init__(self, key: ApiKey, opts: DownloadOptions, sink: EventSink) -> None:
        self.key = key
        self.opts = opts
        self.sink = sink
        self.db: StagingDB | None = None
        self.limiter = RateLimiter(opts.rate_limit[0], opts.rate_limit[1])
        self.started = time.monotonic()
        self.walks: list[_Walk] = []
        self.quarantined = 0
        self.records = 0
        self._by_path: dict[str, _Walk] = {}
        self._changed_patients: set[str] = set()

    # -- bookkeeping ------------------------------------------------------------------------

    def _on_client_event(self, event: ClientEvent) -> None:
        walk = self._by_path.get(event.path.rstrip("/"))
        if walk is not None and walk.result is not None:
            if event.kind == "retry":
                walk.result.retries += 1
            elif event.kind == "rate_limited":
                walk.result.rate_limited += 1
        if event.kind == "rate_limited":
            self.sink(
                Notice(
                    level="warning",
                    message=f"rate limited by the server; every request waits {event.wait_s:.1f} s",
                )
            )

    def _progress(self, walk: _Walk, done: bool = False) -> None:
        crawl = walk.crawl
        if crawl is None:
            return
        self.sink(
            ListProgress(
                resource=walk.resource.name,
                variant=walk.variant if not walk.parent else f"{walk.variant}:{walk.parent}",
                pages_done=crawl.pages_done,
                pages_expected=crawl.pages_expected,
                records_done=crawl.records_done,
                records_expected=crawl.records_expected,
                done=done,
            )
        )

    def _pages(self) -> tuple[int, int]:
        done = expected = 0
        for walk in self.walks:
            if walk.crawl is None:
                expected += 1
                continue
            done += walk.crawl.pages_done
            expected += max(walk.crawl.pages_expected or 1, walk.crawl.pages_done)
        return done, expected

    def _stats_event(self, client: ClinikoClient) -> RequestStats:
        stats = client.stats
        limiter = self.limiter.stats()
        elapsed = time.monotonic() - self.started
        rate = limiter.current_rate_per_window * 60.0 / self.limiter.window_s
        done, expected = self._pages()
        limit = self.opts.rate_limit[0] * 60.0 / self.opts.rate_limit[1]
        per_min = max(rate, 1e-9)
        eta = (expected - done) / per_min * 60.0 if done else None
        return RequestStats(
            requests=stats.requests_sent,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            rate_per_minute=rate,
            limit_per_minute=limit,
            elapsed_s=elapsed,
            waiting_s=stats.limiter_wait_s,
            pages_done=done,
            pages_expected=expected,
            eta_s=eta,
        )

    # -- the writer -------------------------------------------------------------------------

    async def _writer(
        self, receive: ObjectReceiveStream[tuple[_Walk, PageOut]], run_id: int, scope: str
    ) -> None:
        assert self.db is not None
        writer = self.db.writer(run_id)
        async with receive:
            async for first in receive:
                batch = [first]
                # Drain whatever else is ready: one transaction for many pages keeps the
                # writer far ahead of the network.
                while len(batch) < WRITER_BATCH_PAGES:
                    try:
                        batch.append(receive.receive_nowait())  # type: ignore[attr-defined]
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                pages = []
                for walk, page in batch:
                    tag = f"{scope}:{walk.scope_tag}"
                    checkpoints = [(tag + page.unit, page.state, page.done)]
                    checkpoints += [(tag + u, state, done) for u, state, done in page.extra_units]
                    pages.append(Page(walk.resource, walk.variant, page.records, checkpoints))
                    self.records += len(page.records)
                written = await anyio.to_thread.run_sync(writer.write_batch, pages)
                self.quarantined += written.quarantined

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> DownloadResult:
        opts = self.opts
        # An existing file is checked before any request (a wrong path costs nothing); a new
        # one is only created once the key has proven itself, so a refused key leaves nothing.
        db = open_staging(opts.staging_path, create=False) if opts.staging_path.exists() else None
        try:
            async with ClinikoClient.create(
                self.key,
                base_url=opts.base_url,
                limiter=self.limiter,
                user_agent=opts.user_agent,
                timeout=opts.timeout,
                retry=opts.retry,
                max_connections=max(8, opts.parallel * 2),
                on_event=self._on_client_event,
            ) as client:
                user_page, settings = await self._connect(client)
                if db is None:
                    db = open_staging(opts.staging_path, create=True)
                self.db = db
                return await self._run(db, client, user_page, settings)
        except BaseExceptionGroup as group:
            # Parallel tasks wrap what went wrong; callers want the error itself (a revoked key,
            # a lost network, a full disk), not the task group's bundle of it.
            cause = _first_error(group)
            if cause is None:
                raise
            raise cause from None
        finally:
            if db is not None:
                db.close()

    async def _connect(self, client: ClinikoClient) -> tuple[ClientPage, dict[str, Any]]:
        """The key's owner (the connection check; its Date header is the server's clock) and
        the account's settings, asked for together."""
        found: dict[str, Any] = {}

        async def user() -> None:
            found["user"] = await client.get("/user")

        async def settings() -> None:
            found["settings"] = await self._settings(client)

        async with anyio.create_task_group() as tg:
            tg.start_soon(user)
            tg.start_soon(settings)
        return found["user"], found["settings"]

    def _mode(self, db: StagingDB) -> tuple[str, dict[str, Any]]:
        pending = db.get_meta(META_PENDING)
        if pending:
            return "resume", json.loads(pending)
        last = db.get_meta(META_LAST_COMPLETE)
        if last:
            since = _parse_iso(last) - self.opts.overlap
            return "topup", {"scope": "topup", "since": _iso(since)}
        return "full", {"scope": "full"}

    async def _run(
        self,
        db: StagingDB,
        client: ClinikoClient,
        user_page: ClientPage,
        settings: dict[str, Any],
    ) -> DownloadResult:
        opts = self.opts
        mode, pending = self._mode(db)
        selected = resources_for(opts.selection)
        server_now = user_page.server_date or datetime.now(UTC)
        if "started" not in pending:
            pending["started"] = _iso(server_now)
            pending["selection"] = list(opts.selection)
        db.set_meta(META_PENDING, json.dumps(pending, sort_keys=True))
        run_id = db.start_run(
            mode="resume" if mode == "resume" else ("topup" if mode == "topup" else "full"),
            shard=self.key.shard,
            api_base_host=client.host,
            selection=list(opts.selection),
        )
        result = DownloadResult(
            run_id=run_id,
            mode=mode,
            outcome="running",
            staging_path=str(opts.staging_path),
            shard=self.key.shard,
            account_name=None,
        )
        try:
            await self._download(
                db, client, run_id, user_page.data, settings, pending, selected, result
            )
        except BaseException as exc:
            # Parallel walks raise a group: judge (and record) the error inside it.
            cause = _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
            outcome: Outcome = "interrupted"
            if isinstance(cause, SetupError | ClinikoError) and not _is_transient(cause):
                outcome = "failed"
            self._finish(db, client, result, outcome, error=_safe_error(cause or exc))
            raise
        final: Outcome = "complete" if not result.failed_lists else "failed"
        self._finish(db, client, result, final)
        if final == "complete":
            db.clear_checkpoints(f"{pending['scope']}:", prefix=True)
            db.set_meta(META_LAST_COMPLETE, pending["started"])
            db.delete_meta(META_PENDING)
        return result

    def _finish(
        self,
        db: StagingDB,
        client: ClinikoClient,
        result: DownloadResult,
        outcome: Outcome,
        error: str | None = None,
    ) -> None:
        stats = client.stats
        result.outcome = outcome
        result.error = error
        result.requests = stats.requests_sent
        result.retries = stats.retries
        result.rate_limited = stats.rate_limited
        result.records = self.records
        result.quarantined = self.quarantined
        result.seconds = time.monotonic() - self.started
        result.lists = [w.result for w in self.walks if w.result is not None]
        counters = RunCounters(
            requests=result.requests,
            retries=result.retries,
            rate_limited=result.rate_limited,
            records=result.records,
            quarantined=result.quarantined,
        )
        db.finish_run(result.run_id, outcome, counters, error=error)
        self.sink(
            RunFinished(
                run_id=result.run_id,
                outcome=outcome,
                requests=result.requests,
                retries=result.retries,
                rate_limited=result.rate_limited,
                records=result.records,
                quarantined=result.quarantined,
                seconds=result.seconds,
                error=error,
            )
        )

    async def _download(
        self,
        db: StagingDB,
        client: ClinikoClient,
        run_id: int,
        user: dict[str, Any],
        settings: dict[str, Any],
        pending: dict[str, Any],
        selected: Sequence[Resource],
        result: DownloadResult,
    ) -> None:
        scope = pending["scope"]
        since: str | None = pending.get("since")
        db.set_single(BY_NAME["user"], user, run_id)
        db.set_single(BY_NAME["settings"], settings, run_id)
        account = settings.get("account") if isinstance(settings.get("account"), dict) else {}
        assert isinstance(account, dict)
        result.account_name = account.get("name") if isinstance(account.get("name"), str) else None
        db.set_meta("shard", self.key.shard)
        if result.account_name:
            db.set_meta("account_name", result.account_name)
        if isinstance(account.get("time_zone"), str):
            db.set_meta("time_zone", account["time_zone"])

        units = _units(db, scope)
        lists = list_variants(selected)
        self.walks = [_Walk(r, v, r.variant_path(v)) for r, v in lists]
        self.sink(
            RunStarted(
                run_id=run_id,
                mode=result.mode,
                staging_path=str(self.opts.staging_path),
                lists=len(self.walks),
            )
        )
        # Lists nested below another resource's rows (reference numbers per practitioner)
        # start as soon as their parents' lists are walked, inside the same phase, so the
        # request budget never idles waiting for them. Parents staged by an earlier
        # (interrupted) run are read now, while nothing else uses the file.
        nested = {
            r.name: (r, set(db.ids_updated_since(r.per_parent, since)))
            for r in selected
            if r.per_parent
        }
        # A top-up cannot filter referral sources by date (they have no updated_at), so rather
        # than re-read the whole list it asks, patient by patient, for those of the patients
        # that changed, whenever that is the cheaper of the two.
        referral_pages = 0
        if since and any(w.resource.name == "referral_sources" for w in self.walks):
            staged = db.count_rows("referral_sources")
            referral_pages = max(1, math.ceil(staged / PER_PAGE))
            self.walks = [w for w in self.walks if w.resource.name != "referral_sources"]
            # Patients this top-up staged before an interruption count as changed too.
            self._changed_patients = set(db.ids_updated_since("patients", since))
        await self._phase(
            run_id, client, scope, since, pending["started"], units, nested, referral_pages
        )
        result.lists = [w.result for w in self.walks if w.result is not None]

    async def _phase(
        self,
        run_id: int,
        client: ClinikoClient,
        scope: str,
        since: str | None,
        started: str,
        units: dict[tuple[str, str], dict[str, tuple[str, bool]]],
        nested: dict[str, tuple[Resource, set[str]]],
        referral_pages: int = 0,
    ) -> None:
        """Walk every list in parallel; return once every page is committed.

        `referral_pages` > 0 (top-ups only): referral sources were left out of the walks and
        are fetched per changed patient, or whole if that costs fewer than this many requests.
        """
        send, receive = anyio.create_memory_object_stream[tuple[_Walk, PageOut]](256)
        ticker = anyio.CancelScope()
        parents = {r.per_parent for r, _ids in nested.values() if r.per_parent}
        if referral_pages:
            parents.add("patients")
        waiting = {p: sum(1 for w in self.walks if w.resource.name == p) for p in parents}
        ready = {p: anyio.Event() for p in parents}
        seen: dict[str, set[str]] = {p: set() for p in parents}

        async def walk_list(walk: _Walk, tg: TaskGroup) -> None:
            await self._walk(
                client, walk, since, started, units, send, seen.get(walk.resource.name)
            )
            name = walk.resource.name
            if name in waiting:
                waiting[name] -= 1
                if waiting[name] == 0:
                    ready[name].set()

        async def walk_nested(resource: Resource, prior: set[str], tg: TaskGroup) -> None:
            parent = BY_NAME[resource.per_parent or ""]
            await ready[parent.name].wait()
            for pid in sorted(prior | seen[parent.name], key=int):
                walk = _Walk(resource, "active", f"{parent.path}/{pid}{resource.path}", pid)
                self.walks.append(walk)
                tg.start_soon(self._walk, client, walk, None, started, units, send, None)

        async def referral_sources(tg: TaskGroup) -> None:
            await ready["patients"].wait()
            resource = BY_NAME["referral_sources"]
            changed = sorted(seen["patients"] | self._changed_patients, key=int)
            if len(changed) >= referral_pages:
                walk = _Walk(resource, "active", resource.path)
                self.walks.append(walk)
                tg.start_soon(self._walk, client, walk, None, started, units, send, None)
                return
            for pid in changed:
                walk = _Walk(resource, "active", f"/patients/{pid}/referral_source", pid)
                self.walks.append(walk)
                tg.start_soon(self._fetch_one, client, walk, send)

        async with anyio.create_task_group() as outer:
            outer.start_soon(self._writer, receive, run_id, scope)
            outer.start_soon(self._ticker, client, ticker)
            try:
                async with send, anyio.create_task_group() as tg:
                    if referral_pages:
                        tg.start_soon(referral_sources, tg)
                    for parent in parents:
                        if waiting[parent] == 0:
                            ready[parent].set()
                    for walk in list(self.walks):
                        tg.start_soon(walk_list, walk, tg)
                    for resource, prior in nested.values():
                        tg.start_soon(walk_nested, resource, prior, tg)
            finally:
                ticker.cancel()

    async def _fetch_one(
        self,
        client: ClinikoClient,
        walk: _Walk,
        send: ObjectSendStream[tuple[_Walk, PageOut]],
    ) -> None:
        """One record at a path of its own (a patient's referral source); 404 means none."""
        walk.result = ListResult(walk.resource.name, walk.variant)
        try:
            records = [(await client.get(walk.path)).data]
        except ClientRequestError as exc:
            if exc.status != 404:
                walk.result.error = _safe_error(exc)
                return
            records = []
        walk.result.pages, walk.result.records = 1, len(records)
        await send.send((walk, PageOut(records, "one", "{}", True)))

    async def _settings(self, client: ClinikoClient) -> dict[str, Any]:
        try:
            return (await client.get("/settings")).data
        except PermissionDenied:
            # Keys of users who may not view settings can still read the public part.
            self.sink(
                Notice(
                    level="warning",
                    message="the key may not read /settings; using /settings/public",
                    resource="settings",
                )
            )
            return (await client.get("/settings/public")).data

    async def _ticker(self, client: ClinikoClient, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await anyio.sleep(self.opts.stats_every_s)
                self.sink(self._stats_event(client))

    async def _walk(
        self,
        client: ClinikoClient,
        walk: _Walk,
        since: str | None,
        started: str,
        units: dict[tuple[str, str], dict[str, tuple[str, bool]]],
        send: ObjectSendStream[tuple[_Walk, PageOut]],
        collect_ids: set[str] | None,
    ) -> None:
        resource = walk.resource
        filters: list[str] = []
        if since and resource.incremental:
            filters.append(f"updated_at:>={since}")

        async def fetch(path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
            return (await client.get(path, params)).data

        async def on_page(page: PageOut) -> None:
            if collect_ids is not None:
                for record in page.records:
                    # A record without a usable id is the writer's to quarantine.
                    with contextlib.suppress(AttributeError, TypeError, ValueError):
                        collect_ids.add(norm_id(record.get("id")))
            await send.send((walk, page))

        mine = {
            unit[len(walk.scope_tag) :]: value
            for unit, value in units.get((resource.name, walk.variant), {}).items()
            if unit.startswith(walk.scope_tag) and (walk.parent or "|" not in unit)
        }
        walk.crawl = ListCrawl(
            fetch=fetch,
            path=walk.path,
            list_key=resource.name,
            key=resource.keyset,
            on_page=on_page,
            filters=filters,
            units=mine,
            parallel=self.opts.parallel,
            on_progress=lambda _crawl: self._progress(walk),
            created_before=_created_before(started) if resource.keyset == "created_at" else None,
        )
        walk.result = ListResult(resource.name, walk.variant)
        self._by_path[urlsplit(client.base_url).path.rstrip("/") + walk.path] = walk
        began = time.monotonic()
        try:
            await walk.crawl.run()
        except (ClientRequestError, CrawlError) as exc:
            # One list the account cannot give (an endpoint missing on this shard, a page
            # that makes no progress) must not sink the others; the run reports it and a
            # rerun retries just this list.
            walk.result.error = _safe_error(exc)
            self.sink(Notice(level="warning", message=walk.result.error, resource=resource.name))
        finally:
            walk.result.pages = walk.crawl.pages_done
            walk.result.records = walk.crawl.records_done
            walk.result.expected = walk.crawl.records_expected
            walk.result.seconds = time.monotonic() - began
        if walk.result.error is None:
            self._progress(walk, done=True)


def _created_before(started: str) -> str:
    """The bound for created_at walks: one second past the run's start, because the server's
    clock has whole seconds and a row created in that same second must not wait for the next
    top-up. Rows created inside that second can only make the tie checks more careful."""
    return _iso(_parse_iso(started) + timedelta(seconds=1))


def _units(db: StagingDB, scope: str) -> dict[tuple[str, str], dict[str, tuple[str, bool]]]:
    """Checkpoints of an interrupted run, per list: unit -> (state, done)."""
    units: dict[tuple[str, str], dict[str, tuple[str, bool]]] = {}
    prefix = f"{scope}:"
    for full_scope, by_list in db.checkpoints_under(prefix).items():
        unit = full_scope[len(prefix) :]
        for list_key, saved in by_list.items():
            units.setdefault(list_key, {})[unit] = (saved.state, saved.done)
    return units


def _first_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The error that stopped a run, out of a (possibly nested) exception group."""
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        item = todo.pop(0)
        if isinstance(item, BaseExceptionGroup):
            todo.extend(item.exceptions)
        else:
            leaves.append(item)
    errors = [e for e in leaves if isinstance(e, Exception)]
    for error in errors:
        if isinstance(error, ClinikoError | StagingError):
            return error
    return errors[0] if errors else None


def _is_transient(exc: BaseException) -> bool:
    from engine.cliniko import NetworkError, RateLimited, ServerError, TLSFailure

    if isinstance(exc, TLSFailure):
        return False
    return isinstance(exc, NetworkError | ServerError | RateLimited)


def _safe_error(exc: BaseException) -> str:
    """An error message fit for logs and the staging file: exception text carries paths and
    statuses only (the client never puts keys or record contents in its errors)."""
    text = str(exc) or type(exc).__name__
    return text[:500]


async def download(key: ApiKey, opts: DownloadOptions, sink: EventSink = discard) -> DownloadResult:
    """Download (or resume, or top up) the selected parts of a clinic into the staging file."""
    return await Download(key, opts, sink).run()


def expected_requests(counts: dict[tuple[str, str], int]) -> int:
    """The minimum requests a full download of lists with these sizes costs: one per page
    (at least one per list), plus /user and /settings."""
    return 2 + sum(max(1, math.ceil(n / PER_PAGE)) for n in counts.values())


def download_result_json(result: DownloadResult) -> dict[str, Any]:
    """The `download --json` document: per list and in total."""
    per_resource: dict[str, dict[str, Any]] = {}
    for item in result.lists:
        entry = per_resource.setdefault(
            item.resource,
            {
                "resource": item.resource,
                "records": 0,
                "pages": 0,
                "requests": 0,
                "retries": 0,
                "rate_limited": 0,
                "seconds": 0.0,
                "variants": [],
                "errors": [],
            },
        )
        entry["records"] += item.records
        entry["pages"] += item.pages
        entry["requests"] += item.pages + item.retries + item.rate_limited
        entry["retries"] += item.retries
        entry["rate_limited"] += item.rate_limited
        entry["seconds"] = round(max(entry["seconds"], item.seconds), 3)
        if item.variant not in entry["variants"]:
            entry["variants"].append(item.variant)
        if item.error:
            entry["errors"].append({"variant": item.variant, "error": item.error})
    return {
        "run_id": result.run_id,
        "mode": result.mode,
        "outcome": result.outcome,
        "staging_path": result.staging_path,
        "shard": result.shard,
        "account_name": result.account_name,
        "resources": list(per_resource.values()),
        "totals": {
            "records": result.records,
            "requests": result.requests,
            "retries": result.retries,
            "rate_limited": result.rate_limited,
            "quarantined": result.quarantined,
            "seconds": round(result.seconds, 3),
        },
        "error": result.error,
    }
