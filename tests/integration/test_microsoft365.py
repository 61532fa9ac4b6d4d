"""The Microsoft 365 store's contract, on the Graph simulator: the behaviours the CalDAV source and
target are held to (owned entries only, foreign left alone, quiet cycles, moved and cancelled
instances, retention), plus what Graph adds (delta tokens, transactionId, If-Match)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from sanitizer.errors import PreconditionFailed, StoreError
from sanitizer.stores.microsoft365.connect import target_for
from sanitizer.stores.microsoft365.target import MARK_ID
from tests.support.clock import graph_time, tomorrow_at
from tests.support.graph_sim import ADVOCATE, PHONE, GraphSim, Rig

pytestmark = pytest.mark.integration
NOW = tomorrow_at(9)  # relative to the real date: tokens and status use the clock
HOUR = timedelta(hours=1)


@pytest.fixture
def rig(sim: GraphSim) -> Iterator[Rig]:
    made = Rig(sim)
    yield made
    made.close()


def _graph_requests(sim: GraphSim) -> int:
    return sum(n for kind, n in sim.requests.items() if " " in kind)


def test_first_and_quiet_cycle_request_counts_for_100_events(rig: Rig, sim: GraphSim,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    for i in range(100):
        rig.sim.add_event(rig.calendar, NOW + i * HOUR, NOW + i * HOUR + HOUR / 2)
    first = rig.cycle(NOW)
    assert first.ok and first.created == 100 and len(rig.phone()) == 100
    first_counts = dict(sim.requests)
    sim.requests.clear()
    quiet = rig.cycle(NOW + timedelta(minutes=5))
    assert quiet.mode == "quiet" and quiet.unchanged == 100
    assert dict(sim.requests) == {"GET delta": 1}  # one request, no token request either
    with capsys.disabled():
        print(f"\n100 events: first cycle {_graph_requests_of(first_counts)} Graph requests "
              f"{first_counts}; quiet cycle {dict(sim.requests)}")


def _graph_requests_of(counts: dict[str, int]) -> int:
    return sum(n for kind, n in counts.items() if " " in kind)


def test_changes_in_the_source_reach_the_phone_on_the_quiet_path(rig: Rig) -> None:
    moved = rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    gone = rig.sim.add_event(rig.calendar, NOW + 3 * HOUR, NOW + 4 * HOUR)
    rig.sim.add_event(rig.calendar, NOW + 9 * HOUR, NOW + 10 * HOUR)  # stays as it is
    rig.cycle(NOW)
    before = {e["start"]["dateTime"]: e["id"] for e in rig.phone()}
    rig.sim.update_event(moved, start=NOW + 5 * HOUR, end=NOW + 6 * HOUR)
    rig.sim.delete_event(gone)
    rig.sim.add_event(rig.calendar, NOW + 7 * HOUR, NOW + 8 * HOUR)
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert report.mode == "incremental"
    assert (report.created, report.updated, report.deleted) == (1, 1, 1)
    after = {e["start"]["dateTime"]: e["id"] for e in rig.phone()}
    assert sorted(after) == [graph_time(NOW + hours * HOUR) for hours in (5, 7, 9)]
    assert before[graph_time(NOW + HOUR)] == after[graph_time(NOW + 5 * HOUR)]
    assert rig.cycle(NOW + timedelta(minutes=10), force_full=True).unchanged == 3


def test_moved_and_cancelled_occurrences(rig: Rig) -> None:
    ids = rig.sim.add_series(rig.calendar, [NOW + i * 24 * HOUR for i in range(4)], HOUR)
    assert rig.cycle(NOW).created == 4
    moved_entry = min(rig.phone(), key=lambda e: e["start"]["dateTime"])["id"]
    rig.sim.update_event(ids[0], type="exception", start=NOW + 2 * HOUR, end=NOW + 3 * HOUR)
    rig.sim.delete_event(ids[1])  # an occurrence cancelled from the series
    rig.sim.update_event(ids[2], isCancelled=True)  # a cancelled meeting left in the calendar
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert (report.updated, report.deleted, report.skipped["cancelled"]) == (1, 2, 1)
    phone = sorted(rig.phone(), key=lambda e: e["start"]["dateTime"])
    assert [e["start"]["dateTime"][:16] for e in phone] == [graph_time(NOW + 2 * HOUR)[:16],
                                                            graph_time(NOW + 72 * HOUR)[:16]]
    assert phone[0]["id"] == moved_entry  # updated in place
    assert rig.cycle(NOW + timedelta(minutes=10), force_full=True).unchanged == 2


def test_foreign_entries_are_left_alone(rig: Rig, sim: GraphSim) -> None:
    rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    rig.cycle(NOW)
    phone_cal = next(c for c in sim.mailboxes[PHONE] if sim.calendars[c].name == "Appointments")
    own = sim.add_event(phone_cal, NOW, NOW + HOUR, subject="dentist")
    fake = sim.add_event(phone_cal, NOW, NOW + HOUR, singleValueExtendedProperties=[
        {"id": MARK_ID, "value": "csan-not-one-of-ours"}])
    etags = {e["id"]: e["@odata.etag"] for e in rig.phone() if e["id"] in (own, fake)}
    for i in range(3):
        report = rig.cycle(NOW + i * HOUR, force_full=True)
        assert report.foreign == 2 and report.ok
    rig.sim.delete_event(next(iter(rig.sim.calendars[rig.calendar].events)))
    report = rig.cycle(NOW + 4 * HOUR, force_full=True)
    assert report.deleted == 1 and report.foreign == 2
    assert {e["id"]: e["@odata.etag"] for e in rig.phone()} == etags


def test_a_delete_of_an_unmarked_entry_is_refused(rig: Rig, sim: GraphSim) -> None:
    rig.cycle(NOW)
    phone_cal = next(c for c in sim.mailboxes[PHONE] if sim.calendars[c].name == "Appointments")
    foreign = sim.add_event(phone_cal, NOW, NOW + HOUR)
    target = target_for(rig.account, rig.pair.target_url)
    with pytest.raises(StoreError) as caught:
        target.delete(foreign, None)
    assert caught.value.reason == "not-owned"
    assert [e["id"] for e in rig.phone()] == [foreign]


def test_retention_keeps_past_entries_then_expires_them(rig: Rig) -> None:
    rig.sim.add_event(rig.calendar, NOW - 2 * HOUR, NOW - HOUR)
    rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    assert rig.cycle(NOW).created == 2  # retention 24h: the morning's entry stays
    report = rig.cycle(NOW + 24 * HOUR)  # past the boundary: a new delta round
    assert report.mode == "full" and report.expired == 1 and len(rig.phone()) == 1


def test_a_forgotten_delta_token_runs_a_full_reconcile(rig: Rig, sim: GraphSim) -> None:
    first = rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    rig.cycle(NOW)
    sim.forget_tokens()
    rig.sim.delete_event(first)
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert report.mode == "full" and report.deleted == 1 and report.ok
    assert rig.cycle(NOW + timedelta(minutes=10)).mode == "quiet"


def test_a_retried_create_never_duplicates(rig: Rig, sim: GraphSim) -> None:
    rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    sim.fail(503, match="/events", method="POST", after=True)  # created, but the answer lost
    report = rig.cycle(NOW)
    assert report.ok and report.created == 1
    assert sim.requests["POST events"] == 2 and len(rig.phone()) == 1


def test_an_update_of_a_changed_entry_is_refused_with_412(rig: Rig, sim: GraphSim) -> None:
    rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    rig.cycle(NOW)
    target = target_for(rig.account, rig.pair.target_url)
    listed = target.list()[0]
    sim.update_event(listed.href, subject="edited on the phone")
    with pytest.raises(PreconditionFailed):
        target.update(listed.href, listed.etag, listed.data)
    with pytest.raises(PreconditionFailed):
        target.delete(listed.href, listed.etag)


def test_an_edit_on_the_phone_is_rewritten(rig: Rig, sim: GraphSim) -> None:
    rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    rig.cycle(NOW)
    entry = rig.phone()[0]
    sim.update_event(entry["id"], subject="edited", bodyPreview="a note", sensitivity="normal")
    assert rig.cycle(NOW + HOUR, force_full=True).updated == 1
    entry = rig.phone()[0]
    assert (entry["subject"], entry["sensitivity"]) == ("Appointment", "private")
    assert entry["body"] == {"contentType": "text", "content": ""} and entry["attendees"] == []


def test_entries_carry_the_allowlist_and_the_mark_only(sim: GraphSim) -> None:
    from sanitizer.core.model import Label  # noqa: PLC0415

    rig = Rig(sim, location=Label("Office"), alarm=timedelta(minutes=10))
    try:
        rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR, showAs="tentative")
        rig.sim.add_event(rig.calendar, NOW, NOW + 48 * HOUR, isAllDay=True, showAs="free")
        rig.cycle(NOW)
        posted = [e for e in rig.phone()]
        timed = next(e for e in posted if not e["isAllDay"])
        all_day = next(e for e in posted if e["isAllDay"])
        assert (timed["showAs"], timed["reminderMinutesBeforeStart"]) == ("tentative", 10)
        assert timed["location"]["displayName"] == "Office" and timed["attendees"] == []
        assert all_day["showAs"] == "free" and all_day["end"]["dateTime"].startswith(
            graph_time(NOW + 48 * HOUR)[:10])
        assert rig.cycle(NOW + HOUR, force_full=True).unchanged == 2
    finally:
        rig.close()


def test_the_work_mailbox_is_never_written(rig: Rig, sim: GraphSim) -> None:
    event = rig.sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR)
    rig.cycle(NOW)
    sim.update_event(event, start=NOW + 3 * HOUR, end=NOW + 4 * HOUR)
    rig.cycle(NOW + timedelta(minutes=5))
    sim.delete_event(event)
    rig.cycle(NOW + HOUR, force_full=True)
    assert sim.writes[PHONE] == 3  # create, update, delete (the calendar was made beforehand)
    assert sim.writes[ADVOCATE] == 0
