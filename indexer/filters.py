"""Metadata filters: which sentences a search may return.

A filter is ``key=value``. ``lang``/``language`` match the sentence's language, ``source`` is a
glob over the source path, ``title`` the document title; any other key matches the document's
own metadata (JSONL fields), compared as text. A search takes at most MAX_FILTERS filters of
at most MAX_FILTER_CHARS characters each side.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from indexer.defaults import MAX_FILTER_CHARS, MAX_FILTERS
from indexer.documents import Document, Sentence
from indexer.errors import InvalidRequestError
from indexer.snapshot import Snapshot

Predicate = Callable[[Sentence, Document], bool]


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


def matcher(filters: Mapping[str, str]) -> Predicate:
    """One predicate that holds when every filter does."""
    check_filters(filters)
    checks = [_check(key, value) for key, value in filters.items()]
    return lambda sentence, document: all(check(sentence, document) for check in checks)


def _check(key: str, value: str) -> Predicate:
    if key in ("lang", "language"):
        return lambda p, d: p.language == value
    if key == "source":
        # compiled once per search; fnmatch would cache up to 32,768 patterns, however long
        glob = re.compile(fnmatch.translate(value))
        return lambda p, d: bool(glob.match(d.path) or glob.match(d.id))
    if key == "title":
        return lambda p, d: d.title == value
    return lambda p, d: key in d.metadata and str(d.metadata[key]) == value


def allowed_ids(snapshot: Snapshot, filters: Mapping[str, str]) -> np.ndarray:
    """Ids of the sentences that pass ``filters``, ascending."""
    keep = matcher(filters)
    ids = [
        sid
        for sid, sentence in snapshot.sentences.items()
        if keep(sentence, snapshot.documents[sentence.doc_id])
    ]
    return np.array(sorted(ids), dtype=np.int64)
