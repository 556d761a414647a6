"""Help (F1 from anywhere): the steps, the keys, where files go, what is and is not migrated."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Static

from tui.screens.connect import safe_url

if TYPE_CHECKING:
    from tui.app import SwitchApp

STEPS = """\
[b]The steps[/b]
 1 Connect     the API key and its region; two requests check it
 2 Select      counts of what the clinic holds; tick what to copy
 3 Download    Cliniko → the staging file (resumable, read-only)
 4 Review      browse the staging file; works offline, no key
 5 Load        the plan as a diff, then copy into MyNewClinic
 6 Summary     created, updated, skipped (with reasons), balances"""

KEYS = """\
[b]Keys[/b]
 F1 help · escape back or close · ctrl+q quit (a download stops safely
 and resumes next time) · tab / shift+tab move · space ticks ·
 enter confirms · ctrl+n next step · the footer lists the rest"""

MIGRATED = """\
[b]Copied[/b]
 Practitioners, locations, services; patients with contacts, alerts,
 cases and referral sources; appointments (upcoming and history) with
 attendees; finalised treatment notes; invoices with line items and
 balances; unavailable blocks; the list of patient attachments.

[b]Not copied[/b]
 Attachment files themselves (a later, separate step); draft notes
 (kept in the staging file only); payments one by one (Cliniko's API
 has none: balances follow each invoice's status). Nothing is ever
 sent to patients: messaging stays off."""


class HelpScreen(ModalScreen[None]):
    """What the wizard does, in one page."""

    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("f1", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    @property
    def wizard(self) -> SwitchApp:
        return cast("SwitchApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="help-box"):
            yield Static(STEPS, classes="help-section")
            yield Static(KEYS, classes="help-section")
            yield Static(self._files_text(), classes="help-section", id="help-files")
            yield Static(MIGRATED, classes="help-section")
        yield Footer()

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "Help"
        box.border_subtitle = "escape closes"
        box.focus()

    def _files_text(self) -> str:
        state = self.wizard.state
        staging = escape(str(state.staging_path))
        target = escape(safe_url(state.target_url))
        return (
            "[b]Files[/b]\n"
            f"Staging file  {staging}: private (mode 0600), it holds health records; "
            "delete it when the switch is done\n"
            f"Clinic        {target}\n"
            "Skipped list  a CSV of what was not loaded and why (the load names it)\n"
            "The API key is never written anywhere."
        )

    def action_close(self) -> None:
        self.dismiss(None)
