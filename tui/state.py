"""What the wizard knows as the operator walks through it: held in memory only.

The API key lives here, as a `SecretStr` inside `ApiKey`, for as long as the app runs; nothing
in this module writes it anywhere. Everything else here is ids, counts and engine results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from engine.api import (
    ALL_PARTS,
    Account,
    ApiKey,
    DownloadResult,
    LoadResult,
    Plan,
    PreviewResult,
)

DEFAULT_STAGING = Path("cliniko-staging.sqlite")
DEFAULT_TARGET = "sqlite:///clinic.db"


@dataclass(frozen=True)
class WizardConfig:
    """How the app was started (command-line options, or the demo's sandbox)."""

    api_url: str | None = None
    """Overrides the shard's base URL (the sandbox in the demo and in tests)."""
    rate_limit: tuple[int, float] = (200, 60.0)
    staging_path: Path = DEFAULT_STAGING
    target_url: str = DEFAULT_TARGET
    region: str | None = None
    """Pre-selected region (else taken from the key's suffix)."""
    parallel: int = 16
    demo: bool = False
    """Started by `cliniko-switch demo`: the key is the sandbox's and is filled in."""
    demo_key: str | None = None
    review_only: Path | None = None
    """`cliniko-switch review FILE`: browse this staging file offline, no key, no wizard."""
    crash_log: Path = Path("cliniko-switch-crash.log")
    clock: Callable[[], float] = time.monotonic
    """The clock progress bars and ETAs read; snapshot tests freeze it."""
    animate: bool = True
    """Snapshot tests turn cursor blink and animations off."""
    freeze_gc: bool | None = None
    """Freeze the collector's view at each step (None: only in a real terminal)."""
    now: datetime | None = None
    """A fixed "now" for planning and the spot-check dates (tests); None: the real time."""


@dataclass
class WizardState:
    key: ApiKey | None = None
    base_url: str | None = None
    account: Account | None = None
    preview: PreviewResult | None = None
    selection: tuple[str, ...] = ALL_PARTS
    staging_path: Path = DEFAULT_STAGING
    target_url: str = DEFAULT_TARGET
    download: DownloadResult | None = None
    download_error: str | None = None
    plan: Plan | None = None
    load: LoadResult | None = None
    skipped_csv: Path | None = None
    skipped_rows: int = 0
    notices: list[str] = field(default_factory=list)

    def forget_key(self) -> None:
        """Drop the key once no run needs it (the summary, or leaving the wizard)."""
        self.key = None
