"""The retry policy (engine.cliniko.retry): classification, backoff, budgets."""

from __future__ import annotations

import random
import ssl

import httpx
import pytest

from engine.cliniko import (
    AuthError,
    BadResponse,
    ClientRequestError,
    ClinikoError,
    NetworkError,
    Outcome,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServerError,
    SetupError,
    TLSFailure,
)

T = "/v1/patients?page=3"
HOST = "api.au1.cliniko.com"


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_ok(status: int) -> None:
    assert policy().classify_status(status, target=T, host=HOST).outcome is Outcome.OK


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408])
def test_5xx_and_408_are_retried(status: int) -> None:
    d = policy().classify_status(status, target=T, host=HOST)
    assert d.outcome is Outcome.RETRY
    assert d.reason == str(status)
    assert isinstance(d.error, ServerError)
    assert d.error.path == T
    assert d.error.status == status


def test_429_is_rate_limited() -> None:
    d = policy().classify_status(429, target=T, host=HOST)
    assert d.outcome is Outcome.RATE_LIMITED
    assert isinstance(d.error, RateLimited)


def test_401_is_fatal_auth_error() -> None:
    d = policy().classify_status(401, target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, AuthError)
    assert isinstance(d.error, SetupError)
    assert "key unknown or revoked" in str(d.error)
    assert "My Info → Manage API keys" in str(d.error)
    assert "My Info → Manage API keys" in d.error.hint


def test_403_is_fatal_permission_denied() -> None:
    d = policy().classify_status(403, target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, PermissionDenied)
    assert "lacks permission" in str(d.error)
    assert "administrator" in d.error.hint
    assert d.error.path == T


@pytest.mark.parametrize("status", [400, 404, 405, 409, 410, 422])
def test_other_4xx_is_a_request_error(status: int) -> None:
    d = policy().classify_status(status, target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert type(d.error) is ClientRequestError
    assert d.error.status == status
    assert d.error.path == T
    assert str(status) in str(d.error)


def test_redirects_are_not_followed() -> None:
    d = policy().classify_status(
        301, target=T, host=HOST, location="https://elsewhere.example/v1/patients"
    )
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, ClientRequestError)
    assert "elsewhere.example" in str(d.error)
    assert "region" in d.error.hint


def test_bad_body_is_retried_as_bad_response() -> None:
    d = policy().bad_body(T, "invalid JSON", status=200)
    assert d.outcome is Outcome.RETRY
    assert d.budget == "bad_body"
    assert isinstance(d.error, BadResponse)
    assert T in str(d.error)


def _request() -> httpx.Request:
    return httpx.Request("GET", f"https://{HOST}{T}")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("t"), "connect-timeout"),
        (httpx.ReadTimeout("t"), "timeout"),
        (httpx.WriteTimeout("t"), "timeout"),
        (httpx.PoolTimeout("t"), "timeout"),
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ReadError("reset"), "dropped"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "dropped"),
        (httpx.WriteError("broken pipe"), "transport"),
        (httpx.ProxyError("proxy"), "transport"),
    ],
)
def test_transport_failures_are_retried_as_network_errors(
    exc: httpx.HTTPError, reason: str
) -> None:
    d = policy().classify_exception(exc, target=T, host=HOST)
    assert d.outcome is Outcome.RETRY
    assert d.reason == reason
    assert isinstance(d.error, NetworkError)
    assert not isinstance(d.error, TLSFailure)
    assert HOST in str(d.error)
    assert "VPN" in d.error.hint
    assert "region" in d.error.hint


def test_decoding_error_is_a_bad_body() -> None:
    d = policy().classify_exception(httpx.DecodingError("gzip"), target=T, host=HOST)
    assert d.budget == "bad_body"
    assert isinstance(d.error, BadResponse)


def test_local_errors_are_fatal() -> None:
    d = policy().classify_exception(httpx.UnsupportedProtocol("x"), target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, ClinikoError)


def _wrapped(inner: BaseException) -> httpx.ConnectError:
    """An httpx.ConnectError caused by `inner`, the way httpx raises it."""
    try:
        try:
            raise inner
        except BaseException as e:
            raise httpx.ConnectError(str(e)) from e
    except httpx.ConnectError as outer:
        return outer


def test_certificate_failure_is_fatal_tls() -> None:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    err.verify_message = "self-signed certificate"
    d = policy().classify_exception(_wrapped(err), target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, TLSFailure)
    assert "self-signed certificate" in str(d.error)
    assert "cannot be turned off" in d.error.hint


def test_certificate_failure_recognised_from_text_alone() -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    d = policy().classify_exception(exc, target=T, host=HOST)
    assert d.outcome is Outcome.FATAL
    assert isinstance(d.error, TLSFailure)


def test_other_tls_failures_are_retried_a_few_times() -> None:
    d = policy().classify_exception(
        _wrapped(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
        target=T,
        host=HOST,
    )
    assert d.outcome is Outcome.RETRY
    assert d.budget == "tls"
    assert isinstance(d.error, TLSFailure)
    attempts = policy(max_tls_attempts=3).attempts()
    attempts.after(d)
    attempts.after(d)
    with pytest.raises(TLSFailure):
        attempts.after(d)


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    p = RetryPolicy(base_s=0.5, cap_s=30.0, rng=random.Random(5))
    for failures in range(1, 20):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        samples = [p.backoff(failures) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spans the whole range
        assert min(samples) < ceiling * 0.2


def test_attempts_give_up_after_max_attempts() -> None:
    p = policy(max_attempts=4, base_s=0.01)
    attempts = p.attempts()
    d = p.classify_status(503, target=T, host=HOST)
    waits = [attempts.after(d) for _ in range(3)]
    assert all(w >= 0 for w in waits)
    with pytest.raises(ServerError) as info:
        attempts.after(d)
    assert "gave up after 4" in str(info.value)
    assert attempts.failures == 4


def test_mixed_failures_share_one_budget() -> None:
    p = policy(max_attempts=3)
    attempts = p.attempts()
    attempts.after(p.classify_status(502, target=T, host=HOST))
    attempts.after(p.classify_exception(httpx.ReadTimeout("t"), target=T, host=HOST))
    with pytest.raises(NetworkError):
        attempts.after(p.classify_exception(httpx.ConnectError("x"), target=T, host=HOST))


def test_429_does_not_count_as_a_failure() -> None:
    p = policy(max_attempts=2, max_rate_limited=10)
    attempts = p.attempts()
    limited = p.classify_status(429, target=T, host=HOST)
    for _ in range(10):
        assert attempts.after(limited) == 0.0
    assert attempts.failures == 0
    attempts.after(p.classify_status(500, target=T, host=HOST))  # still one retry left
    with pytest.raises(RateLimited):
        attempts.after(limited)  # the 11th 429: past the generous cap


def test_bad_bodies_have_their_own_small_budget() -> None:
    p = policy(max_bad_bodies=3)
    attempts = p.attempts()
    bad = p.bad_body(T, "invalid JSON")
    attempts.after(bad)
    attempts.after(bad)
    with pytest.raises(BadResponse):
        attempts.after(bad)


def test_fatal_raises_at_once() -> None:
    p = policy()
    with pytest.raises(AuthError):
        p.attempts().after(p.classify_status(401, target=T, host=HOST))


def test_default_policy() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.base_s, p.cap_s) == (8, 0.5, 30.0)


def test_a_handshake_timeout_is_a_timeout() -> None:
    """httpx leaves an SSLWantReadError in the context of a handshake that timed out."""
    try:
        try:
            raise ssl.SSLWantReadError(2, "The operation did not complete (read)")
        except ssl.SSLError:
            raise httpx.ConnectTimeout("") from None
    except httpx.ConnectTimeout as exc:
        exc.__context__ = ssl.SSLWantReadError(2, "read")
        d = policy().classify_exception(exc, target=T, host=HOST)
    assert d.outcome is Outcome.RETRY
    assert d.reason == "connect-timeout"
    assert not isinstance(d.error, TLSFailure)
    wrapped = policy().classify_exception(
        _wrapped(ssl.SSLWantReadError(2, "read")), target=T, host=HOST
    )
    assert wrapped.reason == "connect"
