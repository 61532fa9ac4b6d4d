"""The quiet probe on its own (reconcile.probe_due, probe_pair): it settles a pair only when
the quiet path would have found nothing to do, with the very report the quiet path gives, and
it never writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer.engine.reconcile import probe_due, probe_pair, sync_pair
from sanitizer.engine.report import PairReport
from sanitizer.engine.sync_state import PairState
from tests.support.core_builders import KEY, NOW, UTC_ZONE, ics, keep_title_rule, make_pair
from tests.support.memory_store import MemoryCalendar

PAIR = make_pair(retention=timedelta(hours=24))
HOUR = timedelta(hours=1)
WRITES = ("PUT", "DELETE")


def synced(pair=PAIR):  # type: ignore[no-untyped-def]
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for i in range(4):
        source.put_raw(f"{i}.ics", ics(f"e{i}", NOW + timedelta(hours=2 + i)))
    state = sync_pair(pair, source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1).state
    assert state is not None
    source.requests.clear()
    target.requests.clear()
    return source, target, state


def due(state: PairState, now=NOW + timedelta(minutes=5), pair=PAIR) -> bool:  # type: ignore[no-untyped-def]
    return probe_due(pair, state, key=KEY, now=now, zone=UTC_ZONE, full_every=HOUR)


def same(a: PairReport, b: PairReport) -> bool:
    fields = ("pair", "mode", "created", "updated", "deleted", "expired", "unchanged", "foreign",
              "other_installations", "skipped", "write_errors", "error", "state")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def test_a_probe_that_finds_nothing_gives_the_quiet_report_with_one_request() -> None:
    source, target, state = synced()
    assert due(state)
    probed = probe_pair(PAIR, source, target, state=state)
    assert probed is not None and probed.mode == "quiet" and probed.unchanged == 4
    assert sum(source.requests.values()) == 1 and not target.requests
    quiet = sync_pair(PAIR, source, target, key=KEY, now=NOW + timedelta(minutes=5),
                      zone=UTC_ZONE, state=state, workers=1)
    assert same(probed, quiet)


def test_a_changed_source_is_left_to_the_pair_s_own_cycle_and_nothing_is_written() -> None:
    source, target, state = synced()
    source.put_raw("1.ics", ics("e1", NOW + timedelta(hours=9)))
    assert probe_pair(PAIR, source, target, state=state) is None
    assert not target.requests


def test_a_remembered_entry_outside_the_target_is_left_to_the_full_path() -> None:
    source, _, state = synced()
    elsewhere = MemoryCalendar("mem://corrected-phone/")  # the target was corrected
    assert probe_pair(PAIR, source, elsewhere, state=state) is None
    assert not source.requests and not elsewhere.requests


def test_a_probe_is_not_due_when_the_cycle_has_more_to_do_than_ask() -> None:
    _, _, state = synced()
    assert due(state)
    assert not due(state, now=NOW + 2 * HOUR)  # a full reconcile is due
    assert not due(replace(state, clean=False))  # the last cycle left something in doubt
    assert not due(replace(state, token=None))
    assert not due(state, pair=make_pair(retention=timedelta(hours=24),
                                         rules=(keep_title_rule(),)))  # the config changed
    ended = {uid: replace(entry, end=(NOW - 30 * HOUR).isoformat())
             for uid, entry in state.entries.items()}
    assert not due(replace(state, entries=ended))  # an entry past retention: delete it first


EDITS = st.lists(st.tuples(st.sampled_from(["add", "move", "delete", "none", "none"]),
                           st.integers(0, 5), st.integers(-30, 200), st.integers(0, 90)),
                 max_size=10)


@settings(max_examples=60, deadline=None)
@given(EDITS)
def test_a_probe_never_decides_more_than_the_quiet_path(edits) -> None:  # type: ignore[no-untyped-def]
    """Property: whenever a probe is due, it either settles the pair with exactly the report
    the pair's own cycle would give (a quiet cycle that found nothing), or settles nothing;
    it never writes; and the phone ends as the pairs' own cycles leave it."""
    source, target, state = synced()
    now = NOW
    for step, (kind, index, hours, minutes) in enumerate(edits):
        if kind == "delete":
            source.remove_raw(source.url + f"{index}.ics")
        elif kind != "none":
            source.put_raw(f"{index}.ics", ics(f"e{index}", NOW + timedelta(hours=hours),
                                               summary=f"T{step}"))
        now = now + timedelta(minutes=minutes)
        if due(state, now=now):
            target.requests.clear()
            probed = probe_pair(PAIR, source, target, state=state)
            assert not any(target.requests.get(op) for op in WRITES)
            own = sync_pair(PAIR, source, target, key=KEY, now=now, zone=UTC_ZONE,
                            state=state, workers=1)
            if probed is not None:
                assert same(probed, own), (probed, own)
            else:
                assert own.mode != "quiet" or not own.ok
        else:
            own = sync_pair(PAIR, source, target, key=KEY, now=now, zone=UTC_ZONE,
                            state=state, workers=1)
        assert own.state is not None
        state = own.state
