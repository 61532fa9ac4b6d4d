"""Tests of the privacy test tooling itself: canary planting, marker search, schema check,
calendar strategies and the fixture corpus.

A canary tool that silently misses a property would let a leak through every
test built on it, so these tests pin down what it covers.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.canary import (
    INTERPRETIVE_PARAMS,
    INTERPRETIVE_PROPERTIES,
    TAG_PARAM,
    TZ_RULE_PROPERTIES,
    ContentLine,
    MarkerSet,
    assert_clean,
    parse_content_line,
    plant,
    split_content_lines,
    unescape_text,
)
from tests.support.schema import assert_schema, check_output
from tests.support.strategies import ANCHOR, WINDOW_END, WINDOW_START, calendar_sets, calendars

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = sorted(DATA.glob("event_*.ics"))  # other fixture families live here too
# libical-style TZIDs ("/vendor/Europe/Berlin") are generated on purpose.
GUESSED_TZID = pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _parses(raw: bytes) -> bool:
    try:
        return bool(icalendar.Calendar.from_ical(raw, multiple=True))
    except Exception:  # noqa: BLE001 - "does not parse" is the answer here
        return False


PARSEABLE = [p for p in CORPUS if _parses(p.read_bytes())]


def _component_lines(raw: bytes) -> list[tuple[list[str], ContentLine | None, str]]:
    """Each property line with the component stack it sits in; None for unlexable lines."""
    stack: list[str] = []
    out: list[tuple[list[str], ContentLine | None, str]] = []
    for line in split_content_lines(raw):
        cl = parse_content_line(line)
        if cl is not None and cl.uname == "BEGIN":
            stack.append(cl.value.upper())
        elif cl is not None and cl.uname == "END":
            stack.pop()
        else:
            out.append((list(stack), cl, line))
    return out


def _has_marker(text: str, markers: MarkerSet) -> bool:
    return bool(markers.find(text))


def _occurrences(raw: bytes) -> list[tuple[str, str]]:
    """Instances as UTC (or floating/date) starts, to compare calendars semantically."""
    cal = icalendar.Calendar.from_ical(raw)
    result = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = recurring_ical_events.of(cal).between(datetime(2029, 1, 1), datetime(2031, 1, 1))
    for event in events:
        start = event.decoded("DTSTART")
        if isinstance(start, datetime) and start.tzinfo is not None:
            start = start.astimezone(UTC)
        result.append((str(start), str(event.get("STATUS", ""))))
    return sorted(result)


def _check_fully_planted(planted: bytes, markers: MarkerSet) -> Counter[str]:
    """Assert every value and parameter that could leak carries a marker; count them."""
    counts: Counter[str] = Counter()
    lines = _component_lines(planted)
    zone_names = {
        unescape_text(cl.value)
        for stack, cl, _ in lines
        if cl is not None and stack[-1:] == ["VTIMEZONE"] and cl.uname == "TZID"
    }
    for stack, cl, raw in lines:
        if cl is None:
            assert _has_marker(raw, markers), f"no marker in unparseable line {raw[:80]!r}"
            counts["lines"] += 1
            continue
        where = ".".join(stack) + "." + cl.uname
        if "VTIMEZONE" in stack and cl.uname in TZ_RULE_PROPERTIES:
            continue  # public zone rules; icalendar rejects any parameter on them
        assert (
            _has_marker(cl.value, markers)
            or cl.uname in INTERPRETIVE_PROPERTIES
            or cl.param("VALUE") not in (None, ("TEXT",), ("URI",), ("BINARY",))
        ), f"no marker in value of {where}: {cl.value[:80]!r}"
        assert _has_marker(raw, markers), f"no marker anywhere on {where}"
        counts["lines"] += 1
        for pname, values in cl.params:
            upper = pname.upper()
            if upper == TAG_PARAM or (upper in INTERPRETIVE_PARAMS and upper != "TZID"):
                continue
            for value in values:
                if upper == "TZID" and value not in zone_names:
                    continue  # a zone without VTIMEZONE keeps its name so it still resolves
                assert _has_marker(value, markers), f"no marker in {where};{pname}={value!r}"
                counts["params"] += 1
    return counts


# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------


def test_corpus_is_complete_and_documented() -> None:
    assert len(CORPUS) >= 24
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(event_[a-z0-9_]+\.ics)`", readme))
    assert listed == {p.name for p in CORPUS}
    broken = [p for p in CORPUS if p.name.startswith("event_broken_")]
    assert len(broken) >= 10
    assert len(PARSEABLE) >= len(CORPUS) - 1  # only the truncated file fails outright


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_uses_only_fake_contact_data(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "replace")
    unfolded = "\n".join(split_content_lines(text))
    for number in re.findall(r"(?<![\d-])555-(\d{4})(?!\d)", unfolded):
        assert number.startswith("01"), f"phone outside 555-0100..0199: {number}"
    addresses = re.findall(r"mailto:([^\s\"\\;,:]+)", unfolded)
    addresses += re.findall(r"EMAIL=([^;:\"]+)", unfolded)
    for address in addresses:
        assert re.search(r"@([a-z0-9.-]+\.)?example\.(org|net)$", address), address


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_dates_lie_in_early_march_2030(path: Path) -> None:
    lines = split_content_lines(path.read_bytes())
    stack: list[str] = []
    for line in lines:
        cl = parse_content_line(line)
        if cl is None:
            continue
        if cl.uname in {"BEGIN", "END"}:
            stack = [*stack, cl.value] if cl.uname == "BEGIN" else stack[:-1]
            continue
        if "VTIMEZONE" in stack or cl.uname not in {
            "DTSTART", "DTEND", "DUE", "RDATE", "EXDATE", "RECURRENCE-ID",
        }:  # fmt: skip
            continue
        for value in cl.value.split(","):
            if re.fullmatch(r"\d{8}(T\d{6}Z?)?", value):
                day = datetime.strptime(value[:8], "%Y%m%d").date()
                assert date(2030, 3, 1) <= day <= date(2030, 3, 20), f"{cl.uname}:{value}"


# --------------------------------------------------------------------------
# plant()
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PARSEABLE, ids=lambda p: p.stem)
def test_plant_marks_every_property_and_parameter(path: Path) -> None:
    raw = path.read_bytes()
    planted, markers = plant(raw, seed=1)
    counts = _check_fully_planted(planted, markers)
    # Every input property and parameter is still there, and carries a marker.
    original = _component_lines(raw)
    assert counts["lines"] == sum(
        1
        for stack, cl, _ in original
        if cl is None or not ("VTIMEZONE" in stack and cl.uname in TZ_RULE_PROPERTIES)
    )
    assert len(markers) >= counts["lines"] // 2
    assert markers.find(raw) == [], "markers must be fresh, never already in the input"


@pytest.mark.parametrize("path", PARSEABLE, ids=lambda p: p.stem)
def test_plant_keeps_events_and_their_times(path: Path) -> None:
    raw = path.read_bytes()
    planted, _ = plant(raw, seed=2)
    before = icalendar.Calendar.from_ical(raw, multiple=True)
    after = icalendar.Calendar.from_ical(planted, multiple=True)
    for name in ("VEVENT", "VTODO", "VJOURNAL", "VALARM", "VTIMEZONE"):
        assert len([c for cal in after for c in cal.walk(name)]) == len(
            [c for cal in before for c in cal.walk(name)]
        )
    try:
        expected = _occurrences(raw)
    except Exception:  # noqa: BLE001 - broken inputs cannot be expanded at all
        return
    assert _occurrences(planted) == expected


def test_plant_corpus_coverage() -> None:
    """The corpus exercises every leak vector the sanitizer has to drop."""
    properties: set[str] = set()
    parameters: set[str] = set()
    components: set[str] = set()
    for path in PARSEABLE:
        planted, markers = plant(path.read_bytes(), seed=3)
        for stack, cl, _ in _component_lines(planted):
            components.update(stack)
            if cl is None:
                continue
            if _has_marker(format_value(cl), markers):
                properties.add(cl.uname)
            for pname, values in cl.params:
                if pname != TAG_PARAM and any(_has_marker(v, markers) for v in values):
                    parameters.add(pname.upper())
    assert {
        "SUMMARY", "DESCRIPTION", "X-ALT-DESC", "STYLED-DESCRIPTION", "LOCATION", "COMMENT",
        "CONTACT", "RESOURCES", "CATEGORIES", "REQUEST-STATUS", "ATTENDEE", "ORGANIZER",
        "X-MOZ-INVITED-ATTENDEE", "X-MS-OLK-SENDER", "GEO", "X-APPLE-STRUCTURED-LOCATION",
        "X-APPLE-TRAVEL-START", "X-MICROSOFT-LOCATIONS", "URL", "ATTACH", "IMAGE", "CONFERENCE",
        "X-GOOGLE-CONFERENCE", "X-MICROSOFT-SKYPETEAMSMEETINGURL", "UID", "RELATED-TO",
        "SEQUENCE", "CREATED", "LAST-MODIFIED", "DTSTAMP", "PRODID", "TZID", "X-WR-CALNAME",
        "X-WR-CALDESC", "COLOR", "X-APPLE-CALENDAR-COLOR", "CALENDAR-ADDRESS", "STRUCTURED-DATA",
        "NAME", "TZNAME",
    } <= properties  # fmt: skip
    assert {
        "CN", "EMAIL", "DIR", "SENT-BY", "DELEGATED-TO", "DELEGATED-FROM", "MEMBER", "LANGUAGE",
        "ROLE", "PARTSTAT", "RSVP", "CUTYPE", "X-NUM-GUESTS", "ALTREP", "FILENAME", "FMTTYPE",
        "LABEL", "FEATURE", "X-ADDRESS", "X-TITLE", "TZID",
    } <= parameters  # fmt: skip
    assert {"VALARM", "VLOCATION", "PARTICIPANT", "VTIMEZONE", "X-SAFETY-PLAN"} <= components


def format_value(cl: ContentLine) -> str:
    """The value of a line plus its parameter values, as one searchable string."""
    return cl.value + "".join(v for _, values in cl.params for v in values)


def test_plant_renames_tzid_consistently() -> None:
    raw = (DATA / "event_custom_tzid.ics").read_bytes()
    planted, markers = plant(raw, seed=4)
    cal = icalendar.Calendar.from_ical(planted)
    tzid = str(cal.walk("VTIMEZONE")[0]["TZID"])
    event = cal.walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == tzid == event["DTEND"].params["TZID"]
    assert tzid.endswith("Office time (Okafor laptop, Springfield) \u2013 do not edit")
    (marker,) = [m for m in markers if m.kind == "tzid"]
    assert len(marker.where) == 3  # VTIMEZONE TZID, DTSTART;TZID, DTEND;TZID
    assert event.decoded("DTSTART") == datetime(2030, 3, 12, 20, 0, tzinfo=UTC)


def test_plant_keeps_one_uid_per_object() -> None:
    raw = (DATA / "event_google_recurring_exceptions.ics").read_bytes()
    planted, markers = plant(raw, seed=5)
    uids = {str(e["UID"]) for e in icalendar.Calendar.from_ical(planted).walk("VEVENT")}
    assert len(uids) == 1
    (uid_marker,) = [m for m in markers if m.kind == "uid"]
    assert uid_marker.where == ("VEVENT[0].UID", "VEVENT[1].UID")


def test_plant_records_instants_sequence_and_locations() -> None:
    raw = (DATA / "event_outlook_teams_meeting.ics").read_bytes()
    planted, markers = plant(raw, seed=6)
    kinds = markers.kinds()
    assert kinds["instant"] == kinds["time-of-day"] == 3  # CREATED, DTSTAMP, LAST-MODIFIED
    assert kinds["sequence"] == 1
    instants = [m for m in markers if m.kind == "instant"]
    assert len({m.token[:8] for m in instants}) == 3
    for m in instants:
        assert re.fullmatch(r"20[3-9]\d{5}T\d{6}Z", m.token)
        assert not m.token.endswith("00Z")
    assert "VEVENT[0].ATTENDEE[1];CN" in markers.locations()
    assert "VEVENT[0].VALARM[0].DESCRIPTION" in markers.locations()
    event = icalendar.Calendar.from_ical(planted).walk("VEVENT")[0]
    stamp: Any = event["DTSTAMP"]
    assert stamp.to_ical().decode() in markers


def test_plant_binary_and_uri_stay_valid() -> None:
    raw = (DATA / "event_nextcloud_attachment.ics").read_bytes()
    planted, markers = plant(raw, seed=7)
    attachments: Any = icalendar.Calendar.from_ical(planted).walk("VEVENT")[0]["ATTACH"]
    inline = [a for a in attachments if a.params.get("ENCODING") == "BASE64"]
    assert len(inline) == 1 and b"Mensah" in inline[0].ical_value  # still valid base64
    url = next(str(a) for a in attachments if str(a).startswith("https://"))
    assert re.fullmatch(r"https://cloud\.example\.org/CNRY[0-9a-f]{10}/remote\.php/.+", url)
    assert _has_marker(url, markers)


def test_plant_keep_options() -> None:
    raw = (DATA / "event_confidential_class.ics").read_bytes()
    planted, _ = plant(raw, seed=8, keep_categories=["Court"], keep_params=["PARTSTAT"])
    event = icalendar.Calendar.from_ical(planted).walk("VEVENT")[0]
    categories: Any = event["CATEGORIES"]
    items = [c for cats in categories for c in cats.cats]
    assert "Court" in items
    assert all(item == "Court" or item.startswith("CNRY") for item in items)
    raw = (DATA / "event_google_meet.ics").read_bytes()
    planted, _ = plant(raw, seed=8, keep_params=["PARTSTAT"])
    assert b"PARTSTAT=ACCEPTED" in planted


def test_plant_is_deterministic_with_seed_and_fresh_without() -> None:
    raw = (DATA / "event_staff_meeting.ics").read_bytes()
    assert plant(raw, seed=9)[0] == plant(raw, seed=9)[0]
    assert set(plant(raw)[1].tokens).isdisjoint(plant(raw)[1].tokens)


def test_plant_broken_files_non_strict() -> None:
    truncated = (DATA / "event_broken_truncated.ics").read_bytes()
    with pytest.raises(ValueError, match="does not parse"):
        plant(truncated)
    planted, markers = plant(truncated, strict=False)
    assert not planted.rstrip().endswith(b"END:VCALENDAR")
    assert any(m.where[0].endswith("DESCRIPTION") for m in markers)

    latin1 = (DATA / "event_broken_latin1_summary.ics").read_bytes()
    planted, _ = plant(latin1, strict=False)
    assert b"H\xe9l\xe8ne" in planted  # the invalid bytes survive untouched

    folding = (DATA / "event_broken_line_folding.ics").read_bytes()
    planted, markers = plant(folding, strict=False)
    orphans = [m for m in markers if m.kind == "orphan"]
    assert len(orphans) == 2
    assert_clean(b"Thornfield Road", markers, "plain text")
    with pytest.raises(AssertionError):
        assert_clean(planted, markers, "planted file")


# --------------------------------------------------------------------------
# MarkerSet.find / assert_clean
# --------------------------------------------------------------------------


def _one_marker() -> tuple[str, MarkerSet]:
    raw = (DATA / "event_staff_meeting.ics").read_bytes()
    _, markers = plant(raw, seed=10)
    token = next(m.token for m in markers if m.kind == "text" and "SUMMARY" in m.where[0])
    return token, markers


@pytest.mark.parametrize(
    "render",
    [
        lambda t: f"SUMMARY:{t}\r\n",
        lambda t: f"SUMMARY:xx{t[:5]}\r\n {t[5:]}\r\n",  # folded, CRLF + space
        lambda t: f"SUMMARY:{t[:9]}\n\t{t[9:]}\n",  # folded, LF + tab
        lambda t: f"DESCRIPTION:{t.upper()}",
        lambda t: f"DESCRIPTION:{t.lower()}",
        lambda t: f"DESCRIPTION:note\\n{t}\\, more",  # escaped neighbours
        lambda t: f"X:\\\\{t}\r\n \\;",
    ],
)
def test_find_tolerates_folding_case_and_escapes(render: object) -> None:
    token, markers = _one_marker()
    text = render(token)  # type: ignore[operator]
    hits = markers.find(text.encode("utf-8"), found_in="output")
    assert [h.token for h in hits] == [token]
    assert hits[0].found_in == "output" and hits[0].planted_at == markers[token].where


def test_find_bounded_marker_after_escape() -> None:
    raw = (DATA / "event_staff_meeting.ics").read_bytes()
    _, markers = plant(raw, seed=14)
    tod = next(m for m in markers if m.kind == "instant").token[9:15]
    # Raw text has "n031559" (no boundary); only unescaping "\n" reveals the leak.
    hits = markers.find(f"DESCRIPTION:at\\n{tod}\\nbye")
    assert [h.after_unescaping for h in hits] == [True]


def test_find_bounded_numeric_markers() -> None:
    raw = (DATA / "event_outlook_teams_meeting.ics").read_bytes()
    _, markers = plant(raw, seed=11)
    instant = next(m for m in markers if m.kind == "instant")
    tod = instant.token[9:15]
    sequence = next(m.token for m in markers if m.kind == "sequence")
    assert markers.find(f"DTSTART:{instant.token}")
    assert markers.find(f"DTSTART:20300305T{tod}Z")  # time of day reused on another date
    assert markers.find(f"Note: at {tod[:2]}:{tod[2:4]}:{tod[4:]}")
    assert markers.find(f"SEQUENCE:{sequence}")
    assert markers.find(f"UID:{instant.token[:4]}-{instant.token[4:6]}-{instant.token[6:8]}") == []
    assert not markers.find(f"UID:a{tod}b")  # inside a hex string: not a hit
    assert not markers.find(f"UID:9{sequence}")


def test_find_reports_foreign_markers() -> None:
    _, markers = _one_marker()
    hits = markers.find("SUMMARY:CNRY0123456789 and cnryabcdefabcd")
    assert [h.kind for h in hits] == ["unknown", "unknown"]


def test_assert_clean_lists_every_leak() -> None:
    token, markers = _one_marker()
    assert_clean(b"BEGIN:VCALENDAR\r\nSUMMARY:Busy\r\nEND:VCALENDAR\r\n", markers, "phone")
    with pytest.raises(AssertionError) as info:
        assert_clean(f"SUMMARY:{token}\r\nLOCATION:x\r\n {token}\r\n", markers, "phone event")
    message = str(info.value)
    assert "phone event" in message and token.casefold() in message.casefold()
    assert "VEVENT[0].SUMMARY" in message and "line 1" in message and "line 2" in message


def test_marker_sets_merge() -> None:
    a = plant((DATA / "event_staff_meeting.ics").read_bytes(), seed=12)[1]
    b = plant((DATA / "event_utc_personal.ics").read_bytes(), seed=13)[1]
    merged = a | b
    assert len(merged) == len(a) + len(b)
    assert {m.token for m in merged} == set(a.tokens) | set(b.tokens)


# --------------------------------------------------------------------------
# check_output / assert_schema
# --------------------------------------------------------------------------

MINIMAL = (
    "BEGIN:VCALENDAR\r\n"
    "PRODID:-//calendar-sanitizer//EN\r\n"
    "VERSION:2.0\r\n"
    "CALSCALE:GREGORIAN\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:3f1c9a7e-busy@sanitizer.invalid\r\n"
    "DTSTAMP:20300304T090000Z\r\n"
    "DTSTART:20300305T100000Z\r\n"
    "DTEND:20300305T110000Z\r\n"
    "SUMMARY:Busy\r\n"
    "LOCATION:Office\r\n"
    "STATUS:CONFIRMED\r\n"
    "TRANSP:OPAQUE\r\n"
    "CLASS:PRIVATE\r\n"
    "BEGIN:VALARM\r\n"
    "ACTION:DISPLAY\r\n"
    "DESCRIPTION:Reminder\r\n"
    "TRIGGER:-PT15M\r\n"
    "END:VALARM\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_schema_accepts_minimal_allowed_events() -> None:
    assert check_output(MINIMAL) == []
    assert check_output(MINIMAL.encode(), expected_prodid="-//calendar-sanitizer//EN") == []
    all_day = MINIMAL.replace("DTSTART:20300305T100000Z", "DTSTART;VALUE=DATE:20300305").replace(
        "DTEND:20300305T110000Z", "DTEND;VALUE=DATE:20300306"
    )
    assert_schema(all_day)
    bare = "".join(
        line + "\r\n"
        for line in MINIMAL.split("\r\n")
        if line.split(":")[0] in {"BEGIN", "END", "PRODID", "VERSION", "UID", "DTSTAMP", "DTSTART"}
        and "VALARM" not in line
    )
    assert check_output(bare) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("SUMMARY:Busy", "SUMMARY:Busy\r\nDESCRIPTION:Maria"), "property DESCRIPTION"),
        (("SUMMARY:Busy", "SUMMARY:Busy\r\nX-MS-OLK-SENDER:mailto:a@example.org"), "X-MS-OLK"),
        (("CLASS:PRIVATE", "CLASS:PRIVATE\r\nX-WR-ALARMUID:1"), "property X-WR-ALARMUID"),
        (
            ("DTSTART:20300305T100000Z", "DTSTART;TZID=Europe/Berlin:20300305T100000"),
            "parameter TZID",
        ),
        (("LOCATION:Office", "LOCATION;CN=Maria Alvarez:Office"), "parameter CN"),
        (("SUMMARY:Busy", "SUMMARY;LANGUAGE=en:Busy"), "parameter LANGUAGE"),
        (("DTSTART:20300305T100000Z", "DTSTART;VALUE=DATE-TIME:20300305T100000Z"), "VALUE"),
        (("SUMMARY:Busy", 'SUMMARY;X-A="x":Busy'), "parameter X-A"),
        (
            ("VERSION:2.0\r\n", "VERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:x\r\nEND:VTIMEZONE\r\n"),
            "component VTIMEZONE",
        ),
        (("END:VALARM\r\n", "END:VALARM\r\nBEGIN:VLOCATION\r\nEND:VLOCATION\r\n"), "VLOCATION"),
        (("STATUS:CONFIRMED", "STATUS:CANCELLED"), "STATUS value"),
        (("CLASS:PRIVATE", "CLASS:PUBLIC"), "CLASS value"),
        (("TRANSP:OPAQUE", "TRANSP:BUSY"), "TRANSP value"),
        (("ACTION:DISPLAY", "ACTION:EMAIL"), "ACTION value"),
        (("VERSION:2.0", "VERSION:1.0"), "VERSION value"),
        (("TRIGGER:-PT15M", "TRIGGER;VALUE=DATE-TIME:20300305T090000Z"), "parameter VALUE"),
        (("DTEND:20300305T110000Z", "DTEND:20300305T090000Z"), "not after DTSTART"),
        (("DTSTAMP:20300304T090000Z", "DTSTAMP:20300304T090000"), "UTC"),
        (("UID:3f1c9a7e-busy@sanitizer.invalid\r\n", ""), "lacks required UID"),
        (("SUMMARY:Busy", "SUMMARY:Busy\r\nSUMMARY:Maria"), "2 SUMMARY"),
        (
            (
                "END:VEVENT\r\n",
                "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:2\r\nDTSTAMP:20300304T090000Z\r\n"
                "DTSTART:20300306T100000Z\r\nEND:VEVENT\r\n",
            ),
            "2 VEVENTs",
        ),
        (("END:VCALENDAR\r\n", ""), "never closed"),
        (("LOCATION:Office", "LOCATION:" + "x" * 80), "longer than 75"),
        (("\r\n", "\n"), "CRLF"),
        (("SUMMARY:Busy", "SUMMARY:H\udce9l\udce8ne"), "UTF-8"),
    ],
)
def test_schema_rejects(change: tuple[str, str], expected: str) -> None:
    bad = MINIMAL.replace(*change).encode("utf-8", "surrogateescape")
    problems = check_output(bad)
    assert any(expected in p for p in problems), problems
    with pytest.raises(AssertionError, match="allowlist"):
        assert_schema(bad)


def test_schema_reads_raw_lines_not_only_icalendar() -> None:
    # icalendar keeps the CN parameter of a property it was asked to parse; the raw
    # layer must catch it too, by line number.
    problems = check_output(MINIMAL.replace("SUMMARY:Busy", "SUMMARY;CN=x:Busy"))
    assert any(p.startswith("line ") and "parameter CN" in p for p in problems)
    assert any(p.startswith("icalendar sees parameter CN") for p in problems)


@pytest.mark.parametrize("path", PARSEABLE, ids=lambda p: p.stem)
def test_schema_rejects_every_raw_corpus_file(path: Path) -> None:
    assert check_output(path.read_bytes())


# --------------------------------------------------------------------------
# Strategies (and plant on top of them)
# --------------------------------------------------------------------------


@GUESSED_TZID
@HYPOTHESIS
@given(calendars())
def test_generated_calendars_are_valid_caldav_objects(data: bytes) -> None:
    cal = icalendar.Calendar.from_ical(data)
    assert [c.name for c in cal.walk() if c.errors] == []
    events = cal.walk("VEVENT")
    assert len({str(e["UID"]) for e in events}) == 1
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    assert len(masters) == 1
    assert all("RRULE" in masters[0] for e in events if "RECURRENCE-ID" in e)
    for line in split_content_lines(data):
        assert parse_content_line(line) is not None, line
    for start, _ in _occurrences(data):
        day = datetime.fromisoformat(start[:10]).replace(tzinfo=UTC)
        assert WINDOW_START - timedelta(days=1) <= day <= WINDOW_END, start


@GUESSED_TZID
@HYPOTHESIS
@given(calendars())
def test_plant_keeps_generated_calendars_parseable(data: bytes) -> None:
    planted, markers = plant(data)
    before = icalendar.Calendar.from_ical(data)
    after = icalendar.Calendar.from_ical(planted)
    assert len(after.walk("VEVENT")) == len(before.walk("VEVENT"))
    assert [c.name for c in after.walk() if c.errors] == []
    _check_fully_planted(planted, markers)
    # Every marker is findable in the planted calendar, none in the original.
    assert {h.token for h in markers.find(planted)} == set(markers.tokens)
    assert markers.find(data) == []


@GUESSED_TZID
@settings(HYPOTHESIS, max_examples=30)
@given(calendars())
def test_plant_keeps_generated_occurrences(data: bytes) -> None:
    planted, _ = plant(data)
    assert _occurrences(planted) == _occurrences(data)


@GUESSED_TZID
@settings(HYPOTHESIS, max_examples=20)
@given(calendar_sets(min_size=2, max_size=4))
def test_calendar_sets_have_distinct_uids(objects: list[bytes]) -> None:
    uids = [str(icalendar.Calendar.from_ical(o).walk("VEVENT")[0]["UID"]) for o in objects]
    assert len(set(uids)) == len(uids) >= 2


@GUESSED_TZID
@settings(HYPOTHESIS, max_examples=20)
@given(st.data())
def test_generated_times_cluster_around_anchor(data: st.DataObject) -> None:
    raw = data.draw(calendars())
    starts = _occurrences(raw)
    assert all(abs((date.fromisoformat(s[:10]) - ANCHOR.date()).days) <= 20 for s, _ in starts)
