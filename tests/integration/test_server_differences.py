"""What differs between CalDAV servers, measured on the real ones, and proof the product copes.

Each measurement is compared with sanitizer/server_quirks.py, so a server upgrade that changes a
behaviour fails here by name instead of deep in a sync test. docs/servers.md has the table.
Request counts come from a FaultProxy (fault rate 0) in front of the plain-HTTP servers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import pytest

from sanitizer.core.model import Label, SanitizedEvent, Status, Transparency
from sanitizer.core.phone_format import read_back, serialize
from sanitizer.engine.reconcile import sync_pair
from sanitizer.service.config import parse_config
from tests.support.faultproxy import FaultProxy
from tests.support.harness import CALDAV, DAV, Setup, delete, list_objects, put, vevent
from tests.support.memory_store import MemoryCalendar
from tests.support.server_fixtures import FreshCalendars
from tests.support.server_quirks import (
    QUIRKS,
    Expand,
    ServerQuirks,
    SyncAnswer,
    classify_sync_answer,
)
from tests.support.servers import CalDAVServer, generate_test_pki

NOW = "2030-03-04T09:00:00+00:00"
LATER = "2030-03-04T11:00:00+00:00"
XML = {"Content-Type": 'application/xml; charset="utf-8"'}
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20300101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20300304T100000\r\nDTEND;TZID=Europe/Berlin:20300304T110000\r\n"
    "RRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Group with Jane Doe\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20300101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20300305T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20300305T150000\r\nDTEND;TZID=Europe/Berlin:20300305T160000\r\n"
    "SUMMARY:Moved group\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
PROPFIND_TOKEN = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
                  "<D:sync-token/></D:prop></D:propfind>")
SYNC = ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
        "<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>")
EXPAND = ('<?xml version="1.0" encoding="utf-8"?>'
          '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
          '<C:calendar-data><C:expand start="20300305T000000Z" end="20300307T000000Z"/>'
          "</C:calendar-data></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\">"
          '<C:comp-filter name="VEVENT"><C:time-range start="20300305T000000Z" '
          'end="20300307T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
          "</C:calendar-query>")
TOKEN_FORMS = {
    "radicale": re.compile(r"http://radicale\.org/ns/sync/[0-9a-f]{64}"),
    "xandikos": re.compile(r"[0-9a-f]{40}"),
    "xandikos-tls": re.compile(r"[0-9a-f]{40}"),
}


def quirks(server: CalDAVServer) -> ServerQuirks:
    """The recorded behaviour of this server kind."""
    return QUIRKS[server.name]


def sample_event() -> SanitizedEvent:
    """A phone entry using every field the serializer writes."""
    return SanitizedEvent(
        uid="csan-" + uuid.uuid4().hex + "00000000", start=datetime(2030, 3, 4, 10, tzinfo=UTC),
        end=datetime(2030, 3, 4, 11, tzinfo=UTC), title=Label("Appointment"),
        location=Label("Office; room 2, upstairs"), status=Status.TENTATIVE,
        transparency=Transparency.TRANSPARENT, alarm=timedelta(minutes=15))


def via(proxy: FaultProxy, url: str) -> str:
    """The same URL, through the proxy."""
    parts, front = urlsplit(url), urlsplit(proxy.url)
    return urlunsplit((front.scheme, front.netloc, parts.path, parts.query, ""))


def sync_token(server: CalDAVServer, url: str) -> str:
    """The collection's DAV:sync-token, read with PROPFIND."""
    reply = server.request("PROPFIND", url, body=PROPFIND_TOKEN, headers={"Depth": "0", **XML})
    assert reply.status == 207, reply.status
    token = ElementTree.fromstring(reply.body).findtext(f".//{DAV}sync-token")
    assert token, "no sync-token"
    return token.strip()


def sync_collection(server: CalDAVServer, url: str, token: str) -> tuple[int, bytes]:
    """A sync-collection REPORT as RFC 6578 describes it."""
    reply = server.request("REPORT", url, body=SYNC.format(token=token), headers=XML)
    return reply.status, reply.body


def sync_members(body: bytes) -> dict[str, int]:
    """href path -> status of each member in a sync-collection answer (200 changed, 404 gone)."""
    found = {}
    for response in ElementTree.fromstring(body).iter(DAV + "response"):
        href = (response.findtext(DAV + "href") or "").strip()
        status = response.findtext(DAV + "status") or response.findtext(f".//{DAV}status") or ""
        found[urlsplit(href).path] = int(status.split()[1])
    return found


def owned(server: CalDAVServer, url: str) -> dict[str, bytes]:
    """href -> data of every owned entry in a calendar."""
    return {h: d for h, (_, d) in list_objects(server, url).items() if b"UID:csan-" in d}


@pytest.fixture
def proxy(caldav_server: CalDAVServer) -> Iterator[FaultProxy]:
    """A request-counting proxy, fault rate 0; the TLS server cannot be proxied (and need not be:
    it is the same Xandikos)."""
    assert caldav_server.ca_file is None, "FaultProxy forwards to plain HTTP only"
    with FaultProxy(caldav_server.url, fault_rate=0.0, log=True) as running:
        yield running


def pair_setup(fresh: FreshCalendars, make_setup, url: str | None = None,
               **options) -> tuple[CalDAVServer, str, str, Setup]:
    """A source with events and a not-yet-existing target, and a config (maybe via a proxy)."""
    server = fresh.server
    source = fresh.new("work")
    target = source.replace("/work", "/phone")
    if url is not None:
        base = urlsplit(url)
        source = urlunsplit((base.scheme, base.netloc, urlsplit(source).path, "", ""))
        target = urlunsplit((base.scheme, base.netloc, urlsplit(target).path, "", ""))
    setup = make_setup(server, [("advocate", source, target)], url=url, **options)
    return server, source, target, setup


def direct(server: CalDAVServer, url: str) -> str:
    """The URL on the server itself (undoing `via`)."""
    base, parts = urlsplit(server.url), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, parts.path, "", ""))


# ---------------------------------------------------------------------------------------------
# TLS and authentication, through the product's own path (account ca_file -> verify)
# ---------------------------------------------------------------------------------------------

def _one_failed_line(result, pair: str, reason: str) -> None:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"pair {pair}: FAILED ") and reason in lines[0], result.output
    assert "Traceback" not in result.output
    assert all(len(line) < 300 for line in result.output.splitlines())


@pytest.mark.servers("tls")
def test_tls_is_verified_against_the_configured_ca_only(fresh_calendars, make_setup,
                                                        tmp_path: Path) -> None:
    server = fresh_calendars.server
    _, source, target, setup = pair_setup(fresh_calendars, make_setup)
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    with_ca = setup.config_path.read_text(encoding="utf-8")
    assert f'ca_file = "{server.ca_file}"' in with_ca

    setup.config_path.write_text(re.sub(r"ca_file = .*\n", "", with_ca), encoding="utf-8")
    result = setup.run("sync", "--now", NOW)
    assert result.code == 69  # the only pair failed: the server's certificate did not verify
    _one_failed_line(result, "advocate", "tls-verification-failed")
    status = json.loads((setup.state_dir / "status.json").read_text(encoding="utf-8"))
    assert "tls-verification-failed" in json.dumps(status)

    other = generate_test_pki(tmp_path / "other-ca")  # a valid CA, but not the server's
    setup.config_path.write_text(with_ca.replace(server.ca_file, str(other.ca_cert)),
                                 encoding="utf-8")
    result = setup.run_process("sync", "--now", NOW)  # the real process: no traceback either
    assert result.code == 69
    _one_failed_line(result, "advocate", "tls-verification-failed")
    assert server.request("PROPFIND", target, headers={"Depth": "0"}).status in (404, 207)

    setup.config_path.write_text(with_ca, encoding="utf-8")
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    assert "created=1" in result.stdout


@pytest.mark.servers("enforces-auth")
def test_a_wrong_password_is_an_auth_error(fresh_calendars, make_setup) -> None:
    server = fresh_calendars.server
    _, source, _, setup = pair_setup(fresh_calendars, make_setup)
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    (setup.credentials / "main").write_text(server.password + "-wrong", encoding="utf-8")
    result = setup.run("sync", "--now", NOW)
    assert result.code == 77  # the only pair failed for a rejected password
    _one_failed_line(result, "advocate", "auth-rejected")
    assert "wrong user name or password" in result.stdout
    assert "HTTP 401" in result.stdout
    assert server.password not in result.output
    status = json.loads((setup.state_dir / "status.json").read_text(encoding="utf-8"))
    assert "auth-rejected" in json.dumps(status)


# ---------------------------------------------------------------------------------------------
# Re-serialization: what comes back is not what went in, and nothing is rewritten for it
# ---------------------------------------------------------------------------------------------

def test_get_reserializes_and_read_back_sees_the_same_event(fresh_calendars) -> None:
    server = fresh_calendars.server
    calendar = fresh_calendars.new("reser")
    event = sample_event()
    data = serialize(event)
    put(server, calendar + "e.ics", data)
    got = server.request("GET", calendar + "e.ics")
    assert got.status == 200
    assert (got.body == data) is quirks(server).get_identical
    listed = next(iter(list_objects(server, calendar).values()))[1]
    for back in (read_back(got.body), read_back(listed)):
        assert back.uid == event.uid and back.event == event and back.extra is False
    added = {line.split(":")[0].split(";")[0] for line in got.body.decode().splitlines()} - {
        line.split(":")[0].split(";")[0] for line in data.decode().splitlines()}
    assert added == set(quirks(server).adds_properties)


@pytest.mark.servers("plain-http")
def test_second_cycle_writes_nothing(fresh_calendars, make_setup, proxy: FaultProxy) -> None:
    rules = '[[pairs.rules]]\nmatch_categories = ["staff"]\naction = "keep-title"\n'
    server, source, target, setup = pair_setup(
        fresh_calendars, make_setup, url=via(proxy, fresh_calendars.server.url), rules=rules,
        pair_extra='location = "Office, 2nd floor"\nalarm = "15m"\n')
    raw_source = direct(server, source)
    put(server, raw_source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                              "Jane Doe", "LOCATION:12 Elm St\r\n"))
    put(server, raw_source + "b.ics", vevent("b", "20300307", "20300308", "Court"))
    put(server, raw_source + "s.ics", SERIES)
    put(server, raw_source + "t.ics", vevent("t", "20300305T080000Z", "20300305T090000Z",
                                              "Team; meeting, big", "CATEGORIES:Staff\r\n"))
    first = setup.run("sync", "--now", NOW)
    assert first.code == 0 and "created=8" in first.stdout, first.output
    proxy.reset_stats()
    second = setup.run("sync", "--full", "--now", LATER)
    assert second.code == 0, second.output
    assert "created=0 updated=0 deleted=0 unchanged=8" in second.stdout
    requests = proxy.stats().requests
    assert requests.get("PUT", 0) == 0 and requests.get("DELETE", 0) == 0, dict(requests)
    assert len(owned(server, direct(server, target))) == 8
    print(f"{server.name}: full cycle with nothing to do: {dict(requests)}")
    proxy.reset_stats()
    quiet = setup.run("sync", "--now", "2030-03-04T11:05:00+00:00")  # the quiet path
    assert "created=0 updated=0 deleted=0" in quiet.stdout, quiet.output
    requests = proxy.stats().requests
    assert requests.get("PUT", 0) == 0 and requests.get("DELETE", 0) == 0, dict(requests)
    print(f"{server.name}: quiet cycle: {dict(requests)}")


# ---------------------------------------------------------------------------------------------
# ETags and sync tokens on an identical re-PUT
# ---------------------------------------------------------------------------------------------

def test_the_etag_a_put_returns_is_the_stored_one(fresh_calendars) -> None:
    """The quiet path keeps the ETag from the PUT answer and later writes If-Match it. RFC 4791
    section 5.3.4 lets a server that changed the data withhold it; both servers here re-serialize
    and still send one, and it matches what GET and REPORT say."""
    server = fresh_calendars.server
    calendar = fresh_calendars.new("etag")
    event = sample_event()
    etag = put(server, calendar + "e.ics", serialize(event))
    assert etag
    assert server.request("GET", calendar + "e.ics").header("etag") == etag
    assert next(iter(list_objects(server, calendar).values()))[0] == etag
    moved = SanitizedEvent(**{**event.__dict__, "start": event.start + timedelta(hours=1),
                              "end": event.end + timedelta(hours=1)})
    assert put(server, calendar + "e.ics", serialize(moved), etag=etag)
    stale = server.request("PUT", calendar + "e.ics", body=serialize(event),
                           headers={"If-Match": etag, **ICS})
    assert stale.status == 412


def test_identical_reput_etag_and_token(fresh_calendars) -> None:
    server = fresh_calendars.server
    calendar = fresh_calendars.new("reput")
    data = serialize(sample_event())
    first = put(server, calendar + "e.ics", data)
    token = sync_token(server, calendar)
    again = put(server, calendar + "e.ics", data)
    assert (again != first) is quirks(server).reput_changes_etag
    assert (sync_token(server, calendar) != token) is quirks(server).reput_changes_token


# ---------------------------------------------------------------------------------------------
# Duplicate UIDs: the product never makes one; copies made by others end as one owned entry
# ---------------------------------------------------------------------------------------------

def test_a_copy_of_an_owned_entry_ends_as_one_owned_entry(fresh_calendars, make_setup) -> None:
    """Target-side changes are only looked at by a full reconcile, so each step forces one."""
    server, source, target, setup = pair_setup(fresh_calendars, make_setup)
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    assert setup.run("sync", "--full", "--now", NOW).code == 0
    (href, data), = owned(server, target).items()

    copy = server.request("PUT", target + "copy.ics", body=data, headers=ICS)
    expected = quirks(server).duplicate_uid_status
    assert copy.status == (expected or 201)
    assert (b"no-uid-conflict" in copy.body) is (expected is not None)
    result = setup.run("sync", "--full", "--now", NOW)
    assert result.code == 0 and "created=0 updated=0 deleted=0" in result.stdout, result.output
    assert list(owned(server, target)) == [urlsplit(href).path]

    # A client that re-files the entry under another name (delete, then PUT elsewhere):
    delete(server, direct(server, href))
    put(server, target + "moved.ics", data)
    result = setup.run("sync", "--full", "--now", NOW)
    assert "created=0 updated=0 deleted=0 unchanged=1" in result.stdout, result.output
    # ... and edits it there: it is put right in place, once.
    put(server, target + "moved.ics", data.replace(b"SUMMARY:Appointment", b"SUMMARY:Edited"))
    result = setup.run("sync", "--full", "--now", NOW)
    assert "created=0 updated=1 deleted=0" in result.stdout, result.output
    result = setup.run("sync", "--full", "--now", NOW)
    assert "created=0 updated=0 deleted=0 unchanged=1" in result.stdout, result.output
    entries = owned(server, target)
    assert list(entries) == [urlsplit(target + "moved.ics").path]
    assert b"SUMMARY:Appointment" in next(iter(entries.values()))


@pytest.mark.servers("radicale")
def test_a_foreign_object_holding_an_owned_uid_fails_the_pair_loudly(fresh_calendars,
                                                                      make_setup) -> None:
    """A VTODO that carries a phone entry's UID is not in the VEVENT listing, yet the server
    refuses the entry for its UID on every cycle: the appointment never reaches the phone."""
    server, source, target, setup = pair_setup(fresh_calendars, make_setup)
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    assert setup.run("sync", "--now", NOW).code == 0
    (href, data), = owned(server, target).items()
    uid = re.search(rb"UID:(csan-[0-9a-f-]+)", data).group(1).decode()
    delete(server, direct(server, href))
    todo = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
            f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
    blocker = server.request("PUT", target + "todo.ics", body=todo, headers=ICS)
    assert blocker.status == 201
    result = setup.run("sync", "--full", "--now", NOW)
    assert result.code == 1 and "uid-conflict" in result.stdout, result.output


def test_duplicates_on_a_server_that_accepts_them_are_removed_once() -> None:
    """DAViCal accepts a second object with the same UID; the in-memory calendar does too."""
    config = parse_config({
        "service": {"timezone": "UTC"},
        "accounts": {"main": {"url": "http://127.0.0.1:1/", "username": "u"}},
        "pairs": [{"name": "p", "account": "main", "source": "work/", "target": "phone/"}],
    })
    pair = config.pairs[0]
    source, target = MemoryCalendar("memory://casework/"), MemoryCalendar("memory://phone/")
    source.put_raw("a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z").encode())
    now = datetime(2030, 3, 4, 9, tzinfo=UTC)
    key = b"k" * 32

    def cycle():
        return sync_pair(pair, source, target, key=key, now=now, zone=UTC)

    assert cycle().created == 1
    (data,) = target.objects.values()
    target.put_raw("copy-1.ics", data)
    target.put_raw("copy-2.ics", data)
    report = cycle()
    assert report.ok and report.deleted == 2 and report.created == 0 and report.updated == 0
    assert len(target.objects) == 1
    quiet = cycle()
    assert (quiet.created, quiet.updated, quiet.deleted, quiet.unchanged) == (0, 0, 0, 1)


# ---------------------------------------------------------------------------------------------
# Concurrent writes: Xandikos answers 423 Locked while another write holds its repository
# ---------------------------------------------------------------------------------------------

def test_a_first_sync_of_50_with_8_workers(fresh_calendars, make_setup, caldav_server) -> None:
    counting = caldav_server.ca_file is None
    with FaultProxy(caldav_server.url, log=True) if counting else nullcontext() as front:
        url = via(front, caldav_server.url) if front is not None else None
        server, source, target, setup = pair_setup(fresh_calendars, make_setup, url=url,
                                                   service_extra="workers = 8")
        raw_source = direct(server, source)
        for i in range(50):
            day, hour = 4 + i // 8, 8 + i % 8
            put(server, raw_source + f"e{i}.ics", vevent(
                f"e{i}", f"203003{day:02d}T{hour:02d}0000Z", f"203003{day:02d}T{hour:02d}3000Z"))
        result = setup.run("sync", "--now", NOW)
        assert result.code == 0, result.output
        assert "created=50" in result.stdout and "write-errors" not in result.stdout
        assert len(owned(server, direct(server, target))) == 50
        if front is not None:
            locked = sum(1 for e in front.log_entries() if e.status == 423)
            busy = quirks(server).busy_status
            if busy is None:
                assert locked == 0
            print(f"{server.name}: {locked} answers 423 to 50 PUTs by 8 workers")


# ---------------------------------------------------------------------------------------------
# sync-collection (RFC 6578): token forms, deltas, and the answer to a token the server forgot
# ---------------------------------------------------------------------------------------------

def test_sync_collection_deltas_and_an_unknown_token(fresh_calendars) -> None:
    server = fresh_calendars.server
    calendar, other = fresh_calendars.new("tok"), fresh_calendars.new("tok-other")
    first = sync_token(server, calendar)
    assert TOKEN_FORMS[server.name].fullmatch(first), first
    status, body = sync_collection(server, calendar, "")
    assert status == 207 and classify_sync_answer(status, body) is SyncAnswer.DELTA

    put(server, calendar + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    status, body = sync_collection(server, calendar, first)
    assert status == 207
    assert sync_members(body) == {urlsplit(calendar + "a.ics").path: 200}
    second = ElementTree.fromstring(body).findtext(DAV + "sync-token")
    assert second and second.strip() == sync_token(server, calendar) != first

    delete(server, calendar + "a.ics")
    status, body = sync_collection(server, calendar, second.strip())
    assert status == 207 and sync_members(body) == {urlsplit(calendar + "a.ics").path: 404}

    put(server, other + "x.ics", vevent("x", "20300304T130000Z", "20300304T140000Z"))
    bogus = {"radicale": "http://radicale.org/ns/sync/" + "0" * 64}.get(server.name, "0" * 40)
    for token in (bogus, sync_token(server, other)):  # never issued here; from another calendar
        status, body = sync_collection(server, calendar, token)
        assert status == quirks(server).unknown_token_status, (token, status)
        assert classify_sync_answer(status, body) is SyncAnswer.RESYNC
        assert b"valid-sync-token" in body


# ---------------------------------------------------------------------------------------------
# Server-side expansion (CALDAV:expand): the product expands itself; record who could
# ---------------------------------------------------------------------------------------------

def test_server_side_expand(fresh_calendars) -> None:
    server = fresh_calendars.server
    calendar = fresh_calendars.new("expand")
    put(server, calendar + "s.ics", SERIES)
    reply = server.request("REPORT", calendar, body=EXPAND, headers={"Depth": "1", **XML})
    assert reply.status == 207
    data = "".join(node.text or "" for node in
                   ElementTree.fromstring(reply.body).iter(CALDAV + "calendar-data"))
    if "RRULE" in data:
        seen = Expand.IGNORED
    elif "DTSTART:20300305T140000Z" in data and "DTSTART:20300306T090000Z" in data:
        seen = Expand.UTC  # the moved instance and a regular one, in UTC
    else:
        assert "DTSTART;TZID=Europe/Berlin:20300305T150000" in data
        assert "BEGIN:VTIMEZONE" not in data  # a TZID that the answer does not define
        seen = Expand.KEEPS_TZID
    assert data.count("RECURRENCE-ID") == (0 if seen is Expand.IGNORED else 2)
    assert seen is quirks(server).expand


# ---------------------------------------------------------------------------------------------
# The classification itself, for the servers not started here (answers from the design notes)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "body", "expected"), [
    (207, b"<multistatus/>", SyncAnswer.DELTA),  # DAViCal, SOGo: even for a forgotten token
    (403, b'<error xmlns="DAV:"><valid-sync-token/></error>', SyncAnswer.RESYNC),  # Radicale
    (412, b"", SyncAnswer.RESYNC),  # Xandikos (it names valid-sync-token too)
    (409, b"<D:valid-sync-token/>", SyncAnswer.RESYNC),
    (403, b"", SyncAnswer.FAILED),  # a permission problem, not a stale token
    (401, b"", SyncAnswer.FAILED),
    (500, b"valid-sync-token", SyncAnswer.FAILED),
])
def test_classify_sync_answer(status: int, body: bytes, expected: SyncAnswer) -> None:
    assert classify_sync_answer(status, body) is expected


def test_the_quirks_table_is_consistent() -> None:
    assert QUIRKS["xandikos-tls"] == QUIRKS["xandikos"]
    for kind, entry in QUIRKS.items():
        assert entry.kind == kind or kind == "xandikos-tls"
        assert entry.unknown_token_status in (207, 403, 409, 412)
        assert entry.stale_token_lists_everything is (kind in ("davical", "sogo"))
