"""One cycle for one pair: read, classify, sanitize, plan, execute, report.

A broken object is skipped and counted by reason; a failed write is counted and the rest go on; a
source that cannot be read leaves the target untouched. Reports carry counts, reason codes and
owned UIDs only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from sanitizer.config import Pair
from sanitizer.errors import PreconditionFailed, StoreError
from sanitizer.expand import SkipObject, Window, expand_object
from sanitizer.model import Create, Delete, Plan, PlanAction, SanitizedEvent, TargetItem, Update
from sanitizer.phone_format import read_back, serialize
from sanitizer.plan import plan
from sanitizer.rules import classify
from sanitizer.sanitize import sanitize
from sanitizer.store import RawObject, SourceCalendar, TargetCalendar

log = logging.getLogger(__name__)


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
    held_back: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    write_errors: Counter[str] = field(default_factory=Counter)
    error: str | None = None  # a one-line message, already free of event text
    error_code: str | None = None  # a short reason code, for the status file
    dry_run: bool = False
    desired: list[SanitizedEvent] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """A pair fails if it could not be read or written, or if the guard held deletions."""
        real_errors = {k: v for k, v in self.write_errors.items() if k != "conflict"}
        return self.error is None and not real_errors and not self.held_back

    def summary(self) -> str:
        """One line, for the CLI and the log."""
        if self.error is not None:
            return f"pair {self.pair}: FAILED {self.error}"
        state = "ok" if self.ok else "FAILED"
        words = "would create" if self.dry_run else "created"
        parts = [f"pair {self.pair}: {state}", f"{words}={self.created}",
                 f"updated={self.updated}", f"deleted={self.deleted}",
                 f"unchanged={self.unchanged}", f"skipped={sum(self.skipped.values())}",
                 f"foreign={self.foreign}"]
        if self.skipped:
            parts.append("(" + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) + ")")
        if self.held_back:
            parts.append(f"held-back={self.held_back} (source returned nothing)")
        if self.write_errors:
            parts.append("write-errors: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.write_errors.items())))
        return " ".join(parts)


def window_for(pair: Pair, now: datetime) -> Window:
    """[now - retention, now + lookahead] in UTC."""
    now = now.astimezone(UTC)
    return Window(now - pair.retention, now + pair.lookahead)


def desired_state(objects: Sequence[RawObject], pair: Pair, key: bytes, window: Window,
                  zone: tzinfo, skipped: Counter[str]) -> dict[str, SanitizedEvent]:
    """What the phone calendar should hold, from the source objects; skips are counted."""
    desired: dict[str, SanitizedEvent] = {}
    for obj in sorted(objects, key=lambda o: o.href):
        try:
            instances = expand_object(obj.data, window, zone, fallback_uid=obj.href)
        except SkipObject as skip:
            skipped[skip.reason] += 1
            continue
        for instance in instances:
            decision = classify(instance, pair.rules)
            event = sanitize(instance, decision, pair, key)
            if event is None:
                skipped["cancelled" if instance.status == "CANCELLED" else "rule-skip"] += 1
            elif event.uid in desired:
                skipped["duplicate-uid"] += 1
            else:
                desired[event.uid] = event
    return desired


def read_target(objects: Sequence[RawObject]) -> list[TargetItem]:
    """Parse what the target holds into items the planner understands."""
    items = []
    for obj in objects:
        back = read_back(obj.data)
        items.append(TargetItem(obj.href, obj.etag, back.uid, back.event, back.extra))
    return items


def sync_pair(pair: Pair, source: SourceCalendar, target: TargetCalendar, *, key: bytes,
              now: datetime, zone: tzinfo, dry_run: bool = False, workers: int = 4) -> PairReport:
    """Run one cycle; never raises for store errors (they land in the report)."""
    report = PairReport(pair.name, dry_run=dry_run)
    window = window_for(pair, now)
    try:
        objects = source.fetch(window)
        desired = desired_state(objects, pair, key, window, zone, report.skipped)
        report.desired = sorted(desired.values(), key=lambda e: (str(e.start), e.uid))
        existing = read_target(_list_or_create(target, dry_run))
    except StoreError as exc:
        report.error, report.error_code = str(exc), exc.reason
        log.warning("pair %s: %s", pair.name, exc)
        return report
    the_plan = plan(desired, existing, now=now, retention=pair.retention, zone=zone,
                    source_empty=not objects)
    _count_plan(report, the_plan)
    if not dry_run:
        execute(the_plan, target, report, workers)
    return report


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


def execute(the_plan: Plan, target: TargetCalendar, report: PairReport, workers: int) -> None:
    """Apply the actions, a few at a time; each failure is counted and the rest go on."""
    def run(action: PlanAction) -> str | None:
        try:
            _apply(action, target)
        except PreconditionFailed:
            return "conflict"  # changed since we read it: re-read next cycle, never loop
        except StoreError as exc:
            return exc.reason
        return None

    outcomes = _map(run, the_plan.actions, workers)
    for action, outcome in zip(the_plan.actions, outcomes, strict=True):
        if outcome is None:
            continue
        report.write_errors[outcome] += 1
        if isinstance(action, Create):
            report.created -= 1
        elif isinstance(action, Update):
            report.updated -= 1
        else:
            report.deleted -= 1
        log.info("pair %s: %s of %s failed: %s", report.pair, type(action).__name__.lower(),
                 _uid_of(action), outcome)


def _apply(action: PlanAction, target: TargetCalendar) -> None:
    if isinstance(action, Create):
        target.create(action.event.uid + ".ics", serialize(action.event))
    elif isinstance(action, Update):
        target.update(action.href, action.etag, serialize(action.event))
    else:
        target.delete(action.href, action.etag)


def _uid_of(action: PlanAction) -> str:
    return action.uid if isinstance(action, Delete) else action.event.uid


def _map(run: Callable[[PlanAction], str | None], actions: Sequence[PlanAction],
         workers: int) -> list[str | None]:
    if workers <= 1 or len(actions) <= 1:
        return [run(a) for a in actions]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write") as pool:
        return list(pool.map(run, actions))
