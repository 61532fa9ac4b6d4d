"""A way out of each stuck state, one command each, against a real Radicale: a work calendar
that really was emptied, and entries a lost UID key left behind."""

from __future__ import annotations

import shutil

import pytest

from tests.support.harness import delete, list_objects, put, vevent

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    for uid in "abc":
        put(server, f"{work}{uid}.ics", vevent(uid, "20300304T130000Z", "20300304T140000Z",
                                               "Jane Doe"))
    setup = make_setup(server, [("advocate", work, phone)])
    assert setup.run_process("sync", "--now", NOW).code == 0
    assert len(list_objects(server, phone)) == 3
    return server, work, phone, setup


def test_an_emptied_work_calendar_is_confirmed_for_one_pair_with_one_command(pair) -> None:
    server, work, phone, setup = pair
    for uid in "abc":
        delete(server, f"{work}{uid}.ics")
    held = setup.run_process("sync", "--now", NOW, "--full")
    assert held.code != 0 and "held-back=3" in held.stdout, held.output
    assert "calendar-sanitizer-admin confirm-empty advocate" in held.stdout
    assert len(list_objects(server, phone)) == 3
    confirmed = setup.run_process("confirm-empty", "advocate")
    assert confirmed.code == 0, confirmed.output  # before: no such command (64)
    emptied = setup.run_process("sync", "--now", NOW)
    assert emptied.code == 0 and "deleted=3" in emptied.stdout, emptied.output
    assert list_objects(server, phone) == {}
    for uid in "de":  # the guard is back for the next time
        put(server, f"{work}{uid}.ics", vevent(uid, "20300304T150000Z", "20300304T160000Z"))
    assert setup.run_process("sync", "--now", NOW).code == 0
    for uid in "de":
        delete(server, f"{work}{uid}.ics")
    again = setup.run_process("sync", "--now", NOW, "--full")
    assert again.code != 0 and "held-back=2" in again.stdout, again.output


def test_entries_of_a_lost_uid_key_are_shown_confirmed_and_removed(pair) -> None:
    server, _, phone, setup = pair
    put(server, phone + "own.ics", vevent("phone-own", "20300304T100000Z", "20300304T110000Z",
                                          "The phone's own"))
    shutil.rmtree(setup.state_dir)  # the state directory and its UID key are lost
    duplicated = setup.run_process("sync", "--now", NOW)
    assert "created=3" in duplicated.stdout and "foreign=4" in duplicated.stdout
    assert len(list_objects(server, phone)) == 7
    unasked = setup.run_process("remove-orphans", "advocate", stdin="")
    assert unasked.code == 64, unasked.output  # before: no such command either
    assert "3 entries written by another UID key, 4 other objects" in unasked.stdout
    assert len(list_objects(server, phone)) == 7  # nothing touched without a yes
    removed = setup.run_process("remove-orphans", "advocate", "--yes")
    assert removed.code == 0 and "removed 3 orphaned entries" in removed.stdout, removed.output
    left = list_objects(server, phone)
    assert len(left) == 4 and any(b"phone-own" in data for _, data in left.values())
    quiet = setup.run_process("sync", "--now", NOW)
    assert "unchanged=3" in quiet.stdout and "foreign=1" in quiet.stdout, quiet.output
    assert "Jane" not in removed.output + unasked.output
