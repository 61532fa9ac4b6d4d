"""Synthetic work calendars that look like an advocate's: mostly single appointments over two
years around now, some weekly and daily series with moved and cancelled instances, all-day
events, several time zones, and the free text (names, phone numbers, addresses) real ones carry.

Everything is seeded, so a run can be repeated; all names and numbers are made up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

# VTIMEZONE blocks as calendar clients send them (RRULE-based DST, no historic transitions).
_US_RULES = (
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:{std}\r\nTZOFFSETTO:{dst}\r\nTZNAME:{dname}\r\n"
    "DTSTART:20070311T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:{dst}\r\nTZOFFSETTO:{std}\r\nTZNAME:{sname}\r\n"
    "DTSTART:20071104T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n"
)
_EU_RULES = (
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:{std}\r\nTZOFFSETTO:{dst}\r\nTZNAME:{dname}\r\n"
    "DTSTART:19810329T010000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:{dst}\r\nTZOFFSETTO:{std}\r\nTZNAME:{sname}\r\n"
    "DTSTART:19961027T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
)
VTIMEZONES = {
    "America/Chicago": _US_RULES.format(std="-0600", dst="-0500", sname="CST", dname="CDT"),
    "America/New_York": _US_RULES.format(std="-0500", dst="-0400", sname="EST", dname="EDT"),
    "America/Denver": _US_RULES.format(std="-0700", dst="-0600", sname="MST", dname="MDT"),
    "America/Los_Angeles": _US_RULES.format(std="-0800", dst="-0700", sname="PST", dname="PDT"),
    "Europe/London": _EU_RULES.format(std="+0000", dst="+0100", sname="GMT", dname="BST"),
}
# Where appointments are entered: mostly the agency's own zone.
ZONE_WEIGHTS = (("America/Chicago", 70), ("America/New_York", 10), ("America/Denver", 5),
                ("America/Los_Angeles", 5), ("Europe/London", 3), ("UTC", 7))

_FIRST = ("Maria", "Jane", "Ana", "Keisha", "Linh", "Fatima", "Olga", "Rosa", "Tamika", "Grace")
_LAST = ("Doe", "Garcia", "Nguyen", "Johnson", "Okafor", "Kowalski", "Rivera", "Smith", "Haddad")
_KINDS = ("Intake", "Safety planning", "Court accompaniment", "Follow-up call", "Shelter visit",
          "Protective order hearing", "Counseling", "Housing appointment", "Case review")
_STAFF = ("Team meeting", "Supervision", "Training: trauma-informed care", "Staff lunch")
_STREETS = ("Elm St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine Rd", "Lake Shore Blvd")
_CATEGORIES = (("Client",), ("Client", "Court"), ("Client",), ("Client", "Phone"), ())
_DURATIONS = (30, 45, 60, 60, 60, 90, 120)


@dataclass(frozen=True)
class Override:
    """A changed (or cancelled) instance of a series, by the instance's original start."""

    original: datetime
    start: datetime
    cancelled: bool = False


@dataclass(frozen=True)
class Spec:
    """One calendar object before serialization; enough to re-render it after an edit."""

    uid: str
    start: datetime | date
    end: datetime | date
    zone: str  # a key of VTIMEZONES, or "UTC"
    summary: str
    description: str
    location: str
    categories: tuple[str, ...] = ()
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    overrides: tuple[Override, ...] = ()
    sequence: int = 0
    status: str = "CONFIRMED"
    klass: str = "PRIVATE"
    alarm: bool = False
    extra: tuple[str, ...] = field(default=())

    @property
    def href(self) -> str:
        return f"{self.uid}.ics"

    def moved(self, minutes: int) -> Spec:
        """The same appointment moved by `minutes`, as a client saves an edit."""
        delta = timedelta(minutes=minutes)
        return replace(self, start=self.start + delta, end=self.end + delta,
                       sequence=self.sequence + 1)


def _fmt(value: datetime | date, zone: str, name: str) -> str:
    if not isinstance(value, datetime):
        return f"{name};VALUE=DATE:{value:%Y%m%d}"
    if zone == "UTC":
        return f"{name}:{value.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};TZID={zone}:{value.astimezone(ZoneInfo(zone)):%Y%m%dT%H%M%S}"


def _fold(line: str) -> str:
    """RFC 5545 line folding at 75 octets (ASCII here)."""
    if len(line) <= 75:
        return line
    parts = [line[:75]]
    rest = line[75:]
    while rest:
        parts.append(" " + rest[:74])
        rest = rest[74:]
    return "\r\n".join(parts)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def render(spec: Spec, stamp: datetime) -> bytes:
    """The object as a calendar client would store it (CRLF, folded, VTIMEZONE included)."""
    ts = f"{stamp.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Agency//Groupware 16.0//EN",
             "CALSCALE:GREGORIAN"]
    if spec.zone in VTIMEZONES:
        lines += ["BEGIN:VTIMEZONE", f"TZID:{spec.zone}",
                  *VTIMEZONES[spec.zone].strip().split("\r\n"), "END:VTIMEZONE"]

    def body(start: datetime | date, end: datetime | date, summary: str, status: str,
             recurrence_id: datetime | None, rrule: bool) -> list[str]:
        out = ["BEGIN:VEVENT", f"UID:{spec.uid}", f"DTSTAMP:{ts}", f"CREATED:{ts}",
               f"LAST-MODIFIED:{ts}", f"SEQUENCE:{spec.sequence}"]
        if recurrence_id is not None:
            out.append(_fmt(recurrence_id, spec.zone, "RECURRENCE-ID"))
        out += [_fmt(start, spec.zone, "DTSTART"), _fmt(end, spec.zone, "DTEND")]
        if rrule and spec.rrule:
            out.append(f"RRULE:{spec.rrule}")
            out += [_fmt(x, spec.zone, "EXDATE") for x in spec.exdates]
        out += [f"SUMMARY:{_escape(summary)}", f"DESCRIPTION:{_escape(spec.description)}",
                f"LOCATION:{_escape(spec.location)}", f"CLASS:{spec.klass}", f"STATUS:{status}",
                "TRANSP:OPAQUE" if isinstance(start, datetime) else "TRANSP:TRANSPARENT",
                "ORGANIZER;CN=Agency Scheduler:mailto:scheduler@agency.example.org",
                "ATTENDEE;CN=Advocate;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:"
                "mailto:advocate@agency.example.org", *spec.extra]
        if spec.categories:
            out.append("CATEGORIES:" + ",".join(spec.categories))
        if spec.alarm and recurrence_id is None:
            out += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder",
                    "TRIGGER:-PT15M", "END:VALARM"]
        out.append("END:VEVENT")
        return out

    lines += body(spec.start, spec.end, spec.summary, spec.status, None, True)
    length = spec.end - spec.start  # type: ignore[operator]
    for override in spec.overrides:
        status = "CANCELLED" if override.cancelled else spec.status
        summary = "Cancelled: " + spec.summary if override.cancelled else spec.summary
        lines += body(override.start, override.start + length, summary, status,
                      override.original, False)
    lines.append("END:VCALENDAR")
    return ("\r\n".join(_fold(x) for x in lines) + "\r\n").encode()


class Generator:
    """Seeded source of appointments around `now`."""

    def __init__(self, seed: int, now: datetime, prefix: str) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.prefix = prefix
        self.count = 0

    def _uid(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:05d}-{self.rng.getrandbits(40):010x}@agency.example.org"

    def _zone(self) -> str:
        names, weights = zip(*ZONE_WEIGHTS, strict=True)
        return self.rng.choices(names, weights)[0]

    def _text(self) -> tuple[str, str, str, tuple[str, ...], str]:
        rng = self.rng
        if rng.random() < 0.12:
            return (rng.choice(_STAFF), "Agenda in the shared drive.", "Conference room B",
                    ("Staff",), "PUBLIC")
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        kind = rng.choice(_KINDS)
        phone = f"555-01{rng.randint(0, 99):02d}"
        desc = (f"Client {name}, call {phone} first (safe number only). "
                f"Case #{rng.randint(10000, 99999)}. Do not leave voicemail.\n"
                f"Children: {rng.randint(0, 3)}. Interpreter: {rng.choice(('no', 'Spanish'))}.")
        loc = f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}, Springfield"
        return f"{kind} - {name}", desc, loc, rng.choice(_CATEGORIES), "PRIVATE"

    def _local(self, day: date, zone: str, hour: int, minute: int) -> datetime:
        tz = UTC if zone == "UTC" else ZoneInfo(zone)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)

    def _workday(self, lo_days: float, hi_days: float) -> date:
        day = (self.now + timedelta(days=self.rng.uniform(lo_days, hi_days))).date()
        while day.weekday() >= 5 and self.rng.random() < 0.9:
            day += timedelta(days=1)
        return day

    def single(self, lo_days: float, hi_days: float) -> Spec:
        """A timed appointment on a (mostly) working day between the two offsets from now."""
        zone = self._zone()
        day = self._workday(lo_days, hi_days)
        start = self._local(day, zone, self.rng.randint(8, 17), self.rng.choice((0, 15, 30, 45)))
        summary, desc, loc, cats, klass = self._text()
        status = "TENTATIVE" if self.rng.random() < 0.05 else "CONFIRMED"
        return Spec(self._uid(), start, start + timedelta(minutes=self.rng.choice(_DURATIONS)),
                    zone, summary, desc, loc, cats, status=status, klass=klass,
                    alarm=self.rng.random() < 0.3)

    def all_day(self, lo_days: float, hi_days: float) -> Spec:
        """A one- or multi-day date-only event (leave, court week, training)."""
        day = (self.now + timedelta(days=self.rng.uniform(lo_days, hi_days))).date()
        days = self.rng.choice((1, 1, 1, 2, 3, 5))
        summary, desc, loc, cats, klass = self._text()
        return Spec(self._uid(), day, day + timedelta(days=days), "America/Chicago",
                    summary, desc, loc, cats, klass=klass)

    def series(self, lo_days: float, hi_days: float, daily: bool = False) -> Spec:
        """A weekly (or daily) series with a moved instance, an EXDATE and a cancelled one."""
        rng = self.rng
        first = self.single(lo_days, hi_days)
        start = first.start
        assert isinstance(start, datetime)
        weekdays_only = False
        if daily:
            count = rng.randint(5, 20)
            weekdays_only = rng.random() < 0.5
            rule = (f"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT={count}" if weekdays_only
                    else f"FREQ=DAILY;COUNT={count}")
            while weekdays_only and start.weekday() >= 5:
                start += timedelta(days=1)
            step = timedelta(days=1)
        else:
            count = rng.randint(6, 52)
            rule = f"FREQ=WEEKLY;COUNT={count}"
            if rng.random() < 0.4:  # open-ended with UNTIL, as many clients write it
                until = start + timedelta(weeks=count)
                rule = f"FREQ=WEEKLY;UNTIL={until.astimezone(UTC):%Y%m%dT%H%M%SZ}"
            step = timedelta(weeks=1)
        # Instance starts at the same wall time (aware + timedelta keeps wall time in Python).
        instances = [start]
        while len(instances) < count:
            nxt = instances[-1] + step
            while weekdays_only and nxt.weekday() >= 5:
                nxt += step
            instances.append(nxt)
        picks = rng.sample(range(1, count), k=min(3, count - 1))
        overrides: list[Override] = []
        exdates: list[datetime] = []
        for n, index in enumerate(picks):
            original = instances[index]
            if n == 0:
                overrides.append(Override(original, original + timedelta(hours=2)))
            elif n == 1:
                exdates.append(original)
            else:
                overrides.append(Override(original, original, cancelled=True))
        return replace(first, start=start, end=start + (first.end - first.start), rrule=rule,
                       exdates=tuple(exdates), overrides=tuple(overrides), alarm=False)


@dataclass
class WorkCalendar:
    """The objects of one source calendar, and the ones the benchmark moves later."""

    specs: dict[str, Spec]
    editable: str  # href of a single appointment a few days ahead, moved in "edit"
    entering: str | None = None  # href of one that enters the lookahead when now moves

    def render_all(self, stamp: datetime) -> dict[str, bytes]:
        return {href: render(spec, stamp) for href, spec in self.specs.items()}


def work_calendar(size: int, now: datetime, seed: int, *, lookahead: timedelta,
                  shift: timedelta, prefix: str = "evt") -> WorkCalendar:
    """`size` objects spread over about two years around now (a realistic share in the window).

    Mix: 84% single, 6% all-day, 7% weekly series, 3% daily series; plus two placed objects:
    one editable a few days ahead, and one whose start is `shift/2` after the lookahead ends,
    so that moving now by `shift` brings exactly it (and whatever else lies there) into view.
    """
    gen = Generator(seed, now, prefix)
    specs: list[Spec] = []
    editable = gen.single(3, 3.01)
    entering_start = now + lookahead + shift / 2
    entering = replace(gen.single(0, 0), start=entering_start,
                       end=entering_start + timedelta(minutes=60), zone="UTC")
    specs += [editable, entering]
    n_allday = round(size * 0.06)
    n_weekly = round(size * 0.07)
    n_daily = round(size * 0.03)
    n_single = max(0, size - len(specs) - n_allday - n_weekly - n_daily)
    specs += [gen.single(-365, 365) for _ in range(n_single)]
    specs += [gen.all_day(-365, 365) for _ in range(n_allday)]
    specs += [gen.series(-400, 300) for _ in range(n_weekly)]
    specs += [gen.series(-365, 365, daily=True) for _ in range(n_daily)]
    return WorkCalendar({s.href: s for s in specs[:max(size, 2)]}, editable.href, entering.href)


def windowed_calendar(size: int, now: datetime, seed: int, *, lookahead: timedelta,
                      prefix: str) -> WorkCalendar:
    """`size` objects that all have an instance within [now - 1d, now + lookahead]."""
    gen = Generator(seed, now, prefix)
    days = lookahead.total_seconds() / 86400
    editable = gen.single(2, days - 3)
    specs = [editable]
    n_series = max(1, size // 20)
    n_allday = max(1, size // 20)
    specs += [gen.series(-7, 0.5) for _ in range(n_series)]
    specs += [gen.all_day(0, days - 1) for _ in range(n_allday)]
    specs += [gen.single(-0.5, days - 0.5) for _ in range(size - len(specs))]
    return WorkCalendar({s.href: s for s in specs}, editable.href)
