"""The Cliniko client against the sandbox over real sockets.

Every assertion is on counts and ordering (what the sandbox saw, what the client counted),
never on wall-clock speed: the suite runs on small, noisy machines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from engine.cliniko import (
    AuthError,
    ClientEvent,
    ClinikoClient,
    ClinikoError,
    ForeignURL,
    NetworkError,
    PermissionDenied,
    RateLimiter,
    RetryPolicy,
    WriteRefused,
    parse_key,
)
from sandbox.runner import SandboxHandle

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

USER_AGENT = "cliniko-switch-tests (tests@example.org)"
# Small backoff so retries cost milliseconds; enough attempts that a seeded fault sequence
# never exhausts them (the sandbox's faults are drawn from a seeded random sequence).
FAST = RetryPolicy(max_attempts=12, base_s=0.005, cap_s=0.05)


def client_for(
    handle: SandboxHandle,
    key: str | None = None,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy = FAST,
    timeout: float = 10.0,
    on_event: Callable[[ClientEvent], None] | None = None,
) -> ClinikoClient:
    return ClinikoClient.create(
        parse_key(handle.api_key if key is None else key),
        base_url=handle.base_url,
        limiter=RateLimiter(10_000, 1.0) if limiter is None else limiter,
        retry=retry,
        timeout=timeout,
        user_agent=USER_AGENT,
        on_event=on_event,
    )


# --- auth -----------------------------------------------------------------------------------


async def test_auth_with_and_without_the_shard_suffix(sandbox: SandboxHandle) -> None:
    assert sandbox.api_key.endswith(f"-{sandbox.shard}")
    bare = sandbox.api_key.rsplit("-", 1)[0]
    for key in (sandbox.api_key, bare):
        async with client_for(sandbox, key) as client:
            page = await client.get("/user")
        assert page.status == 200
        assert page.data  # a JSON object
        assert page.server_date is not None
        assert page.server_date.tzinfo is not None
    assert parse_key(bare).shard == "au1"
    assert sandbox.stats.by_status == {200: 2}


async def test_unknown_key_is_an_auth_error(sandbox: SandboxHandle) -> None:
    unknown = "x" * 32 + f"-{sandbox.shard}"
    async with client_for(sandbox, unknown) as client:
        with pytest.raises(AuthError) as info:
            await client.get("/patients")
    assert "My Info → Manage API keys" in info.value.hint
    assert unknown not in str(info.value)
    assert sandbox.stats.by_status == {401: 1}  # fatal: not retried


async def test_revoked_key_is_an_auth_error(sandbox: SandboxHandle) -> None:
    key = sandbox.keys.add_key("administrator")
    async with client_for(sandbox, key) as client:
        await client.get("/user")
        sandbox.keys.revoke(key)
        with pytest.raises(AuthError) as info:
            await client.get("/user")
    assert "revoked" in str(info.value)
    assert key not in str(info.value)


async def test_restricted_key_is_permission_denied(sandbox: SandboxHandle) -> None:
    key = sandbox.keys.add_key("restricted")
    async with client_for(sandbox, key) as client:
        await client.get("/user")  # a restricted key may still read its own user
        with pytest.raises(PermissionDenied) as info:
            await client.get("/patients")
    assert "administrator" in info.value.hint
    assert info.value.status == 403
    assert sandbox.stats.by_status == {200: 1, 403: 1}


async def test_unreachable_port_is_a_network_error(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    gone = make_sandbox()
    gone.stop()  # nothing listens on its port any more
    retry = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)
    async with client_for(gone, retry=retry) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("/user")
    assert "VPN" in info.value.hint
    assert client.stats.requests_sent == 3
    assert client.stats.failures_by_reason == {"connect": 3}


# --- faults ---------------------------------------------------------------------------------


async def test_5xx_and_dropped_connections_are_retried(sandbox: SandboxHandle) -> None:
    sandbox.set_faults("5xx=0.3,reset=0.1,seed=11")
    events: list[ClientEvent] = []
    async with client_for(sandbox, on_event=events.append) as client:
        for _ in range(20):  # one at a time: the seeded fault sequence is reproducible
            got = await client.get("/patients")
            assert got.status == 200
    stats = client.stats
    served = sandbox.stats.snapshot()
    assert served.by_status.get(200) == 20
    assert stats.responses_by_status[200] == 20
    assert stats.retries > 0
    assert stats.retries == served.faults.get("5xx", 0) + served.faults.get("reset", 0)
    assert stats.requests_sent == served.total
    five_xx = sum(n for status, n in served.by_status.items() if status >= 500)
    assert sum(n for s, n in stats.responses_by_status.items() if s >= 500) == five_xx
    assert stats.failures_by_reason.get("dropped", 0) == served.faults.get("reset", 0)
    assert [e.kind for e in events].count("request_done") == 20
    assert [e.kind for e in events].count("retry") == stats.retries


async def test_slow_answers_beyond_the_timeout_are_retried(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    # A sandbox of its own: the slow answers it abandons finish after the test.
    sandbox = make_sandbox(faults="slow=0.4,slow_ms=2000,seed=5")
    async with client_for(sandbox, timeout=0.4) as client:
        for _ in range(8):
            await client.get("/patients")
    slow = sandbox.stats.faults.get("slow", 0)
    assert slow > 0
    assert client.stats.failures_by_reason.get("timeout", 0) >= slow
    assert client.stats.retries == client.stats.failures_by_reason.total()
    assert client.stats.responses_by_status[200] == 8


# --- rate limit -----------------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_budget_matching_the_server_gives_no_429(sandbox: SandboxHandle) -> None:
    sandbox.set_rate_limit(20, 2.0)
    # The server counts arrivals; a wider margin than the default absorbs this box's jitter.
    limiter = RateLimiter(20, 2.0, safety=0.05)
    async with client_for(sandbox, limiter=limiter) as client, anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(client.get, "/patients")
    served = sandbox.stats.snapshot()
    assert served.rate_limited == 0
    assert served.by_status == {200: 30}
    arrivals = [entry.monotonic for entry in served.log]
    assert max(arrivals) - min(arrivals) >= 2.0  # 30 > 20: spread over more than one window
    assert _max_in_window(arrivals, 2.0) <= 20
    assert client.stats.rate_limited == 0
    assert limiter.stats().starts == 30


def _end_burst_on_first_429(sandbox: SandboxHandle) -> Callable[[ClientEvent], None]:
    """An event hook: once the client has seen a 429, the sandbox stops making bursts."""

    def on_event(event: ClientEvent) -> None:
        if event.kind == "rate_limited":
            sandbox.set_faults("")

    return on_event


async def test_429_burst_waits_until_the_reset(sandbox: SandboxHandle) -> None:
    sandbox.set_faults("burst429=1.0,burst_len=50,burst_s=1,seed=1")
    events: list[ClientEvent] = []
    end_burst = _end_burst_on_first_429(sandbox)

    def on_event(event: ClientEvent) -> None:
        events.append(event)
        end_burst(event)

    limiter = RateLimiter(10_000, 1.0)
    async with client_for(sandbox, limiter=limiter, on_event=on_event) as client:
        page = await client.get("/patients")
    assert page.status == 200
    limited, ok = sandbox.stats.log
    assert (limited.status, ok.status) == (429, 200)
    # X-RateLimit-Reset is at least burst_s after the 429 arrived; the retry came after it.
    assert ok.wall >= limited.wall + 1.0 - 0.02
    assert [e.kind for e in events] == ["rate_limited", "request_done"]
    assert events[0].wait_s >= 0.9
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 0  # a 429 is not a failed attempt
    assert limiter.stats().blocks == 1


async def test_429_burst_holds_every_task(sandbox: SandboxHandle) -> None:
    sandbox.set_faults("burst429=1.0,burst_len=50,burst_s=1,seed=1")
    limiter = RateLimiter(10_000, 1.0)
    client = client_for(sandbox, limiter=limiter, on_event=_end_burst_on_first_429(sandbox))
    async with client, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(client.get, "/patients")
    served = sandbox.stats.snapshot()
    assert served.by_status[200] == 5
    assert 1 <= served.rate_limited <= 5  # only requests already on their way got a 429
    assert client.stats.rate_limited == served.rate_limited
    assert client.stats.retries == 0
    assert limiter.stats().blocks == served.rate_limited


# --- GET only, links ------------------------------------------------------------------------


async def test_non_get_never_reaches_the_sandbox(sandbox: SandboxHandle) -> None:
    async with client_for(sandbox) as client:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with pytest.raises(WriteRefused):
                await client._http.request(method, f"{sandbox.base_url}/patients", json={})
        await client.get("/user")
    served = sandbox.stats.snapshot()
    assert served.non_get == 0
    assert served.total == 1


async def test_links_next_is_followed_and_foreign_hosts_refused(sandbox: SandboxHandle) -> None:
    async with client_for(sandbox) as client:
        first = await client.get("/patients", params=[("per_page", "2")])
        next_url = first.data["links"]["next"]
        assert next_url.startswith(sandbox.origin)
        second = await client.get(next_url)
        assert second.data["patients"]
        first_ids = {p["id"] for p in first.data["patients"]}
        assert first_ids.isdisjoint(p["id"] for p in second.data["patients"])
        before = sandbox.stats.total
        for foreign in (
            next_url.replace("127.0.0.1", "localhost"),
            next_url.replace(f":{sandbox.port}/", f":{sandbox.port + 1}/"),
            next_url.replace("http://", "https://"),
            next_url.replace("/v1/", "/v2/"),
        ):
            with pytest.raises(ForeignURL):
                await client.get(foreign)
        assert sandbox.stats.total == before


async def test_the_key_is_never_logged_or_in_errors(
    sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.set_faults("5xx=0.3,reset=0.2,seed=2")
    messages: list[str] = []
    async with client_for(sandbox) as client:
        for _ in range(6):
            await client.get("/patients")
        try:
            await client.get("/no_such_resource")
        except ClinikoError as exc:
            messages += [str(exc), exc.hint, repr(exc)]
    records: list[Any] = caplog.records
    assert any(r.name == "cliniko_switch.client" for r in records)
    bare = sandbox.api_key.rsplit("-", 1)[0]
    assert bare not in caplog.text
    assert all(bare not in m for m in messages)
