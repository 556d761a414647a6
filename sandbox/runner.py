"""Run the sandbox in a background thread: the handle tests, benchmarks and the demo use.

    with running_sandbox(size="tiny", seed=1) as sb:
        httpx.get(f"{sb.base_url}/patients", auth=(sb.api_key, ""), headers=...)

`start_sandbox(store, ...)` serves an existing store on 127.0.0.1 (never another interface)
from its own event loop in a daemon thread, and returns once the socket is bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from aiohttp import web

from sandbox.auth import KeyRing
from sandbox.faults import FaultSpec
from sandbox.ratelimit import DEFAULT_RATE_LIMIT
from sandbox.server import SandboxServer, SandboxStats
from sandbox.store import ClinicStore

HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 0.1


class SandboxHandle:
    """A running sandbox. Every method may be called from any thread."""

    def __init__(self, server: SandboxServer, store: ClinicStore, api_key: str) -> None:
        self._server = server
        self.store = store
        self.api_key = api_key
        """The administrator key made at start, with its `-<shard>` suffix."""
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # ------------------------------------------------------------------------------ reading

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>/v1`."""
        return self._server.base_url

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return self._server.origin

    @property
    def shard(self) -> str:
        return self._server.shard

    @property
    def server(self) -> SandboxServer:
        """The application's state (limiter, fault injector, latency), for advanced use."""
        return self._server

    @property
    def keys(self) -> KeyRing:
        """`add_key(role="administrator"|"restricted") -> key`, `revoke(key)`."""
        return self._server.keys

    @property
    def stats(self) -> SandboxStats:
        return self._server.stats

    @property
    def faults(self) -> FaultSpec:
        return self._server.faults.spec

    @property
    def rate_limit(self) -> tuple[int, float]:
        return self._server.limiter.limit

    @property
    def latency(self) -> tuple[float, float]:
        """(latency_ms, jitter_ms)."""
        return self._server.latency.setting

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped.is_set()

    # ----------------------------------------------------------------------------- changing

    def set_faults(self, spec: FaultSpec | str) -> None:
        """Replace the injected faults ("" for none); the random sequence restarts."""
        self._server.faults.configure(spec)

    def set_rate_limit(self, limit: int, window_s: float) -> None:
        """Change the per-key limit; every key's window starts afresh."""
        self._server.limiter.configure(limit, window_s)

    def reset_rate_limit_windows(self) -> None:
        self._server.limiter.reset()

    def set_latency(self, latency_ms: float, jitter_ms: float | None = None) -> None:
        self._server.latency.configure(latency_ms, jitter_ms)

    def reset_stats(self) -> None:
        self._server.stats.reset()

    def auth(self) -> tuple[str, str]:
        """Basic-auth pair for httpx: `(api_key, "")`."""
        return (self.api_key, "")

    # ---------------------------------------------------------------------------- lifecycle

    def _start(self, port: int) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(self._bind(port))
                except BaseException as exc:
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                loop.run_forever()
            finally:
                with suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"cliniko-sandbox:{port}", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the sandbox did not start in time")
        if failure:
            self._thread.join()
            self._stopped.set()
            raise failure[0]

    async def _bind(self, port: int) -> None:
        runner = web.AppRunner(
            self._server.make_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self.port = int(bound[1])
        self._server.set_origin(HOST, self.port)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        """Stop serving, close every connection and join the thread. Idempotent."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or loop.is_closed():
                return
            if threading.current_thread() is thread:  # called from a handler: no joining
                loop.create_task(self._shutdown()).add_done_callback(lambda _: loop.stop())
                return
            try:
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
                with suppress(Exception):
                    future.result(timeout=5.0)
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # the loop already stopped and closed
                pass
            thread.join(timeout=5.0)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SandboxHandle {self.base_url} shard={self.shard} {state}>"


def start_sandbox(
    store: ClinicStore,
    *,
    shard: str | None = None,
    rate_limit: tuple[int, float] = DEFAULT_RATE_LIMIT,
    latency_ms: float = 0.0,
    jitter_ms: float | None = None,
    faults: FaultSpec | str = "",
    port: int = 0,
) -> SandboxHandle:
    """Serve `store` on 127.0.0.1:`port` (0: a free port) in a daemon thread.

    `shard` (default: the store's) is the shard this sandbox plays: keys end in `-<shard>`.
    """
    shard = shard or getattr(store, "shard", None) or "au1"
    keys = KeyRing(shard)
    api_key = keys.add_key("administrator")
    server = SandboxServer(
        store,
        shard=shard,
        keys=keys,
        rate_limit=rate_limit,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        faults=faults,
    )
    handle = SandboxHandle(server, store, api_key)
    handle._start(port)
    return handle


@contextmanager
def running_sandbox(
    size: str = "tiny", seed: int = 1, *, shard: str = "au1", **opts: Any
) -> Iterator[SandboxHandle]:
    """Generate a clinic, serve it, and stop and close it on the way out.

    `opts` go to `start_sandbox` (rate_limit, latency_ms, jitter_ms, faults, port), except
    `shape`, `anchor` and `path`, which go to `ClinicStore.generate`.
    """
    gen_opts = {k: opts.pop(k) for k in ("shape", "anchor", "path") if k in opts}
    store = ClinicStore.generate(size, seed, shard=shard, **gen_opts)
    try:
        with start_sandbox(store, shard=shard, **opts) as handle:
            yield handle
    finally:
        store.close()
