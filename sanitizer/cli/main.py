"""The command line: one parser for every command, and the one place that turns errors into
messages and exit codes (see errors.ExitCode).

Each command is a few lines over the library in a module named after it (sync.py holds sync and
preview, wipe.py wipe and resume); common.py has what they share. No command prints event text:
`preview` prints exactly what the phone gets, which is labels and times.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sanitizer import __version__
from sanitizer.cli import (
    check,
    common,
    create_target,
    discover,
    phone_setup,
    policy_text,
    recover,
    run,
    set_password,
    status,
    sync,
    wipe,
)
from sanitizer.cli.common import PROG, UsageError
from sanitizer.errors import ConfigError, ExitCode, SanitizerError
from sanitizer.service.hardening import forbid_core_dumps
from sanitizer.service.logs import LEVELS, setup

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
    sync.add_parser(commands, shared)  # and preview
    demo = common.add_command(commands, shared, "demo",
                              "run against an embedded Radicale with sample data",
                              "Start a local Radicale with fake appointments and "
                              "sync them every few seconds until Ctrl-C.")
    demo.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    demo.add_argument("--cycles", type=int, default=0,
                      help="stop after this many cycles (default: run until Ctrl-C)")
    set_password.add_parser(commands, shared)
    run.add_parser(commands, shared)
    check.add_parser(commands, shared)
    status.add_parser(commands, shared)
    wipe.add_parser(commands, shared)  # and resume
    discover.add_parser(commands, shared)
    policy_text.add_parser(commands, shared)
    phone_setup.add_parser(commands, shared)
    create_target.add_parser(commands, shared)
    recover.add_parser(commands, shared)  # confirm-empty, remove-orphans
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


# The directory that holds this package: a clone's root, beside demo/ and bench/, or, for an
# installed wheel, site-packages, which has neither.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo lives in the clone's demo/ (`python -m demo`), not in the package: imported by
    name at run time, so the package never depends on it, and only from beside this package."""
    demo_run = None
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "demo" / "run.py").is_file():
        if str(SOURCE_ROOT) not in sys.path:
            sys.path.insert(0, str(SOURCE_ROOT))
        try:
            demo_run = importlib.import_module("demo.run")
        except ModuleNotFoundError as exc:
            if exc.name not in ("demo", "demo.run"):
                raise  # the demo is there, but a dependency of it is not
    if demo_run is None:
        raise UsageError("the demo is not part of an installed package: run `make demo` in a "
                         "clone of the source")
    code: int = demo_run.run_demo(interval=args.interval, cycles=args.cycles)
    return code


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": sync.cmd_sync,
    "preview": sync.cmd_preview,
    "demo": cmd_demo,
    "set-password": set_password.cmd_set_password,
    "discover": discover.cmd_discover,
    "policy": policy_text.cmd_policy,
    "phone-setup": phone_setup.cmd_phone_setup,
    "run": run.cmd_run,
    "check": check.cmd_check,
    "status": status.cmd_status,
    "wipe": wipe.cmd_wipe,
    "resume": wipe.cmd_resume,
    "create-target": create_target.cmd_create_target,
    "confirm-empty": recover.cmd_confirm_empty,
    "remove-orphans": recover.cmd_remove_orphans,
}
