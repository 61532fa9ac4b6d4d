"""Many pairs on one server: the daemon's first cycle, a quiet sweep, latency, memory.

The daemon is watched through `status --json` (cycle completion) and /proc (the whole process
tree's memory, threads and open files); its log is read only to count warnings and errors.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import calgen, tools
from bench.base import LOOKAHEAD, Bench, cpu_seconds, log, log_row
from bench.report import PRODUCT, Row
from bench.watch import CycleWatch, TreeSampler, process_tree, tree_snapshot
from sanitizer.core.durations import parse_duration
from sanitizer.service.config import Service


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


def latency_interval(args: argparse.Namespace) -> timedelta:
    """The given interval, else the product's default if it is at most 60 s, else 30 s."""
    if args.latency_interval:
        return parse_duration(args.latency_interval)
    default = Service().interval
    return default if default <= timedelta(seconds=60) else timedelta(seconds=30)


def tree_cpu(pid: int) -> float:
    """CPU seconds of the daemon and every live process below it."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


def run_agency(bench: Bench, n_pairs: int, events: int) -> dict[str, Any]:
    """One agency: the daemon's first cycle, a quiet sweep, the latency edits, another cycle;
    then a one-shot `sync` quiet cycle. Without `run` (or --skip-daemon): `sync` only."""
    args = bench.args
    interval = latency_interval(args)
    seconds = int(interval.total_seconds())
    tag = f"a{n_pairs}x{events}-"
    setup = build_pairs(bench, n_pairs, events, tag,
                        service_extra=f'interval = "{seconds}s"')
    ours = setup.sanitizer
    size = n_pairs * events
    note = f"{n_pairs} pairs x {events}"
    if args.skip_daemon or not ours.has_command("run"):
        result: dict[str, Any] = {"available": False, "pairs": n_pairs, "events": events,
                                  "note": "skipped (--skip-daemon)" if args.skip_daemon
                                  else "`calendar-sanitizer run` is not in this build"}
        log(f"agency {note}: no daemon ({result['note']}); cycles with `sync`")
        for scenario, name in (("pairs first", "pairs-first"), ("pairs quiet", "pairs-quiet")):
            row = bench.measure(scenario, size, PRODUCT,
                                lambda name=name: ours.sync(bench.now, name),
                                tools.Sanitizer.counts)
            row.note = (row.note + " " + note).strip()
            bench.rows.append(row)
            log_row(row)
        return result
    result = daemon_phase(bench, setup, interval, size, note)
    result["events"] = events
    if "first_cycle" not in result:  # a one-shot run would do the rest of the first cycle
        return result
    row = bench.measure("pairs quiet", size, PRODUCT,
                        lambda: ours.sync(datetime.now(UTC), "pairs-quiet"),
                        tools.Sanitizer.counts)
    row.note = (row.note + " " + note + ", `sync`").strip()
    bench.rows.append(row)
    log_row(row)
    return result


@dataclass
class DaemonRun:
    """One daemon process under observation."""

    bench: Bench
    proc: subprocess.Popen[bytes]
    sampler: TreeSampler
    watch: CycleWatch
    size: int
    note: str

    def alive(self) -> bool:
        return self.proc.poll() is None

    def row(self, scenario: str, wall: float, cpu_from: float, client_from: float) -> Row:
        stats = self.bench.proxy.stats()
        return Row(scenario=scenario, size=self.size, tool=PRODUCT + " run",
                   requests=dict(stats.requests), server_s=stats.total_upstream_seconds,
                   server_by_method={k: round(v, 4) for k, v in stats.upstream_seconds.items()},
                   server_cpu_s=self.bench.server_cpu() - cpu_from, wall_s=wall,
                   rss_mb=self.sampler.peak_mb,
                   code=0 if self.alive() else self.proc.returncode or 0,
                   client_cpu_s=tree_cpu(self.proc.pid) - client_from,
                   bytes_in=stats.bytes_in, bytes_out=stats.bytes_out,
                   connections=stats.client_connections, note=self.note)

    def first_cycle(self, timeout: float, n_pairs: int) -> tuple[bool, list[tuple[float, int]]]:
        """Wait for cycle 1, noting every 30 s how many pairs it has done."""
        started = time.monotonic()
        progress: list[tuple[float, int]] = []
        while time.monotonic() - started < timeout and self.alive():
            if self.watch.wait(1, min(30.0, timeout - (time.monotonic() - started)),
                               self.alive):
                return True, progress
            done = self.watch.progress[1] if self.watch.progress[0] else 0
            progress.append((round(time.monotonic() - started), done))
            log(f"daemon: first cycle, {done} of {n_pairs} pairs after "
                f"{progress[-1][0]} s")
        return False, progress


def daemon_phase(bench: Bench, setup: PairsSetup, interval: timedelta, size: int,
                 note: str) -> dict[str, Any]:
    """`calendar-sanitizer run` from an empty state: first cycle, quiet sweep, latency."""
    args = bench.args
    ours = setup.sanitizer
    n_pairs = len(ours.pairs)
    result: dict[str, Any] = {"available": True, "interval_s": int(interval.total_seconds()),
                              "pairs": n_pairs, "load_average_before": _load()}
    bench.proxy.reset_stats()
    cpu0 = bench.server_cpu()
    started = time.time()
    proc = ours.start_daemon()
    run = DaemonRun(bench, proc, TreeSampler(proc.pid), CycleWatch(ours.config), size, note)
    run.sampler.start()
    try:
        finished, result["first_cycle_progress"] = run.first_cycle(args.first_cycle_timeout,
                                                                   n_pairs)
        if not finished:
            done = run.watch.progress[1] if run.watch.progress[0] else 0
            result["note"] = (f"first cycle not finished after {args.first_cycle_timeout:.0f} s:"
                              f" {done} of {n_pairs} pairs done (exit {proc.poll()})")
            bench.failures.append(f"agency {note}: {result['note']}")
            log(f"daemon: {result['note']}")
            return result
        cycle = run.watch.cycles[0]
        result["after_cycle"] = {1: tree_snapshot(proc.pid)}
        first = run.row("pairs first", cycle.seen_done - started, cpu0, 0.0)
        first.note = f"{note} (wall from start; {cycle.failed} failed)"
        bench.rows.append(first)
        log_row(first)
        result["first_cycle"] = asdict(first)
        # A first cycle longer than the interval leaves sweeps that overlap (each tick queues
        # the pairs done so far again): the second refresh of every pair is a catch-up. The
        # third comes from a tick of its own once the backlog is gone: one quiet sweep on its
        # own, what an idle agency costs per cycle (its requests show whether it overlapped).
        timeout = interval.total_seconds() * 2 + args.first_cycle_timeout
        if not run.watch.wait(2, timeout=timeout, alive=run.alive):
            bench.failures.append(f"agency {note}: no second cycle")
            return result
        result["after_cycle"][2] = tree_snapshot(proc.pid)
        result["catch_up_s"] = round(run.watch.cycles[1].seconds, 1)
        bench.proxy.reset_stats()
        cpu1, client1 = bench.server_cpu(), tree_cpu(proc.pid)
        if not run.watch.wait(3, timeout=timeout, alive=run.alive):
            bench.failures.append(f"agency {note}: no third cycle")
            return result
        cycle = run.watch.cycles[2]
        result["after_cycle"][3] = tree_snapshot(proc.pid)
        quiet = run.row("pairs quiet", cycle.seconds, cpu1, client1)
        quiet.note = f"{note} ({cycle.failed} failed)"
        bench.rows.append(quiet)
        log_row(quiet)
        result["quiet_cycle"] = asdict(quiet)
        result["quiet_per_pair_ms"] = {
            "wall": round(quiet.wall_s / n_pairs * 1000, 2),
            "daemon_cpu": round(quiet.client_cpu_s / n_pairs * 1000, 2),
            "server_cpu": round(quiet.server_cpu_s / n_pairs * 1000, 2)}
        if not args.skip_latency:
            result["latency"] = measure_latency(bench, setup, interval, args.edits)
            if result["latency"].get("missing"):
                bench.failures.append(f"agency {note}: {result['latency']['missing']} edits "
                                      "never reached the target")
        done = run.watch.poll()
        if run.watch.wait(done + 1, timeout=interval.total_seconds() * 2 + 900,
                          alive=run.alive):
            result["after_cycle"][done + 1] = tree_snapshot(proc.pid)
    finally:
        _stop(proc)
        run.sampler.stop()
        result["exit_code"] = proc.returncode
        result["cycles_seen"] = len(run.watch.cycles)
        result["log_problems"] = log_problems(ours.root / "daemon.log")
        result["tree_peak"] = run.sampler.peak
        result["rss_samples"] = run.sampler.samples
        result["load_average_after"] = _load()
        log(f"daemon: tree peak {run.sampler.peak}, over {len(run.watch.cycles)} cycles, "
            f"exit {proc.returncode}; per cycle: {result.get('after_cycle')}")
    return result


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_STAMP = re.compile(r"^\S+ ")


def log_problems(log_path: Path) -> dict[str, int]:
    """The daemon's warnings and errors, counted (its log carries counts, pair names and reason
    codes only); pair names folded so that one problem of many pairs is one line."""
    problems: dict[str, int] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        if " WARNING " in line or " ERROR " in line:
            text = re.sub(r"\bpairs? \S+", "pair *", _STAMP.sub("", line))
            problems[text] = problems.get(text, 0) + 1
    return dict(sorted(problems.items(), key=lambda kv: -kv[1])[:20])


def measure_latency(bench: Bench, setup: PairsSetup, interval: timedelta,
                    edits: int) -> dict[str, Any]:
    """Edit one source event in each of `edits` pairs at random moments over two intervals;
    for each, the time until the proxy sees the daemon write (PUT or DELETE) into that pair's
    target. The k-th edit moves its appointment by 15 (k + 1) minutes, so that it stays in
    the window whatever the number of pairs."""
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
                if entry.method not in ("PUT", "DELETE") or entry.status not in (200, 201, 204):
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
    for ordinal, (pair_index, offset) in enumerate(zip(chosen, offsets, strict=True)):
        delay = begin + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cal = setup.calendars[pair_index]
        spec = cal.specs[cal.editable].moved(15 * (ordinal + 1))
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
