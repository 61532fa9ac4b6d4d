"""The status file and the metrics, written for many pairs at once.

Each pair's cycle used to rewrite both whole files when it finished: at 1,000 pairs that is a
third of a megabyte read, merged and synced to disk per pair, and (with metrics) the whole
Prometheus text rendered again, so a sweep's bookkeeping grew with the square of the pairs. The
supervisor now notes each finished cycle here and writes what gathered at most once per
`every` seconds, when a sweep ends and before it stops: `status` lags a finished cycle by at
most that, and the cost per pair no longer depends on the number of pairs. Each write still
reads the file first and merges, so what other commands wrote (`wipe`, `pause`) is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sanitizer.engine.report import PairReport
from sanitizer.service import metrics, status

log = logging.getLogger(__name__)
EVERY = 1.0  # seconds: how long a finished cycle may wait to be written


class Recorder:
    """Finished cycles waiting to be written to the status file and the metrics."""

    def __init__(self, state_dir: Path, metrics_file: Path | None, every: float = EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state_dir = state_dir
        self.metrics_file = metrics_file
        self.every = every
        self.clock = clock
        self.noted: list[status.Noted] = []
        self.timed: list[tuple[list[PairReport], dict[str, float], datetime]] = []
        self.since: float | None = None  # when the oldest unwritten cycle was noted

    def note(self, noted: status.Noted, seconds: float | None = None) -> None:
        """A finished cycle; `seconds`, how long its worker took, goes to the metrics too."""
        self.noted.append(noted)
        if seconds is not None:
            self.timed.append(([noted.report], {noted.report.pair: seconds}, noted.ran_at))
        if self.since is None:
            self.since = self.clock()

    def due_in(self) -> float | None:
        """Seconds until what is noted must be written; None when nothing waits."""
        if self.since is None:
            return None
        return max(0.0, self.since + self.every - self.clock())

    def wait(self, longest: float) -> float:
        """How long the caller may sleep: `longest`, or less if a write falls due first."""
        due = self.due_in()
        return longest if due is None else min(longest, due)

    def flush(self, force: bool = False) -> None:
        """Write what is noted, if it has waited long enough or `force`. A status file that
        cannot be written is said once per attempt, and what it held is tried again later."""
        wait = self.due_in()
        if wait is None or (wait > 0 and not force):
            return
        try:
            status.record_each(self.state_dir, self.noted)
        except OSError as exc:
            log.warning("cannot write the status file in %s (%s)", self.state_dir,
                        exc.strerror)
            self.since = self.clock()
            return
        metrics.record_each(self.metrics_file, self.state_dir, self.timed)
        self.noted, self.timed, self.since = [], [], None
