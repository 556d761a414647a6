"""The staging file: everything Cliniko said, raw and queryable, between download and load.

One SQLite file (DESIGN.md section 4): a table per resource of `engine.resources`, plus
`_runs`, `_checkpoints`, `_quarantine` and `_meta`. It never holds the API key, and this
package never imports the UI.

    with open_staging(path, create=True) as staging:
        run_id = staging.start_run(mode="full", selection=["patients"], shard="au1")
        writer = staging.writer(run_id)
        writer.write_page(BY_NAME["patients"], "active", records, ("crawl", state_json, False))
        staging.finish_run(run_id, "complete", RunCounters(requests=12, records=1100))
"""

from staging.db import StagingDB, lock_path, open_staging, tool_version
from staging.errors import (
    CorruptStaging,
    NewerSchema,
    NotAStagingFile,
    OlderSchema,
    StagingError,
    StagingLocked,
    StagingMissing,
    StagingWriteError,
)
from staging.quarantine import QuarantineRow
from staging.review import REF_TARGETS, Anomaly, ResourceCount, StagedRow
from staging.runs import Outcome, RunCounters, RunInfo, RunMode, SavedCheckpoint
from staging.schema import SCHEMA_VERSION
from staging.writer import (
    Checkpoint,
    CheckpointLike,
    Page,
    PageWriter,
    WriteResult,
    canonical_id,
)

__all__ = [
    "REF_TARGETS",
    "SCHEMA_VERSION",
    "Anomaly",
    "Checkpoint",
    "CheckpointLike",
    "CorruptStaging",
    "NewerSchema",
    "NotAStagingFile",
    "OlderSchema",
    "Outcome",
    "Page",
    "PageWriter",
    "QuarantineRow",
    "ResourceCount",
    "RunCounters",
    "RunInfo",
    "RunMode",
    "SavedCheckpoint",
    "StagedRow",
    "StagingDB",
    "StagingError",
    "StagingLocked",
    "StagingMissing",
    "StagingWriteError",
    "WriteResult",
    "canonical_id",
    "lock_path",
    "open_staging",
    "tool_version",
]
