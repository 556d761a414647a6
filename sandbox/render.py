"""Stored body -> the JSON Cliniko would send, with links built on the caller's base URL.

Bodies keep record links as paths (`"patient": "/patients/12"`, or None when the link is null,
or no key when the link is absent); nested-list links, `links.self` and the JSON type of `id`
are added here, so the same stored row serves any base URL. Per-resource quirks follow the
examples (API-FACTS.md):

- `id` is a JSON string for businesses, active practitioners, appointment types, taxes and
  patient cases; a number elsewhere, including inactive practitioners;
- inactive practitioners have no `label`, `description` or `practitioner_reference_numbers`;
- appointment types carry `archived_at` only when archived;
- patients carry `merged_at`/`merged_with_patient` only when archived; in `/patients/deleted`
  a row is only `deleted_at` and `links.self`;
- referral sources' `links.self` is `/patients/<patient id>/referral_source`; services have no
  `links` at all.

Also the value formats: UTC timestamps with `Z`, money as decimal strings ("50.0").
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from sandbox.catalog import Spec

Body = dict[str, Any]

_MISSING = object()


def ts(ms: int) -> str:
    """Milliseconds since the epoch -> `2016-07-21T03:45:00Z` (whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def money(value: Decimal) -> str:
    """Decimal -> Cliniko's decimal string: "50.0", "81.818", "-12.5"."""
    if value == 0:
        return "0.0"
    text = format(value.normalize(), "f")
    if "." not in text:
        text += ".0"
    return text


def link(base: str, path: str) -> dict[str, Any]:
    return {"links": {"self": base + path}}


def render(spec: Spec, key: int, body: Body, base: str, variant: str | None = None) -> Body:
    """The record as Cliniko sends it. `body` is consumed (modified in place)."""
    name = spec.name
    if name == "patients" and variant == "deleted":
        return {"deleted_at": body["deleted_at"], "links": {"self": f"{base}/patients/{key}"}}
    inactive = bool(body.get("_inactive"))
    for k in spec.private:
        body.pop(k, None)
    if "id" in body and spec.string_id and not inactive:
        body["id"] = str(body["id"])
    for k in spec.refs:
        value = body.get(k, _MISSING)
        if isinstance(value, str):
            body[k] = link(base, value)
    for k in spec.ref_lists:
        body[k] = [link(base, p) for p in body.get(k) or ()]
    for k, template in spec.collections:
        body[k] = link(base, template.format(id=key))
    self_path = spec.link_self(key)
    if self_path is not None:
        body["links"] = {"self": base + self_path}
    if name == "practitioners" and inactive:
        for k in ("label", "description", "practitioner_reference_numbers"):
            body.pop(k, None)
    elif name == "appointment_types":
        if body.get("archived_at") is None:
            body.pop("archived_at", None)
    elif name == "patients" and not body.get("archived_at"):
        body.pop("merged_at", None)
        body.pop("merged_with_patient", None)
    return body


def render_text(spec: Spec, key: int, text: str, base: str, variant: str | None = None) -> Body:
    body: Body = json.loads(text)
    return render(spec, key, body, base, variant)
