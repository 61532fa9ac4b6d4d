"""desired + existing + now -> Plan (pure).

The decision table, per UID:
- desired, not in the target                 -> Create
- desired, in the target with other content  -> Update (If-Match the ETag read this cycle)
- desired, in the target, same content       -> nothing
- owned, not desired                         -> Delete (expired, cancelled, moved out, rule change)
- owned, the same UID at several hrefs       -> Delete all but one (a lost response, a crash)
- not ours (another installation's included) -> left alone, reported by href
The mass-deletion guard: when the source returned nothing and two or more owned entries that have
not expired would go, they are held back, not deleted (an auth glitch or a wrong URL must not
empty the phone). A single entry is let go: its deletion looks like any cancellation, and holding
it would fail the pair until it expired, each time an advocate's last appointment is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo

from sanitizer.core.identity import is_owned
from sanitizer.core.model import (
    Create,
    Delete,
    Entry,
    Plan,
    PlanAction,
    SanitizedEvent,
    TargetItem,
    Update,
    instant,
)

GUARD_MINIMUM = 2


def plan(desired: Mapping[str, SanitizedEvent], existing: Sequence[TargetItem], *,
         now: datetime, retention: timedelta, zone: tzinfo, source_empty: bool = False,
         ours: Callable[[str | None], bool] = is_owned) -> Plan:
    """The actions that make the target hold exactly `desired` among its owned entries.

    `ours` says which entries this installation made; every other one is foreign.
    """
    foreign = tuple(sorted(item.href for item in existing if not ours(item.uid)))
    by_uid: dict[str, list[TargetItem]] = {}
    for item in sorted(existing, key=lambda i: i.href):
        if ours(item.uid) and item.uid is not None:
            by_uid.setdefault(item.uid, []).append(item)
    horizon = now - retention
    actions: list[PlanAction] = []
    gone: list[Delete] = []
    unchanged = held_back = 0
    for uid, items in by_uid.items():
        keep, *duplicates = _best_first(items, desired.get(uid))
        actions.extend(Delete(d.href, d.etag, uid, expired=False) for d in duplicates)
        wanted = desired.get(uid)
        if wanted is not None:
            if keep.event == wanted and not keep.extra:
                unchanged += 1
            else:
                actions.append(Update(keep.href, keep.etag, wanted))
            continue
        expired = keep.event is not None and instant(keep.event.end, zone) <= horizon
        gone.append(Delete(keep.href, keep.etag, uid, expired=expired))
    live = [d for d in gone if not d.expired]
    if source_empty and len(live) >= GUARD_MINIMUM:
        held_back = len(live)
        gone = [d for d in gone if d.expired]
    actions.extend(gone)
    creates = [event for uid, event in desired.items() if uid not in by_uid]
    creates.sort(key=lambda e: (instant(e.start, zone), e.uid))  # nearest first on the phone
    actions.extend(Create(event) for event in creates)
    return Plan(tuple(actions), unchanged, foreign, held_back)


def _best_first(items: list[TargetItem], wanted: SanitizedEvent | None) -> list[TargetItem]:
    """Among duplicates, keep one that already matches, so cleaning up writes nothing else."""
    return sorted(items, key=lambda i: not (i.event == wanted and not i.extra))


def plan_changes(desired: Mapping[str, SanitizedEvent], digests: Mapping[str, str],
                 old: Mapping[str, Entry]) -> Plan:
    """The quiet path's plan: only the entries that changed source objects produced.

    `old` holds the remembered entries of those objects; `digests` the new entries' digests.
    """
    actions: list[PlanAction] = []
    unchanged = 0
    for uid, event in sorted(desired.items()):
        entry = old.get(uid)
        if entry is None:
            actions.append(Create(event))
        elif entry.digest != digests[uid]:
            actions.append(Update(entry.href, entry.etag, event))
        else:
            unchanged += 1
    actions.extend(Delete(entry.href, entry.etag, uid, expired=False)
                   for uid, entry in sorted(old.items()) if uid not in desired)
    return Plan(tuple(actions), unchanged, ())
