"""Which phone entries an installation may change, and when two URLs name one calendar.

Pure code (identity, the engine on in-memory calendars, URL normalisation), with Hypothesis.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer.core.identity import (
    OWNED_PREFIX,
    Ownership,
    installation_tag,
    is_legacy,
    is_owned,
    legacy_uid,
    tag_of,
    target_uid,
)
from sanitizer.core.phone_format import read_back
from sanitizer.engine.reconcile import sync_pair
from sanitizer.service.calendars import CalendarName, same_calendar
from tests.support.core_builders import KEY, NOW, UTC_ZONE, ics, make_pair
from tests.support.memory_store import MemoryCalendar

PAIR = make_pair()
keys = st.binary(min_size=32, max_size=64)


@settings(max_examples=80, deadline=None)
@given(key=keys, other=keys, pair=st.text(min_size=1, max_size=10), uid=st.text(max_size=40))
def test_only_the_key_that_made_an_entry_owns_it(key: bytes, other: bytes, pair: str,
                                                 uid: str) -> None:
    made = target_uid(key, pair, uid, "")
    assert is_owned(made) and tag_of(made) == installation_tag(key)
    assert Ownership.of(key).owns(made)
    if installation_tag(other) != installation_tag(key):
        assert not Ownership.of(other).owns(made)
    assert key.hex() not in made and installation_tag(key) not in key.hex()


@settings(max_examples=50, deadline=None)
@given(key=keys, uid=st.text(max_size=40))
def test_a_legacy_uid_is_owned_only_when_recorded(key: bytes, uid: str) -> None:
    old = legacy_uid(target_uid(key, "maria", uid, ""))
    assert is_legacy(old) and is_owned(old) and tag_of(old) is None
    assert not Ownership.of(key).owns(old)
    assert Ownership.of(key, [old]).owns(old)
    assert Ownership.of(key).with_legacy([old]).owns(old)


@pytest.mark.parametrize("uid", [None, "", "csan-", OWNED_PREFIX + "x" * 40,
                                 OWNED_PREFIX + "0" * 39, "work-event@agency.example",
                                 OWNED_PREFIX + "0123abcd-" + "0" * 39])
def test_other_uids_are_no_phone_entries(uid: str | None) -> None:
    assert not is_owned(uid) and tag_of(uid) is None


def legacy_phone(key: bytes, events: int) -> tuple[MemoryCalendar, MemoryCalendar, list[str]]:
    """A source, and a phone as the version before tags left it (legacy UIDs), in sync."""
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for i in range(events):
        source.put_raw(f"{i}.ics", ics(f"e{i}", NOW + timedelta(hours=i)))
    sync_pair(PAIR, source, target, key=key, now=NOW, zone=UTC_ZONE, workers=1)
    olds = []
    for href, data in list(target.objects.items()):
        uid = read_back(data).uid
        assert uid is not None
        olds.append(legacy_uid(uid))
        target.remove_raw(href)
        target.put_raw(f"{legacy_uid(uid)}.ics", data.replace(uid.encode(),
                                                               legacy_uid(uid).encode()))
    return source, target, olds


def test_legacy_entries_are_adopted_without_a_write() -> None:
    source, target, olds = legacy_phone(KEY, 3)
    target.requests.clear()
    report = sync_pair(PAIR, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert (report.created, report.updated, report.deleted, report.unchanged) == (0, 0, 0, 3)
    assert report.state is not None and set(report.state.entries) == set(olds)
    assert set(target.requests) <= {"REPORT", "PROPFIND"}
    quiet = sync_pair(PAIR, source, target, key=KEY, now=NOW + timedelta(minutes=1),
                      zone=UTC_ZONE, workers=1, state=report.state)
    assert quiet.mode == "quiet" and quiet.unchanged == 3


def test_legacy_entries_of_another_key_are_foreign() -> None:
    source, target, _ = legacy_phone(b"o" * 32, 3)
    report = sync_pair(PAIR, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert (report.created, report.deleted, report.foreign) == (3, 0, 3)
    assert report.other_installations == 3


def test_a_legacy_duplicate_of_a_tagged_entry_is_deleted() -> None:
    source, target, olds = legacy_phone(KEY, 2)
    sync_pair(PAIR, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    target.put_raw("extra.ics", ics("x", NOW))  # a foreign object, for contrast
    fresh = MemoryCalendar("mem://phone2/")
    sync_pair(PAIR, source, fresh, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    for name, data in fresh.objects.items():  # the tagged entries appear next to the legacy ones
        target.put_raw(name.rsplit("/", 1)[1], data)
    report = sync_pair(PAIR, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert report.deleted == 2 and report.foreign == 1, report.status_line()
    left = {read_back(d).uid for d in target.objects.values()}
    assert not left & set(olds)


def test_a_source_holding_phone_entries_fails_without_writing() -> None:
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    source.put_raw("a.ics", ics("a", NOW))
    source.put_raw("b.ics", ics(target_uid(b"z" * 32, "p", "u", ""), NOW))
    report = sync_pair(PAIR, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert report.error_code == "source-holds-phone-entries" and not report.ok
    assert not target.objects and report.state is None


@pytest.mark.parametrize(("first", "second"), [
    ("http://127.0.0.1:5232/maria/casework/", "http://localhost:5232/maria/casework"),
    ("http://127.0.0.1:5232/maria/casework/", "http://127.0.0.1:5232/maria/%63asework/"),
    ("https://dav.example.org/maria/casework/", "HTTPS://DAV.Example.org:443/maria/casework/"),
    ("http://localhost/a/", "http://localhost:80/a//"),
])
def test_spellings_of_one_calendar_are_the_same(first: str, second: str) -> None:
    assert same_calendar(first, second) and same_calendar(second, first)


@pytest.mark.parametrize(("first", "second"), [
    ("http://127.0.0.1:5232/maria/casework/", "http://127.0.0.1:5232/maria/phone/"),
    ("http://127.0.0.1:5232/maria/casework/", "http://127.0.0.1:5233/maria/casework/"),
    ("http://127.0.0.1:5232/maria/casework/", "http://127.0.0.2:5232/maria/casework/"),
])
def test_different_calendars_are_not_the_same(first: str, second: str) -> None:
    assert not same_calendar(first, second)


@given(path=st.text(alphabet="abcz-_.", min_size=1, max_size=12))
def test_percent_encoding_never_hides_a_calendar(path: str) -> None:
    encoded = "".join(f"%{ord(c):02X}" for c in path)
    assert CalendarName.of(f"http://h/{path}/") == CalendarName.of(f"http://h/{encoded}")


def test_a_damaged_ledger_is_kept_aside_not_overwritten(tmp_path) -> None:
    from sanitizer.engine import ledger  # noqa: PLC0415 - only this test needs it

    (tmp_path / ledger.LEDGER_FILE).write_text("{not json", encoding="utf-8")
    assert ledger.load(tmp_path) == {}
    ledger.note_target(tmp_path, "http://h/phone/", "maria", "main")
    ledger.note_entries(tmp_path, "http://h/phone/", {"csan-x": "/phone/x.ics"})
    kept = tmp_path / (ledger.LEDGER_FILE + ledger.DAMAGED_SUFFIX)
    assert kept.read_text(encoding="utf-8") == "{not json"
    assert ledger.load(tmp_path)["http://h/phone/"].entries == {"csan-x": "/phone/x.ics"}
    path = ledger.path_for(tmp_path, "http://h/phone/")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
