"""Three invitations of 7 MB each, which Radicale accepts, push the calendar-query answer past
its cap: the other appointments still sync (an ETag listing, then each object on its own), the
big ones are skipped and counted, and retention goes on. Against a real Radicale."""

from __future__ import annotations

import pytest

from tests.support.harness import list_objects, put, vevent

pytestmark = pytest.mark.integration

FIRST = "2030-03-04T09:00:00+00:00"
LATER = "2030-03-06T09:00:00+00:00"  # "gone" (ended 03-04T14:00Z) is past 24h retention


def test_huge_invitations_hide_neither_the_other_appointments_nor_retention(
        calendars, make_setup) -> None:  # type: ignore[no-untyped-def]
    server = calendars.server
    source = calendars.new("work")
    target = source.replace("/work", "/phone")
    setup = make_setup(server, [("advocate", source, target)])
    put(server, source + "gone.ics", vevent("gone", "20300304T130000Z", "20300304T140000Z", "x"))
    assert setup.run("sync", "--now", FIRST).code == 0
    assert len(list_objects(server, target)) == 1
    for n in range(3):
        put(server, source + f"huge-{n}.ics", vevent(
            f"huge-{n}", "20300307T100000Z", "20300307T110000Z", "Invitation",
            "DESCRIPTION:" + "y" * (7 * 1024 * 1024) + "\r\n"))
    put(server, source + "court.ics", vevent("court", "20300308T130000Z", "20300308T140000Z",
                                             "Court hearing"))
    result = setup.run("sync", "--now", LATER, "--full")
    assert "answer-too-large" not in result.output, result.output
    assert "created=1" in result.stdout and "deleted=1" in result.stdout, result.output
    assert "too-large=3" in result.stdout
    phone = list_objects(server, target)
    assert len(phone) == 1 and b"20300308T130000Z" in next(iter(phone.values()))[1]
