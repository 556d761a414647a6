"""Ids and link objects (API-FACTS.md sections 6 and 7).

Ids arrive as JSON numbers or strings, up to 64 bits: they are normalised to canonical decimal
text and never pass through float. A reference is a nested `{"links": {"self": url}}` object;
only the URL's path is read, because example hosts vary (api.cliniko.com, cliniko.dev:3000,
.test, plain http) and some paths carry a `/v1/internal/` prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_ID = 2**63 - 1
"""Ids are stored as SQLite INTEGER (signed 64-bit)."""

_DIGITS_RE = re.compile(r"^[0-9]{1,20}$")

# A record link: /v1/<collection>/<id>, optionally below /v1/internal/ and optionally nested
# under parents (/v1/patient_forms/1/signatures/2 -> signatures 2).
_RECORD_RE = re.compile(r"^/v1/(?:internal/)?(?:[a-z_]+/[0-9]+/)*(?P<coll>[a-z_]+)/(?P<id>[0-9]+)$")
# Referral sources have no id of their own: they are keyed by their patient.
_REFERRAL_RE = re.compile(r"^/v1/(?:internal/)?patients/(?P<id>[0-9]+)/referral_source$")
REFERRAL_SOURCES = "referral_sources"


def norm_id(v: object) -> str:
    """An id (int or decimal string) as canonical decimal text; ValueError for anything else.

    Rejected: bools, floats (precision is already lost), negatives, signs, spaces, non-ASCII
    digits, and values beyond signed 64 bits.
    """
    if isinstance(v, bool):
        raise ValueError("an id cannot be a boolean")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str):
        if not _DIGITS_RE.match(v):
            raise ValueError(f"not a decimal id: {v[:40]!r}")
        n = int(v)
    else:
        raise ValueError(f"an id must be an integer or a decimal string, not {type(v).__name__}")
    if n < 0 or n > MAX_ID:
        raise ValueError(f"id out of range: {n}")
    return str(n)


def _self_url(obj: object) -> str | None:
    if not isinstance(obj, Mapping):
        return None
    links = obj.get("links")
    if not isinstance(links, Mapping):
        return None
    url = links.get("self")
    return url if isinstance(url, str) and url else None


def _parse(obj: object) -> tuple[str, str] | None:
    url = _self_url(obj)
    if url is None:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    if len(path) > 1:
        path = path.rstrip("/")
    m = _REFERRAL_RE.match(path)
    coll = REFERRAL_SOURCES if m else None
    if m is None:
        m = _RECORD_RE.match(path)
        if m is None:
            return None
        coll = m["coll"]
    try:
        return str(coll), norm_id(m["id"])
    except ValueError:
        return None


def link_id(obj: object) -> str | None:
    """The id a `{"links": {"self": url}}` record link points at; None for anything else.

    None for a missing or null link, a malformed one, and a collection link such as
    `/patients/1/invoices?page=1`. `/patients/<pid>/referral_source` gives the patient id.
    """
    parsed = _parse(obj)
    return None if parsed is None else parsed[1]


def link_collection(obj: object) -> str | None:
    """The collection a record link points into ("patients", "referral_sources"), else None."""
    parsed = _parse(obj)
    return None if parsed is None else parsed[0]


def record_id(record: Mapping[str, object]) -> str:
    """A record's own id: its `id` field, else the id in its `links.self`; else ValueError."""
    raw = record.get("id")
    if raw is not None and raw != "":
        return norm_id(raw)
    found = link_id(record)
    if found is None:
        raise ValueError("record has neither an id nor a record self link")
    return found
