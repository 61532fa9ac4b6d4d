"""Watching a running daemon through its documented interfaces only.

Cycle completion comes from `calendar-sanitizer status --json` (run in this process, through the
CLI's own entry point, so polling it every second costs no interpreter start-up): each pair's
`last` is when its own cycle finished, so a cycle is finished once every pair carries a `last`
other than the one it had when the previous cycle was seen finished. Memory, threads and open
files are sampled from /proc for the daemon and every process below it (the whole tree, workers
included).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sanitizer.cli.main import main as cli_main


def status_json(config: Path) -> dict[str, Any]:
    """`calendar-sanitizer --config CONFIG status --json`, parsed ({} if it printed nothing)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        cli_main(["--config", str(config), "status", "--json"])
    try:
        data = json.loads(out.getvalue())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Cycle:
    """One finished daemon cycle, as `status --json` showed it."""

    number: int
    started: datetime  # the earliest new `last` of the cycle (its first pair done; 1 s)
    seen_done: float  # time.time() when this watcher first saw every pair stamped
    ok: int
    failed: int

    @property
    def seconds(self) -> float:
        """From the cycle's clock reading to the poll that saw it finished."""
        return max(0.0, self.seen_done - self.started.timestamp())


@dataclass
class CycleWatch:
    """Polls `status --json` and keeps the finished cycles in order."""

    config: Path
    cycles: list[Cycle] = field(default_factory=list)
    progress: tuple[str | None, int] = (None, 0)  # earliest new `last`, pairs done this cycle
    before: dict[str, Any] = field(default_factory=dict)  # pair -> `last` at the previous end

    pairs: int = 0  # configured pairs, from the last poll

    def poll(self) -> int:
        """Read the status once; the number of cycles finished so far."""
        pairs = status_json(self.config).get("pairs") or []
        self.pairs = len(pairs)
        stamps = {p.get("name"): p.get("last") for p in pairs}
        fresh = [s for name, s in stamps.items() if s and s != self.before.get(name)]
        self.progress = (min(fresh) if fresh else None, len(fresh))
        if pairs and len(fresh) == len(pairs):
            ok = sum(1 for p in pairs if p.get("ok"))
            self.cycles.append(Cycle(len(self.cycles) + 1, datetime.fromisoformat(min(fresh)),
                                     time.time(), ok, len(pairs) - ok))
            self.before = stamps
        return len(self.cycles)

    def pause(self, every: float) -> float:
        """How long to sleep before the next poll. A poll holds this process (and the counting
        proxy in it) for about 0.1 s at a thousand pairs, so during a cycle the next poll comes
        when the cycle is expected to be about half-way through what is left (from the share of
        pairs done so far; at most as long as it has run), `every` seconds apart near its end."""
        earliest, done = self.progress
        if not earliest or not done or not self.pairs:
            return every  # between cycles: the daemon is idle, polling costs it nothing
        elapsed = max(0.0, time.time() - datetime.fromisoformat(earliest).timestamp())
        left = elapsed * (self.pairs - done) / done
        return max(every, min(left / 2, elapsed, 30.0))  # never longer than it has run

    def wait(self, count: int, timeout: float, alive: Any, every: float = 0.5) -> bool:
        """Until `count` cycles are finished (False on timeout or when `alive()` is false)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.poll() >= count:
                return True
            time.sleep(min(self.pause(every), max(0.0, deadline - time.monotonic())))
        return self.poll() >= count


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children")
                          .read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants, from /proc."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def _status_fields(pid: int) -> tuple[int, int]:
    """(VmRSS KiB, threads) of one process; zeros if it is gone."""
    rss = threads = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def _pss(pid: int) -> int:
    """Proportional set size (KiB) of one process: each page it shares with n others counts
    1/n. Summed over a tree it counts every page once, as the unit's cgroup (MemoryMax) does;
    summed RSS counts the libraries the fork server and each worker share once per process."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_snapshot(pid: int) -> dict[str, float]:
    """RSS and PSS (MiB), threads, open files and processes of the whole tree right now."""
    rss = pss = threads = fds = 0
    procs = process_tree(pid)
    for member in procs:
        member_rss, member_threads = _status_fields(member)
        rss, threads = rss + member_rss, threads + member_threads
        pss += _pss(member)
        with contextlib.suppress(OSError):
            fds += len(os.listdir(f"/proc/{member}/fd"))
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "threads": threads,
            "fds": fds, "processes": len(procs)}


class TreeSampler(threading.Thread):
    """Samples the tree every 0.25 s; keeps the largest sums seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak: dict[str, float] = {"rss_mb": 0.0, "pss_mb": 0.0, "threads": 0, "fds": 0,
                                       "processes": 0}
        self.samples = 0
        self.stop_event = threading.Event()

    def _read(self) -> None:
        snap = tree_snapshot(self.pid)
        if snap["processes"] and snap["rss_mb"]:
            self.samples += 1
            for key, value in snap.items():
                self.peak[key] = max(self.peak[key], value)

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            self._read()

    def stop(self) -> None:
        self._read()
        self.stop_event.set()
        self.join()

    @property
    def peak_mb(self) -> float:
        return float(self.peak["rss_mb"])
