"""The one retry policy: which outcomes are retried, how long to wait, when to give up.

`RetryPolicy.classify_status` / `classify_exception` / `bad_body` turn one attempt's outcome
into a `Decision`; `Attempts` (one per request) counts decisions against their budgets and
says how long to back off, or raises the decision's error when the budget is spent.

- 5xx, 408, timeouts, dropped connections and other transport errors: retried with exponential
  backoff and full jitter.
- 429: the caller blocks the shared rate limiter until X-RateLimit-Reset; it does not count as a
  failed attempt, only against a generous cap of its own.
- A 2xx whose body is not a JSON object: retried a couple of times.
- 401, 403, other 4xx, redirects, certificate failures: fatal at once.
"""

from __future__ import annotations

import enum
import random
import ssl
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import httpx

from engine.cliniko.errors import (
    AuthError,
    BadResponse,
    ClientRequestError,
    ClinikoError,
    NetworkError,
    PermissionDenied,
    RateLimited,
    ServerError,
    TLSFailure,
)

Budget = Literal["transient", "tls", "bad_body", "rate_limited"]


class Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FATAL = "fatal"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    """Short and safe to log: "200", "503", "timeout", "connect", "dropped", "not-json"."""
    error: ClinikoError | None = None
    """Raised when fatal, or when the budget for this kind of failure is spent."""
    budget: Budget = "transient"


OK = Decision(Outcome.OK, "ok")


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


# Raised inside the ssl machinery while it merely waits for data (e.g. under a timeout).
_NOT_FAILURES = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error somewhere in an exception's cause/context chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError) and not isinstance(current, _NOT_FAILURES):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    """Attempts per request when it keeps failing with 5xx/timeouts/dropped connections."""
    base_s: float = 0.5
    cap_s: float = 30.0
    max_tls_attempts: int = 3
    """TLS handshake failures other than a failed certificate check (which is fatal at once)."""
    max_bad_bodies: int = 3
    """Attempts per request when the body is not a JSON object."""
    max_rate_limited: int = 50
    """429s tolerated for one request; the limiter should make even one rare."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(failures - 1))]."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(failures - 1, 0))
        return self.rng.uniform(0.0, ceiling)

    def limit(self, budget: Budget) -> int:
        return {
            "transient": self.max_attempts,
            "tls": self.max_tls_attempts,
            "bad_body": self.max_bad_bodies,
            "rate_limited": self.max_rate_limited + 1,
        }[budget]

    def attempts(self) -> Attempts:
        return Attempts(self)

    # --- classification -----------------------------------------------------------------

    def classify_status(
        self, status: int, *, target: str, host: str, location: str | None = None
    ) -> Decision:
        """Classify an HTTP status for `GET target` sent to `host`."""
        if 200 <= status < 300:
            return OK
        reason = str(status)
        if status == 429:
            return Decision(
                Outcome.RATE_LIMITED,
                reason,
                RateLimited(
                    f"Cliniko kept answering 429 (too many requests) to GET {target}.",
                    path=target,
                    status=status,
                ),
                budget="rate_limited",
            )
        if 300 <= status < 400:
            where = _host_of(location) if location else ""
            to = f" to {where}" if where else ""
            return Decision(
                Outcome.FATAL,
                reason,
                ClientRequestError(
                    f"Cliniko redirected GET {target}{to} ({status}); redirects are not followed.",
                    hint="The base URL is probably wrong: check the region and --api-url.",
                    path=target,
                    status=status,
                ),
            )
        if status == 401:
            return Decision(
                Outcome.FATAL,
                reason,
                AuthError(
                    "Cliniko refused the API key (401): key unknown or revoked: create a new "
                    "API key in Cliniko (My Info → Manage API keys).",
                    path=target,
                    status=status,
                ),
            )
        if status == 403:
            return Decision(
                Outcome.FATAL,
                reason,
                PermissionDenied(
                    f"Cliniko refused GET {target} (403): the key's user lacks permission; "
                    "use an administrator's key.",
                    path=target,
                    status=status,
                ),
            )
        if status == 408 or status >= 500:
            return Decision(
                Outcome.RETRY,
                reason,
                ServerError(
                    f"Cliniko answered {status} to GET {target}; "
                    f"gave up after {self.max_attempts} failed attempts.",
                    path=target,
                    status=status,
                ),
            )
        if 400 <= status < 500:
            return Decision(
                Outcome.FATAL,
                reason,
                ClientRequestError(
                    f"Cliniko answered {status} to GET {target}.", path=target, status=status
                ),
            )
        return self.bad_body(target, f"unexpected status {status}", status=status)

    def bad_body(self, target: str, why: str, *, status: int | None = None) -> Decision:
        """A response that is not a JSON object (`why` must not quote the body)."""
        return Decision(
            Outcome.RETRY,
            "not-json",
            BadResponse(
                f"Cliniko's answer to GET {target} is not a JSON object ({why}); "
                f"gave up after {self.max_bad_bodies} attempts.",
                path=target,
                status=status,
            ),
            budget="bad_body",
        )

    def classify_exception(self, exc: httpx.HTTPError, *, target: str, host: str) -> Decision:
        """Classify an exception raised by httpx while sending `GET target` to `host`."""
        unreachable = (
            f"{host} could not be reached for GET {target} after {self.max_attempts} attempts"
        )
        if isinstance(exc, httpx.TimeoutException):  # before TLS: a slow handshake is slow
            reason = "connect-timeout" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
            return Decision(
                Outcome.RETRY,
                reason,
                NetworkError(f"{unreachable} (timed out).", path=target),
            )
        tls = _ssl_error(exc)
        if tls is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            if tls is None or isinstance(tls, ssl.SSLCertVerificationError):
                detail = getattr(tls, "verify_message", None) or "certificate verify failed"
                return Decision(
                    Outcome.FATAL,
                    "tls",
                    TLSFailure(
                        f"The TLS certificate of {host} could not be verified ({detail}).",
                        path=target,
                    ),
                )
            return Decision(
                Outcome.RETRY,
                "tls",
                TLSFailure(
                    f"The TLS handshake with {host} failed "
                    f"{self.max_tls_attempts} times ({type(tls).__name__}).",
                    path=target,
                ),
                budget="tls",
            )
        if isinstance(exc, httpx.DecodingError):
            return self.bad_body(target, "content could not be decoded")
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return Decision(
                Outcome.FATAL,
                "local",
                ClinikoError(
                    f"GET {target} could not be sent ({type(exc).__name__}).",
                    hint="This is a bug in cliniko-switch, please report it.",
                    path=target,
                ),
            )
        if isinstance(exc, httpx.ConnectError):
            return Decision(
                Outcome.RETRY,
                "connect",
                NetworkError(f"{unreachable} (connection failed).", path=target),
            )
        if isinstance(exc, httpx.TransportError):
            # ReadError, WriteError, RemoteProtocolError (dropped), ProxyError, ...
            dropped = isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
            return Decision(
                Outcome.RETRY,
                "dropped" if dropped else "transport",
                NetworkError(
                    f"{unreachable} (connection dropped: {type(exc).__name__}).", path=target
                ),
            )
        return Decision(
            Outcome.FATAL,
            "error",
            ClinikoError(f"GET {target} failed ({type(exc).__name__}).", path=target),
        )


class Attempts:
    """The retry bookkeeping of one request."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.used: Counter[Budget] = Counter()

    @property
    def failures(self) -> int:
        """Failed attempts so far, 429s not included."""
        return sum(n for budget, n in self.used.items() if budget != "rate_limited")

    def after(self, decision: Decision) -> float:
        """Seconds to back off before the next attempt (0 for a 429: the limiter waits).

        Raises the decision's error when it is fatal or its budget is spent.
        """
        if decision.outcome is Outcome.OK:
            return 0.0
        if decision.outcome is Outcome.FATAL:
            assert decision.error is not None
            raise decision.error
        self.used[decision.budget] += 1
        if self.used[decision.budget] >= self.policy.limit(decision.budget):
            assert decision.error is not None
            raise decision.error
        if decision.outcome is Outcome.RATE_LIMITED:
            return 0.0
        return self.policy.backoff(self.failures)
