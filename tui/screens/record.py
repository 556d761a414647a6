"""One staged record, as the review screen shows it: readable fields, or the raw JSON.

The readable view lists the record's fields one per line: nested objects are flattened one
level (`account.name`), links to other records are shown as the linked id, and links to
sub-lists (a practitioner's appointments ...) are left out. The raw view is the record exactly
as Cliniko sent it, pretty-printed and scrollable. Nothing here is logged or written: the
record holds patient data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import ClassVar
from urllib.parse import urlsplit

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Footer, Static, TextArea

MAX_VALUE_CHARS = 300
"""A readable value longer than this is cut (the raw view has all of it)."""
FIRST_KEYS = (
    "title",
    "first_name",
    "preferred_first_name",
    "last_name",
    "name",
    "label",
    "business_name",
    "number",
    "status_description",
    "date_of_birth",
    "starts_at",
    "ends_at",
)
"""Fields that say which record this is: shown first, the rest in the record's order."""


# ---------------------------------------------------------------------------------------------
# Readable fields (pure functions: unit-tested without an app)


def link_target(value: object) -> tuple[str, str] | None:
    """`(kind, id)` when `value` is a Cliniko link object (`{"links": {"self": url}}`).

    `kind` is "record" for a link to one record (the id is its last path segment) and "list"
    for a link to a sub-list (`.../practitioners/1/appointments?page=1`), whose id is the path.
    """
    if not isinstance(value, dict) or set(value) != {"links"}:
        return None
    links = value["links"]
    url = links.get("self") if isinstance(links, dict) else None
    if not isinstance(url, str):
        return None
    path = urlsplit(url).path
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    if len(parts) == 2 and parts[1] and parts[1][0].isdigit():
        return ("record", parts[1])
    return ("list", "/" + "/".join(parts))


def _scalar(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def _compact(value: object) -> str:
    if isinstance(value, list) and all(
        v is None or isinstance(v, (str, int, float, bool)) for v in value
    ):
        return ", ".join(_scalar(v) for v in value) if value else "(none)"
    if isinstance(value, list) and value and all(link_target(v) for v in value):
        return ", ".join(t[1] for v in value if (t := link_target(v)) is not None)
    if isinstance(value, dict) and not value:
        return "{}"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _value(value: object) -> str:
    if isinstance(value, (dict, list)):
        return _compact(value)
    return _cut(_scalar(value))


def readable_fields(data: dict[str, object]) -> list[tuple[str, str]]:
    """The record's fields as `(key, text)` pairs: `FIRST_KEYS`, then the record's order."""
    first = [k for k in FIRST_KEYS if k in data]
    ordered = [*first, *(k for k in data if k not in first)]
    out: list[tuple[str, str]] = []
    for key in ordered:
        value = data[key]
        if key == "links":
            continue  # the record's own address
        link = link_target(value)
        if link is not None:
            if link[0] == "record":
                out.append((key, link[1]))
            continue
        if isinstance(value, dict) and value:
            for sub, sub_value in value.items():
                sub_link = link_target(sub_value)
                if sub_link is not None:
                    if sub_link[0] == "record":
                        out.append((f"{key}.{sub}", sub_link[1]))
                    continue
                out.append((f"{key}.{sub}", _value(sub_value)))
            continue
        out.append((key, _value(value)))
    return out


def pretty_json(raw: str) -> str:
    """The raw record pretty-printed (2 spaces, non-ASCII kept readable)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    text = json.dumps(value, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped
        text = json.dumps(value, indent=2, ensure_ascii=True)
    return text


def fields_table(sections: Iterable[tuple[str, list[tuple[str, str]]]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column("key", style="bold", no_wrap=True, max_width=24)
    table.add_column("value", overflow="fold")
    first = True
    for title, rows in sections:
        if not rows:
            continue
        if not first:
            table.add_row("", "")
        first = False
        table.add_row(Text(title, style="underline"), "")
        for key, value in rows:
            table.add_row(Text(key), Text(value))
    return table


# ---------------------------------------------------------------------------------------------
# The screen


class RecordScreen(ModalScreen[None]):
    """One record: readable fields, `j` for the raw JSON, escape to close."""

    CSS_PATH = "record.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("b", "close", "Back", show=False),
        Binding("j", "toggle_raw", "Raw JSON / fields"),
    ]

    def __init__(
        self,
        title: str,
        raw: str,
        *,
        staged: list[tuple[str, str]] | None = None,
        raw_only: bool = False,
    ) -> None:
        """`title`: what the record is (resource and id); `raw`: the record's JSON text;
        `staged`: what staging knows about it (state, variants ...), shown above the fields."""
        super().__init__()
        self.record_title = title
        self.raw = raw
        self.staged = staged or []
        self.raw_only = raw_only

    def compose(self) -> ComposeResult:
        with Vertical(id="record-box", classes="panel") as box:
            box.border_title = escape(self.record_title)
            yield Static(id="record-view-label", classes="hint")
            initial = "record-raw" if self.raw_only else "record-fields"
            with ContentSwitcher(initial=initial, id="record-switcher"):
                with VerticalScroll(id="record-fields"):
                    yield Static(self._fields_renderable(), id="record-fields-body")
                yield TextArea(
                    pretty_json(self.raw),
                    read_only=True,
                    soft_wrap=True,
                    show_line_numbers=False,
                    highlight_cursor_line=False,
                    id="record-raw",
                )
        yield Footer()

    def _fields_renderable(self) -> Table | Text:
        try:
            data = json.loads(self.raw)
        except ValueError:
            return Text("This record is not valid JSON; press j to see it as it was received.")
        if not isinstance(data, dict):
            data = {"value": data}
        return fields_table([("Staged", self.staged), ("Record", readable_fields(data))])

    def on_mount(self) -> None:
        self._show_label()
        self._focus_view()

    @property
    def showing_raw(self) -> bool:
        return self.query_one(ContentSwitcher).current == "record-raw"

    def _show_label(self) -> None:
        label = "Raw JSON, as received from Cliniko" if self.showing_raw else "Fields"
        self.query_one("#record-view-label", Static).update(label)

    def _focus_view(self) -> None:
        target = "#record-raw" if self.showing_raw else "#record-fields"
        self.query_one(target).focus()

    def action_toggle_raw(self) -> None:
        if self.raw_only:
            return
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "record-fields" if self.showing_raw else "record-raw"
        self._show_label()
        self._focus_view()

    def action_close(self) -> None:
        self.dismiss(None)


def staged_summary(
    *,
    record_id: str,
    state: str,
    variants: Iterable[str],
    created_at: str | None,
    updated_at: str | None,
    markers: dict[str, str | None],
) -> list[tuple[str, str]]:
    """The "Staged" section: what the staging file records about a row."""
    rows = [
        ("id", record_id),
        ("state", state),
        ("seen in", ", ".join(variants)),
        ("created_at", created_at or "-"),
        ("updated_at", updated_at or "-"),
    ]
    rows.extend((name, value) for name, value in markers.items() if value)
    return rows
