"""The ingest benchmark stays runnable (its speed is measured by `make bench`, not here)."""

from __future__ import annotations

import pytest

from bench import staging_ingest


def test_the_ingest_benchmark_runs() -> None:
    if not any((d / "patients__list.json").is_file() for d in staging_ingest.EXAMPLE_DIRS):
        pytest.skip("no Cliniko example payloads on this machine")
    result = staging_ingest.run(3_000, batch_pages=5)
    assert result.records == 3_000
    assert result.quarantined == 0
    assert result.records_per_second > 0
    assert result.peak_rss_mb > 0
