"""The mass-deletion guard: a source that suddenly returns nothing must not empty the phone.

The pair is reported FAILED with held-back=N and the phone keeps its entries; entries past the
retention window are still removed. "Nothing" arrives three ways here: every source event deleted
on a real server, a stub answering the listing with an empty 207, and a listing the server itself
marks as truncated (507 on the collection, RFC 4918 / RFC 6578 style).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.integration.test_faults import (
    NOW,
    XML,
    Answer,
    Bench,
    Seen,
    StubProxy,
    build_source,
    fill,
    make_bench,
    phone_state,
    sync,
)
from tests.support.harness import Setup, delete, list_objects, put, vevent
from tests.support.server_fixtures import FreshCalendars

SOON = {f"soon-{i}.ics": vevent(f"soon-{i}", f"2030030{4 + i}T1{i}0000Z",
                                 f"2030030{4 + i}T1{i}3000Z") for i in range(4)}
EMPTY = (b'<?xml version="1.0" encoding="utf-8"?>\n'
         b'<D:multistatus xmlns:D="DAV:"></D:multistatus>')


@pytest.fixture
def bench(fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> Bench:
    return make_bench(fresh_calendars, make_setup)


@pytest.mark.servers("plain-http")
def test_an_emptied_source_does_not_empty_the_phone(bench: Bench) -> None:
    fill(bench.server, bench.source, SOON)
    setup = bench.setup()
    assert sync(setup).code == 0
    before = list_objects(bench.server, bench.target)
    for name in SOON:
        delete(bench.server, bench.source + name)
    result = sync(setup, "--full")
    assert result.code == 1, result.output
    assert "FAILED" in result.stdout and "held-back=4" in result.stdout
    assert list_objects(bench.server, bench.target) == before


@pytest.mark.servers("plain-http")
def test_an_emptied_source_does_not_empty_the_phone_on_a_quiet_cycle(bench: Bench) -> None:
    fill(bench.server, bench.source, SOON)
    setup = bench.setup()
    assert sync(setup).code == 0
    before = list_objects(bench.server, bench.target)
    for name in SOON:
        delete(bench.server, bench.source + name)
    result = sync(setup)  # the same --now: a quiet cycle
    assert list_objects(bench.server, bench.target) == before, result.output
    assert "held-back=4" in result.stdout


@pytest.mark.servers("plain-http")
def test_expired_entries_are_still_removed_while_the_guard_holds(bench: Bench) -> None:
    fill(bench.server, bench.source, SOON)
    setup = bench.setup()
    assert sync(setup).code == 0
    for name in SOON:
        delete(bench.server, bench.source + name)
    # Two days on: soon-0 (03-04) and soon-1 (03-05) are past the 24h retention, 2 and 3 are not.
    result = setup.run("sync", "--full", "--now", "2030-03-06T12:00:00+00:00")
    assert result.code == 1, result.output
    assert "deleted=2" in result.stdout and "held-back=2" in result.stdout
    starts = sorted(str(e.start) for e in phone_state(bench.server, bench.target).owned.values())
    assert starts == ["2030-03-06 12:00:00+00:00", "2030-03-07 13:00:00+00:00"]


def answer_source_reports(where: Bench, body: bytes,
                          status: int = 207) -> Callable[[Seen], Answer | None]:
    path = where.source[len(where.server.url) - 1:]

    def answer(seen: Seen) -> Answer | None:
        if seen.method == "REPORT" and seen.path == path:
            return status, dict(XML), body
        return None
    return answer


def with_a_new_ctag(where: Bench,
                    reports: Callable[[Seen], Answer | None]) -> Callable[[Seen], Answer | None]:
    """`reports`, and the source's depth-0 PROPFIND answered with a ctag (and sync token) it
    never had, so that a quiet cycle asks the REPORT too."""
    path = where.source[len(where.server.url) - 1:]
    props = ('<D:sync-token>stub-1</D:sync-token><CS:getctag xmlns:CS='
             '"http://calendarserver.org/ns/">stub-1</CS:getctag>')
    answer = (f'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response>'
              f"<D:href>{path}</D:href><D:propstat><D:prop>{props}</D:prop><D:status>"
              "HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>").encode()

    def both(seen: Seen) -> Answer | None:
        if seen.method == "PROPFIND" and seen.path == path:
            return 207, dict(XML), answer
        return reports(seen)
    return both


@pytest.mark.servers("plain-http")
def test_an_empty_207_does_not_empty_the_phone(bench: Bench) -> None:
    fill(bench.server, bench.source, build_source(random.Random(5), 10))
    with StubProxy(bench.server.url) as stub:
        setup = bench.setup(url=stub.url)
        assert sync(setup).code == 0
        before = list_objects(bench.server, bench.target)
        stub.answer = with_a_new_ctag(bench, answer_source_reports(bench, EMPTY))
        for extra in ((), ("--full",)):
            result = sync(setup, *extra)
            assert result.code == 1 and "held-back=" in result.stdout, result.output
            assert list_objects(bench.server, bench.target) == before
        stub.answer = lambda seen: None
        assert sync(setup).code == 0  # the source answers again: nothing was lost
    assert phone_state(bench.server, bench.target).owned == bench.reference_state().owned


@pytest.mark.servers("plain-http")
def test_a_listing_the_server_marks_truncated_is_not_taken_as_complete(bench: Bench) -> None:
    objects = {f"e{i}.ics": vevent(f"e{i}", f"2030030{5 + i}T100000Z", f"2030030{5 + i}T110000Z")
               for i in range(4)}
    fill(bench.server, bench.source, objects)
    path = bench.source[len(bench.server.url) - 1:]
    with StubProxy(bench.server.url) as stub:
        setup = bench.setup(url=stub.url)
        assert sync(setup).code == 0
        before = list_objects(bench.server, bench.target)

        def truncate(seen: Seen) -> Answer | None:
            if seen.method != "REPORT" or seen.path != path or b"calendar-query" not in seen.body:
                return None
            full = list_objects(bench.server, bench.source)
            first = sorted(full)[0]
            data = full[first][1].decode().replace("\r", "&#13;")
            body = ('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" '
                    'xmlns:C="urn:ietf:params:xml:ns:caldav">'
                    f'<D:response><D:href>{first}</D:href><D:propstat><D:prop>'
                    f'<D:getetag>{full[first][0]}</D:getetag>'
                    f'<C:calendar-data>{data}</C:calendar-data></D:prop>'
                    '<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>'
                    f'<D:response><D:href>{path}</D:href>'
                    '<D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>'
                    '</D:multistatus>')
            return 207, dict(XML), body.encode()

        stub.answer = truncate
        result = sync(setup, "--full")
    assert list_objects(bench.server, bench.target) == before, result.output
    assert result.code == 1


@pytest.mark.servers("plain-http")
def test_a_new_phone_calendar_for_an_empty_source_is_fine(bench: Bench) -> None:
    """Nothing to hold back: an empty source with an empty phone is a success, not a failure."""
    setup = bench.setup()
    result = sync(setup)
    assert result.code == 0 and "created=0" in result.stdout, result.output
    put(bench.server, bench.source + "a.ics", vevent("a", "20300305T100000Z", "20300305T110000Z"))
    assert "created=1" in sync(setup).stdout
    assert NOW.startswith("2030-03-04")
