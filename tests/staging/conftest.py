"""Fixtures for the staging file tests: real files in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from staging import StagingDB, open_staging


@pytest.fixture
def staging_path(tmp_path: Path) -> Path:
    return tmp_path / "clinic.staging"


@pytest.fixture
def staging(staging_path: Path) -> Iterator[StagingDB]:
    db = open_staging(staging_path, create=True)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def run_id(staging: StagingDB) -> int:
    return staging.start_run(mode="full", selection=["patients", "appointment_history"])
