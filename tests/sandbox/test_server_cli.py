"""`cliniko-switch sandbox` as a real process: banner, paging with curl-style requests, Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("cliniko-switch")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_banner(proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, str]:
    """Read stdout until the 'Press Ctrl-C' line; returns the `Name: value` lines."""
    stdout = proc.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    fields: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if not line:
            break
        seen.append(line)
        name, sep, value = line.partition(": ")
        if sep:
            fields[name.strip()] = value.strip()
        if line.startswith("Press Ctrl-C"):
            fields["curl"] = next(x for x in seen if "curl " in x).strip()
            return fields
    proc.kill()
    raise AssertionError(f"no banner; stdout so far: {seen!r}")


@pytest.fixture
def sandbox_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [str(CLI), "sandbox", "--size", "tiny", "--port", str(port), "--rate-limit", "200/6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_cli_serves_pages_and_stops_on_ctrl_c(
    sandbox_process: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = sandbox_process
    banner = _read_banner(proc)
    base_url = banner["Base URL"]
    key = banner["API key"]
    assert base_url == f"http://127.0.0.1:{port}/v1"
    assert key.endswith("-au1")
    assert f"-u '{key}:'" in banner["curl"]
    assert f"'{base_url}/patients?per_page=100'" in banner["curl"]
    assert banner["Rate limit"].startswith("200 requests per 6 s")

    # what `curl -u KEY: -A 'x (a@b.c)' 'http://127.0.0.1:PORT/v1/patients?per_page=100'` does
    seen: list[int] = []
    total = -1
    url: str | None = f"{base_url}/patients?per_page=100"
    with httpx.Client(auth=(key, ""), headers={"User-Agent": "x (a@b.c)"}) as client:
        while url:
            r = client.get(url)
            assert r.status_code == 200, r.text
            body = r.json()
            total = body["total_entries"]
            seen.extend(int(str(p["id"])) for p in body["patients"])
            url = body["links"].get("next")
        assert client.post(f"{base_url}/patients").status_code == 405
    assert total > 0
    assert len(seen) == len(set(seen)) == total

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in err.lower()
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/user", timeout=2)


def test_cli_stops_on_sigterm(sandbox_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, _ = sandbox_process
    _read_banner(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--rate-limit", "lots"], "--rate-limit"), (["--faults", "5xx=2"], "--faults")],
)
def test_cli_rejects_bad_options(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [str(CLI), "sandbox", "--size", "tiny", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
