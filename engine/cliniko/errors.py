"""Everything the Cliniko client can raise.

Every error says what went wrong (`str(error)`) and what the operator should do about it
(`error.hint`). Messages are built from paths, statuses and shard names only: never from the
API key, a response body or anything else that could hold a patient's details.
"""

from __future__ import annotations


class ClinikoError(Exception):
    """Base of every error raised by `engine.cliniko`."""

    default_hint = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.path = path
        """The request path (and query) the error belongs to, when there is one."""
        self.status = status
        """The HTTP status that caused it, when there is one."""

    def __str__(self) -> str:
        return self.message


# --- set-up problems: the operator has to change something before a run can work --------------


class SetupError(ClinikoError):
    """Bad input from the operator: key, region, URL or permissions (exit code 2)."""


class BadKey(SetupError):
    default_hint = (
        "Copy the API key again from Cliniko (My Info → Manage API keys) and paste it whole."
    )


class RegionMismatch(SetupError):
    default_hint = "Choose the region the key belongs to (the suffix after its last '-')."


class InsecureURL(SetupError):
    default_hint = "Use https://, or plain http:// only to this machine (127.0.0.1, localhost)."


class AuthError(SetupError):
    default_hint = "Create a new API key in Cliniko (My Info → Manage API keys) and use that."


class PermissionDenied(SetupError):
    default_hint = "Use an API key created by a Cliniko administrator."


# --- programming or server anomalies that must never be papered over ------------------------


class WriteRefused(ClinikoError):
    """A request other than GET reached the transport. Nothing was sent."""

    default_hint = "cliniko-switch only ever reads from Cliniko; this is a bug, please report it."


class ForeignURL(ClinikoError):
    """A URL (for example a `links.next`) points away from the API host. Nothing was sent."""

    default_hint = (
        "Cliniko returned a link to another server; the key is only ever sent to the API host. "
        "Check --api-url and the region."
    )


# --- per-request failures -------------------------------------------------------------------


class ClientRequestError(ClinikoError):
    """A 4xx (other than 401/403/429) for one request: recorded against the resource."""

    default_hint = "Cliniko refused this request; the rest of the download is not affected."


class ServerError(ClinikoError):
    """Cliniko kept answering 5xx after every retry."""

    default_hint = "Cliniko is having trouble; wait a few minutes and run again (it resumes)."


class RateLimited(ClinikoError):
    """Cliniko kept answering 429 far beyond what the rate limiter should allow."""

    default_hint = (
        "Another program may be using the same Cliniko user's quota; stop it, or lower "
        "--rate-limit, and run again (it resumes)."
    )


class BadResponse(ClinikoError):
    """A 2xx whose body is not a JSON object, after a few retries."""

    default_hint = (
        "Cliniko sent something that is not JSON; check --api-url and any proxy in between, "
        "then run again (it resumes)."
    )


class NetworkError(ClinikoError):
    """Cliniko could not be reached (connection failures, timeouts) after every retry."""

    default_hint = (
        "Check the network connection, VPN or proxy, and that the region (shard) is right, "
        "then run again (it resumes)."
    )


class TLSFailure(NetworkError):
    """The TLS handshake failed (for example the certificate could not be verified)."""

    default_hint = (
        "The server's certificate could not be verified. A proxy or antivirus that inspects "
        "HTTPS can cause this; connect from a network without one. Verification cannot be "
        "turned off."
    )
