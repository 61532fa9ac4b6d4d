"""The sync scenarios of the core, against every real server the suite starts."""

from __future__ import annotations

import pytest

from sanitizer.service import lock
from tests.support.faultproxy import FaultProxy
from tests.support.harness import SERIES, delete, etags, list_objects, put, vevent
from tests.support.schema import assert_schema
from tests.support.server_fixtures import FreshCalendars

NOW = "2030-03-04T09:00:00+00:00"


def phone_events(server, url):
    """(start line, summary) of each object in the phone calendar, schema-checked."""
    found = []
    for _, data in list_objects(server, url).values():
        assert_schema(data, served=True)
        lines = data.decode().replace("\r\n ", "").splitlines()
        start = next(line for line in lines if line.startswith("DTSTART"))
        summary = next(line for line in lines if line.startswith("SUMMARY"))
        found.append((start, summary))
    return sorted(found)


@pytest.fixture
def pair(fresh_calendars: FreshCalendars, make_setup):
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")  # made by make_setup, as create-target does
    rules = '[[pairs.rules]]\nmatch_categories = ["staff"]\naction = "keep-title"\n'
    setup = make_setup(server, [("advocate", source, target)], rules=rules)
    return server, source, target, setup


def test_first_sync_creates_sanitized_entries_and_leaves_source_alone(pair) -> None:
    server, source, target, setup = pair
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                          "Jane Doe 555-0100", "LOCATION:12 Elm St\r\n"))
    put(server, source + "b.ics", vevent("b", "20300307", "20300308", "Court: J. Doe"))
    put(server, source + "s.ics", SERIES)
    put(server, source + "staff.ics", vevent("st", "20300305T080000Z", "20300305T090000Z",
                                              "Team meeting", "CATEGORIES:Staff\r\n"))
    before = etags(server, source)
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    assert "created=7" in result.stdout  # a, b, staff, and 5-1 series instances
    events = phone_events(server, target)
    assert ("DTSTART:20300304T130000Z", "SUMMARY:Appointment") in events
    assert ("DTSTART;VALUE=DATE:20300307", "SUMMARY:Appointment") in events
    assert ("DTSTART:20300305T140000Z", "SUMMARY:Appointment") in events  # moved instance
    assert ("DTSTART:20300305T080000Z", "SUMMARY:Team meeting") in events  # keep-title
    assert not any(start == "DTSTART:20300306T090000Z" for start, _ in events)  # cancelled
    assert etags(server, source) == before


def test_changes_follow_and_a_second_cycle_is_quiet(pair) -> None:
    server, source, target, setup = pair
    tag = put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    put(server, source + "b.ics", vevent("b", "20300305T130000Z", "20300305T140000Z"))
    put(server, source + "s.ics", SERIES)
    assert setup.run("sync", "--now", NOW).code == 0
    uids_before = {data.split(b"UID:")[1][:45] for _, data in list_objects(server, target).values()}
    # move a (same UID) and retitle it; delete b; cancel one more series instance
    put(server, source + "a.ics", vevent("a", "20300304T150000Z", "20300304T160000Z", "New"),
        etag=tag)
    delete(server, source + "b.ics")
    put(server, source + "s.ics", SERIES.replace(
        "RRULE:FREQ=DAILY;COUNT=5", "RRULE:FREQ=DAILY;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:"
        "20300307T100000"))
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    assert "created=0 updated=1 deleted=2 unchanged=3" in result.stdout
    events = phone_events(server, target)
    assert ("DTSTART:20300304T150000Z", "SUMMARY:Appointment") in events
    assert len(events) == 4
    uids_after = {data.split(b"UID:")[1][:45] for _, data in list_objects(server, target).values()}
    assert uids_after < uids_before  # the moved event kept its UID
    again = setup.run("sync", "--now", NOW)
    assert "created=0 updated=0 deleted=0 unchanged=4" in again.stdout


def test_expiry_after_retention_and_foreign_events_left_alone(pair) -> None:
    server, source, target, setup = pair
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    put(server, source + "later.ics", vevent("l", "20300310T130000Z", "20300310T140000Z"))
    assert setup.run("sync", "--now", NOW).code == 0
    put(server, target + "mine.ics", vevent("advocate-own", "20300304T180000Z",
                                           "20300304T190000Z", "Pick up kids"))
    # 24h retention: a ends 2030-03-04T14:00Z, so at 03-05T15:00Z it has expired
    result = setup.run("sync", "--now", "2030-03-05T15:00:00+00:00")
    assert result.code == 0, result.output
    assert "deleted=1" in result.stdout and "foreign=1" in result.stdout
    remaining = list_objects(server, target)
    assert any(b"advocate-own" in data for _, data in remaining.values())
    assert len(remaining) == 2


def test_dry_run_and_preview_write_nothing(pair) -> None:
    server, source, target, setup = pair
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                          "Jane Doe"))
    dry = setup.run("sync", "--dry-run", "--now", NOW)
    assert dry.code == 0 and "would create=1" in dry.stdout
    preview = setup.run("preview", "--now", NOW)
    assert preview.code == 0
    assert "Mon 2030-03-04 13:00-14:00" in preview.stdout and "Appointment" in preview.stdout
    assert "Jane" not in preview.output
    assert not list_objects(server, target)


@pytest.mark.servers("plain-http")
def test_requests_sent_by_a_first_and_a_second_sync_of_100_events(caldav_server, make_setup,
                                                                  fresh_calendars) -> None:
    """Counted by a proxy in front of the server, not by the client."""
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")
    for i in range(100):
        day, hour = divmod(i, 8)
        put(server, f"{source}e{i}.ics", vevent(f"e{i}", f"203003{4 + day:02d}T{9 + hour:02d}0000Z",
                                                 f"203003{4 + day:02d}T{9 + hour:02d}3000Z"))
    with FaultProxy(server.url, log=True) as proxy:
        relative = [u.removeprefix(server.url) for u in (source, target)]
        setup = make_setup(server, [("advocate", *relative)], url=proxy.url)
        first = setup.run("sync", "--now", NOW)
        counts_first = dict(proxy.stats().requests)
        proxy.reset_stats()
        second = setup.run("sync", "--now", NOW)
        counts_second = dict(proxy.stats().requests)
    assert first.code == 0 and "created=100" in first.stdout, first.output
    assert second.code == 0 and "unchanged=100" in second.stdout, second.output
    assert counts_first.get("PUT") == 100 and not counts_first.get("DELETE")
    # one request, nothing else: the getctag where the server has one, else sync-collection
    assert counts_second in ({"PROPFIND": 1}, {"REPORT": 1}), counts_second
    if server.name in ("radicale", "xandikos"):
        assert counts_second == {"PROPFIND": 1}, counts_second
    print(f"\n[{server.name}] first sync: {counts_first}; second sync: {counts_second}")


def test_sync_refuses_to_run_beside_another_instance(pair) -> None:
    _, _, _, setup = pair
    held = lock.acquire(setup.state_dir)
    try:
        result = setup.run_process("sync", "--now", NOW)
    finally:
        held.release()
    assert result.code == 75 and "already running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
