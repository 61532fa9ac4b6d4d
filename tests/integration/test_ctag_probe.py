"""The quiet cycle's probe: getctag where the server has one (one PROPFIND when nothing changed),
sync-collection when the ctag moved, and sync-collection only where the ctag cannot be trusted."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sanitizer.stores.caldav import ctag
from tests.support.faultproxy import FaultProxy
from tests.support.harness import put, vevent
from tests.support.hostile_server import XML, HostileServer, Seen, configure, multistatus

pytestmark = pytest.mark.integration

NOW = "2030-03-04T09:00:00+00:00"


@pytest.mark.servers("plain-http")
def test_a_quiet_cycle_asks_only_the_ctag_and_an_edit_still_follows(fresh_calendars,
                                                                     make_setup) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")
    for i in range(3):
        put(server, f"{source}e{i}.ics", vevent(f"e{i}", f"2030030{4 + i}T100000Z",
                                                 f"2030030{4 + i}T110000Z"))
    with FaultProxy(server.url, log=True) as proxy:
        relative = [u.removeprefix(server.url) for u in (source, target)]
        setup = make_setup(server, [("advocate", *relative)], url=proxy.url)
        assert setup.run("sync", "--now", NOW).code == 0
        proxy.reset_stats()
        quiet = setup.run("sync", "--now", NOW)
        assert "unchanged=3" in quiet.stdout, quiet.output
        assert dict(proxy.stats().requests) == {"PROPFIND": 1}  # getctag, no REPORT
        put(server, f"{source}e1.ics", vevent("e1", "20300305T120000Z", "20300305T130000Z"))
        proxy.reset_stats()
        edited = setup.run("sync", "--now", NOW)
        assert "updated=1" in edited.stdout, edited.output
        assert proxy.stats().requests.get("REPORT", 0) >= 1
        proxy.reset_stats()
        again = setup.run("sync", "--now", NOW)
        assert "unchanged=3" in again.stdout, again.output
        assert dict(proxy.stats().requests) == {"PROPFIND": 1}


class SyncingServer:
    """The hostile server's /casework/ with a sync token, and a getctag that is `fixed` (never
    changes: an unreliable ctag), follows the calendar, or is absent (None)."""

    def __init__(self, server: HostileServer, fixed: str | None, has_ctag: bool = True) -> None:
        self.server, self.fixed, self.has_ctag = server, fixed, has_ctag
        self.version = 0
        server.script("PROPFIND", "/casework/", self.propfind)
        server.script("REPORT", "/casework/", self.report)

    def add(self, name: str, data: bytes) -> None:
        self.server.calendars["/casework/"][name] = data
        self.version += 1

    def propfind(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        tag = self.fixed if self.fixed is not None else f"ctag-{self.version}"
        props = f"<D:sync-token>tok-{self.version}</D:sync-token>"
        if self.has_ctag:
            props += f'<CS:getctag xmlns:CS="http://calendarserver.org/ns/">{tag}</CS:getctag>'
        return 207, XML, multistatus([
            f"<D:response><D:href>/casework/</D:href><D:propstat><D:prop>{props}</D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"])

    def report(self, seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        if b"sync-collection" not in seen.body:
            return None  # calendar-query and multiget: the default answers
        given = re.search(rb"<D:sync-token>([^<]*)<", seen.body)
        changed = [] if given and given.group(1) == f"tok-{self.version}".encode() else sorted(
            self.server.calendars["/casework/"])
        listed = [f"<D:response><D:href>/casework/{name}</D:href><D:propstat><D:prop>"
                  '<D:getetag>"x"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status>'
                  "</D:propstat></D:response>" for name in changed]
        body = multistatus(listed).replace(
            b"</D:multistatus>", f"<D:sync-token>tok-{self.version}</D:sync-token>"
                                 "</D:multistatus>".encode())
        return 207, XML, body


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        server.calendar("/casework/", {"a.ics": vevent(
            "a", "20300305T100000Z", "20300305T110000Z", "Client").encode()})
        server.calendar("/phone/")
        yield server


def casework_requests(server: HostileServer, since: int) -> list[str]:
    return [s.method for s in server.seen[since:] if s.path == "/casework/"]


def test_a_ctag_that_stays_put_while_the_calendar_changes_is_caught_and_dropped(
        hostile: HostileServer, tmp_path) -> None:
    source = SyncingServer(hostile, fixed="always-the-same")
    setup = configure(tmp_path, hostile)
    assert setup.run("sync", "--now", NOW).code == 0
    source.add("b.ics", vevent("b", "20300306T100000Z", "20300306T110000Z", "New").encode())
    outputs = [setup.run("sync", "--now", NOW).stdout for _ in range(ctag.VERIFY_EVERY + 1)]
    found = [n for n, out in enumerate(outputs, start=1) if "created=1" in out]
    assert found == [ctag.VERIFY_EVERY + 1], outputs  # by the checking REPORT, not by the ctag
    seen = len(hostile.seen)
    assert "unchanged=2" in setup.run("sync", "--now", NOW).stdout
    assert casework_requests(hostile, seen) == ["REPORT"]  # sync-collection only from now on


def test_a_ctag_that_follows_the_calendar_finds_a_change_at_once(hostile: HostileServer,
                                                                  tmp_path) -> None:
    source = SyncingServer(hostile, fixed=None)
    setup = configure(tmp_path, hostile)
    assert setup.run("sync", "--now", NOW).code == 0
    seen = len(hostile.seen)
    assert "unchanged=1" in setup.run("sync", "--now", NOW).stdout
    assert casework_requests(hostile, seen) == ["PROPFIND"]
    source.add("b.ics", vevent("b", "20300306T100000Z", "20300306T110000Z", "New").encode())
    assert "created=1" in setup.run("sync", "--now", NOW).stdout


def test_without_a_getctag_the_quiet_probe_is_one_sync_collection(hostile: HostileServer,
                                                                   tmp_path) -> None:
    SyncingServer(hostile, fixed=None, has_ctag=False)
    setup = configure(tmp_path, hostile)
    assert setup.run("sync", "--now", NOW).code == 0
    seen = len(hostile.seen)
    assert "unchanged=1" in setup.run("sync", "--now", NOW).stdout
    assert casework_requests(hostile, seen) == ["REPORT"]


def test_a_damaged_kept_token_probes_with_sync_collection() -> None:
    point = ctag.ProbeToken("http://example/sync/1", "abc", 3)
    assert ctag.ProbeToken.decode(point.encode()) == point
    assert ctag.ProbeToken.decode("tok").ctag is None
    broken = ctag.ProbeToken.decode(ctag.PREFIX + "x:!!:tok-9")
    assert broken.ctag is None and broken.sync == "tok-9"
