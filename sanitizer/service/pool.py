"""The supervisor's workers: each job in a process of its own, bounded by the operating system.

Why processes: a thread stuck in a library (response headers trickled a byte at a time, a parser
looping in C) can be neither interrupted nor killed; a process can, and its memory and CPU can be
capped by the kernel. Why multiprocessing's fork server: its server process is started once,
imports the libraries once, and forks each worker from that clean, single-threaded state in a few
milliseconds; a worker inherits neither the supervisor's memory (other accounts' secrets) nor its
threads and locks, and gets only what its Job carries. ("spawn" would import every library again
for every cycle, about half a second of CPU each; plain fork would copy the supervisor, secrets
and all, and is unsafe in a process with threads.) `sync` of a few pairs is the exception: a run
of a few seconds that has imported everything already and holds only the secrets of the pairs
it runs, so when it has no other thread, no HTTP stack and little memory it forks its workers
itself instead of starting a fork server (which would cost more CPU than a few quiet cycles).

Each worker sets its own limits (worker.limit); the supervisor kills it at its wall-clock deadline.
A worker that ends without answering is a failed cycle for its pair alone, with a reason code:
worker-timeout (killed at the deadline), worker-cpu (its CPU limit), worker-memory (its memory
limit), worker-killed (any other signal), worker-crashed (an exit without an answer).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from sanitizer.engine.report import PairReport
from sanitizer.service import worker
from sanitizer.service.worker import Job, Outcome
from sanitizer.stores.registry import KINDS

log = logging.getLogger(__name__)
# What the fork server imports once, so that no worker imports it again: the worker and its
# libraries; the protocol modules urllib3 loads at a first connection (HTTP/1.1, and HTTP/2
# that TLS servers offer); and the command line, because multiprocessing runs the main script
# again in each child when the program was started as a console script (`calendar-sanitizer
# run`, as the unit does): with its imports already loaded that costs nothing, without them
# about 70 ms of CPU per worker. A module that is not installed is skipped.
PRELOAD = ["sanitizer.service.worker", "niquests", "lxml.etree",
           "icalendar", "recurring_ical_events", "x_wr_timezone", "sanitizer.cli.main", "h11",
           "urllib3.contrib.hface.protocols.http1", "urllib3.contrib.hface.protocols.http2"]
DEFAULT_MEMORY_MAX = 512 * 1024 * 1024  # the shipped unit's MemoryMax, when none can be read
MEMORY_SHARE = 2  # all workers together stay under 1/MEMORY_SHARE of the unit's memory
MIN_WORKER_DATA = 96 * 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
FREEZE = "sanitizer.service.frozen"  # imported last by the fork server: gc.freeze()
FORK_UNSAFE = frozenset({"niquests", "urllib3", "urllib3_future", "requests", "msal"})


def memory_max() -> int:
    """The memory limit of this process's cgroup (systemd's MemoryMax), or the default."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
        path = next(line[3:] for line in lines if line.startswith("0::"))
        text = (CGROUP_ROOT / path.lstrip("/") / "memory.max").read_text(encoding="ascii")
        return int(text.strip())
    except (OSError, StopIteration, ValueError):
        return DEFAULT_MEMORY_MAX


def data_size() -> int:
    """This process's data size (VmData: what RLIMIT_DATA counts), or a huge number."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


def worker_data(parallel: int, limit: int | None = None) -> int:
    """RLIMIT_DATA of one worker: `parallel` of them together use at most half the memory."""
    total = memory_max() if limit is None else limit
    return max(MIN_WORKER_DATA, total // MEMORY_SHARE // max(parallel, 1))


@dataclass
class Running:
    """A worker in flight."""

    job: Job
    process: BaseProcess
    conn: Connection
    started: float
    deadline: float
    outcome: Outcome | None = None
    timed_out: bool = False
    closed: bool = False  # the worker closed its end of the pipe: wait on its exit only


@dataclass(frozen=True)
class Finished:
    """A worker that answered or ended; a dead one's outcome is a failed report."""

    job: Job
    outcome: Outcome
    seconds: float


def own_modules(names: Iterable[str]) -> None:
    """The kinds' own modules, imported once here by a `sync` that forks its workers from
    itself, instead of once in each worker (the pair's and the clean-up's). They load no HTTP
    stack (each worker does, after the fork); the pool checks that again after importing them."""
    for name in names:
        if name.startswith("sanitizer."):
            importlib.import_module(name)


class Pool:
    """The workers in flight; the caller decides how many to start. With `fork_below` (`sync`)
    the workers are forked from this process if it has no other thread, has not loaded an HTTP
    stack (a fork copies its pools and resolvers without their threads; the supervisor never
    talks to a server, so from the command line it has none) and holds less than `fork_below`
    bytes of data (a worker's memory limit counts what it inherits). `kinds`: the kinds of
    account in the config, whose stores the fork server loads too."""

    def __init__(self, fork_below: int | None = None, kinds: Iterable[str] = ()) -> None:
        preload = [name for kind in sorted(set(kinds)) for name in KINDS[kind].preload]
        fork = (fork_below is not None and threading.active_count() == 1
                and not FORK_UNSAFE & set(sys.modules) and data_size() < fork_below)
        if fork:
            own_modules(preload)
            fork = not FORK_UNSAFE & set(sys.modules)
        if fork:
            gc.freeze()  # no collection in a worker walks (and copies) what it inherits
            self._context: Any = multiprocessing.get_context("fork")
        else:
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload([*PRELOAD, *preload, FREEZE])
        self.running: list[Running] = []

    def warm_up(self) -> None:
        """Start the fork server now and wait until it has imported the libraries (about a
        second), so that the first worker does not hold up the loop and its watchdog pings."""
        process = self._context.Process(target=_nothing, name="warm-up", daemon=True)
        process.start()
        process.join()

    def start(self, job: Job) -> Running:
        """Fork a worker for the job."""
        ours, theirs = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker.main, args=(job, theirs),
                                        name=f"worker-{job.pair or job.kind}", daemon=True)
        process.start()
        theirs.close()
        now = time.monotonic()
        running = Running(job, process, ours, now, now + job.bounds.wall_seconds)
        self.running.append(running)
        return running

    def wait(self, timeout: float, wake: int | None = None) -> list[Finished]:
        """Wait until a worker answers or ends, `wake` (a file descriptor) is readable, or the
        timeout; kill the workers past their deadline. The workers that finished."""
        now = time.monotonic()
        for run in self.running:
            if now >= run.deadline and run.process.is_alive():
                run.timed_out = True
                run.process.kill()
        if self.running:
            timeout = min(timeout, max(0.0, min(r.deadline for r in self.running) - now))
        sources: list[object] = [r.conn for r in self.running if not r.closed] + [
            r.process.sentinel for r in self.running]
        if wake is not None:
            sources.append(wake)
        with contextlib.suppress(InterruptedError):
            wait(sources, max(timeout, 0.0))  # type: ignore[arg-type]
        for run in self.running:
            self._read(run)
        done = [r for r in self.running if not r.process.is_alive()]
        self.running = [r for r in self.running if r not in done]
        return [self._finish(r) for r in done]

    def _read(self, run: Running) -> None:
        """Every message the worker sent so far: log records, then its outcome."""
        try:
            while not run.closed and run.conn.poll():
                message = run.conn.recv()
                if message[0] == "log":
                    _, level, name, text = message
                    logging.getLogger(name).log(level, "%s", text)
                elif message[0] == "done":
                    run.outcome = message[1]
        except (EOFError, OSError):
            run.closed = True

    def _finish(self, run: Running) -> Finished:
        run.process.join()
        self._read(run)
        run.conn.close()
        seconds = time.monotonic() - run.started
        outcome = run.outcome
        if run.job.kind == worker.PROBE:
            if outcome is None:
                _probes_died(run, seconds)
                outcome = Outcome()
        elif outcome is None or (outcome.report is None and run.job.kind != worker.RETIRE):
            outcome = Outcome(_died(run, seconds))
        return Finished(run.job, outcome, seconds)

    def kill_all(self) -> list[Finished]:
        """Stop every worker now (the service is stopping)."""
        for run in self.running:
            run.timed_out = True
            run.process.kill()
        return self.wait(0.0)

    def close(self) -> None:
        """Kill what still runs. The fork server stays for the next pool of this process (a
        new one costs a second of imports) and is stopped when the process exits."""
        self.kill_all()
        if self._context.get_start_method() == "forkserver":
            _stop_at_exit()


_STOP_REGISTERED: list[bool] = []


def _stop_at_exit() -> None:
    """Stop the fork server when this process exits, so that it and the workers it reaped are
    counted in the resource usage of whoever waits for this process."""
    if not _STOP_REGISTERED:
        _STOP_REGISTERED.append(True)
        atexit.register(_stop_fork_server)


def _stop_fork_server() -> None:
    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if callable(stop):
        with contextlib.suppress(OSError, ChildProcessError):
            stop()


def _nothing() -> None:
    """A worker that does nothing (warm_up)."""


def _died(run: Running, seconds: float) -> PairReport:
    """A failed report for a worker that ended without answering."""
    reason, why = _death(run, seconds)
    report = PairReport.failed(run.job.pair or "", reason,
                               f"{reason}: the cycle's worker {why}", dry_run=run.job.dry_run)
    log.error("pair %s: %s", report.pair, report.error)
    return report


def _probes_died(run: Running, seconds: float) -> None:
    """Probes that ended without answering fail no pair: each runs its own cycle instead."""
    reason, why = _death(run, seconds)
    log.warning("quiet probes of %d pair(s): %s: their worker %s; each pair runs its own "
                "cycle", len(run.job.probes), reason, why)


def _death(run: Running, seconds: float) -> tuple[str, str]:
    """The reason code of a worker's end without an answer, and what happened, in words."""
    code = run.process.exitcode
    if run.timed_out:
        reason, why = "worker-timeout", f"was stopped at its deadline ({int(seconds)}s)"
    elif code in (-signal.SIGXCPU, -signal.SIGKILL) and _used_cpu(run):
        reason, why = "worker-cpu", "was stopped at its CPU limit"
    elif code is not None and code < 0:
        reason, why = "worker-killed", f"was killed by signal {-code}"
    else:
        reason, why = "worker-crashed", f"ended without an answer (exit {code})"
    return reason, why


def _used_cpu(run: Running) -> bool:
    """SIGKILL is also what the kernel sends at the hard CPU limit: assume that when the worker
    lived at least as long as its soft limit (it cannot use more CPU than that otherwise)."""
    return run.process.exitcode == -signal.SIGXCPU or (
        time.monotonic() - run.started >= run.job.bounds.cpu_seconds)
