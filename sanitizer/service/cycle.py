"""One pair's cycle, through one entry point, whether it runs in a worker or in this process.

`run_pair` loads what the pair's cycle starts from through the state directory (state_dir.py),
runs the engine against the pair's two stores and returns a `CycleResult`, whose `save` writes
what the cycle leaves for the next one. In the service a worker runs the cycle and the supervisor
saves it (workers write no state but the ledger's note of their target); `run_cycle` does both
here, for the demo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sanitizer.engine.reconcile import sync_pair
from sanitizer.engine.report import PairReport
from sanitizer.errors import ADMIN
from sanitizer.service import metrics, retirement, status, targets
from sanitizer.service.config import Pair
from sanitizer.service.runtime import (
    Runtime,
    cycle_budget,
    note_rejection,
    refused,
    retire_abandoned,
    target_clash,
    warn_unverified,
)
from sanitizer.service.state_dir import StateDir

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    """What one cycle of one pair did, and how long it took."""

    report: PairReport
    seconds: float

    def save(self, state: StateDir, pair: Pair) -> None:
        """Write what the cycle leaves for the next one (nothing for a dry run)."""
        state.save(pair, self.report)


@dataclass
class RunResults:
    """What a run over several pairs did: each pair's report, in order, then the clean-up of
    the targets no pair wants any more."""

    reports: list[PairReport]
    retired: list[retirement.Retirement] = field(default_factory=list)


def run_pair(runtime: Runtime, pair: Pair, now: datetime, *, dry_run: bool = False,
             force_full: bool = False, budget: float | None = None) -> CycleResult:
    """One cycle of one pair, isolated from the others: no request runs past `budget` seconds,
    and an error in it is this pair's failed report (a MemoryError is left to the caller: in a
    worker it is the worker's memory limit)."""
    started = time.monotonic()
    try:
        report = _cycle(runtime, pair, now, dry_run, force_full, budget)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - one pair's bug must not stop the others
        report = PairReport.internal_error(pair.name, exc, dry_run=dry_run)
    return CycleResult(report, time.monotonic() - started)


def _cycle(runtime: Runtime, pair: Pair, now: datetime, dry_run: bool, force_full: bool,
           budget: float | None) -> PairReport:
    service = runtime.config.service
    timeout = service.timeout.total_seconds()
    until = time.monotonic() + (cycle_budget(timeout) if budget is None else budget)
    source, target = runtime.source(pair, until), runtime.target(pair, until)
    if source is None or target is None:
        account = pair.source_account if source is None else pair.target_account
        return PairReport.failed(
            pair.name, "password-missing",
            runtime.missing.get(account.name, f"account {account.name}: no password"),
            dry_run=dry_run)
    clash = target_clash(runtime, pair)
    if clash is not None:
        clash.dry_run = dry_run
        return clash
    files = runtime.state.open_pair(pair, pair.target_account.name, runtime.key,
                                    dry_run=dry_run)
    return targets.explain_missing(sync_pair(
        pair, source, target, key=runtime.key, now=now, zone=service.timezone, dry_run=dry_run,
        workers=service.workers, state=files.state, full_every=service.full_reconcile,
        force_full=force_full, known=files.known, emptied=files.emptied, poison=files.poison,
    ), pair, runtime.connection(pair.target_account))


def run_cycle(runtime: Runtime, pairs: Iterable[Pair], now: datetime,
              dry_run: bool = False, force_full: bool = False,
              ran_at: datetime | None = None) -> RunResults:
    """One cycle over the given pairs in this process, each saved as it ends, then the
    clean-up of retired targets; every pair runs whatever happens to the others.

    `now` is the time the cycle reconciles as of; `ran_at` is when it really ran (the clock),
    which status and metrics record, so a what-if run as of another time never moves the
    staleness clock. Without `ran_at` the two are the same.
    """
    reports, durations = [], {}
    state, service = runtime.state, runtime.config.service
    pairs = list(pairs)
    for pair in pairs:
        if state.is_paused(pair.name):
            log.info("pair %s: paused (run `%s resume %s`)", pair.name, ADMIN, pair.name)
            continue
        warn_unverified(pair)
        result = refused(runtime, pair, dry_run)
        if result is None:
            try:
                done = run_pair(runtime, pair, now, dry_run=dry_run, force_full=force_full)
            except MemoryError as exc:
                done = CycleResult(PairReport.internal_error(pair.name, exc, dry_run=dry_run),
                                   0.0)
            done.save(state, pair)
            note_rejection(runtime, pair, done.report, now)
            result, durations[pair.name] = done.report, done.seconds
        log.info("%s", result.status_line())
        reports.append(result)
    if dry_run:
        return RunResults(reports)
    if reports:
        status.record(service.state_dir, reports, ran_at or now,
                      as_of=now if ran_at is not None and ran_at != now else None,
                      targets={pair.name: pair.target_url for pair in pairs})
        metrics.record(service.metrics_file, service.state_dir, reports, durations,
                       ran_at or now)
    return RunResults(reports, retire_abandoned(runtime, now))
