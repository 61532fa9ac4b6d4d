"""`calendar-sanitizer run`: a supervisor that syncs every pair every `service.interval` until
SIGTERM, as a systemd service.

Start-up is all or nothing (config, the lock in state_dir, every password; then READY=1), so a
broken installation stops at once with exit 78 or 75 instead of failing quietly every cycle. After
that, problems belong to pairs: a pair that fails waits longer each time (doubling up to an hour)
while the others keep their rhythm, and while it waits, a worker still deletes its entries past
retention.

The supervisor keeps the schedule, the watchdog, the locks, the state and the status, and never
talks to a server or parses a calendar: each pair's cycle runs in a worker process (pool.py,
worker.py) with a CPU limit, a memory limit and a deadline, at most `service.parallel` at once, and
a worker that is killed or dies is a failed cycle of its pair alone. The loop sleeps in one wait
over the workers' pipes and a signal pipe, so the watchdog is pinged twice per period whatever the
workers do, and a slow pair holds one slot, never the other pairs' rhythm. Each tick of the
schedule (a sweep) queues the pairs that are due and not still running, and one clean-up of
retired targets. SIGTERM lets the workers in flight finish (up to STOP_GRACE seconds) and then
kills them; SIGHUP reloads the config and the passwords, and keeps the old ones if the new ones
are broken. This is the only place that reads the clock for cycles.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import schedule

from sanitizer.engine.report import PairReport
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.service import lock, sdnotify, status
from sanitizer.service.checks import password_fix
from sanitizer.service.config import Config, Pair, load_config
from sanitizer.service.credentials import CREDENTIALS_ENV
from sanitizer.service.pool import Finished, Pool
from sanitizer.service.runtime import Runtime, open_runtime
from sanitizer.service.supervise import RETIRED, Supervisor, Sweep, keys_of
from sanitizer.service.worker import CYCLE, EXPIRE, PROBE, RETIRE, Job

log = logging.getLogger(__name__)

BACKOFF_MAX = timedelta(hours=1)
STOP_GRACE = 8.0  # seconds; the unit's TimeoutStopSec is 15s
JITTER_MAX = 30  # seconds
IDLE_TICK = 60.0  # the longest the loop sleeps without a reason to wake


@dataclass
class Backoff:
    """What the daemon remembers about a pair's failures between cycles."""

    failures: int = 0
    retry_at: datetime | None = None


def backoff(interval: timedelta, failures: int, cap: timedelta = BACKOFF_MAX) -> timedelta:
    """The wait after `failures` failures in a row: 1, 2, 4, 8... intervals, at most `cap`."""
    if failures <= 0:
        return timedelta(0)
    factor: int = 2 ** min(failures - 1, 30)
    return min(interval * factor, max(cap, interval))


def jitter(interval_seconds: int) -> int:
    """Seconds of random delay added to each interval: 10%, at least 1, at most JITTER_MAX."""
    return max(1, min(interval_seconds // 10, JITTER_MAX))


def backs_off(report: PairReport) -> bool:
    """True if the pair could not do its work (an unreadable server, rejected writes).

    A cycle held back by the empty-source guard is not a server failure: it is retried at the
    normal rhythm so the pair recovers as soon as the source answers again.
    """
    return report.error is not None or any(k != "conflict" for k in report.write_errors)


def missing_password_problems(runtime: Runtime) -> list[str]:
    """One line per account without a password, with what to do about it."""
    under_systemd = bool(os.environ.get(CREDENTIALS_ENV))  # else the hint names set-password
    return [f"{why}; {password_fix(name)}" if under_systemd else why
            for name, why in sorted(runtime.missing.items())]


def open_checked_runtime(config: Config) -> Runtime:
    """open_runtime, but a missing or unusable password is a configuration error (exit 78).
    The connections are made only to check the secrets: the workers make their own."""
    runtime = open_runtime(config)
    runtime.close()
    runtime.connections.clear()
    if runtime.missing:
        raise ConfigError(missing_password_problems(runtime), "secrets")
    return runtime


class Daemon:
    """The supervisor's loop; what outlives a cycle (backoff per pair, the schedule, the
    workers in flight and the tokens they handed back) lives here."""

    def __init__(self, config_path: Path, config: Config, runtime: Runtime) -> None:
        self.config_path = config_path
        self.config = config
        self.runtime = runtime
        self.pool = Pool(kinds=[a.kind for a in config.accounts.values()])
        self.boss = Supervisor(runtime, self.pool)
        self.queue: list[Job] = []
        self.owner: dict[str, Sweep] = {}  # queued or running job -> the sweep that queued it
        self.states: dict[str, Backoff] = {}
        self.scheduler = schedule.Scheduler()
        self.watchdog = sdnotify.watchdog_seconds()
        self.stopping = False
        self.reload_requested = False
        self.run_now = True
        self.cycles = 0
        self.cycle_done = False
        self.last_status = "no cycle yet"
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # signals -------------------------------------------------------------------------------

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads; each wakes the loop through a pipe."""
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags here: a lock taken in a handler can deadlock with the interrupted code.
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stopping = True

    def _drain(self) -> None:
        """Empty the wake-up pipe (its bytes only say: look at the flags)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._wake_r, 512):
                pass

    def _tick(self, seconds: float | None) -> float:
        """How long to sleep: until the next job, but pinging the watchdog twice per period."""
        candidates = [IDLE_TICK if seconds is None else seconds]
        if self.watchdog is not None:
            candidates.append(self.watchdog / 2)
        return max(0.01, min(candidates))

    def _ping(self) -> None:
        if self.watchdog is not None:
            sdnotify.notify("WATCHDOG=1")

    # the loop ------------------------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped; 0 after a clean stop."""
        service = self.config.service
        self.pool.warm_up()
        sdnotify.notify("READY=1", f"STATUS=started with {len(self.config.pairs)} pair(s)")
        log.info("started: %d pair(s), interval %ds, %d worker(s) at once, state in %s",
                 len(self.config.pairs), self._interval(), service.parallel, service.state_dir)
        self._reschedule()
        try:
            while not self.stopping:
                self._step()
        finally:
            sdnotify.notify("STOPPING=1", "STATUS=stopping")
            log.info("stopping")
            self._stop_workers()
        return 0

    def _step(self) -> None:
        """One turn of the loop: ping, reload, queue what is due, start workers, wait."""
        self._ping()
        if self.reload_requested:
            self._reload()
        if self.run_now:
            self.run_now = False
            self.scheduler.run_all()
        else:
            self.scheduler.run_pending()
        self._start_jobs()
        # A signal that came before this wait has left its byte in the pipe: the wait returns.
        if not (self.stopping or self.reload_requested):
            tick = self.boss.recorder.wait(self._tick(self.scheduler.idle_seconds))
            for done in self.pool.wait(tick, self._wake_r):
                self._finish(done)
        self.boss.recorder.flush()
        self._drain()
        if self.cycle_done:
            self.cycle_done = False
            self._record_schedule()

    def _interval(self) -> int:
        return int(self.config.service.interval.total_seconds())

    def _reschedule(self) -> None:
        """One job, every interval plus jitter; the first cycle runs now."""
        self.scheduler.clear()
        seconds = self._interval()
        self.scheduler.every(seconds).to(seconds + jitter(seconds)).seconds.do(self._cycle)
        self.run_now = True

    def _cycle(self) -> None:
        """A sweep: queue every pair that is due and not still running (the quiet ones in
        probe jobs), and one clean-up of retired targets; a pair that backs off gets a
        retention-only worker if it needs one."""
        self.cycles += 1
        now = datetime.now(UTC)
        sweep = Sweep(self.cycles, now)
        cycles: list[Job] = []
        for pair in self.config.pairs:
            self._sweep_pair(sweep, pair, now, cycles)
        for job in self.boss.batch(cycles):
            self._queue(sweep, job)
        if RETIRED not in self.owner:
            self._queue(sweep, self.boss.job(RETIRE, None, now))
        self._close_if_done(sweep)

    def _sweep_pair(self, sweep: Sweep, pair: Pair, now: datetime, cycles: list[Job]) -> None:
        if pair.name in self.owner:
            sweep.counts["running"] += 1
            return
        if status.is_paused(self.config.service.state_dir, pair.name):
            log.info("pair %s: paused (run `calendar-sanitizer resume %s`)", pair.name,
                     pair.name)
            sweep.counts["paused"] += 1
            return
        state = self.states.setdefault(pair.name, Backoff())
        if state.retry_at is not None and now < state.retry_at:
            sweep.counts["waiting"] += 1
            if self.runtime.state.has_expired(pair, now):
                self._queue(sweep, self.boss.job(EXPIRE, pair, now))
            return
        settled = self.boss.settled(pair, dry_run=False)
        if settled is not None:
            self.boss.settle(pair, settled, now)
            self._account(sweep, pair.name, settled)
            return
        cycles.append(self.boss.job(CYCLE, pair, now))

    def _queue(self, sweep: Sweep, job: Job) -> None:
        for key in keys_of(job):
            self.owner[key] = sweep
            sweep.pending.add(key)
        self.queue.append(job)

    def _start_jobs(self) -> None:
        """Start queued jobs while fewer than `parallel` workers run."""
        while self.queue and len(self.pool.running) < self.config.service.parallel:
            job = next((j for j in self.queue if not self.boss.minting(j)), None)
            if job is None:
                return
            self.queue.remove(job)
            try:
                self.queue[:0] = self.boss.start(job)
            except lock.PairBusy:
                log.info("pair %s: being wiped or synced by another process; skipped", job.pair)
                self._done(job, None, paused=True)
            except OSError as exc:  # the pair's lock file: the state directory is not ours
                report = PairReport.failed(
                    job.pair or "", "state-dir-unwritable",
                    f"cannot take the pair's lock in {self.config.service.state_dir} "
                    f"({exc.strerror})")
                log.error("pair %s: %s", job.pair, report.error)
                self._done(job, report)

    def _finish(self, done: Finished) -> None:
        if done.job.kind != PROBE:
            self._done(done.job, self.boss.finish(done))
            return
        reports, again = self.boss.finish_probes(done)
        self.queue[:0] = again  # the pairs with something to do, before the next probes
        for report in reports:
            self._over(report.pair, CYCLE, report)

    def _done(self, job: Job, report: PairReport | None, paused: bool = False) -> None:
        """A job is over: count it in its sweep, and close the sweep when it was the last."""
        self._over(keys_of(job)[0], job.kind, report, paused)

    def _over(self, key: str, kind: str, report: PairReport | None,
              paused: bool = False) -> None:
        sweep = self.owner.pop(key, None)
        if sweep is None:
            return
        sweep.pending.discard(key)
        if paused:
            sweep.counts["paused"] += 1
        elif report is not None and kind == CYCLE:
            self._account(sweep, report.pair, report)
        self._close_if_done(sweep)

    def _account(self, sweep: Sweep, name: str, report: PairReport) -> None:
        """A pair's report into its sweep's counts and its backoff."""
        for key in ("created", "updated", "deleted"):
            sweep.changes[key] += getattr(report, key)
        state = self.states.setdefault(name, Backoff())
        if backs_off(report):
            state.failures += 1
            delay = backoff(self.config.service.interval, state.failures)
            state.retry_at = sweep.now + delay
            sweep.counts["failed"] += 1
            log.warning("pair %s: failed %d time(s) in a row; next try in %ds",
                        name, state.failures, int(delay.total_seconds()))
        else:
            state.failures, state.retry_at = 0, None
            sweep.counts["ok" if report.ok else "failed"] += 1

    def _close_if_done(self, sweep: Sweep) -> None:
        if sweep.pending:
            return
        self.boss.recorder.flush(force=True)  # `status` sees the whole sweep when it is logged
        self.last_status = sweep.line()
        log.info("%s", self.last_status)
        sdnotify.notify(f"STATUS={self.last_status}")
        self.cycle_done = True

    def _record_schedule(self) -> None:
        """Next run per pair into status.json, for `calendar-sanitizer status`."""
        idle = self.scheduler.idle_seconds
        next_cycle = datetime.now(UTC) + timedelta(
            seconds=self._interval() if idle is None else max(idle, 0.0))
        plan = {}
        for pair in self.config.pairs:
            state = self.states.get(pair.name, Backoff())
            due = state.retry_at if state.retry_at and state.retry_at > next_cycle else next_cycle
            plan[pair.name] = (due, state.failures)
        try:
            status.record_schedule(self.config.service.state_dir, plan)
        except OSError as exc:
            log.warning("cannot write the status file (%s)", exc.strerror)

    def _stop_workers(self) -> None:
        """Let the workers in flight finish for STOP_GRACE seconds, then kill them: every write
        is conditional, so whatever was half done is re-read and completed next time."""
        self.queue.clear()
        give_up = time.monotonic() + STOP_GRACE
        while self.pool.running and time.monotonic() < give_up:
            for done in self.pool.wait(min(0.5, give_up - time.monotonic()), self._wake_r):
                self._finish(done)
            self._drain()
        for run in self.pool.running:
            log.warning("pair %s: still running after %ds; stopping anyway",
                        run.job.pair or "retired targets", int(STOP_GRACE))
        for done in self.pool.kill_all():
            if done.job.kind == PROBE:
                self.boss.finish_probes(done, note=False)
            else:
                self.boss.finish(done, note=False)
        self.pool.close()
        self.boss.recorder.flush(force=True)

    # reload --------------------------------------------------------------------------------

    def _reload(self) -> None:
        """New config and passwords, all or nothing."""
        self.reload_requested = False
        sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}",
                        "STATUS=reloading the configuration")
        log.info("reloading %s", self.config_path)
        try:
            config = load_config(self.config_path)
            if config.service.state_dir != self.config.service.state_dir:
                raise ConfigError(["service.state_dir: cannot change while running; "
                                   "restart the service"], str(self.config_path))
            runtime = open_checked_runtime(config)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %d problem(s)",
                      len(exc.problems))
            for problem in exc.problems:
                log.error("reload: config error: %s", problem)
        except SanitizerError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            self.boss.recorder.flush(force=True)
            self.boss.recorder.metrics_file = config.service.metrics_file
            self.config, self.runtime = config, runtime
            self.boss.runtime = runtime
            self.boss.tokens.clear()  # a changed secret must not live on in a handed token
            self.states.clear()  # the admin changed something: every pair gets a fresh try
            log.info("reloaded: %d pair(s), interval %ds", len(config.pairs), self._interval())
            self._reschedule()
        sdnotify.notify("READY=1", f"STATUS={self.last_status}")


def run(config_path: Path) -> int:
    """`calendar-sanitizer run`: start up (all or nothing), then serve until SIGTERM."""
    stop_early = {"flag": False}

    def early(signum: int, frame: FrameType | None) -> None:
        stop_early["flag"] = True  # during start-up: stop right after it, cleanly

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, early)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nothing to reload yet
    config = load_config(config_path)
    instance = lock.acquire(config.service.state_dir)
    try:
        runtime = open_checked_runtime(config)
        daemon = Daemon(config_path, config, runtime)
        daemon.install_signals()
        daemon.stopping = stop_early["flag"]
        return daemon.serve()
    finally:
        instance.release()
