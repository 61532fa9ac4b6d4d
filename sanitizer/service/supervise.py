"""What the supervisor does around each worker, for `run` and `sync` alike.

The supervisor never talks to a server and never parses a calendar: it decides which jobs run
(paused pairs, rejected passwords and a target that is another pair's source are settled here,
without a worker), hands each job the secrets and tokens of its accounts only, holds the pair's
lock while its worker runs, and is the one writer of the pair's state, the status file and the
metrics, from the plain data each worker answers. Tokens come back from the workers and stay in
its memory, one per account, until they expire.

Most cycles of an idle agency are one quiet probe that finds nothing (a getctag PROPFIND on most
CalDAV servers), which costs a server a few milliseconds and a fresh worker several times more.
So the pairs whose state says that their cycle is such a probe unless their source changed
(reconcile.probe_due) are probed together, up to PROBE_BATCH pairs of the same two accounts
per worker: the same secrets a single pair's worker gets, and nothing parsed but the probes'
answers. A pair whose probe finds anything to do, or fails, runs its whole cycle in a worker of
its own in the same sweep, so a probe never decides more than the quiet path would.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sanitizer.core import expand
from sanitizer.engine.reconcile import probe_due
from sanitizer.engine.report import PairReport
from sanitizer.errors import ADMIN
from sanitizer.service import lock, retirement, status
from sanitizer.service.config import Config, Pair
from sanitizer.service.cycle import RunResults
from sanitizer.service.pool import Finished, Pool, worker_data
from sanitizer.service.recorder import Recorder
from sanitizer.service.runtime import (
    Runtime,
    cycle_budget,
    note_rejection,
    refused,
    target_clash,
    warn_unverified,
)
from sanitizer.service.worker import CYCLE, PROBE, RETIRE, Bounds, Job
from sanitizer.stores import handoff
from sanitizer.stores.registry import kind_of

log = logging.getLogger(__name__)
WALL_TIMEOUTS = 3  # the deadline: the cycle's budget plus this many request timeouts...
WALL_SLACK = 10.0  # ... plus this many seconds (start-up, the last writes)
RETIRED = "\0retired"  # the sweep's clean-up of retired targets, among the pairs' names
# `sync` forks its workers itself for at most this many pairs, else it starts the fork server:
# a plain fork copies the whole command (its config, status, every pair's bookkeeping), which
# at 1,000 pairs cost 160 ms of CPU per worker against 11 ms from the fork server, whose own
# start (about a second of imports) is paid back after a handful of workers.
FORK_MAX_PAIRS = 8
PROBE_BATCH = 25  # pairs per probe worker: a few hundred milliseconds of probes on Radicale


@dataclass
class Sweep:
    """One tick of the schedule: the jobs it queued that have not finished, and their counts."""

    number: int
    now: datetime
    pending: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        """The sweep's status line, for the log and systemd's STATUS=."""
        counts, changes = self.counts, self.changes
        running = f", {counts['running']} still running" if counts["running"] else ""
        return (f"cycle {self.number}: {counts['ok']} ok, {counts['failed']} failed, "
                f"{counts['paused']} paused, {counts['waiting']} backing off{running}; "
                + " ".join(f"{k}={changes[k]}" for k in ("created", "updated", "deleted")))


def keys_of(job: Job) -> list[str]:
    """The names a job is known by while queued or in flight: one job per pair at a time."""
    if job.kind == PROBE:
        return list(job.probes)
    return [RETIRED if job.kind == RETIRE else job.pair or ""]


def own_cycle(probes: Job, name: str) -> Job:
    """The cycle of one of a probe job's pairs in a worker of its own, from what the probe job
    was given (its config, secrets and time: a reload in between changes neither)."""
    return replace(probes, kind=CYCLE, pair=name, config=probes.config.scoped(name),
                   probes=(), tokens={})


def bounds(config: Config) -> Bounds:
    """Each worker's limits, from the request timeout and `service.parallel`."""
    timeout = config.service.timeout.total_seconds()
    budget = cycle_budget(timeout)
    wall = budget + WALL_TIMEOUTS * timeout + WALL_SLACK
    return Bounds(cpu_seconds=math.ceil(wall), data_bytes=worker_data(config.service.parallel),
                  wall_seconds=wall, budget=budget, object_seconds=expand.MAX_SECONDS)


def accounts_of(config: Config, kind: str, pair: Pair | None) -> set[str]:
    """The accounts a job may use: its pair's two, or every account for the retired targets."""
    if kind == RETIRE or pair is None:
        return set(config.accounts)
    return {pair.source_account.name, pair.target_account.name}


class Supervisor:
    """The jobs of one run: their workers, locks and tokens, and what their outcomes write."""

    def __init__(self, runtime: Runtime, pool: Pool, what_if: bool = False) -> None:
        self.runtime = runtime
        self.pool = pool
        self.what_if = what_if  # `sync --now`: status keeps the as-of time apart from the clock's
        self.tokens: dict[str, handoff.Handed] = {}  # account -> its token, in memory only
        self.locks: dict[str, contextlib.ExitStack] = {}  # pair -> its held lock
        self.retired: list[retirement.Retirement] = []
        service = runtime.config.service
        self.recorder = Recorder(service.state_dir, service.metrics_file)
        self._bounds: tuple[Config, float, Bounds] | None = None

    def job(self, kind: str, pair: Pair | None, now: datetime, *, dry_run: bool = False,
            force_full: bool = False) -> Job:
        """A job with the secrets and tokens of its accounts, and no others; a pair's job
        carries its own part of the config (whether its target is another pair's source was
        settled here, from the whole config)."""
        runtime = self.runtime
        names = accounts_of(runtime.config, kind, pair)
        scoped = pair is not None and kind != RETIRE  # the clean-up looks at every target
        return Job(kind, pair.name if pair else None,
                   runtime.config.scoped(pair.name) if scoped and pair else runtime.config,
                   runtime.key, {n: s for n, s in runtime.secrets.items() if n in names}, now,
                   self.bounds(), dry_run=dry_run, force_full=force_full,
                   log_level=logging.getLogger().getEffectiveLevel(),
                   environment=dict(os.environ),
                   sources=runtime.source_urls() if scoped else None)

    def bounds(self) -> Bounds:
        """The workers' limits, read again at most once a minute (they read the cgroup's
        MemoryMax, which an admin may change while the service runs) or for a new config."""
        config, minute = self.runtime.config, time.monotonic() // 60
        if self._bounds is None or self._bounds[0] is not config or self._bounds[1] != minute:
            self._bounds = (config, minute, bounds(config))
        return self._bounds[2]

    def probe_job(self, jobs: list[Job]) -> Job:
        """One worker's probes of the pairs of `jobs` (cycles of the same two accounts, as of
        the same time)."""
        names = tuple(job.pair or "" for job in jobs)
        return replace(jobs[0], kind=PROBE, pair=None, config=self.runtime.config.scoped(*names),
                       probes=names)

    def batch(self, jobs: list[Job]) -> list[Job]:
        """The jobs, with the cycles that are a quiet probe unless their source changed
        grouped by their two accounts into probe jobs, first; every other job as it was. Each
        state is read, judged and let go (the worker reads it again under the pair's lock), so
        the supervisor never holds every pair's entries at once."""
        groups: dict[tuple[str, ...], list[Job]] = {}
        rest: list[Job] = []
        for job in jobs:
            if self._probes_alone(job):
                groups.setdefault((*sorted(job.secrets), job.now.isoformat()), []).append(job)
            else:
                rest.append(job)
        probes: list[Job] = []
        for members in groups.values():
            for start in range(0, len(members), PROBE_BATCH):
                chunk = members[start:start + PROBE_BATCH]
                if len(chunk) == 1:
                    rest.append(chunk[0])
                else:
                    probes.append(self.probe_job(chunk))
        return probes + rest

    def _probes_alone(self, job: Job) -> bool:
        """Whether the job's cycle is a quiet probe unless the source changed
        (reconcile.probe_due), from the state its pair's last cycle left."""
        if job.kind != CYCLE or job.dry_run or job.force_full or job.pair is None:
            return False
        state = self.runtime.state.sync_state(job.pair)
        service = self.runtime.config.service
        return state is not None and probe_due(
            job.config.pair(job.pair), state, key=self.runtime.key, now=job.now,
            zone=service.timezone, full_every=service.full_reconcile)

    def settled(self, pair: Pair, dry_run: bool) -> PairReport | None:
        """A report without a worker: a missing or rejected password, or a target that is a
        source."""
        warn_unverified(pair)
        for account in (pair.source_account, pair.target_account):
            if account.name in self.runtime.missing:
                return PairReport.failed(pair.name, "password-missing",
                                         self.runtime.missing[account.name], dry_run=dry_run)
        return refused(self.runtime, pair, dry_run) or target_clash(self.runtime, pair)

    def minting(self, job: Job) -> bool:
        """Whether a worker in flight may be minting a token this job would need: wait for it,
        so each account gets one token per lifetime."""
        accounts = self.runtime.config.accounts
        needs = {n for n in job.secrets if kind_of(accounts[n]).hands_off_tokens
                 and n not in self.tokens}
        return any(needs & set(r.job.secrets) for r in self.pool.running)

    def start(self, job: Job, wait: float = 0.0) -> list[Job]:
        """Take the pair's lock and start the worker with the tokens held now for its
        accounts; PairBusy if another process writes the pair. Probes go without the pairs
        whose lock is taken: their cycles are returned, to wait for it as any cycle does."""
        if job.kind == PROBE:
            return self._start_probes(job)
        stack = contextlib.ExitStack()
        if job.pair is not None and job.kind != RETIRE and not job.dry_run:
            stack.enter_context(self.runtime.state.pair_lock(job.pair, wait))
        if job.kind == RETIRE:  # it reads which target each pair last synced: write it now
            self.recorder.flush(force=True)
        tokens = {n: t for n, t in self.tokens.items() if n in job.secrets and t.usable()}
        with stack:
            self.pool.start(replace(job, tokens=tokens))
            if job.pair is not None and job.kind != RETIRE:
                self.locks[job.pair] = stack.pop_all()  # held until the worker is done
        return []

    def _start_probes(self, job: Job) -> list[Job]:
        kept: list[str] = []
        busy: list[Job] = []
        for name in job.probes:
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(self.runtime.state.pair_lock(name, 0.0))
            except (lock.PairBusy, OSError):
                busy.append(own_cycle(job, name))
                continue
            self.locks[name] = stack
            kept.append(name)
        if kept:
            tokens = {n: t for n, t in self.tokens.items() if n in job.secrets and t.usable()}
            try:
                self.pool.start(replace(job, probes=tuple(kept), tokens=tokens))
            except OSError:  # no worker: each pair's own cycle meets the problem and says so
                for name in kept:
                    self.locks.pop(name).close()
                    busy.append(own_cycle(job, name))
        return busy

    def finish_probes(self, done: Finished, note: bool = True) -> tuple[list[PairReport],
                                                                         list[Job]]:
        """Save what a probe worker settled; those pairs' reports, and a cycle for each pair it
        did not settle (its source changed, or the probe could not tell), as of the same time."""
        job, outcome = done.job, done.outcome
        self.tokens.update(outcome.tokens)
        reports: list[PairReport] = []
        again: list[Job] = []
        for name in job.probes:
            stack = self.locks.pop(name, None)
            try:
                pair = job.config.pair(name)
                probed = outcome.probed.get(name)
                if probed is None:
                    again.append(own_cycle(job, name))
                    continue
                self.runtime.state.save(pair, probed.report)
                if note:
                    self.note(pair, probed.report, job.now, probed.seconds)
                reports.append(probed.report)
            finally:
                if stack is not None:
                    stack.close()
        return reports, again

    def finish(self, done: Finished, note: bool = True) -> PairReport | None:
        """Save what the worker answered; the pair's report (None for the retired targets).
        Without `note` (a worker stopped with the service) the status file is left as it was."""
        job, outcome = done.job, done.outcome
        stack = self.locks.pop(job.pair or "", None) if job.kind != RETIRE else None
        self.tokens.update(outcome.tokens)
        if job.kind == RETIRE:
            self.retired = retirement.merge(self.retired, outcome.retired)
            return None
        report = outcome.report
        assert report is not None
        try:
            pair = job.config.pair(job.pair or "")
            self.runtime.state.save(pair, report)
            if job.kind == CYCLE and note:
                self.note(pair, report, job.now, done.seconds)
        finally:
            if stack is not None:
                stack.close()
        return report

    def note(self, pair: Pair, report: PairReport, now: datetime, seconds: float) -> None:
        """A cycle's report into the log, the status file and the metrics."""
        log.info("%s", report.status_line())
        if report.dry_run:
            return
        if report.error_code in ("auth-rejected",):
            for name in (pair.source_account.name, pair.target_account.name):
                self.tokens.pop(name, None)
        note_rejection(self.runtime, pair, report, now)
        self.recorder.note(self.noted(pair, report, now), seconds)

    def settle(self, pair: Pair, report: PairReport, now: datetime) -> None:
        """Record a report that needed no worker."""
        log.info("%s", report.status_line())
        if not report.dry_run:
            self.recorder.note(self.noted(pair, report, now))

    def noted(self, pair: Pair, report: PairReport, now: datetime) -> status.Noted:
        """The report as the status file records it: with when it really ran (the clock:
        staleness is counted from it) and, for `sync --now`, the time it reconciled as of."""
        return status.Noted(report, datetime.now(UTC), now if self.what_if else None,
                            pair.target_url)


def run_all(runtime: Runtime, pairs: Iterable[Pair], now: datetime, *, dry_run: bool = False,
            force_full: bool = False, wait: float = 30.0,
            what_if: bool = False) -> RunResults:
    """`sync`: one cycle per pair (the quiet ones probed together), `service.parallel` workers
    at a time, then the retired targets' clean-up in one more worker. Reports in the pairs'
    order. `what_if`: `now` was
    given (`--now`), so status records it as the as-of time, apart from when it ran."""
    pairs = list(pairs)
    few = len(pairs) <= FORK_MAX_PAIRS
    pool = Pool(fork_below=worker_data(runtime.config.service.parallel) // 2 if few else None,
                kinds=[a.kind for a in runtime.config.accounts.values()])
    boss = Supervisor(runtime, pool, what_if)
    reports: dict[str, PairReport] = {}
    queue: list[Job] = []
    for pair in pairs:
        if runtime.state.is_paused(pair.name):
            log.info("pair %s: paused (run `%s resume %s`)", pair.name, ADMIN, pair.name)
            continue
        settled = boss.settled(pair, dry_run)
        if settled is not None:
            reports[pair.name] = settled
            boss.settle(pair, settled, now)
        else:
            queue.append(boss.job(CYCLE, pair, now, dry_run=dry_run, force_full=force_full))
    order = [p.name for p in pairs]
    try:
        _drain(boss, boss.batch(queue), reports, wait)
        if not dry_run:  # after the pairs: a changed target's old calendar waits for the new one
            _drain(boss, [boss.job(RETIRE, None, now)], reports, wait)
    finally:
        pool.close()
        boss.recorder.flush(force=True)
    return RunResults([reports[name] for name in order if name in reports], boss.retired)


def _drain(boss: Supervisor, queue: list[Job], reports: dict[str, PairReport],
           wait: float) -> None:
    """Run the queued jobs, at most `parallel` at once, until all have finished."""
    parallel = boss.runtime.config.service.parallel
    while queue or boss.pool.running:
        while queue and len(boss.pool.running) < parallel:
            ready = next((j for j in queue if not boss.minting(j)), None)
            if ready is None:
                break
            queue.remove(ready)
            try:
                queue[:0] = boss.start(ready, wait)
            except lock.PairBusy as exc:
                reports[ready.pair or ""] = PairReport.failed(ready.pair or "", "pair-busy",
                                                              str(exc))
            except OSError as exc:  # the pair's lock file: the state directory is not ours
                reports[ready.pair or ""] = PairReport.failed(
                    ready.pair or "", "state-dir-unwritable",
                    f"cannot take the pair's lock ({exc.strerror})")
        for done in boss.pool.wait(boss.recorder.wait(60.0)):
            if done.job.kind == PROBE:
                probed, again = boss.finish_probes(done)
                queue[:0] = again
                reports.update((report.pair, report) for report in probed)
                continue
            report = boss.finish(done)
            if report is not None:
                reports[report.pair] = report
        boss.recorder.flush()

