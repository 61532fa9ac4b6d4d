"""Apply a plan to a phone calendar, a few writes at a time; a failure is kept, the rest go on."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sanitizer.core.model import Create, Delete, Plan, PlanAction, Update
from sanitizer.core.phone_format import serialize
from sanitizer.errors import PreconditionFailed, StoreError
from sanitizer.stores.base import TargetCalendar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    """One action's outcome: where the entry now is and its ETag, or why it failed."""

    error: str | None = None  # a reason code; "conflict" is a lost race (412), re-read next time
    href: str | None = None
    etag: str | None = None


def execute(the_plan: Plan, target: TargetCalendar, pair: str, workers: int) -> list[WriteResult]:
    """Every action's result, in the plan's order."""
    def run(action: PlanAction) -> WriteResult:
        try:
            href, etag = _apply(action, target)
        except PreconditionFailed:
            return WriteResult("conflict")  # changed since we read it: re-read next cycle
        except StoreError as exc:
            if exc.hint:  # something the admin must fix, such as a redirect: say what
                log.warning("pair %s: %s", pair, exc)
            return WriteResult(exc.reason)
        return WriteResult(None, href, etag)

    if workers <= 1 or len(the_plan.actions) <= 1:
        results = [run(a) for a in the_plan.actions]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="write") as pool:
            results = list(pool.map(run, the_plan.actions))
    for action, result in zip(the_plan.actions, results, strict=True):
        if result.error is not None:
            log.info("pair %s: %s of %s failed: %s", pair, type(action).__name__.lower(),
                     action.uid if isinstance(action, Delete) else action.event.uid,
                     result.error)
    return results


def _apply(action: PlanAction, target: TargetCalendar) -> tuple[str | None, str | None]:
    if isinstance(action, Create):
        return target.create(action.event.uid + ".ics", serialize(action.event))
    if isinstance(action, Update):
        return action.href, target.update(action.href, action.etag, serialize(action.event))
    target.delete(action.href, action.etag)
    return action.href, None
