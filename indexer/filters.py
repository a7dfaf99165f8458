"""Metadata filters: which sentences a search may return.

A filter is ``key=value``. ``lang``/``language`` match the sentence's language, ``source`` is a
glob over the source path (or the document id), ``title`` the document title; any other key
matches the document's own metadata (JSONL fields, or what a program stored), compared as text.
A search takes at most MAX_FILTERS filters of at most MAX_FILTER_CHARS characters each side.
Document-level filters run as one SQL query per segment; the result is a mask over the
segment's sentences, remembered per segment (segments never change).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np

from indexer.defaults import MAX_FILTER_CHARS, MAX_FILTERS
from indexer.errors import InvalidRequestError
from indexer.segment import Segment

CACHED = 64  # filters remembered per segment


def parse_filters(items: Iterable[str]) -> dict[str, str]:
    """``["lang=de", "source=*.md"]`` -> ``{"lang": "de", "source": "*.md"}``."""
    filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidRequestError(
                f"bad filter {item!r}", "write filters as key=value, e.g. lang=de"
            )
        filters[key.strip()] = value.strip()
    return filters


def check_filters(filters: Mapping[str, str]) -> None:
    """Refuse more than MAX_FILTERS filters, or a key or value over MAX_FILTER_CHARS."""
    if len(filters) > MAX_FILTERS:
        raise InvalidRequestError(
            f"{len(filters)} filters, at most {MAX_FILTERS} are allowed", "use fewer filters"
        )
    for key, value in filters.items():
        if len(key) > MAX_FILTER_CHARS or len(value) > MAX_FILTER_CHARS:
            raise InvalidRequestError(
                f"the filter {key[:40]!r} is longer than {MAX_FILTER_CHARS} characters",
                "shorten the filter: a glob such as source=*.md is enough",
            )


def segment_filter(segment: Segment, filters: Mapping[str, str]) -> np.ndarray:
    """The segment's sentences (live or not) that pass every filter, as a boolean mask."""
    key = json.dumps(sorted(filters.items()))
    cache: OrderedDict[str, np.ndarray] = segment.cache.setdefault("filters", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    mask = np.ones(len(segment), dtype=bool)
    documents = np.ones(segment.info.documents, dtype=bool)
    for name, value in filters.items():
        if name in ("lang", "language"):
            codes = [c for c, lang in enumerate(segment.info.languages) if lang == value]
            mask &= np.isin(segment.sentences["language"], codes)
            continue
        where, parameters = _condition(name, value)
        passing = np.zeros(segment.info.documents, dtype=bool)
        passing[segment.select_documents(where, parameters)] = True
        documents &= passing
    mask &= documents[segment.sentences["doc"]]
    cache[key] = mask
    if len(cache) > CACHED:
        cache.popitem(last=False)
    return mask


def _condition(name: str, value: str) -> tuple[str, list[str]]:
    """An SQL condition over a segment's documents table (see segment.SQL_FUNCTIONS)."""
    if name == "source":
        return "glob_matches(path, ?) OR glob_matches(id, ?)", [value, value]
    if name == "title":
        return "title = ?", [value]
    return "metadata_equals(metadata, ?, ?)", [name, value]
