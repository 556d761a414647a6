"""Plain-text rendering of engine events on stderr, for the non-interactive commands.

Lines are short and stable so they read well in a log or over a slow SSH link; when stderr is
a terminal the running totals overwrite one status line instead of scrolling.
"""

from __future__ import annotations

import sys
from typing import TextIO

from engine.events import (
    AnyEvent,
    CountReady,
    ListProgress,
    Notice,
    RequestStats,
    RunFinished,
    RunStarted,
)
from tui.progress_model import format_duration


class TextProgress:
    """An `EventSink` that writes human progress to a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status_shown = False

    def _line(self, text: str) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[2K")
            self._status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _status(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + text)
            self._status_shown = True
            self.stream.flush()
        else:
            self._line(text)

    def __call__(self, event: AnyEvent) -> None:
        if self.quiet:
            return
        if isinstance(event, RunStarted):
            self._line(
                f"run {event.run_id} ({event.mode}): {event.lists} lists -> {event.staging_path}"
            )
        elif isinstance(event, ListProgress):
            if event.done:
                expected = "" if event.records_expected is None else f"/{event.records_expected}"
                self._line(
                    f"  done  {event.resource:<32} {event.variant:<10} "
                    f"{event.records_done}{expected} records, {event.pages_done} pages"
                )
        elif isinstance(event, RequestStats):
            self._status(
                f"  {event.pages_done}/{event.pages_expected} pages  "
                f"{event.requests} requests  "
                f"{event.rate_per_minute:.0f}/{event.limit_per_minute:.0f} per min  "
                f"retries {event.retries}  429s {event.rate_limited}  "
                f"elapsed {format_duration(event.elapsed_s)}  eta {format_duration(event.eta_s)}"
            )
        elif isinstance(event, CountReady):
            shown = "error" if event.count is None else str(event.count)
            self._line(f"  {event.resource:<32} {event.variant:<10} {shown:>9}")
        elif isinstance(event, Notice):
            where = f" [{event.resource}]" if event.resource else ""
            self._line(f"{event.level}{where}: {event.message}")
        elif isinstance(event, RunFinished):
            self._line(
                f"run {event.run_id} {event.outcome}: {event.records} records, "
                f"{event.requests} requests ({event.retries} retries, {event.rate_limited} 429s), "
                f"{event.quarantined} quarantined, {format_duration(event.seconds)}"
            )
