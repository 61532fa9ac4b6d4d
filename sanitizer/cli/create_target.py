"""`calendar-sanitizer create-target PAIR`: make a pair's phone calendar, on purpose.

No cycle creates a calendar (a typo in `target` would otherwise make one and retire the real
phone calendar); this command is the one way, for one named pair, after the admin has read the
name.
"""

from __future__ import annotations

import argparse
from typing import Any

from sanitizer.cli import common
from sanitizer.errors import ExitCode


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `create-target`."""
    command = common.add_command(
        commands, parent, "create-target", "create a pair's phone calendar (cycles never do)",
        "Create the phone calendar a pair's `target` names, if it does not exist. `run` and "
        "`sync` never create a calendar: a missing target fails the pair and names the "
        "calendars that exist, so a typo cannot start an empty phone calendar.")
    command.add_argument("pair", metavar="PAIR", help="the pair's name")


def cmd_create_target(args: argparse.Namespace) -> int:
    """Create the pair's target if missing; say which it was."""
    config = common.load(args)
    pair = common.pair(config, args.pair)
    connection = common.connection(config, pair.target_account)
    try:
        made = connection.create_calendar(pair.target_url)
    finally:
        connection.close()
    common.say(f"pair {pair.name}: created {pair.target_url}" if made else
               f"pair {pair.name}: {pair.target_url} exists already; nothing changed")
    return int(ExitCode.OK)
