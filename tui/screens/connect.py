"""Step 1: connect to Cliniko with an API key and its region (DESIGN.md section 7).

The key is typed or pasted into a masked Input, or taken from $CLINIKO_API_KEY (the demo fills
in its sandbox's made-up key); it never appears in any other widget, message or file. The
region list is pre-selected from the key's suffix as it is typed; a region picked by hand that
disagrees with the key is explained inline with the engine's own message, which names the
right shard. Connecting checks the key with two requests (`engine.api.connect`) in a worker;
every engine error is shown with its hint, the key stays in the input, and nothing crashes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast
from urllib.parse import urlsplit, urlunsplit

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from engine.api import (
    ENV_VAR,
    KNOWN_SHARDS,
    ApiKey,
    BadKey,
    ClinikoError,
    RegionMismatch,
    base_url_for,
    check_region,
    connect,
    parse_key,
    region_label,
)

if TYPE_CHECKING:
    from tui.app import SwitchApp

CONNECT_GROUP = "connect"


def safe_url(url: str) -> str:
    """A target URL fit to show: any password replaced by `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def error_text(exc: BaseException) -> tuple[str, str]:
    """An engine error's message and its hint (empty when the message already says it)."""
    message = str(exc) or type(exc).__name__
    hint = getattr(exc, "hint", "") or ""
    if hint and hint in message:
        hint = ""
    return message, hint


class ConnectScreen(Screen[None]):
    """Step 1 of the wizard: the key, its region, and the connection check."""

    CSS_PATH = "connect.tcss"
    AUTO_FOCUS = "#key"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "connect", "Connect & preview", priority=True),
        Binding("ctrl+r", "review", "Review staging file"),
        Binding("escape", "cancel_check", "Cancel check"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._preset_key: str | None = None
        """The key from $CLINIKO_API_KEY or the demo: used while the input is empty."""
        self._preset_source = ""
        self._region_by_hand = False
        """The operator (or --region) chose the region: typing a key no longer moves it."""
        self._checking = False
        self._mismatch_shown = False

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        config = self.wizard.config
        yield Header(show_clock=False)
        with VerticalScroll(id="connect-body"):
            yield Static("Step 1 of 6 · Connect to Cliniko", classes="step-title")
            yield Static(
                "Paste a Cliniko API key (My Info → Manage API keys); kept in memory only.",
                classes="hint",
            )
            if config.demo:
                yield Static(
                    "Demo: the built-in sandbox, a made-up clinic on this machine with a "
                    "made-up key; no real patient data.",
                    id="demo-note",
                    classes="warning-message",
                )
            with Horizontal(classes="field-row"):
                yield Label("API key", classes="field-label")
                yield Input(
                    password=True,
                    placeholder="the key, ending in its region, e.g. -au1",
                    id="key",
                )
            yield Static("", id="key-note", classes="hint")
            with Horizontal(classes="field-row"):
                yield Label("Region", classes="field-label")
                yield Select(
                    [(region_label(shard), shard) for shard in KNOWN_SHARDS],
                    prompt="picked from the key's suffix",
                    id="region",
                )
            yield Static("", id="region-note", classes="warning-message")
            yield Static("", id="status", classes="hint")
            yield Static("", id="error", classes="error-message")
            yield Static("", id="error-hint", classes="hint")
            with Vertical(id="files", classes="panel"):
                yield Static("", id="staging-line")
                yield Static("", id="target-line")
            with Horizontal(classes="actions"):
                yield Button(
                    "Connect & preview (ctrl+n)", id="connect", variant="primary", compact=True
                )
                yield Button("Review staging file (ctrl+r)", id="review", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        config = self.wizard.config
        state = self.wizard.state
        if config.demo_key:
            self._preset_key = config.demo_key
            self._preset_source = "the built-in sandbox (a made-up key)"
        elif os.environ.get(ENV_VAR, "").strip():
            self._preset_key = os.environ[ENV_VAR]
            self._preset_source = ENV_VAR
        region = (config.region or "").strip().lower()
        if region:
            self._add_region_option(region)
            self._set_region(region)
            self._region_by_hand = True
        self.query_one("#files").border_title = "Files"
        self.query_one("#staging-line", Static).update(self._staging_text())
        target = escape(safe_url(state.target_url))
        self.query_one("#target-line", Static).update(f"Load into:     {target}")
        self.query_one("#review", Button).display = self._staging_exists()
        self._refresh_key_notes()
        self._show_error(None)
        self._set_checking(False)

    # -- what the screen says ------------------------------------------------------------------

    def _staging_exists(self) -> bool:
        return self.wizard.state.staging_path.is_file()

    def _staging_text(self) -> str:
        path = escape(str(self.wizard.state.staging_path))
        if self._staging_exists():
            return f"Staging file:  {path} (exists: ctrl+r reviews it offline)"
        return f"Staging file:  {path} (new, written by the download)"

    def _typed(self) -> str:
        return self.query_one("#key", Input).value.strip()

    def _raw_key(self) -> str:
        return self._typed() or (self._preset_key or "")

    def _picked_region(self) -> str | None:
        value = self.query_one("#region", Select).value
        return value if isinstance(value, str) else None

    def _add_region_option(self, shard: str) -> None:
        """A shard we do not know by name still gets a line in the list (keys can be newer)."""
        if shard in KNOWN_SHARDS:
            return
        select: Select[str] = self.query_one("#region", Select)
        current = self._picked_region()
        shards = [*KNOWN_SHARDS, shard]
        with select.prevent(Select.Changed):
            select.set_options([(region_label(s), s) for s in shards])
            if current is not None:
                select.value = current

    def _set_region(self, shard: str) -> None:
        select: Select[str] = self.query_one("#region", Select)
        if select.value == shard:
            return
        with select.prevent(Select.Changed):
            select.value = shard

    def _parsed(self) -> ApiKey | None:
        raw = self._raw_key()
        if not raw:
            return None
        try:
            return parse_key(raw)
        except BadKey:
            return None

    def _refresh_key_notes(self) -> None:
        """The key's source, and the region: follow the key, or explain a mismatch."""
        key_note = self.query_one("#key-note", Static)
        region_note = self.query_one("#region-note", Static)
        typed = self._typed()
        if self._preset_key and not typed:
            key_note.update(
                f"Key taken from {self._preset_source} (not shown); type a key here to use another."
            )
        elif self._preset_key:
            key_note.update(f"Using the key typed here instead of the one from {ENV_VAR}.")
        elif typed:
            key_note.update("Enter or ctrl+n checks the key with Cliniko.")
        else:
            key_note.update(f"Or start with {ENV_VAR} set in the environment.")
        key = self._parsed()
        notes: list[str] = []
        if key is not None:
            self._add_region_option(key.shard)
            if not self._region_by_hand:
                self._set_region(key.shard)
            picked = self._picked_region()
            if picked is not None:
                try:
                    check_region(key, picked)
                except RegionMismatch as exc:
                    notes.append(str(exc))
            if key.warning:
                notes.append(key.warning)
        region_note.update(escape(" ".join(notes)))
        region_note.display = bool(notes) and not self._mismatch_shown

    def _show_error(self, exc: BaseException | None) -> None:
        error = self.query_one("#error", Static)
        hint = self.query_one("#error-hint", Static)
        if exc is None:
            message, advice = "", ""
        else:
            message, advice = error_text(exc)
        error.update(escape(message))
        hint.update(escape(advice))
        error.display = bool(message)
        hint.display = bool(advice)
        # A region mismatch is explained inline too: say it once, as the error.
        self._mismatch_shown = isinstance(exc, RegionMismatch)
        note = self.query_one("#region-note", Static)
        note.display = bool(str(note.render())) and not self._mismatch_shown

    def _set_checking(self, checking: bool) -> None:
        self._checking = checking
        status = self.query_one("#status", Static)
        if checking:
            status.update("Checking the key with Cliniko… (escape cancels)")
        else:
            status.update("")
        status.display = checking
        self.query_one("#connect", Button).disabled = checking
        self.refresh_bindings()

    # -- events ------------------------------------------------------------------------------

    @on(Input.Changed, "#key")
    def _key_changed(self) -> None:
        self._show_error(None)  # it was about the key as it was
        self._refresh_key_notes()

    @on(Input.Submitted, "#key")
    def _key_submitted(self) -> None:
        self.action_connect()

    @on(Select.Changed, "#region")
    def _region_changed(self) -> None:
        self._region_by_hand = self._picked_region() is not None
        self._show_error(None)
        self._refresh_key_notes()

    @on(Button.Pressed, "#connect")
    def _connect_pressed(self) -> None:
        self.action_connect()

    @on(Button.Pressed, "#review")
    def _review_pressed(self) -> None:
        self.action_review()

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "review":
            return self._staging_exists() and not self._checking
        if action == "cancel_check":
            return self._checking
        if action == "connect":
            return None if self._checking else True
        return True

    def action_connect(self) -> None:
        if self._checking:
            return
        self._show_error(None)
        try:
            key = parse_key(self._raw_key())
        except BadKey as exc:
            self._show_error(exc)
            return
        region = self._picked_region()
        if region is None:
            self._set_region(key.shard)
            region = key.shard
        try:
            check_region(key, region)
            base_url = base_url_for(key.shard, self.wizard.config.api_url)
        except ClinikoError as exc:
            self._show_error(exc)
            return
        except ValueError as exc:  # a shard that cannot be part of a host name
            self._show_error(exc)
            return
        self._set_checking(True)
        self.run_worker(self._check(key, base_url), group=CONNECT_GROUP, exclusive=True)

    async def _check(self, key: ApiKey, base_url: str) -> None:
        app = self.wizard
        try:
            account = await connect(key, base_url=base_url, rate_limit=app.config.rate_limit)
        except ClinikoError as exc:
            self._set_checking(False)
            self._show_error(exc)
            return
        self._set_checking(False)
        state = app.state
        state.key = key
        state.base_url = base_url
        state.account = account
        state.preview = None  # a fresh connection counts afresh
        app.show_select()

    def action_cancel_check(self) -> None:
        if not self._checking:
            return
        self.workers.cancel_group(self, CONNECT_GROUP)
        self._set_checking(False)
        self._show_error(ClinikoError("The check was cancelled.", hint=""))

    def action_review(self) -> None:
        path: Path = self.wizard.state.staging_path
        if path.is_file() and not self._checking:
            self.wizard.show_review(path)
