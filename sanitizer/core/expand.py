"""Source objects -> validated instances inside a window (pure).

One CalDAV object holds one UID: a master event and its overrides. Anyone can put an object into a
work calendar by sending an invitation, so the work on one object is bounded before parsing (bytes,
line length, parameters, lines, components) and while parsing and expanding (one CPU budget, rule
density, instances): a hostile object cannot stall a cycle or exhaust memory. An object that fails
is skipped with a reason code, never with a message that quotes it. An object whose event or time
zone lines do not all parse is skipped too: the lost line may have been an EXDATE or a STATUS, and
guessing would put more on the phone, not less; so is one that gives a property read here twice.
Warnings from the parsing libraries quote input and are silenced here.
"""

from __future__ import annotations

import math
import re
import warnings
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone

from sanitizer.core.budget import CpuBudget, OutOfTime
from sanitizer.core.model import Instance, When, Window, instant
from sanitizer.core.rules import mail_domain

# Real appointments are kilobytes: the largest export in tests/data is 3.7 KB, with 876-byte lines
# and at most 7 parameters on a line; an Outlook invitation's HTML copy of its text is tens of KB.
MAX_OBJECT_BYTES = 1024 * 1024  # what is bigger carries an inline attachment at best
MAX_LINE_BYTES = 256 * 1024  # one unfolded content line
MAX_PARAMETERS = 100  # on one line; an ATTENDEE line has about ten
MAX_LINES = 50_000  # unfolded content lines; a long series with every instance moved has ~20k
MAX_COMPONENTS = 2_000  # BEGIN: lines (events, overrides, alarms, zones)
MAX_DATES = 20_000  # RDATE and EXDATE values; parsing each costs ~15 us, and a line has no calls
MAX_INSTANCES = 2000  # per object and window; a real calendar has a handful
MAX_RULE_STEPS = 200_000  # candidate times a rule generates from DTSTART to the window's end
MAX_PERIOD_CANDIDATES = 50_000  # candidate times in one FREQ period (BYHOUR x BYMINUTE x ...)
MAX_SECONDS = 2.0  # CPU budget per object for parsing, validation and expansion
_FREQ_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400,
                 "WEEKLY": 7 * 86400, "MONTHLY": 28 * 86400, "YEARLY": 365 * 86400}
_PERIOD_DAYS = {"YEARLY": 366, "MONTHLY": 31, "WEEKLY": 7}
_DAY_PARTS = ("BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY")
_TIME_PARTS = {"SECONDLY": (), "MINUTELY": ("BYSECOND",), "HOURLY": ("BYMINUTE", "BYSECOND")}
_ALL_TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
_STATUSES = frozenset({"CONFIRMED", "TENTATIVE", "CANCELLED"})
# Properties that occur at most once in an event (RFC 5545 3.6.1) and that the sanitizer reads: with
# two, any choice is a guess, and a library may hand over both at once.
_ONCE = ("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "SUMMARY", "STATUS", "TRANSP",
         "CLASS", "ORGANIZER", "X-MICROSOFT-CDO-BUSYSTATUS")
# Components whose damage can change what reaches the phone (times, zones, status).
_CHECKED = frozenset({"VCALENDAR", "VEVENT", "VTIMEZONE", "STANDARD", "DAYLIGHT"})
# The reason for a property whose value did not parse; any other broken line is "unparseable".
_BROKEN = {"DTSTART": "bad-date", "DTEND": "bad-date", "RECURRENCE-ID": "bad-date",
           "DURATION": "bad-duration", "RRULE": "bad-recurrence", "RDATE": "bad-recurrence",
           "EXDATE": "bad-recurrence", "EXRULE": "bad-recurrence"}
_DATE_LINE = re.compile(rb"(?:RDATE|EXDATE)[;:]", re.IGNORECASE)
_FOLD = re.compile(rb"(?:\r?\n)+[ \t]")
_LINE_BREAK = re.compile(rb"\r?\n")
_QUOTED = re.compile(rb'"[^"]*"')
_HEAD = re.compile(rb'[^:"]*(?:"[^"]*"[^:"]*)*')  # name and parameters: up to an unquoted colon


class SkipObject(Exception):
    """An object that yields nothing; `reason` is a short code, safe to log and count."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _precheck(data: bytes) -> None:
    """Refuse objects too big to parse within the budget, before parsing them."""
    if len(data) > MAX_OBJECT_BYTES:
        raise SkipObject("too-large")
    if data.upper().count(b"BEGIN:") > MAX_COMPONENTS:
        raise SkipObject("too-complex")
    lines = _LINE_BREAK.split(_FOLD.sub(b"", data))  # icalendar unfolds no more than this
    if len(lines) > MAX_LINES:
        raise SkipObject("too-complex")
    dates = 0
    for line in lines:
        if len(line) > MAX_LINE_BYTES:
            raise SkipObject("line-too-long")
        if line.count(b";") > MAX_PARAMETERS and _parameters(line) > MAX_PARAMETERS:
            raise SkipObject("too-many-parameters")
        if _DATE_LINE.match(line):
            dates += line.count(b",") + 1
    if dates > MAX_DATES:
        raise SkipObject("too-complex")


def _parameters(line: bytes) -> int:
    """The semicolons before the value, outside quotes; all of them if a quote is left open."""
    head = _HEAD.match(line)
    end = head.end() if head else 0
    if line[end:end + 1] == b'"':
        return line.count(b";")
    return _QUOTED.sub(b"", line[:end]).count(b";")


def _parse(data: bytes) -> icalendar.Calendar:
    """Parse one object strictly enough that what we read is what the server holds."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception:  # noqa: BLE001 - the exception text quotes the input
        raise SkipObject("unparseable") from None
    if len(calendars) != 1 or calendars[0].name != "VCALENDAR":
        raise SkipObject("unparseable")
    calendar: icalendar.Calendar = calendars[0]
    return calendar


def expand_object(data: bytes, window: Window, zone: tzinfo, fallback_uid: str) -> list[Instance]:
    """All instances of one object that overlap the window; raise SkipObject to skip it whole."""
    _precheck(data)  # memory: nothing over the caps is parsed at all
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with CpuBudget(MAX_SECONDS):  # CPU: parsing and expansion share one budget
                return _expand(_parse(data), window, zone, fallback_uid)
    except SkipObject:
        raise
    except OutOfTime:
        raise SkipObject("expansion-timeout") from None
    except RecursionError:
        raise SkipObject("too-complex") from None
    except MemoryError:
        raise SkipObject("too-large") from None
    except Exception:  # noqa: BLE001 - library errors quote the input
        raise SkipObject("expansion-error") from None


def _expand(calendar: icalendar.Calendar, window: Window, zone: tzinfo,
            fallback_uid: str) -> list[Instance]:
    calendar = _standardize(calendar)
    for component in calendar.walk():
        if component.name in _CHECKED and component.errors:
            name = component.errors[0][0]
            raise SkipObject(_BROKEN.get(str(name).upper(), "unparseable"))
    events = list(calendar.walk("VEVENT"))
    if not events:
        raise SkipObject("not-an-event")
    for event in events:
        _validate(event, window)
    recurring = any(("RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e) for e in events)
    occurrences = _occurrences(calendar, window)
    instances = [_instance(c, zone, recurring, fallback_uid) for c in occurrences]
    return [i for i in instances if _overlaps(i, window, zone)]


def _standardize(calendar: icalendar.Calendar) -> icalendar.Calendar:
    """Apply X-WR-TIMEZONE (Google exports) when valid; drop it when not, rather than fail."""
    if "X-WR-TIMEZONE" not in calendar:
        return calendar
    try:
        result: icalendar.Calendar = x_wr_timezone.to_standard(calendar)
        return result
    except Exception:  # noqa: BLE001 - an invalid zone name must not blank the calendar
        del calendar["X-WR-TIMEZONE"]
        return calendar


def _validate(event: icalendar.Component, window: Window) -> None:
    """Reject what would otherwise be guessed at: missing or unreadable times, unknown zones."""
    if "DTSTART" not in event:
        raise SkipObject("missing-dtstart")
    _check_once(event)
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        if name not in event:
            continue
        prop = event[name]
        try:
            value = _dt(event, name)
        except Exception:  # noqa: BLE001
            raise SkipObject("bad-date") from None
        if not isinstance(value, date):
            raise SkipObject("bad-date")
        if isinstance(value, datetime) and value.tzinfo is None and "TZID" in prop.params:
            raise SkipObject("unknown-timezone")
    _check_date_lists(event)
    if "DURATION" in event:
        try:
            duration = _dt(event, "DURATION")
        except Exception:  # noqa: BLE001
            raise SkipObject("bad-duration") from None
        if not isinstance(duration, timedelta) or duration < timedelta(0):
            raise SkipObject("bad-duration")
    start, end = _dt(event, "DTSTART"), _dt(event, "DTEND")
    if end is not None:
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise SkipObject("mixed-date-types")
        if _comparable(end) < _comparable(start):
            raise SkipObject("end-before-start")
    _check_density(event, start, window.end)


def _check_once(event: icalendar.Component) -> None:
    """Two SUMMARY lines (or an end given twice) leave no single value to read."""
    if any(isinstance(event.get(name), list) for name in _ONCE) or (
            "DTEND" in event and "DURATION" in event):
        raise SkipObject("duplicate-property")


def _check_date_lists(event: icalendar.Component) -> None:
    """RDATE and EXDATE in a zone nobody defined would add or remove instances at guessed times."""
    for name in ("RDATE", "EXDATE"):
        values = event.get(name)
        for prop in values if isinstance(values, list) else [values] if values is not None else []:
            params = getattr(prop, "params", {})
            for item in getattr(prop, "dts", []):
                when = getattr(item, "dt", None)
                if isinstance(when, datetime) and when.tzinfo is None and "TZID" in params:
                    raise SkipObject("unknown-timezone")


def _dt(component: icalendar.Component, name: str) -> Any:
    """The parsed value of a date, date-time or duration property, or None if absent."""
    prop = component.get(name)
    return None if prop is None else prop.dt


def _comparable(value: date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _check_density(event: icalendar.Component, start: date, until: datetime) -> None:
    """Refuse rules the library cannot read, or whose expansion would be too costly."""
    rules = event.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        try:
            _check_rule(rule, start, until)
        except SkipObject:
            raise
        except Exception:  # noqa: BLE001 - a rule the library cannot read
            raise SkipObject("bad-recurrence") from None


def _check_rule(rule: Any, start: date, until: datetime) -> None:
    """Bound the candidate times one rule generates from DTSTART to the window's end.

    The recurrence library builds every candidate of a period (a YEARLY rule with BYHOUR, BYMINUTE
    and BYSECOND lists makes 31 million a year) and walks from DTSTART, so the cost is periods x
    candidates per period. A small COUNT stops the walk early, so it may be dense.
    """
    freq = (rule.get("FREQ") or [""])[0]
    interval = (rule.get("INTERVAL") or [1])[0]
    if freq not in _FREQ_SECONDS or not isinstance(interval, int) or interval < 1:
        raise SkipObject("bad-recurrence")
    per_period = _PERIOD_DAYS.get(freq, 1) if any(rule.get(p) for p in _DAY_PARTS) else 1
    for part in _TIME_PARTS.get(freq, _ALL_TIME_PARTS):
        per_period *= max(1, len(rule.get(part) or []))
    if per_period > MAX_PERIOD_CANDIDATES:
        raise SkipObject("recurrence-too-dense")
    span = (until + timedelta(days=1) - _comparable(start)).total_seconds()
    periods = math.ceil(max(0.0, span) / (_FREQ_SECONDS[freq] * interval))
    if periods * per_period > MAX_RULE_STEPS:
        count = (rule.get("COUNT") or [None])[0]
        if not isinstance(count, int) or count > MAX_RULE_STEPS:
            raise SkipObject("recurrence-too-dense")


def _occurrences(calendar: icalendar.Calendar, window: Window) -> list[icalendar.Component]:
    """Expand over a window widened by a day (floating and all-day times are zone-local)."""
    query = recurring_ical_events.of(calendar)
    start, end = window.start - timedelta(days=1), window.end + timedelta(days=1)
    found: list[icalendar.Component] = []
    for series in query.series:
        for occurrence in series.between(start, end):
            found.append(occurrence.as_component(False))
            if len(found) > MAX_INSTANCES:
                raise SkipObject("too-many-instances")
    return found


def _instance(component: icalendar.Component, zone: tzinfo, recurring: bool,
              fallback_uid: str) -> Instance:
    start = _utc(_dt(component, "DTSTART"), zone)
    end = _utc(_dt(component, "DTEND"), zone) if "DTEND" in component else start
    key = ""
    if recurring and "RECURRENCE-ID" in component:
        key = _key(_dt(component, "RECURRENCE-ID"), zone)
    status = str(component.get("STATUS", "CONFIRMED")).upper()
    transp = str(component.get("TRANSP", "")).upper()
    busy = str(component.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    return Instance(
        source_uid=str(component.get("UID", "")) or fallback_uid,
        occurrence_id=key, start=start, end=end,
        status=status if status in _STATUSES else "CONFIRMED",
        transparent=transp == "TRANSPARENT" or (not transp and busy == "FREE"),
        categories=_categories(component.get("CATEGORIES")),
        klass=str(component.get("CLASS", "PUBLIC")).upper(),
        summary=str(component["SUMMARY"]) if "SUMMARY" in component else None,
        organizer_domain=_organizer_domain(component.get("ORGANIZER")),
    )


def _organizer_domain(value: Any) -> str | None:
    """The domain of a mailto: ORGANIZER, lower-cased; never the address itself."""
    if value is None:
        return None
    address = str(value).strip()
    if address[:7].lower() != "mailto:":
        return ""
    return mail_domain(address[7:])


def _utc(value: When, zone: tzinfo) -> When:
    """Dates stay dates; floating times are in the agency's zone; everything else goes to UTC."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _key(value: When, zone: tzinfo) -> str:
    moment = _utc(value, zone)
    if isinstance(moment, datetime):
        return f"{moment:%Y%m%dT%H%M%SZ}"
    return f"{moment:%Y%m%d}"


def _categories(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    result: list[str] = []
    for item in items:
        cats = getattr(item, "cats", None)
        result.extend(str(c) for c in (cats if cats is not None else [item]))
    return tuple(result)


def _overlaps(instance: Instance, window: Window, zone: tzinfo) -> bool:
    start, end = instant(instance.start, zone), instant(instance.end, zone)
    if end == start:
        return window.start <= start < window.end
    return end > window.start and start < window.end
