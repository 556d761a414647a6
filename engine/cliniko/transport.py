"""The only way a request leaves cliniko-switch for Cliniko: GET, verified TLS, one host.

`GetOnlyTransport` sits below the HTTP client, so the read-only promise does not depend on the
code above it: any method other than GET raises `WriteRefused` before a connection is opened.
It also refuses to carry an Authorization header to any origin but the API's, and refuses
plain http to anything but this machine (`check_transport_url`, the rule `validate_api_url`
applies to the API URL). TLS verification is always on: the inner transport is built here,
with `verify=True`, and nothing accepts a flag, an SSL context or another transport to put
in its place.
"""

from __future__ import annotations

import httpx

from engine.cliniko.errors import ForeignURL, InsecureURL, WriteRefused
from engine.cliniko.keys import check_transport_url

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL | str) -> Origin:
    """(scheme, lower-case host, port) with the scheme's default port filled in."""
    u = httpx.URL(url) if isinstance(url, str) else url
    scheme = u.scheme.lower()
    port = u.port if u.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, u.host.lower(), port


class GetOnlyTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, api_origin: Origin | None = None, max_connections: int = 32) -> None:
        """
        api_origin: the only origin an Authorization header may be sent to.
        The requests go through a real transport with certificate and host name verification
        on and no automatic retries.
        """
        self.api_origin = api_origin
        self.refused = 0
        """Requests refused (non-GET, plain http off this machine, or credentials for a
        foreign origin)."""
        self._inner = httpx.AsyncHTTPTransport(
            verify=True,
            http1=True,
            http2=False,
            retries=0,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
            ),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            self.refused += 1
            raise WriteRefused(
                f"Refused to send {request.method} {request.url.path}: "
                "cliniko-switch only sends GET requests to Cliniko."
            )
        try:
            check_transport_url(request.url.scheme, request.url.host)
        except InsecureURL:
            self.refused += 1
            raise
        if (
            self.api_origin is not None
            and "authorization" in request.headers
            and origin_of(request.url) != self.api_origin
        ):
            self.refused += 1
            raise ForeignURL(
                f"Refused to send the API key to {request.url.host}: "
                "it is only ever sent to the API host.",
                path=request.url.path,
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
