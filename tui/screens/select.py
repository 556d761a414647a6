"""Step 2: preview what the clinic holds and choose what to download (DESIGN.md section 7).

The preview asks each list for one row and reads its size (`engine.api.preview`); the counts
appear under the part they belong to as they arrive. A list Cliniko refuses (a 403 on one list)
is shown on its row and does not stop the preview; only a failure of the whole preview (a
revoked key, the network) is shown as an error, with a retry key.

Dependencies follow what a migration specialist expects of a tick list: ticking a part ticks
what it needs and says why; a part that a ticked part needs cannot be unticked (it stays ticked
and the screen says which ticked parts need it), so nothing the operator ticked is ever dropped
behind their back.

Coming back to this screen (or a test) with `state.preview` already set shows that preview
instead of asking Cliniko again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Static

from engine.api import (
    ALL_PARTS,
    PARTS,
    PARTS_BY_NAME,
    ClinikoError,
    CountReady,
    Part,
    PreviewResult,
    estimate_requests,
    list_variants,
    preview,
    region_label,
    resources_for,
)

if TYPE_CHECKING:
    from tui.app import SwitchApp

PREVIEW_GROUP = "preview"
SAME_LISTS = {"appointment_history": "upcoming_appointments"}
"""Parts that download exactly the lists of another part (split by date at load)."""


def short_name(part: str) -> str:
    """ "upcoming_appointments" -> "Upcoming appointments"."""
    return part.replace("_", " ").capitalize()


def part_lists(part: Part) -> list[tuple[str, str]]:
    """The (resource, variant) lists that belong to one part, in catalogue order."""
    own = set(part.resources)
    return [(r.name, v) for r, v in list_variants(resources_for(part.resources)) if r.name in own]


def selection_lists(selection: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every list a download of `selection` walks (dependencies included)."""
    return [(r.name, v) for r, v in list_variants(resources_for(selection))]


def estimate_for(
    selection: tuple[str, ...],
    counts: dict[tuple[str, str], int],
) -> int:
    """Requests a download of `selection` would cost, from the counts known so far (a list
    not counted yet, or refused, is costed at its minimum of one page)."""
    lists = selection_lists(selection)
    wanted = {key: counts.get(key, 0) for key in lists}
    resources = resources_for(selection)
    parents = {r.per_parent for r in resources if r.per_parent}
    per_parent = sum(n for (res, _v), n in wanted.items() if res in parents)
    return estimate_requests(wanted, per_parent)


def duration_text(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        whole = math.ceil(minutes)
        return f"about {whole} minute{'s' if whole != 1 else ''}"
    hours, rest = divmod(math.ceil(minutes), 60)
    return f"about {hours} h {rest:02d} min"


def staging_problem(text: str) -> str | None:
    """Why `text` cannot be the staging file, or None when it can."""
    if not text.strip():
        return "Give the path of the staging file."
    path = Path(text.strip())
    if path.is_dir():
        return f"{path} is a folder; give the path of a file inside it."
    parent = path.parent
    if not parent.is_dir():
        return f"The folder {parent} does not exist."
    return None


class CountArrived(Message, bubble=False):
    """One preview count (or a refusal of one list), posted by the preview worker's sink."""

    def __init__(self, event: CountReady) -> None:
        super().__init__()
        self.event = event


class PartBox(Checkbox):
    """A part's tick box; up and down move between the tick boxes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "app.focus_next", "Next", show=False),
        Binding("up", "app.focus_previous", "Previous", show=False),
    ]

    def __init__(self, part: Part, value: bool) -> None:
        super().__init__(part.label, value, id=f"part-{part.name}")
        self.part = part


class SelectScreen(Screen[None]):
    """Step 2 of the wizard: counts, tick boxes, estimate, staging file, then download."""

    CSS_PATH = "select.tcss"
    AUTO_FOCUS = "PartBox"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "download", "Download", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+t", "tick_all", "Tick all"),
        Binding("ctrl+r", "retry", "Retry preview"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str], str] = {}
        self.result: PreviewResult | None = None
        self.fatal: ClinikoError | None = None
        self._ticked: set[str] = set()

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        state = self.wizard.state
        chosen = set(state.selection)
        yield Header(show_clock=False)
        yield Static("Step 2 of 6 · Preview and select", classes="step-title")
        yield Static("", id="account")
        with VerticalScroll(id="parts"):
            for part in PARTS:
                with Vertical(classes="part", id=f"row-{part.name}"):
                    yield PartBox(part, part.name in chosen)
                    yield Static("", id=f"counts-{part.name}", classes="part-counts")
                    if part.depends_on:
                        needs = ", ".join(short_name(p) for p in part.depends_on)
                        yield Static(f"needs {needs}", classes="part-needs")
        yield Static("", id="preview-error", classes="error-message")
        yield Static("", id="dep-note", classes="warning-message")
        yield Static("", id="estimate")
        with Horizontal(id="staging-row"):
            yield Label("Staging file", id="staging-label")
            yield Input(str(state.staging_path), id="staging")
            yield Button("Download (ctrl+n)", id="download", variant="primary")
        yield Static("", id="staging-note", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self._ticked = {p for p in ALL_PARTS if self.query_one(f"#part-{p}", PartBox).value}
        self.query_one("#parts").border_title = "What to copy · space ticks · ↑↓ move"
        self._show_note("")
        self._show_fatal()
        cached = self.wizard.state.preview
        if cached is not None:
            self._use_result(cached)
        else:
            self._start_preview()
        self._refresh_all()
        self._refresh_staging_note()

    # -- the preview -------------------------------------------------------------------------

    def _start_preview(self) -> None:
        state = self.wizard.state
        key, base_url = state.key, state.base_url
        self.fatal = None
        self.counts.clear()
        self.errors.clear()
        self.result = None
        self._show_fatal()
        if key is None or base_url is None:
            self.fatal = ClinikoError(
                "No checked key: go back (escape) and connect first.", hint=""
            )
            self._show_fatal()
            return
        rate_limit = self.wizard.config.rate_limit

        def sink(event: object) -> None:
            if isinstance(event, CountReady):
                self.post_message(CountArrived(event))

        async def job() -> None:
            try:
                result = await preview(
                    key,
                    base_url=base_url,
                    selection=ALL_PARTS,
                    rate_limit=rate_limit,
                    sink=sink,
                )
            except ClinikoError as exc:
                self.fatal = exc
                self._show_fatal()
                self._refresh_all()
                return
            self.wizard.state.preview = result
            self._use_result(result)
            self._refresh_all()

        self.run_worker(job(), group=PREVIEW_GROUP, exclusive=True)
        self.refresh_bindings()

    def _use_result(self, result: PreviewResult) -> None:
        self.result = result
        self.counts = dict(result.counts)
        self.errors = dict(result.errors)
        self.refresh_bindings()

    def on_count_arrived(self, message: CountArrived) -> None:
        event = message.event
        key = (event.resource, event.variant)
        if event.count is not None:
            self.counts[key] = event.count
            self.errors.pop(key, None)
        else:
            self.errors[key] = event.error or "not counted"
        self._refresh_all()

    @property
    def previewing(self) -> bool:
        return self.result is None and self.fatal is None

    # -- what the screen says ------------------------------------------------------------------

    def _refresh_all(self) -> None:
        self._refresh_account()
        for part in PARTS:
            self.query_one(f"#counts-{part.name}", Static).update(self._counts_text(part))
        self._refresh_estimate()

    def _refresh_account(self) -> None:
        state = self.wizard.state
        account = state.account
        name = account.name if account is not None else None
        shard = account.shard if account is not None else None
        if self.result is not None:
            name = name or self.result.account_name
            shard = shard or self.result.shard
        if shard is None and state.key is not None:
            shard = state.key.shard
        parts = [f"Account: [b]{escape(name or 'unnamed account')}[/b]"]
        if shard:
            parts.append(f"shard {escape(region_label(shard))}")
        all_lists = selection_lists(ALL_PARTS)
        known = sum(1 for k in all_lists if k in self.counts or k in self.errors)
        if self.previewing:
            parts.append(f"counting… {known} of {len(all_lists)} lists")
        elif self.result is not None:
            parts.append(f"{len(all_lists)} lists counted")
        self.query_one("#account", Static).update(" · ".join(parts))

    def _counts_text(self, part: Part) -> str:
        same = SAME_LISTS.get(part.name)
        if same is not None:
            return f"the same lists as {short_name(same)}: the load splits past from upcoming"
        by_resource: dict[str, list[tuple[str, str]]] = {}
        for resource, variant in part_lists(part):
            by_resource.setdefault(resource, []).append((resource, variant))
        pieces: list[str] = []
        problems: list[str] = []
        for resource, lists in by_resource.items():
            label = escape(resource.replace("_", " "))
            main, *others = lists
            extras: list[str] = []
            for key in others:
                if key in self.errors:
                    extras.append(f"[$error]{key[1]} ✗[/]")
                elif key in self.counts:
                    extras.append(f"{key[1]} {self.counts[key]:,}")
                else:
                    extras.append(f"{key[1]} …")
            if main in self.errors:
                head = f"[$error]{label} ✗[/]"
            elif main in self.counts:
                head = f"{label} {self.counts[main]:,}"
            else:
                head = f"{label} …"
            pieces.append(head + (f" ({', '.join(extras)})" if extras else ""))
            for key in lists:
                if key in self.errors:
                    where = label if key[1] == "active" else f"{label} ({key[1]})"
                    problems.append(f"[$error]✗ {where}: {escape(self.errors[key])}[/]")
        text = " · ".join(pieces)
        if problems:
            text += "\n" + "\n".join(problems)
        return text

    def _selection(self) -> tuple[str, ...]:
        return tuple(p for p in ALL_PARTS if p in self._ticked)

    def _refresh_estimate(self) -> None:
        selection = self._selection()
        estimate = self.query_one("#estimate", Static)
        if not selection:
            estimate.update("[$warning]Nothing ticked: tick at least one part.[/]")
            return
        requests = estimate_for(selection, self.counts)
        per_minute = self.wizard.config.rate_limit[0] * 60.0 / self.wizard.config.rate_limit[1]
        minutes = requests / per_minute
        lists = selection_lists(selection)
        pending = sum(1 for k in lists if k not in self.counts and k not in self.errors)
        text = (
            f"Estimate: {requests:,} requests, {duration_text(minutes)} "
            f"at {per_minute:,.0f} requests a minute"
        )
        if pending and self.previewing:
            text += f" (so far; {pending} lists still counting)"
        elif pending:
            text += f" (at least; {pending} lists not counted)"
        estimate.update(text)

    def _show_fatal(self) -> None:
        box = self.query_one("#preview-error", Static)
        if self.fatal is None:
            box.update("")
            box.display = False
        else:
            message = str(self.fatal)
            hint = getattr(self.fatal, "hint", "") or ""
            text = escape(message)
            if hint and hint not in message:
                text += f"\n[$text-muted]{escape(hint)}[/]"
            box.update(text + "\n[$text-muted]ctrl+r asks again.[/]")
            box.display = True
        self.refresh_bindings()

    def _show_note(self, text: str) -> None:
        note = self.query_one("#dep-note", Static)
        note.update(text)
        note.display = bool(text)

    def _refresh_staging_note(self) -> bool:
        value = self.query_one("#staging", Input).value
        note = self.query_one("#staging-note", Static)
        problem = staging_problem(value)
        note.set_class(problem is not None, "error-message")
        note.set_class(problem is None, "hint")
        if problem is not None:
            note.update(escape(problem))
            return False
        if Path(value.strip()).is_file():
            note.update(
                "Exists: the download will resume an interrupted run or top up what changed."
            )
        else:
            note.update("New file (created private to you, mode 0600).")
        return True

    # -- ticking -----------------------------------------------------------------------------

    def _set_box(self, part: str, value: bool) -> None:
        box = self.query_one(f"#part-{part}", PartBox)
        if box.value != value:
            with box.prevent(Checkbox.Changed):
                box.value = value

    @on(Checkbox.Changed)
    def _ticked_changed(self, message: Checkbox.Changed) -> None:
        box = message.checkbox
        if not isinstance(box, PartBox):
            return
        part = box.part
        if message.value:
            self._tick(part)
        else:
            self._untick(part)
        self._refresh_estimate()

    def _tick(self, part: Part) -> None:
        self._ticked.add(part.name)
        added = [p for p in part.depends_on if p not in self._ticked]
        # Dependencies of dependencies too (the catalogue is shallow today, but be thorough).
        todo = list(part.depends_on)
        while todo:
            name = todo.pop()
            if name not in self._ticked:
                self._ticked.add(name)
                if name not in added:
                    added.append(name)
            self._set_box(name, True)
            todo.extend(PARTS_BY_NAME[name].depends_on)
        if added:
            names = " and ".join(short_name(p) for p in added)
            self._show_note(f"Ticked {names} too: {escape(part.why or 'it is needed')}.")
        else:
            self._show_note("")

    def _untick(self, part: Part) -> None:
        needed_by = [p for p in PARTS if p.name in self._ticked and part.name in p.depends_on]
        if needed_by:
            self._set_box(part.name, True)
            names = ", ".join(short_name(p.name) for p in needed_by)
            reason = needed_by[0].why
            self._show_note(
                f"{short_name(part.name)} stays ticked: {names} "
                f"need{'s' if len(needed_by) == 1 else ''} it ({escape(reason)}). "
                "Untick those first."
            )
            return
        self._ticked.discard(part.name)
        self._show_note("")

    # -- events ------------------------------------------------------------------------------

    @on(Input.Changed, "#staging")
    def _staging_changed(self) -> None:
        self._refresh_staging_note()

    @on(Input.Submitted, "#staging")
    def _staging_submitted(self) -> None:
        self.action_download()

    @on(Button.Pressed, "#download")
    def _download_pressed(self) -> None:
        self.action_download()

    def on_descendant_focus(self, event: object) -> None:
        focused = self.focused
        if isinstance(focused, PartBox) and focused.parent is not None:
            parent = focused.parent
            if isinstance(parent, Vertical):
                parent.scroll_visible(animate=False)

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.fatal is not None
        return True

    def action_back(self) -> None:
        self.workers.cancel_group(self, PREVIEW_GROUP)
        self.wizard.show_connect()

    def action_retry(self) -> None:
        if self.fatal is None:
            return
        self._start_preview()
        self._refresh_all()

    def action_tick_all(self) -> None:
        for part in ALL_PARTS:
            self._ticked.add(part)
            self._set_box(part, True)
        self._show_note("")
        self._refresh_estimate()

    def action_download(self) -> None:
        selection = self._selection()
        if not selection:
            self._show_note("Nothing ticked: tick at least one part to download.")
            return
        if not self._refresh_staging_note():
            self.query_one("#staging", Input).focus()
            return
        app = self.wizard
        state = app.state
        state.selection = selection
        state.staging_path = Path(self.query_one("#staging", Input).value.strip())
        state.preview = self.result if self.result is not None else self._partial_result()
        self.workers.cancel_group(self, PREVIEW_GROUP)
        app.start_download()
        app.show_download()

    def _partial_result(self) -> PreviewResult | None:
        """What the preview knew when the operator moved on before it finished."""
        state = self.wizard.state
        if not self.counts and not self.errors:
            return None
        account = state.account
        rate_limit = self.wizard.config.rate_limit
        per_minute = rate_limit[0] * 60.0 / rate_limit[1]
        requests = estimate_for(ALL_PARTS, self.counts)
        return PreviewResult(
            account_name=account.name if account is not None else None,
            shard=account.shard if account is not None else "",
            time_zone=account.time_zone if account is not None else None,
            counts=dict(self.counts),
            errors=dict(self.errors),
            estimated_requests=requests,
            estimated_minutes=requests / per_minute,
            rate_per_minute=per_minute,
        )
