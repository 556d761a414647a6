"""DownloadProgress: engine events folded into what the download screen shows."""

from __future__ import annotations

import pytest

from engine.api import ListProgress, Notice, RequestStats, RunFinished, RunStarted
from tui.progress_model import (
    MAX_NOTICES,
    DownloadProgress,
    format_duration,
    stage_of,
    stages_for,
)


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def lp(
    resource: str,
    variant: str = "active",
    done: int = 1,
    expected: int | None = 1,
    records: int = 10,
    finished: bool = False,
) -> ListProgress:
    return ListProgress(
        resource=resource,
        variant=variant,
        pages_done=done,
        pages_expected=expected,
        records_done=records,
        records_expected=None if expected is None else expected * 50,
        done=finished,
    )


def stats(**kw: float | int | None) -> RequestStats:
    values: dict[str, float | int | None] = {
        "requests": 10,
        "retries": 0,
        "rate_limited": 0,
        "rate_per_minute": 100.0,
        "limit_per_minute": 200.0,
        "elapsed_s": 5.0,
        "waiting_s": 0.0,
        "pages_done": 8,
        "pages_expected": 20,
        "eta_s": 30.0,
    }
    values.update(kw)
    return RequestStats(**values)  # type: ignore[arg-type]


STARTED = RunStarted(run_id=3, mode="resume", staging_path="staging.sqlite", lists=12)


def test_lists_are_grouped_into_stages_in_catalogue_order() -> None:
    progress = DownloadProgress(clock=Clock())
    for event in (
        lp("individual_appointments", done=2, expected=5, records=100),
        lp("patients", "archived", records=3),
        lp("businesses", records=2),
        lp("patients", done=4, expected=9, records=200),
        lp("taxes", records=1),
    ):
        progress.apply(event)
    assert list(progress.stages) == ["practitioners", "patients", "appointments", "invoices"]
    patients = progress.stages["patients"]
    assert patients.label == "Patients"
    assert set(patients.lists) == {("patients", "archived"), ("patients", "active")}
    assert patients.pages_done == 5
    assert patients.pages_expected == 10
    assert patients.records_done == 203
    assert progress.stages["practitioners"].label == "Clinic set-up"
    assert progress.records_done == 306


def test_a_later_event_for_the_same_list_replaces_the_earlier() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(lp("patients", done=1, expected=9, records=50))
    progress.apply(lp("patients", done=9, expected=9, records=420, finished=True))
    stage = progress.stages["patients"]
    assert (stage.pages_done, stage.records_done, stage.done) == (9, 420, True)


def test_expected_pages_are_unknown_until_every_list_of_the_stage_knows() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(lp("patients", done=3, expected=None))
    progress.apply(lp("contacts", done=1, expected=4))
    assert progress.stages["patients"].pages_expected is None
    assert progress.pages_expected is None
    progress.apply(lp("patients", done=3, expected=7))
    assert progress.stages["patients"].pages_expected == 11
    assert progress.pages_expected == 11


def test_a_stage_is_done_only_when_all_its_lists_are() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(lp("patients", finished=True))
    progress.apply(lp("contacts", done=1, expected=2))
    assert not progress.stages["patients"].done
    progress.apply(lp("contacts", done=2, expected=2, finished=True))
    assert progress.stages["patients"].done


def test_overall_prefers_the_engines_request_stats() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(lp("patients", done=3, expected=7))
    assert (progress.pages_done, progress.pages_expected) == (3, 7)
    progress.apply(stats(pages_done=5, pages_expected=40))
    assert (progress.pages_done, progress.pages_expected) == (5, 40)
    # A stats event that lags behind the lists never moves the bar back.
    progress.apply(lp("patients", done=6, expected=7))
    assert progress.pages_done == 6


def test_run_started_and_finished_and_the_outcome() -> None:
    clock = Clock()
    progress = DownloadProgress(clock=clock)
    assert not progress.running
    progress.apply(STARTED)
    assert (progress.run_id, progress.mode, progress.lists_total) == (3, "resume", 12)
    assert progress.staging_path == "staging.sqlite"
    assert progress.running
    finished = RunFinished(
        run_id=3,
        outcome="complete",
        requests=40,
        retries=1,
        rate_limited=0,
        records=900,
        quarantined=2,
        seconds=61.0,
    )
    progress.apply(finished)
    assert progress.finished == finished
    assert progress.running  # until the worker has stopped
    progress.finish("complete")
    assert progress.outcome == "complete" and not progress.running


def test_notices_are_capped_and_counted() -> None:
    progress = DownloadProgress(clock=Clock())
    for n in range(MAX_NOTICES + 7):
        progress.apply(Notice(level="warning", message=f"notice {n}"))
    assert len(progress.notices) == MAX_NOTICES
    assert progress.notices[0].message == "notice 7"
    assert progress.notices[-1].message == f"notice {MAX_NOTICES + 6}"
    assert progress.notices_total == MAX_NOTICES + 7


def test_waiting_for_the_rate_limit_is_the_growth_between_two_stats() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(stats(waiting_s=10.0))
    assert progress.waiting_delta_s == pytest.approx(10.0)
    progress.apply(stats(waiting_s=13.2))
    assert progress.waiting_delta_s == pytest.approx(3.2)
    progress.apply(stats(waiting_s=13.2))
    assert progress.waiting_delta_s == 0.0


def test_elapsed_and_eta_move_with_the_clock_between_stats() -> None:
    clock = Clock()
    progress = DownloadProgress(clock=clock)
    assert progress.elapsed_s is None and progress.eta_s is None
    progress.apply(STARTED)
    clock.now += 2
    assert progress.elapsed_s == pytest.approx(2.0)
    assert progress.eta_s is None  # no estimate before the first stats
    progress.apply(stats(elapsed_s=5.0, eta_s=30.0))
    clock.now += 4
    assert progress.elapsed_s == pytest.approx(9.0)
    assert progress.eta_s == pytest.approx(26.0)
    clock.now += 100
    assert progress.eta_s == 0.0
    progress.finish("interrupted")
    assert progress.eta_s is None
    assert progress.elapsed_s == pytest.approx(5.0)  # stopped: the clock no longer counts


def test_elapsed_is_the_runs_own_figure_once_finished() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(STARTED)
    progress.apply(
        RunFinished(
            run_id=3,
            outcome="interrupted",
            requests=1,
            retries=0,
            rate_limited=0,
            records=0,
            quarantined=0,
            seconds=12.5,
        )
    )
    assert progress.elapsed_s == 12.5


def test_reset_forgets_the_previous_run() -> None:
    progress = DownloadProgress(clock=Clock())
    progress.apply(STARTED)
    progress.apply(lp("patients"))
    progress.apply(stats(waiting_s=4.0))
    progress.apply(Notice(message="x"))
    progress.finish("interrupted")
    progress.reset()
    assert progress.stages == {} and progress.stats is None and progress.notices == []
    assert (progress.run_id, progress.mode, progress.outcome, progress.finished) == (
        None,
        None,
        None,
        None,
    )
    assert progress.notices_total == 0 and progress.waiting_delta_s == 0.0
    assert progress.staging_path is None and not progress.running
    assert (progress.pages_done, progress.pages_expected, progress.records_done) == (0, None, 0)


def test_stage_of_and_stages_for_a_selection() -> None:
    assert stage_of("invoice_items") == "invoices"
    assert stage_of("attendees") == "appointments"
    assert stage_of("something_new") == "account"
    assert stages_for(("patients",)) == ("account", "patients")
    # Appointments need patients and the clinic set-up.
    assert stages_for(("upcoming_appointments",)) == (
        "account",
        "practitioners",
        "patients",
        "appointments",
    )
    assert stages_for(("no_such_part",)) == ("account",)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "--:--"),
        (0, "00:00"),
        (59.4, "00:59"),
        (754, "12:34"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (37_230, "10:20:30"),
        (-5, "00:00"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
