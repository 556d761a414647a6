"""Keys, shards, roles and the User-Agent rule, over real sockets."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sandbox.auth import KeyRing, split_key
from sandbox.runner import SandboxHandle

pytestmark = pytest.mark.integration

Client = Callable[..., httpx.Client]


def test_key_with_and_without_shard_suffix(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    assert sandbox.api_key.endswith("-au1")
    bare, shard = split_key(sandbox.api_key)
    assert shard == "au1"
    for key in (sandbox.api_key, bare):
        r = sandbox_client(sandbox, key=key).get(f"{sandbox.base_url}/user")
        assert r.status_code == 200, r.text


def test_unknown_key_is_401(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    for key in ("nope-au1", "nope", ""):
        r = sandbox_client(sandbox, key=key).get(f"{sandbox.base_url}/patients")
        assert r.status_code == 401
        assert r.json()["errors"]


def test_missing_or_non_basic_auth_is_401(sandbox: SandboxHandle) -> None:
    headers = {"User-Agent": "x (a@b.c)"}
    r = httpx.get(f"{sandbox.base_url}/patients", headers=headers)
    assert r.status_code == 401
    r = httpx.get(
        f"{sandbox.base_url}/patients",
        headers={**headers, "Authorization": f"Bearer {sandbox.api_key}"},
    )
    assert r.status_code == 401
    r = httpx.get(
        f"{sandbox.base_url}/patients", headers={**headers, "Authorization": "Basic !!notb64"}
    )
    assert r.status_code == 401


def test_wrong_shard_is_401_and_names_the_right_host(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    bare, _ = split_key(sandbox.api_key)
    r = sandbox_client(sandbox, key=f"{bare}-uk1").get(f"{sandbox.base_url}/user")
    assert r.status_code == 401
    assert "api.uk1.cliniko.com" in r.json()["errors"]


def test_sandbox_playing_another_shard(make_sandbox: Callable[..., SandboxHandle]) -> None:
    handle = make_sandbox(shard="uk1")
    assert handle.api_key.endswith("-uk1")
    headers = {"User-Agent": "x (a@b.c)"}
    r = httpx.get(f"{handle.base_url}/user", auth=handle.auth(), headers=headers)
    assert r.status_code == 200
    bare, _ = split_key(handle.api_key)
    r = httpx.get(f"{handle.base_url}/user", auth=(f"{bare}-au1", ""), headers=headers)
    assert r.status_code == 401
    assert "api.au1.cliniko.com" in r.json()["errors"]


def test_revoked_key_is_401(sandbox: SandboxHandle, sandbox_client: Client) -> None:
    key = sandbox.keys.add_key()
    client = sandbox_client(sandbox, key=key)
    assert client.get(f"{sandbox.base_url}/user").status_code == 200
    sandbox.keys.revoke(key)
    r = client.get(f"{sandbox.base_url}/user")
    assert r.status_code == 401
    assert "revoked" in r.json()["errors"]
    # the default key is untouched
    assert sandbox_client(sandbox).get(f"{sandbox.base_url}/user").status_code == 200


def test_restricted_key_is_403_except_on_user(
    sandbox: SandboxHandle, sandbox_client: Client
) -> None:
    client = sandbox_client(sandbox, key=sandbox.keys.add_key("restricted"))
    assert client.get(f"{sandbox.base_url}/user").status_code == 200
    for path in ("/patients", "/settings", "/patients/1", "/practitioners/inactive"):
        r = client.get(f"{sandbox.base_url}{path}")
        assert r.status_code == 403, path
        assert r.json()["errors"]


@pytest.mark.parametrize(
    "agent",
    ["", "python-httpx/0.28.1", "cliniko-switch", "cliniko-switch ()", "x (not-an-email)"],
)
def test_user_agent_name_and_email_required(
    sandbox: SandboxHandle, sandbox_client: Client, agent: str
) -> None:
    client = sandbox_client(sandbox, user_agent=agent)
    r = client.get(f"{sandbox.base_url}/patients")
    assert r.status_code == 400
    assert "User-Agent" in r.json()["errors"]


@pytest.mark.parametrize(
    "agent", ["cliniko-switch (ops@mynewclinic.example)", "My Migrator 2.0 (a.b@c.co.uk)"]
)
def test_good_user_agents(sandbox: SandboxHandle, sandbox_client: Client, agent: str) -> None:
    r = sandbox_client(sandbox, user_agent=agent).get(f"{sandbox.base_url}/user")
    assert r.status_code == 200


def test_key_ring_unit() -> None:
    ring = KeyRing("au2")
    key = ring.add_key()
    assert key.endswith("-au2")
    base, shard = split_key(key)
    assert shard == "au2"
    assert "-" not in base
    assert ring.check_key(key).ok
    assert ring.check_key(base).key_id == base
    assert ring.check_key(key).key_id == base
    assert ring.check_key(base + "-AU2").ok
    assert ring.check_key(base + "-eu1").status == 401
    restricted = ring.add_key("restricted")
    assert ring.role_of(restricted) == "restricted"
    ring.revoke(restricted)
    assert ring.role_of(restricted) is None
    with pytest.raises(KeyError):
        ring.revoke("unknown")
    with pytest.raises(ValueError, match="role"):
        ring.add_key("owner")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shard"):
        KeyRing("australia")
    # a key whose last dash-part is not shard-shaped has no suffix
    assert split_key("abc-def") == ("abc-def", None)
