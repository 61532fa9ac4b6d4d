"""The SourceCalendar contract (sanitizer/stores/base.py), the same tests on every store.

After every source operation the backend's own record is checked for writes: the work calendar
must never be written through a source store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sanitizer.stores.base import ListingSource, RawObject
from tests.contract.backends import StorePair
from tests.contract.data import WINDOW, fields, summary_of, weekly, work_event


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2030, month, day, hour, minute, tzinfo=UTC)


def names(pair: StorePair, hrefs: Iterable[str]) -> set[str]:
    return {pair.name_of(href) for href in hrefs}


def unwritten(pair: StorePair) -> None:
    """The backend saw the source store's requests, and not one of them wrote."""
    requests, writes = pair.source_requests()
    assert requests > 0, f"the {pair.kind} backend's record saw no source request"
    assert writes == 0, f"the {pair.kind} source store wrote to the work calendar"


def check_form(pair: StorePair, objects: list[RawObject]) -> None:
    """iCalendar data whose UID is the put name; mapped instances where the server expands."""
    for obj in objects:
        if pair.quirks.server_expands_series:
            assert obj.data == b"" and obj.instances and obj.skip_reason is None, obj
        else:
            assert obj.instances is None and obj.skip_reason is None, obj
            assert fields(obj.data)["UID"] == pair.name_of(obj.href)


def test_fetch_returns_the_events_in_the_window_and_not_those_outside(
        store_pair: StorePair) -> None:
    inside = {"inside": work_event("inside", at(3, 5)),
              "straddles-start": work_event("straddles-start", at(3, 3, 23, 30)),
              "straddles-end": work_event("straddles-end", at(3, 17, 23, 30))}
    outside = {"before": work_event("before", at(2, 1)),
               "ends-at-start": work_event("ends-at-start", at(3, 3, 23), 60),
               "after": work_event("after", at(4, 10)),
               "begins-at-end": work_event("begins-at-end", at(3, 18, 0))}
    for name, data in {**inside, **outside}.items():
        store_pair.put(name, data)

    objects = store_pair.source.fetch(WINDOW)
    unwritten(store_pair)

    check_form(store_pair, objects)
    found = names(store_pair, (obj.href for obj in objects))
    if store_pair.quirks.filters_by_time:
        assert found == set(inside)
    else:  # the memory store returns every object, for the expansion to filter
        assert found == set(inside) | set(outside)


def test_a_recurring_series_overlapping_the_window_is_returned(store_pair: StorePair) -> None:
    store_pair.put("weekly", weekly("weekly", at(1, 7, 9), 20))  # began two months before
    store_pair.put("ended", weekly("ended", at(1, 7, 11), 3))
    store_pair.put("later", weekly("later", at(4, 1), 3))

    objects = store_pair.source.fetch(WINDOW)
    unwritten(store_pair)

    check_form(store_pair, objects)
    found = names(store_pair, (obj.href for obj in objects))
    assert "weekly" in found
    if store_pair.quirks.filters_by_time:
        assert found == {"weekly"}
    if store_pair.quirks.server_expands_series:  # the window's two Mondays, as instances
        starts = sorted(i.start for obj in objects for i in obj.instances or ())
        assert starts == [at(3, 4, 9), at(3, 11, 9)]


def test_read_with_a_token_then_changes_reports_added_changed_and_removed(
        store_pair: StorePair) -> None:
    source = store_pair.source
    for name in ("kept", "changed", "dropped"):
        store_pair.put(name, work_event(name, at(3, 6)))

    objects, token = source.read(WINDOW, with_token=True)
    unwritten(store_pair)
    assert token is not None
    assert names(store_pair, (obj.href for obj in objects)) == {"kept", "changed", "dropped"}

    store_pair.put("added", work_event("added", at(3, 7)))
    store_pair.put("changed", work_event("changed", at(3, 8, 14), summary="Court hearing"))
    store_pair.remove("dropped")
    changes = source.changes(token)
    unwritten(store_pair)

    assert names(store_pair, changes.changed) == {"added", "changed"}
    assert names(store_pair, changes.removed) == {"dropped"}
    assert changes.token and changes.token != token

    fetched = source.multiget(changes.changed)
    unwritten(store_pair)
    check_form(store_pair, fetched)
    by_name = {store_pair.name_of(obj.href): obj for obj in fetched}
    assert set(by_name) == {"added", "changed"}
    assert summary_of(by_name["changed"]) == "Court hearing"

    quiet = source.changes(changes.token)
    unwritten(store_pair)
    assert (quiet.changed, quiet.removed) == ((), ())


def test_read_without_a_token_reads_the_window_only(store_pair: StorePair) -> None:
    store_pair.put("only", work_event("only", at(3, 9)))

    objects, token = store_pair.source.read(WINDOW, with_token=False)
    unwritten(store_pair)

    assert token is None
    assert names(store_pair, (obj.href for obj in objects)) == {"only"}


def test_multiget_returns_the_requested_objects(store_pair: StorePair) -> None:
    for name in ("a", "b", "c"):
        store_pair.put(name, work_event(name, at(3, 10), summary=f"Title {name}"))
    listed = store_pair.source.fetch(WINDOW)
    wanted = [obj.href for obj in listed if store_pair.name_of(obj.href) in ("a", "b")]
    assert len(wanted) == 2

    fetched = store_pair.source.multiget(wanted)
    unwritten(store_pair)

    if store_pair.quirks.multiget_needs_changes:
        assert fetched == []  # only what changes() received; see test_read_with_a_token_...
    else:
        check_form(store_pair, fetched)
        assert {store_pair.name_of(obj.href): summary_of(obj) for obj in fetched} == {
            "a": "Title a", "b": "Title b"}


def test_a_listing_source_leaves_out_the_data_it_is_told_to(store_pair: StorePair) -> None:
    source = store_pair.source
    assert isinstance(source, ListingSource) == store_pair.quirks.lists_etags_first
    if not isinstance(source, ListingSource):
        return  # the store offers read() only, as the engine expects of it
    store_pair.put("wanted", work_event("wanted", at(3, 12)))
    store_pair.put("known", work_event("known", at(3, 13)))
    store_pair.put("outside", work_event("outside", at(5, 1)))

    objects, token = source.read_listed(
        WINDOW, with_token=True, skip=lambda href, etag: store_pair.name_of(href) == "known")
    unwritten(store_pair)

    assert token is not None
    by_name = {store_pair.name_of(obj.href): obj for obj in objects}
    assert set(by_name) == {"wanted", "known"}
    assert by_name["known"].data == b"" and by_name["known"].etag
    assert fields(by_name["wanted"].data)["UID"] == "wanted"
