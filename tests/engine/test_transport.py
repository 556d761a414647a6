"""GET-only transport and the client's request handling, over real sockets to a tiny stub.

The stub is a raw TCP server on 127.0.0.1 that counts connections and answers from a script,
so "nothing was sent" is checked where it matters: no connection was ever opened.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream

from engine.cliniko import (
    AuthError,
    BadResponse,
    ClientEvent,
    ClientRequestError,
    ClinikoClient,
    ForeignURL,
    GetOnlyTransport,
    InsecureURL,
    NetworkError,
    PermissionDenied,
    RateLimiter,
    RetryPolicy,
    ServerError,
    TLSFailure,
    WriteRefused,
    parse_key,
)

pytestmark = pytest.mark.anyio

KEY = parse_key("MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MC1hYmNkZWZnaGlqa2xtbm9w-au1")
FAST = RetryPolicy(max_attempts=4, base_s=0.001, cap_s=0.01)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


Action = Reply | str  # or "drop" (close without answering) / "hang" (never answer)
Script = Callable[[Seen, int], Action]


@dataclass
class Stub:
    port: int
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def ok(data: Any = None, **headers: str) -> Reply:
    return Reply(200, json.dumps({} if data is None else data).encode(), dict(headers))


async def _read_head(stream: SocketStream) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive(65536)
        buf += chunk
    return buf.split(b"\r\n\r\n", 1)[0]


def local_port(listener: Any) -> int:
    port: int = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    return port


@asynccontextmanager
async def stub_server(script: Script) -> AsyncIterator[Stub]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    stub = Stub(port=local_port(listener))

    async def handle(stream: SocketStream) -> None:
        stub.connections += 1
        async with stream:
            try:
                head = await _read_head(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            seen = Seen(method, target, headers)
            stub.requests.append(seen)
            action = script(seen, len(stub.requests))
            if action == "drop":
                return
            if action == "hang":
                await anyio.sleep_forever()
            assert isinstance(action, Reply)
            out = [f"HTTP/1.1 {action.status} X", f"Content-Length: {len(action.body)}"]
            out += ["Connection: close", "Content-Type: application/json"]
            out += [f"{k}: {v}" for k, v in action.headers.items()]
            raw = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + action.body
            try:
                await stream.send(raw)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield stub
        finally:
            tg.cancel_scope.cancel()


def always(action: Action) -> Script:
    return lambda _seen, _n: action


def sequence(*actions: Action) -> Script:
    return lambda _seen, n: actions[min(n, len(actions)) - 1]


def make_client(stub: Stub, **kw: Any) -> ClinikoClient:
    kw.setdefault("limiter", RateLimiter(1000, 1.0))
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5.0)
    return ClinikoClient.create(KEY, base_url=stub.base_url, **kw)


# --- GET only -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_non_get_is_refused_before_any_connection(method: str) -> None:
    async with stub_server(always(ok())) as stub:
        async with make_client(stub) as client:
            # The client has no way to send anything but GET; go below it, to its httpx stack.
            with pytest.raises(WriteRefused):
                await client._http.request(method, f"{stub.base_url}/patients", json={"a": 1})
            await client.get("/patients")
        transport = GetOnlyTransport(api_origin=None)
        async with httpx.AsyncClient(transport=transport) as raw:
            with pytest.raises(WriteRefused):
                await raw.post(f"{stub.base_url}/patients", content=b"x")
        assert transport.refused == 1
        assert stub.connections == 1  # only the GET
        assert [r.method for r in stub.requests] == ["GET"]


async def test_credentials_never_go_to_another_origin() -> None:
    async with stub_server(always(ok())) as api, stub_server(always(ok())) as other:
        transport = GetOnlyTransport(api_origin=("http", "127.0.0.1", api.port))
        async with httpx.AsyncClient(transport=transport, auth=("k", "")) as raw:
            with pytest.raises(ForeignURL):
                await raw.get(f"{other.base_url}/patients")
            await raw.get(f"{api.base_url}/patients")
        assert other.connections == 0
        assert api.connections == 1


async def test_create_refuses_plain_http_to_a_remote_host() -> None:
    with pytest.raises(InsecureURL):
        ClinikoClient.create(KEY, base_url="http://example.com/v1", limiter=RateLimiter())


# --- the request ------------------------------------------------------------------------------


async def test_headers_page_and_params() -> None:
    date = "Tue, 02 Jan 2024 03:04:05 GMT"
    server = stub_server(always(ok({"patients": [], "total_entries": 0}, Date=date)))
    async with server as stub, make_client(stub, user_agent="Tester (t@example.org)") as client:
        page = await client.get(
            "/patients",
            params=[("per_page", "100"), ("q[]", "id:>5"), ("q[]", "updated_at:>=2024")],
        )
    seen = stub.requests[0]
    assert seen.method == "GET"
    assert seen.target.startswith("/v1/patients?per_page=100&q%5B%5D=id%3A%3E5&q%5B%5D=")
    expected_auth = base64.b64encode(f"{KEY.reveal()}:".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected_auth}"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["user-agent"] == "Tester (t@example.org)"
    assert page.data == {"patients": [], "total_entries": 0}
    assert page.status == 200
    assert page.server_date is not None
    assert page.server_date.isoformat() == "2024-01-02T03:04:05+00:00"
    assert page.url.startswith(f"{stub.base_url}/patients?per_page=100")
    assert client.stats.requests_sent == 1
    assert client.stats.responses_by_status == {200: 1}
    assert client.stats.bytes_received > 0


async def test_absolute_links_on_the_same_origin_are_followed() -> None:
    async with stub_server(always(ok())) as stub, make_client(stub) as client:
        page = await client.get(f"{stub.base_url}/patients?page=2&per_page=100")
        assert page.url == f"{stub.base_url}/patients?page=2&per_page=100"
        await client.get(f"http://127.0.0.1:{stub.port}/v1/internal/daily_availabilities/1")
    assert [r.target for r in stub.requests] == [
        "/v1/patients?page=2&per_page=100",
        "/v1/internal/daily_availabilities/1",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:{port}/v1/patients",
        "http://localhost:{port}/v1/patients",
        "http://127.0.0.1:1/v1/patients",
        "https://127.0.0.1:{port}/v1/patients",
        "http://127.0.0.1:{port}/v2/patients",
        "http://127.0.0.1:{port}/v1x/patients",
        "https://api.au1.cliniko.com/v1/patients",
    ],
)
async def test_foreign_links_are_refused(url: str) -> None:
    async with stub_server(always(ok())) as stub, make_client(stub) as client:
        with pytest.raises(ForeignURL) as info:
            await client.get(url.format(port=stub.port))
        assert KEY.reveal() not in str(info.value)
    assert stub.connections == 0


async def test_redirects_are_not_followed() -> None:
    elsewhere = Reply(301, b"", {"Location": "https://evil.example/v1/patients"})
    async with stub_server(always(elsewhere)) as stub, make_client(stub) as client:
        with pytest.raises(ClientRequestError) as info:
            await client.get("/patients")
    assert info.value.status == 301
    assert stub.connections == 1


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(401, AuthError), (403, PermissionDenied)])
async def test_auth_failures_are_fatal(status: int, error: type[Exception]) -> None:
    server = stub_server(always(Reply(status, b'{"error": "x"}')))
    async with server as stub, make_client(stub) as client:
        with pytest.raises(error) as info:
            await client.get("/patients")
    assert len(stub.requests) == 1
    assert KEY.reveal() not in str(info.value)


async def test_404_is_a_request_error_with_the_path() -> None:
    async with stub_server(always(Reply(404, b"{}"))) as stub, make_client(stub) as client:
        with pytest.raises(ClientRequestError) as info:
            await client.get("/patients/7/referral_source")
    assert info.value.status == 404
    assert info.value.path == "/v1/patients/7/referral_source"
    assert len(stub.requests) == 1


async def test_5xx_and_drops_are_retried_until_success() -> None:
    events: list[ClientEvent] = []
    script = sequence(Reply(503), "drop", Reply(500), ok({"ok": True}))
    async with stub_server(script) as stub, make_client(stub, on_event=events.append) as client:
        page = await client.get("/patients")
    assert page.data == {"ok": True}
    assert client.stats.requests_sent == 4
    assert client.stats.retries == 3
    assert client.stats.responses_by_status == {503: 1, 500: 1, 200: 1}
    assert client.stats.failures_by_reason == {"503": 1, "dropped": 1, "500": 1}
    assert [e.kind for e in events] == ["retry", "retry", "retry", "request_done"]
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    assert events[1].status is None
    assert events[-1].status == 200


async def test_5xx_forever_gives_up() -> None:
    async with stub_server(always(Reply(502))) as stub, make_client(stub) as client:
        with pytest.raises(ServerError) as info:
            await client.get("/patients")
    assert len(stub.requests) == FAST.max_attempts
    assert info.value.path == "/v1/patients"


async def test_not_json_is_retried_then_bad_response() -> None:
    html = Reply(200, b"<html>proxy login</html>")
    async with stub_server(always(html)) as stub, make_client(stub) as client:
        with pytest.raises(BadResponse) as info:
            await client.get("/patients", params=[("page", "2")])
    assert len(stub.requests) == FAST.max_bad_bodies
    assert "/v1/patients?page=2" in str(info.value)
    assert "proxy login" not in str(info.value)


async def test_json_that_is_not_an_object_is_a_bad_response() -> None:
    server = stub_server(sequence(Reply(200, b"[1, 2]"), ok({"x": 1})))
    async with server as stub, make_client(stub) as client:
        page = await client.get("/patients")
    assert page.data == {"x": 1}
    assert client.stats.failures_by_reason == {"not-json": 1}


async def test_timeouts_are_retried() -> None:
    server = stub_server(sequence("hang", ok({"late": False})))
    async with server as stub, make_client(stub, timeout=0.5) as client:
        page = await client.get("/patients")
    assert page.data == {"late": False}
    assert client.stats.failures_by_reason["timeout"] >= 1
    assert set(client.stats.failures_by_reason) == {"timeout"}


async def test_unreachable_port_is_a_network_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = local_port(listener)
    await listener.aclose()  # nothing listens there now
    client = ClinikoClient.create(
        KEY, base_url=f"http://127.0.0.1:{port}/v1", limiter=RateLimiter(1000, 1.0), retry=FAST
    )
    async with client:
        with pytest.raises(NetworkError) as info:
            await client.get("/user")
    assert not isinstance(info.value, TLSFailure)
    assert "VPN" in info.value.hint
    assert client.stats.requests_sent == FAST.max_attempts
    assert client.stats.failures_by_reason == {"connect": FAST.max_attempts}


async def test_429_blocks_the_limiter_until_reset_by_the_servers_clock() -> None:
    """The server's clock is years behind ours: the wait comes from Date and the reset alone."""
    date = "Mon, 01 Jan 2024 00:00:00 GMT"
    reset = 1704067200 + 1  # one second after that Date
    limited = Reply(429, b"{}", {"Date": date, "X-RateLimit-Reset": str(reset)})
    events: list[ClientEvent] = []
    limiter = RateLimiter(1000, 1.0, jitter_s=0.0)
    server = stub_server(sequence(limited, ok()))
    async with server as stub, make_client(stub, limiter=limiter, on_event=events.append) as client:
        await client.get("/patients")
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 0
    assert limiter.stats().blocks == 1
    assert [e.kind for e in events] == ["rate_limited", "request_done"]
    assert events[0].wait_s == pytest.approx(1.0)
    assert events[1].wait_s >= 0.9  # the retry waited on the limiter for the block


async def test_429_without_a_reset_blocks_for_a_window() -> None:
    limiter = RateLimiter(100, 0.2, jitter_s=0.0)
    server = stub_server(sequence(Reply(429), ok()))
    async with server as stub, make_client(stub, limiter=limiter) as client:
        await client.get("/patients")
    assert limiter.stats().blocks == 1
    assert client.stats.rate_limited == 1


# --- TLS ------------------------------------------------------------------------------------


async def test_https_to_a_plain_http_server_is_a_tls_failure() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = local_port(listener)

    async def plain(stream: SocketStream) -> None:
        async with stream:  # answers in plain text before any handshake
            await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, plain)
        client = ClinikoClient.create(
            KEY,
            base_url=f"https://127.0.0.1:{port}/v1",
            limiter=RateLimiter(1000, 1.0),
            retry=FAST,
            timeout=5.0,
        )
        async with client:
            with pytest.raises(TLSFailure) as info:
                await client.get("/user")
        tg.cancel_scope.cancel()
    assert client.stats.requests_sent == FAST.max_tls_attempts
    assert client.stats.failures_by_reason == {"tls": FAST.max_tls_attempts}
    assert info.value.hint


async def test_a_silent_https_server_is_a_timeout_not_a_tls_failure() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = local_port(listener)

    async def silent(stream: SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, silent)
        client = ClinikoClient.create(
            KEY,
            base_url=f"https://127.0.0.1:{port}/v1",
            limiter=RateLimiter(1000, 1.0),
            retry=RetryPolicy(max_attempts=2, base_s=0.001),
            timeout=0.2,
        )
        async with client:
            with pytest.raises(NetworkError) as info:
                await client.get("/user")
        tg.cancel_scope.cancel()
    assert not isinstance(info.value, TLSFailure)
    assert "timed out" in str(info.value)


def _self_signed(tmp: Path) -> ssl.SSLContext:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_untrusted_certificate_is_fatal_at_once(tmp_path: Path) -> None:
    ctx = _self_signed(tmp_path)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = local_port(listener)
    handshakes = 0

    async def handle(stream: SocketStream) -> None:
        nonlocal handshakes
        handshakes += 1
        try:
            tls = await anyio.streams.tls.TLSStream.wrap(stream, ssl_context=ctx, server_side=True)
            await tls.aclose()
        except Exception:  # noqa: S110 - the client hangs up mid-handshake, as it should
            pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        client = ClinikoClient.create(
            KEY, base_url=f"https://127.0.0.1:{port}/v1", limiter=RateLimiter(1000, 1.0)
        )
        async with client:
            with pytest.raises(TLSFailure) as info:
                await client.get("/user")
        tg.cancel_scope.cancel()
    assert client.stats.requests_sent == 1  # not retried
    assert "could not be verified" in str(info.value)
