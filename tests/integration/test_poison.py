"""Poison objects are paid for once: invitations that spend their whole CPU budget are remembered
by (href, ETag) and skipped, counted and reported on later cycles without being fetched or parsed
again, until they change. Against the scripted hostile server, which honours multigets and
ETag-only listings and records which objects it sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sanitizer.core import expand
from tests.support.harness import vevent
from tests.support.hostile_server import HostileServer, configure

pytestmark = pytest.mark.integration

NOW = "2030-03-04T09:00:00+00:00"
DATA = Path(__file__).resolve().parent.parent / "data"
NEVER = (DATA / "bad_rrule_never_matches.ics").read_bytes()  # walks to the year 9999


def never(n: int, stamp: str = "20300301T080000Z") -> bytes:
    return NEVER.replace(b"UID:bad-never", f"UID:bad-never-{n}".encode()).replace(
        b"DTSTAMP:20300301T080000Z", f"DTSTAMP:{stamp}".encode())


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        objects = {f"never-{n}.ics": never(n) for n in range(5)}
        objects["work.ics"] = vevent("w", "20300305T100000Z", "20300305T110000Z", "Jane").encode()
        hostile.calendar("/casework/", objects)
        hostile.calendar("/phone/")
        yield hostile


def test_poison_is_paid_for_once_until_it_changes(server: HostileServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expand, "MAX_SECONDS", 0.2)  # each worker gets the supervisor's budget
    setup = configure(tmp_path, server)
    first = setup.run("sync", "--now", NOW)
    assert first.code == 0 and "expansion-timeout=5" in first.stdout, first.output
    assert "created=1" in first.stdout
    server.served.clear()
    again = setup.run("sync", "--now", NOW, "--full")
    assert again.code == 0 and "expansion-timeout=5" in again.stdout, again.output
    assert not [href for href in server.served if "never" in href], server.served
    remembered = setup.state_dir / "poison" / "p.json"
    assert "Vasquez" not in remembered.read_text() and "never" not in remembered.read_text()
    server.calendars["/casework/"]["never-3.ics"] = never(3, "20300302T080000Z")  # changed
    server.served.clear()
    changed = setup.run("sync", "--now", NOW, "--full")
    assert "expansion-timeout=5" in changed.stdout, changed.output
    assert [href for href in server.served if "never" in href] == ["/casework/never-3.ics"]
    del server.calendars["/casework/"]["never-1.ics"]  # gone: forgotten
    setup.run("sync", "--now", NOW, "--full")
    assert len(json.loads(remembered.read_text())["objects"]) == 4
