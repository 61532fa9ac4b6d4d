"""The benchmark: one Radicale, one counting proxy, both tools, every scenario, one report."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import calgen, dav, report, tools
from bench.report import PRODUCT, VDIR, Row

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests package, when run as a script

from sanitizer.core.durations import parse_duration  # noqa: E402
from sanitizer.demo.embedded_server import EmbeddedRadicale  # noqa: E402
from sanitizer.service.config import Service  # noqa: E402
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


def measure_upload(bench: Bench, objects: dict[str, bytes], sample: int) -> dict[str, Any]:
    """Two ways of loading a calendar, timed on the same objects: PUTs over one keep-alive
    connection, and item files written into the store plus one warming pass."""
    items = dict(list(objects.items())[:sample])
    bench.direct.mkcalendar(bench.direct_url("upload-put"), "upload-put")
    started = time.perf_counter()
    bench.direct.put_all(bench.direct_url("upload-put"), items)
    put_s = time.perf_counter() - started
    fs_s = bench.load_source("upload-fs", items)
    return {"objects": len(items), "put_s": round(put_s, 3), "fs_s": round(fs_s, 3),
            "put_per_s": round(len(items) / put_s, 1), "fs_per_s": round(len(items) / fs_s, 1)}


def run_size(bench: Bench, size: int) -> None:
    """Scenarios a-e at one calendar size, both tools on their own copies of the same data."""
    log(f"size {size}: generating and loading")
    cal = calgen.work_calendar(size, bench.now, seed=size, lookahead=LOOKAHEAD,
                               shift=bench.shift, prefix=f"s{size}")
    objects = cal.render_all(bench.now)
    if size == min(bench.args.sizes):
        bench.extra["upload"] = measure_upload(bench, objects, min(size, 200))
    src_ours, src_vdir = f"s{size}-src-ours", f"s{size}-src-vdir"
    dst_ours, dst_vdir = f"s{size}-dst-ours", f"s{size}-dst-vdir"
    load_s = bench.load_source(src_ours, objects)
    clone_s = bench.clone_source(src_ours, src_vdir)
    for slug in (dst_ours, dst_vdir):  # both targets exist before the first sync
        bench.direct.mkcalendar(bench.direct_url(slug), slug)
    bench.extra.setdefault("load", {})[size] = {
        "objects": len(objects), "bytes": sum(map(len, objects.values())),
        "load_s": round(load_s, 2), "clone_s": round(clone_s, 2)}
    log(f"size {size}: {len(objects)} objects loaded in {load_s:.1f}s (+ clone {clone_s:.1f}s)")

    root = bench.work / f"size-{size}"
    ours = tools.Sanitizer(root / "sanitizer", bench.proxy.url, bench.server.username,
                           bench.server.password,
                           [tools.PairSpec(f"s{size}", bench.proxied_url(src_ours),
                                           bench.proxied_url(dst_ours))])
    vdir = tools.Vdirsyncer(root / "vdirsyncer", bench.proxied_url(src_vdir),
                            bench.proxied_url(dst_vdir), bench.server.username,
                            bench.server.password, LOOKAHEAD, RETENTION)
    discover = bench.measure("discover", size, VDIR, vdir.discover)
    bench.extra.setdefault("vdirsyncer_discover", {})[size] = asdict(discover)

    def both(scenario: str, name: str, repeats: int = 1) -> None:
        for tool, fn, counts in (
                (PRODUCT, lambda: ours.sync(bench.now, name), tools.Sanitizer.counts),
                (VDIR, lambda: vdir.sync(name), None)):
            runs = [bench.measure(scenario, size, tool, fn, counts) for _ in range(repeats)]
            row = report.median_row(runs)
            bench.rows.append(row)
            log_row(row)

    both("a first sync", "first")
    held = {tool: bench.direct.count(bench.direct_url(slug))
            for tool, slug in ((PRODUCT, dst_ours), (VDIR, dst_vdir))}
    bench.extra.setdefault("target_objects", {})[size] = held
    both("b quiet", "quiet", repeats=bench.args.quiet_repeats)

    spec = cal.specs[cal.editable].moved(30)
    for slug in (src_ours, src_vdir):
        bench.direct.put(bench.direct_url(slug) + cal.editable, calgen.render(spec, bench.now))
    both("c one edit", "edit")

    if size == max(bench.args.sizes):
        probes = probe_requests(bench, src_vdir)
        bench.extra.setdefault("probes", {})[size] = probes
        log(f"size {size}: single requests, ms: " + ", ".join(
            f"{k} {v}" for k, v in probes.items()))

    # d: now moves by `shift` and the placed event enters the lookahead; e: now moves one more
    # minute, which (almost surely) moves no instance across either edge of the window.
    for scenario, name, when in (("d window moved", "moved", bench.now + bench.shift),
                                 ("e moved, no edge", "nudged",
                                  bench.now + bench.shift + timedelta(minutes=1))):
        row = bench.measure(scenario, size, PRODUCT, lambda when=when, name=name:
                            ours.sync(when, name), tools.Sanitizer.counts)
        changed = {k: v for k, v in row.counts.items()
                   if k in ("created", "updated", "deleted") and v}
        if changed:
            row.note = " ".join(f"{k}={v}" for k, v in changed.items())
        bench.rows.append(row)
        log_row(row)


_PROBES: dict[str, tuple[str, str, str]] = {
    # name: (method, Depth, body); {token} and {range} are filled in per calendar
    "PROPFIND depth 0 displayname (floor)": (
        "PROPFIND", "0", '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop>'
        "</D:propfind>"),
    "PROPFIND depth 0 getctag": (
        "PROPFIND", "0", '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
        "<D:prop><CS:getctag/></D:prop></D:propfind>"),
    "sync-collection, valid token, no change": (
        "REPORT", "1", '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"),
    "calendar-query ETags in window (vdirsyncer)": (
        "REPORT", "1", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT">{range}</C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"),
    "calendar-query data in window": (
        "REPORT", "1", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter>"
        '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{range}</C:comp-filter>'
        "</C:comp-filter></C:filter></C:calendar-query>"),
    "PROPFIND depth 1 getetag": (
        "PROPFIND", "1", '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'),
}


def probe_requests(bench: Bench, slug: str, repeats: int = 5) -> dict[str, float]:
    """Server time of single change-detection requests on one calendar, sent directly (median
    of `repeats`, in ms): the floor under any tool's quiet cycle on this server."""
    url = bench.direct_url(slug)
    status, _, body = bench.direct.request("REPORT", url, dav.SYNC_ALL, {"Depth": "1", **dav.XML})
    found = re.search(rb"<(?:\w+:)?sync-token>([^<]+)<", body)
    token = found.group(1).decode() if status == 207 and found else ""
    start, end = bench.now - RETENTION, bench.now + LOOKAHEAD
    window = f'<C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
    out = {}
    for name, (method, depth, template) in _PROBES.items():
        xml = ('<?xml version="1.0" encoding="utf-8"?>'
               + template.replace("{token}", token).replace("{range}", window)).encode()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            code, _, _ = bench.direct.request(method, url, xml, {"Depth": depth, **dav.XML})
            times.append(time.perf_counter() - began)
            if code != 207:
                break
        out[name] = round(statistics.median(times) * 1000, 1) if code == 207 else -code
    return out


@dataclass
class PairsSetup:
    sanitizer: tools.Sanitizer
    calendars: list[calgen.WorkCalendar]  # per pair (variants are shared objects)
    sources: list[str]  # slugs
    targets: list[str]


def build_pairs(bench: Bench, n_pairs: int, events: int, tag: str,
                service_extra: str = "") -> PairsSetup:
    """n_pairs sources of `events` windowed objects: a few generated variants, cloned.
    Targets are made first, as `create-target` makes them at an agency: no cycle creates one."""
    variants = min(8, n_pairs)
    cals = [calgen.windowed_calendar(events, bench.now, seed=10_000 + v, lookahead=LOOKAHEAD,
                                     prefix=f"{tag}v{v}") for v in range(variants)]
    started = time.perf_counter()
    sources, targets, specs = [], [], []
    for i in range(n_pairs):
        src, dst = f"{tag}{i:03d}-src", f"{tag}{i:03d}-dst"
        if i < variants:
            bench.load_source(src, cals[i].render_all(bench.now))
        else:
            bench.clone_source(sources[i % variants], src)
        sources.append(src)
        targets.append(dst)
        bench.direct.mkcalendar(bench.direct_url(dst), dst)
        specs.append(tools.PairSpec(f"{tag}{i:03d}", bench.proxied_url(src),
                                    bench.proxied_url(dst)))
    log(f"agency: {n_pairs} sources of {events} objects loaded in "
        f"{time.perf_counter() - started:.1f}s")
    ours = tools.Sanitizer(bench.work / f"pairs-{tag}", bench.proxy.url, bench.server.username,
                           bench.server.password, specs, service_extra=service_extra)
    return PairsSetup(ours, [cals[i % variants] for i in range(n_pairs)], sources, targets)


class RssSampler(threading.Thread):
    """Samples a process's VmRSS (and reads its VmHWM) from /proc while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss_kib = 0
        self.hwm_kib = 0
        self.samples = 0
        self.max_threads = 0
        self.max_fds = 0
        self.stop_event = threading.Event()

    def _read(self) -> None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                self.max_rss_kib = max(self.max_rss_kib, int(line.split()[1]))
                self.samples += 1
            elif line.startswith("VmHWM:"):
                self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
            elif line.startswith("Threads:"):
                self.max_threads = max(self.max_threads, int(line.split()[1]))
        with contextlib.suppress(OSError):
            self.max_fds = max(self.max_fds, len(os.listdir(f"/proc/{self.pid}/fd")))

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            self._read()

    def stop(self) -> None:
        self._read()
        self.stop_event.set()
        self.join()

    def snapshot(self) -> dict[str, float]:
        """Resources right now: RSS MB, threads, open files."""
        rss = threads = 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = 0
        with contextlib.suppress(OSError):
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        return {"rss_mb": round(rss / 1024, 1), "threads": threads, "fds": fds}

    @property
    def peak_mb(self) -> float:
        return max(self.max_rss_kib, self.hwm_kib) / 1024


_CYCLE_LINE = re.compile(rb"sanitizer\.daemon: cycle (\d+): ")


def cycles_done(log_path: Path) -> int:
    """How many cycles the daemon has logged as finished (`cycle N: ...` at info level)."""
    try:
        found = _CYCLE_LINE.findall(log_path.read_bytes())
    except OSError:
        return 0
    return max((int(n) for n in found), default=0)


def wait_cycles(log_path: Path, count: int, timeout: float,
                proc: subprocess.Popen[bytes]) -> bool:
    """Wait until the daemon has finished `count` cycles in all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cycles_done(log_path) >= count:
            return True
        time.sleep(0.1)
    return False


def latency_interval(args: argparse.Namespace) -> timedelta:
    """The given interval, else the product's default if it is at most 60 s, else 30 s."""
    if args.latency_interval:
        return parse_duration(args.latency_interval)
    default = Service().interval
    return default if default <= timedelta(seconds=60) else timedelta(seconds=30)


def run_agency(bench: Bench) -> None:
    """Many pairs on one server. With `run`: the daemon does the first cycle and the quiet
    cycles while its memory is sampled, then takes the latency edits; a one-shot `sync` quiet
    cycle follows. Without `run`: `sync` does both cycles."""
    args = bench.args
    measured = not args.skip_pairs
    n_pairs = args.pairs if measured else 20  # --skip-pairs: a small agency for latency only
    interval = latency_interval(args)
    seconds = int(interval.total_seconds())
    setup = build_pairs(bench, n_pairs, args.pair_events, "p" if measured else "l",
                        service_extra=f'interval = "{seconds}s"')
    ours = setup.sanitizer
    size = n_pairs * args.pair_events
    has_run = ours.has_command("run") and not args.skip_daemon
    note = f"{n_pairs} pairs"
    if not has_run:
        bench.extra["daemon"] = {"available": False, "note": (
            "skipped (--skip-daemon)" if args.skip_daemon
            else "`calendar-sanitizer run` is not in this build")}
        log(f"agency: no daemon ({bench.extra['daemon']['note']}); cycles with `sync`")
        if measured:
            for scenario, name in (("pairs first", "pairs-first"), ("pairs quiet", "pairs-quiet")):
                row = bench.measure(scenario, size, PRODUCT,
                                    lambda name=name: ours.sync(bench.now, name),
                                    tools.Sanitizer.counts)
                row.note = (row.note + " " + note).strip()
                bench.rows.append(row)
                log_row(row)
        return
    result = daemon_phase(bench, setup, interval, size, note if measured else "")
    bench.extra["daemon"] = result
    if measured:
        row = bench.measure("pairs quiet", size, PRODUCT,
                            lambda: ours.sync(datetime.now(UTC), "pairs-quiet"),
                            tools.Sanitizer.counts)
        row.note = (row.note + " " + note + ", `sync`").strip()
        bench.rows.append(row)
        log_row(row)


def log_row(row: Row) -> None:
    log(f"  {row.scenario:<16} {row.tool:<10} {report.fmt_requests(row.requests):<40} "
        f"server {row.server_s:7.3f}s cpu {row.server_cpu_s:6.2f}s wall {row.wall_s:6.2f}s "
        f"rss {row.rss_mb:4.0f}MB {row.counts if row.counts else ''}"
        f"{'' if row.code == 0 else f' EXIT {row.code} {row.note}'}")


def daemon_phase(bench: Bench, setup: PairsSetup, interval: timedelta, size: int,
                 note: str) -> dict[str, Any]:
    """`calendar-sanitizer run` from an empty state: first cycle, quiet cycles, latency."""
    args = bench.args
    ours = setup.sanitizer
    log_path = ours.root / "daemon.log"
    seconds = int(interval.total_seconds())
    result: dict[str, Any] = {"available": True, "interval_s": seconds,
                              "pairs": len(ours.pairs)}
    bench.proxy.reset_stats()
    cpu0 = bench.server_cpu()
    started = time.perf_counter()
    proc = ours.start_daemon()
    sampler = RssSampler(proc.pid)
    sampler.start()

    def cycle_row(scenario: str, wall: float, cpu_from: float, client_from: float) -> Row:
        stats = bench.proxy.stats()
        return Row(scenario=scenario, size=size, tool=PRODUCT + " run",
                   requests=dict(stats.requests), server_s=stats.total_upstream_seconds,
                   server_by_method={k: round(v, 4) for k, v in stats.upstream_seconds.items()},
                   server_cpu_s=bench.server_cpu() - cpu_from, wall_s=wall,
                   rss_mb=sampler.peak_mb, code=0 if proc.poll() is None else proc.returncode,
                   client_cpu_s=cpu_seconds(proc.pid) - client_from,
                   bytes_in=stats.bytes_in, bytes_out=stats.bytes_out,
                   connections=stats.client_connections, note=note)

    try:
        if not wait_cycles(log_path, 1, timeout=1500, proc=proc):
            result["note"] = f"no cycle logged (exit {proc.poll()})"
            log(f"daemon: no cycle logged; see {log_path}")
            return result
        result["after_cycle"] = {1: sampler.snapshot()}
        first = cycle_row("pairs first", time.perf_counter() - started, cpu0, 0.0)
        first.note = (note + " (wall from start)").strip()
        if note:
            bench.rows.append(first)
        log_row(first)
        result["first_cycle"] = asdict(first)
        # One quiet cycle on its own: what an idle agency costs per cycle.
        bench.proxy.reset_stats()
        cpu1, client1 = bench.server_cpu(), cpu_seconds(proc.pid)
        wait_cycles(log_path, 2, timeout=seconds * 2 + 900, proc=proc)
        quiet_log = log_path.read_bytes().decode(errors="replace").splitlines()
        result["after_cycle"][2] = sampler.snapshot()
        quiet = cycle_row("pairs quiet", cycle_seconds(quiet_log, 2), cpu1, client1)
        if note:
            bench.rows.append(quiet)
        log_row(quiet)
        result["quiet_cycle"] = asdict(quiet)
        if not args.skip_latency:
            result["latency"] = measure_latency(bench, setup, interval, args.edits)
        done = cycles_done(log_path)
        if wait_cycles(log_path, done + 1, timeout=seconds * 2 + 900, proc=proc):
            result["after_cycle"][done + 1] = sampler.snapshot()
    finally:
        sampler.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result["exit_code"] = proc.returncode
        result["cycles_logged"] = cycles_done(log_path)
        result["log"] = summarize_log(log_path)
        result["max_rss_mb"] = round(sampler.max_rss_kib / 1024, 1)
        result["hwm_rss_mb"] = round(sampler.hwm_kib / 1024, 1)
        result["rss_samples"] = sampler.samples
        result["max_threads"] = sampler.max_threads
        result["max_fds"] = sampler.max_fds
        log(f"daemon: RSS max {result['max_rss_mb']} MB (VmHWM {result['hwm_rss_mb']} MB), "
            f"threads max {sampler.max_threads}, open files max {sampler.max_fds}, over "
            f"{result['cycles_logged']} cycles, exit {proc.returncode}; per cycle: "
            f"{result.get('after_cycle')}")
    return result


_PAIR_LINE = re.compile(r"sanitizer\.cycle: pair \S+: (ok|FAILED).*?(?:\[(\w+)\])?$")


def summarize_log(log_path: Path) -> dict[str, Any]:
    """Per cycle, how the pairs ran (`[full]`, `[quiet]`, `[incremental]`, FAILED), and the
    daemon's warnings and errors (its log carries counts, pair names and reason codes only)."""
    cycles: dict[int, dict[str, int]] = {}
    current: dict[str, int] = {}
    problems: dict[str, int] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        match = _PAIR_LINE.search(line)
        if match:
            key = "FAILED" if match.group(1) == "FAILED" else (match.group(2) or "ok")
            current[key] = current.get(key, 0) + 1
        found = _CYCLE_LINE.search(line.encode())
        if found:
            cycles[int(found.group(1))], current = current, {}
        if " WARNING " in line or " ERROR " in line:
            text = re.sub(r"\bpair \S+", "pair *", _STAMP.sub("", line))
            problems[text] = problems.get(text, 0) + 1
    return {"pair_modes_by_cycle": cycles,
            "problems": dict(sorted(problems.items(), key=lambda kv: -kv[1])[:20])}


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}) ")


def cycle_seconds(lines: list[str], number: int) -> float:
    """Duration of daemon cycle `number` from its log: first pair line after the previous
    cycle's summary to its own summary (1 s resolution)."""
    begin = end = None
    previous_done = number == 1
    for line in lines:
        match = _STAMP.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S%z")
        if f"sanitizer.service.daemon: cycle {number - 1}: " in line:
            previous_done = True
        elif previous_done and begin is None and "sanitizer.service.runtime: pair " in line:
            begin = when
        elif f"sanitizer.service.daemon: cycle {number}: " in line:
            end = when
    if begin is None or end is None:
        return 0.0
    return (end - begin).total_seconds()


def measure_latency(bench: Bench, setup: PairsSetup, interval: timedelta,
                    edits: int) -> dict[str, Any]:
    """Edit one source event in each of `edits` pairs at random moments over two intervals;
    for each, the time until the proxy sees the daemon PUT into that pair's target."""
    rng = random.Random(7)
    n = len(setup.sources)
    chosen = [(i * n) // edits for i in range(min(edits, n))]
    span = 2 * interval.total_seconds()
    offsets = sorted(rng.uniform(0, span) for _ in chosen)
    bench.proxy.reset_stats()
    pending: dict[str, float] = {}  # target path -> edit time
    found: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        while not stop.is_set():
            entries = bench.proxy.log_entries()
            now = time.monotonic()
            for entry in entries[seen:]:
                if entry.method != "PUT" or entry.status not in (200, 201, 204):
                    continue
                with lock:
                    for path, t0 in pending.items():
                        if entry.path.startswith(path) and path not in found:
                            found[path] = now - t0
            seen = len(entries)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    begin = time.monotonic()
    log(f"latency: {len(chosen)} edits over {span:.0f}s (interval {interval.total_seconds():.0f}s)")
    for pair_index, offset in zip(chosen, offsets, strict=True):
        delay = begin + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cal = setup.calendars[pair_index]
        spec = cal.specs[cal.editable].moved(15 * (pair_index + 1))
        path = urlsplit(bench.proxied_url(setup.targets[pair_index])).path
        data = calgen.render(spec, bench.now)
        bench.direct.put(bench.direct_url(setup.sources[pair_index]) + cal.editable, data)
        with lock:
            pending[path] = time.monotonic()
    deadline = time.monotonic() + 3 * interval.total_seconds() + 300
    while time.monotonic() < deadline:
        with lock:
            if len(found) == len(pending):
                break
        time.sleep(0.2)
    stop.set()
    watcher.join()
    values = sorted(found.values())
    missing = len(pending) - len(found)
    result: dict[str, Any] = {"edits": len(pending), "seen": len(found), "missing": missing,
                              "interval_s": interval.total_seconds(),
                              "latencies_s": [round(v, 2) for v in values]}
    if values:
        result["median_s"] = round(statistics.median(values), 2)
        result["worst_s"] = round(max(values), 2)
        log(f"latency: median {result['median_s']}s, worst {result['worst_s']}s, "
            f"{missing} not seen")
    else:
        log("latency: no target write seen")
    return result


def environment() -> dict[str, Any]:
    import radicale  # noqa: PLC0415

    from sanitizer import __version__  # noqa: PLC0415

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "radicale": radicale.VERSION,
            "sanitizer": __version__, "vdirsyncer": tools.vdirsyncer_version(),
            "machine": platform.machine()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    total_started = time.perf_counter()
    vdir_version = tools.ensure_vdirsyncer()
    log(f"{vdir_version}; sizes {args.sizes}; pairs "
        f"{'skipped' if args.skip_pairs else args.pairs}; load average "
        f"{os.getloadavg()[0]:.2f}")
    now = datetime.now(UTC).replace(microsecond=0)
    work = Path(tempfile.mkdtemp(prefix="csan-bench-", dir=args.work_dir))
    results: dict[str, Any] = {"started": now.isoformat(), "args": vars(args),
                               "load_average_start": os.getloadavg()}
    try:
        with EmbeddedRadicale(store_dir=work / "radicale") as server, \
                FaultProxy(server.url, fault_rate=0.0, log=True) as proxy:
            bench = Bench(args, server, proxy, dav.Dav(server.url, server.username,
                                                       server.password),
                          work, now, parse_duration(args.shift))
            try:
                for size in args.sizes:
                    run_size(bench, size)
                if not (args.skip_pairs and args.skip_latency):
                    run_agency(bench)
            finally:
                bench.direct.close()
                results.update(rows=[asdict(r) for r in bench.rows], **bench.extra)
                results["load_average_end"] = os.getloadavg()
                results["environment"] = environment()
                results["total_s"] = round(time.perf_counter() - total_started, 1)
                publish(results, Path(args.out), now)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            log("removing the work directory")
            shutil.rmtree(work, ignore_errors=True)
    return 0


def publish(results: dict[str, Any], out_dir: Path, now: datetime) -> None:
    """Print the summary and write the JSON and Markdown files (also after a failure)."""
    rows = [Row(**r) for r in results.get("rows", [])]
    text = render_summary(results, rows)
    print()
    print(text)
    out = out_dir / f"bench-{now:%Y%m%dT%H%M%SZ}.json"
    report.write_json(out, results)
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    print(f"\nresults: {out}", flush=True)


def render_summary(results: dict[str, Any], rows: list[Row]) -> str:
    env = results["environment"]
    parts = [f"calendar-sanitizer {env['sanitizer']} vs {env['vdirsyncer']}, Radicale "
             f"{env['radicale']}, Python {env['python']}, {env['cpus']} CPUs; "
             f"started {results['started']}; took {results['total_s']} s; load average "
             f"{results['load_average_start'][0]:.1f} at start, "
             f"{results['load_average_end'][0]:.1f} at end", "",
             report.table(rows)]
    lines = []
    held = results.get("target_objects", {})
    for size, counts in held.items():
        lines.append(f"size {size}: target objects after first sync: " + ", ".join(
            f"{k} {v}" for k, v in counts.items()))
    for size, probes in results.get("probes", {}).items():
        lines.append(f"size {size}, one request straight to Radicale (median ms): " + "; ".join(
            f"{k} {v}" for k, v in probes.items()))
    upload = results.get("upload")
    if upload:
        lines.append(f"loading {upload['objects']} objects: PUT {upload['put_per_s']}/s, "
                     f"store files + warm-up {upload['fs_per_s']}/s")
    daemon = results.get("daemon")
    if daemon:
        if not daemon.get("available"):
            lines.append(f"daemon: not measured: {daemon.get('note')}")
        else:
            text = (f"daemon (`run`, {daemon['pairs']} pairs, interval {daemon['interval_s']}s): "
                    f"RSS max {daemon.get('max_rss_mb')} MB, VmHWM {daemon.get('hwm_rss_mb')} MB, "
                    f"threads max {daemon.get('max_threads')}, open files max "
                    f"{daemon.get('max_fds')}, over {daemon.get('cycles_logged')} cycles")
            for key, label in (("first_cycle", "first cycle"), ("quiet_cycle", "quiet cycle")):
                cycle = daemon.get(key)
                if cycle:
                    text += (f"; {label}: {report.fmt_requests(cycle['requests'])}, server "
                             f"{cycle['server_s']:.2f} s, wall {cycle['wall_s']:.0f} s")
            lines.append(text)
            modes = daemon.get("log", {}).get("pair_modes_by_cycle", {})
            for cycle, res in daemon.get("after_cycle", {}).items():
                how = modes.get(cycle) or modes.get(str(cycle)) or {}
                lines.append(f"  after cycle {cycle}: RSS {res['rss_mb']} MB, "
                             f"{res['threads']} threads, {res['fds']} open files; pairs "
                             + (", ".join(f"{k} {v}" for k, v in sorted(how.items())) or "?"))
            for text, count in daemon.get("log", {}).get("problems", {}).items():
                lines.append(f"  daemon log, {count}x: {text}")
            lat = daemon.get("latency")
            if lat and lat.get("seen"):
                lines.append(f"latency source write -> target write over {lat['edits']} edits: "
                             f"median {lat['median_s']} s, worst {lat['worst_s']} s "
                             f"({lat['missing']} not seen)")
            elif lat:
                lines.append(f"latency: no target write seen for {lat['edits']} edits")
    return "\n".join(parts + (["", *lines] if lines else []))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(
        "calendar-sanitizer vs vdirsyncer on one local Radicale behind a counting proxy"))
    parser.add_argument("--sizes", default="100,1000,5000",
                        help="source calendar sizes, comma-separated (default 100,1000,5000)")
    parser.add_argument("--pairs", type=int, default=200, help="pairs in the agency run")
    parser.add_argument("--pair-events", type=int, default=100,
                        help="windowed objects per pair source")
    parser.add_argument("--skip-pairs", action="store_true", help="skip the agency run")
    parser.add_argument("--skip-latency", action="store_true", help="skip the latency run")
    parser.add_argument("--skip-daemon", action="store_true",
                        help="agency cycles with `sync` only (no `run`, so no latency)")
    parser.add_argument("--edits", type=int, default=20, help="edits in the latency run")
    parser.add_argument("--latency-interval", default=None,
                        help="daemon interval for the latency run (default: the product's "
                             "default if <= 60s, else 30s)")
    parser.add_argument("--quiet-repeats", type=int, default=3,
                        help="quiet cycles per tool and size (median reported)")
    parser.add_argument("--shift", default="3h", help="how far now moves in scenario d")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--work-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                        help="where Radicale's store and the tools' state go "
                             "(default /dev/shm: removing 100k files from disk takes minutes)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes: expected numbers like 100,1000")
    if any(s < 2 for s in args.sizes):
        parser.error("--sizes: each size must be at least 2")
    return args
