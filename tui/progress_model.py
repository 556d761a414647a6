"""Download progress as the screens show it: a few stages, an overall bar, the request budget.

Pure bookkeeping over engine events (no Textual), so it is unit-tested on its own and the
snapshot tests can fill it with a fixed script of events.

A stage is a part of the clinic's record as the catalogue groups resources (patients, clinic
set-up, appointments, notes, invoices, ...): fewer bars than lists, so it fits 80x24.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.api import (
    AnyEvent,
    ListProgress,
    Notice,
    RequestStats,
    RunFinished,
    RunStarted,
    UnknownSelection,
    resources_for,
)
from engine.resources import BY_NAME

STAGE_LABELS: dict[str, str] = {
    "account": "Account",
    "practitioners": "Clinic set-up",
    "patients": "Patients",
    "appointments": "Appointments",
    "treatment_notes": "Treatment notes",
    "invoices": "Invoices",
    "unavailable_blocks": "Unavailable blocks",
    "attachments": "Attachments",
}
STAGE_ORDER = tuple(STAGE_LABELS)
MAX_NOTICES = 50


def stage_of(resource: str) -> str:
    found = BY_NAME.get(resource)
    return found.part if found is not None else "account"


def stages_for(selection: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The stages a download of this selection walks, in display order (account first: the
    key check and the settings are always part of a run)."""
    try:
        resources = resources_for(selection)
    except UnknownSelection:
        return ("account",)
    names = {r.part for r in resources} | {"account"}
    return tuple(sorted(names, key=_order))


def format_duration(seconds: float | None) -> str:
    """mm:ss, or h:mm:ss from an hour; "--:--" when unknown."""
    if seconds is None:
        return "--:--"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass
class ListState:
    resource: str
    variant: str
    pages_done: int = 0
    pages_expected: int | None = None
    records_done: int = 0
    records_expected: int | None = None
    done: bool = False


@dataclass
class Stage:
    name: str
    label: str
    lists: dict[tuple[str, str], ListState] = field(default_factory=dict)

    @property
    def pages_done(self) -> int:
        return sum(x.pages_done for x in self.lists.values())

    @property
    def pages_expected(self) -> int | None:
        """None until every list of the stage knows its size."""
        expected = [x.pages_expected for x in self.lists.values()]
        if not expected or any(e is None for e in expected):
            return None
        return sum(e or 0 for e in expected)

    @property
    def records_done(self) -> int:
        return sum(x.records_done for x in self.lists.values())

    @property
    def done(self) -> bool:
        return bool(self.lists) and all(x.done for x in self.lists.values())


@dataclass
class DownloadProgress:
    clock: Callable[[], float] = time.monotonic
    run_id: int | None = None
    mode: str | None = None
    lists_total: int = 0
    stages: dict[str, Stage] = field(default_factory=dict)
    stats: RequestStats | None = None
    notices: list[Notice] = field(default_factory=list)
    finished: RunFinished | None = None
    outcome: str | None = None
    """complete, interrupted or failed, once the worker has stopped."""
    started_at: float | None = None
    staging_path: str | None = None
    notices_total: int = 0
    """Notices seen since the last reset (`notices` keeps only the last MAX_NOTICES)."""
    stats_at: float | None = None
    """The clock's time when the latest RequestStats arrived."""
    waiting_delta_s: float = 0.0
    """How much the rate limiter's wait grew between the last two RequestStats (summed over
    the requests that waited): > 0 while the run is held back by the request budget."""

    def reset(self) -> None:
        self.run_id = self.mode = self.outcome = None
        self.lists_total = 0
        self.stages = {}
        self.stats = None
        self.notices = []
        self.finished = None
        self.started_at = None
        self.staging_path = None
        self.notices_total = 0
        self.stats_at = None
        self.waiting_delta_s = 0.0

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.mode = event.mode
            self.lists_total = event.lists
            self.staging_path = event.staging_path
            self.started_at = self.clock()
        elif isinstance(event, ListProgress):
            stage_name = stage_of(event.resource)
            stage = self.stages.get(stage_name)
            if stage is None:
                stage = Stage(stage_name, STAGE_LABELS.get(stage_name, stage_name))
                self.stages = dict(
                    sorted(
                        {**self.stages, stage_name: stage}.items(),
                        key=lambda kv: _order(kv[0]),
                    )
                )
            state = stage.lists.setdefault(
                (event.resource, event.variant), ListState(event.resource, event.variant)
            )
            state.pages_done = event.pages_done
            state.pages_expected = event.pages_expected
            state.records_done = event.records_done
            state.records_expected = event.records_expected
            state.done = event.done
        elif isinstance(event, RequestStats):
            before = self.stats.waiting_s if self.stats is not None else 0.0
            self.waiting_delta_s = max(0.0, event.waiting_s - before)
            self.stats = event
            self.stats_at = self.clock()
        elif isinstance(event, Notice):
            self.notices = [*self.notices, event][-MAX_NOTICES:]
            self.notices_total += 1
        elif isinstance(event, RunFinished):
            self.finished = event

    def finish(self, outcome: str) -> None:
        self.outcome = outcome

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.outcome is None

    @property
    def pages_done(self) -> int:
        if self.stats is not None:
            return max(self.stats.pages_done, sum(s.pages_done for s in self.stages.values()))
        return sum(s.pages_done for s in self.stages.values())

    @property
    def pages_expected(self) -> int | None:
        if self.stats is not None and self.stats.pages_expected:
            return self.stats.pages_expected
        expected = [s.pages_expected for s in self.stages.values()]
        if not expected or any(e is None for e in expected):
            return None
        return sum(e or 0 for e in expected)

    @property
    def records_done(self) -> int:
        return sum(s.records_done for s in self.stages.values())

    @property
    def elapsed_s(self) -> float | None:
        """Seconds the run has taken: the engine's own count, moved on by the clock between
        two RequestStats while the run goes on; the final figure once it has finished."""
        if self.finished is not None:
            return self.finished.seconds
        if self.started_at is None:
            return None
        if not self.running:
            return self.stats.elapsed_s if self.stats is not None else None
        since_start = self.clock() - self.started_at
        if self.stats is None or self.stats_at is None:
            return since_start
        return max(since_start, self.stats.elapsed_s + self.clock() - self.stats_at)

    @property
    def eta_s(self) -> float | None:
        """Seconds left as the engine last estimated them, counted down by the clock; None
        when unknown or when no run is going on."""
        if not self.running or self.stats is None or self.stats.eta_s is None:
            return None
        since = self.clock() - self.stats_at if self.stats_at is not None else 0.0
        return max(0.0, self.stats.eta_s - since)


def _order(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
