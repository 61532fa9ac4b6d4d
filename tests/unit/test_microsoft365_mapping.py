"""Graph JSON <-> core types (pure): strict reading of work events, and a lossless round trip of
phone entries through their Graph form."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.core.expand import SkipObject
from sanitizer.core.model import Label, SanitizedEvent, Status, Transparency
from sanitizer.stores.microsoft365.mapping import (
    delta_item,
    entry_json,
    source_instance,
    target_entry,
)

UID = "csan-" + "0" * 40


def event(**fields: Any) -> dict[str, Any]:
    base = {"id": "AAMkAD1=", "start": {"dateTime": "2026-12-01T09:00:00.0000000",
                                        "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "UTC"}}
    return {**base, **fields}


def test_a_plain_event_maps_to_an_instance() -> None:
    instance = source_instance(event(showAs="tentative", sensitivity="confidential",
                                     categories=["Court"], subject="secret"), "AAMkAD1=", False)
    assert instance.start == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert (instance.status, instance.transparent) == ("TENTATIVE", False)
    assert instance.klass == "CONFIDENTIAL" and instance.categories == ("Court",)
    assert instance.summary is None  # subjects are read only when a rule needs them
    assert source_instance(event(subject="t"), "AAMkAD1=", True).summary == "t"


def test_free_cancelled_and_all_day() -> None:
    assert source_instance(event(showAs="free"), "x", False).transparent
    assert source_instance(event(isCancelled=True), "x", False).status == "CANCELLED"
    # An all-day event in UTC-5 read in UTC: midnight there is 05:00 here.
    all_day = source_instance(event(isAllDay=True, start={
        "dateTime": "2026-12-01T05:00:00.0000000", "timeZone": "UTC"}, end={
        "dateTime": "2026-12-02T05:00:00.0000000", "timeZone": "UTC"}), "x", False)
    assert (all_day.start, all_day.end) == (date(2026, 12, 1), date(2026, 12, 2))


@pytest.mark.parametrize(("fields", "reason"), [
    ({"showAs": "busyish"}, "graph-unknown-showas"),
    ({"sensitivity": "secret"}, "graph-unknown-sensitivity"),
    ({"type": "seriesMaster"}, "graph-not-an-instance"),
    ({"isCancelled": "yes"}, "graph-bad-field"),
    ({"categories": "Court"}, "graph-bad-field"),
    ({"categories": ["x" * 300]}, "graph-bad-field"),
    ({"start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "Pacific Standard Time"}},
     "graph-bad-time"),
    ({"start": {"dateTime": "9999-12-01T09:00:00", "timeZone": "UTC"}}, "graph-bad-time"),
    ({"start": {"dateTime": "2026-02-30T09:00:00", "timeZone": "UTC"}}, "graph-bad-time"),
    ({"end": {"dateTime": "2026-12-01T08:00:00", "timeZone": "UTC"}}, "graph-bad-time"),
    ({"start": "2026-12-01T09:00:00Z"}, "graph-bad-time"),
])
def test_unusable_values_skip_the_event(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(SkipObject) as caught:
        source_instance(event(**fields), "x", False)
    assert caught.value.reason == reason


def test_delta_items() -> None:
    assert delta_item({"id": "a b"}, read_subject=False) is None  # not an id
    assert delta_item({"id": "AAMk=", "@removed": {"reason": "deleted"}},
                      read_subject=False).removed
    skipped = delta_item(event(showAs="nope"), read_subject=False)
    assert skipped is not None and skipped.skip_reason == "graph-unknown-showas"


@given(st.text(max_size=2000), st.booleans())
def test_any_subject_is_read_only_when_asked(subject: str, read: bool) -> None:
    instance = source_instance(event(subject=subject), "x", read)
    assert instance.summary == (subject if read else None)


times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
labels = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                 max_size=200).filter(lambda t: t.strip()).map(Label)


@st.composite
def entries(draw: st.DrawFn) -> SanitizedEvent:
    all_day = draw(st.booleans())
    start = draw(times)
    end = start + draw(st.integers(0, 30 * 24 * 60)) * timedelta(minutes=1)
    if all_day:
        start_day = start.date()
        return SanitizedEvent(UID, start_day, start_day + timedelta(days=draw(st.integers(1, 9))),
                              draw(labels), draw(st.none() | labels),
                              Status.CONFIRMED, Transparency.TRANSPARENT,
                              draw(st.none() | st.integers(0, 600).map(
                                  lambda m: timedelta(minutes=m))))
    transparent = draw(st.booleans())
    return SanitizedEvent(UID, start, end, draw(labels), draw(st.none() | labels),
                          Status.CONFIRMED if transparent else draw(st.sampled_from(Status)),
                          Transparency.TRANSPARENT if transparent else Transparency.OPAQUE,
                          draw(st.none() | st.integers(0, 600).map(
                              lambda m: timedelta(minutes=m))))


@given(entries())
def test_phone_entries_round_trip_through_graph(entry: SanitizedEvent) -> None:
    written = entry_json(entry)
    assert "attendees" not in written and written["body"]["content"] == ""
    assert written["sensitivity"] == "private"
    back = target_entry({**written, "start": {**written["start"], "dateTime":
                                              written["start"]["dateTime"] + ".0000000"}},
                        UID)
    assert back.event == entry and not back.extra


def test_unmarked_or_edited_entries() -> None:
    written = entry_json(SanitizedEvent(UID, datetime(2026, 12, 1, 9, tzinfo=UTC),
                                        datetime(2026, 12, 1, 10, tzinfo=UTC),
                                        Label("Appointment")))
    assert target_entry(written, None).uid is None
    assert target_entry(written, "csan-short").uid is None
    assert target_entry({**written, "bodyPreview": "a note"}, UID).extra
    unreadable = target_entry({**written, "showAs": "weird"}, UID)
    assert unreadable.uid == UID and unreadable.event is None and unreadable.extra


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20)
field_names = st.sampled_from(["id", "start", "end", "isAllDay", "showAs", "sensitivity",
                               "isCancelled", "categories", "subject", "type", "@removed",
                               "@odata.etag", "location", "isReminderOn",
                               "reminderMinutesBeforeStart", "bodyPreview"])


@given(st.dictionaries(field_names, json_values), st.booleans())
def test_any_delta_entry_is_mapped_or_skipped_never_raises(obj: dict[str, Any],
                                                           read: bool) -> None:
    item = delta_item({**event(), **obj}, read_subject=read)
    assert item is None or item.removed or (item.instance is None) != (item.skip_reason is None)


@given(st.dictionaries(field_names, json_values))
def test_any_target_event_reads_back_or_is_rewritten_never_raises(obj: dict[str, Any]) -> None:
    back = target_entry({**event(), **obj}, UID)
    assert back.uid == UID and (back.event is not None or back.extra)


def test_only_clean_etags_are_sent_back() -> None:
    from sanitizer.stores.microsoft365.mapping import clean_etag  # noqa: PLC0415

    etag = 'W/"EZ9r3czxY0m2jz8c45czkwAAFXcvIQ=="'
    assert clean_etag(etag) == etag
    assert clean_etag('W/"x"\r\nX-Injected: 1') is None
    assert clean_etag("x" * 600) is None and clean_etag(7) is None


@pytest.mark.parametrize(("organizer", "domain"), [
    (None, None),  # the mailbox's own event
    ({"emailAddress": {"name": "Maria", "address": "Maria@Agency.Example.org"}},
     "agency.example.org"),
    ({"emailAddress": {"name": "x", "address": "no-at-sign"}}, ""),
    ({"emailAddress": {"name": "x"}}, ""),
    ("maria@agency.example.org", ""),  # not Graph's shape: outside, never trusted
    ({"emailAddress": {"address": "a" * 400 + "@agency.example.org"}}, ""),
])
def test_only_the_organizers_mail_domain_is_kept(organizer: Any, domain: str | None) -> None:
    """agency_domains works for Graph sources too; the address and the name are never kept."""
    fields = {} if organizer is None else {"organizer": organizer}
    instance = source_instance(event(**fields), "AAMkAD1=", True)
    assert instance.organizer_domain == domain
    assert "Maria" not in repr(instance) and "@" not in str(instance.organizer_domain)


def test_an_outside_organizer_never_keeps_its_title() -> None:
    from sanitizer.core.model import Action  # noqa: PLC0415
    from sanitizer.core.policy import Rule  # noqa: PLC0415
    from sanitizer.core.rules import classify  # noqa: PLC0415

    keep = Rule("rules[0]", Action.KEEP_TITLE, match_categories=frozenset({"staff"}))
    outside = source_instance(event(categories=["Staff"], subject="Survivor name", organizer={
        "emailAddress": {"address": "someone@elsewhere.example"}}), "AAMkAD1=", True)
    inside = source_instance(event(categories=["Staff"], subject="Team", organizer={
        "emailAddress": {"address": "lead@agency.example.org"}}), "AAMkAD1=", True)
    domains = ("agency.example.org",)
    assert classify(outside, (keep,), domains).action is not Action.KEEP_TITLE
    assert classify(inside, (keep,), domains).action is Action.KEEP_TITLE
