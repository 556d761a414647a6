"""The sandbox's API keys, checked the way Cliniko checks them (API-FACTS.md section 1).

A key is `<random>-<shard>`. HTTP Basic carries it as the user name with an empty password.
The key is accepted with or without its `-<shard>` suffix; a suffix naming another shard is
refused with the host the key belongs to. Each key has a role: an `administrator` sees
everything, a `restricted` key (a user without permission) is refused with 403 everywhere
except `/v1/user`. Revoked keys are refused like unknown ones, with their own message.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Literal

Role = Literal["administrator", "restricted"]
ROLES: tuple[Role, ...] = ("administrator", "restricted")

SHARD_RE = re.compile(r"^\w{2}\d{1,2}$")


def split_key(key: str) -> tuple[str, str | None]:
    """`abc-au2` -> (`abc`, `au2`); a key without a shard-shaped suffix -> (key, None)."""
    base, sep, suffix = key.rpartition("-")
    if sep and base and SHARD_RE.match(suffix):
        return base, suffix
    return key, None


def shard_host(shard: str) -> str:
    return f"api.{shard}.cliniko.com"


@dataclass(frozen=True)
class AuthResult:
    """The outcome of checking one request's credentials.

    `status` is 200 when the key is good; otherwise 401 and `error` says why. `key_id` is the
    key without its suffix (what the rate limit counts against); `role` is the key's role.
    """

    status: int
    error: str = ""
    key_id: str = ""
    role: Role = "administrator"

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Key:
    role: Role
    revoked: bool = False


def _random_part() -> str:
    # token_urlsafe may contain "-", which would make the suffix split ambiguous.
    return secrets.token_urlsafe(24).replace("-", "x")


class KeyRing:
    """The keys one sandbox accepts. Thread-safe: tests add and revoke keys while it serves."""

    def __init__(self, shard: str) -> None:
        if not SHARD_RE.match(shard):
            raise ValueError(f"not a shard id: {shard!r} (expected e.g. au1, uk1)")
        self.shard = shard
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}

    def add_key(self, role: Role = "administrator") -> str:
        """Make a new key with `role`; returns it with its `-<shard>` suffix."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        base = _random_part()
        with self._lock:
            self._keys[base] = _Key(role)
        return f"{base}-{self.shard}"

    def revoke(self, key: str) -> None:
        """Revoke a key (given with or without its suffix); unknown keys raise KeyError."""
        base, _ = split_key(key)
        with self._lock:
            self._keys[base].revoked = True

    def role_of(self, key: str) -> Role | None:
        base, _ = split_key(key)
        with self._lock:
            entry = self._keys.get(base)
            return None if entry is None or entry.revoked else entry.role

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def check_key(self, key: str) -> AuthResult:
        """Check a bare key (the Basic-auth user name)."""
        base, suffix = split_key(key)
        if suffix is not None and suffix.lower() != self.shard.lower():
            return AuthResult(
                401,
                f"this API key belongs to shard {suffix}: send it to "
                f"https://{shard_host(suffix)}/v1, not to {shard_host(self.shard)}",
            )
        with self._lock:
            entry = self._keys.get(base)
            role = entry.role if entry else "administrator"
            revoked = entry.revoked if entry else False
        if entry is None:
            return AuthResult(401, "invalid API key")
        if revoked:
            return AuthResult(401, "this API key has been revoked")
        return AuthResult(200, key_id=base, role=role)

    def check_header(self, authorization: str | None) -> AuthResult:
        """Check an `Authorization` header: Basic, user name = key, password empty."""
        if not authorization:
            return AuthResult(
                401, "authentication required: HTTP Basic with the API key as the user name"
            )
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            return AuthResult(401, "authentication must be HTTP Basic with the API key")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return AuthResult(401, "malformed Basic credentials")
        user, _, _password = decoded.partition(":")
        if not user:
            return AuthResult(401, "invalid API key")
        return self.check_key(user)
