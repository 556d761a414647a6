"""Progress and result events: the engine's only way of talking to a UI.

The engine emits these; the TUI and the command line are two renderers of them, and tests
record them. They carry ids, counts and timings only: never names, notes or the API key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunStarted(Event):
    kind: Literal["run_started"] = "run_started"
    run_id: int
    mode: str
    """full, resume or topup."""
    staging_path: str
    lists: int
    """How many (resource, variant) lists this run walks."""


class ListProgress(Event):
    """One list (a resource and one of its variants) moved on."""

    kind: Literal["list_progress"] = "list_progress"
    resource: str
    variant: str
    pages_done: int
    pages_expected: int | None
    records_done: int
    records_expected: int | None
    done: bool = False


class RequestStats(Event):
    """The request budget as the run spends it; sent about once a second."""

    kind: Literal["request_stats"] = "request_stats"
    requests: int
    retries: int
    rate_limited: int
    rate_per_minute: float
    limit_per_minute: float
    elapsed_s: float
    waiting_s: float
    pages_done: int
    pages_expected: int
    eta_s: float | None


class Notice(Event):
    """Something the operator should know that is not an error (a 4xx on one list, a 429)."""

    kind: Literal["notice"] = "notice"
    level: Literal["info", "warning"] = "info"
    message: str
    resource: str | None = None


class CountReady(Event):
    """Preview: one list's size, as it arrives."""

    kind: Literal["count_ready"] = "count_ready"
    resource: str
    variant: str
    count: int | None
    error: str | None = None


class RunFinished(Event):
    kind: Literal["run_finished"] = "run_finished"
    run_id: int
    outcome: Literal["complete", "interrupted", "failed"]
    requests: int
    retries: int
    rate_limited: int
    records: int
    quarantined: int
    seconds: float
    error: str | None = None


class LoadProgress(Event):
    """Plan or load: one clinic record kind moved on (one bar per kind).

    `record_kind` is the clinic kind (patient, appointment, ...): `kind` is every event's tag.
    Added for engine/plan.py and engine/load.py.
    """

    kind: Literal["load_progress"] = "load_progress"
    phase: Literal["plan", "load", "verify"] = "load"
    record_kind: str
    done: int
    total: int


AnyEvent = (
    RunStarted | ListProgress | RequestStats | Notice | CountReady | RunFinished | LoadProgress
)
EventSink = Callable[[AnyEvent], None]


def discard(_event: AnyEvent) -> None:
    """An event sink for callers that do not render progress."""
