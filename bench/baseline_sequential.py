"""Baseline: the plain sequential Cliniko downloader clinics and integrators write.

What a careful in-house script does, with none of our engine's machinery: synchronous httpx,
one request at a time, `per_page=100`, follow `links.next` until it is absent, and sleep so that
request *starts* are at least `window / limit` apart (Cliniko's 200 per minute; the benchmark's
faster clock is 200 per 6 s). A 429 is honoured (`Retry-After`, else a whole window) and the
page retried; a 5xx or a dropped connection is retried a few times with a short back-off.
Every page is written to a plain SQLite file straight away: one table per resource, `(id, raw)`,
`INSERT OR REPLACE` on the record's id, a commit per page.

Also fetched: `/user`, `/settings`, and each practitioner's (active and inactive)
`/practitioners/:id/practitioner_reference_numbers`.

Only the list of paths comes from `engine.resources` (so the baseline covers exactly the lists
our download covers); everything else here is hand-written.

    .venv/bin/python -m bench.baseline_sequential --base-url http://127.0.0.1:8765/v1 \
        --key "$KEY" --out baseline.sqlite
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from engine.resources import RESOURCES, list_variants

USER_AGENT = "clinic-export-script (it@clinic.example)"
PER_PAGE = 100
MAX_RETRIES = 5


@dataclass
class BaselineResult:
    requests: int = 0
    """Requests sent (the client's own count; retries included)."""
    rate_limited: int = 0
    retries: int = 0
    records: int = 0
    """Rows in the SQLite file's list tables (reference numbers included; /user, /settings not)."""
    seconds: float = 0.0
    per_resource: dict[str, int] = field(default_factory=dict)


def record_key(record: dict[str, Any]) -> str:
    """The record's id; else its `links.self` (referral sources); else a hash of its JSON
    (services have neither)."""
    if record.get("id") is not None:
        return str(record["id"])
    self_link = (record.get("links") or {}).get("self")
    if self_link:
        return str(self_link)
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


class SequentialDownloader:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        db_path: Path,
        *,
        limit: int = 200,
        window_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            auth=(api_key, ""),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout_s,
        )
        self.db = sqlite3.connect(db_path)
        self.window_s = window_s
        self.spacing = window_s / limit
        self.last_start = 0.0
        self.result = BaselineResult()

    def close(self) -> None:
        self.client.close()
        self.db.close()

    # ------------------------------------------------------------------ HTTP, one at a time

    def _pace(self) -> None:
        wait = self.last_start + self.spacing - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_start = time.monotonic()

    def get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        attempt = 0
        while True:
            self._pace()
            self.result.requests += 1
            try:
                response = self.client.get(url, params=params)
            except httpx.TransportError:
                if attempt >= MAX_RETRIES:
                    raise
                attempt += 1
                self.result.retries += 1
                time.sleep(min(2.0**attempt, 30.0))
                continue
            if response.status_code == 429:
                self.result.rate_limited += 1
                self.result.retries += 1
                retry_after = response.headers.get("Retry-After")
                try:
                    delay = float(retry_after) if retry_after else self.window_s
                except ValueError:
                    delay = self.window_s
                time.sleep(delay)
                continue
            if response.status_code >= 500 and attempt < MAX_RETRIES:
                attempt += 1
                self.result.retries += 1
                time.sleep(min(2.0**attempt, 30.0))
                continue
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    # ----------------------------------------------------------------------------- storage

    def _table(self, name: str) -> None:
        self.db.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (id TEXT PRIMARY KEY, raw TEXT)')

    def store(self, name: str, records: list[dict[str, Any]]) -> None:
        self._table(name)
        self.db.executemany(
            f'INSERT OR REPLACE INTO "{name}" (id, raw) VALUES (?, ?)',  # noqa: S608
            [(record_key(r), json.dumps(r)) for r in records],
        )
        self.db.commit()

    # ----------------------------------------------------------------------------- crawling

    def fetch_list(self, path: str, key: str, table: str) -> list[dict[str, Any]]:
        """Every page of one list, stored as it arrives; returns the records (for ids)."""
        seen: list[dict[str, Any]] = []
        body = self.get(path, params={"per_page": PER_PAGE})
        while True:
            records = body.get(key) or []
            self.store(table, records)
            seen.extend(records)
            next_url = (body.get("links") or {}).get("next")
            if not next_url:
                return seen
            body = self.get(next_url)

    def run(self) -> BaselineResult:
        began = time.monotonic()
        for single in ("user", "settings"):
            self._table(single)
            body = self.get(f"/{single}")
            self.db.execute(
                f'INSERT OR REPLACE INTO "{single}" (id, raw) VALUES (?, ?)',  # noqa: S608
                (single, json.dumps(body)),
            )
            self.db.commit()
        practitioner_ids: list[str] = []
        for resource, variant in list_variants(RESOURCES):
            records = self.fetch_list(resource.variant_path(variant), resource.name, resource.name)
            if resource.name == "practitioners":
                practitioner_ids += [str(r["id"]) for r in records]
        self._table("practitioner_reference_numbers")
        for pid in practitioner_ids:
            self.fetch_list(
                f"/practitioners/{pid}/practitioner_reference_numbers",
                "practitioner_reference_numbers",
                "practitioner_reference_numbers",
            )
        self.result.seconds = time.monotonic() - began
        tables = [
            row[0]
            for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] not in ("user", "settings")
        ]
        for table in tables:
            (count,) = self.db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()  # noqa: S608
            self.result.per_resource[table] = int(count)
        self.result.records = sum(self.result.per_resource.values())
        return self.result


def download(
    base_url: str, api_key: str, db_path: Path, *, limit: int = 200, window_s: float = 60.0
) -> BaselineResult:
    downloader = SequentialDownloader(base_url, api_key, db_path, limit=limit, window_s=window_s)
    try:
        return downloader.run()
    finally:
        downloader.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", required=True, help="e.g. https://api.au1.cliniko.com/v1")
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", type=Path, required=True, help="SQLite file to write")
    parser.add_argument("--limit", type=int, default=200, help="requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="window, seconds")
    args = parser.parse_args(argv)
    result = download(args.base_url, args.key, args.out, limit=args.limit, window_s=args.window)
    print(json.dumps(result.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
