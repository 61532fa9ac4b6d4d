"""The TargetCalendar contract (sanitizer/stores/base.py), the same tests on every store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from sanitizer.errors import PreconditionFailed, StoreError
from tests.contract.backends import StorePair
from tests.contract.data import entry, fields

START = datetime(2030, 3, 5, 10, 0, tzinfo=UTC)
# An entity-tag (RFC 9110 8.8.3): strong "..." from CalDAV, weak W/"changeKey" from Graph.
ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]*"')


def test_create_returns_an_href_and_etag_and_list_shows_the_object(store_pair: StorePair) -> None:
    target = store_pair.target
    assert target.list() == []
    data = entry("first", START)

    href, etag = target.create("first.ics", data)

    assert etag is not None and ETAG.fullmatch(etag), etag
    expected = store_pair.expected_href("first.ics")
    if store_pair.quirks.server_assigned_hrefs:
        assert expected is None and href and "first" not in href
    else:
        assert href == expected
    assert target.holds(href)
    [listed] = target.list()
    assert (listed.href, listed.etag) == (href, etag)
    assert fields(listed.data) == fields(data)


def test_objects_are_listed_apart(store_pair: StorePair) -> None:
    target = store_pair.target
    one, two = entry("one", START), entry("two", START + timedelta(days=1), title="Court")
    href_one, _ = target.create("one.ics", one)
    href_two, _ = target.create("two.ics", two)

    listed = {obj.href: fields(obj.data) for obj in target.list()}

    assert href_one != href_two
    assert listed == {href_one: fields(one), href_two: fields(two)}


def test_update_with_the_current_etag_replaces_the_object_and_its_etag(
        store_pair: StorePair) -> None:
    target = store_pair.target
    href, etag = target.create("moved.ics", entry("moved", START))
    moved = entry("moved", START + timedelta(hours=2), 30, title="Moved")

    new_etag = target.update(href, etag, moved)

    assert new_etag is not None and new_etag != etag and ETAG.fullmatch(new_etag)
    [listed] = target.list()
    assert (listed.href, listed.etag) == (href, new_etag)
    assert fields(listed.data) == fields(moved)


def test_a_stale_etag_is_refused_with_precondition_failed(store_pair: StorePair) -> None:
    target = store_pair.target
    href, stale = target.create("raced.ics", entry("raced", START))
    current = entry("raced", START + timedelta(hours=1), title="Changed meanwhile")
    fresh = target.update(href, stale, current)

    with pytest.raises(PreconditionFailed):
        target.update(href, stale, entry("raced", START, title="Lost update"))
    with pytest.raises(PreconditionFailed):
        target.delete(href, stale)

    [listed] = target.list()
    assert (listed.href, listed.etag) == (href, fresh)
    assert fields(listed.data) == fields(current)


def test_delete_removes_the_object_and_deleting_it_again_is_done(store_pair: StorePair) -> None:
    target = store_pair.target
    href, etag = target.create("gone.ics", entry("gone", START))
    kept_href, _ = target.create("kept.ics", entry("kept", START + timedelta(days=2)))
    assert target.holds(href)

    target.delete(href, etag)

    assert [obj.href for obj in target.list()] == [kept_href]
    # holds() says where an href lies, not whether something is stored there
    assert target.holds(href)
    # base.py: "a 404 counts as done", with the ETag the deleted object had and without one
    target.delete(href, None)
    target.delete(href, etag)
    assert [obj.href for obj in target.list()] == [kept_href]


def test_an_href_outside_the_calendar_is_not_held(store_pair: StorePair) -> None:
    target = store_pair.target
    href, _ = target.create("inside.ics", entry("inside", START))

    assert target.holds(href)
    assert not target.holds(store_pair.outside_href())


def test_a_missing_calendar_lists_as_404_and_is_created_where_the_service_can(
        store_pair: StorePair) -> None:
    missing = store_pair.missing_target()

    with pytest.raises(StoreError) as listed:
        missing.list()
    assert listed.value.status == 404

    if store_pair.quirks.makes_calendars:
        missing.create_calendar()
        assert missing.list() == []
    else:
        with pytest.raises(StoreError) as refused:
            missing.create_calendar()
        assert refused.value.reason == "calendar-must-exist"


def test_creating_a_calendar_that_exists_meanwhile_is_fine(store_pair: StorePair) -> None:
    """Radicale answers 409 and Xandikos 403 with DAV:resource-must-be-null: both mean it
    exists."""
    target = store_pair.target
    href, _ = target.create("there.ics", entry("there", START))

    if store_pair.quirks.makes_calendars:
        # caldav.py and target.py: "a calendar that appeared meanwhile is fine"
        target.create_calendar()
    else:
        with pytest.raises(StoreError) as refused:
            target.create_calendar()
        assert refused.value.reason == "calendar-must-exist"

    assert [obj.href for obj in target.list()] == [href]
