"""What the phone should hold: source objects -> sanitized entries, and when that next changes.

Pure apart from its inputs: the source's raw objects (or the instances a store mapped already),
the pair's policy, the key and `now`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.identity import is_owned, legacy_uid
from sanitizer.core.model import Instance, SanitizedEvent, TargetItem, Window, instant
from sanitizer.core.phone_format import read_back
from sanitizer.core.policy import Policy
from sanitizer.core.rules import classify
from sanitizer.core.sanitize import sanitize
from sanitizer.engine.poison import Poison
from sanitizer.stores.base import RawObject

MARGIN = timedelta(days=1)  # how far past the window a full read looks, to know what comes next
ARRIVAL = timedelta(seconds=1)  # the window is half-open: an instance enters just after this
# Servers are asked for more than the window: they evaluate floating and all-day times as UTC
# (off by up to 14 hours) and may misread a time zone by an hour. What is in the window is
# decided here, by the sanitizer's own expansion in the agency's zone, never by their filter.
SERVER_SLACK = timedelta(hours=15)


@dataclass
class Desired:
    """What the phone should hold, where each entry came from, and when that next changes."""

    boundary: datetime  # the next time the window alone changes what the phone should hold
    events: dict[str, SanitizedEvent] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # target uid -> source href
    phone_entries: int = 0  # source objects that are phone entries: the target is the source
    skips: dict[str, Counter[str]] = field(default_factory=dict)  # source href -> skip reasons

    def adopt(self, present: Collection[str]) -> list[str]:
        """Give wanted entries the legacy UIDs they already have in `present` (the target's
        UIDs), so entries written before installation tags are kept in place instead of deleted
        and made again. Returns the legacy UIDs this key recomputed: they are ours."""
        recomputed = []
        for uid in list(self.events):
            old = legacy_uid(uid)
            if old == uid or old not in present:
                continue
            recomputed.append(old)
            if uid not in present:
                self.events[old] = replace(self.events.pop(uid), uid=old)
                self.origins[old] = self.origins.pop(uid)
        return recomputed


def window_for(pair: Policy, now: datetime) -> Window:
    """[now - retention, now + lookahead] in UTC."""
    now = now.astimezone(UTC)
    return Window(now - pair.retention, now + pair.lookahead)


def query_window(pair: Policy, now: datetime) -> Window:
    """What a full read asks the source for: the window, MARGIN past it, SERVER_SLACK both
    sides."""
    window = window_for(pair, now)
    return Window(window.start - SERVER_SLACK, window.end + MARGIN + SERVER_SLACK)


def desired_state(objects: Sequence[RawObject], pair: Policy, key: bytes, now: datetime,
                  zone: tzinfo, skipped: Counter[str], *, poison: Poison | None = None) -> Desired:
    """The phone entries the objects produce, and the next time the window alone changes them.
    Objects `poison` knows are counted under their reason without being parsed; new ones that
    break a budget or a cap are added to it."""
    window = window_for(pair, now)
    wide = Window(window.start, window.end + MARGIN)
    desired = Desired(boundary=now.astimezone(UTC) + MARGIN)  # what we know ends there
    for obj in sorted(objects, key=lambda o: o.href):
        known = poison.reason(obj.href, obj.etag) if poison is not None else None
        if known is not None:
            _skip(desired, skipped, obj.href, known)  # still missing from the phone
            continue
        try:
            instances = _instances(obj, wide, zone)
        except SkipObject as skip:
            _skip(desired, skipped, obj.href, skip.reason)
            if poison is not None:
                poison.remember(obj.href, obj.etag, skip.reason)
            continue
        if any(is_owned(instance.source_uid) for instance in instances):
            desired.phone_entries += 1  # never read our own output as input
            continue
        for instance in instances:
            start, end = instant(instance.start, zone), instant(instance.end, zone)
            if start >= window.end:  # beyond the lookahead: it arrives once now + lookahead > start
                desired.boundary = min(desired.boundary, start - pair.lookahead + ARRIVAL)
                continue
            event = sanitize(instance, classify(instance, pair.rules), pair, key)
            if event is None:
                reason = "cancelled" if instance.status == "CANCELLED" else "rule-skip"
                _skip(desired, skipped, obj.href, reason)
            elif event.uid in desired.events:
                _skip(desired, skipped, obj.href, "duplicate-uid")
            else:
                desired.events[event.uid] = event
                desired.origins[event.uid] = obj.href
                desired.boundary = min(desired.boundary, max(end, start) + pair.retention)
    return desired


def _skip(desired: Desired, skipped: Counter[str], href: str, reason: str) -> None:
    """Count a skip in the cycle's total and against the object it came from, so that a quiet
    cycle can still report the skips of the objects that are still there."""
    skipped[reason] += 1
    desired.skips.setdefault(href, Counter())[reason] += 1


def _instances(obj: RawObject, wide: Window, zone: tzinfo) -> list[Instance]:
    """The object's instances in the window: mapped by the store already, or expanded here."""
    if obj.skip_reason is not None:
        raise SkipObject(obj.skip_reason)
    if obj.instances is None:
        return expand_object(obj.data, wide, zone, fallback_uid=obj.href)
    return [i for i in obj.instances
            if instant(i.end, zone) > wide.start and instant(i.start, zone) < wide.end]


def read_target(objects: Sequence[RawObject]) -> list[TargetItem]:
    """Parse what the target holds into items the planner understands."""
    items = []
    for obj in objects:
        back = read_back(obj.data)
        items.append(TargetItem(obj.href, obj.etag, back.uid, back.event, back.extra))
    return items
