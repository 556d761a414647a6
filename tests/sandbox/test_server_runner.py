"""The background-thread runner: quick start, loopback only, clean and idempotent stop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from sandbox.runner import SandboxHandle, running_sandbox, start_sandbox
from sandbox.store import ClinicStore

pytestmark = pytest.mark.integration

HEADERS = {"User-Agent": "cliniko-switch-tests (tests@example.org)"}


def test_running_sandbox_starts_quickly_and_stops_cleanly() -> None:
    threads_before = threading.active_count()
    started = time.perf_counter()
    with running_sandbox(size="tiny", seed=3) as sb:
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, f"tiny sandbox took {elapsed:.2f} s to start"
        assert sb.running
        assert sb.base_url == f"http://127.0.0.1:{sb.port}/v1"
        assert sb.api_key.endswith("-au1")
        r = httpx.get(f"{sb.base_url}/user", auth=sb.auth(), headers=HEADERS)
        assert r.status_code == 200
        base_url = sb.base_url
    assert not sb.running
    sb.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/user", auth=sb.auth(), headers=HEADERS, timeout=2)
    time.sleep(0.05)
    assert threading.active_count() <= threads_before


def test_bound_to_loopback_only(sandbox: SandboxHandle) -> None:
    assert sandbox.origin.startswith("http://127.0.0.1:")
    runner = sandbox._runner
    assert runner is not None
    assert [addr[0] for addr in runner.addresses] == ["127.0.0.1"]


def test_stop_closes_kept_alive_connections_and_in_flight_requests(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    sb = make_sandbox(faults="slow=1,slow_ms=5000")
    with httpx.Client(auth=sb.auth(), headers=HEADERS, timeout=10) as client:
        errors: list[BaseException] = []

        def slow_request() -> None:
            try:
                client.get(f"{sb.base_url}/patients")
            except httpx.HTTPError as exc:
                errors.append(exc)

        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(0.2)  # the request is now sleeping inside the server
        started = time.perf_counter()
        sb.stop()
        assert time.perf_counter() - started < 2.0
        worker.join(5)
        assert not worker.is_alive()
        assert errors, "the in-flight request should have been cut off"


def test_explicit_port_and_port_in_use(tiny_sandbox: SandboxHandle) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    store = ClinicStore.generate("tiny", seed=1)
    try:
        with start_sandbox(store, port=port) as sb:
            assert sb.port == port
            with pytest.raises(OSError, match=r"(?i)in use"):
                start_sandbox(store, port=port)
    finally:
        store.close()


def test_shard_defaults_to_the_store_s(make_sandbox: Callable[..., SandboxHandle]) -> None:
    sb = make_sandbox(shard="eu1")
    assert sb.shard == "eu1"
    assert sb.api_key.endswith("-eu1")


def test_settings_can_change_from_other_threads(sandbox: SandboxHandle) -> None:
    def configure() -> None:
        sandbox.set_rate_limit(1, 30.0)
        sandbox.set_faults("5xx=0.5,seed=1")
        sandbox.set_latency(10)

    t = threading.Thread(target=configure)
    t.start()
    t.join()
    assert sandbox.rate_limit == (1, 30.0)
    assert str(sandbox.faults) == "5xx=0.5,seed=1"
    assert sandbox.latency == (10.0, 2.0)
    with httpx.Client(auth=sandbox.auth(), headers=HEADERS) as client:
        assert client.get(f"{sandbox.base_url}/user").status_code == 200
        assert client.get(f"{sandbox.base_url}/user").status_code == 429
