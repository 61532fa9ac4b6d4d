"""What an invitation can do to the phone: anyone can put one into a work calendar.

Three guarantees: an event with a once-only property given twice is skipped, not guessed at;
phone times are whole minutes, so an invitation's seconds carry nothing; and a `keep-title` rule
never keeps the title of an event organised outside `[service] agency_domains`.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.model import Action, Instance, Label
from sanitizer.core.phone_format import serialize
from sanitizer.core.rules import classify, from_agency
from sanitizer.core.sanitize import sanitize, whole_minutes
from sanitizer.engine.desired import window_for
from sanitizer.engine.reconcile import sync_pair
from sanitizer.errors import ConfigError
from sanitizer.service.checks import keep_title_check
from sanitizer.service.config import parse_config
from tests.support.core_builders import KEY, NOW, UTC_ZONE, ics, keep_title_rule, make_pair
from tests.support.harness import list_objects, put, vevent
from tests.support.memory_store import MemoryCalendar

AGENCY = ("agency.example.org",)
START = NOW + timedelta(hours=3)
STAFF = "CATEGORIES:Staff\r\n"


def phone_lines(pair, objects: dict[str, bytes]) -> tuple[list[str], dict[str, int]]:  # type: ignore[no-untyped-def]
    """Sync in memory; every content line on the phone, and the skip counts."""
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for name, data in objects.items():
        source.put_raw(name, data)
    report = sync_pair(pair, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert report.ok, report.summary()
    lines = [line for data in target.objects.values()
             for line in data.decode().replace("\r\n ", "").splitlines()]
    return lines, dict(report.skipped)


# ----------------------------------------------------------------------------- once-only

ONCE = ["UID:other", "DTSTART:20300304T130000Z", "DTEND:20300304T150000Z",
        "SUMMARY:Another title", "STATUS:CANCELLED", "TRANSP:TRANSPARENT", "CLASS:PRIVATE",
        "ORGANIZER:mailto:x@agency.example.org", "DURATION:PT1H"]


@pytest.mark.parametrize("line", ONCE)
def test_a_once_only_property_given_twice_skips_the_event(line: str) -> None:
    name = line.split(":", maxsplit=1)[0]
    data = ics("twice", START, extra=f"{line}\r\n")
    if name in ("ORGANIZER", "CLASS", "STATUS", "TRANSP"):  # the builder has none: add a first
        data = ics("twice", START, extra=f"{line}\r\n{line}\r\n")
    with pytest.raises(SkipObject, match=r"^duplicate-property$"):
        expand_object(data, window_for(make_pair(), NOW), UTC_ZONE, "fallback")


def test_two_titles_under_keep_title_write_nothing() -> None:
    """Before: SUMMARY:[vText(b'Staff')\\, vText(b'...')] on the phone."""
    pair = make_pair(rules=(keep_title_rule(),))
    data = ics("two", START, summary="Staff meeting", extra=STAFF + "SUMMARY:Jane Doe\r\n")
    lines, skipped = phone_lines(pair, {"two.ics": data, "ok.ics": ics("ok", START)})
    assert skipped == {"duplicate-property": 1}
    assert [line for line in lines if line.startswith("SUMMARY")] == ["SUMMARY:Appointment"]


# ----------------------------------------------------------------------------- whole minutes

def test_phone_times_are_whole_minutes() -> None:
    start = NOW.replace(hour=13, second=17, microsecond=250)
    data = ics("sec", start, minutes=59, extra="")  # ends at 13:59:17
    lines, _ = phone_lines(make_pair(), {"sec.ics": data})
    assert "DTSTART:20300304T130000Z" in lines and "DTEND:20300304T140000Z" in lines


def test_an_instance_inside_one_minute_keeps_a_length() -> None:
    start = NOW.replace(hour=13, second=10)
    lines, _ = phone_lines(make_pair(), {"s.ics": ics("s", start, minutes=0).replace(
        b"DTEND:20300304T130010Z", b"DTEND:20300304T130050Z")})
    assert "DTSTART:20300304T130000Z" in lines and "DTEND:20300304T130100Z" in lines


MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                       timezones=st.just(UTC))


@given(MOMENTS, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_rounding_goes_outwards_to_whole_minutes(start: datetime, length: timedelta) -> None:
    new_start, new_end = whole_minutes(start, start + length)
    assert isinstance(new_start, datetime) and isinstance(new_end, datetime)
    for value in (new_start, new_end):
        assert value.second == 0 and value.microsecond == 0
    if length > timedelta(0):  # outwards: every instant of the appointment is still inside
        assert new_end >= start + length
    assert timedelta(0) <= start - new_start < timedelta(minutes=1)
    assert (new_end > new_start) == (length > timedelta(0))


def test_all_day_dates_are_unchanged() -> None:
    assert whole_minutes(date(2030, 3, 4), date(2030, 3, 5)) == (date(2030, 3, 4),
                                                                 date(2030, 3, 5))


# ----------------------------------------------------------------------------- agency domains

def organised_by(address: str | None, uid: str = "inv") -> bytes:
    organizer = f"ORGANIZER;CN=Someone:{address}\r\n" if address is not None else ""
    return ics(uid, START, summary="Jane Doe, 12 Elm St", extra=STAFF + organizer)


@pytest.mark.parametrize(("address", "kept"), [
    (None, True),  # no ORGANIZER: the agency's own
    ("mailto:boss@agency.example.org", True),
    ("MAILTO:Boss@AGENCY.Example.ORG", True),
    ("mailto:boss@office.agency.example.org", True),  # a subdomain
    ("mailto:abuser@example.com", False),
    ("mailto:abuser@evilagency.example.org", False),
    ("mailto:abuser@agency.example.org.example.com", False),
    ("mailto:agency.example.org", False),  # no address at all
    ("urn:uuid:00000000-0000-0000-0000-000000000000", False),
    ("", False),
])
def test_keep_title_needs_an_organizer_inside_the_agency(address: str | None, kept: bool) -> None:
    pair = replace(make_pair(rules=(keep_title_rule(),)), agency_domains=AGENCY)
    lines, _ = phone_lines(pair, {"inv.ics": organised_by(address)})
    expected = "SUMMARY:Jane Doe\\, 12 Elm St" if kept else "SUMMARY:Appointment"
    assert [line for line in lines if line.startswith("SUMMARY")] == [expected]


def test_without_agency_domains_keep_title_works_as_before() -> None:
    lines, _ = phone_lines(make_pair(rules=(keep_title_rule(),)),
                           {"inv.ics": organised_by("mailto:abuser@example.com")})
    assert "SUMMARY:Jane Doe\\, 12 Elm St" in lines


def test_the_instance_holds_the_domain_only() -> None:
    data = organised_by("mailto:Jane.Private@Agency.Example.ORG")
    [instance] = expand_object(data, window_for(make_pair(), NOW), UTC_ZONE, "fallback")
    assert instance.organizer_domain == "agency.example.org"
    values = " ".join(str(getattr(instance, f.name)) for f in fields(Instance))
    assert "private" not in values.lower() and "agency" not in repr(instance)


def test_classify_sanitizes_an_outside_event_that_a_keep_title_rule_matches() -> None:
    rule = replace(keep_title_rule(), location=Label("Office"))
    outside = Instance("u", "", START, START, "CONFIRMED", False, ("Staff",),
                       summary="Jane Doe", organizer_domain="example.com")
    decision = classify(outside, [rule], AGENCY)
    assert (decision.action, decision.title, decision.location) == (
        Action.SANITIZE, None, Label("Office"))
    assert classify(outside, [rule]).action is Action.KEEP_TITLE  # no domains given
    assert not from_agency(outside, AGENCY)
    # Even a caller that classifies without the domains gets the pair's title.
    pair = replace(make_pair(rules=(rule,)), agency_domains=AGENCY)
    event = sanitize(outside, classify(outside, [rule]), pair, KEY)
    assert event is not None and b"Jane" not in serialize(event)


# ----------------------------------------------------------------------------- config and check

BASE = {"accounts": {"main": {"url": "https://dav.example.org/", "username": "u"}},
        "pairs": [{"name": "p", "account": "main", "source": "a/", "target": "b/",
                   "rules": [{"match_categories": ["Staff"], "action": "keep-title"}]}]}


def config_with(**service: object):  # type: ignore[no-untyped-def]
    return parse_config({**BASE, "service": service})


def test_agency_domains_are_read_lower_cased_and_given_to_every_pair() -> None:
    config = config_with(agency_domains=["Agency.Example.org.", "b.example.net"])
    assert config.service.agency_domains == ("agency.example.org", "b.example.net")
    assert config.pairs[0].agency_domains == ("agency.example.org", "b.example.net")
    assert keep_title_check(config) == []


@pytest.mark.parametrize("value", [[], ["@agency.example.org"], ["agency"], ["a b.org"],
                                   "agency.example.org", [1]])
def test_bad_agency_domains_are_config_errors(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(agency_domains=value)
    [problem] = caught.value.problems
    assert problem.startswith("service.agency_domains: ")


def test_check_warns_about_keep_title_without_agency_domains() -> None:
    [finding] = keep_title_check(config_with())
    assert finding.result == "warning" and "pairs[0].rules[0]" in finding.detail
    assert "agency_domains" in finding.detail


# ----------------------------------------------------------------------------- real Radicale

@pytest.mark.integration
def test_invitations_against_radicale(calendars, make_setup) -> None:  # type: ignore[no-untyped-def]
    """Outside titles and seconds. (Radicale refuses a property twice: see test_bad_input.)"""
    server = calendars.server
    source = calendars.new("work")
    target = source.replace("/work", "/phone")
    rules = '[[pairs.rules]]\nmatch_categories = ["staff"]\naction = "keep-title"\n'
    setup = make_setup(server, [("advocate", source, target)], rules=rules,
                       service_extra='agency_domains = ["agency.example.org"]')
    staff = "CATEGORIES:Staff\r\nORGANIZER:mailto:boss@agency.example.org\r\n"
    put(server, source + "own.ics", vevent("own", "20300304T130000Z", "20300304T140000Z",
                                           "Team meeting", staff))
    put(server, source + "outside.ics", vevent(
        "out", "20300304T150017Z", "20300304T160001Z", "Jane Doe",
        "CATEGORIES:Staff\r\nORGANIZER:mailto:abuser@example.com\r\n"))
    result = setup.run("sync", "--now", "2030-03-04T09:00:00+00:00")
    assert result.code == 0, result.output
    assert "created=2" in result.stdout
    phone = b"".join(data for _, data in list_objects(server, target).values()).decode()
    assert "SUMMARY:Team meeting" in phone and "Jane" not in phone
    assert "DTSTART:20300304T150000Z" in phone and "DTEND:20300304T160100Z" in phone
