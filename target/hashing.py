"""Stable hashes of rows, so a rerun can tell what changed (pure; no I/O).

`row_hash` hashes a canonical JSON of the row: keys sorted, no whitespace, and each value in
one canonical form, so that a row hashes the same before it is written and after it is read
back from the clinic store:

  Decimal, int, float   numerically equal values hash alike ("81.80" == 81.8 == "81.800");
                        integral values as JSON integers, others as the shortest exact number
  datetime              must be timezone-aware; hashed as UTC, microsecond precision
  date                  ISO 8601
  tuple / list          JSON arrays (a tuple written to a JSON column reads back as a list)
  Mapping               JSON objects with sorted keys
  str, bool, None       themselves

A key that is absent and a key whose value is None hash differently: hash the same field set
on both sides (the mapped fields, `ignore` for bookkeeping columns such as `updated_at`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""How the clinic store writes a UTC timestamp: fixed width, so text order is time order."""


def format_timestamp(value: datetime) -> str:
    """`value` (timezone-aware) as UTC text in TIMESTAMP_FORMAT."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: clinic timestamps must be timezone-aware")
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _number(value: Decimal) -> int | float | str:
    if not value.is_finite():
        raise ValueError("cannot hash a non-finite decimal")
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return format(value.normalize(), "f")


def canonical(value: Any) -> Any:
    """`value` as plain JSON-able data in its canonical form (see the module docstring)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is Decimal:
        return _number(value)
    if kind is datetime:
        return format_timestamp(value)
    if kind is date:
        return value.isoformat()
    if kind is float:
        return _number(Decimal(repr(value)))
    if kind is list or kind is tuple:
        return [canonical(v) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cannot hash a mapping key of type {type(k).__name__}")
            out[k] = canonical(v)
        return out
    # Subclasses of the plain types (IntEnum, StrEnum and the like) hash as their value.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return "" + value
    raise TypeError(f"cannot hash a value of type {kind.__name__}")


def canonical_json(row: Mapping[str, Any], *, ignore: Collection[str] = ()) -> str:
    """The canonical JSON text of `row` without the keys in `ignore`."""
    data = {k: canonical(v) for k, v in row.items() if k not in ignore}
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def row_hash(row: Mapping[str, Any], *, ignore: Collection[str] = ()) -> str:
    """A stable 32-hex-digit hash of `row` (BLAKE2b-128 of its canonical JSON)."""
    text = canonical_json(row, ignore=ignore)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
