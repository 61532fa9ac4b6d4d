"""The phone format: built from the allowlist, stable bytes, read back for change detection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.core.identity import OWNED_PREFIX, is_owned, target_uid
from sanitizer.core.model import Label, LabelOrigin, SanitizedEvent, Status, Transparency
from sanitizer.core.phone_format import read_back, serialize
from tests.support.schema import assert_schema

UID = OWNED_PREFIX + "a" * 40
START = datetime(2030, 3, 4, 10, tzinfo=UTC)

LABELS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=120
                 ).filter(lambda t: t.strip() != "")
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                     timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))


@given(LABELS, st.one_of(st.none(), LABELS), TIMES, st.integers(0, 10_000),
       st.sampled_from(Status), st.sampled_from(Transparency),
       st.one_of(st.none(), st.integers(0, 3000).map(lambda m: timedelta(minutes=m))))
def test_round_trip_and_schema(title, location, start, minutes, status, transp, alarm) -> None:  # type: ignore[no-untyped-def]
    event = SanitizedEvent(UID, start, start + timedelta(minutes=minutes),
                           Label(title, LabelOrigin.KEEP_TITLE),
                           Label(location) if location else None, status, transp, alarm)
    data = serialize(event)
    assert data == serialize(event)  # deterministic bytes
    assert_schema(data)
    back = read_back(data)
    assert back.event == event and not back.extra


def test_all_day_uses_value_date() -> None:
    event = SanitizedEvent(UID, date(2030, 3, 4), date(2030, 3, 5), Label("Court"))
    data = serialize(event)
    assert b"DTSTART;VALUE=DATE:20300304\r\n" in data
    assert read_back(data).event == event


def test_only_sanitized_events_can_be_written() -> None:
    with pytest.raises(TypeError):
        serialize("BEGIN:VEVENT")  # type: ignore[arg-type]


def test_labels_refuse_control_characters_and_hide_kept_titles_in_repr() -> None:
    with pytest.raises(ValueError, match="control"):
        Label("line\nbreak")
    assert "Jane" not in repr(Label.kept_title("Jane Doe"))


@pytest.mark.parametrize("extra", ["DESCRIPTION:added on the phone\r\n", "X-FOO:bar\r\n",
                                   "ATTENDEE:mailto:a@example.org\r\n"])
def test_phone_side_additions_mark_an_owned_event_for_rewrite(extra: str) -> None:
    data = serialize(SanitizedEvent(UID, START, START + timedelta(hours=1), Label("A")))
    edited = data.replace(b"END:VEVENT", extra.encode() + b"END:VEVENT")
    assert read_back(edited).extra


def test_foreign_and_broken_objects_are_not_interpreted() -> None:
    assert read_back(b"not a calendar").uid is None
    foreign = serialize(SanitizedEvent(UID, START, START, Label("A"))).replace(
        UID.encode(), b"someone-else")
    back = read_back(foreign)
    assert back.event is None and not is_owned(back.uid)


def test_uids_are_stable_keyed_and_unlinkable() -> None:
    a = target_uid(b"k" * 32, "maria", "src-uid@example.org", "")
    assert a == target_uid(b"k" * 32, "maria", "src-uid@example.org", "")
    assert a != target_uid(b"k" * 32, "ana", "src-uid@example.org", "")
    assert a != target_uid(b"j" * 32, "maria", "src-uid@example.org", "")
    assert is_owned(a) and "example" not in a


def test_a_lone_surrogate_in_a_title_is_written_as_a_replacement() -> None:
    event = SanitizedEvent(UID, START, START + timedelta(hours=1),
                           Label("Case \ud800 review" + "x" * 80, LabelOrigin.KEEP_TITLE))
    data = serialize(event)
    assert b"Case ? review" in data
    assert_schema(data)


def test_an_owned_entry_made_a_meeting_on_the_phone_is_never_ours_to_touch() -> None:
    data = serialize(SanitizedEvent(UID, START, START + timedelta(hours=1), Label("A")))
    meeting = data.replace(b"END:VEVENT", b"ORGANIZER:mailto:me@agency.example\r\n"
                           b"ATTENDEE:mailto:someone@example.net\r\nEND:VEVENT")
    assert read_back(meeting) == read_back(b"not a calendar")  # left alone, like a foreign one
