"""One cycle for one pair: read, classify, sanitize, plan, execute, report.

Two paths reach the same state. The full path reads the source's window and the whole target and
reconciles them. The quiet path, used between full reconciles while nothing crosses a time
boundary, asks the source what changed since its sync token (one cheap request); if nothing did, it
sends nothing else, and if something did, it fetches only those objects and updates only the phone
entries they produced. Any doubt (a rejected token, a failed write, a config change, a missing
ETag) sends the next cycle down the full path.

A broken object is skipped and counted by reason; a failed write is counted and the rest go on; a
source that cannot be read leaves the target untouched. Reports carry counts and reason codes only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.identity import Ownership, is_owned, legacy_uid
from sanitizer.core.model import (
    Create,
    Delete,
    Entry,
    Instance,
    Plan,
    PlanAction,
    SanitizedEvent,
    TargetItem,
    Update,
    Window,
    instant,
)
from sanitizer.core.phone_format import read_back, serialize
from sanitizer.core.plan import plan, plan_changes
from sanitizer.core.policy import Policy
from sanitizer.core.rules import classify
from sanitizer.core.sanitize import sanitize
from sanitizer.engine import sync_state
from sanitizer.engine.sync_state import PairState
from sanitizer.errors import PreconditionFailed, StoreError
from sanitizer.stores.base import Changes, RawObject, SourceCalendar, TargetCalendar

log = logging.getLogger(__name__)
MARGIN = timedelta(days=1)  # how far past the window a full read looks, to know what comes next
ARRIVAL = timedelta(seconds=1)  # the window is half-open: an instance enters just after this


class ChangeFeed(Protocol):
    """A source that can say what changed since a sync token (RFC 6578)."""

    def sync_token(self) -> str | None:
        """The collection's current token."""
        ...

    def changes(self, token: str) -> Changes:
        """Changed and removed hrefs since the token, and the new token."""
        ...

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The named objects."""
        ...


class TokenedRead(Protocol):
    """A source whose full read of a window ends in the token of its change feed (a Graph
    calendarView delta round): no separate token request, and the token is bound to the window."""

    def fetch_with_token(self, window: Window) -> tuple[list[RawObject], str | None]:
        """Every object with an instance in the window, and the token for `changes`."""
        ...


class NeedFull(Exception):
    """The quiet path cannot decide safely; run the full path instead."""


@dataclass
class PairReport:
    """The outcome of one cycle of one pair: counts and reason codes, nothing else."""

    pair: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    expired: int = 0
    unchanged: int = 0
    foreign: int = 0
    other_installations: int = 0  # of the foreign entries, those another installation made
    held_back: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    write_errors: Counter[str] = field(default_factory=Counter)
    error: str | None = None  # a one-line message, already free of event text
    error_code: str | None = None  # a short reason code, for the status file
    dry_run: bool = False
    mode: str = "full"  # full, quiet (nothing changed) or incremental
    desired: list[SanitizedEvent] = field(default_factory=list, repr=False)
    state: PairState | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """A pair fails if it could not be read or written, or if the guard held deletions."""
        real_errors = {k: v for k, v in self.write_errors.items() if k != "conflict"}
        return self.error is None and not real_errors and not self.held_back

    def status_line(self) -> str:
        """One line, for the CLI and the log."""
        if self.error is not None:
            return f"pair {self.pair}: FAILED {self.error}"
        state = "ok" if self.ok else "FAILED"
        words = "would create" if self.dry_run else "created"
        parts = [f"pair {self.pair}: {state}", f"{words}={self.created}",
                 f"updated={self.updated}", f"deleted={self.deleted}",
                 f"unchanged={self.unchanged}", f"skipped={sum(self.skipped.values())}",
                 f"foreign={self.foreign}"]
        if self.other_installations:
            parts.append(f"(of other installations: {self.other_installations})")
        if self.skipped:
            parts.append("(" + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) + ")")
        if self.held_back:
            parts.append(f"held-back={self.held_back} (source returned nothing)")
        if self.write_errors:
            parts.append("write-errors: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.write_errors.items())))
        return " ".join(parts) + f" [{self.mode}]"


@dataclass
class Desired:
    """What the phone should hold, where each entry came from, and when that next changes."""

    boundary: datetime  # the next time the window alone changes what the phone should hold
    events: dict[str, SanitizedEvent] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # target uid -> source href
    phone_entries: int = 0  # source objects that are phone entries: the target is the source

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


def desired_state(objects: Sequence[RawObject], pair: Policy, key: bytes, now: datetime,
                  zone: tzinfo, skipped: Counter[str]) -> Desired:
    """The phone entries the objects produce, and the next time the window alone changes them."""
    window = window_for(pair, now)
    wide = Window(window.start, window.end + MARGIN)
    desired = Desired(boundary=now.astimezone(UTC) + MARGIN)  # what we know ends there
    for obj in sorted(objects, key=lambda o: o.href):
        try:
            instances = _instances(obj, wide, zone)
        except SkipObject as skip:
            skipped[skip.reason] += 1
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
                skipped["cancelled" if instance.status == "CANCELLED" else "rule-skip"] += 1
            elif event.uid in desired.events:
                skipped["duplicate-uid"] += 1
            else:
                desired.events[event.uid] = event
                desired.origins[event.uid] = obj.href
                desired.boundary = min(desired.boundary, max(end, start) + pair.retention)
    return desired


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


def sync_pair(  # noqa: PLR0913 - keyword-only options of the engine's one entry point
        pair: Policy, source: SourceCalendar, target: TargetCalendar, *, key: bytes,
              now: datetime, zone: tzinfo, dry_run: bool = False, workers: int = 4,
              state: PairState | None = None, full_every: timedelta = timedelta(hours=1),
              force_full: bool = False, known: Collection[str] = ()) -> PairReport:
    """Run one cycle; never raises for store errors (they land in the report).

    `report.state` is what to remember for the next cycle (None after a dry run). `known` are
    UIDs this installation recorded writing to the target (the ledger), besides the state's.
    """
    fingerprint = sync_state.fingerprint(pair, zone, key)
    quiet_ok = (state is not None and not dry_run and not force_full and state.clean
                and state.token and state.fingerprint == fingerprint
                and state.last_full <= now < state.last_full + full_every
                and now < state.next_boundary and hasattr(source, "changes"))
    recorded = [*known, *(state.entries if state is not None else ())]
    cycle = Cycle(pair, key, now, zone, workers, Ownership.of(key, recorded))
    if quiet_ok:
        assert state is not None
        report = PairReport(pair.name, mode="quiet")
        try:
            return _quiet(cycle, source, target, state, report)
        except NeedFull:
            pass
        except StoreError as exc:
            if exc.reason not in ("sync-token-rejected", "no-sync-token"):
                return _failed(report, pair, exc, replace(state, clean=False))
    return _full(cycle, source, target, PairReport(pair.name, dry_run=dry_run), fingerprint)


def _failed(report: PairReport, pair: Policy, exc: StoreError,
            state: PairState | None) -> PairReport:
    report.error, report.error_code = str(exc), exc.reason
    report.state = state
    log.warning("pair %s: %s", pair.name, exc)
    return report


@dataclass(frozen=True)
class Cycle:
    """What stays fixed during one cycle of one pair."""

    pair: Policy
    key: bytes
    now: datetime
    zone: tzinfo
    workers: int
    ours: Ownership


def _full(cycle: Cycle, source: SourceCalendar, target: TargetCalendar, report: PairReport,
          fingerprint: str) -> PairReport:
    pair, key, now, zone = cycle.pair, cycle.key, cycle.now, cycle.zone
    try:
        token = None
        window = window_for(pair, now)
        wide = Window(window.start, window.end + MARGIN)
        if hasattr(source, "fetch_with_token"):  # the read itself ends in the next token (Graph)
            tokened: TokenedRead = source  # type: ignore[assignment] # checked by hasattr
            objects, token = tokened.fetch_with_token(wide)
            token = None if report.dry_run else token
        else:
            if not report.dry_run and hasattr(source, "sync_token"):
                token = source.sync_token()  # before reading, so later changes show up next time
            objects = source.fetch(wide)
        source_empty = not objects
        desired = desired_state(objects, pair, key, now, zone, report.skipped)
        del objects  # the raw source data is not needed again: one answer in memory at a time
        if desired.phone_entries:
            return _holds_phone_entries(report, desired.phone_entries)
        listed = _list_or_create(target, report.dry_run)
    except StoreError as exc:
        return _failed(report, pair, exc, None)
    existing = read_target(_inside(listed, target, pair.name))
    outside = len(listed) - len(existing)
    del listed
    adopted = desired.adopt({i.uid for i in existing if i.uid is not None})
    report.desired = sorted(desired.events.values(), key=lambda e: (str(e.start), e.uid))
    ours = cycle.ours.with_legacy(adopted)
    the_plan = plan(desired.events, existing, now=now, retention=pair.retention, zone=zone,
                    source_empty=source_empty, ours=ours.owns)
    _count_plan(report, the_plan)
    report.foreign += outside
    report.other_installations = sum(is_owned(i.uid) and not ours.owns(i.uid) for i in existing)
    if report.dry_run:
        return report
    results = execute(the_plan, target, report, cycle.workers)
    entries: dict[str, Entry] = {}
    for item in existing:
        if item.uid in desired.events and item.uid is not None:
            entries[item.uid] = _entry(key, item.href, item.etag, desired.events[item.uid],
                                       desired.origins[item.uid])
    for action, (error, href, etag) in zip(the_plan.actions, results, strict=True):
        if error is None and not isinstance(action, Delete) and href is not None:
            uid = action.event.uid
            entries[uid] = _entry(key, href, etag, action.event, desired.origins[uid])
    report.state = PairState(
        fingerprint=fingerprint, token=token, last_full=now,
        next_boundary=desired.boundary, entries=entries, foreign=report.foreign,
        other_installations=report.other_installations,
        clean=_clean(report, entries),
    )
    return report


def _holds_phone_entries(report: PairReport, count: int) -> PairReport:
    """Fail the pair without writing: its source holds phone entries, so the target and the
    source are probably the same calendar under two names."""
    report.error = (f"the source holds {count} phone entries (written by calendar-sanitizer); "
                    "the target is probably the same calendar as the source: nothing written")
    report.error_code = "source-holds-phone-entries"
    log.warning("pair %s: %s", report.pair, report.error)
    return report


def _quiet(cycle: Cycle, source: SourceCalendar, target: TargetCalendar, state: PairState,
           report: PairReport) -> PairReport:
    pair, key, now, zone = cycle.pair, cycle.key, cycle.now, cycle.zone
    feed: ChangeFeed = source  # type: ignore[assignment] # checked by hasattr in sync_pair
    assert state.token is not None
    if not all(target.holds(entry.href) for entry in state.entries.values()):
        raise NeedFull  # a remembered href outside the calendar: trust only a fresh listing
    changes = feed.changes(state.token)
    changed, removed, new_token = changes.changed, changes.removed, changes.token
    report.foreign, report.other_installations = state.foreign, state.other_installations
    if not changed and not removed:
        report.unchanged = len(state.entries)
        report.state = replace(state, token=new_token)
        return report
    report.mode = "incremental"
    touched = {sync_state.keyed(key, "href", href) for href in (*changed, *removed)}
    known = {entry.origin for entry in state.entries.values()}
    if known and known <= touched:
        # Every object the phone's entries came from is said to have changed or gone. Either
        # the server answered a forgotten token with everything (DAViCal, SOGo), so only a full
        # reconcile finds deletions, or the source was emptied, which the full path's
        # mass-deletion guard must judge.
        raise NeedFull
    objects = feed.multiget(list(changed)) if changed else []
    desired = desired_state(objects, pair, key, now, zone, report.skipped)
    if desired.phone_entries:
        raise NeedFull  # the full path fails the pair and says why
    desired.adopt(state.entries.keys())
    old = {uid: e for uid, e in state.entries.items() if e.origin in touched}
    if any(uid in state.entries and uid not in old for uid in desired.events):
        raise NeedFull  # an entry now claimed by another source object: let the full path sort it
    digests = {uid: _digest(key, event) for uid, event in desired.events.items()}
    the_plan = plan_changes(desired.events, digests, old)
    _count_plan(report, the_plan)
    report.unchanged = len(state.entries) - report.updated - report.deleted
    results = execute(the_plan, target, report, cycle.workers)
    entries = {uid: e for uid, e in state.entries.items() if uid not in old}
    entries.update({uid: e for uid, e in old.items() if uid in desired.events})
    for action, (error, href, etag) in zip(the_plan.actions, results, strict=True):
        if isinstance(action, Delete):
            if error is not None:
                entries[action.uid] = old[action.uid]
            continue
        uid = action.event.uid
        if error is None and href is not None:
            entries[uid] = _entry(key, href, etag, action.event, desired.origins[uid])
    boundary = min(state.next_boundary, desired.boundary)
    report.state = replace(state, token=new_token, entries=entries, next_boundary=boundary,
                           clean=_clean(report, entries))
    return report


def _clean(report: PairReport, entries: dict[str, Entry]) -> bool:
    """Whether the next cycle may be quiet: nothing failed, not even a lost race (412), and
    every entry's ETag is known. Otherwise the next cycle re-reads both sides."""
    return (report.ok and not report.write_errors and not report.held_back
            and all(e.etag for e in entries.values()))


def _digest(key: bytes, event: SanitizedEvent) -> str:
    return sync_state.keyed(key, "entry", serialize(event))


def _entry(key: bytes, href: str, etag: str | None, event: SanitizedEvent, origin: str) -> Entry:
    return Entry(href=href, etag=etag, digest=_digest(key, event),
                 end=instant(event.end, UTC).isoformat(),
                 origin=sync_state.keyed(key, "href", origin))


def _inside(listed: Sequence[RawObject], target: TargetCalendar,
            pair: str) -> list[RawObject]:
    """The listed objects whose hrefs lie directly inside the target; the rest are foreign,
    whatever they hold, and nothing is ever sent to them."""
    inside = [obj for obj in listed if target.holds(obj.href)]
    if len(inside) < len(listed):
        log.warning("pair %s: %d listed href(s) outside the phone calendar; left alone",
                    pair, len(listed) - len(inside))
    return inside


def _list_or_create(target: TargetCalendar, dry_run: bool) -> list[RawObject]:
    """A missing target is created (in a dry run, only assumed empty)."""
    try:
        return target.list()
    except StoreError as exc:
        if exc.status != 404:
            raise
    if not dry_run:
        target.create_calendar()
    return []


def _count_plan(report: PairReport, the_plan: Plan) -> None:
    report.created = the_plan.creates
    report.updated = the_plan.updates
    report.deleted = the_plan.deletes
    report.expired = sum(isinstance(a, Delete) and a.expired for a in the_plan.actions)
    report.unchanged = the_plan.unchanged
    report.foreign = len(the_plan.foreign)
    report.held_back = the_plan.held_back


Outcome = tuple[str | None, str | None, str | None]  # (error reason, href, new ETag)


def execute(the_plan: Plan, target: TargetCalendar, report: PairReport,
            workers: int) -> list[Outcome]:
    """Apply the actions, a few at a time; each failure is counted and the rest go on."""
    def run(action: PlanAction) -> Outcome:
        try:
            href, etag = _apply(action, target)
        except PreconditionFailed:
            return "conflict", None, None  # changed since we read it: re-read next cycle
        except StoreError as exc:
            if exc.hint:  # something the admin must fix, such as a redirect: say what
                log.warning("pair %s: %s", report.pair, exc)
            return exc.reason, None, None
        return None, href, etag

    outcomes = _map(run, the_plan.actions, workers)
    for action, (error, _, _) in zip(the_plan.actions, outcomes, strict=True):
        if error is None:
            continue
        report.write_errors[error] += 1
        if isinstance(action, Create):
            report.created -= 1
        elif isinstance(action, Update):
            report.updated -= 1
        else:
            report.deleted -= 1
        log.info("pair %s: %s of %s failed: %s", report.pair, type(action).__name__.lower(),
                 _uid_of(action), error)
    return outcomes


def _apply(action: PlanAction, target: TargetCalendar) -> tuple[str | None, str | None]:
    if isinstance(action, Create):
        return target.create(action.event.uid + ".ics", serialize(action.event))
    if isinstance(action, Update):
        return action.href, target.update(action.href, action.etag, serialize(action.event))
    target.delete(action.href, action.etag)
    return action.href, None


def _uid_of(action: PlanAction) -> str:
    return action.uid if isinstance(action, Delete) else action.event.uid


def _map(run: Callable[[PlanAction], Outcome], actions: Sequence[PlanAction],
         workers: int) -> list[Outcome]:
    if workers <= 1 or len(actions) <= 1:
        return [run(a) for a in actions]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write") as pool:
        return list(pool.map(run, actions))

