"""Nothing on the phone or on disk links back to the work calendar without the installation's key.

A phone entry's UID (and so its href) is an HMAC of pair, source UID and instance: the same work
event in two pairs gives two unrelated UIDs, another key gives other UIDs, and no source UID,
resource name, DTSTAMP, CREATED, LAST-MODIFIED or SEQUENCE reaches the phone; editing only those
leaves the phone entries byte for byte as they were. The state file's hashes are keyed: stable
under one key, all different under another, and none is a plain hash of what it stands for.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer.core.identity import OWNED_PREFIX, target_uid
from sanitizer.core.phone_format import DTSTAMP
from sanitizer.engine.sync_state import fingerprint
from tests.integration.test_faults import with_key
from tests.support.canary import (
    MarkerSet,
    assert_clean,
    parse_content_line,
    split_content_lines,
    unfold,
)
from tests.support.core_builders import make_pair
from tests.support.harness import Setup, list_objects, put
from tests.support.schema import assert_schema
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import CalDAVServer
from tests.unit.test_privacy_properties import PREFIX, plant_any, resource_name, restamp

DATA = Path(__file__).resolve().parents[1] / "data"
NOW = "2030-03-04T09:00:00+00:00"
FILES = ("event_google_recurring_exceptions.ics", "event_zimbra_recurring.ics",
         "event_recurring_moved_instance.ics", "event_outlook_teams_meeting.ics",
         "event_staff_meeting.ics", "event_rdate_exdate.ics", "event_delegated_attendees.ics")
KEYS = ("1" * 64, "2" * 64)
UID = re.compile(OWNED_PREFIX + "[0-9a-f]{8}-[0-9a-f]{40}")  # installation tag, keyed digest
VOLATILE = ("DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE")
MIN_BITS = 40  # of 160: two unrelated UIDs differ in about 80 bits; a related one in few


def bits_apart(a: str, b: str) -> int:
    """Hamming distance of two owned UIDs' digests (the part after the installation tag)."""
    x = int(a.rsplit("-", 1)[1], 16) ^ int(b.rsplit("-", 1)[1], 16)
    return x.bit_count()


def assert_unrelated(first: set[str], second: set[str]) -> None:
    """No UID shared, and each far from every UID of the other set."""
    assert first and second and not first & second
    closest = min(bits_apart(a, b) for a in first for b in second)
    assert closest >= MIN_BITS, closest


def fill(server: CalDAVServer, source: str) -> tuple[dict[str, bytes], MarkerSet]:
    """The files, planted, each under a resource name that is its UID's marker."""
    objects: dict[str, bytes] = {}
    markers = MarkerSet(PREFIX)
    for index, name in enumerate(FILES):
        planted, planted_markers = plant_any((DATA / name).read_bytes(), seed=500 + index)
        objects[resource_name(planted_markers)] = planted
        markers |= planted_markers
    for name, data in objects.items():
        put(server, source + name, data)
    return objects, markers


def phone(server: CalDAVServer, target: str) -> dict[str, tuple[str, bytes]]:
    """href -> (UID, bytes) of every phone entry, each checked against the allowlist."""
    entries = {}
    for href, (_, data) in list_objects(server, target).items():
        assert_schema(data, served=True)
        uid = next(line[4:] for line in split_content_lines(data) if line.startswith("UID:"))
        entries[href] = (uid, data)
    return entries


def state(setup: Setup, pair: str = "advocate") -> dict[str, object]:
    result: dict[str, object] = json.loads(
        (setup.state_dir / "pairs" / f"{pair}.json").read_text(encoding="utf-8"))
    return result


def test_one_work_calendar_in_two_pairs_gives_unrelated_uids(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    fill(server, source)
    targets = [source.replace("/work", f"/{name}") for name in ("alice", "bob")]
    setup = with_key(make_setup(server, [("alice", source, targets[0]),
                                         ("bob", source, targets[1])]), KEYS[0])
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    alice, bob = ({uid for uid, _ in phone(server, t).values()} for t in targets)
    assert len(alice) == len(bob) > 10
    assert_unrelated(alice, bob)


def test_another_key_gives_other_uids_and_other_state_hashes(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    objects, _ = fill(server, source)
    runs = []
    for key, slug in ((KEYS[0], "one"), (KEYS[1], "two"), (KEYS[0], "again")):
        target = source.replace("/work", f"/{slug}")
        setup = with_key(make_setup(server, [("advocate", source, target)]), key)
        assert setup.run("sync", "--now", NOW).code == 0
        runs.append((setup, phone(server, target)))
    (one, one_phone), (two, two_phone), (again, again_phone) = runs
    uids = [{uid for uid, _ in p.values()} for p in (one_phone, two_phone, again_phone)]
    assert uids[0] == uids[2]  # a key gives the same UIDs every time: the phone stays in step
    assert_unrelated(uids[0], uids[1])
    assert {h.rsplit("/", 1)[1] for h in one_phone} == {f"{u}.ics" for u in uids[0]}

    states = [state(s) for s in (one, two, again)]
    hashes = [_hashes(s) for s in states]
    assert hashes[0] == hashes[2]  # keyed, not random: the same key gives the same hashes
    assert not hashes[0] & hashes[1]
    # Not a plain hash of anything it stands for: the written bytes, the source hrefs or names.
    plain = {hashlib.sha256(x).hexdigest()[:24] for x in (
        *(data for _, data in one_phone.values()), *(n.encode() for n in objects),
        *(f"{source}{n}".encode() for n in objects),
        *(f"{source}{n}".removeprefix(server.url).encode() for n in objects))}
    assert not plain & hashes[0]


def _hashes(data: dict[str, object]) -> set[str]:
    entries = data["entries"]
    assert isinstance(entries, dict) and entries
    return {str(e[k]) for e in entries.values() for k in ("digest", "origin")}


def test_no_source_identifier_or_edit_stamp_reaches_the_phone(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")
    objects, markers = fill(server, source)
    setup = make_setup(server, [("advocate", source, target)])
    assert setup.run("sync", "--now", NOW).code == 0
    before = phone(server, target)
    stamps = _volatile_values(objects.values())
    assert len(stamps) >= len(FILES)  # every file carries at least a DTSTAMP
    uid_markers = MarkerSet(PREFIX, [m for m in markers if m.kind in ("uid", "href")])
    for href, (uid, data) in before.items():
        assert UID.fullmatch(uid) and href.endswith(f"/{uid}.ics"), (href, uid)
        assert_clean(href, uid_markers, "phone href")
        assert_clean(data, markers, f"phone object {href}")
        assert not [s for s in stamps if s in unfold(data)], href
        lines = [parse_content_line(line) for line in split_content_lines(data)]
        names = {cl.uname for cl in lines if cl is not None}
        assert not names & {"CREATED", "LAST-MODIFIED", "SEQUENCE", "RELATED-TO"}
        assert [cl.value for cl in lines if cl and cl.uname == "DTSTAMP"] == [DTSTAMP]

    # Edit nothing but the stamps: the phone must not move (a rewrite would date the edit).
    for name, data in objects.items():
        put(server, source + name, restamp(data, "20300303T030303Z", "99"))
    result = setup.run("sync", "--full", "--now", NOW)
    assert result.code == 0 and "created=0 updated=0 deleted=0" in result.stdout, result.output
    assert phone(server, target) == before


def _volatile_values(datas: Iterable[bytes]) -> set[str]:
    """The planted DTSTAMP/CREATED/LAST-MODIFIED/SEQUENCE values of the source objects."""
    values = set()
    for data in datas:
        for line in split_content_lines(data):
            cl = parse_content_line(line)
            if cl is not None and cl.uname in VOLATILE and cl.value.strip():
                values.add(cl.value.strip())
    return {v for v in values if len(v) >= 5 or not v.isdigit()}  # "0" would match anything


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), other=st.binary(min_size=32, max_size=32),
       pair=st.text(min_size=1, max_size=20), uid=st.text(min_size=1, max_size=80),
       instance=st.sampled_from(["", "20300305T090000Z", "20300305"]))
def test_target_uid_is_keyed_per_pair_and_hides_the_source_uid(
        key: bytes, other: bytes, pair: str, uid: str, instance: str) -> None:
    made = target_uid(key, pair, uid, instance)
    assert UID.fullmatch(made) and made == target_uid(key, pair, uid, instance)
    assert uid not in made.removeprefix(OWNED_PREFIX) or len(uid) < 8
    if other != key:
        assert bits_apart(made, target_uid(other, pair, uid, instance)) >= MIN_BITS - 20
    assert bits_apart(made, target_uid(key, pair + "x", uid, instance)) >= MIN_BITS - 20


def test_the_config_fingerprint_is_keyed() -> None:
    pair, zone = make_pair(), ZoneInfo("Europe/Berlin")
    first = fingerprint(pair, zone, KEYS[0].encode())
    assert first == fingerprint(pair, zone, KEYS[0].encode())
    assert first != fingerprint(pair, zone, KEYS[1].encode())
    assert first != hashlib.sha256(repr(pair).encode()).hexdigest()[:24]
