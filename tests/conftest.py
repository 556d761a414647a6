"""Shared fixtures: the Cliniko sandbox over real sockets on 127.0.0.1.

- `tiny_sandbox`  one tiny clinic served for the whole session (do not mutate its store; use
                  `make_sandbox` for that);
- `small_sandbox` a small clinic (~5,000 records, several pages per list), read-only, with a
                  generous rate limit;
- `sandbox`       the same handle for one test: stats reset before, faults, rate limit and
                  latency restored (and every key's rate-limit window forgotten) after;
- `make_sandbox`  a factory, `make_sandbox(size="tiny", seed=1, store=None, **start_opts)`,
                  for a test needing its own sandbox; every one is stopped at teardown;
- `sandbox_client` a factory of httpx clients with the sandbox's key and a proper User-Agent;
- `spy_sandbox`   a sandbox of its own serving the session's tiny store through a `StoreSpy`;
                  `store_calls` lists the arguments of every `list_page` call it received;
- `anyio_backend` "asyncio", for `@pytest.mark.anyio` tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.runner import SandboxHandle, start_sandbox
from sandbox.store import ClinicStore

pytest_plugins = ["tests.pg_server"]  # `pg_server`: a throwaway PostgreSQL server

TEST_USER_AGENT = "cliniko-switch-tests (tests@example.org)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_sandbox() -> Iterator[SandboxHandle]:
    store = ClinicStore.generate("tiny", seed=1)
    handle = start_sandbox(store)
    try:
        yield handle
    finally:
        handle.stop()
        store.close()


@pytest.fixture(scope="session")
def small_sandbox() -> Iterator[SandboxHandle]:
    """A small clinic (~5,000 records) for the session; read-only, like `tiny_sandbox`."""
    store = ClinicStore.generate("small", seed=1)
    handle = start_sandbox(store, rate_limit=(100_000, 60.0))
    try:
        yield handle
    finally:
        handle.stop()
        store.close()


@pytest.fixture
def sandbox(tiny_sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    faults = tiny_sandbox.faults
    rate_limit = tiny_sandbox.rate_limit
    latency = tiny_sandbox.latency
    tiny_sandbox.reset_rate_limit_windows()
    tiny_sandbox.reset_stats()
    try:
        yield tiny_sandbox
    finally:
        tiny_sandbox.set_faults(faults)
        tiny_sandbox.set_rate_limit(*rate_limit)
        tiny_sandbox.set_latency(*latency)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    started: list[tuple[SandboxHandle, ClinicStore | None]] = []

    def make(size: str = "tiny", seed: int = 1, *, store: Any = None, **opts: Any) -> SandboxHandle:
        owned = None
        if store is None:
            owned = store = ClinicStore.generate(size, seed, shard=opts.get("shard", "au1"))
        try:
            handle = start_sandbox(store, **opts)
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        started.append((handle, owned))
        return handle

    try:
        yield make
    finally:
        for handle, owned in reversed(started):
            handle.stop()
            if owned is not None:
                owned.close()


class StoreSpy:
    """Wraps a store; records the arguments of every `list_page` call, delegates the rest."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def list_page(
        self,
        resource: str,
        variant: str,
        q: list[str],
        sort: str | None,
        order: str | None,
        page: int,
        per_page: int,
        base_url: str,
    ) -> Any:
        self.calls.append(
            {
                "resource": resource,
                "variant": variant,
                "q": list(q),
                "sort": sort,
                "order": order,
                "page": page,
                "per_page": per_page,
                "base_url": base_url,
            }
        )
        return self._store.list_page(resource, variant, q, sort, order, page, per_page, base_url)


@pytest.fixture
def spy_sandbox(
    tiny_sandbox: SandboxHandle, make_sandbox: Callable[..., SandboxHandle]
) -> SandboxHandle:
    return make_sandbox(store=StoreSpy(tiny_sandbox.store), rate_limit=(10_000, 60.0))


@pytest.fixture
def store_calls(spy_sandbox: SandboxHandle) -> list[dict[str, Any]]:
    """The `list_page` calls `spy_sandbox`'s store received, oldest first."""
    spy: StoreSpy = spy_sandbox.store  # type: ignore[assignment]
    return spy.calls


@pytest.fixture
def sandbox_client() -> Iterator[Callable[..., httpx.Client]]:
    """`sandbox_client(handle, key=None, user_agent=TEST_USER_AGENT, **httpx_opts)`."""
    clients: list[httpx.Client] = []

    def make(
        handle: SandboxHandle,
        key: str | None = None,
        user_agent: str = TEST_USER_AGENT,
        **opts: Any,
    ) -> httpx.Client:
        opts.setdefault("timeout", 10.0)
        # Plain http on loopback: no TLS, so skip loading the CA bundle (~25 ms per client).
        opts.setdefault("verify", False)
        client = httpx.Client(
            auth=(handle.api_key if key is None else key, ""),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            **opts,
        )
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="session")
def tiny_staged_master(
    tiny_sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One complete download of the session's tiny clinic (copy it before writing to it)."""
    import anyio

    from engine.cliniko import parse_key
    from engine.extract import DownloadOptions, download

    path = tmp_path_factory.mktemp("staged") / "tiny.sqlite"
    opts = DownloadOptions(
        staging_path=path, base_url=tiny_sandbox.base_url, rate_limit=(100_000, 60.0)
    )
    key = parse_key(tiny_sandbox.api_key)

    async def run() -> None:
        result = await download(key, opts)
        assert result.outcome == "complete"

    anyio.run(run)
    return path


@pytest.fixture
def tiny_staged_copy(tiny_staged_master: Any, tmp_path: Any) -> Any:
    """A private copy of the tiny staged file (mode 0600) in this test's tmp directory."""
    import shutil

    dest = tmp_path / "tiny-staged.sqlite"
    shutil.copyfile(tiny_staged_master, dest)
    dest.chmod(0o600)
    return dest
