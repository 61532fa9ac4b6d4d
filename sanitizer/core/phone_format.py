"""The phone calendar's format: write a SanitizedEvent as iCalendar, read one back.

Writing is done line by line from the allowlist, not through a component tree, so nothing can be
added by accident and the bytes are the same every cycle. Reading parses what the target holds back
into a SanitizedEvent so that changes are decided on content, never on bytes or ETags: servers
re-serialize, reorder and add PRODID or DTSTAMP.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import icalendar

from sanitizer.core.identity import is_owned
from sanitizer.core.model import Label, LabelOrigin, SanitizedEvent, Status, Transparency, When

PRODID = "-//calendar-sanitizer//calendar-sanitizer//EN"
DTSTAMP = "20000101T000000Z"  # constant: a timestamp would change the bytes every cycle
ALARM_TEXT = "Reminder"

# Properties a server may add to what we PUT, and that say nothing about content.
SERVER_ADDED = frozenset({"PRODID", "DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE"})
# An entry to which both were added (on the phone) is a meeting, a scheduling object resource
# (RFC 6638 section 3.1): a server that schedules mails its attendees when it is changed or
# deleted, so it is left alone, like a foreign object, whoever made it. Attendees without an
# organizer schedule nothing, and are rewritten away like any other addition.
SCHEDULING = frozenset({"ATTENDEE", "ORGANIZER"})
WRITTEN = frozenset({"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "LOCATION", "STATUS",
                     "TRANSP", "CLASS"})


def _escape(text: str) -> str:
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes "?"
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _fold(line: str) -> str:
    """Fold at 75 octets without splitting a UTF-8 sequence (RFC 5545 3.1)."""
    out: list[str] = []
    current = ""
    size = 0
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > 75:
            out.append(current)
            current, size = " ", 1
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def _when(name: str, value: When) -> str:
    if isinstance(value, datetime):
        return f"{name}:{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};VALUE=DATE:{value:%Y%m%d}"


def _trigger(before: timedelta) -> str:
    seconds = int(before.total_seconds())
    return f"TRIGGER:-PT{seconds // 60}M" if seconds % 60 == 0 else f"TRIGGER:-PT{seconds}S"


def serialize(event: SanitizedEvent) -> bytes:
    """One VCALENDAR with one VEVENT, holding only allowlisted properties."""
    if not isinstance(event, SanitizedEvent):
        raise TypeError("only a SanitizedEvent can be written to a phone calendar")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             "BEGIN:VEVENT", f"UID:{event.uid}", f"DTSTAMP:{DTSTAMP}",
             _when("DTSTART", event.start)]
    if event.end != event.start:  # RFC 5545: DTEND must be later; a moment has none
        lines.append(_when("DTEND", event.end))
    lines.append(f"SUMMARY:{_escape(event.title.text)}")
    if event.location is not None:
        lines.append(f"LOCATION:{_escape(event.location.text)}")
    lines += [f"STATUS:{event.status.value}", f"TRANSP:{event.transparency.value}",
              "CLASS:PRIVATE"]
    if event.alarm is not None:
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{ALARM_TEXT}",
                  _trigger(event.alarm), "END:VALARM"]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(_fold(line) for line in lines).encode("utf-8")


@dataclass(frozen=True)
class ReadBack:
    """What a target object holds, as far as ownership and change detection need."""

    uid: str | None
    event: SanitizedEvent | None
    extra: bool


def read_back(data: bytes) -> ReadBack:
    """Parse a target object. Foreign or unreadable objects give no event; nothing is logged."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calendar = icalendar.Calendar.from_ical(data)
        events = [c for c in calendar.walk("VEVENT")]
    except Exception:  # noqa: BLE001 - any parse failure means "not ours to interpret"
        return ReadBack(None, None, False)
    if any({str(name).upper() for name in c} >= SCHEDULING for c in events):
        return ReadBack(None, None, False)  # a meeting now: see `SCHEDULING`
    if len(events) != 1:
        uid = str(events[0].get("UID", "")) if events else None
        return ReadBack(uid if is_owned(uid) else None, None, True)
    component = events[0]
    uid = str(component.get("UID", ""))
    if not is_owned(uid):
        return ReadBack(uid or None, None, False)
    try:
        event = _event_from(component, uid)
    except Exception:  # noqa: BLE001 - an owned object we cannot read is rewritten
        return ReadBack(uid, None, True)
    extra = _has_extra(calendar, component, event)
    return ReadBack(uid, event, extra)


def _event_from(component: icalendar.Component, uid: str) -> SanitizedEvent:
    start = _read_when(_dt(component.get("DTSTART")))
    end = _read_when(_dt(component.get("DTEND"))) if "DTEND" in component else start
    location = component.get("LOCATION")
    alarms = [a for a in component.subcomponents if a.name == "VALARM"]
    alarm = None
    if len(alarms) == 1 and "TRIGGER" in alarms[0]:
        trigger = _dt(alarms[0].get("TRIGGER"))
        alarm = -trigger if isinstance(trigger, timedelta) else None
    # Read titles back with the origin they were written with; equality is on text.
    title = Label(str(component.get("SUMMARY", "")) or "?", LabelOrigin.CONFIG)
    return SanitizedEvent(
        uid=uid, start=start, end=end, title=title,
        location=Label(str(location)) if location else None,
        status=Status(str(component.get("STATUS", "CONFIRMED")).upper()),
        transparency=Transparency(str(component.get("TRANSP", "OPAQUE")).upper()),
        alarm=alarm,
    )


def _dt(prop: object) -> object:
    """The parsed value of a date, date-time or duration property (None if it has none)."""
    return getattr(prop, "dt", None)


def _read_when(value: object) -> When:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("floating time in an owned event")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return value
    raise ValueError("not a date")


def _has_extra(calendar: icalendar.Calendar, component: icalendar.Component,
               event: SanitizedEvent) -> bool:
    """True if the object carries anything we would not write (an edit on the phone, say)."""
    names = {name.upper() for name in component} - SERVER_ADDED
    if names - WRITTEN:
        return True
    if str(component.get("CLASS", "PRIVATE")).upper() != "PRIVATE":
        return True
    subs = [c.name for c in component.subcomponents]
    if subs not in ([], ["VALARM"]) or (subs and event.alarm is None):
        return True
    if subs:
        alarm = component.subcomponents[0]
        if ({k.upper() for k in alarm} != {"ACTION", "DESCRIPTION", "TRIGGER"}
                or str(alarm.get("DESCRIPTION")) != ALARM_TEXT
                or str(alarm.get("ACTION")).upper() != "DISPLAY"):
            return True
    return any(c.name not in ("VEVENT", "VTIMEZONE") for c in calendar.subcomponents)
