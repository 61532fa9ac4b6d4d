"""Daylight-saving changes, as docs/install.md describes them: a series keeps its local clock
time, a floating time in the skipped hour is shown an hour later (RFC 5545 3.3.5), and a time
that occurs twice means the first occurrence. Phone entries are written in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sanitizer.core.expand import expand_object
from sanitizer.core.model import Window

CHICAGO = ZoneInfo("America/Chicago")  # 2030: clocks go forward on 03-10, back on 11-03
WINDOW = Window(datetime(2030, 3, 1, tzinfo=UTC), datetime(2030, 11, 30, tzinfo=UTC))


def event(body: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:u\r\n"
            f"DTSTAMP:20300101T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def local(value: object) -> str:
    assert isinstance(value, datetime)
    return f"{value.astimezone(CHICAGO):%m-%d %H:%M}"


def test_a_weekly_series_keeps_its_local_time_across_both_changes() -> None:
    spring = event("DTSTART;TZID=America/Chicago:20300303T100000\r\n"
                   "DTEND;TZID=America/Chicago:20300303T110000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n")
    got = expand_object(spring, WINDOW, CHICAGO, "h")
    assert [(i.start, i.end) for i in got] == [
        (datetime(2030, 3, 3, 16, tzinfo=UTC), datetime(2030, 3, 3, 17, tzinfo=UTC)),  # CST
        (datetime(2030, 3, 10, 15, tzinfo=UTC), datetime(2030, 3, 10, 16, tzinfo=UTC)),  # CDT
        (datetime(2030, 3, 17, 15, tzinfo=UTC), datetime(2030, 3, 17, 16, tzinfo=UTC))]
    assert {local(i.start)[-5:] for i in got} == {"10:00"}
    autumn = event("DTSTART;TZID=America/Chicago:20301027T100000\r\n"
                   "DTEND;TZID=America/Chicago:20301027T110000\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\n")
    got = expand_object(autumn, WINDOW, CHICAGO, "h")
    assert [i.start for i in got] == [datetime(2030, 10, 27, 15, tzinfo=UTC),
                                      datetime(2030, 11, 3, 16, tzinfo=UTC)]


def test_a_floating_series_follows_the_agency_zone() -> None:
    floating = event("DTSTART:20300303T100000\r\nDTEND:20300303T110000\r\n"
                     "RRULE:FREQ=WEEKLY;COUNT=2\r\n")
    got = expand_object(floating, WINDOW, CHICAGO, "h")
    assert [local(i.start) for i in got] == ["03-03 10:00", "03-10 10:00"]


def test_a_floating_event_in_the_skipped_hour_is_kept_an_hour_later() -> None:
    """02:30 does not exist on 2030-03-10 in Chicago: it means 03:30 CDT, never dropped."""
    got = expand_object(event("DTSTART:20300310T023000\r\nDTEND:20300310T033000\r\n"),
                        WINDOW, CHICAGO, "h")
    assert len(got) == 1
    (instance,) = got
    assert instance.start == datetime(2030, 3, 10, 8, 30, tzinfo=UTC)
    assert local(instance.start) == "03-10 03:30"
    assert isinstance(instance.end, datetime) and instance.end >= instance.start


def test_a_floating_time_that_occurs_twice_is_the_first_one() -> None:
    """01:30 happens twice on 2030-11-03 in Chicago: the first (CDT) is meant."""
    (instance,) = expand_object(event("DTSTART:20301103T013000\r\nDTEND:20301103T020000\r\n"),
                                WINDOW, CHICAGO, "h")
    assert instance.start == datetime(2030, 11, 3, 6, 30, tzinfo=UTC)
