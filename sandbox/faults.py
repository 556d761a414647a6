"""Injected faults: what a download must survive (DESIGN.md sections 6 and 8).

A spec is a comma-separated list of `name=value`:

    5xx=0.05,reset=0.01,slow=0.02,burst429=0.01,slow_ms=3000,burst_len=5,burst_s=1,seed=7

- `5xx`      probability of answering 500, 502 or 503 (chosen at random) with a JSON body;
- `reset`    probability of dropping the TCP connection without any response;
- `slow`     probability of waiting `slow_ms` (default 3000) before answering normally;
- `burst429` probability of starting a 429 burst for the request's key: this request and the
             key's next `burst_len - 1` requests (default 5 in all) get 429 with
             `X-RateLimit-Reset` = the burst's start + `burst_s` (default 1 s). The burst also
             ends once that instant has passed, so a client that waits for the reset goes on.
- `seed`     seed of the injector's random.Random (default 0): same seed, same sequence.

One uniform draw per request picks at most one fault, so the observed rate of each kind
matches its probability (the probabilities must sum to at most 1).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["5xx", "reset", "slow", "burst429"]
FAULT_KINDS: tuple[FaultKind, ...] = ("5xx", "reset", "slow", "burst429")
SERVER_ERRORS: tuple[int, ...] = (500, 502, 503)

# spec name -> FaultSpec field
_NAMES: dict[str, str] = {
    "5xx": "p_5xx",
    "reset": "p_reset",
    "slow": "p_slow",
    "burst429": "p_burst429",
    "slow_ms": "slow_ms",
    "burst_len": "burst_len",
    "burst_s": "burst_s",
    "seed": "seed",
}


class FaultSpecError(ValueError):
    """A fault spec string that cannot be understood."""


@dataclass(frozen=True)
class FaultSpec:
    p_5xx: float = 0.0
    p_reset: float = 0.0
    p_slow: float = 0.0
    p_burst429: float = 0.0
    slow_ms: float = 3000.0
    burst_len: int = 5
    burst_s: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_5xx", "p_reset", "p_slow", "p_burst429"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise FaultSpecError(f"{name} must be a probability in [0, 1], not {p}")
        if self.total > 1.0 + 1e-9:
            raise FaultSpecError(f"fault probabilities add up to {self.total} (> 1)")
        if self.slow_ms < 0:
            raise FaultSpecError(f"slow_ms must be >= 0, not {self.slow_ms}")
        if self.burst_len < 1:
            raise FaultSpecError(f"burst_len must be >= 1, not {self.burst_len}")
        if self.burst_s <= 0:
            raise FaultSpecError(f"burst_s must be > 0, not {self.burst_s}")

    @property
    def total(self) -> float:
        return self.p_5xx + self.p_reset + self.p_slow + self.p_burst429

    @property
    def active(self) -> bool:
        return self.total > 0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Parse `5xx=0.05,reset=0.01,...`; empty or None means no faults."""
        values: dict[str, float | int] = {}
        for raw in (spec or "").split(","):
            item = raw.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in _NAMES:
                known = ", ".join(_NAMES)
                raise FaultSpecError(
                    f"bad fault {item!r}: expected NAME=VALUE with NAME in {known}"
                )
            field = _NAMES[name]
            try:
                values[field] = int(value) if field in ("burst_len", "seed") else float(value)
            except ValueError:
                raise FaultSpecError(f"bad value in fault {item!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        defaults = FaultSpec()
        parts = []
        for name, field in _NAMES.items():
            value = getattr(self, field)
            if value != getattr(defaults, field):
                parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
        return ",".join(parts)


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request."""

    kind: FaultKind
    status: int = 0
    """The status to answer (5xx, burst429); 0 for reset and slow."""
    delay_s: float = 0.0
    """How long to wait before answering (slow)."""
    reset_epoch: int = 0
    """X-RateLimit-Reset for burst429."""


@dataclass
class _Burst:
    left: int
    end: float  # monotonic
    reset_epoch: int


class FaultInjector:
    """Decides, per request, whether and how to misbehave. Thread-safe; reconfigurable."""

    def __init__(
        self,
        spec: FaultSpec | str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._spec = FaultSpec()
        self._rng = random.Random(0)
        self._bursts: dict[str, _Burst] = {}
        self.configure(spec)

    @property
    def spec(self) -> FaultSpec:
        with self._lock:
            return self._spec

    def configure(self, spec: FaultSpec | str) -> None:
        """Replace the spec; the random sequence restarts from the spec's seed."""
        parsed = spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec)
        with self._lock:
            self._spec = parsed
            self._rng = random.Random(parsed.seed)
            self._bursts.clear()

    def decide(self, key: str) -> Fault | None:
        """The fault for this request of `key`, or None to answer normally."""
        with self._lock:
            spec = self._spec
            now = self._clock()
            burst = self._bursts.get(key)
            if burst is not None:
                if burst.left > 0 and now < burst.end:
                    burst.left -= 1
                    return Fault("burst429", status=429, reset_epoch=burst.reset_epoch)
                del self._bursts[key]
            if not spec.active:
                return None
            u = self._rng.random()
            edge = spec.p_5xx
            if u < edge:
                return Fault("5xx", status=self._rng.choice(SERVER_ERRORS))
            edge += spec.p_reset
            if u < edge:
                return Fault("reset")
            edge += spec.p_slow
            if u < edge:
                return Fault("slow", delay_s=spec.slow_ms / 1000.0)
            edge += spec.p_burst429
            if u < edge:
                reset_epoch = math.ceil(self._wall() + spec.burst_s)
                self._bursts[key] = _Burst(spec.burst_len - 1, now + spec.burst_s, reset_epoch)
                return Fault("burst429", status=429, reset_epoch=reset_epoch)
            return None
