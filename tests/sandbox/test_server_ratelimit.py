"""The per-key fixed-window rate limit: 429 with X-RateLimit-Reset, then service again."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from sandbox.auth import split_key
from sandbox.ratelimit import FixedWindowLimiter, parse_rate_limit
from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.Client]


def test_n_requests_then_429_then_service_after_the_window(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    window = 1.0
    sandbox.set_rate_limit(5, window)
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}/patients?per_page=1"
    started_wall = time.time()
    started = time.monotonic()
    statuses = [client.get(url).status_code for _ in range(5)]
    assert statuses == [200] * 5
    r = client.get(url)
    assert time.monotonic() - started < window, "the machine is too slow for this test"
    assert r.status_code == 429
    assert "rate limit" in r.json()["errors"]
    reset = r.headers["X-RateLimit-Reset"]
    assert reset.isdigit()
    # the window's end, rounded up to a whole second
    assert started_wall <= int(reset) <= started_wall + window + 1.0
    # refused requests do not extend the window
    assert client.get(url).status_code == 429
    time.sleep(max(0.0, started + window - time.monotonic()) + 0.05)
    assert [client.get(url).status_code for _ in range(5)] == [200] * 5
    assert client.get(url).status_code == 429
    stats = sandbox.stats.snapshot()
    assert stats.rate_limited == 3
    assert stats.by_status[429] == 3
    assert stats.by_status[200] == 10


def test_limit_is_per_key_and_ignores_the_suffix(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    sandbox.set_rate_limit(3, 30.0)
    bare, _ = split_key(sandbox.api_key)
    with_suffix = sandbox_client(sandbox)
    without = sandbox_client(sandbox, key=bare)
    other = sandbox_client(sandbox, key=sandbox.keys.add_key())
    url = f"{sandbox.base_url}/user"
    assert [with_suffix.get(url).status_code for _ in range(2)] == [200, 200]
    assert without.get(url).status_code == 200
    assert without.get(url).status_code == 429
    assert with_suffix.get(url).status_code == 429
    assert [other.get(url).status_code for _ in range(3)] == [200, 200, 200]
    assert other.get(url).status_code == 429


def test_only_authenticated_requests_count(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    sandbox.set_rate_limit(3, 30.0)
    url = f"{sandbox.base_url}/user"
    bad_key = sandbox_client(sandbox, key="wrong-au1")
    bad_agent = sandbox_client(sandbox, user_agent="curl/8")
    assert {bad_key.get(url).status_code for _ in range(5)} == {401}
    assert {bad_agent.get(url).status_code for _ in range(5)} == {400}
    good = sandbox_client(sandbox)
    assert [good.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_default_is_cliniko_s_200_per_minute(sandbox: SandboxHandle) -> None:
    assert sandbox.rate_limit == (200, 60.0)


def test_window_starts_at_the_first_request_after_the_previous_one_ended() -> None:
    now = [1000.0]
    wall_offset = 1_700_000_000.0
    limiter = FixedWindowLimiter(2, 10.0, clock=lambda: now[0], wall=lambda: now[0] + wall_offset)
    assert limiter.hit("k").allowed
    now[0] += 4
    d = limiter.hit("k")
    assert d.allowed
    assert d.remaining == 0
    now[0] += 1
    d = limiter.hit("k")
    assert not d.allowed
    assert d.reset_epoch == int(1010 + wall_offset)
    now[0] = 1010.0  # the window has ended
    assert limiter.hit("k").allowed
    now[0] = 1025.5  # idle; the next window starts now, not on a 10 s grid
    d = limiter.hit("k")
    assert d.allowed
    assert d.reset_epoch == int(1036 + wall_offset)  # 1035.5 rounded up
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    assert limiter.hit("other").allowed
    limiter.configure(1, 1.0)
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    assert limiter.limit == (1, 1.0)


def test_parse_rate_limit() -> None:
    assert parse_rate_limit("200/60") == (200, 60.0)
    assert parse_rate_limit("200/6") == (200, 6.0)
    assert parse_rate_limit(" 5 / 0.5 ") == (5, 0.5)
    for bad in ("", "200", "200/", "/60", "0/60", "200/0", "a/b", "-1/60"):
        with pytest.raises(ValueError, match="rate"):
            parse_rate_limit(bad)
