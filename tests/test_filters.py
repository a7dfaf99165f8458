"""Filters with operators, against a brute-force oracle: random documents with random metadata
(strings, numbers, dates, booleans, missing keys), random nested filters with every operator,
and the sentences each lets through compared with a plain Python evaluation."""

from __future__ import annotations

import fnmatch
import operator
import random
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.documents import Document, make_document
from indexer.errors import InvalidRequestError
from indexer.filters import parse_filter, parse_filters
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.service import SearchService
from indexer.snapshot import SegmentCache, Snapshot
from tests.helpers import stored

KEYS = ["team", "year", "score", "flag", "date", "mixed"]
STRINGS = ["a", "b", "Ops", "ops", "2024", "2.5", "true", "False", "not a date", "2024-13-01"]
NUMBERS: list[Any] = [0, 1, 2, 2024, -5, 2.5, 2.0, 1000.0]
BOOLEANS = [True, False]
DATES = [
    "2023-12-31",
    "2024-01-01",
    "2024-01-01T23:30:00-02:00",
    "2024-01-02T01:00:00",
    "2024-06-15T08:00:00Z",
    "2024-06-15",
]
ODD: list[Any] = [[1, 2], {"x": 1}, None]
MODIFIED = [
    "2023-12-31T23:59:59+00:00",
    "2024-01-01T00:00:00+00:00",
    "2024-01-01T12:00:00+00:00",
    "2024-03-01T08:30:00+00:00",
    "2024-06-15T08:00:00+00:00",
    "",  # a document that came without a time
]
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


# -- the oracle: the documented semantics, written plainly ---------------------------------------


def holds(where: dict[str, Any], document: Document, language: str) -> bool:
    for key, value in where.items():
        if key == "$and":
            passed = all(holds(w, document, language) for w in value)
        elif key == "$or":
            passed = any(holds(w, document, language) for w in value)
        else:
            ops = value if isinstance(value, dict) else {"$eq": value}
            passed = all(compare(key, op, v, document, language) for op, v in ops.items())
        if not passed:
            return False
    return True


def compare(field: str, op: str, operand: Any, document: Document, language: str) -> bool:
    if op == "$ne":
        return not compare(field, "$eq", operand, document, language)
    if op == "$nin":
        return not compare(field, "$in", operand, document, language)
    if op == "$in":
        return any(compare(field, "$eq", v, document, language) for v in operand)
    if field in ("lang", "language"):
        return language == operand
    if field == "source":
        return fnmatch.fnmatch(document.path, operand) or fnmatch.fnmatch(document.id, operand)
    if field == "title":
        return document.title == operand
    if field == "modified":
        return compare_dates(op, document.modified, operand)
    if field not in document.metadata:
        return False
    value = document.metadata[field]
    if op == "$eq":
        return equal(value, operand)
    if isinstance(operand, str):
        return isinstance(value, str) and compare_dates(op, value, operand)
    return is_number(value) and OPERATORS[op](value, operand)


def equal(value: Any, operand: Any) -> bool:
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if is_number(operand):
        return is_number(value) and value == operand
    if isinstance(value, str):
        return bool(value == operand)
    if isinstance(value, bool):
        return bool(operand.lower() == ("true" if value else "false"))
    if is_number(value):
        return JSON_NUMBER.fullmatch(operand) is not None and float(operand) == value
    return False


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare_dates(op: str, value: str, operand: str) -> bool:
    """A day alone compares days as written; with a time, instants (UTC when naive)."""
    stored = as_datetime(value)
    if stored is None:
        return False
    compare_with = OPERATORS.get(op, operator.eq)
    if len(operand) == 10:
        return compare_with(date.fromisoformat(value[:10]), date.fromisoformat(operand))
    wanted = as_datetime(operand)
    assert wanted is not None
    return compare_with(stored, wanted)


def as_datetime(text: str) -> datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([Tt ].*)?", text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- random documents and filters ------------------------------------------------------------------


def random_value(rng: random.Random) -> Any:
    pool = rng.choice([STRINGS, NUMBERS, BOOLEANS, DATES, DATES, ODD])
    return rng.choice(pool)


def random_document(rng: random.Random, number: int) -> Document:
    german = rng.random() < 0.5
    word = rng.choice(["Fluss", "Stadt", "Brücke"] if german else ["river", "city", "bridge"])
    article = "Der" if german else "The"
    # short paragraphs: each sentence has its document's language
    paragraphs = [f"{article} {word} {number} {p}." for p in range(rng.randint(1, 2))]
    metadata = {key: random_value(rng) for key in KEYS if rng.random() < 0.7}
    metadata["source"] = f"notes/{number:02d}.{rng.choice(['md', 'txt'])}"
    document = make_document(
        f"doc-{number:02d}",
        "\n\n".join(paragraphs),
        title=f"Titel {number % 3}",
        language="de" if german else "en",
        metadata=metadata,
    )
    return replace(document, modified=rng.choice(MODIFIED))


def random_operand(rng: random.Random, field: str, op: str) -> Any:
    if field in ("lang", "language"):
        pool: list[Any] = ["de", "en", "fr"]
    elif field == "source":
        pool = ["notes/0*", "*.md", "notes/1?.txt", "*", "nothing*"]
    elif field == "title":
        pool = ["Titel 0", "Titel 1", "Titel 2", "x"]
    elif field == "modified":
        pool = [*DATES, "2024-03-01", "2024-03-01T08:30:00+00:00", "2023-12-31T23:59:59"]
    elif op in OPERATORS:
        pool = rng.choice([NUMBERS, DATES])
    else:
        pool = rng.choice([STRINGS, NUMBERS, BOOLEANS, DATES])
    if op in ("$in", "$nin"):
        return rng.sample(pool, rng.randint(1, min(3, len(pool))))
    return rng.choice(pool)


def random_condition(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["lang", "source", "title", "modified", *KEYS, *KEYS, "absent"])
    text_only = field in ("lang", "language", "source", "title")
    ops = ["$eq", "$ne", "$in", "$nin"] + ([] if text_only else list(OPERATORS))
    chosen = rng.sample(ops, rng.choice([1, 1, 1, 2]))
    if chosen == ["$eq"] and rng.random() < 0.5:
        return {field: random_operand(rng, field, "$eq")}  # the plain form
    return {field: {op: random_operand(rng, field, op) for op in chosen}}


def random_filter(rng: random.Random, depth: int = 1) -> dict[str, Any]:
    """A random filter within the limits (16 conditions, 32 values, $and/$or 4 deep)."""
    while True:
        where = _random_filter(rng, depth)
        conditions, values = size(where)
        if conditions <= 16 and values <= 32:
            return where


def _random_filter(rng: random.Random, depth: int) -> dict[str, Any]:
    if depth <= 4 and rng.random() < 0.5:
        parts = [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        return {rng.choice(["$and", "$or"]): parts}
    where: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 2])):  # several keys in one object: all must hold
        where.update(random_condition(rng))
    return where


def size(where: dict[str, Any]) -> tuple[int, int]:
    """Conditions and values of a filter."""
    conditions = values = 0
    for key, value in where.items():
        if key in ("$and", "$or"):
            for part in value:
                more = size(part)
                conditions, values = conditions + more[0], values + more[1]
            continue
        for operand in value.values() if isinstance(value, dict) else [value]:
            conditions += 1
            values += len(operand) if isinstance(operand, list) else 1
    return conditions, values


# -- the test --------------------------------------------------------------------------------------


def _collection(folder: Path, rng: random.Random) -> tuple[SearchService, dict[str, Document]]:
    """40 documents reached through several writes: segments, replacements, deletions."""
    service = SearchService(folder, HashingEmbedder(64), SearchOptions(ann_threshold=0))
    final = {d.id: d for d in (random_document(rng, n) for n in range(40))}
    ids = list(final)
    for begin in range(0, 40, 10):
        service.upsert([random_document(rng, int(i[4:])) for i in ids[begin : begin + 3]])
        service.upsert([final[i] for i in ids[begin : begin + 10]])
    service.upsert([random_document(rng, 90)])
    service.delete(["doc-90"])
    assert len(service.info().segments) > 1
    return service, final


def _allowed(snapshot: Snapshot, where: dict[str, Any]) -> set[tuple[str, int]]:
    found = set()
    for part, mask in zip(snapshot.parts, snapshot.allowed(where), strict=True):
        for row in np.flatnonzero(mask).tolist():
            s = part.segment.sentences[row]
            doc_id = part.segment.document_ids([int(s["doc"])])[int(s["doc"])]
            found.add((doc_id, int(s["start"])))
    return found


def test_filters_agree_with_a_brute_force_oracle(tmp_path: Path) -> None:
    rng = random.Random(17)
    service, documents = _collection(tmp_path / "c", rng)
    sentences = [s.sentence for s in stored(service.index_dir)]
    assert len(sentences) == sum(len(d.text.split("\n\n")) for d in documents.values())
    snapshot = Snapshot.open(service.index_dir, SegmentCache())  # its masks are cached
    seen_ops: set[str] = set()
    nonempty = 0
    for number in range(400):
        where = random_filter(rng)
        seen_ops |= set(re.findall(r"\$[a-z]+", repr(where)))
        expected = [s for s in sentences if holds(where, documents[s.doc_id], s.language)]
        assert _allowed(snapshot, where) == {(s.doc_id, s.start) for s in expected}, where
        nonempty += 0 < len(expected) < len(sentences)
        if number % 20 == 0:  # and through a whole search: every allowed paragraph, no other
            results = service.search("Fluss river Stadt city", k=100, mode="dense", filters=where)
            paragraphs = {(s.doc_id, s.paragraph) for s in expected}
            assert {(r.document_id, r.paragraph) for r in results.results} == paragraphs
    assert seen_ops >= {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or"}
    assert nonempty > 200  # most filters let some sentences through and stop others


def test_the_written_forms(tmp_path: Path) -> None:
    assert parse_filters(["lang=de"]) == {"lang": "de"}
    assert parse_filters(["modified>=2024-01-01", "team!=ops", "year<2020", "x<=2.5", "y>a=b"]) == {
        "$and": [
            {"modified": {"$gte": "2024-01-01"}},
            {"team": {"$ne": "ops"}},
            {"year": {"$lt": 2020}},
            {"x": {"$lte": 2.5}},
            {"y": {"$gt": "a=b"}},
        ]
    }
    assert parse_filters(["title=a>b", " source = *.md "]) == {
        "$and": [{"title": "a>b"}, {"source": "*.md"}]
    }
    assert parse_filters([]) == {}
    for bad in ("nonsense", "=x", ">=2024"):
        with pytest.raises(InvalidRequestError, match="bad filter"):
            parse_filters([bad])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"team": {"$like": "a"}}, "unknown filter operator '$like'"),
        ({"$not": {"team": "a"}}, "unknown filter operator '$not'"),
        ({"$and": {"team": "a"}}, "$and takes a non-empty list"),
        ({"$or": []}, "$or takes a non-empty list"),
        ({"$and": [{}]}, "must be a non-empty object"),
        ({"team": {}}, "no operator"),
        ({"team": {"$in": []}}, "non-empty list of values"),
        ({"team": {"$in": "a"}}, "non-empty list of values"),
        ({"team": None}, "takes a string, number or boolean"),
        ({"team": [1, 2]}, "takes a string, number or boolean"),
        ({"team": {"$gt": "abc"}}, "compares numbers and ISO dates, not 'abc'"),
        ({"team": {"$gt": True}}, "compares numbers and ISO dates"),
        ({"modified": {"$gte": "last week"}}, "compares ISO dates, not 'last week'"),
        ({"modified": 2024}, "compares ISO dates"),
        ({"lang": {"$gt": "de"}}, "lang takes $eq, $ne, $in and $nin"),
        ({"title": 5}, "compares text"),
        ({"x": float("nan")}, "finite number"),
        ({"x": "y" * 201}, "longer than 200 characters"),
        ({f"k{i}": i for i in range(17)}, "at most 16 filters"),
        ({"team": {"$in": list(range(33))}}, "at most 32 filter values"),
        ({"$and": [{"$or": [{"$and": [{"$or": [{"$and": [{"a": 1}]}]}]}]}]}, "at most 4 levels"),
    ],
)
def test_bad_filters_are_refused_naming_the_problem(where: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_filter(where)
    assert message in caught.value.message


def test_dates_compare_as_dates(tmp_path: Path) -> None:
    service = SearchService(tmp_path / "c", HashingEmbedder(64))
    days = {"jan": "2024-01-31T23:30:00+00:00", "feb": "2024-02-01T00:30:00+00:00"}
    service.upsert(
        [
            replace(make_document(name, f"Notiz {name}.", language="de"), modified=when)
            for name, when in days.items()
        ]
    )

    def found(where: dict[str, Any]) -> list[str]:
        return sorted(r.document_id for r in service.search("Notiz", k=10, filters=where).results)

    assert found({"modified": "2024-01-31"}) == ["jan"]  # a day: that whole day
    assert found({"modified": {"$lte": "2024-01-31"}}) == ["jan"]
    assert found({"modified": {"$gte": "2024-02-01"}}) == ["feb"]
    # with a time: instants, and an offset counts
    assert found({"modified": {"$gt": "2024-02-01T01:00:00+01:00"}}) == ["feb"]
    assert found({"modified": {"$lt": "2024-02-01T00:00:00Z"}}) == ["jan"]
    assert found({"modified": {"$nin": ["2024-01-31", "2024-02-01"]}}) == []
