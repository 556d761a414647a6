"""The engine's narrow interface for user interfaces (the Textual wizard).

A UI needs six things from the engine: check a key, preview the counts, download into a
staging file, browse a staging file, plan a load and apply it. This module is where it gets
them; screens import nothing else from `engine`, `staging` or `target`, so what a screen can do
to a clinic is visible in one place. Every call reports progress through an `EventSink` and
fails with an exception whose `str()` is a message for the operator (some also carry a `hint`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.cliniko import (
    DEFAULT_USER_AGENT,
    ENV_VAR,
    KNOWN_SHARDS,
    ApiKey,
    AuthError,
    BadKey,
    ClinikoClient,
    ClinikoError,
    NetworkError,
    PermissionDenied,
    RateLimiter,
    RegionMismatch,
    SetupError,
    base_url_for,
    check_region,
    parse_key,
    region_label,
)
from engine.events import (
    AnyEvent,
    CountReady,
    EventSink,
    ListProgress,
    LoadProgress,
    Notice,
    RequestStats,
    RunFinished,
    RunStarted,
    discard,
)
from engine.extract import DownloadFailed, DownloadOptions, DownloadResult, download
from engine.load import LoadResult, load
from engine.plan import FieldChange, Plan, PlanItem, plan
from engine.preview import PreviewResult, estimate_requests, preview
from engine.resources import (
    ALL_PARTS,
    PARTS,
    PARTS_BY_NAME,
    Part,
    UnknownSelection,
    close_parts,
    list_variants,
    resources_for,
)
from engine.skip_report import write_skip_report
from engine.spot_check import PatientBalance, SpotChecks, UpcomingAppointment, spot_checks
from engine.verify import Verification
from staging import StagingDB, StagingError, open_staging
from target import TargetError

__all__ = [
    "ALL_PARTS",
    "ENV_VAR",
    "KNOWN_SHARDS",
    "PARTS",
    "PARTS_BY_NAME",
    "Account",
    "AnyEvent",
    "ApiKey",
    "AuthError",
    "BadKey",
    "ClinikoError",
    "CountReady",
    "DownloadFailed",
    "DownloadOptions",
    "DownloadResult",
    "EventSink",
    "FieldChange",
    "ListProgress",
    "LoadProgress",
    "LoadResult",
    "NetworkError",
    "Notice",
    "Part",
    "PatientBalance",
    "PermissionDenied",
    "Plan",
    "PlanItem",
    "PreviewResult",
    "RegionMismatch",
    "RequestStats",
    "RunFinished",
    "RunStarted",
    "SetupError",
    "SpotChecks",
    "StagingDB",
    "StagingError",
    "TargetError",
    "UnknownSelection",
    "UpcomingAppointment",
    "Verification",
    "base_url_for",
    "check_region",
    "close_parts",
    "connect",
    "discard",
    "download",
    "estimate_requests",
    "list_variants",
    "load",
    "open_for_review",
    "parse_key",
    "plan",
    "preview",
    "region_label",
    "resources_for",
    "spot_checks",
    "write_skip_report",
]


@dataclass(frozen=True)
class Account:
    """What the connection check learned: enough to greet the operator, no patient data."""

    name: str | None
    shard: str
    time_zone: str | None


async def connect(
    key: ApiKey,
    *,
    base_url: str,
    rate_limit: tuple[int, float] = (200, 60.0),
    user_agent: str = DEFAULT_USER_AGENT,
    request_timeout: float = 15.0,
) -> Account:
    """Check the key against Cliniko with two requests (`/user`, then `/settings`).

    Raises `AuthError` (401: wrong or revoked key), `PermissionDenied` (403), `NetworkError`
    (unreachable, TLS, timeouts) or another `ClinikoError`, each with a message for the operator.
    """
    limiter = RateLimiter(rate_limit[0], rate_limit[1])
    async with ClinikoClient.create(
        key, base_url=base_url, limiter=limiter, user_agent=user_agent, timeout=request_timeout
    ) as client:
        await client.get("/user")
        try:
            settings = (await client.get("/settings")).data
        except PermissionDenied:
            settings = (await client.get("/settings/public")).data
    account = settings.get("account") if isinstance(settings, dict) else None
    account = account if isinstance(account, dict) else {}
    name = account.get("name")
    tz = account.get("time_zone")
    return Account(
        name=name if isinstance(name, str) else None,
        shard=key.shard,
        time_zone=tz if isinstance(tz, str) else None,
    )


@contextmanager
def open_for_review(path: str | Path) -> Iterator[StagingDB]:
    """A staging file opened read-only for browsing (no key, no network, no writes).

    Raises `StagingError` with a message for the operator when the file is missing, is not a
    staging file, is corrupt or comes from a newer version of the tool.
    """
    staging = open_staging(Path(path), create=False, readonly=True)
    try:
        yield staging
    finally:
        staging.close()


SinkFactory = Callable[[], EventSink]
