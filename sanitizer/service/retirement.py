"""Retired targets: calendars in the ledger that no configured pair writes any more.

A pair removed from the config, or a target corrected, leaves entries in a calendar nobody wants
them in. Each cycle deletes them (only ours, see engine/retire.py); a target that cannot be
reached is tried again with backoff and shows as failing until it is clean. Which targets are
retired is decided once per cycle over all pairs, against the configured targets normalised once
(`Targets`), so the check costs the same per pair whatever the number of pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sanitizer.core.identity import Ownership
from sanitizer.engine import ledger, sync_state
from sanitizer.engine.retire import Cleanup, clean_target
from sanitizer.service import status
from sanitizer.service.calendars import CalendarIndex, matching
from sanitizer.service.config import Config
from sanitizer.stores.base import TargetCalendar

log = logging.getLogger(__name__)
BACKOFF_MAX = timedelta(hours=6)


@dataclass(frozen=True)
class Retirement:
    """One retired target's clean-up in this cycle (or why it was not tried)."""

    pair: str
    target: str
    deleted: int
    left: int
    error: str | None = None
    attempted: bool = True  # False while a failed clean-up waits for its retry time

    @property
    def ok(self) -> bool:
        """Clean now."""
        return self.error is None and not self.left

    def status_line(self) -> str:
        """One line, for the CLI and the log."""
        state = "clean" if self.ok else f"FAILED({self.error or 'entries-left'})"
        return (f"retired pair {self.pair}: {state} deleted={self.deleted} "
                f"left={self.left} in {self.target}")


def merge(earlier: list[Retirement], later: list[Retirement]) -> list[Retirement]:
    """One result per target over several calls in one run: a real attempt is kept over a later
    call that only waited (`sync` calls the cycle once per pair)."""
    merged = {r.target: r for r in earlier}
    for result in later:
        if result.attempted or result.target not in merged:
            merged[result.target] = result
    return [merged[target] for target in sorted(merged)]


@dataclass(frozen=True)
class Targets:
    """The configured pairs' targets and sources, each normalised once."""

    wanted: CalendarIndex
    sources: CalendarIndex

    @classmethod
    def of(cls, config: Config) -> Targets:
        """From the config's pairs."""
        return cls(CalendarIndex(pair.target_url for pair in config.pairs),
                   CalendarIndex(pair.source_url for pair in config.pairs))

    def is_retired(self, url: str) -> bool:
        """True if no configured pair writes this target (under any spelling of its URL)."""
        return url not in self.wanted


TargetAt = Callable[[str, str], TargetCalendar | None]  # (account, url) -> store, None if no secret


def retire_abandoned(config: Config, key: bytes, target_at: TargetAt, now: datetime,
                     targets: Targets | None = None) -> list[Retirement]:
    """Clean every retired target that is due; record what is left and when to try again.
    The ledger is read once; `targets` (built once per config) says which are retired."""
    state_dir = config.service.state_dir
    targets = targets or Targets.of(config)
    done = []
    for url, record in sorted(ledger.retired(ledger.load(state_dir),
                                             lambda u: not targets.is_retired(u)).items()):
        if waits_for_new_target(config, record.pair):
            log.info("retired pair %s: %s is cleaned once the pair's new target has synced",
                     record.pair, url)
            continue
        if _not_yet(record.retry_at, now):
            done.append(Retirement(record.pair, url, 0, len(record.entries),
                                   record.error or "retry-later", attempted=False))
            continue
        result = _clean(config, key, target_at, url, record, targets)
        done.append(_note(config, url, record, result, now))
    return done


def waits_for_new_target(config: Config, pair: str) -> bool:
    """A pair still configured whose target changed keeps its old calendar until a cycle has
    succeeded on the new one: a typo in `target` must not empty the real phone calendar."""
    for configured in config.pairs:
        if configured.name == pair:
            done = status.success_target(config.service.state_dir, pair)
            return done is None or not matching(done, [configured.target_url])
    return False


def forget_pair(config: Config, pair: str) -> None:
    """A retired pair's entries are gone: forget its sync state and status too, so a pair put
    back under that name starts with a full reconcile and shows no counts of deleted entries.
    A pair still configured (its target changed) keeps both: they describe its new target."""
    if pair not in {p.name for p in config.pairs}:
        sync_state.forget(config.service.state_dir, pair)
        status.forget(config.service.state_dir, pair)


def _not_yet(retry_at: str | None, now: datetime) -> bool:
    """Whether a failed clean-up waits longer (an unreadable time does not wait)."""
    try:
        return retry_at is not None and now < datetime.fromisoformat(retry_at)
    except (TypeError, ValueError):
        return False


def _clean(config: Config, key: bytes, target_at: TargetAt, url: str,
           record: ledger.Record, targets: Targets) -> Cleanup:
    if url in targets.sources:
        return Cleanup(left=dict(record.entries), error="retired-target-is-a-source")
    target = target_at(record.account, url)
    if target is None:
        reason = "account-missing" if record.account not in config.accounts else "no-password"
        return Cleanup(left=dict(record.entries), error=reason)
    return clean_target(target, Ownership.of(key, record.entries))


def _note(config: Config, url: str, record: ledger.Record, result: Cleanup,
          now: datetime) -> Retirement:
    state_dir = config.service.state_dir
    if result.done:
        forget_pair(config, record.pair)
        ledger.cleaned(state_dir, url)
        log.info("retired pair %s: deleted %d entries from %s; it holds nothing of ours now",
                 record.pair, result.deleted, url)
        return Retirement(record.pair, url, result.deleted, 0)
    error = result.error or "conflict"
    wait = min(config.service.interval * 2 ** min(record.failures, 16), BACKOFF_MAX)
    ledger.clean_up_failed(state_dir, url, entries=result.left or dict(record.entries),
                           error=error, now=now, retry_at=now + wait)
    left = len(result.left or record.entries)
    log.warning("retired pair %s: %d entries left to delete in %s (%s); trying again in %ds",
                record.pair, left, url, error, int(wait.total_seconds()))
    return Retirement(record.pair, url, result.deleted, left, error)
