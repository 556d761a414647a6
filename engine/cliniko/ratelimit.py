"""The request budget shared by every task of a run (API-FACTS.md section 2).

One `RateLimiter` per run. `await limiter.acquire()` returns when the next request may start.
Starts are spaced evenly (no bursts), and no sliding window of `window_s` ever holds more than
`max_requests` starts: the server counts arrivals, not sends, so the window the limiter enforces
is a little longer than the server's (`window_s * (1 + safety) + margin_s`).

After a 429, `block_until(X-RateLimit-Reset)` holds every task until that instant (plus a little
jitter); pacing then resumes from that instant at the even spacing, without a burst.
"""

from __future__ import annotations

import random
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import anyio

_EPSILON = 1e-9


class Clock(Protocol):
    """Where the limiter reads time and sleeps; replaced by a fake clock in tests."""

    def monotonic(self) -> float: ...

    def wall(self) -> float:
        """Unix epoch seconds, to turn an X-RateLimit-Reset into a wait."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class AnyioClock:
    """The real clock: anyio's monotonic time and sleep, and the system's wall time."""

    def monotonic(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@dataclass(frozen=True)
class LimiterStats:
    starts: int
    """Requests allowed to start so far."""
    last_window: int
    """Starts within the last `window_s`."""
    rate_per_minute: float
    """`last_window` scaled to a minute: what to show against the limit."""
    waited_s: float
    """Total time tasks spent inside `acquire` (summed over tasks)."""
    blocks: int
    """How many times `block_until`/`block_for` was called (one per 429)."""
    blocked_remaining_s: float
    """How long the current block (after a 429) still lasts; 0 when not blocked."""

    @property
    def current_rate_per_window(self) -> float:
        """Starts within the last window (the same as `last_window`)."""
        return float(self.last_window)


def parse_rate(spec: str) -> tuple[int, float]:
    """A `--rate-limit N/SECONDS` value: "200/60" -> (200, 60.0), for `RateLimiter(*...)`.

    ValueError for anything else (N >= 1, SECONDS > 0).
    """
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", spec)
    if m is None:
        raise ValueError(f"rate limit must look like N/SECONDS (e.g. 200/60), not {spec!r}")
    n, seconds = int(m[1]), float(m[2])
    if n < 1 or seconds <= 0:
        raise ValueError(f"rate limit must allow at least 1 request per positive time: {spec!r}")
    return n, seconds


class RateLimiter:
    def __init__(
        self,
        max_requests: int = 200,
        window_s: float = 60.0,
        *,
        safety: float = 0.01,
        margin_s: float = 0.005,
        jitter_s: float = 0.5,
        max_block_s: float | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """
        safety, margin_s: the enforced window is `window_s * (1 + safety) + margin_s`.
        jitter_s: up to this much is added at random to every block after a 429.
        max_block_s: a block never lasts longer than this (default 10 windows), so a bogus
            X-RateLimit-Reset cannot stall a run for hours.
        """
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if window_s <= 0 or safety < 0 or margin_s < 0 or jitter_s < 0:
            raise ValueError("window_s must be positive; safety, margin and jitter not negative")
        self.max_requests = max_requests
        self.window_s = window_s
        self.effective_window_s = window_s * (1.0 + safety) + margin_s
        self.spacing_s = self.effective_window_s / max_requests
        self.jitter_s = jitter_s
        self.max_block_s = 10 * window_s if max_block_s is None else max_block_s
        self._clock: Clock = AnyioClock() if clock is None else clock
        self._rng = random.Random() if rng is None else rng
        self._lock = anyio.Lock()
        self._recent: deque[float] = deque(maxlen=max_requests)
        self._next_slot = float("-inf")
        self._blocked_until = float("-inf")
        self._starts = 0
        self._waited = 0.0
        self._blocks = 0

    def _earliest_start(self, now: float) -> float:
        t = max(now, self._next_slot, self._blocked_until)
        if len(self._recent) == self.max_requests:
            t = max(t, self._recent[0] + self.effective_window_s)
        return t

    async def acquire(self) -> float:
        """Wait until a request may start, record the start, return the seconds waited."""
        entered = self._clock.monotonic()
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                start = self._earliest_start(now)
                if start <= now + _EPSILON:
                    break
                # Re-checked after the sleep: a 429 may have blocked everyone meanwhile.
                await self._clock.sleep(start - now)
            now = self._clock.monotonic()
            slot = max(self._next_slot, self._blocked_until)
            self._recent.append(now)
            # Pace from the slot a waiting request was due, not from when its task woke: a
            # late wake-up (a busy loop, a coarse timer) is made up by the next request instead
            # of being lost for good. Only a request that really waited for its slot earns
            # this, and at most half a spacing, so idle time never turns into a burst; the
            # sliding-window cap above still holds every window to max_requests.
            credit = 0.0
            if entered <= slot < now:
                credit = min(now - slot, self.spacing_s / 2)
            self._next_slot = now + self.spacing_s - credit
            self._starts += 1
            waited = now - entered
            self._waited += waited
            return waited

    def block_until(self, epoch_seconds: float, *, server_now: float | None = None) -> float:
        """Hold every task until `epoch_seconds` (a Unix time, e.g. X-RateLimit-Reset).

        `server_now` is the server's clock at the time of the response (its Date header), so
        the wait does not depend on the skew between our clock and Cliniko's. Returns the wait
        from now, in seconds, including jitter.
        """
        reference = self._clock.wall() if server_now is None else server_now
        return self.block_for(epoch_seconds - reference)

    def block_for(self, seconds: float) -> float:
        """Hold every task for `seconds` (plus jitter), e.g. after a 429 without a reset time."""
        wait = min(max(seconds, 0.0), self.max_block_s) + self._rng.uniform(0.0, self.jitter_s)
        until = self._clock.monotonic() + wait
        self._blocks += 1
        self._blocked_until = max(self._blocked_until, until)
        # Resume at the even spacing from the end of the block: never a burst.
        self._next_slot = max(self._next_slot, self._blocked_until)
        return wait

    def stats(self) -> LimiterStats:
        now = self._clock.monotonic()
        last = sum(1 for t in self._recent if t > now - self.window_s)
        return LimiterStats(
            starts=self._starts,
            last_window=last,
            rate_per_minute=last * 60.0 / self.window_s,
            waited_s=self._waited,
            blocks=self._blocks,
            blocked_remaining_s=max(0.0, self._blocked_until - now),
        )
