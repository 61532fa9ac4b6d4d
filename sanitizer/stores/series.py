"""Recurring objects a server's time filter may leave out, found and checked here.

A server that misreads a valid VTIMEZONE (Radicale with RDATE lists) drops the last instance of
an UNTIL series from its time filter; the object then looks one interval shorter and is left out
of the window's answer. So a full read also asks for the ETags of the recurring objects reaching
into the month before the window (daily, weekly, fortnightly and monthly series: a longer
interval is not covered, since a server's time filter over a year costs it four times as much),
fetches those the first answer left out, and keeps the ones whose own expansion reaches the
window. The others ended before it for good (the
window only moves forward): they are remembered with their ETag for the life of the process and
not fetched again until they change, so a daemon pays for each once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.model import Window
from sanitizer.stores.base import RawObject

SERIES_REACH = timedelta(days=32)  # one interval of a monthly series, and a day


class PastSeries:
    """Per calendar: recurring objects found to end before a window, by href, with the ETag
    they had and the start of that window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._past: dict[str, dict[str, tuple[str, datetime]]] = {}

    def unchecked(self, calendar: str, left_out: Sequence[tuple[str, str | None]],
                  start: datetime) -> list[str]:
        """The left-out hrefs to fetch: all but those known to end before an earlier window
        and unchanged since; what is no longer left out is forgotten."""
        with self._lock:
            known = self._past.get(calendar, {})
            self._past[calendar] = kept = {h: known[h] for h, _ in left_out if h in known}
        return [href for href, etag in left_out
                if not (etag and href in kept and kept[href][0] == etag
                        and kept[href][1] <= start)]

    def note_past(self, calendar: str, objects: Sequence[RawObject], start: datetime) -> None:
        """Remember objects (with an ETag) that end before the window starting at `start`."""
        with self._lock:
            past = self._past.setdefault(calendar, {})
            past.update({o.href: (o.etag, start) for o in objects if o.etag})


PAST = PastSeries()


def reaching(objects: Sequence[RawObject], window: Window) -> list[RawObject]:
    """The objects with an instance in the window (already widened for any zone: expanded in
    UTC); one that cannot be read is kept, for the engine to skip and count."""
    found = []
    for obj in objects:
        try:
            if expand_object(obj.data, window, UTC, fallback_uid=obj.href):
                found.append(obj)
        except SkipObject:
            found.append(obj)
    return found
