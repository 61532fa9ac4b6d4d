"""`calendar-sanitizer phone-setup PAIR`: how to connect a phone to its calendar, read only.

Step by step for DAVx5 (Android) and iOS with the pair's exact URL and the phone's own login
(`phone_user`), and optionally an Apple configuration profile (.mobileconfig) with a CalDAV
account payload. The profile holds a password only when asked to, read from standard input.

Phones find their calendar by discovery: the server, then the login's principal, then its
calendar home. In the layouts docs/phones.md recommends the phone calendar sits directly in the
phone login's principal (Radicale: `maria-phone/phone/`), so the profile's principal URL is the
calendar's parent, and the phone login sees exactly that one calendar. A plain http:// URL is
warned about: the phone's password and every entry would cross the network readable.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from sanitizer.cli import common
from sanitizer.cli.common import UsageError
from sanitizer.service.config import Pair

PLACEHOLDER = "<the phone's own login>"
PROFILE_NAMESPACE = uuid.UUID("6a0e9a52-2f4c-4c1b-9a55-0f1e3f8a7c11")


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `phone-setup`."""
    parser = common.add_command(
        commands, parent, "phone-setup",
        "print how to connect a pair's phone (DAVx5, iOS)",
        "Print step-by-step phone setup for DAVx5 and iOS with the pair's server "
        "URL and phone login (pairs.phone_user), and optionally write an Apple "
        "configuration profile.")
    parser.add_argument("pair", metavar="PAIR", help="the pair's name")
    parser.add_argument("--mobileconfig", metavar="FILE",
                        help="also write an Apple configuration profile (CalDAV account) here")
    parser.add_argument("--with-password", action="store_true",
                        help="put the phone login's password in the profile; read from stdin")


def cmd_phone_setup(args: argparse.Namespace) -> int:
    """Print the steps; write the profile if asked."""
    config = common.load(args)
    pair = common.pair(config, args.pair)
    index = config.pairs.index(pair)
    if args.with_password and not args.mobileconfig:
        raise UsageError("--with-password needs --mobileconfig FILE")
    sys.stdout.write(instructions(pair, index) + "\n")
    if urlsplit(phone_url(pair)).scheme == "http":
        sys.stderr.write(f"{common.PROG}: WARNING: {phone_url(pair)} is plain http: the phone "
                         "would send its password and receive every entry unencrypted. Give "
                         "the phone an https:// address (pairs.phone_url) before it leaves "
                         "the building.\n")
    if args.mobileconfig:
        secret = _read_password() if args.with_password else None
        write_profile(Path(args.mobileconfig), pair, secret)
        sys.stdout.write(f"\nwrote {args.mobileconfig}: send it to the phone (AirDrop or "
                         "mail), then Settings > Profile Downloaded > Install."
                         + ("" if secret else " The phone asks for the password.") + "\n")
    return 0


def phone_url(pair: Pair) -> str:
    """The phone calendar's URL as the phone reaches it."""
    return pair.phone_url or pair.target_url


def server_url(pair: Pair) -> str:
    """The server's root, where a phone's discovery starts."""
    parts = urlsplit(phone_url(pair))
    return f"{parts.scheme}://{parts.netloc}/"


def principal_url(pair: Pair) -> str:
    """The phone login's principal in the recommended layouts: the phone calendar's parent."""
    return urljoin(phone_url(pair), "..")


def instructions(pair: Pair, index: int) -> str:
    """DAVx5 and iOS steps with this pair's URL and login."""
    url = phone_url(pair)
    user = pair.phone_user or PLACEHOLDER
    parts = urlsplit(url)
    lines = [f"Phone setup for pair {pair.name}", "",
             f"  server:      {server_url(pair)}",
             f"  principal:   {principal_url(pair)}",
             f"  calendar:    {url}", f"  login:       {user}",
             "  password:    the phone login's own password (never the work login's)", ""]
    if pair.phone_user is None:
        lines += [f"The phone login is not in the config: add `phone_user = \"...\"` to "
                  f"pairs[{index}] (a login that may only READ this calendar; see "
                  "docs/phones.md for each server).", ""]
    lines += ["Android (DAVx5):",
              "  1. Install DAVx5, open it, tap + (add account).",
              "  2. Choose 'Login with URL and user name'.",
              f"  3. Base URL: {url}",
              f"  4. User name: {user}; password: the phone login's password. Tap Login.",
              "  5. Account name: anything, e.g. 'Work appointments'. Create account.",
              "  6. On the CalDAV tab enable only this calendar; turn OFF every other one.",
              "  7. Long-press the calendar > 'Read-only' (the phone must never write back).",
              "  8. Android settings > Apps > DAVx5: allow it to run in the background.",
              "",
              "iPhone (iOS):",
              "  1. Settings > Apps > Calendar > Calendar Accounts > Add Account > Other >",
              "     Add CalDAV Account.",
              f"  2. Server: {parts.netloc}; User Name: {user}; Password: the phone login's "
              "password; Description: e.g. 'Work appointments'.",
              "  3. If iOS cannot find the account: Advanced Settings > Account URL: "
              f"{principal_url(pair)}",
              "  4. Turn off Contacts and Reminders for this account if offered.",
              "  (Or install the profile from --mobileconfig instead of steps 1-3.)"]
    return "\n".join(lines)


def profile(pair: Pair, password: str | None) -> dict[str, Any]:
    """An Apple configuration profile with one CalDAV account payload (com.apple.caldav.account).

    UUIDs are derived from the pair and URL, so a new profile for the same pair replaces the old.
    """
    url = phone_url(pair)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    account: dict[str, Any] = {
        "PayloadType": "com.apple.caldav.account", "PayloadVersion": 1,
        "PayloadIdentifier": f"org.calendar-sanitizer.{pair.name}.caldav",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"{pair.name} caldav {url}")).upper(),
        "PayloadDisplayName": f"Work appointments ({pair.name})",
        "CalDAVAccountDescription": "Work appointments",
        "CalDAVHostName": parts.hostname or "",
        "CalDAVPort": parts.port or (443 if https else 80),
        "CalDAVPrincipalURL": principal_url(pair), "CalDAVUseSSL": https,
        "CalDAVUsername": pair.phone_user or "",
    }
    if password is not None:
        account["CalDAVPassword"] = password
    return {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": f"org.calendar-sanitizer.{pair.name}",
        "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"{pair.name} profile {url}")).upper(),
        "PayloadDisplayName": f"Work appointments ({pair.name})",
        "PayloadDescription": "A read-only calendar with non-identifying work appointments.",
        "PayloadRemovalDisallowed": False, "PayloadContent": [account],
    }


def write_profile(path: Path, pair: Pair, password: str | None) -> None:
    """Write the profile as an XML plist, 0600 (it may hold a password)."""
    document = plistlib.dumps(profile(pair, password), fmt=plistlib.FMT_XML)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(document)
    except OSError as exc:
        raise UsageError(f"--mobileconfig {path}: {exc.strerror}") from None


def _read_password() -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError("--with-password: no password on standard input")
    return value
