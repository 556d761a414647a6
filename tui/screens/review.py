"""Step 4: review what is staged (also `cliniko-switch review FILE`, offline, with no key).

Left, the resources with their row counts (and quarantined counts); right, the selected
resource's staged records, a page at a time, with a search over the raw JSON. Enter opens a
record (readable fields, or the raw JSON); `a` lists the anomalies: references to records
that are not staged, and records kept aside because they could not be read.

The file is opened read-only (`engine.api.open_for_review`), which is safe while a download
writes to it: while the App's download runs the counts refresh every couple of seconds.
Every query runs in a thread (a big file's counts and searches take a moment) and goes
through one lock, since a SQLite connection serves one thread at a time. Patient data is
shown on screen, which is the point of a review, and never logged or written anywhere.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from engine.api import StagingDB, StagingError, UnknownSelection, open_for_review, resources_for
from tui.screens.record import RecordScreen, pretty_json, staged_summary

if TYPE_CHECKING:
    from staging import Anomaly, QuarantineRow, ResourceCount, RunInfo, StagedRow
    from tui.app import SwitchApp

T = TypeVar("T")

PAGE_SIZE = 200
"""Rows loaded into the table at a time (n / p for the next and previous page)."""
AUTO_REFRESH_SECONDS = 2.0
"""While the App's download runs, counts and a not-yet-full page refresh this often."""
SEARCH_DEBOUNCE_SECONDS = 0.4
CELL_CHARS = 24
"""Readable columns are cut to this many characters (the record view has the rest)."""
LIST_TEXT_WIDTH = 23
"""Characters inside the resource list (its CSS width, 28, less border, padding, scrollbar)."""
QUARANTINE_ROWS = 500

LABELS: dict[str, str] = {
    "user": "User (the key's)",
    "settings": "Settings",
    "businesses": "Businesses",
    "practitioners": "Practitioners",
    "users": "Users",
    "appointment_types": "Appointment types",
    "services": "Services",
    "practitioner_reference_numbers": "Practitioner refs",
    "billable_items": "Billable items",
    "taxes": "Taxes",
    "concession_types": "Concession types",
    "treatment_note_templates": "Note templates",
    "referral_source_types": "Referral types",
    "patients": "Patients",
    "contacts": "Contacts",
    "medical_alerts": "Medical alerts",
    "patient_cases": "Patient cases",
    "referral_sources": "Referral sources",
    "individual_appointments": "Appointments",
    "group_appointments": "Group appts",
    "attendees": "Attendees",
    "unavailable_blocks": "Unavailable blocks",
    "treatment_notes": "Treatment notes",
    "invoices": "Invoices",
    "invoice_items": "Invoice items",
    "patient_attachments": "Attachments",
}
"""Short names for the resource list (at most 18 characters, to fit 80 columns)."""


def label_of(resource: str) -> str:
    return LABELS.get(resource, resource.replace("_", " ").capitalize())


# ---------------------------------------------------------------------------------------------
# Readable columns: a small spec per resource, with a generic fallback.

Extract = Callable[["StagedRow", dict[str, Any]], object]


def _field(*keys: str) -> Extract:
    """The first of `keys` that has a value."""

    def get(_row: StagedRow, data: dict[str, Any]) -> object:
        for key in keys:
            value = data.get(key)
            if value not in (None, ""):
                return value
        return None

    return get


def _joined(*keys: str) -> Extract:
    """The values of `keys` joined by spaces (a name from its parts)."""

    def get(_row: StagedRow, data: dict[str, Any]) -> object:
        parts = [str(data[k]) for k in keys if data.get(k) not in (None, "")]
        return " ".join(parts) or None

    return get


def _ref(ref: str) -> Extract:
    """The id a record links to, as staged."""

    def get(row: StagedRow, _data: dict[str, Any]) -> object:
        return row.refs.get(ref)

    return get


def _when(key: str) -> Extract:
    def get(_row: StagedRow, data: dict[str, Any]) -> object:
        return short_time(data.get(key))

    return get


def _draft(_row: StagedRow, data: dict[str, Any]) -> object:
    draft = data.get("draft")
    if draft is None:
        return None
    return "draft" if draft else "final"


Column = tuple[str, Extract]

COLUMNS: dict[str, tuple[Column, ...]] = {
    "user": (("name", _joined("first_name", "last_name")), ("role", _field("role"))),
    "users": (("name", _joined("first_name", "last_name")), ("role", _field("role"))),
    "settings": (),
    "businesses": (("name", _field("business_name", "display_name")), ("city", _field("city"))),
    "practitioners": (
        ("name", _field("label")),
        ("designation", _field("designation")),
    ),
    "appointment_types": (("name", _field("name")), ("minutes", _field("duration_in_minutes"))),
    "services": (("business", _ref("business")), ("appointment type", _ref("appointment_type"))),
    "practitioner_reference_numbers": (
        ("name", _field("name")),
        ("number", _field("reference_number")),
    ),
    "billable_items": (("name", _field("name")), ("price", _field("price"))),
    "taxes": (("name", _field("name")), ("rate", _field("rate"))),
    "patients": (
        ("name", _joined("first_name", "last_name")),
        ("born", _field("date_of_birth")),
    ),
    "contacts": (
        ("name", _joined("first_name", "last_name")),
        ("company", _field("company_name")),
    ),
    "medical_alerts": (("alert", _field("name")), ("patient", _ref("patient"))),
    "patient_cases": (("case", _field("name")), ("patient", _ref("patient"))),
    "referral_sources": (
        ("patient", _ref("patient")),
        ("type", _ref("referral_source_type")),
    ),
    "individual_appointments": (
        ("starts_at", _when("starts_at")),
        ("patient", _ref("patient")),
    ),
    "group_appointments": (
        ("starts_at", _when("starts_at")),
        ("max", _field("max_attendees")),
    ),
    "attendees": (("booking", _ref("booking")), ("patient", _ref("patient"))),
    "unavailable_blocks": (
        ("starts_at", _when("starts_at")),
        ("practitioner", _ref("practitioner")),
    ),
    "treatment_notes": (
        ("note", _draft),
        ("title", _field("title")),
        ("patient", _ref("patient")),
    ),
    "invoices": (
        ("number", _field("number")),
        ("status", _field("status_description", "status")),
        ("total", _field("total_amount")),
    ),
    "invoice_items": (
        ("item", _field("name")),
        ("total", _field("total_including_tax")),
    ),
    "patient_attachments": (
        ("file", _field("filename", "description")),
        ("patient", _ref("patient")),
    ),
}
FALLBACK_COLUMNS: tuple[Column, ...] = (("name", _field("name", "label", "title")),)


def columns_for(resource: str) -> tuple[Column, ...]:
    return COLUMNS.get(resource, FALLBACK_COLUMNS)


def short_time(value: object) -> str | None:
    """`2024-10-26T01:05:18Z` -> `2024-10-26 01:05` (as stored: UTC)."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) >= 16 and value[10] == "T":
        return f"{value[:10]} {value[11:16]}"
    return value


def cell(value: object, limit: int = CELL_CHARS) -> Text:
    if value is None or value == "":
        return Text("-", style="dim")
    if isinstance(value, bool):
        value = "yes" if value else "no"
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text)


def row_cells(row: StagedRow, columns: tuple[Column, ...]) -> list[Text]:
    try:
        data = row.data()
    except ValueError:
        data = {}
    state = Text(row.state, style="" if row.state == "active" else "italic")
    return [
        Text(row.id),
        *(cell(extract(row, data)) for _name, extract in columns),
        state,
        cell(",".join(row.variants)),
        cell(short_time(row.created_at)),
        cell(short_time(row.updated_at)),
    ]


def count_text(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------------------------------------
# What the queries return (built in a thread, shown on the event loop)


@dataclass(frozen=True)
class Overview:
    account: str | None
    time_zone: str | None
    last_run: RunInfo | None
    counts: dict[str, ResourceCount]
    downloaded: frozenset[str]

    @property
    def listed(self) -> list[str]:
        """Resources to list: those with rows, or quarantined rows, or that were downloaded."""
        return [
            name
            for name, c in self.counts.items()
            if c.total or c.quarantined or name in self.downloaded
        ]

    @property
    def total(self) -> int:
        return sum(c.total for c in self.counts.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.counts.values())


@dataclass(frozen=True)
class Page:
    resource: str
    search: str
    offset: int
    total: int
    rows: list[StagedRow]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rows]


def load_overview(db: StagingDB) -> Overview:
    counts = db.table_counts()
    runs = db.runs()
    downloaded: set[str] = set()
    for run in runs:
        try:
            downloaded.update(r.name for r in resources_for(run.selection))
        except UnknownSelection:
            continue
    return Overview(
        account=db.get_meta("account_name"),
        time_zone=db.get_meta("time_zone"),
        last_run=runs[-1] if runs else None,
        counts=counts,
        downloaded=frozenset(downloaded),
    )


def load_page(db: StagingDB, resource: str, search: str, offset: int) -> Page:
    term = search or None
    total = db.count_rows(resource, search=term)
    if offset and offset >= total:
        offset = max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)
    rows = db.rows(resource, search=term, limit=PAGE_SIZE, offset=offset)
    return Page(resource, search, offset, total, rows)


def run_line(run: RunInfo | None, *, downloading: bool) -> str:
    if run is None:
        return "No download has run into this file yet"
    if run.outcome == "running":
        started = _utc(run.started_at)
        if downloading:
            return f"Download running ({run.mode}, started {started}): counts refresh as it goes"
        return f"Last run: {run.mode}, did not finish (started {started})"
    return f"Last run: {run.mode}, {run.outcome} {_utc(run.finished_at)}"


def _utc(value: str | None) -> str:
    short = short_time(value)
    return f"{short} UTC" if short else "-"


class _Closed(Exception):
    """The screen closed the file while a query waited for it."""


# ---------------------------------------------------------------------------------------------
# Widgets


class SearchInput(Input):
    """The search box: enter searches, escape hands the keys back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave search"),
    ]

    def on_mount(self) -> None:
        self.cursor_blink = cast("SwitchApp", self.app).config.animate

    def action_leave(self) -> None:
        self.screen.query_one("#review-table", DataTable).focus()


class RecordTable(DataTable[Text]):
    """A table whose Enter opens the highlighted row (and says so in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open"),
    ]


# ---------------------------------------------------------------------------------------------
# The screen


class ReviewScreen(Screen[None]):
    """Browse a staging file: resources, records, search, record detail, anomalies."""

    CSS_PATH = "review.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("b", "back", "Back", show=False),
        Binding("q", "quit_review", "Quit"),
        Binding("slash", "search", "Search"),
        Binding("a", "anomalies", "Anomalies"),
        Binding("n", "next_page", "Next page"),
        Binding("p", "prev_page", "Prev page"),
        Binding("r", "refresh", "Refresh"),
        Binding("f5", "refresh", "Refresh", show=False),
    ]

    def __init__(self, path: Path, offline: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.offline = offline
        self.error: str | None = None
        self.overview: Overview | None = None
        self.page: Page | None = None
        self.resource: str | None = None
        self.search = ""
        self._offset = 0
        self._db: StagingDB | None = None
        self._stack: ExitStack | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._table_resource: str | None = None
        self._search_timer: Timer | None = None

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(Content(self._title_text(None)), id="review-title", classes="step-title")
        yield Static(Content(f"Opening {self.path} ..."), id="review-summary")
        with Horizontal(id="review-body"):
            resources = OptionList(id="review-resources")
            resources.border_title = "Resources"
            yield resources
            with Vertical(id="review-records"):
                yield SearchInput(
                    placeholder="/ to search any text (a name, an id ...)",
                    compact=True,
                    id="review-search",
                )
                yield Static("", id="review-page")
                yield RecordTable(id="review-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="review-error"):
            yield Static("", id="review-error-message", classes="error-message")
            yield Static("", id="review-error-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(AUTO_REFRESH_SECONDS, self._tick_refresh)
        self.run_worker(self._open(), group="review-open", exclusive=True)

    def on_unmount(self) -> None:
        with self._lock:
            self._closed = True
            stack, self._stack, self._db = self._stack, None, None
        if stack is not None:
            stack.close()

    # -- the file -----------------------------------------------------------------------------

    def _open_sync(self) -> None:
        with self._lock:
            if self._closed:
                raise _Closed
            stack = ExitStack()
            db = stack.enter_context(open_for_review(self.path))
            self._stack, self._db = stack, db

    async def run_query(self, fn: Callable[[StagingDB], T]) -> T:
        """Run `fn(db)` in a thread, one query at a time. Raises `_Closed` after unmount."""

        def run() -> T:
            with self._lock:
                if self._db is None or self._closed:
                    raise _Closed
                return fn(self._db)

        return await asyncio.to_thread(run)

    async def _open(self) -> None:
        try:
            await asyncio.to_thread(self._open_sync)
        except _Closed:
            return
        except StagingError as exc:
            self._show_error(str(exc))
            return
        await self._reload(initial=True)

    def _show_error(self, message: str) -> None:
        self.error = message
        self.add_class("-error")
        self.query_one("#review-error-message", Static).update(Content(message))
        hint = (
            "Press r to try again, q to quit."
            if self.offline
            else "Press r to try again, escape to go back. The file is not changed."
        )
        self.query_one("#review-error-hint", Static).update(hint)
        verb = "read" if self._db is not None else "open"
        self.query_one("#review-summary", Static).update(Content(f"Cannot {verb} {self.path}"))
        self.refresh_bindings()

    def _read_failed(self, exc: Exception) -> None:
        if isinstance(exc, StagingError):
            self._show_error(str(exc))
        else:
            self._show_error(f"{self.path}: could not read the staging file ({exc})")

    # -- loading ------------------------------------------------------------------------------

    async def _reload(self, *, initial: bool = False, soft: bool = False) -> None:
        """Counts and the current page; `soft` (auto-refresh) keeps an unchanged page as is."""
        try:
            overview = await self.run_query(load_overview)
        except _Closed:
            return
        except (StagingError, sqlite3.Error) as exc:
            self._read_failed(exc)
            return
        self._apply_overview(overview, initial=initial)
        if self.resource is not None:
            await self._load_page(soft=soft)
        else:
            self._show_page_info()

    async def _load_page(self, *, soft: bool = False) -> None:
        resource, search, offset = self.resource, self.search, self._offset
        if resource is None:
            return
        try:
            page = await self.run_query(lambda db: load_page(db, resource, search, offset))
        except _Closed:
            return
        except (StagingError, sqlite3.Error) as exc:
            self._read_failed(exc)
            return
        if (resource, search) != (self.resource, self.search):
            return  # the operator moved on while this page loaded
        old = self.page
        where = (page.resource, page.search, page.offset)
        same_page = old is not None and (old.resource, old.search, old.offset) == where
        unchanged = old is not None and (old.total, old.ids) == (page.total, page.ids)
        if soft and same_page and unchanged:
            return
        self._apply_page(page, keep_cursor=same_page)

    def _start_page_load(self) -> None:
        self.run_worker(self._load_page(), group="review-page", exclusive=True)

    # -- showing ------------------------------------------------------------------------------

    def _apply_overview(self, overview: Overview, *, initial: bool) -> None:
        self.overview = overview
        if self.error is not None:  # a retry worked
            self.error = None
            self.remove_class("-error")
        self.query_one("#review-title", Static).update(Content(self._title_text(overview)))
        self.query_one("#review-summary", Static).update(self._summary_text(overview))
        options = self.query_one("#review-resources", OptionList)
        listed = overview.listed
        current = [o.id for o in options.options]
        if current == listed:
            for name in listed:
                options.replace_option_prompt(name, self._option_prompt(name, overview))
        else:
            options.set_options(
                Option(self._option_prompt(name, overview), id=name) for name in listed
            )
        if initial or self.resource not in listed:
            if listed:
                self.resource = "patients" if "patients" in listed else listed[0]
            else:
                self.resource = None
            self._offset = 0
        if self.resource is not None:
            options.highlighted = listed.index(self.resource)
            self.call_after_refresh(options.scroll_to_highlight)
        if initial:
            options.focus()
        self.refresh_bindings()

    def _title_text(self, overview: Overview | None) -> str:
        title = "Review (offline)" if self.offline else "Step 4 of 6 · Review what is staged"
        if overview is None:
            return title
        account = overview.account or "account name not staged yet"
        if overview.time_zone:
            account = f"{account}, {overview.time_zone}"
        return f"{title} · {account}"

    def _summary_text(self, overview: Overview) -> Content:
        records = f"{count_text(overview.total)} records"
        if overview.quarantined:
            records += f", {count_text(overview.quarantined)} quarantined"
        run = run_line(overview.last_run, downloading=self.wizard.download_running)
        return Content.assemble((str(self.path), "bold"), " · ", run, " · ", (records, "bold"))

    def _option_prompt(self, name: str, overview: Overview) -> Content:
        counts = overview.counts[name]
        total = count_text(counts.total)
        label = label_of(name)
        room = LIST_TEXT_WIDTH - len(total) - 1
        if len(label) > room:
            label = label[: max(room - 1, 1)] + "…"
        style = "" if counts.total else "dim"
        line = Content.assemble(
            (label.ljust(room), style), " ", (total, "bold" if counts.total else "dim")
        )
        if counts.quarantined:
            extra = f"  {count_text(counts.quarantined)} quarantined"
            line = Content.assemble(line, "\n", Content.from_markup("[$warning]$t[/]", t=extra))
        return line

    def _apply_page(self, page: Page, *, keep_cursor: bool) -> None:
        self.page = page
        table: DataTable[Text] = self.query_one("#review-table", DataTable)
        cursor_row = table.cursor_row if keep_cursor else 0
        columns = columns_for(page.resource)
        if self._table_resource != page.resource:
            table.clear(columns=True)
            table.add_column("id", key="id")
            for name, _extract in columns:
                table.add_column(name, key=f"x:{name}")
            for name in ("state", "seen in", "created", "updated"):
                table.add_column(name, key=name)
            self._table_resource = page.resource
        else:
            table.clear()
        for row in page.rows:
            table.add_row(*row_cells(row, columns), key=row.id)
        if page.rows:
            table.move_cursor(row=min(cursor_row, len(page.rows) - 1), animate=False)
        self._show_page_info()
        self.refresh_bindings()

    def _show_page_info(self) -> None:
        info = self.query_one("#review-page", Static)
        page = self.page
        if self.resource is None:
            info.update("Nothing is staged in this file yet.")
            return
        label = label_of(self.resource)
        if page is None or page.resource != self.resource:
            info.update(f"{label}: loading ...")
            return
        if page.total == 0:
            if page.search:
                info.update(Content.assemble(f"{label}: no rows match ", (page.search, "bold")))
            else:
                info.update(f"{label}: no rows staged")
            return
        first, last = page.offset + 1, page.offset + len(page.rows)
        text = f"{label}: rows {count_text(first)}-{count_text(last)} of {count_text(page.total)}"
        if page.search:
            info.update(Content.assemble(text, " matching ", (page.search, "bold")))
        else:
            info.update(text)

    # -- events -------------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#review-resources")
    def _resource_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        if name is None or name == self.resource:
            return
        self.resource = name
        self._offset = 0
        self._show_page_info()
        self._start_page_load()

    @on(OptionList.OptionSelected, "#review-resources")
    def _resource_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#review-table", DataTable).focus()

    @on(Input.Changed, "#review-search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE_SECONDS, self._apply_search)

    @on(Input.Submitted, "#review-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
            self._search_timer = None
        self._apply_search()
        self.query_one("#review-table", DataTable).focus()

    def _apply_search(self) -> None:
        term = self.query_one("#review-search", Input).value.strip()
        if term == self.search:
            return
        self.search = term
        self._offset = 0
        self._start_page_load()

    @on(DataTable.RowSelected, "#review-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if self.resource is None or event.row_key.value is None:
            return
        self.run_worker(
            self._open_record(self.resource, event.row_key.value), group="review-record"
        )

    async def _open_record(self, resource: str, record_id: str) -> None:
        try:
            row = await self.run_query(lambda db: db.row(resource, record_id))
        except _Closed:
            return
        except (StagingError, sqlite3.Error) as exc:
            self._read_failed(exc)
            return
        if row is None:
            self.notify("That record is no longer staged; press r to refresh.", severity="warning")
            return
        staged = staged_summary(
            record_id=row.id,
            state=row.state,
            variants=row.variants,
            created_at=row.created_at,
            updated_at=row.updated_at,
            markers=row.markers,
        )
        self.app.push_screen(RecordScreen(f"{label_of(resource)} {row.id}", row.raw, staged=staged))

    def select_resource(self, resource: str, search: str = "") -> None:
        """Show `resource` (searching for `search`), as the anomalies drill-down does."""
        options = self.query_one("#review-resources", OptionList)
        ids = [o.id for o in options.options]
        if resource not in ids:
            self.notify(f"{label_of(resource)} has nothing staged.", severity="warning")
            return
        self.resource = resource
        self.search = search
        self._offset = 0
        self.query_one("#review-search", Input).value = search
        if self._search_timer is not None:  # setting the value starts the debounce
            self._search_timer.stop()
        options.highlighted = ids.index(resource)
        self.query_one("#review-table", DataTable).focus()
        self._show_page_info()
        self._start_page_load()

    # -- the App's download -------------------------------------------------------------------

    def _busy(self) -> bool:
        """Opening or reading already (a big file takes a moment): don't pile up queries."""
        return any(
            w.node is self and w.group in ("review-open", "review-refresh") and not w.is_finished
            for w in self.workers
        )

    def _tick_refresh(self) -> None:
        if not self.wizard.download_running or self._busy():
            return
        if self._db is None or self.error is not None:
            # Opened before the download had written anything: try again until it has.
            self.action_refresh()
        else:
            self.run_worker(self._reload(soft=True), group="review-refresh")

    def download_ended(self, outcome: str, error: str | None) -> None:
        if self._db is not None and self.error is None:
            self.run_worker(self._reload(soft=True), group="review-refresh", exclusive=True)
        elif not self._busy():
            self.action_refresh()

    # -- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit_review":
            return self.offline
        if action == "back":
            return not self.offline
        if action == "refresh":
            return self.error is not None or self.overview is not None
        busy = self.error is not None or self.overview is None
        if busy and action in ("search", "anomalies", "next_page", "prev_page"):
            return False
        if action == "next_page":
            page = self.page
            return page is not None and page.offset + PAGE_SIZE < page.total
        if action == "prev_page":
            page = self.page
            return page is not None and page.offset > 0
        return True

    def action_back(self) -> None:
        if not self.offline:
            self.app.pop_screen()

    async def action_quit_review(self) -> None:
        await self.wizard.action_quit()

    def action_search(self) -> None:
        self.query_one("#review-search", Input).focus()

    def action_next_page(self) -> None:
        if self.page is not None and self.page.offset + PAGE_SIZE < self.page.total:
            self._offset = self.page.offset + PAGE_SIZE
            self._start_page_load()

    def action_prev_page(self) -> None:
        if self.page is not None and self.page.offset > 0:
            self._offset = max(0, self.page.offset - PAGE_SIZE)
            self._start_page_load()

    def action_refresh(self) -> None:
        """Read the counts and the page again; after an error, try to open the file again."""
        if self._db is None:
            self.run_worker(self._open(), group="review-open", exclusive=True)
        else:
            self.run_worker(self._reload(), group="review-refresh", exclusive=True)

    def action_anomalies(self) -> None:
        def chosen(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.select_resource(*result)

        self.app.push_screen(AnomaliesScreen(self), chosen)


# ---------------------------------------------------------------------------------------------
# Anomalies


KIND_LABELS = {"missing_reference": "missing link", "quarantined": "quarantined"}


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


class AnomaliesScreen(Screen[tuple[str, str] | None]):
    """References to records that are not staged, and quarantined records; Enter drills down."""

    CSS_PATH = "review.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("b", "back", "Back", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("f5", "refresh", "Refresh", show=False),
    ]

    def __init__(self, review: ReviewScreen) -> None:
        super().__init__()
        self.review = review
        self.anomalies: list[Anomaly] | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(Content(f"Anomalies in {self.review.path}"), classes="step-title")
        yield Static(
            "Links to records that are not staged, and records kept aside because they "
            "could not be read. Enter shows the rows.",
            id="anomaly-intro",
            classes="hint",
        )
        yield Static("Looking ...", id="anomaly-status")
        yield RecordTable(id="anomaly-table", cursor_type="row")
        yield Static("", id="anomaly-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one("#anomaly-table", DataTable)
        for name, key in (
            ("kind", "kind"),
            ("resource", "resource"),
            ("field or reason", "detail"),
            ("rows", "rows"),
            ("missing ids", "ids"),
        ):
            table.add_column(name, key=key)
        table.focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.run_worker(self._load(), group="anomalies", exclusive=True)

    async def _load(self) -> None:
        try:
            found = await self.review.run_query(lambda db: db.anomalies())
        except _Closed:
            return
        except (StagingError, sqlite3.Error) as exc:
            self.query_one("#anomaly-status", Static).update(
                Content.from_markup("[$error]$msg[/]", msg=str(exc))
            )
            return
        self.anomalies = found
        table: DataTable[Text] = self.query_one("#anomaly-table", DataTable)
        table.clear()
        for i, a in enumerate(found):
            ids = count_text(a.distinct) if a.kind == "missing_reference" else "-"
            table.add_row(
                Text(KIND_LABELS.get(a.kind, a.kind)),
                Text(label_of(a.resource)),
                cell(a.detail, 32),
                Text(count_text(a.count), justify="right"),
                Text(ids, justify="right"),
                key=str(i),
            )
        status = self.query_one("#anomaly-status", Static)
        if found:
            status.update(f"{len(found)} kind(s) of anomaly found.")
        else:
            status.update(
                Content.from_markup(
                    "[$success]No anomalies: every link points to a staged record and "
                    "no record was quarantined.[/]"
                )
            )
        self.set_class(not found, "-empty")
        self._show_detail(table.cursor_row if found else None)

    @on(DataTable.RowHighlighted, "#anomaly-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, index: int | None) -> None:
        detail = self.query_one("#anomaly-detail", Static)
        if self.anomalies is None or index is None or not 0 <= index < len(self.anomalies):
            detail.update("")
            return
        detail.update(Content(anomaly_text(self.anomalies[index])))

    @on(DataTable.RowSelected, "#anomaly-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if self.anomalies is None or event.row_key.value is None:
            return
        anomaly = self.anomalies[int(event.row_key.value)]
        if anomaly.kind == "missing_reference":
            search = anomaly.sample_ids[0] if anomaly.sample_ids else ""
            self.dismiss((anomaly.resource, search))
        else:
            self.app.push_screen(QuarantineScreen(self.review, anomaly.resource, anomaly.detail))

    def action_back(self) -> None:
        self.dismiss(None)


def anomaly_text(a: Anomaly) -> str:
    ids = ", ".join(a.sample_ids) or "-"
    if a.kind == "missing_reference":
        where = " or ".join(a.targets) or "-"
        links = "links" if a.count == 1 else "link"
        return (
            f"{a.resource}: {plural(a.count, 'row')} {links} through {a.detail} to "
            f"{plural(a.distinct, 'record')} not staged in {where}.\n"
            f"Missing ids: {ids}{' ...' if a.distinct > len(a.sample_ids) else ''}\n"
            "Enter: show the rows that link to the first of them."
        )
    return (
        f"{a.resource}: {plural(a.count, 'record')} quarantined ({a.detail}).\n"
        f"Record ids: {ids}{' ...' if a.count > len(a.sample_ids) else ''}\n"
        "Enter: show the quarantined records as received."
    )


class QuarantineScreen(ModalScreen[None]):
    """Quarantined records of one resource and reason: a list, and the highlighted one's raw."""

    CSS_PATH = "review.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("b", "close", "Back", show=False),
    ]

    def __init__(self, review: ReviewScreen, resource: str, reason: str) -> None:
        super().__init__()
        self.review = review
        self.resource = resource
        self.reason = reason
        self.rows: list[QuarantineRow] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="quarantine-box", classes="panel") as box:
            box.border_title = f"Quarantined {label_of(self.resource).lower()}"
            yield Static(Content(f"Reason: {self.reason}"), id="quarantine-reason")
            yield DataTable[Text](id="quarantine-table", cursor_type="row")
            yield Static("As received:", id="quarantine-raw-label")
            yield TextArea(
                "",
                read_only=True,
                soft_wrap=True,
                highlight_cursor_line=False,
                id="quarantine-raw",
            )
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one("#quarantine-table", DataTable)
        for name in ("record id", "list", "run", "at"):
            table.add_column(name, key=name)
        table.focus()
        self.run_worker(self._load(), group="quarantine", exclusive=True)

    async def _load(self) -> None:
        resource, reason = self.resource, self.reason
        try:
            rows = await self.review.run_query(
                lambda db: db.quarantine_rows(resource, limit=QUARANTINE_ROWS)
            )
        except _Closed:
            return
        except (StagingError, sqlite3.Error) as exc:
            self.query_one("#quarantine-raw", TextArea).load_text(str(exc))
            return
        self.rows = [r for r in rows if r.reason == reason]
        table: DataTable[Text] = self.query_one("#quarantine-table", DataTable)
        for i, r in enumerate(self.rows):
            table.add_row(
                cell(r.record_id),
                cell(r.variant),
                cell(r.run_id),
                cell(short_time(r.at)),
                key=str(i),
            )
        self._show(0)

    @on(DataTable.RowHighlighted, "#quarantine-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)

    def _show(self, index: int) -> None:
        raw = self.query_one("#quarantine-raw", TextArea)
        if 0 <= index < len(self.rows):
            raw.load_text(pretty_json(self.rows[index].raw))
        else:
            raw.load_text("")

    def action_close(self) -> None:
        self.dismiss(None)
