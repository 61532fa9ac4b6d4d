"""`calendar-sanitizer discover ACCOUNT`: the calendars an account sees, as lines to paste.

Prints display names and URLs from the server (cleaned, on the account's own server only), event
counts and access; never an event. What is asked, and how it is printed, is the account kind's
(`discover` in stores/KIND/kind.py).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from sanitizer.cli import common
from sanitizer.errors import ConfigError
from sanitizer.service import credentials
from sanitizer.service.config import Config, load_config, parse_config
from sanitizer.service.connections import read_secret
from sanitizer.stores.registry import kind_of

DISCOVER_TIMEOUT = 30.0  # seconds, at most, whatever the service waits


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `discover`."""
    parser = common.add_command(
        commands, parent, "discover",
        "list the calendars an account can see",
        "Find the calendars an account can see (current-user-principal, then "
        "calendar-home-set, as vdirsyncer does; for a Microsoft 365 account, the "
        "calendars of the mailbox --user names) and print ready-to-paste source "
        "and target lines. Reads calendar properties only. Exit 77 if the "
        "password is rejected, 69 if the server cannot be reached.")
    parser.add_argument("account", metavar="ACCOUNT", help="the name from [accounts.NAME]")
    parser.add_argument("--user", metavar="MAILBOX",
                        help="Microsoft 365 accounts only (required there): the mailbox whose "
                             "calendars to list, e.g. maria@agency.org")


def cmd_discover(args: argparse.Namespace) -> int:
    """One account: log in, walk to its calendars, print them."""
    config = accounts_only(common.config_path(args))
    account = common.account(config, args.account)
    backend = credentials.select_backend(config.service.keyring_backend)
    timeout = min(config.service.timeout.total_seconds(), DISCOVER_TIMEOUT)
    text = kind_of(account).discover(account, lambda: read_secret(account, backend),
                                     timeout=timeout, user=args.user)
    sys.stdout.write(text + "\n")
    return 0


def accounts_only(path: Path) -> Config:
    """The config, or, while its pairs are still missing or unfinished, just its accounts:
    discover is how an admin finds what to write in them."""
    try:
        return load_config(path)
    except ConfigError as exc:
        if not all(problem.startswith("pairs") for problem in exc.problems):
            raise
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return parse_config({**data, "pairs": []}, source=str(path))
