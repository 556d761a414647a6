"""The sandbox's HTTP side: an aiohttp application that answers like Cliniko's API.

Every request goes through the same steps, in this order (API-FACTS.md sections 1-5):

1. counted in the stats (method, path), then refused with 405 unless it is a GET;
2. `User-Agent` must look like `NAME (EMAIL)`, else 400;
3. HTTP Basic with the API key (see `sandbox.auth`), else 401;
4. the per-key rate limit (see `sandbox.ratelimit`): counted here, 429 when over;
5. latency with jitter (asyncio.sleep), also before a 429;
6. a restricted key gets 403 everywhere but `/v1/user`;
7. routing (unknown path: 404), then injected faults (list and record routes only), then
   `page`/`per_page` (400 when not integers) and the store's answer (QueryError: 400,
   NotFound: 404).

Nothing here knows how the clinic is generated: it asks a `ClinicStore`.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlencode

from aiohttp import web

from sandbox.auth import KeyRing
from sandbox.faults import Fault, FaultInjector, FaultSpec
from sandbox.ratelimit import FixedWindowLimiter
from sandbox.store import NotFound, QueryError

JSONDict = dict[str, Any]

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
VARIANTS: tuple[str, ...] = ("archived", "deleted", "cancelled", "inactive")

USER_AGENT_RE = re.compile(r"^\s*\S.*?\s*\(\s*[^\s()@]+@[^\s()@]+\.[^\s()@]+\s*\)\s*$")

_RESOURCE = r"[a-z][a-z_]*"
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("user", re.compile(r"^/v1/user$")),
    ("settings", re.compile(r"^/v1/settings(?P<public>/public)?$")),
    (
        "reference_numbers",
        re.compile(r"^/v1/practitioners/(?P<id>\d+)/practitioner_reference_numbers$"),
    ),
    ("referral_source", re.compile(r"^/v1/patients/(?P<id>\d+)/referral_source$")),
    ("list", re.compile(rf"^/v1/(?P<resource>{_RESOURCE})$")),
    (
        "variant",
        re.compile(rf"^/v1/(?P<resource>{_RESOURCE})/(?P<variant>{'|'.join(VARIANTS)})$"),
    ),
    ("record", re.compile(rf"^/v1/(?P<resource>{_RESOURCE})/(?P<id>\d+)$")),
)
# Routes that injected faults apply to: lists and records (not /user, /settings).
FAULTY_ROUTES = frozenset({"list", "variant", "record", "reference_numbers", "referral_source"})


class StoreAPI(Protocol):
    """What the server needs from `sandbox.store.ClinicStore` (a fake in unit tests)."""

    shard: str

    def has_list(self, resource: str, variant: str) -> bool: ...

    def list_page(
        self,
        resource: str,
        variant: str,
        q: list[str],
        sort: str | None,
        order: str | None,
        page: int,
        per_page: int,
        base_url: str,
    ) -> tuple[list[JSONDict], int]: ...

    def get_one(self, resource: str, record_id: int, base_url: str) -> JSONDict: ...

    def user(self, base_url: str) -> JSONDict: ...

    def settings(self, base_url: str, *, public: bool = False) -> JSONDict: ...

    def practitioner_reference_numbers(
        self, practitioner_id: int, page: int, per_page: int, base_url: str
    ) -> tuple[list[JSONDict], int]: ...

    def referral_source(self, patient_id: int, base_url: str) -> JSONDict: ...


# --------------------------------------------------------------------------------------- stats


class RequestLogEntry(NamedTuple):
    """One request as the sandbox saw it. `status` 0 = connection dropped (fault `reset`)."""

    monotonic: float
    wall: float
    method: str
    path: str
    """Path with query string, as sent."""
    status: int


@dataclass(frozen=True)
class StatsSnapshot:
    total: int
    by_method: dict[str, int]
    non_get: int
    by_status: dict[int, int]
    by_path: dict[str, int]
    rate_limited: int
    """Every 429 answered: the rate limit's and injected bursts'."""
    faults: dict[str, int]
    """Requests affected by each injected fault kind (each 429 of a burst counts)."""
    log: list[RequestLogEntry] = field(repr=False)


class SandboxStats:
    """What the sandbox served. Thread-safe: the server writes, tests and benchmarks read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_method: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_path: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._log: list[RequestLogEntry] = []

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_method.clear()
            self._by_status.clear()
            self._by_path.clear()
            self._faults.clear()
            self._log.clear()

    def arrived(self, method: str, path: str) -> None:
        with self._lock:
            self._total += 1
            self._by_method[method] += 1
            self._by_path[path] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def finished(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._by_status[entry.status] += 1
            self._log.append(entry)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                total=self._total,
                by_method=dict(self._by_method),
                non_get=self._total - self._by_method.get("GET", 0),
                by_status=dict(self._by_status),
                by_path=dict(self._by_path),
                rate_limited=self._by_status.get(429, 0),
                faults=dict(self._faults),
                log=list(self._log),
            )

    # Convenience readers: each takes the lock and returns a copy.
    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    @property
    def by_method(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_method)

    @property
    def non_get(self) -> int:
        with self._lock:
            return self._total - self._by_method.get("GET", 0)

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_path(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_path)

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self._by_status.get(429, 0)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def log(self) -> list[RequestLogEntry]:
        with self._lock:
            return list(self._log)


# ------------------------------------------------------------------------------------- latency


class Latency:
    """Added delay per request: `latency_ms` +/- uniform jitter (default 20% of latency)."""

    def __init__(self, latency_ms: float = 0.0, jitter_ms: float | None = None, seed: int = 0):
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._latency_ms = 0.0
        self._jitter_ms = 0.0
        self.configure(latency_ms, jitter_ms)

    def configure(self, latency_ms: float, jitter_ms: float | None = None) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, not {latency_ms}")
        jitter = 0.2 * latency_ms if jitter_ms is None else jitter_ms
        if jitter < 0:
            raise ValueError(f"jitter_ms must be >= 0, not {jitter_ms}")
        with self._lock:
            self._latency_ms = float(latency_ms)
            self._jitter_ms = float(jitter)

    @property
    def setting(self) -> tuple[float, float]:
        with self._lock:
            return self._latency_ms, self._jitter_ms

    def draw_s(self) -> float:
        with self._lock:
            if self._latency_ms <= 0 and self._jitter_ms <= 0:
                return 0.0
            ms = self._latency_ms + self._rng.uniform(-self._jitter_ms, self._jitter_ms)
        return max(0.0, ms) / 1000.0


# -------------------------------------------------------------------------------------- server


class _Dropped(Exception):
    """The connection was dropped on purpose; there is no response."""


def _json(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(status, {"errors": message}, headers)


def _server_error(status: int) -> web.Response:
    """An injected 5xx: JSON from the app for 500, an HTML page from the 'proxy' otherwise."""
    if status == 500:
        return _error(500, "Internal Server Error (injected by the sandbox)")
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Server Error")
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
    )
    return web.Response(status=status, text=html, content_type="text/html")


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw.strip()):
        raise QueryError(f"{name} must be a positive integer, not {raw!r}")
    value = int(raw)
    if value < 1:
        raise QueryError(f"{name} must be at least 1, not {value}")
    return value


class SandboxServer:
    """The application and the mutable state it serves from.

    `base_url` (`http://127.0.0.1:<port>/v1`) is set once the socket is bound; links in
    responses are absolute against it.
    """

    def __init__(
        self,
        store: StoreAPI,
        *,
        shard: str = "au1",
        keys: KeyRing | None = None,
        rate_limit: tuple[int, float] = (200, 60.0),
        latency_ms: float = 0.0,
        jitter_ms: float | None = None,
        faults: FaultSpec | str = "",
        stats: SandboxStats | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.shard = shard
        self.keys = keys if keys is not None else KeyRing(shard)
        self.limiter = FixedWindowLimiter(*rate_limit)
        self.latency = Latency(latency_ms, jitter_ms)
        self.faults = FaultInjector(faults)
        self.stats = stats if stats is not None else SandboxStats()
        self.origin = "http://127.0.0.1"
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def set_origin(self, host: str, port: int) -> None:
        self.origin = f"http://{host}:{port}"

    def make_app(self) -> web.Application:
        """The application. It has no routes: one middleware answers every request, so even
        requests aiohttp's router could not match (`CONNECT host:443`, `OPTIONS *`) are
        counted and refused here."""

        @web.middleware
        async def everything(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            return await self.handle(request)

        return web.Application(middlewares=[everything], client_max_size=64 * 1024)

    # -------------------------------------------------------------------------- request flow

    async def handle(self, request: web.Request) -> web.StreamResponse:
        t_mono, t_wall = time.monotonic(), time.time()
        method = request.method.upper()
        path = request.path
        self.stats.arrived(method, path)
        status = 0
        try:
            response = await self._respond(request, method, path)
            status = response.status
            return response
        except _Dropped:
            # The transport is already aborted; aiohttp has nowhere to write this.
            raise web.HTTPInternalServerError() from None
        except Exception:
            status = 500  # a bug (in the store, most likely): aiohttp logs it and answers 500
            raise
        finally:
            self.stats.finished(RequestLogEntry(t_mono, t_wall, method, request.path_qs, status))

    async def _respond(self, request: web.Request, method: str, path: str) -> web.Response:
        if method != "GET":
            return _error(
                405,
                f"{method} is not allowed: this API is read-only here, only GET is accepted",
                {"Allow": "GET"},
            )
        agent = request.headers.get("User-Agent", "")
        if not USER_AGENT_RE.match(agent):
            return _error(
                400,
                "a User-Agent header of the form 'APP_VENDOR_NAME (APP_VENDOR_EMAIL)' is "
                f"required, e.g. 'cliniko-switch (ops@example.org)'; got {agent!r}",
            )
        auth = self.keys.check_header(request.headers.get("Authorization"))
        if not auth.ok:
            return _error(
                auth.status, auth.error, {"WWW-Authenticate": 'Basic realm="Cliniko API"'}
            )
        decision = self.limiter.hit(auth.key_id)
        delay = self.latency.draw_s()
        if delay > 0:
            await self._sleep(delay)
        if not decision.allowed:
            return _error(
                429,
                "too many requests: the rate limit for this user is exceeded; retry after "
                "the time in X-RateLimit-Reset",
                {"X-RateLimit-Reset": str(decision.reset_epoch)},
            )
        if auth.role == "restricted" and path != "/v1/user":
            return _error(403, "the user behind this API key does not have permission")

        route, params = self._route(path)
        if route is None:
            return _error(404, f"not found: {path}")
        if route in FAULTY_ROUTES:
            fault = self.faults.decide(auth.key_id)
            if fault is not None:
                response = await self._apply_fault(request, fault)
                if response is not None:
                    return response
        try:
            return self._answer(request, route, params)
        except QueryError as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            message = str(exc) or f"not found: {path}"
            return _error(404, message)

    def _route(self, path: str) -> tuple[str | None, dict[str, str]]:
        for name, pattern in _ROUTES:
            m = pattern.match(path)
            if m is None:
                continue
            params = m.groupdict()
            if name in ("list", "variant"):
                variant = params.get("variant") or "active"
                if not self.store.has_list(params["resource"], variant):
                    return None, {}
                params["variant"] = variant
            return name, params
        return None, {}

    async def _apply_fault(self, request: web.Request, fault: Fault) -> web.Response | None:
        self.stats.fault(fault.kind)
        if fault.kind == "5xx":
            return _server_error(fault.status)
        if fault.kind == "burst429":
            return _error(
                429,
                "too many requests: the rate limit for this user is exceeded; retry after "
                "the time in X-RateLimit-Reset",
                {"X-RateLimit-Reset": str(fault.reset_epoch)},
            )
        if fault.kind == "reset":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise _Dropped
        # slow: wait, then answer normally
        await self._sleep(fault.delay_s)
        return None

    def _answer(self, request: web.Request, route: str, params: dict[str, str]) -> web.Response:
        base = self.base_url
        store = self.store
        query = request.query
        if route == "user":
            return _json(200, store.user(base))
        if route == "settings":
            return _json(200, store.settings(base, public=bool(params.get("public"))))
        if route == "record":
            return _json(200, store.get_one(params["resource"], int(params["id"]), base))
        if route == "referral_source":
            return _json(200, store.referral_source(int(params["id"]), base))

        page = _int_param(query, "page", 1)
        per_page = min(_int_param(query, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        if route == "reference_numbers":
            key = "practitioner_reference_numbers"
            records, total = store.practitioner_reference_numbers(
                int(params["id"]), page, per_page, base
            )
        else:
            key = params["resource"]
            filters = [v for k, v in query.items() if k in ("q[]", "q")]
            records, total = store.list_page(
                key,
                params["variant"],
                filters,
                query.get("sort"),
                query.get("order"),
                page,
                per_page,
                base,
            )
        links = self._links(request, page, per_page, total)
        return _json(200, {key: records, "total_entries": total, "links": links})

    def _links(self, request: web.Request, page: int, per_page: int, total: int) -> dict[str, str]:
        pairs = list(request.query.items())

        def url(p: int) -> str:
            return f"{self.origin}{request.rel_url.raw_path}?{_with_page(pairs, p)}"

        links = {"self": url(page)}
        if page * per_page < total:
            links["next"] = url(page + 1)
        if page > 1:
            links["previous"] = url(page - 1)
        return links


def _with_page(pairs: Sequence[tuple[str, str]], page: int) -> str:
    """The query string of `pairs` with `page` set (in place, or first when absent)."""
    out: list[tuple[str, str]] = []
    seen = False
    for k, v in pairs:
        if k == "page":
            if not seen:
                out.append(("page", str(page)))
                seen = True
            continue
        out.append((k, v))
    if not seen:
        out.insert(0, ("page", str(page)))
    return urlencode(out, quote_via=quote, safe="")
