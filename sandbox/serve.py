"""`cliniko-switch sandbox`: serve a synthetic Cliniko on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, TextIO

import click

from sandbox.faults import FaultSpec, FaultSpecError
from sandbox.ratelimit import parse_rate_limit
from sandbox.runner import start_sandbox
from sandbox.store import ClinicStore

USER_AGENT_EXAMPLE = "cliniko-switch (you@example.org)"


def serve_cli(
    port: int,
    size: str,
    seed: int,
    rate_limit: str,
    latency_ms: float,
    faults: str,
    shard: str,
    *,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Generate the clinic, serve it, print how to reach it, and serve until SIGINT/SIGTERM.

    `out` and `stop_event` exist for tests; the command line uses stdout and the signals.
    """
    out = out or sys.stdout
    try:
        limit = parse_rate_limit(rate_limit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate-limit") from None
    try:
        fault_spec = FaultSpec.parse(faults)
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    if latency_ms < 0:
        raise click.BadParameter("must be >= 0", param_hint="--latency-ms")
    if not 0 <= port <= 65535:
        raise click.BadParameter("must be between 0 and 65535", param_hint="--port")

    click.echo(f"Generating a {size} clinic (seed {seed}, shard {shard})...", err=True)
    started = time.perf_counter()
    store = ClinicStore.generate(size, seed, shard=shard)
    try:
        try:
            handle = start_sandbox(
                store,
                shard=shard,
                rate_limit=limit,
                latency_ms=latency_ms,
                faults=fault_spec,
                port=port,
            )
        except OSError as exc:
            raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
        stop = stop_event or threading.Event()
        previous = _install_signal_handlers(stop) if stop_event is None else {}
        try:
            _print_banner(out, handle.base_url, handle.api_key, limit, latency_ms, fault_spec)
            click.echo(f"Ready in {time.perf_counter() - started:.1f} s.", err=True)
            while not stop.wait(0.5):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            handle.stop()
            click.echo("Sandbox stopped.", err=True)
    finally:
        store.close()


def _print_banner(
    out: TextIO,
    base_url: str,
    api_key: str,
    limit: tuple[int, float],
    latency_ms: float,
    faults: FaultSpec,
) -> None:
    n, window = limit
    lines = [
        f"Base URL: {base_url}",
        f"API key: {api_key}",
        f"Rate limit: {n} requests per {window:g} s per key",
        f"Latency: {latency_ms:g} ms",
        f"Faults: {str(faults) or 'none'}",
        "Try:",
        f"  curl -u '{api_key}:' -A '{USER_AGENT_EXAMPLE}' -H 'Accept: application/json' "
        f"'{base_url}/patients?per_page=100'",
        "Press Ctrl-C to stop.",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    """SIGINT and SIGTERM set `stop` instead of raising; returns the handlers they replace."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, on_signal)
    return previous
