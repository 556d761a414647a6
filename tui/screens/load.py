"""Step 5: plan the load into the clinic, show it as a diff, and load it once confirmed.

The plan is read-only (the staging file and the clinic store are only read); it runs in a
thread worker and its `LoadProgress` events drive a progress bar. The diff is a table of clinic
kinds by action (create, update, unchanged, conflict, skip); Enter on a count lists those
records, Enter on a record shows its field changes. `l` asks before it loads; the load runs in
a thread worker with a bar per kind, then writes the skipped-records CSV next to the staging
file and moves on to the summary.

Screens pushed from here (the drill-down, the skip reasons, the dialogs) live in this module:
they only make sense over a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState

from engine.api import (
    AnyEvent,
    LoadProgress,
    LoadResult,
    Notice,
    Plan,
    PlanItem,
    StagingError,
    TargetError,
    UnknownSelection,
    load,
    plan,
    write_skip_report,
)
from tui import plan_view as pv
from tui.messages import EngineEvent

if TYPE_CHECKING:
    from tui.app import SwitchApp

PLAN_GROUP = "load-screen-plan"
AFTER_ERROR = "t: change the target, then Enter to plan again · p: plan again · escape: back"
TABLE_HINT = "Enter on a count lists those records; on a kind, all of them."
LOAD_GROUP = "load-screen-load"


@dataclass(frozen=True)
class _Planned:
    generation: int
    url: str
    plan: Plan | None
    error: str | None


@dataclass(frozen=True)
class _Loaded:
    result: LoadResult | None
    error: str | None
    csv: Path | None = None
    csv_rows: int = 0
    csv_error: str | None = None


def _message(exc: BaseException) -> str:
    text = str(exc)
    hint = getattr(exc, "hint", "")
    return f"{text} {hint}" if hint and hint not in text else text


def _num(n: int) -> Text:
    return Text(f"{n:,}", justify="right", style="" if n else "dim")


class LoadScreen(Screen[None]):
    """Step 5: the target, the plan as a diff, and the load."""

    CSS_PATH = "load.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "review", "Review"),
        Binding("p", "replan", "Re-plan"),
        Binding("l", "load", "Load"),
        Binding("d", "drill", "Details"),
        Binding("s", "skips", "Skips"),
        Binding("t", "focus_target", "Target", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan: Plan | None = None
        self.busy: str | None = None
        """"plan" or "load" while a worker runs."""
        self._generation = 0
        self.plans_done = 0
        """Plans finished (or failed) since the screen opened."""
        self._planned_url: str | None = None
        self._load_bars: dict[str, ProgressBar] = {}

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        state = self.wizard.state
        yield Header(show_clock=False)
        with Vertical(id="load-body"):
            yield Static("Step 5 of 6 · Plan and load into MyNewClinic", classes="step-title")
            with Horizontal(id="target-row"):
                yield Label("Target", id="target-label")
                yield Input(
                    value=state.target_url,
                    placeholder="sqlite:///clinic.db or postgresql://user@host/db",
                    password=pv.has_password(state.target_url),
                    id="target",
                )
            yield Static(f"Staging file: {state.staging_path}", id="staging", classes="hint")
            yield Static("", id="status")
            with Horizontal(id="plan-progress"):
                yield Label("", id="progress-label")
                yield ProgressBar(id="progress-bar", show_eta=False)
            yield DataTable(id="kinds", cursor_type="cell", zebra_stripes=True)
            yield VerticalScroll(id="load-bars")
            yield Static(TABLE_HINT, id="table-hint", classes="hint")
            with VerticalScroll(id="notes"):
                yield Static("", id="notes-warnings", classes="warning-message")
                yield Static("", id="notes-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plan-progress").display = False
        self.query_one("#load-bars").display = False
        self.query_one("#table-hint").display = False
        self.query_one("#notes").display = False
        self.query_one("#kinds", DataTable).focus()
        self.start_plan()

    # -- bindings -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A plan only reads, so leaving while it runs is fine; a load is seen through.
        if self.busy == "plan" and action in ("replan", "load", "drill", "skips"):
            return None
        if self.busy == "load" and action in (
            "back",
            "review",
            "replan",
            "load",
            "drill",
            "skips",
            "focus_target",
        ):
            return None
        if action in ("load", "drill", "skips") and self.plan is None:
            return None
        if action == "skips" and self.plan is not None and not self.plan.skipped():
            return None
        return True

    def action_back(self) -> None:
        if self.busy != "load":
            self.wizard.show_download()

    def action_review(self) -> None:
        if self.busy != "load":
            self.wizard.show_review()

    def action_replan(self) -> None:
        self.start_plan()

    def action_focus_target(self) -> None:
        self.query_one("#target", Input).focus()

    def action_drill(self) -> None:
        if self.plan is None or self.busy is not None:
            return
        table = self.query_one("#kinds", DataTable)
        if table.row_count == 0:
            return
        row_key, column_key = table.coordinate_to_cell_key(table.cursor_coordinate)
        kind = str(row_key.value)
        column = str(column_key.value)
        action = column if column in pv.ACTIONS else None
        self.app.push_screen(ItemsScreen(self.plan, kind, action))

    def action_skips(self) -> None:
        if self.busy is None and self.plan is not None and self.plan.skipped():
            self.app.push_screen(SkipReasonsScreen(self.plan))

    def action_load(self) -> None:
        if self.plan is None or self.busy is not None:
            return
        the_plan = self.plan

        def answered(yes: bool | None) -> None:
            if yes and self.plan is the_plan:
                self.start_load()

        if pv.nothing_to_load(the_plan):
            dialog = ConfirmLoadScreen(pv.confirm_text(the_plan), "Yes, verify")
        else:
            dialog = ConfirmLoadScreen(
                pv.confirm_text(the_plan),
                "Yes, load",
                "Each batch is committed with its links: a load stopped half-way is finished "
                "by running it again. Messaging and AI stay off.",
            )
        self.app.push_screen(dialog, answered)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id == "kinds":
            event.stop()
            self.action_drill()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "target":
            event.input.password = pv.has_password(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "target" and self.busy is None:
            event.stop()
            self.query_one("#kinds", DataTable).focus()
            self.start_plan()

    # -- planning -------------------------------------------------------------------------

    def start_plan(self) -> None:
        if self.busy is not None:
            return
        url = self.query_one("#target", Input).value.strip()
        problem = pv.check_target(url)
        if problem is not None:
            self._generation += 1  # a plan still running is now stale
            self.plans_done += 1
            self._set_plan(None)
            self._show_status(problem, "error-message")
            self._show_hint(AFTER_ERROR)
            self.refresh_bindings()
            return
        state = self.wizard.state
        staging = state.staging_path
        selection = state.selection
        now = self.wizard.config.now
        self._generation += 1
        generation = self._generation
        self._set_plan(None)
        self.busy = "plan"
        self.refresh_bindings()
        self._show_status(f"Planning the load into {pv.redact_url(url)}…", "hint")
        self._show_progress("Reading the staging file…", None, None)

        def sink(event: AnyEvent) -> None:
            self.post_message(EngineEvent(event))

        def work() -> _Planned:
            try:
                made = plan(staging, url, selection, now, sink=sink)
            except (StagingError, TargetError, UnknownSelection) as exc:
                return _Planned(generation, url, None, _message(exc))
            return _Planned(generation, url, made, None)

        self.run_worker(work, thread=True, group=PLAN_GROUP, exclusive=True, name="plan")

    def _plan_done(self, outcome: _Planned) -> None:
        if outcome.generation != self._generation:
            return
        self.plans_done += 1
        self.busy = None
        self._hide_progress()
        if outcome.plan is None:
            self._set_plan(None)
            self._show_status(outcome.error or "The plan failed.", "error-message")
            self._show_hint(AFTER_ERROR)
        else:
            self._planned_url = outcome.url
            self.wizard.state.target_url = outcome.url
            self.wizard.state.plan = outcome.plan
            self._set_plan(outcome.plan)
            if not isinstance(self.focused, Input):
                self.query_one("#kinds", DataTable).focus()
        self.refresh_bindings()

    def _set_plan(self, the_plan: Plan | None) -> None:
        self.plan = the_plan
        table = self.query_one("#kinds", DataTable)
        table.clear(columns=True)
        notes = self.query_one("#notes")
        hint = self.query_one("#table-hint")
        if the_plan is None:
            table.display = False
            notes.display = False
            hint.display = False
            return
        rows = pv.kind_rows(the_plan)
        # Every size given, none measured: the table is laid out at once, never blank for a
        # frame while DataTable measures its cells.
        widths = [max([len("Kind"), *(len(r.label) for r in rows)])]
        table.add_column("Kind", key="kind", width=widths[0])
        for action in pv.ACTIONS:
            label = pv.ACTION_LABELS[action]
            count_width = max([len(f"{r.counts.get(action, 0):,}") for r in rows] or [1])
            widths.append(max(len(label), 6, count_width))
            table.add_column(Text(label, justify="right"), key=action, width=widths[-1])
        for row in rows:
            table.add_row(
                row.label, *(_num(row.counts.get(a, 0)) for a in pv.ACTIONS), key=row.kind
            )
        padding = 2 * table.cell_padding
        table.styles.width = sum(w + padding for w in widths)
        table.styles.height = len(rows) + 1
        table.display = True
        self._show_hint(TABLE_HINT if table.row_count else "")
        if table.row_count:
            table.move_cursor(row=0, column=1)
        css = "ok-message" if pv.nothing_to_load(the_plan) else "status-plan"
        self._show_status(pv.plan_headline(the_plan), css)
        lines = pv.plan_notes(the_plan)
        warnings = [line for line in lines if line.startswith("Warning:")]
        others = [line for line in lines if not line.startswith("Warning:")]
        shown = self.query_one("#notes-warnings", Static)
        shown.update(Text("\n".join(warnings)))
        shown.display = bool(warnings)
        self.query_one("#notes-text", Static).update(Text("\n".join(others)))
        notes.display = bool(lines)

    # -- loading --------------------------------------------------------------------------

    def start_load(self) -> None:
        the_plan = self.plan
        url = self._planned_url
        if the_plan is None or url is None or self.busy is not None:
            return
        staging_path = self.wizard.state.staging_path
        self.busy = "load"
        self.refresh_bindings()
        self.query_one("#kinds", DataTable).display = False
        self.query_one("#table-hint").display = False
        self._build_load_bars(the_plan)
        self._show_status(f"Loading into {the_plan.target_url}…", "hint")

        def sink(event: AnyEvent) -> None:
            self.post_message(EngineEvent(event))

        def work() -> _Loaded:
            try:
                result = load(the_plan, url, sink=sink)
            except (StagingError, TargetError) as exc:
                return _Loaded(None, _message(exc))
            csv = pv.skipped_csv_path(staging_path)
            try:
                rows = write_skip_report(result, csv)
            except OSError as exc:
                return _Loaded(
                    result,
                    None,
                    None,
                    len(result.plan.skipped()),
                    f"The skipped-records CSV could not be written to {csv}: {exc.strerror}",
                )
            return _Loaded(result, None, csv, rows)

        self.run_worker(work, thread=True, group=LOAD_GROUP, exclusive=True, name="load")

    def _build_load_bars(self, the_plan: Plan) -> None:
        box = self.query_one("#load-bars", VerticalScroll)
        box.remove_children()
        self._load_bars = {}
        rows = []
        for kind in the_plan.kinds:
            todo = sum(1 for i in the_plan.items.get(kind, ()) if i.writes)
            bar = ProgressBar(total=max(todo, 1), show_eta=False, id=f"bar-{kind}")
            self._load_bars[kind] = bar
            rows.append(
                Horizontal(Label(pv.kind_label(kind), classes="bar-label"), bar, classes="bar-row")
            )
        box.mount_all(rows)
        box.display = True

    def _load_done(self, outcome: _Loaded) -> None:
        self.busy = None
        self.refresh_bindings()
        if outcome.result is None:
            self.query_one("#load-bars").display = False
            self._set_plan(None)
            self._show_status(f"The load stopped: {outcome.error}", "error-message")
            self._show_hint(
                "Every committed batch is in the clinic with its links: p plans again from "
                "there, then l finishes the load."
            )
            self.refresh_bindings()
            return
        state = self.wizard.state
        state.load = outcome.result
        state.plan = outcome.result.plan
        state.skipped_csv = outcome.csv
        state.skipped_rows = outcome.csv_rows
        if outcome.csv_error:
            state.notices.append(outcome.csv_error)
        # Anything pushed over this screen meanwhile (help) goes: the summary replaces it.
        while self.app.screen is not self and len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        self.wizard.show_summary()

    # -- progress -------------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        event = message.event
        if isinstance(event, LoadProgress):
            if event.phase == "plan" and self.busy == "plan":
                self._show_progress(
                    f"Planning {pv.kind_label(event.record_kind).lower()} "
                    f"{event.done:,}/{event.total:,}",
                    event.total,
                    event.done,
                )
            elif event.phase == "load" and self.busy == "load":
                bar = self._load_bars.get(event.record_kind)
                if bar is not None:
                    bar.update(total=max(event.total, 1), progress=event.done)
                    if event.total == 0:
                        bar.update(progress=1)
            elif event.phase == "verify" and self.busy == "load":
                self._show_status("Verifying counts and balances…", "hint")
        elif isinstance(event, Notice) and self.busy is not None:
            self._show_status(event.message, "warning-message")

    def _show_progress(self, label: str, total: int | None, done: int | None) -> None:
        self.query_one("#plan-progress").display = True
        self.query_one("#progress-label", Label).update(label)
        bar = self.query_one("#progress-bar", ProgressBar)
        bar.update(total=total if total else None, progress=done or 0)

    def _show_hint(self, text: str) -> None:
        hint = self.query_one("#table-hint", Static)
        hint.update(text)
        hint.display = bool(text)

    def _hide_progress(self) -> None:
        self.query_one("#plan-progress").display = False

    def _show_status(self, text: str, css: str) -> None:
        status = self.query_one("#status", Static)
        status.set_classes(css)
        status.update(Text(text))

    # -- workers ------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group not in (PLAN_GROUP, LOAD_GROUP):
            return
        event.stop()
        if event.state != WorkerState.SUCCESS:
            return
        result = worker.result
        if isinstance(result, _Planned):
            self._plan_done(result)
        elif isinstance(result, _Loaded):
            self._load_done(result)


# -- the drill-down: the items of one kind ------------------------------------------------------


class ItemsScreen(Screen[None]):
    """The records of one kind, filtered by action (or by a skip code)."""

    CSS_PATH = "load.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("f", "next_filter", "Filter"),
        Binding("enter", "open_item", "Changes", show=True),
    ]

    def __init__(
        self, the_plan: Plan, kind: str, action: str | None = None, code: str | None = None
    ) -> None:
        super().__init__()
        self.plan = the_plan
        self.kind = kind
        self.action = action
        self.code = code
        self.rows: list[pv.ItemRow] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Vertical(id="items-body"):
            yield Static("", id="items-title", classes="step-title")
            yield Static("", id="items-count", classes="hint")
            yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
            yield Static("", id="item-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self._fill()
        self.query_one("#items", DataTable).focus()

    def _fill(self) -> None:
        items = pv.select_items(self.plan, self.kind, self.action, self.code)
        self.rows = pv.item_rows(items)
        what = pv.kind_label(self.kind)
        if self.code is not None:
            which = f"skipped: {self.code}"
        elif self.action is not None:
            which = pv.ACTION_LABELS[self.action].lower()
        else:
            which = "all"
        self.query_one("#items-title", Static).update(f"{what} · {which}")
        shown = (
            f"showing the first {len(self.rows):,} of {len(items):,}; "
            if len(self.rows) < len(items)
            else ""
        )
        self.query_one("#items-count", Static).update(
            f"{pv.plural(len(items), 'record')} ({shown}f: filter by action, "
            "Enter: the record's changes)"
        )
        table = self.query_one("#items", DataTable)
        table.clear(columns=True)
        table.add_column("Cliniko id", key="id")
        table.add_column("Action", key="action")
        table.add_column("Clinic", key="clinic")
        table.add_column("Changed fields or reason", key="detail")
        id_width = max((len(r.source_id) for r in self.rows), default=10)
        room = max(20, self.app.size.width - id_width - 9 - 7 - 12)
        for i, row in enumerate(self.rows):
            table.add_row(
                row.source_id,
                row.action,
                Text(row.target_id, justify="right"),
                pv.shorten(row.detail, room),
                key=str(i),
            )
        self._show_detail(0)

    def _show_detail(self, index: int) -> None:
        detail = self.query_one("#item-detail", Static)
        if not self.rows or not 0 <= index < len(self.rows):
            detail.update("Nothing here." if not self.rows else "")
            return
        item = self.rows[index].item
        detail.update(Text(f"{pv.item_title(item)}\n{pv.item_explanation(item)}"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(event.cursor_row)

    def action_open_item(self) -> None:
        self._open(self.query_one("#items", DataTable).cursor_row)

    def _open(self, index: int) -> None:
        if 0 <= index < len(self.rows):
            self.app.push_screen(ItemChangesScreen(self.rows[index].item))

    def action_next_filter(self) -> None:
        self.code = None
        filters = pv.action_filters(self.plan, self.kind)
        current = self.action if self.action in filters else None
        self.action = filters[(filters.index(current) + 1) % len(filters)]
        self._fill()

    def action_close(self) -> None:
        self.app.pop_screen()


# -- one item: its field changes --------------------------------------------------------------


class ItemChangesScreen(ModalScreen[None]):
    """An item's field changes, old (the clinic's) -> new (Cliniko's), or its reason."""

    CSS_PATH = "load.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    def __init__(self, item: PlanItem) -> None:
        super().__init__(classes="dialog-screen")
        self.item = item

    def compose(self) -> ComposeResult:
        item = self.item
        with Vertical(id="changes-dialog"):
            yield Static(pv.item_title(item), id="changes-title", classes="step-title")
            css = "warning-message" if item.action == "conflict" else "hint"
            yield Static(Text(pv.item_explanation(item)), id="changes-explanation", classes=css)
            with VerticalScroll(id="changes-scroll"):
                yield Static(self._table(), id="changes-table")
            yield Static("Escape: close · arrows: scroll", classes="hint")

    def _table(self) -> Table | Text:
        item = self.item
        if item.changes:
            table = Table(expand=True, show_edge=False, pad_edge=False)
            table.add_column("Field", no_wrap=True, ratio=1)
            table.add_column("In MyNewClinic now", overflow="fold", ratio=2)
            table.add_column("From Cliniko", overflow="fold", ratio=2)
            for name, old, new in pv.change_rows(item):
                table.add_row(name, old, new)
            return table
        if item.action == "create" and item.row:
            table = Table(expand=True, show_edge=False, pad_edge=False)
            table.add_column("Field", no_wrap=True, ratio=1)
            table.add_column("Value", overflow="fold", ratio=3)
            for name, value in pv.create_rows(item):
                table.add_row(name, value)
            return table
        return Text("No field changes.")

    def on_mount(self) -> None:
        self.query_one("#changes-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)


# -- skip reasons ---------------------------------------------------------------------------


class SkipReasonsScreen(Screen[None]):
    """Every skipped record counted by reason code (and kind); Enter lists them."""

    CSS_PATH = "load.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
    ]

    def __init__(self, the_plan: Plan) -> None:
        super().__init__()
        self.plan = the_plan
        self.rows = pv.skip_rows(the_plan)

    def compose(self) -> ComposeResult:
        total = len(self.plan.skipped())
        yield Header(show_clock=False)
        with Vertical(id="skips-body"):
            yield Static(
                f"Skipped records: {total:,}, by reason", id="skips-title", classes="step-title"
            )
            yield Static(
                "Not brought over, each for its reason; after the load they are listed in the "
                "skipped-records CSV. Enter lists the records.",
                classes="hint",
            )
            yield DataTable(id="skips", cursor_type="row", zebra_stripes=True)
            yield Static("", id="skip-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#skips", DataTable)
        table.add_column("Reason code", key="code")
        table.add_column("Kind", key="kind")
        table.add_column(Text("Count", justify="right"), key="count")
        previous = None
        for i, row in enumerate(self.rows):
            table.add_row(
                row.code if row.code != previous else "",
                pv.kind_label(row.kind),
                Text(f"{row.count:,}", justify="right"),
                key=str(i),
            )
            previous = row.code
        self._show_detail(0)
        table.focus()

    def _show_detail(self, index: int) -> None:
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        example = next(
            (i.skip_reason for i in pv.select_items(self.plan, row.kind, "skip", row.code)),
            None,
        )
        text = f"{row.code}: {row.words}"
        if example and example != row.words:
            text += f"\nFor example: {example}"
        self.query_one("#skip-detail", Static).update(Text(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.rows):
            row = self.rows[event.cursor_row]
            self.app.push_screen(ItemsScreen(self.plan, row.kind, "skip", row.code))

    def action_close(self) -> None:
        self.app.pop_screen()


# -- the confirmation -------------------------------------------------------------------------


class ConfirmLoadScreen(ModalScreen[bool]):
    """`Load N changes into <target>? y/n`."""

    CSS_PATH = "load.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes, load", note: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes = yes
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Text(self.question), id="confirm-question")
            if self.note:
                yield Static(Text(self.note), id="confirm-note", classes="hint")
            with Horizontal(classes="actions"):
                yield Button(f"{self.yes} (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


__all__ = [
    "ConfirmLoadScreen",
    "ItemChangesScreen",
    "ItemsScreen",
    "LoadScreen",
    "SkipReasonsScreen",
]
