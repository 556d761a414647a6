"""Injected faults (5xx, dropped connections, slow answers, 429 bursts) and latency."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import anyio
import httpx
import pytest

from sandbox.faults import Fault, FaultInjector, FaultSpec, FaultSpecError
from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.Client]


def _statuses(client: httpx.Client, url: str, n: int) -> list[int]:
    return [client.get(url).status_code for _ in range(n)]


def test_5xx_rate_matches_with_a_fixed_seed(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    sandbox.set_rate_limit(10_000, 60.0)
    sandbox.set_faults("5xx=0.2,seed=42")
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}/patients?per_page=1"
    first = _statuses(client, url, 300)
    errors = Counter(s for s in first if s >= 500)
    assert set(first) <= {200, 500, 502, 503}
    assert set(errors) == {500, 502, 503}
    assert 0.13 <= sum(errors.values()) / len(first) <= 0.27
    assert sandbox.stats.faults == {"5xx": sum(errors.values())}
    # same seed, same sequence
    sandbox.set_faults("5xx=0.2,seed=42")
    assert _statuses(client, url, 300) == first


def test_5xx_bodies(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    sandbox.set_faults("5xx=1,seed=3")
    client = sandbox_client(sandbox)
    seen: dict[int, httpx.Response] = {}
    for _ in range(40):
        r = client.get(f"{sandbox.base_url}/patients")
        seen.setdefault(r.status_code, r)
    assert set(seen) == {500, 502, 503}
    assert seen[500].json()["errors"]
    assert "Bad Gateway" in seen[502].text


def test_reset_drops_the_connection(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}/patients"
    assert client.get(url).status_code == 200  # a kept-alive connection...
    sandbox.set_faults("reset=1")
    with pytest.raises(httpx.TransportError):
        client.get(url)
    with pytest.raises(httpx.TransportError):  # ...and a fresh one
        sandbox_client(sandbox).get(url)
    sandbox.set_faults("")
    assert client.get(url).status_code == 200
    stats = sandbox.stats.snapshot()
    assert stats.faults == {"reset": 2}
    assert stats.by_status == {200: 2, 0: 2}


def test_slow_makes_a_short_client_timeout_fire(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    sandbox.set_faults("slow=1,slow_ms=400")
    url = f"{sandbox.base_url}/patients"
    with pytest.raises(httpx.ReadTimeout):
        sandbox_client(sandbox, timeout=0.1).get(url)
    started = time.monotonic()
    r = sandbox_client(sandbox, timeout=5.0).get(url)
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.4
    assert sandbox.stats.faults == {"slow": 2}


def _seed_for_one_burst(p: float) -> int:
    """A seed whose first draw starts a burst and whose second does not."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if rng.random() < p <= rng.random():
            return seed
    raise AssertionError("no seed found")


def test_burst429(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    seed = _seed_for_one_burst(0.3)
    sandbox.set_faults(f"burst429=0.3,burst_len=4,burst_s=5,seed={seed}")
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}/patients"
    wall = time.time()
    responses = [client.get(url) for _ in range(5)]
    assert [r.status_code for r in responses] == [429, 429, 429, 429, 200]
    resets = {r.headers["X-RateLimit-Reset"] for r in responses[:4]}
    assert len(resets) == 1
    assert wall + 5 <= int(resets.pop()) <= wall + 7
    assert "rate limit" in responses[0].json()["errors"]
    stats = sandbox.stats.snapshot()
    assert stats.faults == {"burst429": 4}
    assert stats.rate_limited == 4


def test_burst_ends_at_its_reset_time() -> None:
    now = [50.0]
    inj = FaultInjector(
        "burst429=1,burst_len=10,burst_s=2", clock=lambda: now[0], wall=lambda: now[0] + 1e9
    )
    first = inj.decide("k")
    assert first == Fault("burst429", status=429, reset_epoch=int(1e9 + 52))
    assert inj.decide("k") == first
    assert inj.decide("other") is not None  # another key gets its own burst
    now[0] += 2.0  # the burst is over; p=1 starts a new one
    again = inj.decide("k")
    assert again is not None
    assert again.reset_epoch == int(1e9 + 54)
    inj.configure("")
    assert inj.decide("k") is None


def test_faults_only_on_lists_and_records(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    sandbox.set_faults("5xx=1")
    client = sandbox_client(sandbox)
    assert client.get(f"{sandbox.base_url}/user").status_code == 200
    assert client.get(f"{sandbox.base_url}/settings").status_code == 200
    assert client.get(f"{sandbox.base_url}/nowhere").status_code == 404
    some_id = min(sandbox.store.ids("patients", "active"))
    assert client.get(f"{sandbox.base_url}/patients").status_code >= 500
    assert client.get(f"{sandbox.base_url}/patients/{some_id}").status_code >= 500
    # after auth: a bad key is 401 and no fault is spent on it
    bad = sandbox_client(sandbox, key="bad-au1")
    assert bad.get(f"{sandbox.base_url}/patients").status_code == 401
    assert sandbox.stats.faults == {"5xx": 2}


def test_fault_spec_parsing() -> None:
    spec = FaultSpec.parse("5xx=0.05, reset=0.01,slow=0.02,burst429=0.01,slow_ms=1500,seed=9")
    assert spec == FaultSpec(
        p_5xx=0.05, p_reset=0.01, p_slow=0.02, p_burst429=0.01, slow_ms=1500, seed=9
    )
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse("") == FaultSpec() == FaultSpec.parse(None)
    assert not FaultSpec().active
    assert str(FaultSpec()) == ""
    for bad in ("5xx", "5xx=lots", "teapot=0.1", "5xx=1.5", "5xx=0.6,reset=0.6", "burst_len=0"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)


def test_latency_is_applied(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    client = sandbox_client(sandbox)
    url = f"{sandbox.base_url}/user"
    client.get(url)
    sandbox.set_latency(150, jitter_ms=0)
    started = time.monotonic()
    assert client.get(url).status_code == 200
    assert time.monotonic() - started >= 0.15
    sandbox.set_latency(100, jitter_ms=50)
    for _ in range(3):
        started = time.monotonic()
        client.get(url)
        assert time.monotonic() - started >= 0.05
    assert sandbox.latency == (100.0, 50.0)
    sandbox.set_latency(100)
    assert sandbox.latency == (100.0, 20.0)  # jitter defaults to 20%


@pytest.mark.anyio
async def test_latency_does_not_serialise_requests(sandbox: SandboxHandle) -> None:
    sandbox.set_latency(300, jitter_ms=0)
    headers = {"User-Agent": "x (a@b.c)"}
    async with httpx.AsyncClient(auth=sandbox.auth(), headers=headers, timeout=10) as client:
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await client.get(f"{sandbox.base_url}/user")).status_code)

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        elapsed = time.monotonic() - started
    assert statuses == [200] * 10
    assert 0.3 <= elapsed < 1.5
