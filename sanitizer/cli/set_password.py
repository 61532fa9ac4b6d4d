"""`calendar-sanitizer set-password ACCOUNT`: store an account's password in the keyring that
service.keyring_backend names; never from the command line, where `ps` and the shell's history
would see it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sanitizer.cli import common
from sanitizer.cli.common import UsageError
from sanitizer.errors import SecretError
from sanitizer.service import credentials
from sanitizer.stores.registry import kind_of


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `set-password`."""
    setpw = common.add_command(commands, parent, "set-password",
                               "store an account's password in the keyring",
                               "Store an account's password in the keyring.")
    setpw.add_argument("account", help="the account name from [accounts.NAME]")
    setpw.add_argument("--stdin", action="store_true",
                       help="read the password from standard input instead of a prompt")


def cmd_set_password(args: argparse.Namespace) -> int:
    """Store a password in the configured keyring; it is never taken from the command line."""
    config = common.load(args)
    account = common.account(config, args.account)
    backend = credentials.writable_backend(config.service.keyring_backend,
                                           account.secret_name, config.service.state_dir)
    if args.stdin:  # a credential may be a document (a PEM): all of standard input
        value = (sys.stdin.read().strip() if kind_of(account).secret_document
                 else sys.stdin.readline().rstrip("\r\n"))
    elif not sys.stdin.isatty():
        raise UsageError("set-password: standard input is not a terminal; add --stdin to read "
                         "the password from it")
    else:
        value = getpass.getpass(f"Password for account {args.account}: ")
    if not value:
        raise SecretError(f"account {args.account}", "empty password; nothing stored")
    credentials.store_password(backend, account.secret_name, value)
    common.say(f"stored the password of account {args.account} in "
               f"{credentials.backend_name(backend)}")
    return 0
