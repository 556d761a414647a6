"""TUI responsiveness during a full-rate download: key press to screen update, median and worst.

Runs the wizard (`tui.app.SwitchApp`) headless under Textual's test pilot (`app.run_test`,
120 x 40), downloading a sandbox clinic through the App's own worker at the full rate of its
budget (the sandbox in a process of its own, 250 ms latency, 200 requests per 6 s: Cliniko's
rule on a 10 x clock, as `bench.download_rate`). While the download runs it presses, every
`--interval` seconds, a key that changes the screen, alternately

  r / escape     opens the review screen over the download (it opens the staging file and
                 reads the counts and a page in threads) and closes it again
  f1 / escape    opens the help screen (a modal) and closes it

and times each press from the moment the key event is sent to the moment the App has drawn
the first frame showing the change. A frame is taken to be drawn when `App._display` is called
for the new top screen (the compositor has rendered the update): in a terminal that is where
the bytes go out. The headless driver writes nothing, so the hook also encodes the update to
the terminal's byte stream (`render_segments`), the work a real terminal would add.

Keys are sent as the pilot sends them (a `Key` event through the driver) but without
`pilot.press`'s wait for the process to go idle: while a download runs the process is never
idle, so that wait (up to a second per key) would measure the heuristic, not the App.

Also reported: the first frame with the review screen's records on it (the threaded reads
done); the same presses once the download has finished (idle); the garbage collector's full
(generation 2) collections, which stop the event loop, and how much of each press they took;
and the download's request rate as the server saw it, three ways on the same sandbox: without
the TUI, through the TUI with nobody pressing anything, and through the TUI with the presses
(the engine's own `RequestStats` rate is sampled too).

Target: median < 50 ms, worst < 250 ms over the presses made during the download.

    .venv/bin/python -m bench.tui_responsiveness --json out.json          # medium, ~2 min
    .venv/bin/python -m bench.tui_responsiveness --quick --json out.json  # small, < 1 min
    .venv/bin/python -m bench.tui_responsiveness --quick --json           # JSON on stdout

A medium download lasts about 40 s (about 75 presses at one per 0.5 s); a small one about
4 s, so `--quick` downloads it three times (`--downloads`), each into a fresh staging file,
pressing every 0.25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import itertools
import json
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from bench.download_rate import rate_figures, sandbox_arguments
from bench.remote_sandbox import RemoteSandbox, bench_sandbox
from engine.api import ALL_PARTS, DownloadOptions, DownloadResult, download, parse_key
from tui.app import SwitchApp
from tui.messages import EngineEvent
from tui.screens.download import DownloadScreen
from tui.screens.help import HelpScreen
from tui.screens.review import ReviewScreen
from tui.state import WizardConfig

SIZE = (120, 40)
TARGET_MEDIAN_MS = 50.0
TARGET_WORST_MS = 250.0
FRAME_TIMEOUT_S = 10.0
START_TIMEOUT_S = 120.0

ACTIONS: tuple[tuple[str, str, type[Screen[Any]]], ...] = (
    ("review", "r", ReviewScreen),
    ("help", "f1", HelpScreen),
)
"""(name, the key that opens it, the screen it opens); escape closes both."""


# ------------------------------------------------------------------------------- frames


class GcPauses:
    """The garbage collector's pauses (`gc.callbacks`): the App's objects make for a large
    heap, and a full collection stops everything, key presses included."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        """(generation, start, seconds)."""
        self._began = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        else:
            self.pauses.append((info["generation"], self._began, now - self._began))

    def within(self, start: float, end: float) -> float:
        """Seconds of collection between `start` and `end`."""
        return sum(
            max(0.0, min(end, began + length) - max(start, began))
            for _gen, began, length in self.pauses
            if began < end and began + length > start
        )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for generation in (0, 1, 2):
            lengths = [length * 1000 for gen, _b, length in self.pauses if gen == generation]
            out[f"gen{generation}"] = {
                "collections": len(lengths),
                "total_ms": round(sum(lengths), 1),
                "worst_ms": round(max(lengths, default=0.0), 1),
            }
        return out


class Frames:
    """Counts the frames the App draws and wakes whoever waits for a particular one.

    Wraps `App._display`, which the top screen's compositor refresh calls with the rendered
    update; the headless driver then writes nothing, so the update is encoded here as a
    terminal would need it (`encode`), and the frame's time is taken after that.
    """

    def __init__(self, app: SwitchApp, *, encode: bool = True) -> None:
        self.app = app
        self.encode = encode
        self.count = 0
        self.bytes = 0
        self.encode_s = 0.0
        self._waiters: list[tuple[Callable[[Screen[Any]], bool], asyncio.Future[float]]] = []
        self._original = app._display
        app._display = self._display  # type: ignore[method-assign]

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        self._original(screen, renderable)
        app = self.app
        if renderable is None or app._batch_count:
            return  # `_display` draws nothing in these cases either
        if self.encode and app.is_headless and isinstance(renderable, CompositorUpdate):
            began = time.perf_counter()
            self.bytes += len(renderable.render_segments(app.console))
            self.encode_s += time.perf_counter() - began
        now = time.perf_counter()
        self.count += 1
        for waiter in list(self._waiters):
            predicate, future = waiter
            if future.done():
                self._waiters.remove(waiter)
            elif predicate(screen):
                future.set_result(now)
                self._waiters.remove(waiter)

    def expect(self, predicate: Callable[[Screen[Any]], bool]) -> asyncio.Future[float]:
        """A future that gets the time of the first frame drawn for a screen matching
        `predicate` from now on (register it before pressing the key)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future


async def wait_frame(future: asyncio.Future[float], seconds: float) -> float | None:
    """The frame's time, or None when none came within `seconds`."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), seconds)
    except TimeoutError:
        future.cancel()
        return None


def send_key(app: SwitchApp, key: str) -> None:
    """Send a key as Textual's pilot does (`App._press_keys`): a `Key` event through the
    driver, as the terminal's input thread would; without the pilot's idle waits."""
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    driver = app._driver
    assert driver is not None
    driver.send_message(event)


async def until(condition: Callable[[], bool], seconds: float, step: float = 0.01) -> None:
    """Poll App state that posts no event of its own (a run starting, a screen shown)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(step)


async def sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# ------------------------------------------------------------------------------- figures


@dataclass
class Press:
    action: str
    """review open, review close, help open, help close."""
    key: str
    during_download: bool
    latency_ms: float | None
    """None: no frame within FRAME_TIMEOUT_S."""
    gc_ms: float = 0.0
    """Of which the garbage collector's pauses."""


@dataclass
class Latency:
    presses: int
    median_ms: float
    p95_ms: float
    worst_ms: float
    timeouts: int = 0

    @classmethod
    def of(cls, values: list[float | None]) -> Latency:
        done = sorted(v for v in values if v is not None)
        timeouts = len(values) - len(done)
        if not done:
            return cls(len(values), 0.0, 0.0, 0.0, timeouts)
        p95 = done[min(len(done) - 1, math.ceil(0.95 * len(done)) - 1)]
        worst = FRAME_TIMEOUT_S * 1000 if timeouts else done[-1]
        return cls(
            len(values),
            round(statistics.median(done), 1),
            round(p95, 1),
            round(worst, 1),
            timeouts,
        )


@dataclass
class Round:
    """One download through the App (or, for the baseline, without it)."""

    outcome: str
    requests: int
    records: int
    rate_limited: int
    seconds: float
    """The engine's own run time."""
    floor_s: float
    span_s: float
    rate_pct: float
    tail_rate_pct: float
    worst_window_pct: float
    gap_p99_ms: float
    gap_max_ms: float
    engine_rate_pct: list[float] = field(default_factory=list)
    """`RequestStats.rate_per_minute / limit_per_minute` sampled at each press, once the run is
    a window old (the engine's count over its last window)."""
    events: int = 0
    frames: int = 0
    cpu_s: float = 0.0
    """This process's CPU time over the round (the App, the engine, the staging writer)."""
    wall_s: float = 0.0
    """Start to the App learning the outcome."""


def pooled_rate(rounds: list[Round], limit: int, window_s: float) -> float:
    gaps = sum(max(r.requests - 1, 0) for r in rounds)
    span = sum(r.span_s for r in rounds)
    return round(100.0 * gaps * window_s / span / limit, 1) if span else 0.0


@dataclass
class Session:
    presses: list[Press]
    review_data_ms: list[float | None]
    rounds: list[Round]
    frame_bytes: int
    encode_s: float
    gc: dict[str, Any]


# ------------------------------------------------------------------------------- the run


@dataclass
class Options:
    size: str
    shape: str
    seed: int
    limit: int
    window_s: float
    latency_ms: float
    parallel: int
    downloads: int
    idle_presses: int
    interval_s: float
    encode: bool
    compare: bool
    """Also download without the TUI, and through it with no presses."""
    same_process: bool


def round_figures(sandbox: RemoteSandbox, result: DownloadResult | None, opts: Options) -> Round:
    """What the server saw of one download, and what the engine says of it."""
    stats = sandbox.snapshot()
    figures = rate_figures(stats.log, opts.limit, opts.window_s)
    return Round(
        outcome=result.outcome if result is not None else "failed",
        requests=stats.total,
        records=result.records if result is not None else 0,
        rate_limited=stats.rate_limited,
        seconds=round(result.seconds, 2) if result is not None else 0.0,
        floor_s=round(stats.total * opts.window_s / opts.limit, 2),
        span_s=figures.span_s,
        rate_pct=figures.rate_pct,
        tail_rate_pct=figures.tail_rate_pct,
        worst_window_pct=figures.worst_window_pct,
        gap_p99_ms=figures.gap_p99_ms,
        gap_max_ms=figures.gap_max_ms,
    )


async def drive(sandbox: RemoteSandbox, opts: Options, tmp: Path, *, press: bool) -> Session:
    """`opts.downloads` downloads through the App; with `press`, key presses timed all along
    (and `opts.idle_presses` more once the last has finished)."""
    name = "pressed" if press else "watched"
    config = WizardConfig(
        api_url=sandbox.base_url,
        rate_limit=(opts.limit, opts.window_s),
        staging_path=tmp / f"{name}-1.sqlite",
        parallel=opts.parallel,
        crash_log=tmp / "crash.log",
        freeze_gc=True,  # as in a real terminal (the App only skips it when headless)
    )
    app = SwitchApp(config)
    app.state.key = parse_key(sandbox.api_key)
    app.state.base_url = sandbox.base_url

    presses: list[Press] = []
    review_data: list[float | None] = []
    rounds: list[Round] = []
    engine_events = 0
    post = app.post_message

    def counting_post(message: Any) -> bool:
        nonlocal engine_events
        if isinstance(message, EngineEvent):
            engine_events += 1
        return post(message)

    app.post_message = counting_post  # type: ignore[method-assign]

    with GcPauses() as pauses:
        async with app.run_test(size=SIZE) as _pilot:
            frames = Frames(app, encode=opts.encode)
            seen: weakref.WeakSet[Screen[Any]] = weakref.WeakSet()
            actions = itertools.cycle(ACTIONS)
            samples: list[float] = []
            mark: dict[str, float] = {}

            def start_round() -> None:
                app.state.staging_path = tmp / f"{name}-{len(rounds) + 1}.sqlite"
                sandbox.reset()
                samples.clear()
                mark.update(
                    wall=time.perf_counter(),
                    cpu=time.process_time(),
                    frames=frames.count,
                    events=engine_events,
                    gc=len(pauses.pauses),
                )
                app.start_download()

            async def started() -> None:
                await until(
                    lambda: (
                        app.progress.started_at is not None
                        and Path(app.state.staging_path).exists()
                    ),
                    START_TIMEOUT_S,
                )

            def end_round() -> None:
                figures = round_figures(sandbox, app.state.download, opts)
                figures.engine_rate_pct = [round(s, 1) for s in samples]
                figures.events = engine_events - int(mark["events"])
                figures.frames = frames.count - int(mark["frames"])
                figures.cpu_s = round(time.process_time() - mark["cpu"], 2)
                figures.wall_s = round(time.perf_counter() - mark["wall"], 2)
                rounds.append(figures)

            def sample_rate() -> None:
                stats = app.progress.stats
                if stats is not None and app.progress.running and stats.elapsed_s >= opts.window_s:
                    samples.append(100.0 * stats.rate_per_minute / stats.limit_per_minute)

            async def press_key(
                action: str, key: str, predicate: Callable[[Screen[Any]], bool]
            ) -> tuple[float, float | None]:
                during = app.progress.running
                frame = frames.expect(predicate)
                began = time.perf_counter()
                send_key(app, key)
                drawn = await wait_frame(frame, FRAME_TIMEOUT_S)
                latency = None if drawn is None else round((drawn - began) * 1000, 2)
                end = time.perf_counter() if drawn is None else drawn
                gc_ms = round(pauses.within(began, end) * 1000, 2)
                presses.append(Press(action, key, during, latency, gc_ms))
                return began, latency

            async def cycle(download_screen: Screen[Any]) -> None:
                """Open a screen over the download, wait, close it, wait."""
                action, key, kind = next(actions)

                def is_new(screen: Screen[Any]) -> bool:
                    return isinstance(screen, kind) and screen not in seen

                data = None
                if kind is ReviewScreen:
                    data = frames.expect(
                        lambda s: is_new(s) and getattr(s, "page", None) is not None
                    )
                sample_rate()
                began, latency = await press_key(f"{action} open", key, is_new)
                if latency is None:
                    if data is not None:
                        data.cancel()
                    return
                opened = app.screen
                if data is not None:
                    drawn = await wait_frame(data, max(opts.interval_s, 5.0))
                    review_data.append(None if drawn is None else round((drawn - began) * 1000, 2))
                await sleep_until(began + opts.interval_s)
                began, latency = await press_key(
                    f"{action} close", "escape", lambda s: s is download_screen
                )
                if latency is None and app.screen is opened:
                    app.pop_screen()
                seen.add(opened)
                await sleep_until(began + opts.interval_s)

            start_round()
            app.show_download()
            await until(lambda: isinstance(app.screen, DownloadScreen), START_TIMEOUT_S)
            download_screen = app.screen
            await started()
            while True:
                if app.progress.outcome is not None and not app.download_running:
                    end_round()
                    if rounds[-1].outcome != "complete":
                        raise RuntimeError(f"the download ended {rounds[-1].outcome}")
                    if len(rounds) >= opts.downloads:
                        break
                    start_round()
                    await started()
                elif not press:  # only watch: the TUI's own cost to the download
                    sample_rate()
                    await asyncio.sleep(0.05)
                elif not app.progress.running:
                    await asyncio.sleep(0.01)  # the run has finished; the App is told next
                else:
                    await cycle(download_screen)
            # The same presses with nothing running.
            idle_from = len(presses)
            while press and len(presses) - idle_from < opts.idle_presses:
                await cycle(download_screen)
            return Session(
                presses,
                review_data,
                rounds,
                frames.bytes,
                round(frames.encode_s, 3),
                pauses.summary(),
            )


def without_tui(sandbox: RemoteSandbox, opts: Options, tmp: Path) -> list[Round]:
    """The same downloads with no TUI at all, on the same sandbox."""
    out: list[Round] = []
    for n in range(opts.downloads):
        options = DownloadOptions(
            staging_path=tmp / f"plain-{n + 1}.sqlite",
            base_url=sandbox.base_url,
            selection=ALL_PARTS,
            rate_limit=(opts.limit, opts.window_s),
            parallel=opts.parallel,
        )
        sandbox.reset()
        began, cpu = time.perf_counter(), time.process_time()
        result = anyio.run(download, parse_key(sandbox.api_key), options)
        figures = round_figures(sandbox, result, opts)
        figures.cpu_s = round(time.process_time() - cpu, 2)
        figures.wall_s = round(time.perf_counter() - began, 2)
        out.append(figures)
    return out


def run(opts: Options, profile: Path | None = None) -> dict[str, Any]:
    """Without the TUI first (a process with no App yet), then watched, then pressed."""
    began = time.monotonic()
    load_before = _loadavg()
    with (
        bench_sandbox(
            opts.size,
            opts.seed,
            same_process=opts.same_process,
            shape=opts.shape,
            rate_limit=(opts.limit, opts.window_s),
            latency_ms=opts.latency_ms,
        ) as sandbox,
        tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp_name,
    ):
        tmp = Path(tmp_name)
        records = sum(sandbox.counts.values())
        plain = without_tui(sandbox, opts, tmp) if opts.compare else []
        watched = asyncio.run(drive(sandbox, opts, tmp, press=False)) if opts.compare else None
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        pressed = asyncio.run(drive(sandbox, opts, tmp, press=True))
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
            print(text.getvalue(), file=sys.stderr)
    return report(opts, pressed, watched, plain, records, time.monotonic() - began, load_before)


def _download(rounds: list[Round], opts: Options, suffix: str = "") -> dict[str, Any]:
    run_s = sum(r.wall_s for r in rounds)
    return {
        f"rate_pct{suffix}": pooled_rate(rounds, opts.limit, opts.window_s),
        f"tail_rate_pct{suffix}": round(statistics.mean(r.tail_rate_pct for r in rounds), 1),
        f"download_s{suffix}": round(sum(r.seconds for r in rounds), 2),
        f"cpu_share_pct{suffix}": round(100 * sum(r.cpu_s for r in rounds) / run_s) if run_s else 0,
    }


def report(
    opts: Options,
    session: Session,
    watched: Session | None,
    plain: list[Round],
    records: int,
    seconds: float,
    load_before: list[float],
) -> dict[str, Any]:
    during = [p for p in session.presses if p.during_download]
    idle = [p for p in session.presses if not p.during_download]
    overall = Latency.of([p.latency_ms for p in during])
    idle_latency = Latency.of([p.latency_ms for p in idle])
    by_action = {
        action: asdict(Latency.of([p.latency_ms for p in during if p.action == action]))
        for action in dict.fromkeys(p.action for p in session.presses)
    }
    worst = max(during, key=lambda p: math.inf if p.latency_ms is None else p.latency_ms)
    data = Latency.of(session.review_data_ms)
    rounds = session.rounds
    engine = [s for r in rounds for s in r.engine_rate_pct]
    run_s = sum(r.wall_s for r in rounds)
    full_gc = session.gc["gen2"]
    doc: dict[str, Any] = {
        "clinic": f"{opts.size} / {opts.shape}: {records:,} records",
        "setting": (
            f"{opts.limit} per {opts.window_s:g} s, latency {opts.latency_ms:g} ms, "
            f"parallel {opts.parallel}; a press every {opts.interval_s:g} s; "
            f"terminal {SIZE[0]}x{SIZE[1]}"
        ),
        "presses": overall.presses,
        "latency_median_ms": overall.median_ms,
        "latency_p95_ms": overall.p95_ms,
        "latency_worst_ms": overall.worst_ms,
        "worst_press": f"{worst.action}, of which {worst.gc_ms:.0f} ms garbage collection",
        "timeouts": overall.timeouts,
        "meets_target": (
            overall.presses > 0
            and overall.timeouts == 0
            and overall.median_ms < TARGET_MEDIAN_MS
            and overall.worst_ms < TARGET_WORST_MS
        ),
        "target": f"median < {TARGET_MEDIAN_MS:g} ms, worst < {TARGET_WORST_MS:g} ms",
        "review_data_median_ms": data.median_ms,
        "review_data_worst_ms": data.worst_ms,
        "idle_presses": idle_latency.presses,
        "idle_median_ms": idle_latency.median_ms,
        "idle_worst_ms": idle_latency.worst_ms,
        "full_gc_collections": full_gc["collections"],
        "full_gc_worst_ms": full_gc["worst_ms"],
        "full_gc_total_s": round(full_gc["total_ms"] / 1000, 2),
        "downloads": len(rounds),
        "requests": sum(r.requests for r in rounds),
        "rate_limited": sum(r.rate_limited for r in rounds),
        **_download(rounds, opts),
        "engine_rate_pct_median": round(statistics.median(engine), 1) if engine else None,
        "floor_s": round(sum(r.floor_s for r in rounds), 2),
    }
    if watched is not None:
        doc |= _download(watched.rounds, opts, "_watching")
        doc["full_gc_worst_ms_watching"] = watched.gc["gen2"]["worst_ms"]
    if plain:
        doc |= _download(plain, opts, "_without_tui")
    doc |= {
        "events_per_s": round(sum(r.events for r in rounds) / run_s) if run_s else 0,
        "frames_per_s": round(sum(r.frames for r in rounds) / run_s, 1) if run_s else 0.0,
        "frame_encode_s": session.encode_s,
        "frame_bytes": session.frame_bytes,
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": _loadavg(),
        "by_action": by_action,
        "review_data": asdict(data),
        "idle": asdict(idle_latency),
        "gc": session.gc,
        "gc_watching": watched.gc if watched is not None else None,
        "press_log": [
            [p.action, p.during_download, p.latency_ms, p.gc_ms] for p in session.presses
        ],
        "rounds": [asdict(r) for r in rounds],
        "rounds_watching": [asdict(r) for r in watched.rounds] if watched is not None else [],
        "rounds_without_tui": [asdict(r) for r in plain],
        "options": asdict(opts),
    }
    return doc


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ------------------------------------------------------------------------------- output


def _rate(d: dict[str, Any], suffix: str) -> str:
    return (
        f"{d['rate_pct' + suffix]:.1f} % of the limit (last 20 %: "
        f"{d['tail_rate_pct' + suffix]:.1f} %), {d['download_s' + suffix]:.1f} s, "
        f"CPU {d['cpu_share_pct' + suffix]} % of a core"
    )


def markdown(doc: dict[str, Any]) -> str:
    d = doc
    met = "yes" if d["meets_target"] else "NO"
    timeouts = (
        f" ({d['timeouts']} without a frame in {FRAME_TIMEOUT_S:g} s)" if d["timeouts"] else ""
    )
    rows = [
        ("clinic", d["clinic"]),
        ("setting", d["setting"]),
        (
            "key press → frame, during the download",
            f"median {d['latency_median_ms']:.1f} ms, p95 {d['latency_p95_ms']:.1f} ms, "
            f"worst {d['latency_worst_ms']:.1f} ms over {d['presses']} presses{timeouts}; "
            f"worst: {d['worst_press']}",
        ),
    ]
    for action, lat in d["by_action"].items():
        rows.append(
            (
                f"  {action}",
                f"median {lat['median_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, "
                f"worst {lat['worst_ms']:.1f} ms ({lat['presses']})",
            )
        )
    engine = d["engine_rate_pct_median"]
    per_download = d["requests"] // max(d["downloads"], 1)
    rows += [
        (
            "review: records on screen",
            f"median {d['review_data_median_ms']:.1f} ms, worst "
            f"{d['review_data_worst_ms']:.1f} ms after r",
        ),
        (
            "the same presses, download finished",
            f"median {d['idle_median_ms']:.1f} ms, worst {d['idle_worst_ms']:.1f} ms over "
            f"{d['idle_presses']} presses",
        ),
        (
            "full garbage collections (they stop the loop)",
            f"{d['full_gc_collections']} in the pressed run, worst {d['full_gc_worst_ms']:.0f} ms, "
            f"{d['full_gc_total_s']:.1f} s in all"
            + (
                f"; worst {d['full_gc_worst_ms_watching']:.0f} ms with no presses"
                if "full_gc_worst_ms_watching" in d
                else ""
            ),
        ),
        (
            f"download through the TUI, pressing ({d['downloads']} × {per_download:,} requests)",
            _rate(d, "")
            + f"; {d['rate_limited']} × 429; floor {d['floor_s']:.1f} s"
            + (f"; engine's own rate, median {engine:.1f} %" if engine is not None else ""),
        ),
    ]
    if "rate_pct_watching" in d:
        rows.append(("the same through the TUI, no presses", _rate(d, "_watching")))
    if "rate_pct_without_tui" in d:
        rows.append(("the same without the TUI", _rate(d, "_without_tui")))
    rows.append(
        (
            "load on the App (pressed run)",
            f"{d['events_per_s']:,} engine events/s, {d['frames_per_s']:.1f} frames/s; "
            f"{d['cpus']} CPUs, load average {d['load_average_before']} → "
            f"{d['load_average_after']}",
        )
    )
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| target | met |", "|---|---|", f"| {d['target']} | {met} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    base = sandbox_arguments(None, size="medium")
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        parents=[base],
        conflict_handler="resolve",
    )
    parser.add_argument(
        "--json",
        dest="json_out",
        nargs="?",
        const="-",
        default=None,
        help="write JSON to this file; without a file, print it on stdout (and the table on "
        "stderr)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small clinic, 3 downloads, a press every 0.25 s"
    )
    parser.add_argument("--downloads", type=int, default=1, help="downloads of the clinic, each")
    parser.add_argument("--idle-presses", type=int, default=12, help="presses after the download")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between presses")
    parser.add_argument(
        "--no-encode",
        action="store_true",
        help="do not encode frames to terminal bytes (the headless driver writes nothing)",
    )
    parser.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the downloads without the TUI and through it with no presses",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the pressed run into this file"
    )
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(size="small", downloads=3, idle_presses=6, interval=0.25)
    args = parser.parse_args(argv)
    opts = Options(
        size=args.size,
        shape=args.shape,
        seed=args.seed,
        limit=args.limit,
        window_s=args.window,
        latency_ms=args.latency_ms,
        parallel=args.parallel,
        downloads=args.downloads,
        idle_presses=args.idle_presses,
        interval_s=args.interval,
        encode=not args.no_encode,
        compare=not args.no_compare,
        same_process=args.same_process,
    )
    doc = run(opts, args.profile)
    table = markdown(doc)
    if args.json_out == "-":
        print(table, file=sys.stderr)
        print(json.dumps(doc, indent=2))
    else:
        print(table)
        if args.json_out is not None:
            Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n")
            print(f"\nwrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
