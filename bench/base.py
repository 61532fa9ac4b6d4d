"""What every part of the benchmark shares: the run's state, its clock and its log."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import dav, report, tools
from bench.report import Row

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests package, when run as a script

from demo.embedded_server import EmbeddedRadicale  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402

LOOKAHEAD = timedelta(days=14)
RETENTION = timedelta(hours=24)
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    args: argparse.Namespace
    server: EmbeddedRadicale
    proxy: FaultProxy
    direct: dav.Dav
    work: Path
    now: datetime
    shift: timedelta
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what could not be measured
    extra: dict[str, Any] = field(default_factory=dict)

    def direct_url(self, slug: str) -> str:
        return f"{self.server.principal_url}{slug}/"

    def proxied_url(self, slug: str) -> str:
        return f"{self.proxy.url.rstrip('/')}/{self.server.username}/{slug}/"

    def collection(self, slug: str) -> Path:
        return dav.collection_dir(self.server.store_dir, self.server.username, slug)

    def server_cpu(self) -> float:
        """CPU seconds the Radicale process has used so far (all its threads)."""
        return cpu_seconds(self.server._proc.pid if self.server._proc else 0)

    def measure(self, scenario: str, size: int, tool: str, fn: Callable[[], tools.Run],
                counts: Callable[[tools.Run], dict[str, int]] | None = None) -> Row:
        """Run one client with the proxy's counters zeroed; the proxy gives the server side."""
        self.proxy.reset_stats()
        cpu_before = self.server_cpu()
        run = fn()
        stats = self.proxy.stats()
        row = Row(scenario=scenario, size=size, tool=tool, requests=dict(stats.requests),
                  server_s=stats.total_upstream_seconds,
                  server_cpu_s=self.server_cpu() - cpu_before,
                  server_by_method={k: round(v, 4) for k, v in stats.upstream_seconds.items()},
                  wall_s=run.wall, rss_mb=run.rss_mb, code=run.code,
                  client_cpu_s=run.cpu_s, bytes_in=stats.bytes_in,
                  bytes_out=stats.bytes_out, connections=stats.client_connections,
                  counts=counts(run) if counts else {})
        if run.code != 0:
            row.note = run.stderr_tail[:160]
        return row

    def load_source(self, slug: str, objects: dict[str, bytes]) -> float:
        """Create a calendar, drop its items into Radicale's store, warm its caches."""
        started = time.perf_counter()
        self.direct.mkcalendar(self.direct_url(slug), slug)
        dav.write_items(self.collection(slug), objects)
        self.direct.warm(self.direct_url(slug))
        return time.perf_counter() - started

    def clone_source(self, original: str, slug: str) -> float:
        """A copy of a loaded calendar, caches included (so it needs no warming)."""
        started = time.perf_counter()
        shutil.copytree(self.collection(original), self.collection(slug))
        return time.perf_counter() - started


def log_row(row: Row) -> None:
    log(f"  {row.scenario:<16} {row.tool:<10} {report.fmt_requests(row.requests):<40} "
        f"server {row.server_s:7.3f}s cpu {row.server_cpu_s:6.2f}s wall {row.wall_s:6.2f}s "
        f"rss {row.rss_mb:4.0f}MB {row.counts if row.counts else ''}"
        f"{'' if row.code == 0 else f' EXIT {row.code} {row.note}'}")
