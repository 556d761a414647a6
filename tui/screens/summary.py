"""Step 6: what the load did, whether the clinic checks out, and what to spot-check by eye.

Created, updated, unchanged, conflicts and skipped per kind (the skip reasons grouped, and
where the CSV of skipped records went); the verification of counts and balances; a few
patients with a balance and next week's appointments (in the clinic's time zone) to compare
with Cliniko; the download's numbers when this session downloaded. The API key is forgotten
here: nothing after this step needs Cliniko.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, cast

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState

from engine.api import LoadResult, SpotChecks, StagingError, TargetError, spot_checks
from tui import plan_view as pv

if TYPE_CHECKING:
    from tui.app import SwitchApp

SPOT_GROUP = "summary-spot-checks"
SPOT_LIMIT = 5


@dataclass(frozen=True)
class _Spotted:
    checks: SpotChecks | None
    error: str | None


class SummaryScreen(Screen[None]):
    """Step 6: the outcome of the load."""

    CSS_PATH = "summary.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("r", "review", "Review staging"),
        Binding("p", "plan", "Plan again"),
        Binding("escape", "plan", "Back to the plan", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.spot_checks_done = False
        """The spot checks are shown (or their error is)."""

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="summary-body"):
            yield Static("Step 6 of 6 · Summary", classes="step-title")
            yield Static("", id="outcome")
            yield Static("", id="per-kind")
            yield Static("", id="skipped", classes="section")
            yield Static("", id="verification", classes="section")
            yield Static("Spot-check in MyNewClinic", classes="step-title section")
            yield Static("Reading the clinic…", id="spot-checks", classes="hint")
            yield Static("", id="download", classes="section")
            yield Static("", id="notices", classes="warning-message section")
            yield Static(
                "The API key has been forgotten. p plans again (e.g. after a top-up download), "
                "r reviews the staging file, q quits.",
                id="closing",
                classes="hint section",
            )
        yield Footer()

    def on_mount(self) -> None:
        state = self.wizard.state
        state.forget_key()
        result = state.load
        if result is None:
            self._show_outcome(Text("Nothing was loaded in this session."), "warning-message")
            for name in ("#per-kind", "#skipped", "#verification", "#spot-checks"):
                self.query_one(name).display = False
        else:
            self._show_result(result)
            self._start_spot_checks(result)
        download = state.download
        self.query_one("#download", Static).update(
            Text(pv.download_line(download)) if download is not None else ""
        )
        self.query_one("#download").display = download is not None
        notices = self.query_one("#notices", Static)
        notices.update(Text("\n".join(state.notices)))
        notices.display = bool(state.notices)
        self.query_one("#summary-body").focus()

    # -- bindings -----------------------------------------------------------------------

    def action_review(self) -> None:
        self.wizard.show_review()

    def action_plan(self) -> None:
        self.wizard.show_plan()

    # -- the load's outcome ---------------------------------------------------------------

    def _show_outcome(self, text: Text, css: str) -> None:
        outcome = self.query_one("#outcome", Static)
        outcome.set_classes(css)
        outcome.update(text)

    def _show_result(self, result: LoadResult) -> None:
        state = self.wizard.state
        self._show_outcome(
            Text(pv.outcome_headline(result)), "ok-message" if result.ok else "error-message"
        )
        self.query_one("#per-kind", Static).update(_outcome_table(result))
        rows = state.skipped_rows or len(result.plan.skipped())
        self.query_one("#skipped", Static).update(
            Text(pv.skipped_line(result, state.skipped_csv, rows))
        )
        verification = self.query_one("#verification", Static)
        verification.update(Text("\n".join(pv.verification_lines(result.verification))))
        verification.set_classes("section " + ("ok-message" if result.ok else "error-message"))

    # -- spot checks ------------------------------------------------------------------------

    def _start_spot_checks(self, result: LoadResult) -> None:
        the_plan = result.plan
        staging = the_plan.staging_path
        target = the_plan.target_location or self.wizard.state.target_url
        now = self.wizard.config.now or datetime.now(UTC)
        source = the_plan.source

        def work() -> _Spotted:
            try:
                found = spot_checks(staging, target, now, SPOT_LIMIT, source=source)
            except (StagingError, TargetError) as exc:
                return _Spotted(None, str(exc))
            return _Spotted(found, None)

        self.run_worker(work, thread=True, group=SPOT_GROUP, exclusive=True, name="spot-checks")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != SPOT_GROUP:
            return
        event.stop()
        if event.state != WorkerState.SUCCESS:
            return
        outcome = event.worker.result
        if not isinstance(outcome, _Spotted):
            return
        self.spot_checks_done = True
        widget = self.query_one("#spot-checks", Static)
        if outcome.checks is None:
            widget.set_classes("warning-message")
            widget.update(Text(f"The spot-check list could not be read: {outcome.error}"))
            return
        widget.set_classes("")
        result = self.wizard.state.load
        status_only = (
            {s.patient_target_id for s in result.verification.status_only_open}
            if result is not None
            else set()
        )
        widget.update(_spot_check_view(outcome.checks, status_only))


# -- renderables ------------------------------------------------------------------------------


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def _outcome_table(result: LoadResult) -> Table:
    rows = pv.outcome_rows(result)
    table = _table("Kind", "Created", "Updated", "Unchanged", "Conflicts", "Skipped")
    for row in rows:
        table.add_row(row.label, *(_count(int(getattr(row, name))) for name in pv.OUTCOME_COLUMNS))
    totals = pv.outcome_totals(rows)
    table.add_row(
        Text("Total", style="bold"),
        *(Text(f"{totals[name]:,}", style="bold") for name in pv.OUTCOME_COLUMNS),
    )
    return table


def _count(n: int) -> Text:
    return Text(f"{n:,}", style="" if n else "dim")


def _spot_check_view(checks: SpotChecks, status_only: set[int]) -> RenderableType:
    parts: list[RenderableType] = []
    shown = len(checks.patients_with_balance)
    total = checks.patients_with_balance_total
    if not total:
        parts.append(Text("No imported patient has a balance."))
    else:
        count = f"{shown} of {total:,}" if shown < total else f"{total:,}"
        parts.append(Text(f"Patients with a balance ({count}, largest first):", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("Cliniko id", no_wrap=True)
        table.add_column("Clinic id", justify="right", no_wrap=True)
        table.add_column("Balance", justify="right", no_wrap=True)
        table.add_column("Name", no_wrap=True, max_width=24, overflow="ellipsis")
        marked = False
        for p in checks.patients_with_balance:
            mark = "*" if p.clinic_id in status_only else " "
            marked = marked or p.clinic_id in status_only
            table.add_row(
                p.cliniko_id,
                str(p.clinic_id),
                f"{pv.format_money(p.balance)} {mark}",
                pv.shorten(p.name, 24),
            )
        parts.append(table)
        if marked:
            parts.append(Text("* rests on an open invoice's status alone", style="dim"))
    shown = len(checks.next_week_appointments)
    total = checks.next_week_total
    zone = f"{checks.time_zone} time"
    if not total:
        parts.append(
            Text(
                f"No imported appointments in the next 7 days "
                f"({checks.now.strftime('%a %d %b')} to {checks.until.strftime('%a %d %b %Y')})."
            )
        )
    else:
        count = f"{shown} of {total:,}" if shown < total else f"{total:,}"
        parts.append(Text(f"Appointments in the next 7 days ({count}), {zone}:", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("Starts", no_wrap=True)
        table.add_column("Practitioner", no_wrap=True, max_width=14, overflow="ellipsis")
        table.add_column("Patient clinic id", justify="right", no_wrap=True)
        table.add_column("Patient Cliniko id", no_wrap=True)
        for a in checks.next_week_appointments:
            table.add_row(
                pv.format_day_time(a.starts_at),
                pv.shorten(a.practitioner, 14),
                str(a.patient_clinic_id),
                a.patient_cliniko_id or "",
            )
        parts.append(table)
    return Group(*parts)


__all__ = ["SummaryScreen"]
