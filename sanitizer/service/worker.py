"""What runs inside a worker process: one pair's cycle, a retention-only pass, the quiet probes
of several pairs, or the sweep's clean-up of retired targets.

The supervisor (pool.py) starts each worker from a fork server and hands it a Job: the config,
the UID key, the secrets of the accounts it needs (no others), the tokens held for them, and its
bounds. The worker sets its own operating-system limits first (CPU seconds, data memory), leaves
SIGTERM, SIGINT and SIGHUP to the supervisor, sends its log records to the supervisor, and
answers with plain data: the pair's report (with the state to save), the probes' reports, what
the clean-up did, and the tokens it holds. It writes no state file but the ledger's note of a
target, which must come before the first write to it (the ledger serialises its writers with a
lock)."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection

from sanitizer.core import expand
from sanitizer.engine.expire import expire
from sanitizer.engine.reconcile import probe_due, probe_pair
from sanitizer.engine.report import PairReport
from sanitizer.errors import StoreError, TokenRejected
from sanitizer.service import hardening, logs, retirement
from sanitizer.service.config import Config
from sanitizer.service.cycle import run_pair
from sanitizer.service.runtime import Runtime, retire_abandoned
from sanitizer.stores import handoff

CYCLE, EXPIRE, PROBE, RETIRE = "cycle", "expire", "probe", "retire"
CPU_GRACE = 5  # seconds between SIGXCPU (the soft CPU limit) and SIGKILL (the hard one)
THREAD_STACK = 1024 * 1024  # the writer threads' stacks count against the memory limit: 1 MiB,
# not the 8 MiB default, which is far more than a request needs
MEMORY_REASON = "worker-memory"
SERVER_WIDE = frozenset({401, 407, 429})  # a rejected secret, or throttling: no more probes


@dataclass(frozen=True)
class Bounds:
    """What one worker may use; the supervisor kills it at `wall_seconds`."""

    cpu_seconds: int  # RLIMIT_CPU
    data_bytes: int  # RLIMIT_DATA: heap and every private writable mapping
    wall_seconds: float
    budget: float  # seconds of requests in one cycle (runtime.cycle_budget)
    object_seconds: float  # CPU seconds to parse and expand one object (expand.MAX_SECONDS)


@dataclass(frozen=True)
class Job:
    """One unit of work for one worker process."""

    kind: str  # CYCLE, EXPIRE (retention only), PROBE (quiet probes) or RETIRE (retired targets)
    pair: str | None
    config: Config
    key: bytes = field(repr=False)
    secrets: Mapping[str, str] = field(repr=False)
    now: datetime
    bounds: Bounds
    dry_run: bool = False
    force_full: bool = False
    tokens: Mapping[str, handoff.Handed] = field(default_factory=dict, repr=False)
    log_level: int = logging.INFO
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)  # the supervisor's
    sources: tuple[str, ...] | None = None  # every pair's source, when `config` is scoped
    probes: tuple[str, ...] = ()  # PROBE: the pairs to probe


@dataclass(frozen=True)
class Probed:
    """A pair whose quiet probe found nothing to do: its report, and the seconds it took."""

    report: PairReport
    seconds: float


@dataclass
class Outcome:
    """What a worker answers: plain data, saved by the supervisor."""

    report: PairReport | None = None
    retired: list[retirement.Retirement] = field(default_factory=list)
    probed: dict[str, Probed] = field(default_factory=dict)  # PROBE: the pairs it settled
    tokens: dict[str, handoff.Handed] = field(default_factory=dict, repr=False)


class _Forward(logging.Handler):
    """Log records go to the supervisor, which logs them as its own (one journal stream)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(("log", record.levelno, record.name, record.getMessage()))
        except Exception:  # noqa: BLE001 - a lost log line must not fail the cycle
            self.handleError(record)


def limit(bounds: Bounds) -> None:
    """Set this process's CPU and memory limits (never above the hard limits it has). A
    syscall filter that refuses them (glibc sets limits with prlimit64, which the shipped units
    allow) leaves the deadline and the unit's MemoryMax: said loudly, every cycle."""
    try:
        _set(resource.RLIMIT_CPU, bounds.cpu_seconds, bounds.cpu_seconds + CPU_GRACE)
        _set(resource.RLIMIT_DATA, bounds.data_bytes, bounds.data_bytes)
    except (OSError, ValueError) as exc:
        logging.getLogger(__name__).error(
            "cannot limit the worker's CPU and memory (%s): allow prlimit64 in the unit's "
            "SystemCallFilter", getattr(exc, "strerror", None) or type(exc).__name__)


def _set(which: int, soft: int, hard: int) -> None:
    ceiling = resource.getrlimit(which)[1]
    if ceiling != resource.RLIM_INFINITY:
        soft, hard = min(soft, ceiling), min(hard, ceiling)
    resource.setrlimit(which, (soft, hard))


def main(job: Job, conn: Connection) -> None:
    """A worker process's entry point."""
    hardening.die_with_parent()
    os.environ.clear()  # the supervisor's environment now, not the fork server's at its start
    os.environ.update(job.environment)
    logs.install(_Forward(conn), job.log_level)
    limit(job.bounds)
    threading.stack_size(THREAD_STACK)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the supervisor decides when a worker stops
    handoff.seed(job.tokens)
    expand.MAX_SECONDS = job.bounds.object_seconds
    try:
        outcome = run(job)
    except MemoryError:
        outcome = Outcome() if job.kind == PROBE else Outcome(PairReport.failed(
            job.pair or "", MEMORY_REASON, f"{MEMORY_REASON}: the cycle's worker ran out of "
            "memory", dry_run=job.dry_run))
    outcome.tokens = {k: v for k, v in handoff.held().items() if k in job.secrets}
    conn.send(("done", outcome))
    conn.close()


def run(job: Job) -> Outcome:
    """The job, with connections made from the secrets it carries."""
    runtime = Runtime(job.config, job.key, secrets=dict(job.secrets), sources=job.sources)
    runtime.connect(None if job.kind == RETIRE else job.config.pairs)
    try:
        if job.kind == RETIRE:
            return Outcome(retired=retire_abandoned(runtime, job.now))
        if job.kind == PROBE:
            return Outcome(probed=probe_all(runtime, job))
        pair = job.config.pair(job.pair or "")
        try:
            if job.kind == EXPIRE:
                return Outcome(expire_only(runtime, job))
            report = run_pair(runtime, pair, job.now, dry_run=job.dry_run,
                              force_full=job.force_full, budget=job.bounds.budget).report
            if not job.dry_run:
                report.desired = []  # only `preview` shows them: not sent to the supervisor
            return Outcome(report)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug is this pair's failure, reported
            return Outcome(PairReport.internal_error(pair.name, exc, dry_run=job.dry_run))
    finally:
        runtime.close()


def expire_only(runtime: Runtime, job: Job) -> PairReport:
    """Retention alone, for a pair that waits out a backoff: its recorded expired entries go,
    whatever its source does. The state is handed back for the supervisor to save."""
    pair = runtime.config.pair(job.pair or "")
    state = runtime.state.sync_state(pair.name)
    report = PairReport(pair.name, mode="retention")
    target = runtime.target(pair)
    if state is None or target is None:
        return report
    report.state = expire(state, target, job.now, pair.retention, report,
                          runtime.config.service.workers)
    return report


def probe_all(runtime: Runtime, job: Job) -> dict[str, Probed]:
    """The quiet probes of the job's pairs, one after another, within one cycle's budget: the
    pairs whose source changed nothing, with their reports. Every other pair (its source
    changed, its state no longer calls for a probe alone, or anything went wrong) runs its
    whole cycle in a worker of its own, so a probe never decides more than the quiet path
    would. A failure that may be the server's rather than one calendar's ends the probes: the
    pairs left run their own cycles. Each state is read here, under the pair's lock the
    supervisor holds, and checked again: the supervisor read it before it took the lock."""
    service = job.config.service
    timeout = service.timeout.total_seconds()
    until = time.monotonic() + job.bounds.budget
    found: dict[str, Probed] = {}
    for name in job.probes:
        started = time.monotonic()
        if started + timeout > until:
            break
        pair = job.config.pair(name)
        state = runtime.state.sync_state(name)
        if state is None or not probe_due(pair, state, key=runtime.key, now=job.now,
                                          zone=service.timezone,
                                          full_every=service.full_reconcile):
            continue
        source, target = runtime.source(pair, until), runtime.target(pair, until)
        if source is None or target is None:
            continue
        try:
            report = probe_pair(pair, source, target, state=state)
        except TokenRejected:
            continue
        except StoreError as exc:
            if about_one_calendar(exc):
                continue
            break
        except Exception as exc:  # noqa: BLE001 - a bug: the pairs left run their own cycles
            logging.getLogger(__name__).error("quiet probes: internal error (%s)",
                                              type(exc).__name__)
            break
        if report is not None:
            found[name] = Probed(report, time.monotonic() - started)
    return found


def about_one_calendar(exc: StoreError) -> bool:
    """Whether a failed probe says something about its calendar only (a 4xx answer), so the
    next probe may go on; no answer, a 5xx, throttling or a rejected secret is the server's
    (and a rejected secret must not be sent again and again)."""
    status = exc.status
    return status is not None and 400 <= status < 500 and status not in SERVER_WIDE
