"""`calendar-sanitizer run`: a cycle every `service.interval` until SIGTERM, as a systemd service.

Start-up is all or nothing (config, the lock in state_dir, every password; then READY=1), so a
broken installation stops at once with exit 78 or 75 instead of failing quietly every cycle. After
that, problems belong to pairs: a pair that fails waits longer each time (doubling up to an hour)
while the others keep their rhythm. Each pair runs in a worker thread so the main thread can answer
signals and ping the watchdog. Pairs run side by side, PARALLEL_PAIRS at a time, so a slow server
holds up only its own pair, for at most the pair's cycle budget (runtime.cycle_budget); a pair
stuck far beyond that (a bug, not a server) stops the pings, and systemd restarts the service.
SIGTERM lets the pairs in flight finish (up to STOP_GRACE seconds); SIGHUP reloads the config and
the passwords, and keeps the old ones if the new ones are broken.
This is the only place that reads the clock for cycles.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
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
from sanitizer.service.runtime import Runtime, cycle_budget, open_runtime, run_cycle

log = logging.getLogger(__name__)

BACKOFF_MAX = timedelta(hours=1)
STOP_GRACE = 8.0  # seconds; the unit's TimeoutStopSec is 15s
JITTER_MAX = 30  # seconds
PAIR_DEADLINE_MIN = 300.0  # seconds a pair may run before the watchdog is left to fire
PAIR_DEADLINE_TIMEOUTS = 20  # ... or this many request timeouts, whichever is longer
PARALLEL_PAIRS = 2  # pairs in flight at once: one slow server does not hold up the rest, and
# memory stays bounded (each pair may hold one capped answer; see docs/performance.md)
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
    """open_runtime, but a missing password is a configuration error (exit 78)."""
    runtime = open_runtime(config)
    if runtime.missing:
        problems = missing_password_problems(runtime)
        runtime.close()
        raise ConfigError(problems, "secrets")
    return runtime


class Daemon:
    """The loop; state that outlives a cycle (backoff per pair, the schedule) lives here."""

    def __init__(self, config_path: Path, config: Config, runtime: Runtime) -> None:
        self.config_path = config_path
        self.config = config
        self.runtime = runtime
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

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _wait(self, seconds: float) -> None:
        """Sleep until the timeout, a signal (set_wakeup_fd writes to the pipe), or a finished
        pair; a signal that came before the call has left its byte in the pipe."""
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._wake_r], [], [], max(seconds, 0.0))
            if ready:
                with contextlib.suppress(BlockingIOError):
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
        sdnotify.notify("READY=1", f"STATUS=started with {len(self.config.pairs)} pair(s)")
        log.info("started: %d pair(s), interval %ds, state in %s", len(self.config.pairs),
                 self._interval(), service.state_dir)
        self._reschedule()
        try:
            while not self.stopping:
                self._ping()
                if self.reload_requested:
                    self._reload()
                if self.run_now:
                    self.run_now = False
                    self.scheduler.run_all()
                else:
                    self.scheduler.run_pending()
                if self.cycle_done:
                    self.cycle_done = False
                    self._record_schedule()
                # A signal during the cycle may have had its wake-up byte read while a pair
                # ran; its flag is still set, so look at the flags before sleeping.
                if not (self.stopping or self.reload_requested):
                    self._wait(self._tick(self.scheduler.idle_seconds))
        finally:
            sdnotify.notify("STOPPING=1", "STATUS=stopping")
            log.info("stopping")
            self.runtime.close()
        return 0

    def _interval(self) -> int:
        return int(self.config.service.interval.total_seconds())

    def _reschedule(self) -> None:
        """One job, every interval plus jitter; the first cycle runs now."""
        self.scheduler.clear()
        seconds = self._interval()
        self.scheduler.every(seconds).to(seconds + jitter(seconds)).seconds.do(self._cycle)
        self.run_now = True

    def _cycle(self) -> None:
        """One pass over the pairs that are due, PARALLEL_PAIRS at a time."""
        self.cycles += 1
        counts = {"ok": 0, "failed": 0, "paused": 0, "waiting": 0}
        changes = {"created": 0, "updated": 0, "deleted": 0}
        due = []
        for pair in self.config.pairs:
            state = self.states.setdefault(pair.name, Backoff())
            if state.retry_at is not None and datetime.now(UTC) < state.retry_at:
                counts["waiting"] += 1
            else:
                due.append(pair)
        now = datetime.now(UTC)
        reports = self._run_pairs(due, now) if due and not self.stopping else {}
        for pair in due:
            report = reports.get(pair.name)
            if report is None:
                counts["paused"] += 1
                continue
            for key in changes:
                changes[key] += getattr(report, key)
            state = self.states[pair.name]
            if backs_off(report):
                state.failures += 1
                delay = backoff(self.config.service.interval, state.failures)
                state.retry_at = now + delay
                counts["failed"] += 1
                log.warning("pair %s: failed %d time(s) in a row; next try in %ds",
                            pair.name, state.failures, int(delay.total_seconds()))
            else:
                state.failures, state.retry_at = 0, None
                counts["ok" if report.ok else "failed"] += 1
        self.last_status = (
            f"cycle {self.cycles}: {counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['paused']} paused, {counts['waiting']} backing off; "
            + " ".join(f"{k}={v}" for k, v in changes.items()))
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

    def _run_pairs(self, pairs: list[Pair], now: datetime) -> dict[str, PairReport]:
        """Sync the pairs in worker threads, PARALLEL_PAIRS at a time, pinging the watchdog while
        they run; a paused pair, or one being wiped, has no report."""
        results: dict[str, PairReport] = {}
        slots = threading.Semaphore(PARALLEL_PAIRS)
        threads = []
        for pair in pairs:
            done = threading.Event()  # set before the wake-up byte, so no wake-up is missed
            thread = threading.Thread(target=self._work, args=(pair, now, slots, results, done),
                                      name=f"pair-{pair.name}", daemon=True)
            threads.append((pair, thread, done))
            thread.start()
        timeout = self.config.service.timeout.total_seconds()
        deadline = time.monotonic() + max(
            PAIR_DEADLINE_MIN, PAIR_DEADLINE_TIMEOUTS * timeout,
            cycle_budget(timeout) + 3 * timeout) * -(-len(pairs) // PARALLEL_PAIRS)
        give_up: float | None = None
        warned = False
        while not all(done.is_set() for _, _, done in threads):
            clock = time.monotonic()
            if self.stopping and give_up is None:
                give_up = clock + STOP_GRACE
            if give_up is not None and clock >= give_up:
                self._abandon(next(p for p, _, done in threads if not done.is_set()))
            if clock < deadline:
                self._ping()
            elif not warned:
                warned = True
                log.error("pairs %s: still running long past their cycle budget; leaving it "
                          "to the watchdog", ", ".join(
                              p.name for p, _, done in threads if not done.is_set()))
            self._wait(min(self._tick(None), 0.5 if self.stopping else IDLE_TICK))
        for _, thread, _ in threads:
            thread.join()
        return results

    def _work(self, pair: Pair, now: datetime, slots: threading.Semaphore,
              results: dict[str, PairReport], done: threading.Event) -> None:
        """One pair's cycle, in its own thread, once a slot is free."""
        state_dir = self.config.service.state_dir
        try:
            with slots:
                if self.stopping:
                    return
                with lock.pair_lock(state_dir, pair.name):
                    reports = run_cycle(self.runtime, [pair], now)
                if reports:
                    results[pair.name] = reports[0]
        except lock.PairBusy:
            log.info("pair %s: being wiped or synced by another process; skipped", pair.name)
        except OSError as exc:  # the pair's lock file: the state directory is not ours
            report = PairReport.failed(
                pair.name, "state-dir-unwritable",
                f"cannot take the pair's lock in {state_dir} ({exc.strerror})")
            log.error("pair %s: %s", pair.name, report.error)
            results[pair.name] = report
        except Exception as exc:  # noqa: BLE001 - a bug in one pair must not stop the daemon
            results[pair.name] = PairReport.internal_error(pair.name, exc)
        finally:
            done.set()
            self._wake()

    def _abandon(self, pair: Pair) -> None:
        """SIGTERM and the pair did not finish in time: leave now. Every write is conditional,
        so whatever was half done is re-read and completed by the next cycle."""
        log.warning("pair %s: still running after %ds; stopping anyway", pair.name,
                    int(STOP_GRACE))
        sdnotify.notify("STOPPING=1", "STATUS=stopping")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

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
            old, self.config, self.runtime = self.runtime, config, runtime
            old.close()
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
