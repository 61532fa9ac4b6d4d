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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from sanitizer.core.identity import Ownership, is_owned
from sanitizer.core.model import Delete, Entry, Plan, SanitizedEvent, Window, instant
from sanitizer.core.phone_format import serialize
from sanitizer.core.plan import plan, plan_changes
from sanitizer.core.policy import Policy
from sanitizer.engine import sync_state
from sanitizer.engine.desired import Desired, desired_state, query_window, read_target
from sanitizer.engine.execute import WriteResult, execute
from sanitizer.engine.expire import expire, expired
from sanitizer.engine.poison import Poison
from sanitizer.engine.report import PairReport
from sanitizer.engine.sync_state import PairState
from sanitizer.errors import ADMIN, StoreError
from sanitizer.stores.base import (
    Changes,
    ListingSource,
    RawObject,
    SourceCalendar,
    TargetCalendar,
)

log = logging.getLogger(__name__)
TOKEN_LOST = ("sync-token-rejected", "no-sync-token")  # the quiet path gives way to the full one


class NeedFull(Exception):
    """The quiet path cannot decide safely; run the full path instead."""


@dataclass(frozen=True)
class CycleInputs:
    """What stays fixed during one cycle of one pair."""

    pair: Policy
    key: bytes
    now: datetime
    zone: tzinfo
    workers: int
    ours: Ownership  # which UIDs in the target this installation wrote
    emptied: bool = False  # the admin confirmed the source is empty: the guard stands aside
    poison: Poison | None = None  # source objects known to break a budget or a cap


def sync_pair(  # noqa: PLR0913 - keyword-only options of the engine's one entry point
        pair: Policy, source: SourceCalendar, target: TargetCalendar, *, key: bytes,
        now: datetime, zone: tzinfo, dry_run: bool = False, workers: int = 4,
        state: PairState | None = None, full_every: timedelta = timedelta(hours=1),
        force_full: bool = False, known: Collection[str] = (),
        emptied: bool = False, poison: Poison | None = None) -> PairReport:
    """Run one cycle; never raises for store errors (they land in the report).

    `report.state` is what to remember for the next cycle (None after a dry run). `known` are
    UIDs this installation recorded writing to the target (the ledger), besides the state's.
    `emptied`: the admin confirmed (`confirm-empty`) that the source really is empty, so this
    cycle's mass-deletion guard stands aside.
    `poison` (remembered objects) is updated and handed back in `report.poison`.
    """
    fingerprint = sync_state.fingerprint(pair, zone, key)
    recorded = [*known, *(state.entries if state is not None else ())]
    cycle = CycleInputs(pair, key, now, zone, workers, Ownership.of(key, recorded), emptied,
                        poison)
    before = PairReport(pair.name, dry_run=dry_run)
    if state is not None and not dry_run:  # retention first: it never waits for the source
        state = expire(state, target, now, pair.retention, before, workers)
    quiet = (state is not None and not dry_run and not force_full
             and state.allows_quiet(fingerprint, now, full_every))
    return _kept(_cycle(cycle, source, target, state if quiet else None, fingerprint, dry_run),
                 before, state, poison)


def _cycle(cycle: CycleInputs, source: SourceCalendar, target: TargetCalendar,
           quiet: PairState | None, fingerprint: str, dry_run: bool) -> PairReport:
    """The quiet path from the state `quiet` when it may decide, else the full one."""
    state = quiet
    if state is not None:
        try:
            return _quiet(cycle, source, target, state)
        except NeedFull:
            pass
        except StoreError as exc:
            if exc.reason not in TOKEN_LOST:
                return _failed(cycle.pair.name, exc, replace(state, clean=False))
    return _full(cycle, source, target, PairReport(cycle.pair.name, dry_run=dry_run),
                 fingerprint)


def _kept(report: PairReport, before: PairReport, state: PairState | None,
          poison: Poison | None) -> PairReport:
    """The cycle's report with what retention did first; a cycle that failed before reaching
    the target keeps the entries recorded so far (their ends drive retention next time)."""
    report.deleted += before.deleted
    report.expired += before.expired
    report.write_errors.update(before.write_errors)
    report.poison = poison
    if report.state is None and state is not None and not report.dry_run:
        report.state = replace(state, clean=False)
    return report


def _failed(pair: str, exc: StoreError, state: PairState | None) -> PairReport:
    log.warning("pair %s: %s", pair, exc)
    return PairReport.failed(pair, exc.reason, str(exc), state=state, url=exc.url)


def _full(cycle: CycleInputs, source: SourceCalendar, target: TargetCalendar,
          report: PairReport, fingerprint: str) -> PairReport:
    pair, now, zone = cycle.pair, cycle.now, cycle.zone
    try:
        objects, token = _read(cycle, source, query_window(pair, now), not report.dry_run)
        source_empty = not objects
        desired = desired_state(objects, pair, cycle.key, now, zone, report.skipped,
                                poison=cycle.poison)
        del objects  # the raw source data is not needed again: one answer in memory at a time
        if desired.phone_entries:
            return _holds_phone_entries(report, desired.phone_entries)
        listed = _list_target(target, pair.name, report.dry_run)
    except StoreError as exc:
        failed = _failed(pair.name, exc, None)
        failed.dry_run = report.dry_run
        return failed
    existing = read_target(_inside(listed, target, pair.name))
    outside = len(listed) - len(existing)
    del listed
    ours = cycle.ours.with_legacy(desired.adopt({i.uid for i in existing if i.uid is not None}))
    report.desired = sorted(desired.events.values(), key=lambda e: (str(e.start), e.uid))
    the_plan = plan(desired.events, existing, now=now, retention=pair.retention, zone=zone,
                    source_empty=source_empty and not cycle.emptied, ours=ours.owns)
    if report.dry_run:
        report.count(the_plan)
        results: list[WriteResult] = []
    else:
        results = execute(the_plan, target, pair.name, cycle.workers)
        report.count(the_plan, results)
    report.foreign += outside
    report.other_installations = sum(is_owned(i.uid) and not ours.owns(i.uid) for i in existing)
    if report.dry_run:
        return report
    entries = {item.uid: _entry(cycle, item.href, item.etag, desired, item.uid)
               for item in existing if item.uid is not None and item.uid in desired.events}
    entries.update(_written(cycle, the_plan, results, desired))
    report.state = PairState(
        fingerprint=fingerprint, token=token, last_full=now,
        next_boundary=desired.boundary, entries=entries, foreign=report.foreign,
        other_installations=report.other_installations,
        clean=_clean(report, entries), skipped=_skips(cycle.key, desired),
    )
    _warn_missing(report)
    return report


def _read(cycle: CycleInputs, source: SourceCalendar, window: Window,
          with_token: bool) -> tuple[list[RawObject], str | None]:
    """The source's window; objects known to be poison are not fetched where the store can
    list ETags first. The poison list forgets what the calendar no longer holds."""
    poison = cycle.poison
    if poison is not None and poison.known and isinstance(source, ListingSource):
        objects, token = source.read_listed(
            window, with_token=with_token, skip=lambda h, e: poison.reason(h, e) is not None)
    else:
        objects, token = source.read(window, with_token=with_token)
    if poison is not None:
        poison.keep_only([obj.href for obj in objects])
    return objects, token


def probe_due(pair: Policy, state: PairState, *, key: bytes, now: datetime, zone: tzinfo,
              full_every: timedelta) -> bool:
    """Whether the pair's next cycle is a quiet probe and nothing more unless the source
    changed: its state allows the quiet path and no entry is past retention (pure)."""
    return (state.allows_quiet(sync_state.fingerprint(pair, zone, key), now, full_every)
            and not expired(state.entries, now, pair.retention))


def probe_pair(pair: Policy, source: SourceCalendar, target: TargetCalendar, *,
               state: PairState) -> PairReport | None:
    """The cycle of a pair whose `probe_due` holds, when its source changed nothing: the quiet
    path's report, or None when the pair needs its whole cycle (the source changed, a
    remembered entry is outside the target). It sends what the quiet path sends first, never a
    write; a StoreError is the caller's (the pair's own cycle meets it again and reports it)."""
    try:
        changes = _probe(source, target, state)
    except NeedFull:
        return None
    if changes.changed or changes.removed:
        return None
    return _unchanged(PairReport(pair.name, mode="quiet"), state, changes.token)


def _probe(source: SourceCalendar, target: TargetCalendar, state: PairState) -> Changes:
    """The quiet path's one question: what changed since the token (NeedFull if it cannot)."""
    assert state.token is not None
    if not all(target.holds(entry.href) for entry in state.entries.values()):
        raise NeedFull  # a remembered href outside the calendar: trust only a fresh listing
    return source.changes(state.token)


def _unchanged(report: PairReport, state: PairState, token: str | None) -> PairReport:
    """A quiet cycle's report when nothing changed: the state's counts, with the new token."""
    report.foreign, report.other_installations = state.foreign, state.other_installations
    report.unchanged = len(state.entries)
    report.skipped.update(_total(state.skipped))
    report.state = replace(state, token=token)
    return report


def _quiet(cycle: CycleInputs, source: SourceCalendar, target: TargetCalendar,
           state: PairState) -> PairReport:
    changes = _probe(source, target, state)
    report = PairReport(cycle.pair.name, mode="quiet")
    if not changes.changed and not changes.removed:
        return _unchanged(report, state, changes.token)
    report.foreign, report.other_installations = state.foreign, state.other_installations
    report.mode = "incremental"
    return _incremental(cycle, source, target, state, changes, report)


def _incremental(cycle: CycleInputs, source: SourceCalendar, target: TargetCalendar,
                 state: PairState, changes: Changes, report: PairReport) -> PairReport:
    """Fetch only the objects that changed and rewrite only the entries they produced."""
    desired, old = _changed(cycle, source, state, changes, report)
    digests = {uid: _digest(cycle.key, event) for uid, event in desired.events.items()}
    the_plan = plan_changes(desired.events, digests, old)
    results = execute(the_plan, target, cycle.pair.name, cycle.workers)
    report.count(the_plan, results)
    report.foreign, report.other_installations = state.foreign, state.other_installations
    report.unchanged = len(state.entries) - report.updated - report.deleted
    entries = {uid: e for uid, e in state.entries.items() if uid not in old}
    entries.update({uid: e for uid, e in old.items() if uid in desired.events})
    entries.update({a.uid: old[a.uid] for a, r in zip(the_plan.actions, results, strict=True)
                    if isinstance(a, Delete) and r.error is not None})  # still there
    entries.update(_written(cycle, the_plan, results, desired))
    boundary = min(state.next_boundary, desired.boundary)
    skips = {origin: reasons for origin, reasons in state.skipped.items()
             if origin not in _touched(cycle.key, changes)}
    skips.update(_skips(cycle.key, desired))
    report.skipped = _total(skips)
    report.state = replace(state, token=changes.token, entries=entries, next_boundary=boundary,
                           clean=_clean(report, entries), skipped=skips)
    return report


def _changed(cycle: CycleInputs, source: SourceCalendar, state: PairState, changes: Changes,
             report: PairReport) -> tuple[Desired, dict[str, Entry]]:
    """The entries the changed objects now produce, and the remembered entries they produced
    before; NeedFull where only a full reconcile can decide."""
    touched = _touched(cycle.key, changes)
    known = {entry.origin for entry in state.entries.values()}
    if known and known <= touched:
        # Every object the phone's entries came from is said to have changed or gone. Either
        # the server answered a forgotten token with everything (DAViCal, SOGo), so only a full
        # reconcile finds deletions, or the source was emptied, which the full path's
        # mass-deletion guard must judge.
        raise NeedFull
    objects = source.multiget(list(changes.changed)) if changes.changed else []
    desired = desired_state(objects, cycle.pair, cycle.key, cycle.now, cycle.zone,
                            report.skipped, poison=cycle.poison)
    if desired.phone_entries:
        raise NeedFull  # the full path fails the pair and says why
    desired.adopt(state.entries.keys())
    old = {uid: e for uid, e in state.entries.items() if e.origin in touched}
    if any(uid in state.entries and uid not in old for uid in desired.events):
        raise NeedFull  # an entry now claimed by another source object: let the full path sort it
    return desired, old


def _written(cycle: CycleInputs, the_plan: Plan, results: Sequence[WriteResult],
             desired: Desired) -> dict[str, Entry]:
    """The entries the plan's successful creates and updates left on the phone."""
    return {action.event.uid: _entry(cycle, result.href, result.etag, desired, action.event.uid)
            for action, result in zip(the_plan.actions, results, strict=True)
            if not isinstance(action, Delete) and result.error is None
            and result.href is not None}


def _touched(key: bytes, changes: Changes) -> set[str]:
    """The keyed hashes of the source objects that changed or went."""
    return {sync_state.keyed(key, "href", h) for h in (*changes.changed, *changes.removed)}


def _skips(key: bytes, desired: Desired) -> dict[str, dict[str, int]]:
    """The skip reasons per source object, by its keyed hash: what the state remembers."""
    return {sync_state.keyed(key, "href", href): dict(reasons)
            for href, reasons in desired.skips.items()}


def _total(skips: Mapping[str, Mapping[str, int]]) -> Counter[str]:
    """The skips of every remembered source object, by reason."""
    total: Counter[str] = Counter()
    for reasons in skips.values():
        total.update({reason: int(count) for reason, count in reasons.items()})
    return total


def _warn_missing(report: PairReport) -> None:
    """Every full cycle says, loudly, which appointments in the window are not on the phone."""
    missing = report.missing
    if missing:
        log.warning("pair %s: %d appointment(s) in the window are not on the phone (%s)",
                    report.pair, sum(missing.values()),
                    ", ".join(f"{k}={v}" for k, v in sorted(missing.items())))


def _holds_phone_entries(report: PairReport, count: int) -> PairReport:
    """Fail the pair without writing: its source holds phone entries, so the target and the
    source are probably the same calendar under two names."""
    failed = PairReport.failed(
        report.pair, "source-holds-phone-entries",
        f"the source holds {count} phone entries (written by calendar-sanitizer); the target "
        "is probably the same calendar as the source: nothing written", dry_run=report.dry_run)
    log.warning("pair %s: %s", failed.pair, failed.error)
    return failed


def _clean(report: PairReport, entries: dict[str, Entry]) -> bool:
    """Whether the next cycle may be quiet: nothing failed, not even a lost race (412), and
    every entry's ETag is known. Otherwise the next cycle re-reads both sides."""
    return (report.ok and not report.write_errors and not report.held_back
            and all(e.etag for e in entries.values()))


def _digest(key: bytes, event: SanitizedEvent) -> str:
    return sync_state.keyed(key, "entry", serialize(event))


def _entry(cycle: CycleInputs, href: str, etag: str | None, desired: Desired,
           uid: str) -> Entry:
    """An entry as recorded; its end is the instant the full path expires it at (all-day
    entries end at midnight in the agency's zone)."""
    event = desired.events[uid]
    return Entry(href=href, etag=etag, digest=_digest(cycle.key, event),
                 end=instant(event.end, cycle.zone).astimezone(UTC).isoformat(),
                 origin=sync_state.keyed(cycle.key, "href", desired.origins[uid]))


def _inside(listed: Sequence[RawObject], target: TargetCalendar,
            pair: str) -> list[RawObject]:
    """The listed objects whose hrefs lie directly inside the target; the rest are foreign,
    whatever they hold, and nothing is ever sent to them."""
    inside = [obj for obj in listed if target.holds(obj.href)]
    if len(inside) < len(listed):
        log.warning("pair %s: %d listed href(s) outside the phone calendar; left alone",
                    pair, len(listed) - len(inside))
    return inside


def _list_target(target: TargetCalendar, pair: str, dry_run: bool) -> list[RawObject]:
    """What the target holds. A missing target fails the pair: a cycle never creates a calendar
    (a typo in `target` would make one and leave the real phone calendar behind); only
    `create-target` does, on purpose. A dry run assumes it empty, to show what would go there."""
    try:
        return target.list()
    except StoreError as exc:
        if exc.status != 404:
            raise
        if not dry_run:
            raise StoreError(operation=exc.operation, url=exc.url, reason="target-missing",
                             status=404, hint="the phone calendar does not exist and a cycle "
                             f"never creates one: if the name is right, run `{ADMIN} "
                             f"create-target {pair}`") from None
    return []
