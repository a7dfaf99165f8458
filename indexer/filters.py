"""Search filters: which sentences a search may return, in the style of Chroma's ``where``.

A filter is a JSON object. ``{"team": "geo"}`` holds when the field equals the value; an object
of operators compares it (``{"modified": {"$gte": "2024-01-01"}}``, ``{"team": {"$in": ["a",
"b"]}}``; several operators must all hold); ``{"$and": [...]}`` and ``{"$or": [...]}`` combine
filters, nested; several keys in one object must all hold. The command line and GET write
``key=value``, ``key!=value``, ``key>=value`` (also ``>``, ``<``, ``<=``).

Fields: ``lang``/``language`` (the sentence's language), ``source`` (a glob over the source path
or the document id), ``title``, ``modified`` (the file's modification time) and any other key of
the document's metadata. Comparisons, as Chroma documents them (docs.trychroma.com, "Where
filters"), with findling's two additions, text that spells a value and dates:

- ``$eq``/``$ne``/``$in``/``$nin`` compare strings (case-sensitive), numbers (``2`` equals
  ``2.0``) and booleans, each with its own kind only. A string also matches a number or boolean
  it spells (``"2024"`` matches 2024, ``"true"`` true): the command line and GET send only text,
  and ``year=2024`` has always matched the number.
- ``$gt``/``$gte``/``$lt``/``$lte`` compare numbers with numbers and ISO dates with values that
  are ISO dates: a day alone (``2024-01-31``) compares the day as written, a date with a time the
  instant (UTC when it names no offset). Any other pair does not match; a range with other text
  is refused.
- A document without the key (or holding a list, an object or null there) matches no operator
  but ``$ne`` and ``$nin``, which are exactly "not ``$eq``" and "not ``$in``" (Chroma since
  0.5.12).
- ``modified`` compares as a date under every operator; ``lang``, ``source`` and ``title`` take
  text and ``$eq``, ``$ne``, ``$in``, ``$nin`` only.

A search takes at most MAX_FILTERS conditions (a field compared by one operator) holding at most
MAX_FILTER_VALUES values (each of an ``$in`` list counts), strings of at most MAX_FILTER_CHARS
characters, ``$and``/``$or`` nested at most MAX_FILTER_DEPTH levels. Filters are evaluated over
columns: the part about documents as one SQL condition over a segment's documents table, the part
about languages with numpy over the sentence column; masks are remembered per segment (segments
never change).
"""

from __future__ import annotations

import functools
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.dates import parse_date
from indexer.defaults import MAX_FILTER_CHARS, MAX_FILTER_DEPTH, MAX_FILTER_VALUES, MAX_FILTERS
from indexer.errors import InvalidRequestError
from indexer.segment import Segment

CACHED = 64  # filters remembered per segment

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
NEGATED = ("$ne", "$nin")
LANGUAGE_FIELDS = ("lang", "language")
TEXT_FIELDS = (*LANGUAGE_FIELDS, "source", "title")
HINT = (
    'e.g. {"lang": "de"}, {"modified": {"$gte": "2024-01-01"}} or '
    '{"$or": [{"team": "a"}, {"year": {"$lt": 2020}}]}; operators: ' + ", ".join(OPERATORS)
)
# the command line and GET: key=value, key!=value, key>=value, ...; the leftmost operator counts
_WRITTEN = re.compile(r"!=|>=|<=|=|>|<")
_WRITTEN_OPERATORS = {"=": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")  # as JSON writes numbers
_INT64 = 2**63
_AS_WRITTEN = "'????-??-??T??:??:??+00:00'"  # how findling writes `modified`

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    """A field compared by one operator with one value (``$in``/``$nin``: one or more)."""

    field: str
    operator: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Combined:
    """Filters that must all hold (``$and``) or of which one must hold (``$or``)."""

    operator: str
    parts: tuple[Condition | Combined, ...]


Filter = Condition | Combined


def parse_filters(items: Iterable[str]) -> dict[str, Any]:
    """``["lang=de", "modified>=2024-01-01"]`` as one filter object (all must hold).

    ``=`` and ``!=`` take the value as text; ``>``, ``>=``, ``<`` and ``<=`` a number when it
    reads as one, else text (which must then be an ISO date).
    """
    conditions: list[dict[str, Any]] = []
    for item in items:
        found = _WRITTEN.search(item)
        key = item[: found.start()].strip() if found else ""
        if found is None or not key:
            raise InvalidRequestError(
                f"bad filter {item[:100]!r}",
                "write filters as key=value (also !=, >, >=, <, <=), "
                "e.g. lang=de or modified>=2024-01-01",
            )
        operator, text = _WRITTEN_OPERATORS[found.group()], item[found.end() :].strip()
        value: Scalar = text if operator in ("$eq", "$ne") else _number(text) or text
        conditions.append({key: value if operator == "$eq" else {operator: value}})
    if len(conditions) > 1:
        return {"$and": conditions}
    return conditions[0] if conditions else {}


def parse_filter(where: Mapping[str, Any] | None) -> Filter | None:
    """A filter object as a checked tree (None for no filter at all).

    Raises:
        InvalidRequestError: naming what is wrong (an unknown operator, a value of the wrong
            kind, a limit passed); limits are checked while reading, so a huge filter costs
            little to refuse.
    """
    if not where:
        return None
    return _object(where, _Budget(), 1)


def check_filters(where: Mapping[str, Any] | None) -> None:
    """Refuse a bad filter (see :func:`parse_filter`)."""
    parse_filter(where)


class _Budget:
    """What a filter has used of its limits so far."""

    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def spend(self, values: int) -> None:
        self.conditions += 1
        self.values += values
        if self.conditions > MAX_FILTERS:
            raise InvalidRequestError(
                f"at most {MAX_FILTERS} filters are allowed in one search (a filter is one "
                "field compared by one operator)",
                "use fewer filters: $in takes a list of values",
            )
        if self.values > MAX_FILTER_VALUES:
            raise InvalidRequestError(
                f"at most {MAX_FILTER_VALUES} filter values are allowed in one search (each "
                "value of an $in or $nin list counts)",
                "use fewer values",
            )


def _object(where: Any, budget: _Budget, depth: int) -> Filter:
    if not isinstance(where, Mapping) or not where:
        raise InvalidRequestError(f"a filter must be a non-empty object, not {_show(where)}", HINT)
    parts: list[Filter] = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            parts.append(_combined(key, value, budget, depth))
        elif not isinstance(key, str) or key.startswith("$"):
            raise InvalidRequestError(f"unknown filter operator {_show(key)}", HINT)
        else:
            parts += _conditions(key, value, budget)
    return parts[0] if len(parts) == 1 else Combined("$and", tuple(parts))


def _combined(operator: str, value: Any, budget: _Budget, depth: int) -> Combined:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidRequestError(
            f"filters nest $and/$or at most {MAX_FILTER_DEPTH} levels deep", "flatten the filter"
        )
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"{operator} takes a non-empty list of filters", HINT)
    return Combined(operator, tuple(_object(part, budget, depth + 1) for part in value))


def _conditions(field: str, value: Any, budget: _Budget) -> list[Condition]:
    _check_length(field)
    if not isinstance(value, Mapping):
        return [_condition(field, "$eq", value, budget)]
    if not value:
        raise InvalidRequestError(f"no operator for the filter on {field[:40]!r}", HINT)
    return [_condition(field, operator, operand, budget) for operator, operand in value.items()]


def _condition(field: str, operator: Any, operand: Any, budget: _Budget) -> Condition:
    if operator not in OPERATORS:
        raise InvalidRequestError(
            f"unknown filter operator {_show(operator)} on {field[:40]!r}", HINT
        )
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise InvalidRequestError(
                f"{operator} on {field[:40]!r} takes a non-empty list of values", HINT
            )
        budget.spend(len(operand))
        return Condition(field, operator, tuple(_operand(field, operator, v) for v in operand))
    budget.spend(1)
    return Condition(field, operator, (_operand(field, operator, operand),))


def _operand(field: str, operator: str, value: Any) -> Scalar:
    """A value checked for what its field and operator compare."""
    name = f"{field[:40]!r} {operator}"
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(f"{name} takes a finite number, not {value}")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        value = float(value) if abs(value) < 10**300 else math.inf
        if math.isinf(value):
            raise InvalidRequestError(f"{name} takes a number of at most 300 digits")
    if not isinstance(value, str | int | float):
        raise InvalidRequestError(f"{name} takes a string, number or boolean, not {_show(value)}")
    if isinstance(value, str):
        _check_length(value)
    if field in TEXT_FIELDS:
        if operator in RANGES:
            raise InvalidRequestError(
                f"{field} takes $eq, $ne, $in and $nin, not {operator}", "compare it as text"
            )
        if not isinstance(value, str):
            raise InvalidRequestError(f"{name} compares text, not {_show(value)}")
    elif field == "modified" or (operator in RANGES and not _is_number(value)):
        _check_date(name, value, "ISO dates" if field == "modified" else "numbers and ISO dates")
    return value


def _check_date(name: str, value: Scalar, compares: str) -> None:
    if not isinstance(value, str) or parse_date(value) is None:
        raise InvalidRequestError(
            f"{name} compares {compares}, not {_show(value)}",
            "write a date as 2024-01-31, or with a time as 2024-01-31T12:00:00Z",
        )


def _check_length(text: str) -> None:
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidRequestError(
            f"the filter {text[:40]!r} is longer than {MAX_FILTER_CHARS} characters",
            "shorten the filter: a glob such as source=*.md is enough",
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(text: str) -> int | float | None:
    """The number ``text`` spells in JSON's notation, else None."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    number: int | float = int(text) if not (match.group(1) or match.group(2)) else float(text)
    if isinstance(number, int) and not -_INT64 <= number < _INT64:
        number = float(text)  # what SQLite can compare; a filter holds at most 200 digits
    return number if math.isfinite(number) else None


def _show(value: Any) -> str:
    return repr(value)[:60] if not isinstance(value, dict | list) else type(value).__name__


# -- evaluating a filter on a segment ----------------------------------------------------------


def segment_filter(segment: Segment, where: Filter) -> np.ndarray:
    """The segment's sentences (live or not) that pass ``where``, as a boolean mask."""
    key = repr(where)  # not the tree itself: as dict keys 1, 1.0 and True are one
    cache: OrderedDict[str, np.ndarray] = segment.cache.setdefault("filters", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    mask = _mask(segment, where)
    cache[key] = mask
    if len(cache) > CACHED:
        cache.popitem(last=False)
    return mask


def _mask(segment: Segment, node: Filter) -> np.ndarray:
    if _on_documents(node):
        documents = np.zeros(segment.info.documents, dtype=bool)
        documents[segment.select_documents(*_sql(node))] = True
        return documents[segment.sentences["doc"]]
    if isinstance(node, Condition):
        languages = [c for c, lang in enumerate(segment.info.languages) if lang in node.values]
        found = np.isin(segment.sentences["language"], languages)
        return ~found if node.operator in NEGATED else found
    # the parts about documents become one SQL condition; the others are combined with numpy
    on_documents = tuple(p for p in node.parts if _on_documents(p))
    masks = [_mask(segment, p) for p in node.parts if not _on_documents(p)]
    if on_documents:
        masks.append(_mask(segment, Combined(node.operator, on_documents)))
    combine = np.logical_and if node.operator == "$and" else np.logical_or
    return functools.reduce(combine, masks)


def _on_documents(node: Filter) -> bool:
    if isinstance(node, Condition):
        return node.field not in LANGUAGE_FIELDS
    return all(_on_documents(p) for p in node.parts)


def _sql(node: Filter) -> tuple[str, list[Any]]:
    """An SQL condition over a segment's documents table (see segment.SQL_FUNCTIONS); every
    condition is 0 or 1, never NULL, so that NOT, AND and OR mean what they say."""
    if isinstance(node, Combined):
        parts = [_sql(p) for p in node.parts]
        joined = (" AND " if node.operator == "$and" else " OR ").join(s for s, _ in parts)
        return f"({joined})", [p for _, params in parts for p in params]
    if node.operator in RANGES:
        sql, params = _compare(node.field, RANGES[node.operator], node.values[0])
    else:
        each = [_compare(node.field, "=", value) for value in node.values]
        sql, params = " OR ".join(s for s, _ in each), [p for _, ps in each for p in ps]
    sql = f"COALESCE(({sql}), 0)"
    return (f"NOT {sql}" if node.operator in NEGATED else sql), params


def _compare(field: str, op: str, value: Scalar) -> tuple[str, list[Any]]:
    """``field op value`` as SQL: ``op`` is ``=`` for $eq, $in (and, negated, $ne, $nin)."""
    if field == "source":
        return "glob_matches(path, ?) OR glob_matches(id, ?)", [value, value]
    if field == "title":
        return "title = ?", [value]
    if field == "modified":
        return _date("modified", op, str(value))
    # a metadata field: the document's top-level key, whatever its name (json_each, not a path)
    if isinstance(value, str) and op != "=":
        typed, params = _date("value", op, value)
        typed = f"type = 'text' AND {typed}"
    elif isinstance(value, bool):
        typed, params = f"type = '{'true' if value else 'false'}'", []
    elif isinstance(value, int | float):
        typed, params = f"type IN ('integer', 'real') AND value {op} ?", [value]
    else:
        typed, params = _spelled(value)
    # metadata stored before it was checked may hold NaN, which is no JSON to SQLite
    return (
        "CASE WHEN json_valid(metadata) THEN EXISTS (SELECT 1 FROM json_each(metadata) "
        f"WHERE key = ? AND ({typed})) ELSE 0 END",
        [field, *params],
    )


def _date(column: str, op: str, value: str) -> tuple[str, list[Any]]:
    when = parse_date(value)
    assert when is not None  # checked when the filter was read
    if column == "modified":
        # findling writes it in one shape (isoformat in UTC, to the second): read in SQL, which
        # is ten times faster than calling Python for every document
        written = f"CASE WHEN modified GLOB {_AS_WRITTEN} THEN "
        if when.timed:
            instant = "substr(modified, 1, 19) || '.000000' ELSE filter_instant(modified) END"
            return f"({written}{instant}) {op} ?", [when.instant]
        day = "substr(modified, 1, 10) ELSE filter_day(modified) END"
        return f"({written}{day}) {op} ?", [when.day]
    if when.timed:
        return f"filter_instant({column}) {op} ?", [when.instant]
    return f"filter_day({column}) {op} ?", [when.day]


def _spelled(text: str) -> tuple[str, list[Any]]:
    """Equality with a string: the string itself, or a number or boolean it spells."""
    sql = "type = 'text' AND value = ?"
    params: list[Any] = [text]
    number = _number(text)
    if number is not None:
        sql += " OR type IN ('integer', 'real') AND value = ?"
        params.append(number)
    if text.lower() in ("true", "false"):
        sql += f" OR type = '{text.lower()}'"
    return sql, params
