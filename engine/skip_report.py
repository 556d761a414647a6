"""The skipped-items report: one CSV row per record a plan (or a load) did not bring over.

Columns: kind, cliniko_id, reason_code, reason. The reasons are the planner's and the
mapping's plain words, which name fields and ids, never a patient's data. The file is created
0600 like every other file the tool writes next to health records.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.load import LoadResult
    from engine.plan import Plan

COLUMNS = ("kind", "cliniko_id", "reason_code", "reason")


def write_skip_report(plan_or_result: Plan | LoadResult, path: str | os.PathLike[str]) -> int:
    """Write the CSV; returns how many rows it has. A load's report includes the rows the
    clinic store refused during the load."""
    from engine.plan import Plan

    the_plan = plan_or_result if isinstance(plan_or_result, Plan) else plan_or_result.plan
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    count = 0
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for item in the_plan.skipped():
            writer.writerow(
                [item.kind, item.source_id, item.skip_code or "", item.skip_reason or ""]
            )
            count += 1
    return count


__all__ = ["COLUMNS", "write_skip_report"]
