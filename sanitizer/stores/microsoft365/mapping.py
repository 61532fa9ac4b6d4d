"""Graph event JSON <-> the core's types, pure and strict.

Source side: only the fields the rules and the phone entry need are read; every value is checked
for type, length and range, and an unknown enum value skips the event with a reason code (less on
the phone, never more). Of the organizer only the mail domain is kept, for `agency_domains`.
Target side: a SanitizedEvent becomes the JSON of a private entry with no body and no attendees,
and a marked entry read back becomes the SanitizedEvent it stands for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sanitizer.core.expand import SkipObject
from sanitizer.core.identity import is_owned
from sanitizer.core.model import Instance, Label, SanitizedEvent, Status, Transparency, When
from sanitizer.core.rules import mail_domain

MAX_ID = 512
MAX_SUBJECT = 2000
MAX_CATEGORIES = 50
MAX_CATEGORY = 255
MAX_ADDRESS = 320  # RFC 5321: 64 + 1 + 255
MAX_REMINDER_MINUTES = 4 * 7 * 24 * 60
YEARS = (1970, 2200)
_ID = re.compile(r"[A-Za-z0-9+/=_-]{1,512}")  # full matches only: `$` allows a trailing \n
_SURROGATE = re.compile("[\ud800-\udfff]")
_ETAG = re.compile(r"[\x21-\x7e]+")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,7})?Z?")
# showAs -> (status, transparent); "unknown" is a documented value and blocks time, like busy
SHOW_AS = {"free": ("CONFIRMED", True), "tentative": ("TENTATIVE", False),
           "busy": ("CONFIRMED", False), "oof": ("CONFIRMED", False),
           "workingElsewhere": ("CONFIRMED", False), "unknown": ("CONFIRMED", False)}
SENSITIVITY = {"normal": "PUBLIC", "personal": "PERSONAL", "private": "PRIVATE",
               "confidential": "CONFIDENTIAL"}
INSTANCE_TYPES = frozenset({"singleInstance", "occurrence", "exception"})


@dataclass(frozen=True)
class DeltaItem:
    """One entry of a calendarView delta page: a removal, a mapped instance, or a skip reason."""

    id: str
    etag: str | None
    removed: bool = False
    instance: Instance | None = None
    skip_reason: str | None = None


def event_id(value: object) -> str | None:
    """A Graph id if it is a bounded, base64-looking string; None otherwise."""
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def clean_etag(value: object) -> str | None:
    """An etag fit to send back in If-Match: short printable ASCII, else none at all."""
    if isinstance(value, str) and len(value) <= MAX_ID and _ETAG.fullmatch(value):
        return value
    return None


def delta_item(obj: object, *, read_subject: bool) -> DeltaItem | None:
    """One delta entry; None if it has no usable id (it cannot even be counted against one)."""
    if not isinstance(obj, dict) or (ident := event_id(obj.get("id"))) is None:
        return None
    etag = clean_etag(obj.get("@odata.etag"))
    if "@removed" in obj:
        return DeltaItem(ident, None, removed=True)
    try:
        return DeltaItem(ident, etag, instance=source_instance(obj, ident, read_subject))
    except SkipObject as skip:
        return DeltaItem(ident, etag, skip_reason=skip.reason)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
        return DeltaItem(ident, etag, skip_reason="graph-bad-field")  # one event, never the pair


def source_instance(obj: Mapping[str, Any], ident: str, read_subject: bool) -> Instance:
    """The core's view of one expanded Graph event; SkipObject with a reason code if unusable."""
    kind = obj.get("type", "singleInstance")
    if not isinstance(kind, str) or kind not in INSTANCE_TYPES:
        raise SkipObject("graph-not-an-instance")
    all_day = _bool(obj, "isAllDay", False)
    start, end = _time(obj.get("start")), _time(obj.get("end"))
    when_start, when_end = (_day(start), _day(end)) if all_day else (start, end)
    if when_end < when_start or (all_day and when_end == when_start):
        raise SkipObject("graph-bad-time")
    status, transparent = _enum(obj, "showAs", SHOW_AS, ("CONFIRMED", False))
    if _bool(obj, "isCancelled", False):
        status = "CANCELLED"
    return Instance(
        source_uid="graph:" + ident, occurrence_id="", start=when_start, end=when_end,
        status=status,
        transparent=transparent, categories=_categories(obj.get("categories", [])),
        klass=_enum(obj, "sensitivity", SENSITIVITY, "PUBLIC"),
        summary=_subject(obj.get("subject")) if read_subject else None,
        organizer_domain=_organizer_domain(obj.get("organizer")),
    )


def _organizer_domain(value: object) -> str | None:
    """None without an organizer (the mailbox's own event); "" when its address is unreadable
    (treated as outside the agency); else its mail domain only."""
    if value is None:
        return None
    email = value.get("emailAddress") if isinstance(value, dict) else None
    address = email.get("address") if isinstance(email, dict) else None
    if not isinstance(address, str) or len(address) > MAX_ADDRESS:
        return ""
    return mail_domain(address)


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SkipObject("graph-bad-field")
    return value


def _enum(obj: Mapping[str, Any], key: str, table: Mapping[str, Any], default: Any) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in table:
        raise SkipObject(f"graph-unknown-{key.lower()}")
    return table[value]


def _time(value: object) -> datetime:
    """A dateTimeTimeZone in UTC (we ask for UTC) as an aware datetime, inside sane years."""
    if not isinstance(value, dict) or value.get("timeZone") not in ("UTC", "Etc/UTC"):
        raise SkipObject("graph-bad-time")
    text = value.get("dateTime")
    match = _TIME.fullmatch(text) if isinstance(text, str) and len(text) <= 40 else None
    if match is None:
        raise SkipObject("graph-bad-time")
    try:
        y, mo, d, h, mi, sec = (int(g) for g in match.groups())
        moment = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:
        raise SkipObject("graph-bad-time") from None
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise SkipObject("graph-bad-time")
    return moment


def _day(moment: datetime) -> date:
    """An all-day bound read in UTC is the event zone's midnight; the nearest midnight is its
    date for any zone within 12 hours of UTC."""
    return (moment + timedelta(hours=12)).date()


def _categories(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_CATEGORIES:
        raise SkipObject("graph-bad-field")
    if not all(isinstance(c, str) and len(c) <= MAX_CATEGORY for c in value):
        raise SkipObject("graph-bad-field")
    return tuple(value)


def _subject(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SUBJECT or _SURROGATE.search(value):
        raise SkipObject("graph-bad-field")  # a lone surrogate (JSON's \ud800) is no text
    return value


# Target side --------------------------------------------------------------------------------

def _graph_time(value: When) -> dict[str, str]:
    if isinstance(value, datetime):
        return {"dateTime": f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}
    return {"dateTime": f"{value:%Y-%m-%d}T00:00:00", "timeZone": "UTC"}


def _show_as(event: SanitizedEvent) -> str:
    if event.transparency is Transparency.TRANSPARENT:
        return "free"
    return "tentative" if event.status is Status.TENTATIVE else "busy"


def entry_json(event: SanitizedEvent) -> dict[str, Any]:
    """The fields of a phone entry: the allowlist, a private flag, an empty body, no attendees."""
    minutes = None if event.alarm is None else int(event.alarm.total_seconds() // 60)
    body: dict[str, Any] = {
        "subject": event.title.text,
        "body": {"contentType": "text", "content": ""},
        "start": _graph_time(event.start), "end": _graph_time(event.end),
        "isAllDay": not isinstance(event.start, datetime),
        "showAs": _show_as(event), "sensitivity": "private", "categories": [],
        "isReminderOn": minutes is not None,
        "location": {"displayName": event.location.text if event.location else ""},
    }
    if minutes is not None:
        body["reminderMinutesBeforeStart"] = minutes
    return body


@dataclass(frozen=True)
class TargetEntry:
    """A target event as the planner sees it: its mark (None: foreign) and what it stands for."""

    uid: str | None
    event: SanitizedEvent | None
    extra: bool


def target_entry(obj: Mapping[str, Any], mark: str | None) -> TargetEntry:
    """Read a target event back; only a marked one is interpreted, and strictly."""
    if mark is None or not is_owned(mark):
        return TargetEntry(None, None, False)
    try:
        event = _owned_event(obj, mark)
    except (SkipObject, ValueError, TypeError):
        return TargetEntry(mark, None, True)
    preview = obj.get("bodyPreview")
    extra = (obj.get("sensitivity") != "private" or bool(preview) or bool(obj.get("categories"))
             or obj.get("type", "singleInstance") != "singleInstance")
    return TargetEntry(mark, event, extra)


def _owned_event(obj: Mapping[str, Any], uid: str) -> SanitizedEvent:
    all_day = _bool(obj, "isAllDay", False)
    start, end = _time(obj.get("start")), _time(obj.get("end"))
    if all_day and (start.time() != datetime.min.time() or end.time() != datetime.min.time()):
        raise ValueError("an all-day entry not at midnight")
    status, transparent = _enum(obj, "showAs", SHOW_AS, ("CONFIRMED", False))
    location = obj.get("location")
    place = location.get("displayName") if isinstance(location, dict) else None
    return SanitizedEvent(
        uid=uid, start=start.date() if all_day else start, end=end.date() if all_day else end,
        title=Label(str(obj.get("subject") or "?")),
        location=Label(place) if isinstance(place, str) and place else None,
        status=Status(status), alarm=_reminder(obj),
        transparency=Transparency.TRANSPARENT if transparent else Transparency.OPAQUE,
    )


def _reminder(obj: Mapping[str, Any]) -> timedelta | None:
    if not _bool(obj, "isReminderOn", False):
        return None
    minutes = obj.get("reminderMinutesBeforeStart")
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise ValueError("no reminder time")
    if not 0 <= minutes <= MAX_REMINDER_MINUTES:
        raise ValueError("reminder out of range")
    return timedelta(minutes=minutes)
