"""The benchmark: one Radicale, one counting proxy, both tools, every scenario, one report."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import agency, calgen, dav, probes, report, tools
from bench.base import LOOKAHEAD, REPO, RETENTION, Bench, log, log_row
from bench.report import PRODUCT, VDIR, Row
from demo.embedded_server import EmbeddedRadicale
from sanitizer.core.durations import parse_duration
from tests.support.faultproxy import FaultProxy


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
        found = probes.probe_requests(bench, src_vdir)
        bench.extra.setdefault("probes", {})[size] = found
        log(f"size {size}: single requests, ms: " + ", ".join(
            f"{k} {v}" for k, v in found.items()))

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


def environment() -> dict[str, Any]:
    import radicale  # noqa: PLC0415

    from sanitizer import __version__  # noqa: PLC0415

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "radicale": radicale.VERSION,
            "sanitizer": __version__, "vdirsyncer": tools.vdirsyncer_version(),
            "machine": platform.machine()}


def main(argv: list[str] | None = None) -> int:
    """Every part in turn; exit 1 if any part could not be measured (a broken bench fails)."""
    args = parse_args(argv)
    total_started = time.perf_counter()
    vdir_version = tools.ensure_vdirsyncer()
    log(f"{vdir_version}; sizes {args.sizes}; agencies "
        f"{', '.join(f'{p}x{e}' for p, e in args.agencies) or 'none'}; load average "
        f"{os.getloadavg()[0]:.2f}")
    now = datetime.now(UTC).replace(microsecond=0)
    work = Path(tempfile.mkdtemp(prefix="csan-bench-", dir=args.work_dir))
    results: dict[str, Any] = {"started": now.isoformat(), "args": vars(args),
                               "load_average_start": os.getloadavg()}
    failures: list[str] = []
    try:
        with EmbeddedRadicale(store_dir=work / "radicale") as server, \
                FaultProxy(server.url, fault_rate=0.0, log=True) as proxy:
            bench = Bench(args, server, proxy, dav.Dav(server.url, server.username,
                                                       server.password),
                          work, now, parse_duration(args.shift))
            try:
                run_all(bench)
            finally:
                bench.direct.close()
                failures = bench.failures + [
                    f"{r.scenario} {r.size} {r.tool}: exit {r.code}" for r in bench.rows
                    if r.code != 0]
                results.update(rows=[asdict(r) for r in bench.rows], failures=failures,
                               **bench.extra)
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
    return 1 if failures else 0


def run_all(bench: Bench) -> None:
    """Sizes (both tools), the per-server probes, then each agency (the daemon)."""
    args = bench.args
    for size in args.sizes:
        run_size(bench, size)
    if args.probe_sizes:
        bench.extra["server_probes"] = probes.compare_servers(bench, args.probe_sizes,
                                                              args.probe_repeats)
    for n_pairs, events in args.agencies:
        bench.extra.setdefault("agencies", []).append(
            agency.run_agency(bench, n_pairs, events))


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
    for size, found in results.get("probes", {}).items():
        lines.append(f"size {size}, one request straight to Radicale (median ms): " + "; ".join(
            f"{k} {v}" for k, v in found.items()))
    upload = results.get("upload")
    if upload:
        lines.append(f"loading {upload['objects']} objects: PUT {upload['put_per_s']}/s, "
                     f"store files + warm-up {upload['fs_per_s']}/s")
    for server, by_size in results.get("server_probes", {}).items():
        for size, probe in by_size.items():
            lines.append(
                f"{server}, {size} objects, quiet-cycle probe (median ms): getctag "
                f"{probe['getctag_ms']}, sync-collection {probe['sync_collection_ms']}; ctag "
                f"{'reliable' if probe['ctag_reliable'] else 'NOT reliable'}")
    for daemon in results.get("agencies", []):
        lines += agency_lines(daemon)
    lines += [f"NOT MEASURED: {failure}" for failure in results.get("failures", [])]
    return "\n".join(parts + (["", *lines] if lines else []))


def agency_lines(daemon: dict[str, Any]) -> list[str]:
    """The daemon's figures for one agency, as summary lines."""
    head = f"agency {daemon['pairs']} pairs x {daemon.get('events')} events"
    if not daemon.get("available"):
        return [f"{head}: daemon not measured: {daemon.get('note')}"]
    peak = daemon.get("tree_peak", {})
    lines = [f"{head} (`run`, interval {daemon['interval_s']} s): whole process tree peak PSS "
             f"{peak.get('pss_mb')} MiB (each page once, as the cgroup counts), summed RSS "
             f"{peak.get('rss_mb')} MiB, threads max {peak.get('threads')}, processes max "
             f"{peak.get('processes')}, open files max {peak.get('fds')}, "
             f"{daemon.get('cycles_seen')} cycles seen; load average "
             f"{daemon.get('load_average_before')} before, {daemon.get('load_average_after')} "
             "after"]
    for key, label in (("first_cycle", "first cycle"), ("quiet_cycle", "quiet sweep")):
        cycle = daemon.get(key)
        if cycle:
            lines.append(f"  {label}: wall {cycle['wall_s']:.1f} s, daemon CPU "
                         f"{cycle['client_cpu_s']:.1f} s, server CPU {cycle['server_cpu_s']:.1f} s,"
                         f" {report.fmt_requests(cycle['requests'])}")
    if daemon.get("catch_up_s") is not None:
        lines.append(f"  catch-up after the first cycle (sweeps that overlapped it): "
                     f"{daemon['catch_up_s']} s; the quiet sweep is the next one, on its own")
    per_pair = daemon.get("quiet_per_pair_ms")
    if per_pair:
        lines.append(f"  quiet sweep per pair: wall {per_pair['wall']} ms, daemon CPU "
                     f"{per_pair['daemon_cpu']} ms, server CPU {per_pair['server_cpu']} ms")
    if daemon.get("note"):
        lines.append(f"  {daemon['note']}; progress (s, pairs done): "
                     f"{daemon.get('first_cycle_progress')}")
    for cycle, res in daemon.get("after_cycle", {}).items():
        lines.append(f"  after cycle {cycle}: tree PSS {res.get('pss_mb')} MiB, RSS "
                     f"{res['rss_mb']} MiB, {res['threads']} "
                     f"threads, {res['processes']} processes, {res['fds']} open files")
    for text, count in daemon.get("log_problems", {}).items():
        lines.append(f"  daemon log, {count}x: {text}")
    lat = daemon.get("latency")
    if lat and lat.get("seen"):
        lines.append(f"  latency source write -> target write over {lat['edits']} edits: "
                     f"median {lat['median_s']} s, worst {lat['worst_s']} s "
                     f"({lat['missing']} not seen)")
    elif lat:
        lines.append(f"  latency: no target write seen for {lat['edits']} edits")
    return lines


def _numbers(parser: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    try:
        return sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        parser.error(f"{option}: expected numbers like 100,1000")
    return []


def _agencies(parser: argparse.ArgumentParser, text: str) -> list[tuple[int, int]]:
    try:
        found = [tuple(int(n) for n in item.lower().split("x")) for item in text.split(",")
                 if item.strip()]
    except ValueError:
        found = []
    if not found or any(len(a) != 2 or min(a) < 1 for a in found):
        parser.error("--agencies: expected PAIRSxEVENTS items like 200x100,1000x20")
    return [(a[0], a[1]) for a in found]


SMOKE = {"sizes": [20], "agencies": [(3, 5)], "quiet_repeats": 1, "edits": 2,
         "latency_interval": "5s", "probe_sizes": [10], "probe_repeats": 3,
         "first_cycle_timeout": 120.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(
        "calendar-sanitizer vs vdirsyncer on one local Radicale behind a counting proxy"))
    parser.add_argument("--sizes", default="100,1000,5000",
                        help="source calendar sizes, comma-separated (default 100,1000,5000)")
    parser.add_argument("--agencies", default="100x20,200x100,1000x20",
                        help="daemon runs, PAIRSxEVENTS, comma-separated "
                             "(default 100x20,200x100,1000x20)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="one agency of this many pairs instead of --agencies")
    parser.add_argument("--pair-events", type=int, default=None,
                        help="windowed objects per pair source (with --pairs; default 100)")
    parser.add_argument("--skip-pairs", action="store_true", help="no agency (daemon) run")
    parser.add_argument("--first-cycle-timeout", type=float, default=1500.0,
                        help="seconds to wait for the daemon's first cycle (default 1500)")
    parser.add_argument("--probe-sizes", default="100,1000",
                        help="calendar sizes for the per-server probe comparison (default "
                             "100,1000; empty: none)")
    parser.add_argument("--probe-repeats", type=int, default=5,
                        help="requests per probe (median reported)")
    parser.add_argument("--smoke", action="store_true",
                        help="a small run of every part (under a minute): a broken bench fails")
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
    args.sizes = _numbers(parser, "--sizes", args.sizes)
    args.probe_sizes = _numbers(parser, "--probe-sizes", args.probe_sizes)
    args.agencies = _agencies(parser, args.agencies)
    if args.pairs is not None or args.pair_events is not None:
        args.agencies = [(args.pairs or 200, args.pair_events or 100)]
    if args.skip_pairs:
        args.agencies = []
    if args.smoke:
        vars(args).update(SMOKE)
    if any(s < 2 for s in args.sizes):
        parser.error("--sizes: each size must be at least 2")
    return args
