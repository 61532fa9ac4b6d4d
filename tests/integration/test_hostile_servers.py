"""A server that lies (issue #10): confined hrefs, no redirects, deadlines, capped answers, loud
verify_tls = false. Each test runs the real CLI (or engine) against the scripted HostileServer and
checks what was sent, and where: never outside the phone calendar, never to another host."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.core.identity import installation_tag
from sanitizer.core.policy import Policy
from sanitizer.engine.reconcile import sync_pair
from sanitizer.errors import StoreError
from sanitizer.service import runtime
from sanitizer.stores.caldav.store import CalDAVTarget, Credentials, Transport
from tests.support.harness import Result, Setup, vevent
from tests.support.hostile_server import (
    PASSWORD,
    UID_KEY,
    XML,
    HostileServer,
    Seen,
    configure,
    multistatus,
    response_xml,
    stream,
)
from tests.support.memory_store import MemoryCalendar

pytestmark = pytest.mark.integration

NOW = "2030-03-04T09:00:00+00:00"
WORK = vevent("work-1", "20300305T100000Z", "20300305T110000Z", "Client Jane Doe").encode()
OWNED = "csan-" + "0" * 40


def owned(n: int) -> bytes:
    """A phone entry with an owned UID that no source event produces: the engine deletes it."""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calendar-sanitizer//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:csan-{installation_tag(UID_KEY)}-{n:040d}\r\n"
            "DTSTAMP:20300101T000000Z\r\n"
            "DTSTART:20300306T100000Z\r\nDTEND:20300306T110000Z\r\nSUMMARY:Appointment\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        hostile.calendar("/casework/", {"work-1.ics": WORK})
        hostile.calendar("/phone/")
        yield hostile


@pytest.fixture
def other() -> Iterator[HostileServer]:
    """Another host (another port): nothing may ever reach it."""
    with HostileServer() as elsewhere:
        elsewhere.calendar("/casework/", {"planted.ics": vevent(
            "planted", "20300305T120000Z", "20300305T130000Z", "Planted").encode()})
        elsewhere.calendar("/phone/", {"x.ics": owned(99)})
        yield elsewhere


def sync(setup: Setup, *extra: str) -> Result:
    return setup.run("sync", "--now", NOW, *extra)


def writes_outside(server: HostileServer, folder: str = "/phone/") -> list[Seen]:
    return [s for s in server.writes() if not s.path.startswith(folder)
            or "/" in s.path[len(folder):] or "%" in s.path or ".." in s.path]


def hostile_listing(server: HostileServer, other: HostileServer) -> list[str]:
    """Owned entries at every href a hostile phone-calendar listing can name."""
    hrefs = [
        "/casework/work-1.ics",  # an object of the work calendar
        "/casework/",  # the work collection
        "/",  # the account root
        "/phone/../casework/work-1.ics",
        "/phone/%2e%2e/casework/work-1.ics",
        "/phone/..%2Fcasework%2Fwork-1.ics",
        "/phone/sub/deeper.ics",  # not directly inside
        "/phone//x.ics",
        "/phone/x.ics?delete=all",
        f"//127.0.0.1:{other.port}/phone/x.ics",  # another host, scheme-relative
        f"http://127.0.0.1:{other.port}/phone/x.ics",  # another host over plain http
        f"http://localhost:{server.port}/casework/work-1.ics",  # another spelling of the host
        f"https://127.0.0.1:{server.port}/phone/y.ics",  # another scheme
    ]
    server.extra["/phone/"] = [(href, owned(n)) for n, href in enumerate(hrefs, start=1)]
    server.calendars["/phone/"]["stale.ics"] = owned(77)  # inside, owned, not wanted: deleted
    return hrefs


# 1. confinement ---------------------------------------------------------------------------------

def test_sync_never_writes_outside_the_phone_calendar(server, other, tmp_path) -> None:
    hrefs = hostile_listing(server, other)
    result = sync(configure(tmp_path, server))
    assert "work-1.ics" in server.calendars["/casework/"], "the work event was deleted"
    assert writes_outside(server) == [], result.output
    assert other.seen == [], "a request went to another host"
    assert not any(s.authorized for s in other.seen)
    assert "stale.ics" not in server.calendars["/phone/"]  # confined hrefs still work
    assert f"foreign={len(hrefs)}" in result.output
    assert result.code == 0, result.output


def test_wipe_never_deletes_outside_the_phone_calendar(server, other, tmp_path) -> None:
    hostile_listing(server, other)
    result = configure(tmp_path, server).run("wipe", "p", "--yes")
    assert "work-1.ics" in server.calendars["/casework/"], "the work event was deleted"
    assert writes_outside(server) == [] and other.seen == []
    assert result.code == 0, result.output
    assert "stale.ics" not in server.calendars["/phone/"]


def test_hrefs_from_the_state_directory_are_confined(server) -> None:
    """A quiet cycle acts on remembered hrefs: one that points at the work calendar (a tampered
    state file) sends the cycle down the full path, which trusts only a fresh listing."""
    source = MemoryCalendar("memory://casework/")
    source.put_raw("a.ics", WORK)
    source.put_raw("b.ics", vevent("work-2", "20300305T140000Z", "20300305T150000Z").encode())
    transport = Transport(Credentials(server.url, "advocate", PASSWORD, timeout=5))
    target = CalDAVTarget(transport, server.url + "phone/")
    pair = Policy(name="p", source_url="memory://casework/", target_url=server.url + "phone/")
    now = datetime(2030, 3, 4, 9, tzinfo=UTC)
    first = sync_pair(pair, source, target, key=b"k" * 32, now=now, zone=UTC)
    assert first.ok and first.created == 2 and first.state is not None
    work = server.url + "casework/work-1.ics"
    tampered = replace(first.state, entries={
        uid: replace(entry, href=work) for uid, entry in first.state.entries.items()})
    source.remove_raw("memory://casework/a.ics")  # the quiet path would DELETE the entry's href
    second = sync_pair(pair, source, target, key=b"k" * 32, now=now + timedelta(minutes=5),
                       zone=UTC, state=tampered)
    transport.close()
    assert "work-1.ics" in server.calendars["/casework/"]
    assert writes_outside(server) == []
    assert second.mode == "full"


def test_transport_refuses_urls_outside_the_account(server, other) -> None:
    transport = Transport(Credentials(server.url + "phone/", "advocate", PASSWORD, timeout=5))
    for url in (other.url + "phone/x.ics", server.url + "casework/work-1.ics",
                server.url + "phone/../casework/work-1.ics"):
        with pytest.raises(StoreError) as caught:
            transport.request("DELETE", url)
        assert caught.value.reason == "url-outside-account"
    with pytest.raises(StoreError) as plain:  # refused before any connection is made
        Transport(Credentials("http://calendar.example/", "a", "b")).request(
            "DELETE", "http://calendar.example/phone/x.ics")
    assert plain.value.reason == "plain-http-refused"
    assert other.seen == [] and server.seen == []


SEGMENTS = st.sampled_from(["a.ics", "phone", "casework", "..", ".", "%2e%2E", "%2F", "%2f..",
                            "", "x%20y.ics", "%00", "\\", "?q", "#f", "@", ":8443", "%252e"])


@given(st.lists(SEGMENTS, max_size=6), st.sampled_from(
    ["http://127.0.0.1:8000", "HTTP://127.0.0.1:80", "http://127.0.0.1", "http://localhost:8000",
     "https://127.0.0.1:8000", "http://u@127.0.0.1:8000", "", "//127.0.0.1:8000"]))
def test_an_accepted_href_is_directly_inside_the_calendar(segments, origin) -> None:
    from sanitizer.stores.urls import object_url, within  # noqa: PLC0415

    collection = "http://127.0.0.1:8000/dav/phone/"
    href = origin + "/dav/phone/" + "/".join(segments)
    url = object_url(href, collection)
    if url is not None:
        name = url.removeprefix(collection)
        assert url.startswith(collection) and name and "/" not in name
        assert within(url, collection) and object_url(url, collection) == url
        assert unquote(name) not in (".", "..") and "/" not in unquote(name)


# 2. redirects -----------------------------------------------------------------------------------

def test_a_redirected_put_is_refused(server, other, tmp_path) -> None:
    server.script("PUT", "*", (307, {"Location": other.url + "phone/x.ics"}, b""))
    result = sync(configure(tmp_path, server))
    assert other.seen == []
    assert result.code != 0 and "created=0" in result.output
    assert "redirect-refused=1" in result.output, result.output
    assert "HTTP 307" in result.output and "fix the URL" in result.output


def test_a_redirected_source_is_refused(server, other, tmp_path) -> None:
    server.script("REPORT", "/casework/", (307, {"Location": other.url + "casework/"}, b""))
    result = sync(configure(tmp_path, server))
    assert other.seen == [] and server.writes() == []
    assert result.code != 0
    assert "HTTP 307" in result.output and "fix the URL" in result.output, result.output


def test_a_301_on_put_is_not_a_creation(server, other, tmp_path) -> None:
    server.script("PUT", "*", (301, {"Location": server.url + "phone/moved.ics"}, b""))
    result = sync(configure(tmp_path, server))
    assert "created=0" in result.output and "redirect-refused=1" in result.output
    assert [s.method for s in server.seen].count("PUT") == 1


# 3. deadlines -----------------------------------------------------------------------------------

def trickle(seconds: float) -> Iterator[bytes]:
    """A 207 answer one byte every half second, for `seconds`."""
    end = time.monotonic() + seconds
    yield b'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
    while time.monotonic() < end:
        time.sleep(0.5)
        yield b" "
    yield b"</D:multistatus>"


def test_a_trickling_answer_hits_the_request_deadline(server, tmp_path) -> None:
    server.script("REPORT", "/casework/", lambda seen: (207, XML, trickle(40)))
    started = time.monotonic()
    result = sync(configure(tmp_path, server, service='timeout = "1s"'))
    took = time.monotonic() - started
    assert took < 10, took
    assert result.code != 0 and "answer-too-slow" in result.output, result.output
    assert server.writes() == []


def test_a_slow_pair_stops_at_its_cycle_budget(server, tmp_path, monkeypatch) -> None:
    """Every answer just inside the timeout: no single request is too slow, the cycle is."""
    monkeypatch.setattr(runtime, "BUDGET_MIN", 2.0, raising=False)
    monkeypatch.setattr(runtime, "BUDGET_TIMEOUTS", 0, raising=False)

    def slowly(seen: Seen) -> None:
        time.sleep(0.8)

    for method in ("PROPFIND", "REPORT", "PUT"):
        server.script(method, "*", slowly)
    started = time.monotonic()
    result = sync(configure(tmp_path, server, service='timeout = "1s"'))
    took = time.monotonic() - started
    assert took < 3.5, took
    assert result.code != 0 and "cycle-budget-exhausted" in result.output, result.output


# 4. answer size ---------------------------------------------------------------------------------

def test_an_endless_answer_is_cut_at_the_cap(server, tmp_path) -> None:
    """24 MiB of 1 MiB objects, generated as sent: the pair fails, saying where and why."""
    big = vevent("big", "20300305T100000Z", "20300305T110000Z", "x",
                 "DESCRIPTION:" + "y" * (1024 * 1024) + "\r\n").encode()
    one = response_xml("/casework/big.ics", big).encode()
    head, tail = multistatus([]).split(b"</D:multistatus>")[0], b"</D:multistatus>"
    server.script("REPORT", "/casework/", lambda seen: (207, XML, stream(head, one, 24, tail)))
    result = sync(configure(tmp_path, server))
    assert result.code != 0 and "answer-too-large" in result.output, result.output
    assert "exceeds 20 MiB" in result.output and "/casework/" in result.output
    assert server.writes() == []


def test_limits_apply_to_every_answer(server) -> None:
    from sanitizer.stores.caldav.store import Limits  # noqa: PLC0415

    transport = Transport(Credentials(server.url, "advocate", PASSWORD, timeout=5),
                          limits=Limits(answer_bytes=500))
    server.calendars["/casework/"]["more.ics"] = WORK
    with pytest.raises(StoreError) as caught:
        transport.request("REPORT", server.url + "casework/")
    assert caught.value.reason == "answer-too-large" and "500 bytes" in str(caught.value)


# 8. verify_tls = false --------------------------------------------------------------------------

def test_verify_tls_off_is_loud(tmp_path) -> None:
    from tests.support.servers import generate_test_pki  # noqa: PLC0415 - needs cryptography

    pki = generate_test_pki(tmp_path / "pki")
    with HostileServer(tls=(str(pki.server_cert), str(pki.server_key))) as tls:
        tls.calendar("/casework/", {"work-1.ics": WORK})
        tls.calendar("/phone/")
        setup = configure(tmp_path / "setup", tls, account="verify_tls = false")
        result = sync(setup)
        assert "created=1" in result.output, result.output
        assert "account main: TLS certificate verification is OFF" in result.output
        assert PASSWORD not in result.output
        check = setup.run("check")
    assert "tls-unverified" in check.output and "all good" not in check.output, check.output
    assert check.code == 78
