"""The preview: what the clinic holds, at one request per list.

Each list is asked for one row (`per_page=1`) and its `total_entries` read; that is the whole
cost. From the counts follow the download's request budget and, at the rate limit, its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.cliniko import (
    DEFAULT_USER_AGENT,
    ApiKey,
    ClientRequestError,
    ClinikoClient,
    PermissionDenied,
    RateLimiter,
    RetryPolicy,
)
from engine.crawl import PER_PAGE, total_entries
from engine.events import CountReady, EventSink, discard
from engine.resources import ALL_PARTS, BY_NAME, list_variants, resources_for


@dataclass
class PreviewResult:
    account_name: str | None
    shard: str
    time_zone: str | None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    requests_used: int = 0
    estimated_requests: int = 0
    estimated_minutes: float = 0.0
    rate_per_minute: float = 200.0

    def to_json(self) -> dict[str, Any]:
        return {
            "account_name": self.account_name,
            "shard": self.shard,
            "time_zone": self.time_zone,
            "counts": [
                {"resource": r, "variant": v, "count": n} for (r, v), n in self.counts.items()
            ],
            "errors": [
                {"resource": r, "variant": v, "error": e} for (r, v), e in self.errors.items()
            ],
            "requests_used": self.requests_used,
            "estimated_requests": self.estimated_requests,
            "estimated_minutes": round(self.estimated_minutes, 1),
            "rate_per_minute": self.rate_per_minute,
        }


def estimate_requests(counts: dict[tuple[str, str], int], practitioners: int = 0) -> int:
    """Pages of every list (at least one each), one request per practitioner for its reference
    numbers (Cliniko has no global list of those), plus /user and /settings."""
    pages = sum(max(1, math.ceil(n / PER_PAGE)) for n in counts.values())
    return pages + practitioners + 2


async def preview(
    key: ApiKey,
    *,
    base_url: str,
    selection: tuple[str, ...] = ALL_PARTS,
    rate_limit: tuple[int, float] = (200, 60.0),
    user_agent: str = DEFAULT_USER_AGENT,
    request_timeout: float = 30.0,
    retry: RetryPolicy | None = None,
    sink: EventSink = discard,
) -> PreviewResult:
    limiter = RateLimiter(rate_limit[0], rate_limit[1])
    async with ClinikoClient.create(
        key,
        base_url=base_url,
        limiter=limiter,
        user_agent=user_agent,
        timeout=request_timeout,
        retry=retry,
    ) as client:
        await client.get("/user")  # the connection check: a bad key stops here
        try:
            settings = (await client.get("/settings")).data
        except PermissionDenied:
            settings = (await client.get("/settings/public")).data
        account = settings.get("account")
        account = account if isinstance(account, dict) else {}
        name = account.get("name")
        tz = account.get("time_zone")
        result = PreviewResult(
            account_name=name if isinstance(name, str) else None,
            shard=key.shard,
            time_zone=tz if isinstance(tz, str) else None,
            rate_per_minute=rate_limit[0] * 60.0 / rate_limit[1],
        )
        lists = list_variants(resources_for(selection))

        async def count(resource: str, variant: str, path: str) -> None:
            try:
                page = await client.get(path, [("per_page", "1")])
                n = total_entries(page.data, resource)
            except ClientRequestError as exc:
                result.errors[(resource, variant)] = str(exc)
                sink(CountReady(resource=resource, variant=variant, count=None, error=str(exc)))
                return
            result.counts[(resource, variant)] = n
            sink(CountReady(resource=resource, variant=variant, count=n))

        async with anyio.create_task_group() as tg:
            for resource, variant in lists:
                tg.start_soon(count, resource.name, variant, resource.variant_path(variant))
        # Keep the catalogue's order, whatever order the answers came in.
        order: dict[tuple[str, str], int] = {(r.name, v): i for i, (r, v) in enumerate(lists)}
        result.counts = dict(sorted(result.counts.items(), key=lambda kv: order[kv[0]]))
        nested = [r for r in resources_for(selection) if r.per_parent]
        practitioners = 0
        for resource in nested:
            parent = BY_NAME[resource.per_parent or ""]
            practitioners += sum(n for (r, _v), n in result.counts.items() if r == parent.name)
        result.requests_used = client.stats.requests_sent
        result.estimated_requests = estimate_requests(result.counts, practitioners)
        result.estimated_minutes = result.estimated_requests / result.rate_per_minute
        return result
