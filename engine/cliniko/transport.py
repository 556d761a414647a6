"""The only way a request leaves cliniko-switch for Cliniko: GET, verified TLS, one host.

`GetOnlyTransport` sits below the HTTP client, so the read-only promise does not depend on the
code above it: any method other than GET raises `WriteRefused` before a connection is opened.
It also refuses to carry an Authorization header to any origin but the API's. TLS verification
is always on: the inner transport is built here with `verify=True`, and nothing accepts a flag
to turn it off.
"""

from __future__ import annotations

import httpx

from engine.cliniko.errors import ForeignURL, WriteRefused

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL | str) -> Origin:
    """(scheme, lower-case host, port) with the scheme's default port filled in."""
    u = httpx.URL(url) if isinstance(url, str) else url
    scheme = u.scheme.lower()
    port = u.port if u.port is not None else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, u.host.lower(), port


class GetOnlyTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        api_origin: Origin | None = None,
        max_connections: int = 32,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """
        api_origin: the only origin an Authorization header may be sent to.
        inner: for tests only (e.g. `httpx.MockTransport`); by default a real transport with
            certificate verification on and no automatic retries.
        """
        self.api_origin = api_origin
        self.refused = 0
        """Requests refused (non-GET, or credentials for a foreign origin)."""
        if inner is None:
            inner = httpx.AsyncHTTPTransport(
                verify=True,
                http1=True,
                http2=False,
                retries=0,
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=max_connections,
                ),
            )
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            self.refused += 1
            raise WriteRefused(
                f"Refused to send {request.method} {request.url.path}: "
                "cliniko-switch only sends GET requests to Cliniko."
            )
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
