"""Only GET: every other method is refused with 405 and counted, before anything else."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

METHODS = ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PURGE"]
PATHS = ["/v1/patients", "/v1/patients/1", "/v1/user", "/v1/no_such_thing", "/elsewhere"]


@pytest.mark.parametrize("method", METHODS)
def test_non_get_is_405_and_counted(sandbox: SandboxHandle, method: str) -> None:
    good = {"User-Agent": "x (a@b.c)"}
    with httpx.Client(timeout=10.0) as client:
        for path in PATHS:
            url = f"{sandbox.origin}{path}"
            # with a good key, with a bad key, and with nothing at all
            for auth, headers in (
                (sandbox.auth(), good),
                (("bad-au1", ""), good),
                (None, {}),
            ):
                r = client.request(method, url, auth=auth, headers=headers, content=b'{"a": 1}')
                assert r.status_code == 405, (method, path)
                assert r.headers["Allow"] == "GET"
                if method != "HEAD":
                    assert method in r.json()["errors"]
    stats = sandbox.stats.snapshot()
    n = len(PATHS) * 3
    assert stats.by_method == {method: n}
    assert stats.non_get == n
    assert stats.total == n
    assert stats.by_status == {405: n}
    assert stats.by_path["/v1/patients"] == 3


def test_405s_do_not_touch_the_rate_limit(sandbox: SandboxHandle) -> None:
    sandbox.set_rate_limit(2, 30.0)
    headers = {"User-Agent": "x (a@b.c)"}
    with httpx.Client(auth=sandbox.auth(), headers=headers, timeout=10.0) as client:
        for _ in range(5):
            assert client.post(f"{sandbox.base_url}/patients", json={}).status_code == 405
        assert client.get(f"{sandbox.base_url}/user").status_code == 200
        assert client.get(f"{sandbox.base_url}/user").status_code == 200
        assert client.get(f"{sandbox.base_url}/user").status_code == 429
    stats = sandbox.stats
    assert stats.non_get == 5
    assert stats.by_method == {"POST": 5, "GET": 3}


def test_stats_log_and_reset(sandbox: SandboxHandle) -> None:
    headers = {"User-Agent": "x (a@b.c)"}
    with httpx.Client(auth=sandbox.auth(), headers=headers, timeout=10.0) as client:
        client.get(f"{sandbox.base_url}/patients", params={"per_page": 3, "page": 2})
        client.delete(f"{sandbox.base_url}/patients/1")
    log = sandbox.stats.log
    assert [(e.method, e.path, e.status) for e in log] == [
        ("GET", "/v1/patients?per_page=3&page=2", 200),
        ("DELETE", "/v1/patients/1", 405),
    ]
    assert log[0].monotonic <= log[1].monotonic
    assert abs(log[0].wall - time.time()) < 60
    assert log[0][2:] == ("GET", "/v1/patients?per_page=3&page=2", 200)  # a plain tuple too
    assert sandbox.stats.by_path == {"/v1/patients": 1, "/v1/patients/1": 1}
    sandbox.reset_stats()
    snap = sandbox.stats.snapshot()
    assert snap.total == 0
    assert snap.log == []
    assert snap.by_status == {}
