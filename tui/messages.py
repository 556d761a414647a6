"""Textual messages that carry engine events from workers to the screens.

Progress arrives many times a second while a download runs at full rate; the messages that
only ever supersede their predecessor say so with `can_replace`, so a busy queue coalesces
them instead of repainting for each one.
"""

from __future__ import annotations

from textual.message import Message

from engine.api import AnyEvent, ListProgress, LoadProgress, RequestStats


class EngineEvent(Message):
    """One engine event, posted to the App by a worker's event sink."""

    def __init__(self, event: AnyEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, EngineEvent):
            return False
        new, old = self.event, message.event
        if isinstance(new, RequestStats) and isinstance(old, RequestStats):
            return True
        if isinstance(new, ListProgress) and isinstance(old, ListProgress):
            return (new.resource, new.variant) == (old.resource, old.variant) and not old.done
        if isinstance(new, LoadProgress) and isinstance(old, LoadProgress):
            return (new.phase, new.record_kind) == (old.phase, old.record_kind)
        return False


class DownloadEnded(Message):
    """The App's download worker stopped: complete, interrupted (resumable) or failed."""

    def __init__(self, outcome: str, error: str | None = None) -> None:
        super().__init__()
        self.outcome = outcome
        self.error = error
