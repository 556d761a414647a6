"""Step 3: the download, a bar per stage and overall, and the request budget as it is spent.

The download itself runs in the App's worker (`app.start_download()`); this screen only
renders `app.progress`. Events arrive much faster than a terminal needs repainting, so
`progress_changed` only marks the screen out of date and a timer redraws at most ten times a
second (at once when a stage completes or the run starts or stops). Leaving for the review
screen and coming back shows the same state: everything is read from `app.progress`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.clock import Clock
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, Static

from engine.api import (
    AnyEvent,
    ListProgress,
    Notice,
    RunFinished,
    RunStarted,
    list_variants,
    resources_for,
)
from tui.progress_model import (
    MAX_NOTICES,
    STAGE_LABELS,
    STAGE_ORDER,
    DownloadProgress,
    ListState,
    Stage,
    format_duration,
    stage_of,
    stages_for,
)

if TYPE_CHECKING:
    from tui.app import SwitchApp

REFRESH_EVERY_S = 0.1
"""The fastest the screen repaints while a download runs (ten times a second)."""

MODE_LABELS = {"full": "full download", "resume": "resumed download", "topup": "top-up"}
RUNNING_LABELS = {
    "full": "Full download into {path}",
    "resume": "Resuming the interrupted download into {path}",
    "topup": "Top-up of {path}: only what changed since the last run",
}

Phase = str
"""idle, connecting, running, stopping, complete, interrupted or failed."""


def lists_per_stage(selection: tuple[str, ...] | list[str]) -> dict[str, int]:
    """How many top-level lists each stage of this selection walks (nested lists, such as a
    practitioner's reference numbers, only become known while the run goes on)."""
    try:
        walks = list_variants(resources_for(selection))
    except ValueError:
        return {}
    counts: dict[str, int] = {}
    for resource, _variant in walks:
        counts[resource.part] = counts.get(resource.part, 0) + 1
    return counts


def _n(value: int) -> str:
    return f"{value:,}"


def _plural(value: int, one: str, many: str) -> str:
    return f"{_n(value)} {one if value == 1 else many}"


BarState = tuple[float, float, str, bool]
"""What one row shows: total pages, pages done, its text, and whether it is done."""


class StageRow(Horizontal):
    """One stage: its name, a bar of pages, and what it has staged so far."""

    def __init__(self, stage: str, clock: Clock, label: str | None = None) -> None:
        super().__init__(id=f"stage-{stage}", classes="stage-row")
        self.stage = stage
        self._label = label or STAGE_LABELS.get(stage, stage)
        self._clock = clock
        self._shown: tuple[float, float, str, bool] | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="stage-label")
        yield ProgressBar(total=1, show_eta=False, clock=self._clock)
        yield Label("", classes="stage-text")

    def show(self, total: float, progress: float, text: str, done: bool) -> None:
        """Update the bar and the text, touching only what changed."""
        if self._shown == (total, progress, text, done):
            return
        self._shown = (total, progress, text, done)
        self.query_one(ProgressBar).update(total=total, progress=progress)
        self.query_one(".stage-text", Label).update(text)
        self.set_class(done, "-done")

    @property
    def text(self) -> str:
        return self._shown[2] if self._shown else ""


class DownloadScreen(Screen[None]):
    """Download progress: stages, overall, request budget, notices; cancel and resume."""

    CSS_PATH = "download.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next", "Next: plan the load"),
        Binding("enter", "next", "Next", show=False),
        Binding("r", "review", "Review staged"),
        Binding("c", "cancel", "Cancel download"),
        Binding("s", "resume", "Resume"),
        Binding("b", "back", "Back to connect"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._dirty = True
        self._stopping = False
        self._phase: Phase | None = None
        self._notices_shown = -1
        self._texts: dict[str, Text] = {}
        self._message: str | None = None
        """A message of the screen's own (a resume that could not start)."""

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    @property
    def progress(self) -> DownloadProgress:
        return self.wizard.progress

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        clock = Clock(get_time=self.wizard.config.clock)
        yield Header(show_clock=False)
        with VerticalScroll(id="download-body"):
            yield Static("Step 3 of 6 · Download from Cliniko", classes="step-title")
            yield Static("", id="status")
            yield Static("", id="next-hint", classes="hint")
            with Vertical(id="stages"):
                for stage in STAGE_ORDER:
                    yield StageRow(stage, clock)
                yield StageRow("overall", clock, "Overall")
            yield Static("", id="budget")
            yield Label("Notices", id="notices-title")
            with VerticalScroll(id="notices"):
                yield Static("", id="notices-text")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_EVERY_S, self._tick)
        self.render_progress()

    # -- what the App calls -----------------------------------------------------------------

    def progress_changed(self, event: AnyEvent) -> None:
        """Called for every engine event: cheap, the redraw waits for the next tick unless a
        stage has just finished (or the run started or ended)."""
        self._dirty = True
        urgent = isinstance(event, RunStarted | RunFinished)
        if isinstance(event, ListProgress) and event.done:
            stage = self.progress.stages.get(stage_of(event.resource))
            urgent = stage is not None and stage.done
        if urgent and self.is_mounted:
            self.render_progress()

    def download_ended(self, outcome: str, error: str | None) -> None:
        self._stopping = False
        self._dirty = True
        if self.is_mounted:
            self.render_progress()

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        phase = self.phase()
        if action == "cancel":
            return phase in ("connecting", "running")
        if action == "resume":
            return phase in ("idle", "interrupted", "failed")
        if action == "next":
            return phase == "complete"
        if action == "back":
            return phase in ("idle", "interrupted", "failed")
        if action == "review":
            return Path(self.wizard.state.staging_path).exists()
        return True

    def action_cancel(self) -> None:
        if not self.wizard.download_running:
            return
        self._stopping = True
        self.wizard.cancel_download()
        self.render_progress()

    def action_resume(self) -> None:
        if self.wizard.download_running:
            return
        state = self.wizard.state
        if state.key is None or state.base_url is None:
            self._message = "The API key is no longer held: press b and enter it again."
            self.render_progress()
            return
        self._message = None
        self._stopping = False
        self.wizard.start_download()
        self.render_progress()

    def action_next(self) -> None:
        if self.phase() == "complete":
            self.wizard.show_plan()

    def action_review(self) -> None:
        self.wizard.show_review()

    def action_back(self) -> None:
        if not self.wizard.download_running:
            self.wizard.show_connect()

    # -- state --------------------------------------------------------------------------------

    def phase(self) -> Phase:
        progress = self.progress
        if progress.outcome is not None:
            return progress.outcome
        if self._stopping:
            return "stopping"
        if progress.started_at is not None:
            return "running"
        if self.wizard.download_running:
            return "connecting"
        return "idle"

    # -- rendering ----------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.is_current:
            return  # the review screen is on top: catch up when it is popped
        if self._dirty or self.progress.running:
            self.render_progress()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.render_progress()

    def render_progress(self) -> None:
        """Redraw everything from `app.progress` (cheap: widgets change only when their
        text or value does)."""
        self._dirty = False
        phase = self.phase()
        self._render_status(phase)
        self._render_stages(phase)
        self._update("#budget", self._budget_text(phase))
        self._render_notices()
        if phase != self._phase:
            self._phase = phase
            self.set_class(phase in ("complete",), "-complete")
            self.refresh_bindings()

    def _update(self, selector: str, text: Text) -> None:
        """Set a Static's text only when it differs (each update costs a repaint)."""
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text)

    def _render_status(self, phase: Phase) -> None:
        status = self.query_one("#status", Static)
        hint = self.query_one("#next-hint", Static)
        progress = self.progress
        finished = progress.finished
        state = self.wizard.state
        kind = "hint"
        next_hint = ""
        if phase == "idle":
            text = "No download is running."
            next_hint = "Press s to start it (it resumes whatever is already staged)."
        elif phase == "connecting":
            text = "Connecting to Cliniko..."
            next_hint = "Press c to cancel."
        elif phase == "running":
            template = RUNNING_LABELS.get(progress.mode or "", "Downloading into {path}")
            text = template.format(path=state.staging_path)
            kind = "running"
            next_hint = "Press r to review what is staged so far, c to cancel."
        elif phase == "stopping":
            text = "Stopping: every committed page is kept..."
            kind = "warning-message"
        elif phase == "interrupted":
            text = "Stopped: every committed page is kept; press s to resume."
            kind = "warning-message"
            next_hint = "Press r to review what is staged, b to go back to connect."
        elif phase == "complete":
            records = finished.records if finished else progress.records_done
            requests = finished.requests if finished else 0
            quarantined = finished.quarantined if finished else 0
            text = (
                f"Download complete: {_plural(records, 'record', 'records')}, "
                f"{_plural(requests, 'request', 'requests')}, {_n(quarantined)} quarantined."
            )
            kind = "ok-message"
            if quarantined:
                next_hint = (
                    "Press r to review the anomalies (quarantined records), n to plan the load."
                )
            else:
                next_hint = "Press n to plan the load (r reviews what was staged, anomalies too)."
        else:  # failed
            error = state.download_error or (finished.error if finished else None)
            if error:
                text = f"Download failed: {error}"
            else:
                failed = state.download.failed_lists if state.download is not None else []
                count = len(failed)
                text = (
                    f"Download finished, but {_plural(count, 'list', 'lists')} could not be "
                    "read (see the notices)."
                    if count
                    else "Download failed."
                )
            kind = "error-message"
            next_hint = "Press s to try again (it resumes), b to go back to connect."
        if self._message:
            text, kind = self._message, "error-message"
        self._update("#status", Text(text))
        for name in ("hint", "running", "warning-message", "ok-message", "error-message"):
            status.set_class(name == kind, name)
        self._update("#next-hint", Text(next_hint))
        hint.display = bool(next_hint)

    def _render_stages(self, phase: Phase) -> None:
        progress = self.progress
        selection = tuple(self.wizard.state.selection)
        wanted = set(stages_for(selection)) | set(progress.stages)
        per_stage = lists_per_stage(selection)
        active = phase in ("connecting", "running", "stopping")
        complete = phase == "complete"
        for row in self.query(StageRow):
            name = row.stage
            if name == "overall":
                continue
            row.display = name in wanted
            if not row.display:
                continue
            if name == "account" and name not in progress.stages:
                row.show(*_account_bar(progress, active))
                continue
            stage = progress.stages.get(name)
            row.show(*_stage_bar(stage, per_stage.get(name, 0), active, complete))
        self.query_one("#stage-overall", StageRow).show(*_overall_bar(progress, complete))

    def _budget_text(self, phase: Phase) -> Text:
        progress = self.progress
        stats = progress.stats
        finished = progress.finished
        out = Text()

        def line(label: str, value: str, style: str = "") -> None:
            if out:
                out.append("\n")
            out.append(f"{label:<10}", style="bold")
            out.append(value, style=style)

        active = phase in ("connecting", "running", "stopping")
        if stats is not None and active:
            rate = f"{stats.rate_per_minute:.0f}/{stats.limit_per_minute:.0f} per min"
            if progress.waiting_delta_s > 0.05:
                rate += f" · waiting for the rate limit: {progress.waiting_delta_s:.1f} s"
            line("Rate", rate)
        elif active:
            line("Rate", "--")
        requests = finished.requests if finished else (stats.requests if stats else 0)
        retries = finished.retries if finished else (stats.retries if stats else 0)
        limited = finished.rate_limited if finished else (stats.rate_limited if stats else 0)
        line(
            "Requests",
            f"{_n(requests)} · retries {_n(retries)} · rate-limited (429) {_n(limited)}",
        )
        elapsed = format_duration(progress.elapsed_s)
        if active:
            line("Time", f"elapsed {elapsed} · ETA {format_duration(progress.eta_s)}")
        else:
            line("Time", f"elapsed {elapsed}")
        if not active:
            # While the run goes on the status line says this.
            mode = progress.mode
            run = MODE_LABELS.get(mode, mode) if mode else "--"
            line("Run", f"{run} · {self.wizard.state.staging_path}")
        return out

    def _render_notices(self) -> None:
        """The latest notices (the model keeps the last MAX_NOTICES), newest at the bottom;
        rebuilt only when a notice arrives (or a new run starts)."""
        progress = self.progress
        total = progress.notices_total
        if total == self._notices_shown:
            return
        self._notices_shown = total
        text = Text()
        for notice in progress.notices:
            if text:
                text.append("\n")
            text.append_text(_notice_text(notice))
        box = self.query_one("#notices", VerticalScroll)
        self.query_one("#notices-text", Static).update(text)
        box.display = total > 0
        box.scroll_end(animate=False)
        title = (
            f"Notices ({_n(total)}, the last {MAX_NOTICES} shown)"
            if total > MAX_NOTICES
            else (f"Notices ({_n(total)})" if total else "Notices: none")
        )
        self.query_one("#notices-title", Label).update(title)


def _account_bar(progress: DownloadProgress, active: bool) -> BarState:
    """The account stage (the key check and the settings) is staged before the run starts
    walking lists, so it is done once the run has started."""
    if progress.started_at is not None:
        return 1, 1, "done · key checked, settings", True
    return 1, 0, ("checking the key" if active else "not reached"), False


def _list_floor(item: ListState) -> int:
    """The fewest pages a list can have: what it says, or, while its size is unknown, one
    more than it has read."""
    if item.done:
        return item.pages_done
    return max(item.pages_expected or 0, item.pages_done + 1)


def _stage_bar(stage: Stage | None, lists_wanted: int, active: bool, complete: bool) -> BarState:
    if stage is None:
        if complete:
            return 1, 1, "done · nothing to read", True
        return 1, 0, ("waiting" if active else "not started"), False
    done = stage.pages_done
    records = _plural(stage.records_done, "record", "records")
    if complete or (stage.done and len(stage.lists) >= lists_wanted):
        return max(done, 1), max(done, 1), f"done · {records}", True
    missing = max(0, lists_wanted - len(stage.lists))
    expected = stage.pages_expected if not missing else None
    if expected is None:
        # Not every list knows its size yet: count what is certain, and say it is a floor.
        floor = sum(_list_floor(x) for x in stage.lists.values()) + missing
        return floor, done, f"{records} · {_n(done)}/{_n(floor)}+ pages", False
    expected = max(expected, done)
    return expected, done, f"{records} · {_n(done)}/{_n(expected)} pages", False


def _overall_bar(progress: DownloadProgress, complete: bool) -> BarState:
    done = progress.pages_done
    records = _plural(progress.records_done, "record", "records")
    if complete:
        return max(done, 1), max(done, 1), f"{records} · {_n(done)} pages", True
    expected = progress.pages_expected
    if expected is None:
        floor = sum(_list_floor(x) for s in progress.stages.values() for x in s.lists.values())
        floor = max(floor, done + 1)
        return floor, done, f"{records} · {_n(done)}/{_n(floor)}+ pages", False
    expected = max(expected, done)
    return expected, done, f"{records} · {_n(done)}/{_n(expected)} pages", False


def _notice_text(notice: Notice) -> Text:
    text = Text()
    text.append("! " if notice.level == "warning" else "- ", style="bold")
    if notice.resource:
        text.append(f"{notice.resource}: ", style="bold")
    text.append(notice.message)
    return text
