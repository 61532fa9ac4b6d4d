"""Hypothesis strategies for hostile but valid CalDAV calendar objects.

Each generated object is what a CalDAV server stores under one resource: one
VCALENDAR, one UID, a master VEVENT and, for recurring series, overrides with
RECURRENCE-ID. Around that sit random subsets of every leak vector real
exports carry (Outlook, Google, Apple, Thunderbird, Nextcloud, Zimbra, RFC
7986/9073/9074), with arbitrary unicode text, escaping and folding.

Every occurrence start lies within `WINDOW_START`..`WINDOW_END` (ANCHOR +/- 20
days), whatever the time form (UTC, floating, IANA or custom VTIMEZONE,
all-day), so a test can pick a `now` of ANCHOR and a horizon that covers all
of it. Tests plant canaries on top with `canary.plant`.
"""

from __future__ import annotations

import base64
import json
import string
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from urllib.parse import quote
from zoneinfo import ZoneInfo, available_timezones

import icalendar
from hypothesis import strategies as st
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from tests.support.canary import fold_line, split_content_lines

__all__ = [
    "ANCHOR",
    "CATEGORY_VOCABULARY",
    "IANA_ZONES",
    "SPREAD",
    "WINDOW_END",
    "WINDOW_START",
    "calendar_sets",
    "calendars",
    "param_texts",
    "texts",
    "uids",
]

ANCHOR = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
SPREAD = timedelta(days=20)
WINDOW_START = ANCHOR - SPREAD
WINDOW_END = ANCHOR + SPREAD
CATEGORY_VOCABULARY = ("Staff", "Survivor", "Court", "Personal")
IANA_ZONES = (
    "Europe/Berlin",
    "Europe/Dublin",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
)
# Local wall times stay this far inside the window, so any UTC offset (max 14 h)
# and any event length keeps every occurrence inside it.
_MARGIN = timedelta(days=1)
_LAST_START = (ANCHOR + SPREAD - _MARGIN - timedelta(hours=5)).replace(tzinfo=None)
_FIRST_START = (ANCHOR - SPREAD + _MARGIN).replace(tzinfo=None)

Line = str  # one unfolded content line

# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

_SPICY = ",;:\\\n\t\"'<>&%#=^/@[]{}|\u2028\u200b\u202e\ufeff🙂Ωßçø李"
_TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(_SPICY)
# Parameter values cannot hold DQUOTE or control characters; caret and backslash
# are left out because RFC 6868 and icalendar give them meanings of their own.
_PARAM_CHARS = st.characters(
    exclude_categories=("Cs", "Cc"), exclude_characters='"^\\'
) | st.sampled_from(",;:'=/@ ")


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Arbitrary TEXT: unicode, delimiters, newlines, and now and then long enough to fold."""
    return st.one_of(
        st.text(_TEXT_CHARS, max_size=max_size),
        st.text(_TEXT_CHARS, min_size=80, max_size=300),
        st.sampled_from(
            [
                "Maria Alvarez, 42 Linden Court; call 555-0134",
                'Safe word: "blue umbrella"\nDo NOT leave voicemail',
                "Teams: https://teams.microsoft.com/l/meetup-join/19%3ameeting_X%40thread.v2/0",
                "Mo 9:00\u201310:00 · Гриша · محمد · 李小红 · 🙂",
                "",
            ]
        ),
    )


def param_texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """Arbitrary parameter values (quoted on output when they need it)."""
    return st.text(_PARAM_CHARS, min_size=1, max_size=max_size)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _param(value: str) -> str:
    """Quote where RFC 5545 must, and around ``=``, which icalendar strips blanks next to."""
    if any(c in value for c in ";:,=") or value != value.strip() or not value:
        return f'"{value}"'
    return value


Params = Sequence[tuple[str, str | Sequence[str]]]


def _line(name: str, value: str, params: Params = ()) -> Line:
    """A content line with a raw (already escaped) value."""
    out = [name]
    for pname, pvalue in params:
        values = [pvalue] if isinstance(pvalue, str) else list(pvalue)
        out.append(f";{pname}=" + ",".join(_param(v) for v in values))
    return "".join(out) + ":" + value


def _text_line(name: str, value: str, params: Params = ()) -> Line:
    return _line(name, _escape(value), params)


_LOCAL = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
_DOMAINS = st.sampled_from(
    ["example.org", "example.net", "police.example.org", "resource.calendar.example.net"]
)


@st.composite
def _emails(draw: st.DrawFn) -> str:
    return f"{draw(_LOCAL)}@{draw(_DOMAINS)}"


@st.composite
def _urls(draw: st.DrawFn) -> str:
    host = draw(
        st.sampled_from(
            [
                "meet.google.com",
                "teams.microsoft.com",
                "cloud.example.org",
                "intranet.example.org",
                "zoom.example.net",
            ]
        )
    )
    segments = draw(st.lists(texts(20), max_size=3))
    path = "/".join(quote(s, safe="") for s in segments)
    query = draw(st.one_of(st.just(""), texts(20).map(lambda q: "?note=" + quote(q, safe=""))))
    return f"https://{host}/{path}{query}"


def uids() -> st.SearchStrategy[str]:
    """UIDs as real producers write them, plus hostile ones (emails, commas, unicode)."""
    return st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.binary(min_size=40, max_size=56).map(lambda b: "040000008200E000" + b.hex().upper()),
        st.builds(lambda e, n: f"{n}-{e}", _emails(), st.integers(0, 10**9)),
        st.text(string.ascii_lowercase + string.digits, min_size=26, max_size=26).map(
            lambda s: s + "@google.com"
        ),
        texts(60).filter(lambda s: s.strip() != ""),
    )


# --------------------------------------------------------------------------
# Time forms
# --------------------------------------------------------------------------

_CUSTOM_DEFS: dict[str, tuple[timedelta, list[tuple[str, str, str, str, str | None]]]] = {
    # kind -> (standard offset, [(component, dtstart, offset from, offset to, rrule)])
    "fixed+0545": (
        timedelta(hours=5, minutes=45),
        [("STANDARD", "19700101T000000", "+0545", "+0545", None)],
    ),
    "fixed-0930": (
        -timedelta(hours=9, minutes=30),
        [("STANDARD", "19700101T000000", "-0930", "-0930", None)],
    ),
    "fixed+1345": (
        timedelta(hours=13, minutes=45),
        [("STANDARD", "19700101T000000", "+1345", "+1345", None)],
    ),
    "eu": (
        timedelta(hours=1),
        [
            ("STANDARD", "19701025T030000", "+0200", "+0100", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"),
            ("DAYLIGHT", "19700329T020000", "+0100", "+0200", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU"),
        ],
    ),
    "us_eastern": (
        -timedelta(hours=5),
        [
            ("STANDARD", "19701101T020000", "-0400", "-0500", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU"),
            ("DAYLIGHT", "19700308T020000", "-0500", "-0400", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU"),
        ],
    ),
    "us_pacific": (
        -timedelta(hours=8),
        [
            ("STANDARD", "19701101T020000", "-0700", "-0800", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU"),
            ("DAYLIGHT", "19700308T020000", "-0800", "-0700", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU"),
        ],
    ),
    "south_1030": (
        timedelta(hours=10, minutes=30),
        [
            ("STANDARD", "19700405T020000", "+1100", "+1030", "FREQ=YEARLY;BYMONTH=4;BYDAY=1SU"),
            ("DAYLIGHT", "19701004T020000", "+1030", "+1100", "FREQ=YEARLY;BYMONTH=10;BYDAY=1SU"),
        ],
    ),
}
# Names icalendar resolves itself (Windows names, libical's globally unique IDs):
# their VTIMEZONE must agree with the real zone, so their rules are fixed here.
_KNOWN_CUSTOM_NAMES = {
    # also used by tests/data; a second definition under the same name would be
    # shadowed by icalendar's process-wide timezone cache
    "Office time (Okafor laptop, Springfield) \u2013 do not edit": "us_eastern",
    "(GMT-08.00) Pacific Time (US & Canada)": "us_pacific",
    "Romance Standard Time": "eu",
    "Eastern Standard Time": "us_eastern",
    "Pacific Standard Time": "us_pacific",
    "/freeassociation.sourceforge.net/Tzfile/Europe/Berlin": "eu",
    "/mozilla.org/20070129_1/America/New_York": "us_eastern",
}
_WEIRD_TZ_NAMES = (
    "Customized Time Zone 1",
    "Zone; with: all, the; delimiters",
    "Ωμέγα/Ζώνη 🙂",
    "tz",
)


def _custom_has_tzname(name: str) -> bool:
    """Outlook writes VTIMEZONEs without TZNAME; drawn names sometimes do the same.

    Decided per name: x-wr-timezone treats a time whose zone has no name as
    floating, and icalendar may resolve a Windows or libical name to the real
    zone (which has names) depending on what it parsed before, so only names
    nothing else can resolve go without TZNAME.
    """
    if name in _KNOWN_CUSTOM_NAMES:
        return True
    return bool(zlib.crc32(name.encode("utf-8")) & 0x100)


def _custom_kind(name: str) -> str:
    """Rules chosen by name, because icalendar caches VTIMEZONEs by TZID process-wide."""
    if name in _KNOWN_CUSTOM_NAMES:
        return _KNOWN_CUSTOM_NAMES[name]
    kinds = [k for k in _CUSTOM_DEFS if k not in {"eu", "us_eastern"}]
    return kinds[zlib.crc32(name.encode("utf-8")) % len(kinds)]


@cache
def _known_zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) | frozenset(WINDOWS_TO_OLSON)


def _custom_tz_names() -> st.SearchStrategy[str]:
    drawn = param_texts(30).filter(
        lambda s: (
            s == s.strip()
            and not s.startswith("/")
            and not s.endswith("/")
            and s.strip("/") not in _known_zone_names()
        )
    )
    return st.one_of(st.sampled_from([*_WEIRD_TZ_NAMES, *_KNOWN_CUSTOM_NAMES]), drawn)


@cache
def _iana_vtimezone(name: str) -> tuple[Line, ...]:
    tz = icalendar.Timezone.from_tzid(name, first_date=date(2029, 1, 1), last_date=date(2031, 1, 1))
    return tuple(split_content_lines(tz.to_ical()))


@dataclass(frozen=True)
class _When:
    """How every date of one calendar object is written."""

    mode: str  # "utc" | "floating" | "iana" | "custom" | "date"
    tzid: str | None = None
    kind: str | None = None  # custom rules
    tzname: str | None = "LT"

    def fmt(self, wall: datetime | date) -> tuple[list[tuple[str, str]], str]:
        """Parameters and value for DTSTART/DTEND/RECURRENCE-ID/EXDATE/RDATE."""
        if self.mode == "date":
            return [("VALUE", "DATE")], wall.strftime("%Y%m%d")
        stamp = wall.strftime("%Y%m%dT%H%M%S")
        if self.mode == "utc":
            return [], stamp + "Z"
        if self.mode == "floating":
            return [], stamp
        assert self.tzid is not None
        return [("TZID", self.tzid)], stamp

    def until(self, wall: datetime | date) -> str:
        """RRULE UNTIL in the form RFC 5545 requires for this DTSTART form."""
        if self.mode == "date" or not isinstance(wall, datetime):
            return wall.strftime("%Y%m%d")
        if self.mode == "floating":
            return wall.strftime("%Y%m%dT%H%M%S")
        if self.mode == "iana":
            assert self.tzid is not None
            utc = wall.replace(tzinfo=ZoneInfo(self.tzid)).astimezone(UTC)
        elif self.mode == "custom":
            utc = wall - _CUSTOM_DEFS[self.kind or "eu"][0]
        else:
            utc = wall
        return utc.strftime("%Y%m%dT%H%M%SZ")

    def vtimezone(self) -> list[Line]:
        if self.mode == "iana":
            assert self.tzid is not None
            return list(_iana_vtimezone(self.tzid))
        if self.mode != "custom":
            return []
        assert self.tzid is not None and self.kind is not None
        lines = ["BEGIN:VTIMEZONE", _text_line("TZID", self.tzid)]
        for comp, start, offset_from, offset_to, rrule in _CUSTOM_DEFS[self.kind][1]:
            lines += [f"BEGIN:{comp}", f"DTSTART:{start}"]
            lines += [f"RRULE:{rrule}"] if rrule else []
            lines += [f"TZOFFSETFROM:{offset_from}", f"TZOFFSETTO:{offset_to}"]
            lines += [_text_line("TZNAME", self.tzname)] if self.tzname is not None else []
            lines.append(f"END:{comp}")
        return [*lines, "END:VTIMEZONE"]


@st.composite
def _whens(draw: st.DrawFn) -> _When:
    mode = draw(st.sampled_from(["utc", "floating", "iana", "custom", "date"]))
    if mode == "iana":
        return _When(mode, draw(st.sampled_from(IANA_ZONES)))
    if mode == "custom":
        name = draw(_custom_tz_names())
        tzname = draw(st.one_of(st.just("LT"), texts(12).filter(lambda s: s.strip() != "")))
        return _When(mode, name, _custom_kind(name), tzname if _custom_has_tzname(name) else None)
    return _When(mode)


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


_STAMPS = st.datetimes(
    min_value=datetime(2029, 6, 1), max_value=datetime(2030, 3, 4), timezones=st.just(UTC)
).map(_utc_stamp)


def _dt_line(name: str, when: _When, wall: datetime | date, extra: Params = ()) -> Line:
    params, value = when.fmt(wall)
    return _line(name, value, [*params, *extra])


# --------------------------------------------------------------------------
# Leak vectors
# --------------------------------------------------------------------------


@st.composite
def _address_params(draw: st.DrawFn, organizer: bool = False) -> list[tuple[str, str | list[str]]]:
    """Every parameter an ATTENDEE/ORGANIZER can carry, in random subsets."""
    options: dict[str, st.SearchStrategy[str | list[str]]] = {
        "CN": param_texts(),
        "EMAIL": _emails(),
        "DIR": st.builds(lambda n: f"ldap://ldap.example.org/cn={quote(n)}", param_texts(15)),
        "SENT-BY": _emails().map(lambda e: f"mailto:{e}"),
        "LANGUAGE": st.sampled_from(["en", "de-AT", "ar", "zh-Hans", "es-419"]),
    }
    if not organizer:
        options |= {
            "DELEGATED-TO": st.lists(
                _emails().map(lambda e: f"mailto:{e}"), min_size=1, max_size=2
            ),
            "DELEGATED-FROM": st.lists(
                _emails().map(lambda e: f"mailto:{e}"), min_size=1, max_size=2
            ),
            "MEMBER": st.lists(_emails().map(lambda e: f"mailto:{e}"), min_size=1, max_size=2),
            "ROLE": st.sampled_from(
                ["CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT", "X-OBSERVER"]
            ),
            "PARTSTAT": st.sampled_from(
                ["NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED"]
            ),
            "RSVP": st.sampled_from(["TRUE", "FALSE"]),
            "CUTYPE": st.sampled_from(["INDIVIDUAL", "GROUP", "RESOURCE", "ROOM", "UNKNOWN"]),
            "X-NUM-GUESTS": st.integers(0, 5).map(str),
            "X-RESPONSE-COMMENT": param_texts(),
        }
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=len(options)))
    return [(name, draw(options[name])) for name in chosen]


@st.composite
def _attendees(draw: st.DrawFn, name: str = "ATTENDEE") -> Line:
    params = draw(_address_params(organizer=name == "ORGANIZER"))
    return _line(name, f"mailto:{draw(_emails())}", params)


@st.composite
def _json_text(draw: st.DrawFn) -> str:
    """Outlook's X-MICROSOFT-LOCATIONS / Teams properties: JSON inside TEXT."""
    entries = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "DisplayName": texts(30),
                    "LocationAnnotation": texts(30),
                    "LocationUri": st.just(""),
                    "Unresolved": st.booleans(),
                    "LocationSource": st.integers(0, 6),
                }
            ),
            min_size=1,
            max_size=2,
        )
    )
    return json.dumps(entries, ensure_ascii=draw(st.booleans()), separators=(",", ":"))


def _x_name(prefixes: Sequence[str]) -> st.SearchStrategy[str]:
    suffix = st.text(string.ascii_uppercase + string.digits + "-", min_size=1, max_size=16).filter(
        lambda s: not s.startswith("-") and not s.endswith("-")
    )
    return st.builds(lambda p, s: f"{p}{s}", st.sampled_from(prefixes), suffix)


_X_PREFIXES = (
    "X-MICROSOFT-CDO-",
    "X-MS-OLK-",
    "X-GOOGLE-",
    "X-APPLE-",
    "X-MOZ-",
    "X-LIC-",
    "X-NEXTCLOUD-",
    "X-ZIMBRA-",
    "X-EVOLUTION-",
    "X-FUNAMBOL-",
    "X-",
)
# X- names whose values a sanitizer may legitimately interpret; never given random values.
_RESERVED_X = frozenset(
    {
        "X-WR-TIMEZONE",
        "X-MICROSOFT-CDO-ALLDAYEVENT",
        "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT",
        "X-MICROSOFT-CDO-BUSYSTATUS",
        "X-MICROSOFT-CDO-INTENDEDSTATUS",
        "X-FUNAMBOL-ALLDAY",
    }
)


@st.composite
def _x_properties(draw: st.DrawFn) -> Line:
    name = draw(_x_name(_X_PREFIXES).filter(lambda n: n not in _RESERVED_X))
    params = draw(
        st.lists(st.tuples(_x_name(("X-",)), param_texts()), max_size=2, unique_by=lambda t: t[0])
    )
    return _text_line(name, draw(texts()), params)


@st.composite
def _attach(draw: st.DrawFn) -> Line:
    if draw(st.booleans()):
        payload = base64.b64encode(draw(st.binary(min_size=1, max_size=200))).decode("ascii")
        params: list[tuple[str, str | list[str]]] = [
            ("ENCODING", "BASE64"),
            ("VALUE", "BINARY"),
            ("FMTTYPE", draw(st.sampled_from(["text/plain", "application/pdf", "image/png"]))),
            (draw(st.sampled_from(["FILENAME", "X-FILENAME"])), draw(param_texts())),
        ]
        return _line("ATTACH", payload, params)
    params = [("FMTTYPE", "application/pdf"), ("FILENAME", draw(param_texts()))]
    if draw(st.booleans()):
        params += [("X-NC-FILE-ID", str(draw(st.integers(1, 99999)))), ("SIZE", "48213")]
    return _line("ATTACH", draw(_urls()), params)


@st.composite
def _event_leaks(draw: st.DrawFn, when: _When, has_end: bool) -> list[Line]:
    """A random subset of the leak vectors a VEVENT can carry."""
    geo = st.tuples(st.floats(-89, 89), st.floats(-179, 179)).map(
        lambda g: (f"{g[0]:.6f}", f"{g[1]:.6f}")
    )
    makers: dict[str, st.SearchStrategy[list[Line]]] = {
        "DESCRIPTION": st.builds(
            lambda t, alt: [_text_line("DESCRIPTION", t, [("ALTREP", alt)] if alt else [])],
            texts(),
            st.one_of(st.none(), _urls(), st.just("cid:part1.0001@example.org")),
        ),
        "X-ALT-DESC": texts().map(
            lambda t: [
                _text_line(
                    "X-ALT-DESC",
                    f"<html><body><p>{t}</p></body></html>",
                    [("FMTTYPE", "text/html")],
                )
            ]
        ),
        "STYLED-DESCRIPTION": texts().map(
            lambda t: [
                _text_line(
                    "STYLED-DESCRIPTION",
                    f"<p>{t}</p>",
                    [("VALUE", "TEXT"), ("FMTTYPE", "text/html")],
                )
            ]
        ),
        "LOCATION": st.builds(
            lambda t, lang: [_text_line("LOCATION", t, [("LANGUAGE", lang)] if lang else [])],
            texts(),
            st.one_of(st.none(), st.just("en")),
        ),
        "COMMENT": st.lists(
            texts().map(lambda t: _text_line("COMMENT", t)), min_size=1, max_size=2
        ),
        "CONTACT": st.builds(
            lambda t, alt: [_text_line("CONTACT", t, [("ALTREP", alt)])],
            texts(),
            st.sampled_from(["ldap://ldap.example.org/cn=Jane%20Doe", "CID:part3.msg@example.org"]),
        ),
        "RESOURCES": st.lists(texts(20), min_size=1, max_size=3).map(
            lambda items: [_line("RESOURCES", ",".join(_escape(i) for i in items))]
        ),
        "CATEGORIES-EXTRA": st.lists(texts(20), min_size=1, max_size=2).map(
            lambda items: [_line("CATEGORIES", ",".join(_escape(i) for i in items))]
        ),
        "REQUEST-STATUS": st.one_of(
            st.just(["REQUEST-STATUS:2.0;Success"]),
            st.builds(
                lambda a, b: [_line("REQUEST-STATUS", f"3.7;{_escape(a)};{_escape(b)}")],
                texts(20),
                texts(20),
            ),
        ),
        "ATTENDEE": st.lists(_attendees(), min_size=1, max_size=4),
        "ORGANIZER": _attendees("ORGANIZER").map(lambda x: [x]),
        "X-MOZ-INVITED-ATTENDEE": _emails().map(lambda e: [f"X-MOZ-INVITED-ATTENDEE:mailto:{e}"]),
        "X-MS-OLK-SENDER": st.builds(
            lambda cn, e: [_line("X-MS-OLK-SENDER", f"mailto:{e}", [("CN", cn)])],
            param_texts(),
            _emails(),
        ),
        "GEO": geo.map(lambda g: [f"GEO:{g[0]};{g[1]}"]),
        "X-APPLE-STRUCTURED-LOCATION": st.builds(
            lambda g, addr, title: [
                _line(
                    "X-APPLE-STRUCTURED-LOCATION",
                    f"geo:{g[0]},{g[1]}",
                    [
                        ("VALUE", "URI"),
                        ("X-ADDRESS", addr),
                        ("X-APPLE-RADIUS", "70.5"),
                        ("X-APPLE-REFERENCEFRAME", "1"),
                        ("X-TITLE", title),
                    ],
                )
            ],
            geo,
            param_texts(),
            param_texts(),
        ),
        "X-APPLE-TRAVEL": st.builds(
            lambda addr, title, minutes: [
                _line(
                    "X-APPLE-TRAVEL-START",
                    "",
                    [("ROUTING", "CAR"), ("VALUE", "URI"), ("X-ADDRESS", addr), ("X-TITLE", title)],
                ),
                f"X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT{minutes}M",
                "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC",
            ],
            param_texts(),
            param_texts(),
            st.integers(5, 90),
        ),
        "X-MICROSOFT-LOCATIONS": _json_text().map(
            lambda j: [_text_line("X-MICROSOFT-LOCATIONS", j)]
        ),
        "URL": _urls().map(lambda u: [f"URL;VALUE=URI:{u}" if len(u) % 2 else f"URL:{u}"]),
        "ATTACH": st.lists(_attach(), min_size=1, max_size=2),
        "IMAGE": _urls().map(
            lambda u: [
                _line(
                    "IMAGE", u, [("VALUE", "URI"), ("DISPLAY", "BADGE"), ("FMTTYPE", "image/png")]
                )
            ]
        ),
        "CONFERENCE": st.builds(
            lambda u, label, phone: [
                _line(
                    "CONFERENCE",
                    u,
                    [("VALUE", "URI"), ("FEATURE", ["AUDIO", "VIDEO"]), ("LABEL", label)],
                ),
                _line(
                    "CONFERENCE",
                    f"tel:+1-555-01{phone:02d}",
                    [("VALUE", "URI"), ("FEATURE", "PHONE")],
                ),
            ],
            _urls(),
            param_texts(),
            st.integers(0, 99),
        ),
        "X-GOOGLE-CONFERENCE": st.just(
            ["X-GOOGLE-CONFERENCE:https://meet.google.com/rvk-pqmz-tta"]
        ),
        "TEAMS": st.builds(
            lambda thread: [
                f"X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.microsoft.com/l/meetup-join/"
                f"19%3ameeting_{thread}%40thread.v2/0",
                _text_line(
                    "X-MICROSOFT-SKYPETEAMSPROPERTIES",
                    json.dumps(
                        {"cid": f"19:meeting_{thread}@thread.v2", "private": True},
                        separators=(",", ":"),
                    ),
                ),
                "X-MICROSOFT-ONLINEMEETINGCONFLINK:conf:sip:organizer@example.org\\;gruu",
            ],
            st.text(string.ascii_letters + string.digits, min_size=8, max_size=24),
        ),
        "RELATED-TO": st.builds(
            lambda uid, rel: [_text_line("RELATED-TO", uid, [("RELTYPE", rel)] if rel else [])],
            uids(),
            st.one_of(st.none(), st.sampled_from(["PARENT", "CHILD", "SIBLING"])),
        ),
        "SEQUENCE": st.integers(0, 50).map(lambda n: [f"SEQUENCE:{n}"]),
        "CREATED": _STAMPS.map(lambda s: [f"CREATED:{s}"]),
        "LAST-MODIFIED": _STAMPS.map(lambda s: [f"LAST-MODIFIED:{s}"]),
        "COLOR": st.sampled_from(["turquoise", "crimson", "darkred"]).map(lambda c: [f"COLOR:{c}"]),
        "PRIORITY": st.integers(0, 9).map(lambda n: [f"PRIORITY:{n}"]),
        "X-PROPS": st.lists(_x_properties(), min_size=1, max_size=5),
        "OUTLOOK-STATUS": st.sampled_from(["FREE", "TENTATIVE", "BUSY", "OOF"]).map(
            lambda s: [f"X-MICROSOFT-CDO-BUSYSTATUS:{s}", f"X-MICROSOFT-CDO-INTENDEDSTATUS:{s}"]
        ),
        "ALLDAY-FLAG": st.just(
            [
                "X-MICROSOFT-CDO-ALLDAYEVENT:" + ("TRUE" if when.mode == "date" else "FALSE"),
                "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT:"
                + ("TRUE" if when.mode == "date" else "FALSE"),
            ]
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(makers)), unique=True, max_size=len(makers)))
    lines: list[Line] = []
    for key in chosen:
        lines += draw(makers[key])
    return lines


@st.composite
def _alarm(draw: st.DrawFn, has_end: bool) -> list[Line]:
    action = draw(st.sampled_from(["DISPLAY", "DISPLAY", "AUDIO", "EMAIL"]))
    lines = ["BEGIN:VALARM", f"ACTION:{action}"]
    trigger = draw(
        st.sampled_from(["relative", "end", "absolute"] if has_end else ["relative", "absolute"])
    )
    minutes = draw(st.integers(0, 24 * 60))
    if trigger == "absolute":
        moment = ANCHOR + timedelta(minutes=draw(st.integers(-10 * 24 * 60, 10 * 24 * 60)))
        lines.append(f"TRIGGER;VALUE=DATE-TIME:{_utc_stamp(moment)}")
    elif trigger == "end":
        lines.append(f"TRIGGER;RELATED=END:PT{minutes}M")
    else:
        lines.append(
            draw(
                st.sampled_from(
                    [
                        f"TRIGGER:-PT{minutes}M",
                        f"TRIGGER;VALUE=DURATION:-PT{minutes}M",
                        f"TRIGGER;RELATED=START:-P0DT0H{minutes}M0S",
                    ]
                )
            )
        )
    if action in {"DISPLAY", "EMAIL"}:
        lines.append(_text_line("DESCRIPTION", draw(texts())))
    if action == "EMAIL":
        lines.append(_text_line("SUMMARY", draw(texts())))
        lines += draw(st.lists(_attendees(), min_size=1, max_size=2))
    if action == "AUDIO" and draw(st.booleans()):
        lines.append(_line("ATTACH", draw(_urls()), [("FMTTYPE", "audio/basic")]))
    if draw(st.booleans()):
        lines += [f"REPEAT:{draw(st.integers(1, 3))}", f"DURATION:PT{draw(st.integers(1, 15))}M"]
    extras: dict[str, st.SearchStrategy[list[Line]]] = {
        "uid": st.uuids().map(lambda u: [f"UID:{u}", f"X-WR-ALARMUID:{u}"]),
        "ack": _STAMPS.map(lambda s: [f"ACKNOWLEDGED:{s}"]),
        "related": uids().map(lambda u: [_text_line("RELATED-TO", u)]),
        "apple": st.just(["X-APPLE-DEFAULT-ALARM:TRUE"]),
        "proximity": param_texts().map(
            lambda addr: [
                "PROXIMITY:ARRIVE",
                _line(
                    "X-APPLE-STRUCTURED-LOCATION",
                    "geo:44.046236,-123.022029",
                    [("VALUE", "URI"), ("X-ADDRESS", addr)],
                ),
            ]
        ),
        "x": st.lists(_x_properties(), min_size=1, max_size=2),
    }
    for key in draw(st.lists(st.sampled_from(sorted(extras)), unique=True)):
        lines += draw(extras[key])
    return [*lines, "END:VALARM"]


@st.composite
def _vlocation(draw: st.DrawFn) -> list[Line]:
    lines = ["BEGIN:VLOCATION", f"UID:{draw(st.uuids())}", _text_line("NAME", draw(texts()))]
    if draw(st.booleans()):
        lines.append(_text_line("LOCATION-TYPE", draw(st.sampled_from(["office", "residence"]))))
    if draw(st.booleans()):
        lines.append(_text_line("DESCRIPTION", draw(texts())))
    if draw(st.booleans()):
        lines.append("GEO:52.205337;0.121817")
    if draw(st.booleans()):
        lines.append(f"URL:{draw(_urls())}")
    if draw(st.booleans()):
        lines.append(
            _text_line(
                "STRUCTURED-DATA",
                json.dumps({"@type": "Place", "address": draw(texts())}),
                [
                    ("VALUE", "TEXT"),
                    ("FMTTYPE", "application/ld+json"),
                    ("SCHEMA", "https://schema.org/Place"),
                ],
            )
        )
    return [*lines, "END:VLOCATION"]


@st.composite
def _participant(draw: st.DrawFn) -> list[Line]:
    lines = [
        "BEGIN:PARTICIPANT",
        f"UID:{draw(st.uuids())}",
        f"PARTICIPANT-TYPE:{draw(st.sampled_from(['ACTIVE', 'CONTACT', 'OWNER', 'OBSERVER']))}",
        f"CALENDAR-ADDRESS:mailto:{draw(_emails())}",
    ]
    if draw(st.booleans()):
        lines.append(_text_line("DESCRIPTION", draw(texts())))
    if draw(st.booleans()):
        lines.append(_text_line("SUMMARY", draw(texts())))
    if draw(st.booleans()):
        lines.append(
            _text_line(
                "STRUCTURED-DATA",
                json.dumps({"name": draw(texts()), "tel": "555-0187"}),
                [("VALUE", "TEXT"), ("FMTTYPE", "application/json")],
            )
        )
    if draw(st.booleans()):
        lines += draw(_vlocation())
    return [*lines, "END:PARTICIPANT"]


@st.composite
def _x_component(draw: st.DrawFn, depth: int = 0) -> list[Line]:
    name = draw(_x_name(("X-",)))
    lines = [f"BEGIN:{name}", *draw(st.lists(_x_properties(), max_size=3))]
    if draw(st.booleans()):
        lines.append(_text_line("DESCRIPTION", draw(texts())))
    if depth == 0 and draw(st.booleans()):
        lines += draw(_x_component(depth=1))
    return [*lines, f"END:{name}"]


@st.composite
def _event_subcomponents(draw: st.DrawFn, has_end: bool) -> list[Line]:
    lines: list[Line] = []
    for alarm in draw(st.lists(_alarm(has_end), max_size=3)):
        lines += alarm
    for participant in draw(st.lists(_participant(), max_size=2)):
        lines += participant
    for location in draw(st.lists(_vlocation(), max_size=1)):
        lines += location
    for comp in draw(st.lists(_x_component(), max_size=1)):
        lines += comp
    return lines


# --------------------------------------------------------------------------
# Events and series
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timing:
    start: datetime | date
    length: timedelta
    end_form: str  # "dtend" | "duration" | "none"


def _end_lines(when: _When, timing: _Timing, start: datetime | date) -> list[Line]:
    if timing.end_form == "dtend":
        return [_dt_line("DTEND", when, start + timing.length)]
    if timing.end_form == "duration":
        if when.mode == "date":
            return [f"DURATION:P{timing.length.days}D"]
        return [f"DURATION:PT{int(timing.length.total_seconds() // 60)}M"]
    return []


@st.composite
def _timings(draw: st.DrawFn, when: _When) -> _Timing:
    end_form = draw(st.sampled_from(["dtend", "dtend", "duration", "none"]))
    if when.mode == "date":
        first, last = _FIRST_START.date(), _LAST_START.date() - timedelta(days=3)
        start: datetime | date = first + timedelta(days=draw(st.integers(0, (last - first).days)))
        return _Timing(start, timedelta(days=draw(st.integers(1, 3))), end_form)
    span = int((_LAST_START - _FIRST_START).total_seconds() // 300)
    start = _FIRST_START + timedelta(minutes=5 * draw(st.integers(0, span)))
    return _Timing(start, timedelta(minutes=5 * draw(st.integers(1, 48))), end_form)


def _limit(when: _When) -> datetime | date:
    """Latest start of any occurrence, leaving room for the longest event."""
    return _LAST_START.date() - timedelta(days=3) if when.mode == "date" else _LAST_START


@st.composite
def _series(draw: st.DrawFn, uid: str, when: _When) -> list[list[Line]]:
    """A master VEVENT and, for recurring series, its overrides."""
    timing = draw(_timings(when))
    has_end = timing.end_form != "none"
    summary = draw(texts())
    master = [
        "BEGIN:VEVENT",
        _text_line("UID", uid),
        f"DTSTAMP:{draw(_STAMPS)}",
        _dt_line("DTSTART", when, timing.start),
        *_end_lines(when, timing, timing.start),
        _text_line("SUMMARY", summary),
    ]
    status = draw(st.sampled_from([None, "TENTATIVE", "CONFIRMED", "CANCELLED"]))
    master += [f"STATUS:{status}"] if status else []
    transp = draw(st.sampled_from([None, "OPAQUE", "TRANSPARENT"]))
    master += [f"TRANSP:{transp}"] if transp else []
    klass = draw(st.sampled_from([None, "PUBLIC", "PRIVATE", "CONFIDENTIAL"]))
    master += [f"CLASS:{klass}"] if klass else []
    categories = draw(st.lists(st.sampled_from(CATEGORY_VOCABULARY), unique=True, max_size=3))
    if categories:
        master.append("CATEGORIES:" + ",".join(categories))

    overrides: list[list[Line]] = []
    freq = draw(st.sampled_from([None, "DAILY", "WEEKLY"]))
    interval = draw(st.integers(1, 3))
    period = timedelta(days=interval * (7 if freq == "WEEKLY" else 1))
    room = _limit(when) - timing.start
    max_count = min(30, room // period + 1) if freq else 1
    if freq and max_count >= 2:
        count = draw(st.integers(2, max_count))
        parts = [f"FREQ={freq}"]
        if interval > 1 or draw(st.booleans()):
            parts.append(f"INTERVAL={interval}")
        if draw(st.booleans()):
            parts.append(f"COUNT={count}")
        else:
            # UNTIL a little after the last wanted start: enough to absorb DST and the
            # approximate offset of custom zones, far less than one period.
            last = timing.start + (count - 1) * period
            if when.mode == "date":
                slack = timedelta(days=draw(st.integers(0, interval - 1)))
            else:
                slack = timedelta(minutes=draw(st.integers(60, 180)))
            parts.append(f"UNTIL={when.until(last + slack)}")
        # BYDAY names a local weekday; for UTC starts an X-WR-TIMEZONE would move it.
        if freq == "WEEKLY" and when.mode != "utc" and draw(st.booleans()):
            parts.append(
                "BYDAY=" + ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][timing.start.weekday()]
            )
        if draw(st.booleans()):
            parts.append("WKST=" + draw(st.sampled_from(["MO", "SU"])))
        master.append("RRULE:" + ";".join(draw(st.permutations(parts))))
        occurrences = [timing.start + k * period for k in range(count)]

        excluded = draw(st.lists(st.integers(1, count - 1), unique=True, max_size=3))
        if excluded:
            walls = [occurrences[k] for k in sorted(excluded)]
            if draw(st.booleans()):
                params, _ = when.fmt(walls[0])
                master.append(_line("EXDATE", ",".join(when.fmt(w)[1] for w in walls), params))
            else:
                master += [_dt_line("EXDATE", when, w) for w in walls]
        unit = timedelta(days=1) if when.mode == "date" else timedelta(hours=1)
        extra = draw(st.lists(st.integers(1, max(1, room // unit)), max_size=2))
        if extra:
            walls = [min(timing.start + n * unit, _limit(when)) for n in extra]
            params, _ = when.fmt(walls[0])
            master.append(_line("RDATE", ",".join(when.fmt(w)[1] for w in walls), params))

        free = [k for k in range(count) if k not in excluded]
        picked = draw(st.lists(st.sampled_from(free), unique=True, max_size=min(3, len(free))))
        for k in picked:
            overrides.append(draw(_override(uid, when, timing, occurrences[k])))

    master += draw(_event_leaks(when, has_end))
    body = draw(st.permutations(master[1:]))
    return [["BEGIN:VEVENT", *body, *draw(_event_subcomponents(has_end)), "END:VEVENT"], *overrides]


@st.composite
def _override(
    draw: st.DrawFn, uid: str, when: _When, timing: _Timing, occurrence: datetime | date
) -> list[Line]:
    """A moved, retitled or cancelled instance of the series."""
    kind = draw(st.sampled_from(["moved", "retitled", "cancelled"]))
    start = occurrence
    if kind == "moved":
        if when.mode == "date":
            shift = timedelta(days=draw(st.sampled_from([-2, -1, 1, 2])))
        else:
            shift = timedelta(minutes=30 * draw(st.integers(-48, 48).filter(bool)))
        start = max(min(occurrence + shift, _limit(when)), _first(when))
    has_end = timing.end_form != "none"
    lines = [
        _text_line("UID", uid),
        f"DTSTAMP:{draw(_STAMPS)}",
        _dt_line("RECURRENCE-ID", when, occurrence),
        _dt_line("DTSTART", when, start),
        *_end_lines(when, timing, start),
        _text_line("SUMMARY", draw(texts())),
    ]
    if kind == "cancelled":
        lines.append("STATUS:CANCELLED")
    lines += draw(_event_leaks(when, has_end))
    return [
        "BEGIN:VEVENT",
        *draw(st.permutations(lines)),
        *draw(_event_subcomponents(has_end)),
        "END:VEVENT",
    ]


def _first(when: _When) -> datetime | date:
    return _FIRST_START.date() if when.mode == "date" else _FIRST_START


# --------------------------------------------------------------------------
# Calendar objects
# --------------------------------------------------------------------------


@st.composite
def _calendar_lines(draw: st.DrawFn, uid: str) -> list[Line]:
    when = draw(_whens())
    lines = [
        "BEGIN:VCALENDAR",
        _text_line(
            "PRODID",
            draw(
                st.one_of(
                    st.sampled_from(
                        [
                            "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
                            "-//Google Inc//Google Calendar 70.9054//EN",
                            "-//Apple Inc.//macOS 14.4//EN",
                            "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
                            "-//IDN nextcloud.com//Calendar app 4.7.6//EN",
                            "Zimbra-Calendar-Provider",
                        ]
                    ),
                    texts(40).filter(lambda s: s.strip() != ""),
                )
            ),
        ),
        "VERSION:2.0",
    ]
    calendar_props: dict[str, st.SearchStrategy[list[Line]]] = {
        "CALSCALE": st.just(["CALSCALE:GREGORIAN"]),
        "X-WR-CALNAME": texts().map(lambda t: [_text_line("X-WR-CALNAME", t)]),
        "X-WR-CALDESC": texts().map(lambda t: [_text_line("X-WR-CALDESC", t)]),
        "X-WR-TIMEZONE": st.sampled_from(IANA_ZONES).map(lambda z: [f"X-WR-TIMEZONE:{z}"]),
        "X-WR-RELCALID": st.uuids().map(lambda u: [f"X-WR-RELCALID:{{{u}}}"]),
        "NAME": texts().map(lambda t: [_text_line("NAME", t)]),
        "COLOR": st.just(["COLOR:darkred", "X-APPLE-CALENDAR-COLOR:#B22222FF"]),
        "SOURCE": _urls().map(lambda u: [f"SOURCE;VALUE=URI:{u}"]),
        "X-PROPS": st.lists(_x_properties(), min_size=1, max_size=3),
    }
    for key in draw(st.lists(st.sampled_from(sorted(calendar_props)), unique=True)):
        lines += draw(calendar_props[key])
    components = [when.vtimezone()] if when.mode in {"iana", "custom"} else []
    components += draw(_series(uid, when))
    components += draw(st.lists(_x_component(), max_size=1))
    for comp in draw(st.permutations(components)):
        lines += comp
    return [*lines, "END:VCALENDAR"]


@st.composite
def _serialise(draw: st.DrawFn, lines: list[Line]) -> bytes:
    """Fold like a real producer: 75 octets or narrower, space or tab continuation."""
    width = draw(st.sampled_from([75, 75, 74, 60, 40, 12]))
    continuation = draw(st.sampled_from([" ", " ", "\t"]))
    return ("\r\n".join(fold_line(ln, width, continuation) for ln in lines) + "\r\n").encode(
        "utf-8"
    )


@st.composite
def _calendar_with_uid(draw: st.DrawFn, uid: str) -> bytes:
    return draw(_serialise(draw(_calendar_lines(uid))))


@st.composite
def _calendar(draw: st.DrawFn) -> bytes:
    return draw(_calendar_with_uid(draw(uids())))


def calendars() -> st.SearchStrategy[bytes]:
    """One hostile but valid CalDAV calendar object, as bytes."""
    return _calendar()


def calendar_sets(min_size: int = 1, max_size: int = 5) -> st.SearchStrategy[list[bytes]]:
    """Several calendar objects with distinct UIDs, as one CalDAV collection holds them."""
    return st.lists(uids(), min_size=min_size, max_size=max_size, unique=True).flatmap(
        lambda ids: st.tuples(*(_calendar_with_uid(uid) for uid in ids)).map(list)
    )
