"""`calendar-sanitizer sync` and `preview`: one cycle over all pairs (or one), written, or shown
as exactly what each phone calendar will hold (labels and times, never event text). Each pair's
cycle runs in a worker process, bounded like the daemon's (service/supervise.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from sanitizer.cli import common
from sanitizer.cli.common import PROG, UsageError
from sanitizer.core.model import SanitizedEvent, Status, Transparency
from sanitizer.engine.report import PairReport
from sanitizer.errors import ExitCode
from sanitizer.service import lock
from sanitizer.service.runtime import Runtime, open_runtime
from sanitizer.service.supervise import run_all


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `sync` and `preview`."""
    for name, help_text in (("sync", "run one cycle over all pairs (or one)"),
                            ("preview", "print what each phone calendar will hold")):
        sub = common.add_command(commands, parent, name, help_text, help_text)
        sub.add_argument("--pair", metavar="NAME", help="only this pair")
        sub.add_argument("--now", metavar="ISO8601",
                         help="run as of this time (naive times are in service.timezone)")
        if name == "sync":
            sub.add_argument("--dry-run", action="store_true",
                             help="read both sides and print the plan's counts; write nothing")
            sub.add_argument("--full", action="store_true",
                             help="reconcile fully now (read the whole window and the whole "
                                  "phone calendar) instead of asking what changed")


def parse_now(text: str | None, zone: tzinfo) -> datetime:
    """--now, or the clock; naive times are in the service's zone."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError("--now: expected an ISO 8601 time like 2030-03-04T09:00") from None
    return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)


def cmd_sync(args: argparse.Namespace) -> int:
    """One cycle; exit 0 if every pair succeeded, 1 if any failed."""
    config = common.load(args)
    pairs = common.pairs(config, args.pair)
    now = parse_now(args.now, config.service.timezone)
    instance = None if args.dry_run else lock.acquire(config.service.state_dir)
    try:
        runtime = open_runtime(config, pairs, dry_run=args.dry_run, connect=False)
        _say_if_throwaway(runtime)
        results = run_all(runtime, pairs, now, dry_run=args.dry_run, force_full=args.full,
                          what_if=args.now is not None)
    finally:
        if instance is not None:
            instance.release()
    for report in results.reports:
        common.say(report.status_line())
    for retired in results.retired:
        common.say(retired.status_line())
    if not all(r.ok for r in results.retired) and all(r.ok for r in results.reports):
        return int(ExitCode.FAILED)
    return sync_exit_code(results.reports)


def _say_if_throwaway(runtime: Runtime) -> None:
    """A dry run without a UID key made none: say that its UIDs and counts are provisional."""
    if runtime.throwaway_key:
        sys.stderr.write(f"{PROG}: no UID key yet; this dry run uses a throwaway key and creates "
                         "none (the first real sync makes it)\n")


REASON_EXIT = {
    "auth-rejected": ExitCode.NOPERM, "forbidden": ExitCode.NOPERM,
    "password-rejected": ExitCode.NOPERM, "access-token-refused": ExitCode.NOPERM,
    "tls-verification-failed": ExitCode.UNAVAILABLE, "connection-failed": ExitCode.UNAVAILABLE,
    "timeout": ExitCode.UNAVAILABLE, "authority-unreachable": ExitCode.UNAVAILABLE,
    "password-missing": ExitCode.CONFIG, "target-missing": ExitCode.CONFIG,
}
"""Reasons that, when every pair failed for them, name the whole run's exit code."""


def sync_exit_code(reports: Sequence[PairReport]) -> int:
    """0 if all pairs succeeded; if every pair failed for one kind of reason, that reason's code
    (77 auth, 69 unreachable or TLS, 78 config); else 1 (some failed, the others ran)."""
    if all(r.ok for r in reports):
        return int(ExitCode.OK)
    codes = {REASON_EXIT.get(r.error_code or "") for r in reports}
    if len(codes) == 1 and None not in codes:
        return int(codes.pop() or ExitCode.FAILED)
    return int(ExitCode.FAILED)


def cmd_preview(args: argparse.Namespace) -> int:
    """What each phone calendar will hold: date, time, title, location label. Writes nothing."""
    config = common.load(args)
    pairs = common.pairs(config, args.pair)
    now = parse_now(args.now, config.service.timezone)
    runtime = open_runtime(config, pairs, dry_run=True, connect=False)
    _say_if_throwaway(runtime)
    reports = run_all(runtime, pairs, now, dry_run=True).reports
    for report in reports:
        common.say(render_preview(report, config.service.timezone))
    return int(ExitCode.OK if all(r.error is None for r in reports) else ExitCode.FAILED)


def render_preview(report: PairReport, zone: tzinfo) -> str:
    """The phone calendar's entries, one line each, in the agency's time zone."""
    if report.error is not None:
        return f"== {report.pair}: FAILED {report.error}"
    lines = [f"== {report.pair}: {len(report.desired)} entries"]
    lines += [f"  {format_entry(event, zone)}" for event in report.desired]
    return "\n".join(lines)


def format_entry(event: SanitizedEvent, zone: tzinfo) -> str:
    """`Mon 2030-03-04 10:00-11:00  Title  @ Location (tentative, free)`."""
    if isinstance(event.start, datetime) and isinstance(event.end, datetime):
        start, end = event.start.astimezone(zone), event.end.astimezone(zone)
        when = f"{start:%a %Y-%m-%d %H:%M}-{end:%H:%M}"
        if end.date() != start.date():
            when = f"{start:%a %Y-%m-%d %H:%M}-{end:%a %Y-%m-%d %H:%M}"
    else:
        days = (_as_date(event.end) - _as_date(event.start)).days
        when = f"{event.start:%a %Y-%m-%d} all day" + (f" ({days} days)" if days > 1 else "")
    text = f"{when:<28} {event.title.text}"
    if event.location is not None:
        text += f"  @ {event.location.text}"
    flags = [name for flag, name in ((event.status is Status.TENTATIVE, "tentative"),
             (event.transparency is Transparency.TRANSPARENT, "free")) if flag]
    return text + (f" ({', '.join(flags)})" if flags else "")


def _as_date(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value
