"""The shared rate limiter (engine.cliniko.ratelimit): even pacing, sliding window, 429 blocks.

Most tests run on a fake clock (sleep advances it), so they are exact and instant; one runs on
the real clock with a fast window and asserts only the window rule, never speed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from engine.cliniko import RateLimiter, parse_rate

pytestmark = pytest.mark.anyio

EPOCH = 1_700_000_000.0


class FakeClock:
    def __init__(self, start: float = 1000.0, wall_offset: float = EPOCH - 1000.0) -> None:
        self.t = start
        self.wall_offset = wall_offset
        self.on_sleep: Callable[[float], None] | None = None

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.t += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


def max_in_window(starts: list[float], window: float) -> int:
    """The most starts in any half-open window [t, t + window)."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def run_tasks(limiter: RateLimiter, clock: FakeClock, tasks: int, each: int) -> list[float]:
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(each):
            await limiter.acquire()
            starts.append(clock.monotonic())
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(worker)
    return sorted(starts)


@pytest.mark.parametrize(("n", "window"), [(200, 60.0), (20, 2.0), (7, 1.0), (1, 5.0)])
async def test_thousand_acquires_never_exceed_n_per_window(n: int, window: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(n, window, clock=clock)
    starts = await run_tasks(limiter, clock, tasks=10, each=100)
    assert len(starts) == 1000
    assert max_in_window(starts, window) <= n
    # Not just "at most N": even the N+1-th start is a full safety window after the first.
    for i in range(len(starts) - n):
        assert starts[i + n] - starts[i] >= window
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= window / n - 1e-9  # no bursts, ever
    mean = (starts[-1] - starts[0]) / (len(starts) - 1)
    assert mean == pytest.approx(window / n, rel=0.02)  # the whole budget is spent


async def test_first_requests_are_spaced_too() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock)
    starts = await run_tasks(limiter, clock, tasks=10, each=1)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g >= 0.1 - 1e-9 for g in gaps)
    assert starts[0] == 1000.0  # the very first start does not wait


async def test_safety_margin_is_configurable() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, safety=0.0, margin_s=0.0, clock=clock)
    assert limiter.effective_window_s == 1.0
    starts = await run_tasks(limiter, clock, tasks=1, each=100)
    assert max_in_window(starts, 1.0) <= 10
    default = RateLimiter(200, 60.0)
    assert default.effective_window_s == pytest.approx(60.0 * 1.01 + 0.005)


async def test_idle_time_is_not_banked_into_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock)
    await run_tasks(limiter, clock, tasks=1, each=3)
    clock.t += 100.0  # a long idle spell
    starts = await run_tasks(limiter, clock, tasks=5, each=4)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-9


async def test_block_until_holds_everyone_then_resumes_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, jitter_s=0.0, clock=clock)
    before = await run_tasks(limiter, clock, tasks=3, each=2)
    reset = clock.wall() + 5.0
    wait = limiter.block_until(reset)
    assert wait == pytest.approx(5.0)
    assert limiter.stats().blocked_remaining_s == pytest.approx(5.0)
    after = await run_tasks(limiter, clock, tasks=10, each=2)
    assert after[0] >= before[-1] + 5.0 - 1e-9
    assert after[0] == pytest.approx(reset - clock.wall_offset)  # the reset, in monotonic time
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert min(gaps) >= 0.1 - 1e-9  # no burst after the block
    assert limiter.stats().blocks == 1


async def test_block_uses_server_clock_when_given() -> None:
    clock = FakeClock(wall_offset=EPOCH - 1000.0 + 3600.0)  # our clock is an hour fast
    limiter = RateLimiter(10, 1.0, jitter_s=0.0, clock=clock)
    server_now = EPOCH
    wait = limiter.block_until(server_now + 2.0, server_now=server_now)
    assert wait == pytest.approx(2.0)
    start = clock.t
    await limiter.acquire()
    assert clock.t == pytest.approx(start + 2.0)


async def test_block_in_the_past_waits_only_jitter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, jitter_s=0.25, clock=clock, rng=random.Random(3))
    wait = limiter.block_until(clock.wall() - 100.0)
    assert 0.0 <= wait <= 0.25


async def test_block_is_capped() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, jitter_s=0.5, max_block_s=30.0, clock=clock)
    assert limiter.block_until(clock.wall() + 86400.0) <= 30.5
    assert RateLimiter(200, 60.0).max_block_s == 600.0


async def test_jitter_is_added() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, jitter_s=1.0, clock=clock, rng=random.Random(7))
    waits = [limiter.block_for(2.0) for _ in range(20)]
    assert all(2.0 <= w <= 3.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 1


async def test_a_block_during_a_wait_is_honoured() -> None:
    """A task already sleeping towards its slot re-checks after waking: a 429 seen meanwhile
    by another task holds it too."""
    clock = FakeClock()
    limiter = RateLimiter(2, 1.0, jitter_s=0.0, clock=clock)
    await limiter.acquire()  # t = 1000
    fired: list[float] = []

    def block_once(_seconds: float) -> None:
        if not fired:
            fired.append(clock.t)
            limiter.block_for(10.0)

    clock.on_sleep = block_once
    await limiter.acquire()
    assert clock.t == pytest.approx(1010.0)


async def test_stats() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, clock=clock)
    assert limiter.stats().starts == 0
    await run_tasks(limiter, clock, tasks=2, each=10)
    stats = limiter.stats()
    assert stats.starts == 20
    assert stats.last_window <= 10
    assert stats.last_window >= 9
    assert stats.rate_per_minute == pytest.approx(stats.last_window * 60.0)
    assert stats.current_rate_per_window == stats.last_window
    assert stats.waited_s > 0.0
    assert stats.blocks == 0
    assert stats.blocked_remaining_s == 0.0
    clock.t += 10.0
    assert limiter.stats().last_window == 0


async def test_acquire_returns_its_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 1.0, clock=clock)
    assert await limiter.acquire() == 0.0
    assert await limiter.acquire() == pytest.approx(limiter.spacing_s)


def test_parse_rate() -> None:
    assert parse_rate("200/60") == (200, 60.0)
    assert parse_rate(" 20 / 2.5 ") == (20, 2.5)
    for bad in ["", "200", "0/60", "200/0", "-1/60", "a/b", "200/60/1"]:
        with pytest.raises(ValueError, match="rate limit"):
            parse_rate(bad)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_requests"):
        RateLimiter(0, 60.0)
    with pytest.raises(ValueError, match="window_s"):
        RateLimiter(10, 0.0)
    with pytest.raises(ValueError, match="safety"):
        RateLimiter(10, 1.0, safety=-0.1)


async def test_real_clock_fast_window_never_over_n() -> None:
    """50 per 0.5 s on the real clock, 8 tasks, 130 requests: no 0.5 s window holds more than
    50 starts. Asserts the rule only, never speed (the box may be slow)."""
    limiter = RateLimiter(50, 0.5)
    starts: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            starts.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(worker, 17 if i < 2 else 16)
    assert len(starts) == 130
    assert max_in_window(starts, 0.5) <= 50
    assert limiter.stats().starts == 130


class OversleepingClock(FakeClock):
    """Every sleep wakes late, as a busy event loop on a 2-core machine does."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    async def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0) + self.late
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("late", [0.002, 0.005, 0.010])
async def test_late_wakeups_are_made_up_without_breaking_the_window(late: float) -> None:
    clock = OversleepingClock(late)
    limiter = RateLimiter(200, 6.0, safety=0.0, margin_s=0.0, clock=clock)
    starts = await run_tasks(limiter, clock, tasks=8, each=100)
    spacing = 6.0 / 200
    mean_gap = (starts[-1] - starts[0]) / (len(starts) - 1)
    # Paced from the wake-up time, every gap would be spacing + late (up to a third slower);
    # made up, the pace stays within a small fraction of the budget.
    assert mean_gap < spacing + late / 4
    assert max_in_window(starts, 6.0) <= 200
    # Never a burst: no two starts closer than half a spacing.
    assert min(b - a for a, b in itertools.pairwise(starts)) >= spacing / 2 - 1e-9
