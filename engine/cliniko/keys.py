"""The API key, its shard, the region check and the base URL (API-FACTS.md section 1).

The key is held as a `SecretStr`: its repr and str are masked, and no error message in this
package ever contains it.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from engine.cliniko.errors import BadKey, InsecureURL, RegionMismatch

ENV_VAR = "CLINIKO_API_KEY"
DEFAULT_SHARD = "au1"
"""Keys without a shard suffix are older keys of the au1 shard."""

KNOWN_SHARDS: Mapping[str, str] = MappingProxyType(
    {
        "au1": "Australia",
        "au2": "Australia",
        "au3": "Australia",
        "au4": "Australia",
        "ca1": "Canada",
        "uk1": "United Kingdom",
        "eu1": "Europe",
        "us1": "United States",
    }
)

# The documented pattern is /\w{2}\d{1,2}/i. `\w` is narrowed to ASCII letters and digits:
# the shard becomes part of a host name, where `_` and non-ASCII letters cannot appear.
_SHARD_RE = re.compile(r"^[a-z0-9]{2}[0-9]{1,2}$", re.IGNORECASE)

MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 512
# Printable ASCII except space and ':' (Basic auth cannot carry ':' in the user name).
_KEY_CHARS_RE = re.compile(r"^[!-9;-~]+$")


def region_label(shard: str) -> str:
    """The shard with its region, e.g. "uk1 (United Kingdom)" or "xx9 (unknown region)"."""
    return f"{shard} ({KNOWN_SHARDS.get(shard, 'unknown region')})"


def is_valid_shard(shard: str) -> bool:
    return bool(_SHARD_RE.match(shard))


class ApiKey(BaseModel):
    """A parsed Cliniko API key. Build it with `parse_key`."""

    model_config = ConfigDict(frozen=True)

    secret: SecretStr
    """The whole key as given (with its suffix, if any): what is sent as the user name."""
    shard: str
    """Lower-case shard id, e.g. "au2"."""
    has_suffix: bool
    """False for an older key without a shard suffix (shard defaults to au1)."""
    warning: str | None = None
    """Set when the shard is valid but not one we know; the run may still work."""

    @property
    def region(self) -> str:
        return KNOWN_SHARDS.get(self.shard, "unknown region")

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self.secret.get_secret_value()


def parse_key(raw: str) -> ApiKey:
    """Parse and sanity-check a pasted key; raise `BadKey` (never echoing the key)."""
    key = raw.strip()
    if not key:
        raise BadKey("No Cliniko API key was given.")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise BadKey(
            "The API key contains spaces, line breaks or control characters; "
            "it was probably copied with something else around it."
        )
    if key[0] in "\"'`" or key[-1] in "\"'`":
        raise BadKey("The API key is wrapped in quotes; paste it without them.")
    if not _KEY_CHARS_RE.match(key):
        raise BadKey("The API key contains characters that cannot be part of a Cliniko key.")
    if len(key) < MIN_KEY_LENGTH:
        raise BadKey(f"The API key is too short ({len(key)} characters); it was probably cut off.")
    if len(key) > MAX_KEY_LENGTH:
        raise BadKey(f"The API key is too long ({len(key)} characters); it is not a Cliniko key.")

    shard = DEFAULT_SHARD
    has_suffix = False
    body, sep, suffix = key.rpartition("-")
    if sep and body and is_valid_shard(suffix):
        shard = suffix.lower()
        has_suffix = True
    warning = None
    if shard not in KNOWN_SHARDS:
        warning = (
            f"Shard {shard} is not one of the regions we know "
            f"({', '.join(sorted(KNOWN_SHARDS))}); trying https://api.{shard}.cliniko.com."
        )
    return ApiKey(secret=SecretStr(key), shard=shard, has_suffix=has_suffix, warning=warning)


def check_region(key: ApiKey, region: str) -> None:
    """Raise `RegionMismatch` unless `region` (a shard id such as "uk1") is the key's shard."""
    chosen = region.strip().lower()
    if chosen == key.shard:
        return
    shown = chosen if is_valid_shard(chosen) else "that region"
    message = (
        f"This key belongs to shard {region_label(key.shard)}; choose {key.shard} (not {shown})."
    )
    if not key.has_suffix:
        message += " Keys without a region suffix are Australian (au1) keys."
    raise RegionMismatch(message)


def key_from_env_or_prompt(prompt: Callable[[str], str] | None = None) -> ApiKey:
    """The key from $CLINIKO_API_KEY, else asked for with hidden input (`getpass`)."""
    raw = os.environ.get(ENV_VAR, "")
    if not raw.strip():
        ask = getpass.getpass if prompt is None else prompt
        raw = ask("Cliniko API key (input hidden): ")
    return parse_key(raw)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` (exactly: "localhost." is a DNS name like any other) and for
    an IPv4 or IPv6 loopback address written as such ("127.1" or "0x7f.0.0.1" are not)."""
    host = host.lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport_url(scheme: str, host: str) -> None:
    """Raise `InsecureURL` unless a request may go to `scheme://host`: https anywhere, plain
    http only to this machine. The one rule, applied to the API URL when a client is made
    (`validate_api_url`) and again to every request as it leaves (`GetOnlyTransport`)."""
    scheme = scheme.lower()
    if scheme == "https":
        return
    if scheme != "http":
        raise InsecureURL(f"The API URL must start with https:// (got {scheme or 'none'}://).")
    if not is_loopback_host(host):
        raise InsecureURL(
            f"Plain http is only allowed to this machine, not to {host}; "
            "the key would cross the network unencrypted."
        )


def validate_api_url(url: str) -> str:
    """Return `url` without a trailing '/', or raise `InsecureURL`.

    https is allowed to any host; plain http only to a loopback host (the sandbox). The rule
    is applied to the URL as the standard library reads it and as httpx (which sends the
    requests) reads it, so no URL can mean this machine to one and another host to the other.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    # Never echo a URL that carries credentials.
    shown = f"{scheme}://{host}" if parts.username or parts.password else text
    if parts.username or parts.password or "@" in parts.netloc:
        raise InsecureURL(
            f"The API URL {shown} must not contain a user name or password.",
            hint="Give the key through CLINIKO_API_KEY or the prompt, never in a URL.",
        )
    if not host:
        raise InsecureURL(f"The API URL {shown!r} has no host.")
    if parts.query or parts.fragment:
        raise InsecureURL(f"The API URL {shown} must not have a query or fragment.")
    check_transport_url(scheme, host)
    try:
        wire = httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        raise InsecureURL(f"The API URL {shown!r} is not a valid URL.") from None
    check_transport_url(wire.scheme, wire.host)
    return text.rstrip("/")


def base_url_for(shard: str, api_url_override: str | None = None) -> str:
    """`https://api.{shard}.cliniko.com/v1`, or the validated override."""
    if api_url_override is not None:
        return validate_api_url(api_url_override)
    normalised = shard.strip().lower()
    if not is_valid_shard(normalised):
        raise ValueError(f"not a Cliniko shard id: {shard!r}")
    return f"https://api.{normalised}.cliniko.com/v1"
