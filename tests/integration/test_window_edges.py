"""Both edges of the window are decided by the sanitizer's own expansion in the agency's zone,
never by a server's time filter: against a real Radicale, with `service.timezone` west of UTC.

Radicale evaluates floating and all-day times as UTC in a time-range query, and reads a VTIMEZONE
written as RDATE lists (what `icalendar.Timezone.from_tzid()` writes) an hour off, dropping the
last instance of an UNTIL series from its answer."""

from __future__ import annotations

import icalendar
import pytest

from tests.support.harness import list_objects, put

pytestmark = pytest.mark.integration
ZONE = "America/New_York"


def calendar(body: str, extra: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + extra
            + "BEGIN:VEVENT\r\nDTSTAMP:20300101T000000Z\r\nSUMMARY:Jane Doe\r\n" + body
            + "END:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    setup = make_setup(server, [("advocate", work, phone)], timezone=ZONE,
                       pair_extra='retention = "6h"\n')
    return server, work, phone, setup


def phone_count(server, phone) -> int:
    return len(list_objects(server, phone))


def sync(setup, now: str) -> str:
    result = setup.run_process("sync", "--now", now)
    assert result.code == 0, result.output
    return result.stdout


def test_a_floating_entry_stays_for_its_retention_in_the_agencys_zone(pair) -> None:
    """10:25-11:25 floating on 15 January is 15:25-16:25Z in New York: kept until 22:25Z."""
    server, work, phone, setup = pair
    put(server, work + "f.ics", calendar("UID:f\r\nDTSTART:20300115T102500\r\n"
                                         "DTEND:20300115T112500\r\n"))
    sync(setup, "2030-01-15T09:00:00+00:00")
    assert phone_count(server, phone) == 1
    sync(setup, "2030-01-15T17:30:00+00:00")  # before: deleted here, 5 hours early
    assert phone_count(server, phone) == 1
    sync(setup, "2030-01-15T22:20:00+00:00")
    assert phone_count(server, phone) == 1
    assert "deleted=1" in sync(setup, "2030-01-15T22:30:00+00:00")
    assert phone_count(server, phone) == 0


def test_an_all_day_entry_stays_for_its_retention_in_the_agencys_zone(pair) -> None:
    """16 March all day ends at midnight New York time, 04:00Z: kept until 10:00Z."""
    server, work, phone, setup = pair
    put(server, work + "d.ics", calendar("UID:d\r\nDTSTART;VALUE=DATE:20300316\r\n"
                                         "DTEND;VALUE=DATE:20300317\r\n"))
    sync(setup, "2030-03-16T12:00:00+00:00")
    assert phone_count(server, phone) == 1
    sync(setup, "2030-03-17T06:30:00+00:00")  # before: deleted here, in its own evening
    assert phone_count(server, phone) == 1
    sync(setup, "2030-03-17T09:50:00+00:00")
    assert phone_count(server, phone) == 1
    assert "deleted=1" in sync(setup, "2030-03-17T10:10:00+00:00")


def test_the_last_instance_of_a_series_in_an_rdate_vtimezone_reaches_the_phone(pair) -> None:
    """Daily 10:00-11:00 New York time until 10 July: its last instance, 14:00-15:00Z, is in
    the window (retention 6h) at 20:30Z; Radicale's time filter leaves the series out."""
    server, work, phone, setup = pair
    zone = icalendar.Timezone.from_tzid(ZONE).to_ical().decode()
    zone = zone.replace("\r\n", "\n").replace("\n", "\r\n")
    assert "RDATE" in zone
    put(server, work + "s.ics", calendar(
        "UID:s\r\nDTSTART;TZID=America/New_York:20300701T100000\r\n"
        "DTEND;TZID=America/New_York:20300701T110000\r\n"
        "RRULE:FREQ=DAILY;UNTIL=20300710T140000Z\r\n", extra=zone))
    out = sync(setup, "2030-07-10T20:30:00+00:00")
    assert "created=1" in out, out  # before: created=0, the appointment never reached the phone
    (data,) = [d for _, d in list_objects(server, phone).values()]
    assert b"DTSTART:20300710T140000Z" in data


def test_a_series_that_ended_before_the_window_is_fetched_once_per_process() -> None:
    """The left-out recurring objects that end before the window are remembered with their ETag
    and the window's start; a changed ETag or an earlier window fetches them again."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from sanitizer.stores.base import RawObject  # noqa: PLC0415
    from sanitizer.stores.series import PastSeries  # noqa: PLC0415

    memo, start = PastSeries(), datetime(2030, 7, 10, tzinfo=UTC)
    left_out = [("/c/old.ics", '"1"'), ("/c/new.ics", '"7"')]
    assert memo.unchecked("/c/", left_out, start) == ["/c/old.ics", "/c/new.ics"]
    memo.note_past("/c/", [RawObject("/c/old.ics", '"1"', b"")], start)
    later = start + timedelta(hours=1)
    assert memo.unchecked("/c/", left_out, later) == ["/c/new.ics"]
    assert memo.unchecked("/c/", left_out, start - timedelta(days=1)) == left_out_hrefs(left_out)
    assert memo.unchecked("/c/", [("/c/old.ics", '"2"')], later) == ["/c/old.ics"]


def left_out_hrefs(left_out: list[tuple[str, str]]) -> list[str]:
    return [href for href, _ in left_out]


def test_a_server_that_refuses_the_recurring_object_query_still_syncs(tmp_path) -> None:
    """The month's recurring objects are asked for with a prop-filter; a server that refuses
    it (400) keeps the window's answer as it was, and the pair syncs."""
    from tests.support.hostile_server import HostileServer, configure  # noqa: PLC0415

    with HostileServer() as server:
        server.calendar("/casework/", {"a.ics": vevent_bytes()})
        server.calendar("/phone/")
        server.script("REPORT", "/casework/",
                      lambda seen: (400, {}, b"no") if b"prop-filter" in seen.body else None)
        result = configure(tmp_path, server).run("sync", "--now", "2030-03-04T09:00:00+00:00")
        assert result.code == 0 and "created=1" in result.stdout, result.output  # before: 1
        assert any(b"prop-filter" in s.body for s in server.seen)


def vevent_bytes() -> bytes:
    from tests.support.harness import vevent  # noqa: PLC0415

    return vevent("a", "20300305T100000Z", "20300305T110000Z").encode()
