"""`calendar-sanitizer discover ACCOUNT`: the calendars an account sees, as lines to paste.

Prints display names and URLs from the server (cleaned, on the account's own server only), event
counts and access; never an event. Microsoft 365 accounts: see discover_microsoft365.py.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from sanitizer.cli import common
from sanitizer.cli.discover_microsoft365 import discover_mailbox
from sanitizer.errors import ADMIN, ConfigError
from sanitizer.service import credentials
from sanitizer.service.config import Account, Config, load_config, parse_config
from sanitizer.service.connections import transport_for
from sanitizer.stores.caldav.discovery import Calendar, Discovery, discover
from sanitizer.stores.caldav.store import Backoff


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
    if account.kind == "microsoft365":
        sys.stdout.write(discover_mailbox(config, args.account, args.user) + "\n")
        return 0
    if args.user is not None:
        raise common.UsageError(f"--user is for Microsoft 365 accounts; accounts.{args.account} "
                                f"is a {account.kind} account, whose login names its calendars")
    backend = credentials.select_backend(config.service.keyring_backend)
    timeout = min(config.service.timeout.total_seconds(), 30.0)
    transport = transport_for(account, backend, timeout, Backoff(attempts=1))
    try:
        found = discover(transport, account.url)
    finally:
        transport.close()
    sys.stdout.write(render(account, found) + "\n")
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


def render(account: Account, found: Discovery) -> str:
    """A table, then one pasteable line per calendar."""
    lines = [f"account {account.name}: principal {found.principal}",
             f"calendar home {found.home}: {len(found.calendars)} calendar(s)"]
    if not found.calendars:
        lines.append("no calendars; create the work and phone calendars on the server first")
        return "\n".join(lines)
    width = max(len("NAME"), *(len(c.name) for c in found.calendars))
    lines.append(f"{'NAME':<{width}}  {'EVENTS':>6}  {'ACCESS':<10}  URL")
    lines += [f"{c.name:<{width}}  {_events(c):>6}  {_access(c):<10}  {c.url}"
              for c in found.calendars]
    lines += ["", "Paste into a [[pairs]] block: the work calendar as source, an empty calendar "
              f"the phone login may read as target (or a new name, then `{ADMIN} "
              "create-target PAIR`).", ""]
    lines += [paste_line(account, c) for c in found.calendars]
    return "\n".join(lines)


def paste_line(account: Account, calendar: Calendar) -> str:
    """`source = "..."` for a calendar with events, `target = "..."` for an empty writable one."""
    path = calendar.url[len(account.url):] if calendar.url.startswith(account.url) \
        else calendar.url
    key = "target" if calendar.events == 0 and calendar.writable is not False else "source"
    note = f"{calendar.name}: {_events(calendar)} event(s), {_access(calendar)}"
    if not calendar.vevent:
        key, note = "# not a calendar for events:", calendar.name
    return f'{key} = "{path}"   # {note}' if not key.startswith("#") else f"{key} {path}"


def _events(calendar: Calendar) -> str:
    return "?" if calendar.events is None else str(calendar.events)


def _access(calendar: Calendar) -> str:
    return {True: "read-write", False: "read-only", None: "unknown"}[calendar.writable]
