"""Expansion of source objects into instances: series, exceptions, zones, and bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.model import Window

WINDOW = Window(datetime(2030, 3, 3, 9, tzinfo=UTC), datetime(2030, 3, 18, 9, tzinfo=UTC))
BERLIN = ZoneInfo("Europe/Berlin")


def cal(*events: str, head: str = "") -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + head + "".join(events)
            + "END:VCALENDAR\r\n").encode()


def ev(body: str, uid: str = "u1") -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n{body}END:VEVENT\r\n"


SERIES = cal(
    ev("DTSTART;TZID=Europe/Berlin:20300302T100000\r\nDURATION:PT1H\r\n"
       "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20300323T100000\r\n"),
    ev("RECURRENCE-ID;TZID=Europe/Berlin:20300309T100000\r\n"
       "DTSTART;TZID=Europe/Berlin:20300310T120000\r\nDTEND;TZID=Europe/Berlin:20300310T130000\r\n"),
    ev("RECURRENCE-ID;TZID=Europe/Berlin:20300316T100000\r\n"
       "DTSTART;TZID=Europe/Berlin:20300316T100000\r\nDTEND;TZID=Europe/Berlin:20300316T110000\r\n"
       "STATUS:CANCELLED\r\n"),
)


def test_series_with_moved_and_cancelled_instances() -> None:
    got = expand_object(SERIES, WINDOW, UTC, "href")
    by_key = {i.occurrence_id: i for i in got}
    assert set(by_key) == {"20300309T090000Z", "20300316T090000Z"}  # 03-02 is before the window
    moved = by_key["20300309T090000Z"]
    assert moved.start == datetime(2030, 3, 10, 11, tzinfo=UTC)  # keeps its original key
    assert by_key["20300316T090000Z"].status == "CANCELLED"


def test_single_events_have_no_instance_key_so_a_move_is_an_update() -> None:
    got = expand_object(cal(ev("DTSTART:20300305T100000Z\r\nDTEND:20300305T110000Z\r\n")),
                        WINDOW, UTC, "href")
    assert [i.occurrence_id for i in got] == [""]


def test_floating_times_use_the_agency_zone_and_all_day_stays_a_date() -> None:
    floating = expand_object(cal(ev("DTSTART:20300305T100000\r\nDURATION:PT30M\r\n")),
                             WINDOW, BERLIN, "h")
    assert floating[0].start == datetime(2030, 3, 5, 9, tzinfo=UTC)
    allday = expand_object(cal(ev("DTSTART;VALUE=DATE:20300306\r\n")), WINDOW, BERLIN, "h")
    assert allday[0].start == date(2030, 3, 6) and allday[0].end == date(2030, 3, 7)


def test_x_wr_timezone_applies_and_an_invalid_one_is_dropped() -> None:
    good = cal(ev("DTSTART:20300305T100000Z\r\nDTEND:20300305T110000Z\r\n"),
               head="X-WR-TIMEZONE:Europe/Berlin\r\n")
    assert expand_object(good, WINDOW, UTC, "h")[0].start == datetime(2030, 3, 5, 10, tzinfo=UTC)
    bad = cal(ev("DTSTART:20300305T100000Z\r\nDTEND:20300305T110000Z\r\n"),
              head="X-WR-TIMEZONE:Not/AZone secret\r\n")
    assert len(expand_object(bad, WINDOW, UTC, "h")) == 1


@pytest.mark.parametrize(("body", "reason"), [
    ("DTEND:20300305T110000Z\r\n", "missing-dtstart"),
    ("DTSTART:2030-03-05 10:00\r\n", "bad-date"),
    ("DTSTART;TZID=Secret/Zone:20300305T100000\r\n", "unknown-timezone"),
    ("DTSTART:20300305T100000Z\r\nDTEND:20300305T090000Z\r\n", "end-before-start"),
    ("DTSTART:20300305T100000Z\r\nDTEND;VALUE=DATE:20300306\r\n", "mixed-date-types"),
    ("DTSTART:20300305T100000Z\r\nRRULE:FREQ=SECONDLY;COUNT=1000000000\r\n",
     "recurrence-too-dense"),
    ("DTSTART:20300305T100000Z\r\nRRULE:FREQ=MINUTELY\r\n", "too-many-instances"),
])
def test_bad_objects_are_skipped_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(SkipObject) as caught:
        expand_object(cal(ev(body)), WINDOW, UTC, "h")
    assert caught.value.reason == reason
    assert "Secret" not in str(caught.value)


def test_garbage_and_non_events() -> None:
    for data, reason in ((b"\xff\xfe garbage", "unparseable"),
                         (cal("BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"), "not-an-event")):
        with pytest.raises(SkipObject) as caught:
            expand_object(data, WINDOW, UTC, "h")
        assert caught.value.reason == reason


def test_events_outside_the_window_give_nothing() -> None:
    late = cal(ev("DTSTART:20300401T100000Z\r\nDTEND:20300401T110000Z\r\n"))
    assert expand_object(late, WINDOW, UTC, "h") == []
    zero = cal(ev("DTSTART:20300305T100000Z\r\n"))  # no DTEND: a moment, still shown
    got = expand_object(zero, WINDOW, UTC, "h")
    assert got[0].start == got[0].end
    assert WINDOW.start < got[0].start < WINDOW.end - timedelta(days=1)
