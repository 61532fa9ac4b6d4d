"""Retention that never waits for the source.

Every cycle starts here, before the source is asked anything: the owned entries whose recorded
end is past the retention window are deleted from the phone (If-Match their recorded ETag). A
source that cannot be read, parsed or reached, or an invitation that stalls its worker, then
holds up only new appointments, never the promise that nothing is left after the retention
window. Recorded ends are in the agency's zone for all-day entries, as the full path judges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from sanitizer.core.model import Delete, Entry, Plan
from sanitizer.engine.execute import execute
from sanitizer.engine.report import PairReport
from sanitizer.engine.sync_state import PairState
from sanitizer.stores.base import TargetCalendar


def expired(entries: Mapping[str, Entry], now: datetime, retention: timedelta) -> list[str]:
    """The UIDs whose recorded end is at or before now - retention (pure); an end that does not
    read as a time is left to the full path."""
    horizon = now - retention
    found = []
    for uid, entry in sorted(entries.items()):
        try:
            end = datetime.fromisoformat(entry.end)
        except (TypeError, ValueError):
            continue
        if end.tzinfo is not None and end <= horizon:
            found.append(uid)
    return found


def expire(state: PairState, target: TargetCalendar, now: datetime, retention: timedelta,
           report: PairReport, workers: int = 4) -> PairState:
    """Delete the expired entries the state records; the state without those now gone.

    Counted in `report` as deleted and expired; a failed delete stays recorded and counted by
    reason, and is tried again next cycle (or by the full path's own listing).
    """
    uids = expired(state.entries, now, retention)
    if not uids:
        return state
    actions = tuple(Delete(state.entries[uid].href, state.entries[uid].etag, uid, expired=True)
                    for uid in uids)
    results = execute(Plan(actions, 0, ()), target, report.pair, workers)
    gone = {uid for uid, result in zip(uids, results, strict=True) if result.error is None}
    for result in results:
        if result.error is not None:
            report.write_errors[result.error] += 1
    report.deleted += len(gone)
    report.expired += len(gone)
    entries = {uid: entry for uid, entry in state.entries.items() if uid not in gone}
    return replace(state, entries=entries)
