"""Attendees added on the phone to one of our entries never turn into mail: on a server that
schedules implicitly (RFC 6638; a scripted one, see tests/support/scheduling_server.py), the
sanitizer neither rewrites nor deletes such an entry, at a move, at retention or at `wipe`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import vevent
from tests.support.hostile_server import configure
from tests.support.scheduling_server import SchedulingServer, parties

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
MEETING = (b"ORGANIZER:mailto:advocate@agency.example\r\n"
           b"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:stranger@example.net\r\n")


@pytest.fixture
def server() -> Iterator[SchedulingServer]:
    with SchedulingServer() as scheduling:
        scheduling.calendar("/casework/", {"work-1.ics": vevent(
            "work-1", "20300305T100000Z", "20300305T110000Z", "Client Jane Doe").encode()})
        scheduling.calendar("/phone/")
        yield scheduling


def test_the_scripted_server_schedules_as_rfc_6638_says(server: SchedulingServer) -> None:
    """The check below can fail: a rewrite that drops the attendee is a CANCEL to them."""
    event = vevent("m", "20300305T100000Z", "20300305T110000Z", "x").encode()
    meeting = event.replace(b"END:VEVENT", MEETING + b"END:VEVENT")
    assert parties(meeting) == ("mailto:advocate@agency.example", {"mailto:stranger@example.net"})
    server.calendars["/phone/"]["m.ics"] = meeting
    server.answer(_seen("PUT", "/phone/m.ics", event))
    assert server.itip == [("CANCEL", "mailto:stranger@example.net")]


def test_attendees_added_on_the_phone_are_never_notified(server: SchedulingServer,
                                                        tmp_path: Path) -> None:
    setup = configure(tmp_path, server)
    first = setup.run("sync", "--now", NOW)
    assert first.code == 0 and "created=1" in first.stdout, first.output
    (name, data), = server.calendars["/phone/"].items()
    server.calendars["/phone/"][name] = data.replace(b"END:VEVENT", MEETING + b"END:VEVENT")
    server.calendars["/casework/"]["work-1.ics"] = vevent(  # the appointment moves
        "work-1", "20300305T140000Z", "20300305T150000Z", "Client Jane Doe").encode()
    moved = setup.run("sync", "--now", NOW)
    shown = setup.run("status")
    later = setup.run("sync", "--now", "2031-06-01T09:00:00+00:00")  # past retention
    wipe = setup.run("wipe", "p", "--yes")
    assert server.itip == [], (moved.output, later.output, wipe.output)
    assert MEETING in server.calendars["/phone/"][name]  # left as the phone made it
    # it needs a person: the moved appointment is not on the phone, and every tool says so
    assert "foreign=1 MISSING=1 not on the phone write-errors: conflict=1" in moved.stdout, \
        moved.output
    assert shown.code == 3 and "write-conflict=1" in shown.stdout, shown.output
    assert "foreign=1" in wipe.stdout, wipe.output


def _seen(method: str, path: str, body: bytes) -> object:
    from tests.support.hostile_server import Seen  # noqa: PLC0415

    return Seen(method, path, 0, True, body)
