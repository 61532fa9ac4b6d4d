"""What the commands share: the usage error, the config, the pair and account lookups, the
state directory's owner check, and line output.

One place for these, so that a wrong name or option gives the same one-line message and exit
code (64, sysexits) whichever command was given it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from sanitizer.engine import ledger
from sanitizer.errors import ExitCode, SanitizerError
from sanitizer.errors import UsageError as UsageError  # noqa: PLC0414 - re-exported
from sanitizer.service import credentials, retirement
from sanitizer.service.config import Account, Config, Pair, load_config, resolve_path
from sanitizer.service.connections import Connection, open_connection
from sanitizer.service.runtime import account_urls

PROG = "calendar-sanitizer"


class NotOwner(SanitizerError):
    """The state directory belongs to another user (exit 77)."""

    exit_code = ExitCode.NOPERM


def add_command(commands: Any, parent: argparse.ArgumentParser, name: str, help_text: str,
                description: str) -> argparse.ArgumentParser:
    """A subcommand that takes the shared options (--config, --log-level) from `parent`."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[parent], help=help_text, description=description)
    return parser


def config_path(args: argparse.Namespace) -> Path:
    """--config, else $CALENDAR_SANITIZER_CONFIG, else the system default."""
    return resolve_path(getattr(args, "config", None))


def load(args: argparse.Namespace) -> Config:
    """The config that --config (or its defaults) names, checked whole."""
    return load_config(config_path(args))


def pair(config: Config, name: str) -> Pair:
    """A configured pair by name; an unknown name is a usage error, not a traceback."""
    try:
        return config.pair(name)
    except KeyError:
        raise UsageError(f"no pair named {name!r} in {config.path}") from None


def pairs(config: Config, name: str | None) -> tuple[Pair, ...]:
    """--pair NAME, or every pair when it is not given."""
    return config.pairs if name is None else (pair(config, name),)


def known_pair(config: Config, name: str) -> str:
    """A pair name from the command line, if the config or the ledger (retired pairs) knows it;
    the name that is returned comes from there, so no argument ever becomes part of a file
    path."""
    names = {p.name for p in config.pairs}
    names |= {record.pair for record in ledger.load(config.service.state_dir).values()}
    for known in names:
        if known == name:
            return known
    raise UsageError(f"no pair named {name!r} in {config.path} or among retired pairs")


def retired_records(config: Config) -> dict[str, ledger.Record]:
    """The ledger's targets that no configured pair writes any more."""
    targets = retirement.Targets.of(config)
    return ledger.retired(ledger.load(config.service.state_dir),
                          lambda url: not targets.is_retired(url))


def account(config: Config, name: str) -> Account:
    """A configured account by name."""
    found = config.accounts.get(name)
    if found is None:
        raise UsageError(f"no [accounts.{name}] in {config.path}")
    return found


def require_owner(state_dir: Path) -> None:
    """Files made by another user (root, say) would lock the service out of its own state."""
    try:
        owner = state_dir.stat().st_uid
    except FileNotFoundError:
        return
    except OSError as exc:
        raise NotOwner(f"{state_dir}: {exc.strerror}; run this as the service's user "
                       "(see docs/install.md, calendar-sanitizer-admin)") from None
    if owner != os.geteuid():
        raise NotOwner(f"{state_dir} belongs to uid {owner}; run this as that user "
                       "(see docs/install.md, calendar-sanitizer-admin)")


def say(text: str) -> None:
    """One line to stdout, flushed, so a reader sees progress of a slow command as it goes."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def connection(config: Config, account: Account, *also: str) -> Connection:
    """The account's connection for one command: its secret from the configured keyring, its
    requests confined to the calendars the config and the ledger place on it (and `also`)."""
    backend = credentials.select_backend(config.service.keyring_backend)
    return open_connection(account, backend, config.service.timeout.total_seconds(),
                           bases=[*also, *account_urls(config, account)])
