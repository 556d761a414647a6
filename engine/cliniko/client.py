"""`ClinikoClient`: authenticated, rate-limited, retried GETs that return parsed JSON pages.

Every attempt waits for the shared `RateLimiter`; failures go through the `RetryPolicy`.
Logging (logger "cliniko_switch.client") carries only paths, statuses and counts: never the key,
a name, or anything from a response body.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import httpx

from engine.cliniko.errors import ForeignURL
from engine.cliniko.keys import ApiKey, validate_api_url
from engine.cliniko.ratelimit import RateLimiter
from engine.cliniko.retry import Decision, Outcome, RetryPolicy
from engine.cliniko.transport import GetOnlyTransport, origin_of

LOG = logging.getLogger("cliniko_switch.client")

DEFAULT_USER_AGENT = "cliniko-switch (migrations@mynewclinic.example)"

# An X-RateLimit-Reset below this is read as "seconds from now" rather than a Unix time.
_EPOCH_FLOOR = 1_000_000_000


@dataclass(frozen=True)
class Page:
    """One successful response."""

    data: dict[str, Any]
    """The parsed JSON object."""
    status: int
    server_date: datetime | None
    """The response's Date header (aware, UTC), or None when absent or unreadable."""
    url: str
    """The URL that was fetched, with its query."""


EventKind = Literal["request_done", "retry", "rate_limited"]


@dataclass(frozen=True)
class ClientEvent:
    """Progress from the client, for the extract engine to render or count."""

    kind: EventKind
    path: str
    """URL path, without the query."""
    status: int | None
    """HTTP status, or None when the attempt failed without a response."""
    attempt: int
    """1 for the first send of a request, 2 for the first retry, ..."""
    wait_s: float
    """request_done: time waited on the limiter; retry: the backoff about to be slept;
    rate_limited: how long the limiter now holds every task."""
    reason: str = ""
    """Short classification ("503", "timeout", "dropped", "not-json", ...)."""


@dataclass
class ClientStats:
    requests_sent: int = 0
    responses_by_status: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    """Attempts repeated after a failure (429s not included)."""
    rate_limited: int = 0
    """429 responses."""
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    limiter_wait_s: float = 0.0
    bytes_received: int = 0

    def snapshot(self) -> ClientStats:
        return replace(
            self,
            responses_by_status=Counter(self.responses_by_status),
            failures_by_reason=Counter(self.failures_by_reason),
        )


def _server_date(response: httpx.Response) -> datetime | None:
    raw = response.headers.get("date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _reset_header(response: httpx.Response) -> float | None:
    raw = response.headers.get("x-ratelimit-reset")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value == value and value >= 0 else None  # drop NaN


class ClinikoClient:
    """Use `ClinikoClient.create(...)`, as an async context manager."""

    def __init__(
        self,
        key: ApiKey,
        *,
        base_url: str,
        limiter: RateLimiter,
        transport: GetOnlyTransport,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> None:
        self.base_url = validate_api_url(base_url)
        self._base = httpx.URL(self.base_url)
        self._origin = origin_of(self._base)
        self._base_path = self._base.path.rstrip("/")
        self.limiter = limiter
        self.retry = RetryPolicy() if retry is None else retry
        self.on_event = on_event
        self.stats = ClientStats()
        self._transport = transport
        self._http = httpx.AsyncClient(
            transport=transport,
            auth=httpx.BasicAuth(key.reveal(), ""),
            headers={"Accept": "application/json", "User-Agent": user_agent},
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def create(
        cls,
        key: ApiKey,
        *,
        base_url: str,
        limiter: RateLimiter,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> ClinikoClient:
        """A client for `base_url` (see `base_url_for`); TLS is always verified."""
        base = validate_api_url(base_url)
        transport = GetOnlyTransport(api_origin=origin_of(base), max_connections=max_connections)
        return cls(
            key,
            base_url=base,
            limiter=limiter,
            transport=transport,
            user_agent=user_agent,
            timeout=timeout,
            retry=retry,
            on_event=on_event,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def host(self) -> str:
        return self._base.host

    def resolve(self, path_or_url: str) -> httpx.URL:
        """The URL for a path below base_url ("/patients"), or a checked absolute URL.

        Absolute URLs (such as `links.next`) must have base_url's scheme, host and port, and a
        path below base_url's; otherwise `ForeignURL` is raised and nothing is sent.
        """
        candidate = httpx.URL(path_or_url)
        if candidate.is_absolute_url:
            url = candidate
        else:
            url = httpx.URL(f"{self.base_url}/{path_or_url.lstrip('/')}")
        path = url.path
        below_base = path == self._base_path or path.startswith(self._base_path + "/")
        if origin_of(url) != self._origin or not below_base:
            raise ForeignURL(
                f"Refused to follow a link to {url.scheme}://{url.host}{path}: "
                f"it is not below {self.base_url}.",
                path=path,
            )
        return url

    def _emit(self, event: ClientEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def get(self, path_or_url: str, params: Sequence[tuple[str, str]] | None = None) -> Page:
        """GET one JSON object, waiting for the limiter before every attempt.

        Raises a `ClinikoError` subclass: `AuthError`, `PermissionDenied`,
        `ClientRequestError`, `ServerError`, `NetworkError`, `TLSFailure`, `BadResponse`,
        `RateLimited` or `ForeignURL`.
        """
        url = self.resolve(path_or_url)
        request = self._http.build_request("GET", url, params=list(params) if params else None)
        path = request.url.path
        target = request.url.raw_path.decode("ascii", "replace")
        attempts = self.retry.attempts()
        attempt = 0
        while True:
            attempt += 1
            waited = await self.limiter.acquire()
            self.stats.limiter_wait_s += waited
            self.stats.requests_sent += 1
            response: httpx.Response | None = None
            try:
                response = await self._http.send(request)
            except httpx.HTTPError as exc:
                decision = self.retry.classify_exception(exc, target=target, host=self.host)
            else:
                self.stats.bytes_received += response.num_bytes_downloaded
                self.stats.responses_by_status[response.status_code] += 1
                decision = self.retry.classify_status(
                    response.status_code,
                    target=target,
                    host=self.host,
                    location=response.headers.get("location"),
                )
                if decision.outcome is Outcome.OK:
                    data, why = self._parse(response)
                    if data is not None:
                        status = response.status_code
                        LOG.debug("GET %s -> %d (attempt %d)", path, status, attempt)
                        self._emit(ClientEvent("request_done", path, status, attempt, waited))
                        return Page(data, status, _server_date(response), str(request.url))
                    decision = self.retry.bad_body(target, why, status=response.status_code)
            status_or_none = None if response is None else response.status_code
            if decision.outcome is not Outcome.FATAL:
                self.stats.failures_by_reason[decision.reason] += 1
            if decision.outcome is Outcome.RATE_LIMITED:
                assert response is not None
                self.stats.rate_limited += 1
                attempts.after(decision)  # raises RateLimited past the generous cap
                block = self._block(response)
                LOG.warning("GET %s -> 429; every request waits %.1f s", path, block)
                self._emit(ClientEvent("rate_limited", path, 429, attempt, block, decision.reason))
                continue
            self._log_failure(path, decision, attempt)
            backoff = attempts.after(decision)  # raises when fatal or out of attempts
            self.stats.retries += 1
            self._emit(
                ClientEvent("retry", path, status_or_none, attempt, backoff, decision.reason)
            )
            await anyio.sleep(backoff)

    @staticmethod
    def _parse(response: httpx.Response) -> tuple[dict[str, Any] | None, str]:
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            return None, "invalid JSON"
        if not isinstance(data, dict):
            return None, f"JSON {type(data).__name__}, not an object"
        return data, ""

    def _block(self, response: httpx.Response) -> float:
        """Hold the shared limiter after a 429; return the wait."""
        reset = _reset_header(response)
        if reset is None:
            return self.limiter.block_for(self.limiter.window_s)
        if reset < _EPOCH_FLOOR:
            return self.limiter.block_for(reset)
        date = _server_date(response)
        server_now = None if date is None else date.timestamp()
        return self.limiter.block_until(reset, server_now=server_now)

    @staticmethod
    def _log_failure(path: str, decision: Decision, attempt: int) -> None:
        if decision.outcome is Outcome.FATAL:
            LOG.warning("GET %s failed: %s (attempt %d)", path, decision.reason, attempt)
        else:
            LOG.info("GET %s: %s, retrying (attempt %d)", path, decision.reason, attempt)
