"""The command line: each command a few lines over the library.

This is the one place that turns errors into messages and exit codes (see errors.ExitCode). No
command prints event text: `preview` prints exactly what the phone gets, which is labels and times.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any, NoReturn

from sanitizer import __version__
from sanitizer.cli import check, common, discover, phone_setup, policy_text, run, status, wipe
from sanitizer.cli.common import UsageError
from sanitizer.core.model import SanitizedEvent, Status, Transparency
from sanitizer.engine.reconcile import PairReport
from sanitizer.errors import ConfigError, ExitCode, SanitizerError, SecretError
from sanitizer.service import credentials, lock
from sanitizer.service.hardening import forbid_core_dumps
from sanitizer.service.logs import LEVELS, setup
from sanitizer.service.runtime import Runtime, open_runtime, run_cycle, run_locked

PROG = "calendar-sanitizer"
log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 64 (sysexits) with one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """All commands and options."""
    shared = _Parser(add_help=False)
    shared.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $CALENDAR_SANITIZER_CONFIG, "
                             "else /etc/calendar-sanitizer/config.toml)")
    shared.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS,
                        help="log verbosity (default: warning; info for run)")
    parser = _Parser(prog=PROG, parents=[shared], description=(
        "Keep a non-identifying copy of work calendars on phone calendars."))
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name, help_text in (("sync", "run one cycle over all pairs (or one)"),
                            ("preview", "print what each phone calendar will hold")):
        sub = common.add_command(commands, shared, name, help_text, help_text)
        sub.add_argument("--pair", metavar="NAME", help="only this pair")
        sub.add_argument("--now", metavar="ISO8601",
                         help="run as of this time (naive times are in service.timezone)")
        if name == "sync":
            sub.add_argument("--dry-run", action="store_true",
                             help="read both sides and print the plan's counts; write nothing")
            sub.add_argument("--full", action="store_true",
                             help="reconcile fully now (read the whole window and the whole "
                                  "phone calendar) instead of asking what changed")
    demo = common.add_command(commands, shared, "demo",
                              "run against an embedded Radicale with sample data",
                              "Start a local Radicale with fake appointments and "
                              "sync them every few seconds until Ctrl-C.")
    demo.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    demo.add_argument("--cycles", type=int, default=0,
                      help="stop after this many cycles (default: run until Ctrl-C)")
    setpw = common.add_command(commands, shared, "set-password",
                               "store an account's password in the keyring",
                               "Store an account's password in the keyring.")
    setpw.add_argument("account", help="the account name from [accounts.NAME]")
    setpw.add_argument("--stdin", action="store_true",
                       help="read the password from standard input instead of a prompt")
    run.add_parser(commands, shared)
    check.add_parser(commands, shared)
    status.add_parser(commands, shared)
    wipe.add_parser(commands, shared)  # and resume
    discover.add_parser(commands, shared)
    policy_text.add_parser(commands, shared)
    phone_setup.add_parser(commands, shared)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn every error into one line and an exit code."""
    forbid_core_dumps()  # before any password, key or event is in memory
    _give_closed_streams_a_sink()
    try:
        args = build_parser().parse_args(argv)
        setup(getattr(args, "log_level", "warning"))
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{PROG}: config error: {problem}", file=sys.stderr)
        return int(exc.exit_code)
    except SanitizerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (EOFError, BrokenPipeError) as exc:
        return _stream_ended(exc)
    except Exception as exc:  # noqa: BLE001 - the message may quote data; the type may not
        print(f"{PROG}: internal error ({type(exc).__name__}); please report it", file=sys.stderr)
        return 70


def _stream_ended(exc: EOFError | BrokenPipeError) -> int:
    """Input ended before an answer (64), or the reader of our output went away (0)."""
    if isinstance(exc, EOFError):
        print(f"{PROG}: standard input ended before an answer; nothing changed", file=sys.stderr)
        return int(ExitCode.USAGE)
    _drop_further_output()  # the reader (`| head -1`) has what it wanted
    return 0


class _ClosedPipeSafe:
    """stdout that drops what a reader who went away (`| head -1`) no longer wants, so the
    command finishes its work and returns its own exit code."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return int(self._inner.write(text))
        except BrokenPipeError:
            _drop_further_output()
            return len(text)

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            _drop_further_output()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _drop_further_output() -> None:
    """Point stdout at /dev/null, so neither later writes nor the flush at exit fail."""
    try:
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(sink)
    except OSError:
        pass


def _give_closed_streams_a_sink() -> None:
    """Started with stdin or stdout closed (`<&-`, `>&-`): read EOF, write nowhere."""
    if sys.stdin is None:
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - for the process's life
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    elif sys.stdout is sys.__stdout__ and not isinstance(sys.stdout, _ClosedPipeSafe):
        sys.stdout = _ClosedPipeSafe(sys.stdout)


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
        runtime = open_runtime(config, pairs, dry_run=args.dry_run)
    except BaseException:
        if instance is not None:
            instance.release()
        raise
    _say_if_throwaway(runtime)
    try:
        if args.dry_run:
            reports = run_cycle(runtime, pairs, now, dry_run=True)
        else:
            reports = run_locked(runtime, pairs, now, force_full=args.full)
    finally:
        runtime.close()
        if instance is not None:
            instance.release()
    for report in reports:
        print(report.status_line())
    for retired in runtime.retired:
        print(retired.status_line())
    if not all(r.ok for r in runtime.retired) and all(r.ok for r in reports):
        return int(ExitCode.FAILED)
    return sync_exit_code(reports)


def _say_if_throwaway(runtime: Runtime) -> None:
    """A dry run without a UID key made none: say that its UIDs and counts are provisional."""
    if runtime.throwaway_key:
        print(f"{PROG}: no UID key yet; this dry run uses a throwaway key and creates none "
              "(the first real sync makes it)", file=sys.stderr)


REASON_EXIT = {
    "auth-rejected": ExitCode.NOPERM, "forbidden": ExitCode.NOPERM,
    "password-rejected": ExitCode.NOPERM,
    "tls-verification-failed": ExitCode.UNAVAILABLE, "connection-failed": ExitCode.UNAVAILABLE,
    "timeout": ExitCode.UNAVAILABLE,
    "password-missing": ExitCode.CONFIG,
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
    runtime = open_runtime(config, pairs, dry_run=True)
    _say_if_throwaway(runtime)
    try:
        reports = run_cycle(runtime, pairs, now, dry_run=True)
    finally:
        runtime.close()
    for report in reports:
        print(render_preview(report, config.service.timezone))
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


def cmd_set_password(args: argparse.Namespace) -> int:
    """Store a password in the configured keyring; it is never taken from the command line."""
    config = common.load(args)
    account = common.account(config, args.account)
    backend = credentials.writable_backend(config.service.keyring_backend,
                                           account.secret_name, config.service.state_dir)
    if args.stdin:  # a Microsoft 365 credential may be a PEM: all of standard input
        value = (sys.stdin.read().strip() if account.kind == "microsoft365"
                 else sys.stdin.readline().rstrip("\r\n"))
    elif not sys.stdin.isatty():
        raise UsageError("set-password: standard input is not a terminal; add --stdin to read "
                         "the password from it")
    else:
        value = getpass.getpass(f"Password for account {args.account}: ")
    if not value:
        raise SecretError(f"account {args.account}", "empty password; nothing stored")
    credentials.store_password(backend, account.secret_name, value)
    print(f"stored the password of account {args.account} in {credentials.backend_name(backend)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default (see demo.py)."""
    from sanitizer.demo.run import run_demo  # noqa: PLC0415 - needs Radicale, only for the demo

    return run_demo(interval=args.interval, cycles=args.cycles)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": cmd_sync,
    "preview": cmd_preview,
    "demo": cmd_demo,
    "set-password": cmd_set_password,
    "discover": discover.cmd_discover,
    "policy": policy_text.cmd_policy,
    "phone-setup": phone_setup.cmd_phone_setup,
    "run": run.cmd_run,
    "check": check.cmd_check,
    "status": status.cmd_status,
    "wipe": wipe.cmd_wipe,
    "resume": wipe.cmd_resume,
}
