"""`q[]` filters and `sort`/`order` -> SQL, typed as the documentation types them.

Filters (API-FACTS.md section 4) are `FIELD:OPERATORVALUE`; each field has a type and each type
its operators:

- Date `=` `>=` `>` `<=` `<`, value `YYYY-MM-DD`; `=` takes `*` wildcards (`****-05-**`);
- DateTime `>=` `>` `<=` `<` (no `=`), value ISO-8601 in UTC (`2014-08-30T18:00:00Z`; an
  offset is converted to UTC, a bare date means midnight UTC);
- Integer (and BigInt) `=` `!=` `>=` `>` `<=` `<`; `=` also takes a list (`1,2,3`);
- String `=` `!=` (exact), `~` (contains) and `~~` (`%` wildcards), both case-insensitive for
  ASCII letters (SQLite LIKE).

`id` is String-typed for businesses, practitioners, appointment types and treatment notes (and
every treatment-note filter but the timestamps is String), so `id:>X` there is refused, as
Cliniko documents it. An unknown field, a wrong operator or a bad value raises `QueryError`
with a message saying what is allowed. Several filters are ANDed.

Sorting: `sort` is a comma list of sortable columns (the filterable ones plus `id`,
`created_at`, `updated_at`), each optionally `col:asc`/`col:desc`; `order` (asc|desc) applies
to columns without their own direction; the default is `created_at` ascending; ties are always
broken by `id` ascending, so paging is stable. Ids sort numerically.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sandbox.catalog import OPERATORS, TYPE_LABELS, Spec


class QueryError(ValueError):
    """A bad filter, sort, order or page: the server answers 400 with the message."""


_OP_RE = re.compile(r"(~~|>=|<=|!=|=|>|<|~)")
_INT_RE = re.compile(r"-?\d+")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WILD_DATE_RE = re.compile(r"[\d*]{4}-[\d*]{2}-[\d*]{2}")
_INT64 = (1 << 63) - 1

Clause = tuple[str, list[Any]]


class Where(NamedTuple):
    sql: str
    params: list[Any]
    indexable: tuple[str, ...]
    """Filtered columns an index can serve (equality or range, not the key), in order."""


def parse_filter(spec: Spec, raw: str) -> Clause:
    field, sep, rest = raw.partition(":")
    if not sep or not field:
        raise QueryError(f"filter {raw!r} is not of the form FIELD:OPERATORVALUE")
    ftype = spec.filters.get(field)
    if ftype is None:
        allowed = ", ".join(sorted(spec.filters)) or "none"
        raise QueryError(
            f"unknown filter field {field!r} for {spec.name}; filterable fields: {allowed}"
        )
    m = _OP_RE.match(rest)
    if m is None:
        raise QueryError(
            f"filter {raw!r} has no operator; {field} ({TYPE_LABELS[ftype]}) takes "
            f"{' '.join(OPERATORS[ftype])}"
        )
    op = m.group(1)
    value = rest[m.end() :]
    if op not in OPERATORS[ftype]:
        raise QueryError(
            f"operator {op!r} is not allowed on {field} of {spec.name}: it is a "
            f"{TYPE_LABELS[ftype]} filter, whose operators are {' '.join(OPERATORS[ftype])}"
        )
    if ftype == "int":
        return _int_clause(field, op, value)
    if ftype == "datetime":
        return _datetime_clause(field, op, value)
    if ftype == "date":
        return _date_clause(field, op, value)
    return _str_clause(spec, field, op, value)


def _int(field: str, text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise QueryError(f"{field} is an Integer filter; {text!r} is not an integer")
    value = int(text)
    if abs(value) > _INT64:
        raise QueryError(f"{field}: {text} is out of range for a 64-bit integer")
    return value


def _int_clause(field: str, op: str, value: str) -> Clause:
    if op == "=" and "," in value:
        values = [_int(field, v) for v in value.split(",")]
        return f"{field} IN ({', '.join('?' for _ in values)})", list(values)
    return f"{field} {op} ?", [_int(field, value)]


def _utc_text(field: str, value: str) -> tuple[str, bool]:
    """-> (`YYYY-MM-DDTHH:MM:SSZ`, had a fraction of a second)."""
    text = value.strip()
    if not text:
        raise QueryError(f"{field} is a DateTime filter and needs a value")
    try:
        if _DATE_RE.fullmatch(text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise QueryError(
            f"{field} is a DateTime filter; {value!r} is not an ISO-8601 UTC time "
            f"such as 2014-08-30T18:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), bool(moment.microsecond)


def _datetime_clause(field: str, op: str, value: str) -> Clause:
    text, fraction = _utc_text(field, value)
    if fraction:
        # Stored times are whole seconds: t >= 18:00:00.5 <=> t > 18:00:00, t < 18:00:00.5
        # <=> t <= 18:00:00 (the text above is the time truncated to the second).
        op = {">=": ">", ">": ">", "<": "<=", "<=": "<="}[op]
    return f"{field} {op} ?", [text]


def _date_clause(field: str, op: str, value: str) -> Clause:
    if op == "=" and "*" in value:
        if not _WILD_DATE_RE.fullmatch(value):
            raise QueryError(
                f"{field} is a Date filter; {value!r} is not YYYY-MM-DD with optional * "
                f"wildcards such as ****-05-**"
            )
        return f"{field} LIKE ?", [value.replace("*", "_")]
    if not _DATE_RE.fullmatch(value):
        raise QueryError(f"{field} is a Date filter; {value!r} is not a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise QueryError(f"{field}: {value!r} is not a valid date") from None
    return f"{field} {op} ?", [value]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _str_clause(spec: Spec, field: str, op: str, value: str) -> Clause:
    column = field
    if field == spec.key:
        # The key is an INTEGER column; a String-typed id compares as its decimal text.
        if op in ("=", "!="):
            canonical = _INT_RE.fullmatch(value) is not None and str(int(value)) == value
            if not canonical or abs(int(value)) > _INT64:
                return ("0" if op == "=" else "1"), []
            return f"{field} {op} ?", [int(value)]
        column = f"CAST({field} AS TEXT)"
    if op == "~":
        return f"{column} LIKE ? ESCAPE '\\'", [f"%{_like_escape(value)}%"]
    if op == "~~":
        return f"{column} LIKE ?", [value]
    return f"{column} {op} ?", [value]


_INDEXABLE_RE = re.compile(r"^(\w+) (=|>=|>|<=|<|IN) ")


def where(spec: Spec, variant: str, filters: list[str]) -> Where:
    predicate = spec.variants[variant]
    parts: list[str] = [predicate] if predicate else []
    params: list[Any] = []
    indexable: list[str] = []
    for raw in filters:
        sql, values = parse_filter(spec, raw)
        parts.append(sql)
        params.extend(values)
        m = _INDEXABLE_RE.match(sql)
        if m and m.group(1) != spec.key and m.group(1) not in indexable:
            indexable.append(m.group(1))
    return Where(" AND ".join(parts) if parts else "1", params, tuple(indexable))


def order_by(spec: Spec, sort: str | None, order: str | None) -> str:
    default_dir = "ASC"
    if order is not None and order != "":
        if order.lower() not in ("asc", "desc"):
            raise QueryError(f"order must be asc or desc, not {order!r}")
        default_dir = order.upper()
    sortable = spec.sortable()
    columns: list[tuple[str, str]] = []
    if sort:
        for item in sort.split(","):
            col, sep, direction = item.strip().partition(":")
            if not col:
                raise QueryError(f"sort {sort!r} has an empty column")
            if col not in sortable:
                allowed = ", ".join(sorted(sortable)) or "none"
                raise QueryError(f"cannot sort {spec.name} by {col!r}; sortable columns: {allowed}")
            if sep and direction.lower() not in ("asc", "desc"):
                raise QueryError(f"sort direction must be asc or desc, not {direction!r}")
            columns.append((col, direction.upper() if sep else default_dir))
    else:
        columns = [(c, default_dir) for c in spec.default_sort()]
    if not any(c == spec.key for c, _ in columns):
        columns.append((spec.key, "ASC"))
    return ", ".join(f"{c} {d}" for c, d in columns)
