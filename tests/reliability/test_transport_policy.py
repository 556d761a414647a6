"""Transport (issue 6, item 8): TLS verification cannot be turned off; plain http is refused
for every host that is not this machine, however the URL is written.

One rule decides (`engine.cliniko.keys.check_transport_url`): `validate_api_url` applies it to
the API URL when a client is made, and `GetOnlyTransport` again to every request as it leaves.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.cliniko import (
    ClinikoClient,
    GetOnlyTransport,
    InsecureURL,
    RateLimiter,
    base_url_for,
    parse_key,
    validate_api_url,
)
from engine.cliniko.keys import check_transport_url, is_loopback_host

KEY = parse_key("MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MC1hYmNkZWZnaGlqa2xtbm9w-au1")
ENGINE = Path(__file__).resolve().parents[2] / "engine"

REFUSED_PLAIN_HTTP = [
    "http://api.au1.cliniko.com/v1",
    "http://example.com/v1",
    "http://10.0.0.1:8765/v1",
    "http://192.168.1.10/v1",
    "http://0.0.0.0:8765/v1",  # reaches this machine on Linux, but is no loopback address
    "http://127.1/v1",  # inet_aton shorthand: not how a loopback address is written here
    "http://0x7f000001/v1",
    "http://2130706433/v1",
    "http://0177.0.0.1/v1",
    "http://[::ffff:127.0.0.1]/v1",
    "http://[::2]/v1",
    "http://127.0.0.1.nip.io/v1",  # a public DNS name that answers 127.0.0.1 today
    "http://localhost.evil.example/v1",
    "http://localhost./v1",  # a DNS name: /etc/hosts knows "localhost", not "localhost."
    "http://evil.example#@127.0.0.1/v1",
    "http://127.0.0.1\\@evil.example/v1",
    "http://evil.example\\@127.0.0.1/v1",
    "http://127.0.0.1%2F@evil.example/v1",
    "http://127.0.0.1:80@evil.example/v1",
    "http://127.0.0.1。evil.example/v1",
    "http://127.0.0.1 .evil.example/v1",
    "HTTP://EXAMPLE.COM/v1",
    "ftp://127.0.0.1/v1",
    "ws://127.0.0.1/v1",
    "file:///etc/passwd",
    "//127.0.0.1/v1",
    "127.0.0.1:8765/v1",
]

ALLOWED = [
    "http://127.0.0.1:8765/v1",
    "http://127.255.255.254/v1",
    "http://localhost:8765/v1",
    "http://LOCALHOST/v1",
    "http://[::1]:8765/v1",
    "https://api.au1.cliniko.com/v1",
    "https://api.uk1.cliniko.com/v1/",
    "https://10.0.0.1/v1",
    "https://127.0.0.1.nip.io/v1",
    "https://[::2]:8443/v1",
    "https://proxy.example.org/cliniko/v1",
]


@pytest.mark.parametrize("url", REFUSED_PLAIN_HTTP)
def test_plain_http_off_this_machine_is_refused_everywhere(url: str) -> None:
    with pytest.raises(InsecureURL):
        validate_api_url(url)
    with pytest.raises(InsecureURL):
        base_url_for("au1", url)
    with pytest.raises(InsecureURL):
        ClinikoClient.create(KEY, base_url=url, limiter=RateLimiter())


@pytest.mark.parametrize("url", ALLOWED)
def test_https_anywhere_and_plain_http_to_loopback_are_allowed(url: str) -> None:
    assert validate_api_url(url) == url.strip().rstrip("/")
    client = ClinikoClient.create(KEY, base_url=url, limiter=RateLimiter())
    assert client.base_url == url.rstrip("/")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost.", False),
        ("localhost.localdomain", False),
        ("127.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name under test, nothing binds to it
        ("::ffff:127.0.0.1", False),
        ("", False),
    ],
)
def test_what_counts_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/v1/patients",
        "http://0.0.0.0:9/v1/patients",
        "http://127.0.0.1.nip.io/v1/patients",
        "ftp://127.0.0.1/v1/patients",
    ],
)
async def test_the_transport_refuses_plain_http_to_another_host_before_connecting(
    url: str,
) -> None:
    """Below the client: a request built by hand is refused as it leaves (an attempt to
    connect would have raised a ConnectError instead, or succeeded)."""
    transport = GetOnlyTransport(api_origin=None)
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as raw:
        with pytest.raises(InsecureURL):
            await raw.get(url)
    assert transport.refused == 1


def test_tls_verification_has_no_off_switch() -> None:
    """Neither the transport nor the client factory takes a flag, context or transport that
    could replace verification; the transport's own context verifies certificates and names."""
    assert set(inspect.signature(GetOnlyTransport).parameters) == {"api_origin", "max_connections"}
    factory = set(inspect.signature(ClinikoClient.create).parameters)
    assert not factory & {"verify", "ssl_context", "transport", "cert", "trust_env", "inner"}
    with pytest.raises(TypeError):
        GetOnlyTransport(verify=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        GetOnlyTransport(inner=httpx.AsyncHTTPTransport(verify=False))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ClinikoClient.create(  # type: ignore[call-arg]
            KEY, base_url="https://api.au1.cliniko.com/v1", limiter=RateLimiter(), verify=False
        )
    client = ClinikoClient.create(
        KEY, base_url="https://api.au1.cliniko.com/v1", limiter=RateLimiter()
    )
    context: ssl.SSLContext = client._transport._inner._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_the_engine_never_switches_verification_off() -> None:
    """A guard on the source: no way of turning verification off appears in the engine."""
    forbidden = re.compile(
        r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
        r"|PYTHONHTTPSVERIFY|set_default_verify_paths\(\)\s*#\s*off"
    )
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{n}"
        for path in sorted(ENGINE.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


CHILD = """
import anyio, sys
from engine.cliniko import ClinikoClient, RateLimiter, TLSFailure, parse_key

async def main():
    key = parse_key("MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MC1hYmNkZWZnaGlqa2xtbm9w-au1")
    client = ClinikoClient.create(key, base_url=sys.argv[1], limiter=RateLimiter(1000, 1.0))
    async with client:
        try:
            await client.get("/user")
        except TLSFailure:
            print("refused")
            return
    print("accepted")

anyio.run(main)
"""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_no_environment_variable_turns_verification_off(tmp_path: Path) -> None:
    """A self-signed server, and a client process started with every variable that switches
    verification off somewhere else: the certificate is still refused."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "0", "-cert", str(cert), "-key", str(key), "-www"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = None
        for line in server.stdout:
            found = re.search(r"ACCEPT\s.*:(\d+)", line) or re.search(r"ACCEPT.*?(\d+)$", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "openssl s_server did not say where it listens"
        env = dict(os.environ)
        env.update(
            PYTHONHTTPSVERIFY="0",
            CURL_CA_BUNDLE="",
            REQUESTS_CA_BUNDLE="",
            SSL_CERT_DIR="/nonexistent",
            HTTPX_VERIFY="0",
            NODE_TLS_REJECT_UNAUTHORIZED="0",
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, f"https://127.0.0.1:{port}/v1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.stdout.strip() == "refused", done.stdout + done.stderr
    finally:
        server.kill()
        server.wait()


def test_check_transport_url_is_the_one_rule() -> None:
    check_transport_url("https", "anything.example")
    check_transport_url("http", "127.0.0.1")
    with pytest.raises(InsecureURL):
        check_transport_url("http", "example.com")
    with pytest.raises(InsecureURL):
        check_transport_url("gopher", "127.0.0.1")
