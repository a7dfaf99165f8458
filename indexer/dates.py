"""ISO dates as filters compare them: a day as written, or an instant in UTC.

``2024-03-01`` is a day; ``2024-03-01T10:00:00+02:00`` names a day (as written: 2024-03-01) and
an instant (2024-03-01T08:00:00 UTC; a time without an offset is read as UTC). Both come out as
fixed-width text, so that comparing the text compares the dates (SQL does that over a segment's
documents, see segment.SQL_FUNCTIONS).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class When:
    """A date read from text: its day as written, its instant in UTC, and whether it had a
    time (a day alone stands for its midnight, UTC)."""

    day: str  # YYYY-MM-DD
    instant: str  # YYYY-MM-DDTHH:MM:SS.ffffff, UTC
    timed: bool


@functools.lru_cache(maxsize=4096)  # documents share dates; filters read them once per document
def parse_date(text: str) -> When | None:
    """``text`` as an ISO 8601 date or date and time (``YYYY-MM-DD``, then optionally ``T`` or a
    space and a time, optionally an offset or ``Z``), else None."""
    if len(text) > 40 or not _DAY.fullmatch(text[:10]):
        return None
    if len(text) > 10 and text[10] not in "Tt ":
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # no such day or time; or past year 9999 in UTC
        return None
    return When(text[:10], moment.isoformat(timespec="microseconds"), len(text) > 10)


def day_of(text: str | None) -> str | None:
    """The day of an ISO date, as written (None when ``text`` is no ISO date)."""
    when = parse_date(text) if isinstance(text, str) else None
    return when.day if when else None


def instant_of(text: str | None) -> str | None:
    """The UTC instant of an ISO date (a day alone: its midnight), or None."""
    when = parse_date(text) if isinstance(text, str) else None
    return when.instant if when else None
