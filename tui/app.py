"""The cliniko-switch wizard: one Textual App, a screen per step (DESIGN.md section 7).

connect -> select -> download -> (review) -> plan & load -> summary

The App owns the long work: the download runs in an App-level worker (a worker started by a
screen dies with that screen), so the operator can leave the download screen to browse what
is already staged and come back. Engine events reach the App as `EngineEvent` messages; the
App folds them into `self.progress` and tells the screens that show progress.
"""

from __future__ import annotations

import contextlib
import gc
from typing import ClassVar, Protocol, runtime_checkable

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import Worker, WorkerState

from engine.api import (
    AnyEvent,
    ClinikoError,
    DownloadFailed,
    DownloadOptions,
    StagingError,
    download,
)
from tui.crashlog import write_crash_log
from tui.messages import DownloadEnded, EngineEvent
from tui.progress_model import DownloadProgress
from tui.state import WizardConfig, WizardState

DOWNLOAD_GROUP = "download"
EXIT_INTERRUPTED = 3
"""The command line's code for "stopped, run again to resume" (DESIGN.md section 2)."""


@runtime_checkable
class ProgressView(Protocol):
    """A screen that redraws when download progress moves on."""

    def progress_changed(self, event: AnyEvent) -> None: ...


@runtime_checkable
class DownloadOutcomeView(Protocol):
    def download_ended(self, outcome: str, error: str | None) -> None: ...


class SwitchApp(App[int]):
    """The wizard (or, with `config.review_only`, the offline review of one staging file)."""

    TITLE = "cliniko-switch"
    SUB_TITLE = "Cliniko -> MyNewClinic"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(
        self, config: WizardConfig | None = None, state: WizardState | None = None
    ) -> None:
        super().__init__()
        self.config = config or WizardConfig()
        self.state = state or WizardState(
            staging_path=self.config.staging_path, target_url=self.config.target_url
        )
        self.progress = DownloadProgress(clock=self.config.clock)
        self.crash_log_path: str | None = None
        if not self.config.animate:
            self.animation_level = "none"

    # -- start ---------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if not self.is_headless:
            self._stop_on_signals()
        if self.config.review_only is not None:
            self.show_review(self.config.review_only, offline=True)
        else:
            self.show_connect()

    # -- navigation: each step replaces the one before; review and details are pushed on top --

    def show_connect(self) -> None:
        from tui.screens.connect import ConnectScreen

        self._switch(ConnectScreen())

    def show_select(self) -> None:
        from tui.screens.select import SelectScreen

        self._switch(SelectScreen())

    def show_download(self) -> None:
        from tui.screens.download import DownloadScreen

        self._switch(DownloadScreen())

    def show_review(self, path: object = None, *, offline: bool = False) -> None:
        from pathlib import Path

        from tui.screens.review import ReviewScreen

        staging = Path(str(path)) if path is not None else self.state.staging_path
        screen = ReviewScreen(staging, offline=offline)
        if offline:
            self._switch(screen)
        else:
            self.push_screen(screen)

    def show_plan(self) -> None:
        from tui.screens.load import LoadScreen

        self._switch(LoadScreen())

    def show_summary(self) -> None:
        from tui.screens.summary import SummaryScreen

        self._switch(SummaryScreen())

    def _switch(self, screen: object) -> None:
        from textual.screen import Screen

        assert isinstance(screen, Screen)
        # The default screen stays at the bottom of the stack; a wizard step sits on it.
        if len(self.screen_stack) <= 1:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)
        if self.config.freeze_gc if self.config.freeze_gc is not None else not self.is_headless:
            # What exists at a step change lives for the session (Textual keeps closed
            # screens' widgets reachable): out of the collector's sight, full collections stay
            # short while a download runs (bench/tui_responsiveness.py: worst press 325 -> 190
            # ms). Not in tests: a test process would keep every finished app for good.
            gc.freeze()

    # -- the download worker ----------------------------------------------------------------

    @property
    def download_running(self) -> bool:
        return any(
            w.group == DOWNLOAD_GROUP and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def start_download(self) -> None:
        """Start (or resume, or top up) the download of `state.selection` into the staging file."""
        if self.download_running:
            return
        state = self.state
        if state.key is None or state.base_url is None:
            raise RuntimeError("start_download needs a checked key")
        self.progress.reset()
        state.download = None
        state.download_error = None
        opts = DownloadOptions(
            staging_path=state.staging_path,
            base_url=state.base_url,
            selection=state.selection,
            rate_limit=self.config.rate_limit,
            parallel=self.config.parallel,
        )
        key = state.key

        async def job() -> None:
            def sink(event: AnyEvent) -> None:
                self.post_message(EngineEvent(event))

            try:
                state.download = await download(key, opts, sink=sink)
            except DownloadFailed as exc:
                state.download = exc.result
                state.download_error = str(exc)
            except (ClinikoError, StagingError) as exc:
                state.download_error = _with_hint(exc)

        self.run_worker(job(), group=DOWNLOAD_GROUP, exclusive=True, exit_on_error=False)

    def cancel_download(self) -> None:
        """Stop the download; every committed page stays, and starting again resumes."""
        self.workers.cancel_group(self, DOWNLOAD_GROUP)

    def on_engine_event(self, message: EngineEvent) -> None:
        self.progress.apply(message.event)
        for screen in self.screen_stack:
            if isinstance(screen, ProgressView):
                screen.progress_changed(message.event)

    def on_worker_state_changed(self, message: Worker.StateChanged) -> None:
        worker = message.worker
        if worker.group != DOWNLOAD_GROUP:
            return
        if message.state == WorkerState.SUCCESS:
            result = self.state.download
            if self.state.download_error:
                outcome = "failed"
            elif result is not None:
                outcome = result.outcome
            else:
                outcome = "failed"
            self.post_message(DownloadEnded(outcome, self.state.download_error))
        elif message.state == WorkerState.CANCELLED:
            self.post_message(DownloadEnded("interrupted", None))
        elif message.state == WorkerState.ERROR:
            error = worker.error
            if error is not None:
                self._handle_exception(error if isinstance(error, Exception) else Exception())

    def on_download_ended(self, message: DownloadEnded) -> None:
        self.progress.finish(message.outcome)
        for screen in self.screen_stack:
            if isinstance(screen, DownloadOutcomeView):
                screen.download_ended(message.outcome, message.error)

    # -- leaving ---------------------------------------------------------------------------------

    def _stop_on_signals(self) -> None:
        """SIGTERM and SIGHUP (a dropped SSH session) stop the app the way ctrl+q does, so the
        download stops between pages and the terminal is restored (exit 3: resumable)."""
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._interrupted)

    def _interrupted(self) -> None:
        if self.download_running:
            self.cancel_download()
        self.state.forget_key()
        self.exit(EXIT_INTERRUPTED)

    async def action_quit(self) -> None:
        if self.download_running:
            self.cancel_download()
        self.state.forget_key()
        self.exit(0)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    # -- crashes: shown and logged, never with values (they can hold patient data) -------------

    def _handle_exception(self, error: Exception) -> None:
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        path = write_crash_log(error, self.config.crash_log)
        self.crash_log_path = str(path) if path else None
        where = f"A report without patient data is in {path}." if path else ""
        self.panic(
            Text(
                f"cliniko-switch stopped on an internal error ({type(error).__name__}). "
                f"Staged data is safe; run the same command again to resume. {where}"
            )
        )


def _with_hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", "")
    text = str(exc)
    return f"{text} {hint}" if hint and hint not in text else text
