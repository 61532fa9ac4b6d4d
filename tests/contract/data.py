"""What the contract tests put into calendars: a fixed window, work events around it, and the
phone entries the sanitizer writes.

Dates are fixed (2030), never the machine's: no server here filters by "now", so the suite runs
the same under `make test-shifted`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar

from sanitizer.core.identity import target_uid
from sanitizer.core.model import Label, SanitizedEvent, Window
from sanitizer.core.phone_format import serialize
from sanitizer.stores.base import RawObject
from tests.support.core_builders import KEY, ics

__all__ = ["WINDOW", "entry", "fields", "summary_of", "weekly", "work_event"]

WINDOW = Window(datetime(2030, 3, 4, tzinfo=UTC), datetime(2030, 3, 18, tzinfo=UTC))


def work_event(name: str, start: datetime, minutes: int = 60, summary: str = "Jane Doe") -> bytes:
    """A timed work event whose UID is `name` (core_builders.ics)."""
    return ics(name, start, minutes, summary)


def weekly(name: str, first: datetime, count: int, summary: str = "Supervision") -> bytes:
    """A weekly series of `count` one-hour instances from `first`."""
    return ics(name, first, 60, summary, extra=f"RRULE:FREQ=WEEKLY;COUNT={count}\r\n")


def entry(name: str, start: datetime, minutes: int = 60, title: str = "Appointment") -> bytes:
    """A phone entry exactly as the sanitizer writes one: its own format, an owned UID."""
    uid = target_uid(KEY, "contract", name, "")
    return serialize(SanitizedEvent(uid=uid, start=start,
                                    end=start + timedelta(minutes=minutes), title=Label(title)))


def fields(data: bytes) -> dict[str, Any]:
    """What the sanitizer writes and reads back, parsed (servers re-serialize: never bytes)."""
    events = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert len(events) == 1, f"expected one VEVENT, found {len(events)}"
    event = events[0]
    return {"UID": str(event["UID"]), "DTSTART": event.decoded("DTSTART"),
            "DTEND": event.decoded("DTEND"), "SUMMARY": str(event["SUMMARY"])}


def summary_of(obj: RawObject) -> str | None:
    """A source object's title: from its iCalendar data, or from the instance a store that
    expands series itself (Graph) mapped."""
    if obj.instances is not None:
        return obj.instances[0].summary if obj.instances else None
    events = icalendar.Calendar.from_ical(obj.data).walk("VEVENT")
    return str(events[0]["SUMMARY"]) if events else None
