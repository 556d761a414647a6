"""Reading values out of a raw Cliniko record, defensively.

Cliniko's JSON varies (API-FACTS.md sections 6 and 11): ids are numbers or strings, empty is
`""` or `null` or an absent key, money is a decimal string. Each reader returns a clean Python
value or raises `Malformed` naming the field (never its value). The mapping functions let
`Malformed` propagate; `guarded` turns it into a `Skip`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any

from engine.mapping.records import Kind, MapResult, Skip
from engine.mapping.staged import StagedRow

Raw = Mapping[str, Any]


class Malformed(Exception):
    """A field of a raw record cannot be read. The message names the field, not the value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- ids and links -------------------------------------------------------------------------

_ID_RE = re.compile(r"^[0-9]{1,20}$")
_LINK_RE = re.compile(r"^/v1/(?:internal/)?[a-z_]+/(?P<id>[0-9]+)$")


def canonical_id(value: object, field: str = "id") -> str:
    """A Cliniko id (JSON number or string) as canonical decimal text."""
    if isinstance(value, bool):
        raise Malformed(field, "is not an id")
    if isinstance(value, int):
        if value < 0:
            raise Malformed(field, "is not an id")
        return str(value)
    if isinstance(value, str) and _ID_RE.match(value.strip()):
        return str(int(value.strip()))
    raise Malformed(field, "is not an id")


def optional_id(value: object, field: str) -> str | None:
    if _missing(value):
        return None
    return canonical_id(value, field)


def link_id(raw: Raw, key: str) -> str | None:
    """The id at the end of a record link `{"links": {"self": ".../<coll>/<id>"}}`."""
    obj = raw.get(key)
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise Malformed(key, "is not a link object")
    links = obj.get("links")
    if not isinstance(links, Mapping):
        raise Malformed(key, "is not a link object")
    url = links.get("self")
    if _missing(url):
        return None
    if not isinstance(url, str):
        raise Malformed(key, "link is not text")
    path = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", url).split("?", 1)[0].rstrip("/")
    m = _LINK_RE.match(path)
    if m is None:
        raise Malformed(key, "link does not point to a record")
    return str(int(m.group("id")))


def ref_id(row: StagedRow, name: str) -> str | None:
    """A linked record's id: from the staged refs when staging recovered it, else the link."""
    refs = row.refs if isinstance(row.refs, Mapping) else {}
    if name in refs:
        return optional_id(refs[name], name)
    raw = row.raw if isinstance(row.raw, Mapping) else {}
    return link_id(raw, name)


# --- scalars -------------------------------------------------------------------------------


def text(raw: Raw, key: str) -> str | None:
    """Optional text: `""`, blanks and null -> None; outer blanks trimmed, line endings
    made `\n`. Numbers are accepted as text (ids, invoice numbers)."""
    value = raw.get(key)
    if value.__class__ is str:  # the common case first: this runs for most fields
        if "\r" in value:
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool):
        raise Malformed(key, "is not text")
    if isinstance(value, (int, Decimal)):
        return str(value)
    if not isinstance(value, str):
        raise Malformed(key, "is not text")
    return text({key: str(value)}, key)  # a str subclass


def flag(raw: Raw, key: str, default: bool | None = None) -> bool | None:
    """Optional boolean: absent, null or `""` -> default."""
    value = raw.get(key)
    if _missing(value):
        return default
    if isinstance(value, bool):
        return value
    raise Malformed(key, "is not true/false")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""A whole number outside this range fits no clinic store's integer column (SQLite and
PostgreSQL both stop at 64 bits): the record is malformed, not a crash of the load."""
DECIMAL_LIMIT = Decimal(10) ** 9
DECIMAL_PLACES = 6
"""The clinic store keeps decimals below DECIMAL_LIMIT in magnitude with at most
DECIMAL_PLACES places (`target.schema`, held equal by the tests): a value outside is refused
here, so the plan skips the record with a reason instead of the load meeting a refusal
(which a rerun would plan as a write again)."""
_MICRO = Decimal(1).scaleb(-DECIMAL_PLACES)


def integer(raw: Raw, key: str) -> int | None:
    value = raw.get(key)
    if _missing(value):
        return None
    if isinstance(value, bool):
        raise Malformed(key, "is not a whole number")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise Malformed(key, "is out of range")
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value.strip())
    raise Malformed(key, "is not a whole number")


def decimal(raw: Raw, key: str) -> Decimal | None:
    """Money, rates, quantities: decimal strings (or ints), never via float."""
    value = raw.get(key)
    if _missing(value):
        return None
    if isinstance(value, bool):
        raise Malformed(key, "is not a number")
    if isinstance(value, int):
        return storable_decimal(key, Decimal(value))
    if isinstance(value, float):
        # JSON numbers with a fraction: take the shortest repr, not the binary expansion.
        value = repr(value)
    if not isinstance(value, str):
        raise Malformed(key, "is not a number")
    try:
        result = Decimal(value.strip())
    except InvalidOperation:
        raise Malformed(key, "is not a number") from None
    if not result.is_finite():
        raise Malformed(key, "is not a finite number")
    return storable_decimal(key, result)


def storable_decimal(key: str, value: Decimal) -> Decimal:
    """`value`, if the clinic store can keep it exactly; else `Malformed`."""
    if abs(value) >= DECIMAL_LIMIT:
        raise Malformed(key, "is out of range")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_PLACES and value != value.quantize(_MICRO):
        raise Malformed(key, f"has more than {DECIMAL_PLACES} decimal places")
    return value


def calendar_date(raw: Raw, key: str) -> date | None:
    value = raw.get(key)
    if _missing(value):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise Malformed(key, "is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Malformed(key, "is not a valid date") from None


_DATETIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")


def timestamp(raw: Raw, key: str) -> datetime | None:
    """A UTC timestamp (`2016-07-21T03:45:00Z`) as an aware UTC datetime.

    Cliniko documents every timestamp as UTC with `Z`; one without an offset is read as UTC.
    """
    value = raw.get(key)
    if _missing(value):
        return None
    if not isinstance(value, str) or not _DATETIME_RE.match(value.strip()):
        raise Malformed(key, "is not a timestamp")
    cleaned = value.strip()
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise Malformed(key, "is not a valid timestamp") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Malformed(key, "is out of range") from None


def required(value: Any, key: str) -> Any:
    if value is None:
        raise Malformed(key, "is missing")
    return value


# --- state ---------------------------------------------------------------------------------


def variants_of(row: StagedRow) -> frozenset[str]:
    v = row.variants
    if isinstance(v, (frozenset, set, tuple, list)):
        return frozenset(x for x in v if isinstance(x, str))
    return frozenset()


def is_deleted(row: StagedRow, raw: Raw) -> bool:
    """Deleted by any sign: the staged state, the list it came from, or `deleted_at`."""
    if row.state == "deleted" or "deleted" in variants_of(row):
        return True
    return not _missing(raw.get("deleted_at"))


def deleted_skip(kind: Kind, source_id: str, what: str, detail: str = "") -> Skip:
    reason = f"the {what} was deleted in Cliniko" + (f" ({detail})" if detail else "")
    return Skip(kind, source_id, "deleted_in_cliniko", reason)


# --- guarding ------------------------------------------------------------------------------


def safe_source_id(row: object) -> str:
    raw_id = getattr(row, "id", None)
    try:
        return canonical_id(raw_id)
    except Malformed:
        return raw_id if isinstance(raw_id, str) else ""


MapFunction = Callable[[StagedRow, Any], MapResult]


def guarded(kind: Kind) -> Callable[[MapFunction], MapFunction]:
    """Make a mapping function total: `Malformed` and anything unexpected become a Skip.

    The reason names the field (for `Malformed`) or the error's type, never a value.
    """

    def wrap(fn: MapFunction) -> MapFunction:
        @wraps(fn)
        def mapped(row: StagedRow, ctx: Any) -> MapResult:
            try:
                raw = getattr(row, "raw", None)
                if raw.__class__ is not dict and not isinstance(raw, Mapping):
                    raise Malformed("raw", "the record is not a JSON object")
                return fn(row, ctx)
            except Malformed as exc:
                return Skip(kind, safe_source_id(row), "malformed_record", str(exc))
            except Exception as exc:  # a mapping never raises on bad data
                reason = f"could not be read ({type(exc).__name__})"
                return Skip(kind, safe_source_id(row), "malformed_record", reason)

        return mapped

    return wrap
