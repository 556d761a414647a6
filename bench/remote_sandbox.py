"""The sandbox in a process of its own, for the download benchmarks.

Cliniko's servers are not in the client's process. Served from a thread of the benchmark's
own interpreter, the sandbox (rendering every page: about as much CPU as the client spends)
would share the client's GIL and stall its event loop; on a small machine that shows as gaps
in the request rate that a real download would not have. So the download benchmarks start it
with `multiprocessing` (spawn) and talk to it over a pipe: the clinic's counts on start,
`reset()` before a run and `snapshot()` (the server's request log) after.

    with remote_sandbox(size="medium", rate_limit=(200, 6.0), latency_ms=250.0) as sb:
        sb.reset()
        ...  # download from sb.base_url with sb.api_key
        stats = sb.snapshot()
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

from sandbox.server import StatsSnapshot

_START_TIMEOUT_S = 600.0


def _serve(conn: Connection, size: str, seed: int, options: dict[str, Any]) -> None:
    from sandbox.runner import running_sandbox

    try:
        with running_sandbox(size=size, seed=seed, **options) as sandbox:
            conn.send(("ready", sandbox.base_url, sandbox.api_key, sandbox.store.counts()))
            while True:
                command = conn.recv()
                if command == "reset":
                    sandbox.reset_stats()
                    sandbox.reset_rate_limit_windows()
                    conn.send(None)
                elif command == "snapshot":
                    conn.send(sandbox.stats.snapshot())
                else:
                    break
    except BaseException as exc:
        conn.send(("failed", repr(exc), "", {}))
        raise
    finally:
        conn.close()


class RemoteSandbox:
    def __init__(
        self,
        conn: Connection,
        base_url: str,
        api_key: str,
        counts: dict[tuple[str, str], int],
    ) -> None:
        self._conn = conn
        self.base_url = base_url
        self.api_key = api_key
        self.counts = counts
        """`ClinicStore.counts()`: (resource, variant) -> rows."""

    def reset(self) -> None:
        """Forget the request log and every key's rate-limit window."""
        self._conn.send("reset")
        self._conn.recv()

    def snapshot(self) -> StatsSnapshot:
        self._conn.send("snapshot")
        snapshot: StatsSnapshot = self._conn.recv()
        return snapshot


@contextmanager
def remote_sandbox(size: str, seed: int = 1, **options: Any) -> Iterator[RemoteSandbox]:
    """`running_sandbox(size, seed, **options)` in a child process."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_serve, args=(theirs, size, seed, options), name="cliniko-sandbox", daemon=True
    )
    process.start()
    theirs.close()
    try:
        if not ours.poll(_START_TIMEOUT_S):
            raise RuntimeError("the sandbox did not start in time")
        try:
            state, base_url, api_key, counts = ours.recv()
        except EOFError:
            raise RuntimeError("the sandbox process ended before it served") from None
        if state != "ready":
            raise RuntimeError(f"the sandbox failed to start: {base_url}")
        yield RemoteSandbox(ours, base_url, api_key, counts)
    finally:
        with suppress(BrokenPipeError, OSError):
            ours.send("stop")
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        ours.close()


class _Local(RemoteSandbox):
    """The same interface over a sandbox in this process (`--same-process`)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.base_url = handle.base_url
        self.api_key = handle.api_key
        self.counts = handle.store.counts()

    def reset(self) -> None:
        self._handle.reset_stats()
        self._handle.reset_rate_limit_windows()

    def snapshot(self) -> StatsSnapshot:
        snapshot: StatsSnapshot = self._handle.stats.snapshot()
        return snapshot


@contextmanager
def bench_sandbox(
    size: str, seed: int = 1, *, same_process: bool = False, **options: Any
) -> Iterator[RemoteSandbox]:
    """A sandbox for a download benchmark: its own process unless `same_process`."""
    if same_process:
        from sandbox.runner import running_sandbox

        with running_sandbox(size=size, seed=seed, **options) as handle:
            yield _Local(handle)
    else:
        with remote_sandbox(size, seed, **options) as remote:
            yield remote
