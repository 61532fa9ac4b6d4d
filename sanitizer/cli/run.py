"""`calendar-sanitizer run`: the service, a cycle every service.interval until stopped."""

from __future__ import annotations

import argparse
from typing import Any

from sanitizer.cli import common
from sanitizer.service import logs


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `run`."""
    common.add_command(
        commands, parent, "run", "run as a service: a cycle every service.interval until stopped",
        "Sync every pair every service.interval (with jitter) until SIGTERM. SIGHUP reloads the "
        "config and passwords. Talks to systemd (Type=notify, watchdog) when started by it. "
        "Exit 75 if another instance runs, 78 if the config or a password is missing.")


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon (see daemon.py); logs at info unless --log-level says otherwise."""
    from sanitizer.service import daemon  # noqa: PLC0415 - only this command needs it

    if getattr(args, "log_level", None) is None:
        logs.setup("info")
    return daemon.run(common.config_path(args))
