"""Canary planting: tag every identifying value of a calendar so a leak can be traced.

`plant` rewrites an iCalendar object so that every value a sanitizer could
copy (text, parameters, URIs, UIDs, TZID names, X- properties, timestamps,
SEQUENCE, GEO, inline attachments, list items) carries a unique marker.
Values that decide *when* an event happens stay valid, so the planted
calendar still syncs the same way; those lines get an ``X-CANARY``
parameter instead, because the parameters of such lines can leak too.
`MarkerSet.find` then looks for every marker in whatever the sanitizer
wrote, tolerating line folding, case changes and backslash escaping.

The module works on raw content lines rather than on icalendar objects:
icalendar normalises quoting, escaping and unknown values, and a canary
tool must see (and write) exactly what is on the wire.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar

__all__ = [
    "TAG_PARAM",
    "ContentLine",
    "Hit",
    "Marker",
    "MarkerSet",
    "assert_clean",
    "fold_line",
    "format_content_line",
    "parse_content_line",
    "plant",
    "split_content_lines",
    "unescape_text",
    "unfold",
]

TAG_PARAM = "X-CANARY"
"""Parameter added to lines whose value cannot carry a marker without changing its meaning."""

# --------------------------------------------------------------------------
# Content-line lexing (shared with schema.py, which must not trust icalendar's view)
# --------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9-]+")
_FOLD_RE = re.compile(r"(?:\r?\n)+[ \t]")
_FOLD_BYTES_RE = re.compile(rb"(?:\r?\n)+[ \t]")
_NEWLINE_RE = re.compile(r"\r?\n")
_UNESCAPED_COMMA_RE = re.compile(r"(?<!\\)((?:\\\\)*),")


@dataclass(frozen=True)
class ContentLine:
    """One unfolded content line split into name, parameters and the still-escaped value."""

    name: str
    params: tuple[tuple[str, tuple[str, ...]], ...]
    value: str

    @property
    def uname(self) -> str:
        """Upper-case name; iCalendar names are case-insensitive."""
        return self.name.upper()

    def param(self, name: str) -> tuple[str, ...] | None:
        """Values of the first parameter called `name` (case-insensitive), if any."""
        for pname, values in self.params:
            if pname.upper() == name.upper():
                return values
        return None


def unfold(data: bytes | str) -> str:
    """Undo RFC 5545 folding (CRLF or LF followed by space or tab).

    Bytes are decoded as UTF-8 with surrogateescape so invalid input survives a
    round trip instead of being silently repaired.
    """
    if isinstance(data, bytes):
        data = _FOLD_BYTES_RE.sub(b"", data)
        text = data.decode("utf-8", "surrogateescape")
    else:
        text = _FOLD_RE.sub("", data)
    return text.removeprefix("\ufeff")


def split_content_lines(data: bytes | str) -> list[str]:
    """Unfold and split into non-empty logical lines."""
    return [line for line in _NEWLINE_RE.split(unfold(data)) if line]


def parse_content_line(line: str) -> ContentLine | None:
    """Lex one unfolded line per RFC 5545 section 3.1, or None if it is not a content line.

    Strict on purpose: no whitespace around delimiters, DQUOTE only around a
    whole parameter value. Whatever this rejects is something a lenient parser
    might read differently.
    """
    m = _NAME_RE.match(line)
    if not m:
        return None
    name, i, n = m.group(), m.end(), len(line)
    params: list[tuple[str, tuple[str, ...]]] = []
    while i < n and line[i] == ";":
        m = _NAME_RE.match(line, i + 1)
        if not m or m.end() >= n or line[m.end()] != "=":
            return None
        pname, i = m.group(), m.end() + 1
        values: list[str] = []
        while True:
            if i < n and line[i] == '"':
                j = line.find('"', i + 1)
                if j < 0:
                    return None
                values.append(line[i + 1 : j])
                i = j + 1
            else:
                j = i
                while j < n and line[j] not in ';:,"':
                    j += 1
                values.append(line[i:j])
                i = j
            if i < n and line[i] == ",":
                i += 1
                continue
            break
        params.append((pname, tuple(values)))
    if i >= n or line[i] != ":":
        return None
    return ContentLine(name, tuple(params), line[i + 1 :])


def _quote_param(value: str) -> str:
    """Quote a parameter value when RFC 5545 or icalendar's lenient reader needs it.

    icalendar treats a backslash outside quotes as an escape and strips blanks
    around ``=`` outside quotes, so those values are quoted as well.
    """
    if any(c in value for c in ";:,=\\") or value != value.strip():
        return f'"{value}"'
    return value


def format_content_line(cl: ContentLine) -> str:
    """Serialise a ContentLine without folding."""
    parts = [cl.name]
    for pname, values in cl.params:
        parts.append(f";{pname}=" + ",".join(_quote_param(v) for v in values))
    return "".join(parts) + ":" + cl.value


def _octets(ch: str) -> int:
    if "\udc80" <= ch <= "\udcff":  # surrogate-escaped raw byte
        return 1
    return len(ch.encode("utf-8"))


def fold_line(line: str, width: int = 75, continuation: str = " ") -> str:
    """Fold to at most `width` octets per physical line, never inside a UTF-8 character.

    `continuation` is the space or tab that starts each continuation line.
    """
    out: list[str] = []
    current: list[str] = []
    size, limit = 0, width
    for ch in line:
        o = _octets(ch)
        if size + o > limit:
            out.append("".join(current))
            current, size, limit = [continuation], 1, width
        current.append(ch)
        size += o
    out.append("".join(current))
    return "\r\n".join(out)


def unescape_text(value: str) -> str:
    """Remove RFC 5545 TEXT escapes (``\\,`` ``\\;`` ``\\\\`` ``\\n``)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _escape_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _split_unescaped(value: str, sep: str) -> list[str]:
    """Split a raw (escaped) value on separators that are not backslash-escaped."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


# --------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """A planted canary: what to search for and where it was planted.

    `forms` are the case-folded strings searched for. Numeric markers
    (timestamps, SEQUENCE, GEO) are `bounded`: they only count when not part of
    a longer run of digits or letters, so a hash in the output cannot fake a hit.
    """

    token: str
    kind: str
    where: tuple[str, ...]
    forms: tuple[str, ...]
    bounded: bool = False


@dataclass(frozen=True)
class Hit:
    """One marker found in searched data."""

    token: str
    kind: str
    planted_at: tuple[str, ...]
    found_in: str
    line: int
    excerpt: str
    after_unescaping: bool

    def __str__(self) -> str:
        planted = ", ".join(self.planted_at) or "(not in this marker set)"
        how = " (after removing backslash escapes)" if self.after_unescaping else ""
        return (
            f"{self.token} [{self.kind}] planted at {planted}; "
            f"found in {self.found_in} line {self.line}{how}: {self.excerpt}"
        )


_BOUND_BEFORE = r"(?<![0-9a-su-z])"  # a 't' may precede: 20310417T031559Z
_BOUND_AFTER = r"(?![0-9])"


class MarkerSet:
    """The markers planted into one or more calendars, searchable in any output."""

    def __init__(self, prefix: str = "CNRY", markers: Iterable[Marker] = ()) -> None:
        self.prefix = prefix
        self._markers: dict[str, Marker] = {}
        self._pattern_cache: tuple[re.Pattern[str], re.Pattern[str] | None] | None = None
        for marker in markers:
            self.add(marker)

    def add(self, marker: Marker) -> None:
        """Add a marker; a token added twice keeps both sets of locations."""
        old = self._markers.get(marker.token)
        if old is not None:
            marker = Marker(
                marker.token,
                old.kind,
                old.where + tuple(w for w in marker.where if w not in old.where),
                tuple(dict.fromkeys(old.forms + marker.forms)),
                old.bounded,
            )
        self._markers[marker.token] = marker
        self._pattern_cache = None

    def __len__(self) -> int:
        return len(self._markers)

    def __iter__(self) -> Iterator[Marker]:
        return iter(self._markers.values())

    def __contains__(self, token: object) -> bool:
        return token in self._markers

    def __getitem__(self, token: str) -> Marker:
        return self._markers[token]

    def __or__(self, other: MarkerSet) -> MarkerSet:
        merged = MarkerSet(self.prefix, self)
        for marker in other:
            merged.add(marker)
        return merged

    @property
    def tokens(self) -> list[str]:
        """All marker tokens."""
        return list(self._markers)

    def locations(self) -> list[str]:
        """Every place a marker was planted."""
        return [w for m in self for w in m.where]

    def kinds(self) -> Counter[str]:
        """How many markers of each kind were planted."""
        return Counter(m.kind for m in self)

    def describe(self) -> str:
        """Human-readable table of markers, for debugging a failing test."""
        return "\n".join(f"{m.token:24} {m.kind:12} {', '.join(m.where)}" for m in self)

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
        if self._pattern_cache is None:
            generic = re.compile(re.escape(self.prefix.casefold()) + r"[0-9a-f]{10}")
            bounded = sorted({f for m in self if m.bounded for f in m.forms}, key=len, reverse=True)
            # Zero-width lookahead so overlapping forms (an instant and its time of
            # day) are all reported.
            numeric = (
                re.compile(
                    _BOUND_BEFORE
                    + "(?=("
                    + "|".join(map(re.escape, bounded))
                    + ")"
                    + _BOUND_AFTER
                    + ")"
                )
                if bounded
                else None
            )
            self._pattern_cache = (generic, numeric)
        return self._pattern_cache

    def find(self, data: bytes | str, found_in: str = "data") -> list[Hit]:
        """Every marker occurrence in `data`.

        Searches the unfolded, case-folded text and the same text with
        backslash escapes removed. Any token shaped like a marker of this
        prefix is reported even if it is not in this set: it can only have
        come from some planted calendar.
        """
        by_form: dict[str, Marker] = {}
        for planted in self:
            for form in planted.forms:
                by_form.setdefault(form, planted)
        generic, numeric = self._patterns()
        hits: dict[tuple[str, int], Hit] = {}
        lines = _NEWLINE_RE.split(unfold(data).casefold())
        for line_no, line in enumerate(lines, start=1):
            unescaped = unescape_text(line)
            variants = [(False, line)] + ([(True, unescaped)] if unescaped != line else [])
            for after_unescaping, variant in variants:
                found: list[tuple[int, str, Marker | None]] = [
                    (m.start(), m.group(), by_form.get(m.group()))
                    for m in generic.finditer(variant)
                ]
                if numeric is not None:
                    found += [
                        (m.start(1), m.group(1), by_form[m.group(1)])
                        for m in numeric.finditer(variant)
                    ]
                for pos, form, marker in found:
                    token = marker.token if marker else form
                    if (token, line_no) in hits:
                        continue
                    excerpt = variant[max(0, pos - 40) : pos + len(form) + 40]
                    hits[(token, line_no)] = Hit(
                        token=token,
                        kind=marker.kind if marker else "unknown",
                        planted_at=marker.where if marker else (),
                        found_in=found_in,
                        line=line_no,
                        excerpt=excerpt.encode("utf-8", "backslashreplace").decode("utf-8"),
                        after_unescaping=after_unescaping,
                    )
        return sorted(hits.values(), key=lambda h: (h.line, h.token))


def assert_clean(data: bytes | str, markers: MarkerSet, where: str) -> None:
    """Fail with a list of every leaked marker and where it came from."""
    hits = markers.find(data, found_in=where)
    if hits:
        lines = "\n  ".join(str(h) for h in hits)
        raise AssertionError(f"{len(hits)} canary marker(s) leaked into {where}:\n  {lines}")


# --------------------------------------------------------------------------
# Planting
# --------------------------------------------------------------------------

# Values that decide when/whether an event happens, or how a value is decoded.
# They stay intact; their lines get an X-CANARY parameter instead.
INTERPRETIVE_PROPERTIES = frozenset(
    {
        "DTSTART", "DTEND", "DUE", "DURATION", "RRULE", "EXRULE", "EXDATE", "RDATE",
        "RECURRENCE-ID", "TRIGGER", "REPEAT", "STATUS", "TRANSP", "CLASS", "ACTION",
        "VERSION", "CALSCALE", "METHOD", "TZOFFSETFROM", "TZOFFSETTO", "TZUNTIL",
        "PRIORITY", "PERCENT-COMPLETE", "FREEBUSY", "REFRESH-INTERVAL",
        "X-WR-TIMEZONE", "X-MICROSOFT-CDO-ALLDAYEVENT", "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT",
        "X-MICROSOFT-CDO-BUSYSTATUS", "X-MICROSOFT-CDO-INTENDEDSTATUS", "X-FUNAMBOL-ALLDAY",
    }
)  # fmt: skip
# Timezone rule lines: dateutil (behind icalendar's VTIMEZONE support) rejects any
# parameter on them, and their values are public rules, so they stay untouched.
TZ_RULE_PROPERTIES = frozenset(
    {"DTSTART", "RRULE", "RDATE", "EXDATE", "EXRULE", "TZOFFSETFROM", "TZOFFSETTO"}
)
INTERPRETIVE_PARAMS = frozenset({"VALUE", "ENCODING", "RANGE", "RELATED", "TZID"})
INSTANT_PROPERTIES = frozenset({"DTSTAMP", "CREATED", "LAST-MODIFIED", "ACKNOWLEDGED", "COMPLETED"})
URI_PROPERTIES = frozenset(
    {"URL", "ATTACH", "IMAGE", "CONFERENCE", "TZURL", "SOURCE", "ORGANIZER", "ATTENDEE",
     "CALENDAR-ADDRESS", "LINK", "CONCEPT"}
)  # fmt: skip
LIST_PROPERTIES = frozenset({"CATEGORIES", "RESOURCES"})
URI_PARAMS = frozenset({"ALTREP", "DIR", "SENT-BY", "DELEGATED-TO", "DELEGATED-FROM", "MEMBER",
                        "SCHEMA"})  # fmt: skip
_TEXTLIKE_VALUE_TYPES = frozenset({"TEXT", "URI", "CAL-ADDRESS", "BINARY", "UNKNOWN"})
_URI_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_KNOWN_SCHEMES = frozenset(
    {"http", "https", "mailto", "tel", "geo", "sip", "sips", "urn", "cid", "mid", "data", "ldap",
     "ldaps", "ftp", "webcal", "webcals", "file", "msteams", "skype", "zoommtg", "callto",
     "facetime", "maps", "x-apple-reminder", "message"}
)  # fmt: skip


@dataclass
class _Planter:
    prefix: str
    rng: random.Random
    original_text: str
    keep_categories: frozenset[str]
    keep_params: frozenset[str]
    markers: MarkerSet = field(init=False)
    used: set[str] = field(default_factory=set)
    used_days: set[str] = field(default_factory=set)
    tz_map: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (token, new)
    uid_map: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (token, new)

    def __post_init__(self) -> None:
        self.markers = MarkerSet(self.prefix)
        self._haystack = self.original_text.casefold()

    # -- marker factories --------------------------------------------------

    def _fresh(self, candidate: str) -> bool:
        folded = candidate.casefold()
        if folded in self.used or folded in self._haystack:
            return False
        self.used.add(folded)
        return True

    def token(self, kind: str, where: str) -> str:
        """A fresh `prefix` + 10 hex marker, recorded under `where`."""
        while True:
            token = f"{self.prefix}{self.rng.getrandbits(40):010x}"
            if self._fresh(token):
                break
        self.markers.add(Marker(token, kind, (where,), (token.casefold(),)))
        return token

    def instant(self, where: str) -> str:
        """A unique UTC instant with an unusual time of day (seconds never :00)."""
        while True:
            day = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=self.rng.randrange(3200))
            moment = day.replace(
                hour=self.rng.randrange(24),
                minute=self.rng.choice([m for m in range(60) if m % 5]),
                second=self.rng.randrange(1, 60),
            )
            stamp = moment.strftime("%Y%m%dT%H%M%SZ")
            tod = moment.strftime("%H%M%S")
            date = moment.strftime("%Y%m%d")
            if date in self.used_days or not self._fresh(stamp) or not self._fresh(tod):
                continue
            self.used_days.add(date)
            iso = moment.strftime("%Y-%m-%dT%H:%M:%S")
            self.markers.add(
                Marker(stamp, "instant", (where,), (stamp.casefold(), iso.casefold(), date), True)
            )
            self.markers.add(
                Marker(tod, "time-of-day", (where,), (tod, moment.strftime("%H:%M:%S")), True)
            )
            return stamp

    def number(self, kind: str, where: str, make: Callable[[], str] | None = None) -> str:
        """A unique bounded numeric marker (SEQUENCE, GEO parts)."""
        draw = make or (lambda: str(self.rng.randrange(100_000_000, 999_999_999)))
        while True:
            candidate = draw()
            if self._fresh(candidate.lstrip("-")):
                break
        self.markers.add(Marker(candidate, kind, (where,), (candidate.lstrip("-"),), True))
        return candidate

    # -- value planting ----------------------------------------------------

    def text(self, raw: str, where: str, kind: str = "text") -> str:
        token = self.token(kind, where)
        return f"{token} {raw}" if raw else token

    def uri(self, value: str, where: str) -> str:
        """Put a marker inside a URI without breaking its generic syntax."""
        token = self.token("uri", where)
        m = _URI_RE.fullmatch(value)
        if not m:
            return f"{token}-{value}" if value else token
        scheme, rest = m.groups()
        low = scheme.lower()
        if rest.startswith("//"):
            end = len(rest)
            for sep in "/?#":
                k = rest.find(sep, 2)
                if k >= 0:
                    end = min(end, k)
            return f"{scheme}:{rest[:end]}/{token}{rest[end:]}"
        if low == "geo":
            return f"{value};cnry={token}"
        if low == "data" and "," in rest:
            head, data = rest.split(",", 1)
            parts = head.split(";")
            parts.insert(1, f"cnry={token}")
            return f"data:{';'.join(parts)},{data}"
        return f"{scheme}:{token}.{rest}"

    def json_text(self, raw: str, where: str) -> str | None:
        """Plant inside every string of a JSON value (Outlook's X-MICROSOFT-LOCATIONS)."""
        stripped = raw.lstrip()
        if not stripped.startswith(("{", "[")):
            return None
        try:
            data = json.loads(unescape_text(raw))
        except ValueError:
            return None
        count = 0

        def walk(node: Any, path: str) -> Any:
            nonlocal count
            if isinstance(node, str):
                count += 1
                return self.text(node, f"{where}{path}", "json")
            if isinstance(node, list):
                return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
            if isinstance(node, dict):
                return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
            return node

        planted = walk(data, "$")
        if not count:
            return None
        return _escape_text(json.dumps(planted, ensure_ascii=False, separators=(",", ":")))

    def binary(self, raw: str, where: str) -> str:
        """Prefix base64 with the marker (padded to 4), so it stays valid base64 and greppable."""
        token = self.token("binary", where)
        return token + "A" * (-len(token) % 4) + raw

    def param_value(self, pname: str, value: str, where: str) -> str:
        if pname in URI_PARAMS or (
            (m := _URI_RE.fullmatch(value)) and m.group(1).lower() in _KNOWN_SCHEMES
        ):
            return self.uri(value, where)
        if pname == "EMAIL" and "@" in value:
            return f"{self.token('param', where)}.{value}"
        return self.text(value, where, "param")


def _plant_params(
    p: _Planter, cl: ContentLine, label: str
) -> tuple[list[tuple[str, tuple[str, ...]]], bool]:
    """Plant every parameter value; returns the new params and whether any carries a marker."""
    out: list[tuple[str, tuple[str, ...]]] = []
    planted = False
    for pname, values in cl.params:
        upper = pname.upper()
        if upper == "TZID":
            # Renamed together with its VTIMEZONE; a zone without one keeps its name.
            new = []
            for v in values:
                if v in p.tz_map:
                    token, renamed = p.tz_map[v]
                    p.markers.add(Marker(token, "tzid", (f"{label};TZID",), ()))
                    new.append(renamed)
                    planted = True
                else:
                    new.append(v)
            out.append((pname, tuple(new)))
        elif upper in INTERPRETIVE_PARAMS or upper in p.keep_params:
            out.append((pname, values))
        else:
            multi = len(values) > 1
            out.append(
                (
                    pname,
                    tuple(
                        p.param_value(upper, v, f"{label};{upper}" + (f"#{i}" if multi else ""))
                        for i, v in enumerate(values)
                    ),
                )
            )
            planted = True
    return out, planted


def _plant_value(p: _Planter, cl: ContentLine, label: str) -> str | None:
    """The planted value, or None when the value must stay as it is."""
    name = cl.uname
    value_type = (cl.param("VALUE") or ("",))[0].upper()
    encoding = (cl.param("ENCODING") or ("",))[0].upper()
    if name in INTERPRETIVE_PROPERTIES:
        return None
    if value_type == "BINARY" or encoding == "BASE64":
        return p.binary(cl.value, label)
    if value_type and value_type not in _TEXTLIKE_VALUE_TYPES:
        return None
    if name in INSTANT_PROPERTIES:
        return None if cl.param("TZID") or value_type else p.instant(label)
    if name == "SEQUENCE":
        return p.number("sequence", label) if cl.value.strip().isdigit() else None
    if name == "GEO":
        lat = p.number("geo", f"{label}#lat", lambda: f"{p.rng.uniform(-80, 80):.6f}")
        lon = p.number("geo", f"{label}#lon", lambda: f"{p.rng.uniform(-170, 170):.6f}")
        return f"{lat};{lon}"
    if name in {"UID", "RELATED-TO"}:
        # One marker per UID value: overrides share the master's UID, and a RELATED-TO
        # naming a UID of the same object must keep pointing at it.
        key = unescape_text(cl.value)
        if key in p.uid_map:
            token, new = p.uid_map[key]
            p.markers.add(Marker(token, "uid", (label,), ()))
        else:
            token = p.token("uid", label)
            new = f"{token}-{cl.value}"
            p.uid_map[key] = (token, new)
        return new
    if name == "TZID":
        if (renamed := p.tz_map.get(unescape_text(cl.value))) is not None:
            return _escape_text(renamed[1])
        return p.text(cl.value, label, "tzid")
    if name in LIST_PROPERTIES:
        items = _split_unescaped(cl.value, ",")
        multi = len(items) > 1
        planted = []
        for i, item in enumerate(items):
            if name == "CATEGORIES" and unescape_text(item).casefold() in p.keep_categories:
                planted.append(item)
            else:
                planted.append(p.text(item, label + (f"#{i}" if multi else ""), "item"))
        return ",".join(planted)
    if name in {"REQUEST-STATUS", "RSTATUS"}:
        parts = _split_unescaped(cl.value, ";")
        if len(parts) > 1:
            parts[1] = p.text(parts[1], label)
        else:
            parts.append(p.token("text", label))
        return ";".join(parts)
    looks_uri = (m := _URI_RE.fullmatch(cl.value)) is not None and (
        m.group(1).lower() in _KNOWN_SCHEMES
    )
    if value_type in {"URI", "CAL-ADDRESS"} or (name in URI_PROPERTIES and not value_type):
        return p.uri(cl.value, label)
    if name.startswith("X-") and looks_uri:
        return p.uri(cl.value, label)
    json_planted = p.json_text(cl.value, label)
    if json_planted is not None:
        return json_planted
    return p.text(cl.value, label)


def _component_path(stack: list[tuple[str, int]]) -> str:
    parts = [f"{n}[{i}]" for n, i in stack]
    if parts and parts[0] == "VCALENDAR[0]":
        parts = parts[1:] or ["VCALENDAR"]
    return ".".join(parts) or "(top)"


def plant(
    ics: bytes | str,
    prefix: str = "CNRY",
    *,
    seed: int | None = None,
    keep_categories: Collection[str] = (),
    keep_params: Collection[str] = (),
    strict: bool = True,
) -> tuple[bytes, MarkerSet]:
    """Return a copy of `ics` where every identifying value carries a unique marker.

    `keep_categories` lists CATEGORIES items to leave verbatim (so a rule that
    matches on them still fires); `keep_params` lists parameter names to leave
    verbatim (e.g. PARTSTAT for a rule on declined invitations). Their lines
    still get a marker elsewhere.

    With `strict` (the default) the input must parse with icalendar and the
    output is checked to parse at least as cleanly; pass ``strict=False`` to
    plant into a deliberately broken file, whose brokenness is preserved.
    """
    if not prefix.isascii() or not prefix.isalnum():
        raise ValueError("prefix must be ASCII letters and digits (it goes into base64 and URIs)")
    raw = ics.encode("utf-8", "surrogateescape") if isinstance(ics, str) else ics
    before = _parse_errors(raw) if strict else 0
    if before is None:
        raise ValueError("input does not parse with icalendar; use strict=False")
    text = unfold(raw)
    p = _Planter(
        prefix=prefix,
        rng=random.Random(seed if seed is not None else secrets.randbits(64)),
        original_text=text,
        keep_categories=frozenset(c.casefold() for c in keep_categories),
        keep_params=frozenset(k.upper() for k in keep_params),
    )

    # Pass 1: component paths, property counts, VTIMEZONE names.
    lines = [line for line in _NEWLINE_RE.split(text) if line]
    entries: list[tuple[str, str, ContentLine | None, str]] = []  # (kind, path, cl, raw)
    stack: list[tuple[str, int]] = []
    child_counts: list[Counter[str]] = [Counter()]
    prop_counts: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        cl = parse_content_line(line)
        if cl is not None and cl.uname == "BEGIN":
            comp = cl.value.strip().upper()
            index = child_counts[-1][comp]
            child_counts[-1][comp] += 1
            stack.append((comp, index))
            child_counts.append(Counter())
            entries.append(("begin", _component_path(stack), cl, line))
        elif cl is not None and cl.uname == "END":
            entries.append(("end", _component_path(stack), cl, line))
            if stack and stack[-1][0] == cl.value.strip().upper():
                stack.pop()
                child_counts.pop()
        elif cl is not None:
            path = _component_path(stack)
            prop_counts[(path, cl.uname)] += 1
            entries.append(("prop", path, cl, line))
            if cl.uname == "TZID" and stack and stack[-1][0] == "VTIMEZONE":
                original = unescape_text(cl.value)
                if original not in p.tz_map:
                    token = p.token("tzid", f"{path}.TZID")
                    p.tz_map[original] = (token, f"{token} {original}")
        else:
            entries.append(("orphan", _component_path(stack), None, line))

    # Pass 2: rewrite.
    out: list[str] = []
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for kind, path, cl, line in entries:
        if kind in {"begin", "end"}:
            out.append(line)
            continue
        if cl is None:
            out.append(p.text(line, f"{path}.(unparseable line)", "orphan"))
            continue
        in_vtimezone = "VTIMEZONE[" in path
        key = (path, cl.uname)
        index = seen[key]
        seen[key] += 1
        label = f"{path}.{cl.uname}" + (f"[{index}]" if prop_counts[key] > 1 else "")
        params, planted = _plant_params(p, cl, label)
        value = _plant_value(p, cl, label)
        if value is None:
            value = cl.value
        else:
            planted = True
        if not planted and not (in_vtimezone and cl.uname in TZ_RULE_PROPERTIES):
            params.append((TAG_PARAM, (p.token("tag", f"{label};{TAG_PARAM}"),)))
        out.append(format_content_line(ContentLine(cl.name, tuple(params), value)))

    result = ("\r\n".join(fold_line(line) for line in out) + "\r\n").encode(
        "utf-8", "surrogateescape"
    )
    if strict:
        after = _parse_errors(result)
        if after is None or after > before:
            raise ValueError("planting produced a calendar icalendar parses worse than the input")
    return result, p.markers


def _parse_errors(data: bytes) -> int | None:
    """Number of property errors icalendar records, or None if it cannot parse at all."""
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception:  # noqa: BLE001 - any parser failure means "unparseable" here
        return None
    if not calendars:
        return None
    return sum(len(c.errors) for cal in calendars for c in cal.walk())
