"""Cliniko's per-key rate limit, server side (API-FACTS.md section 2).

A fixed window per key: the window opens at the key's first request after the previous window
ended and lasts `window_s` seconds; the first `limit` requests inside it pass, the rest get 429
with `X-RateLimit-Reset` = the window's end as Unix epoch seconds (rounded up). Refused
requests do not count and do not move the window.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_RATE_LIMIT: tuple[int, float] = (200, 60.0)

_SPEC_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*$")


def parse_rate_limit(spec: str) -> tuple[int, float]:
    """`"200/60"` -> (200, 60.0). Raises ValueError on anything else."""
    m = _SPEC_RE.match(spec)
    if not m:
        raise ValueError(f"rate limit must look like N/SECONDS (e.g. 200/60), not {spec!r}")
    limit, window = int(m.group(1)), float(m.group(2))
    check_rate_limit(limit, window)
    return limit, window


def check_rate_limit(limit: int, window_s: float) -> None:
    if limit < 1:
        raise ValueError(f"rate limit must allow at least 1 request, not {limit}")
    if not window_s > 0:
        raise ValueError(f"rate-limit window must be positive, not {window_s}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reset_epoch: int
    """End of the key's current window, Unix epoch seconds, rounded up."""
    remaining: int


@dataclass
class _Window:
    end: float  # monotonic
    used: int


class FixedWindowLimiter:
    """Per-key fixed windows. Thread-safe; the clocks are injectable for unit tests."""

    def __init__(
        self,
        limit: int = DEFAULT_RATE_LIMIT[0],
        window_s: float = DEFAULT_RATE_LIMIT[1],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        check_rate_limit(limit, window_s)
        self._limit = limit
        self._window_s = float(window_s)
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    @property
    def limit(self) -> tuple[int, float]:
        with self._lock:
            return self._limit, self._window_s

    def configure(self, limit: int, window_s: float) -> None:
        """Change the limit; every key starts afresh."""
        check_rate_limit(limit, window_s)
        with self._lock:
            self._limit = limit
            self._window_s = float(window_s)
            self._windows.clear()

    def reset(self) -> None:
        """Forget every key's window."""
        with self._lock:
            self._windows.clear()

    def hit(self, key: str) -> Decision:
        """Count one request of `key` and say whether it may pass."""
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            if window is None or now >= window.end:
                window = _Window(end=now + self._window_s, used=0)
                self._windows[key] = window
            reset_epoch = math.ceil(self._wall() + (window.end - now))
            if window.used >= self._limit:
                return Decision(False, reset_epoch, 0)
            window.used += 1
            return Decision(True, reset_epoch, self._limit - window.used)
