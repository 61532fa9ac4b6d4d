"""Ways out of two stuck states, each one command for one pair.

`confirm-empty PAIR`: the work calendar really was emptied. The mass-deletion guard holds the
phone's entries back whenever a source answers with nothing; this lets the pair's next full cycle
delete them, once. Every other pair, and this one afterwards, keeps the guard.

`remove-orphans PAIR`: entries an installation of this program wrote, with another UID key (a
lost state directory), that nothing will ever delete: this key does not own them. They are
recognised by the exact shape of this program's output (its UID form and nothing beyond the
allowlist); they are shown, confirmed by typing the pair's name, and deleted. Anything else in the
phone calendar is never touched.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sanitizer.cli import common
from sanitizer.cli.wipe import ownership
from sanitizer.core.identity import is_owned, tag_of
from sanitizer.core.model import instant
from sanitizer.core.phone_format import read_back
from sanitizer.engine import sync_state
from sanitizer.errors import ADMIN, ExitCode, PreconditionFailed
from sanitizer.service import lock, status
from sanitizer.stores.base import RawObject, TargetCalendar


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `confirm-empty` and `remove-orphans`."""
    empty = common.add_command(
        commands, parent, "confirm-empty",
        "the pair's work calendar really is empty: let its next cycle empty the phone",
        "A source that answers with nothing fails its pair (held-back) instead of deleting "
        "every phone entry. When the work calendar really was emptied, this lets the pair's "
        "next full cycle delete them, once; the guard stays for every other pair and cycle.")
    empty.add_argument("pair", metavar="PAIR", help="the pair's name")
    orphans = common.add_command(
        commands, parent, "remove-orphans",
        "delete entries an earlier UID key wrote (a lost state directory)",
        "List the phone entries in exactly this program's output shape that another UID key "
        "wrote (after the state directory and its key were lost, they are never deleted), "
        "show them, ask, and delete them. Nothing else in the calendar is touched.")
    orphans.add_argument("pair", metavar="PAIR", help="the pair's name")
    orphans.add_argument("--yes", action="store_true",
                         help="do not ask (needed when stdin is not a terminal)")


def cmd_confirm_empty(args: argparse.Namespace) -> int:
    """Leave the confirmation for the pair's next cycle."""
    config = common.load(args)
    pair = common.pair(config, args.pair)
    common.require_owner(config.service.state_dir)
    status.confirm_empty(config.service.state_dir, pair.name, datetime.now(UTC))
    common.say(f"pair {pair.name}: its next full cycle deletes the phone entries of an empty "
               f"work calendar; run `{ADMIN} sync --pair {pair.name} --full` (or "
               "`systemctl reload calendar-sanitizer`) to do it now")
    return int(ExitCode.OK)


def orphans(objects: list[RawObject], target: TargetCalendar,
            ours: Callable[[str | None], bool]) -> tuple[list[tuple[RawObject, str]], int]:
    """(entries in our exact output shape that this key does not own, with their tag), and how
    many other objects there are (left alone)."""
    found, other = [], 0
    for obj in objects:
        back = read_back(obj.data)
        if (target.holds(obj.href) and is_owned(back.uid) and not ours(back.uid)
                and back.event is not None and not back.extra):
            found.append((obj, tag_of(back.uid) or "legacy"))
        else:
            other += 1
    return found, other


def cmd_remove_orphans(args: argparse.Namespace) -> int:
    """Show, ask, delete: only entries of this program's shape that this key does not own."""
    config = common.load(args)
    pair = common.pair(config, args.pair)
    state_dir = config.service.state_dir
    common.require_owner(state_dir)
    connection = common.connection(config, pair.target_account)
    try:
        target = connection.target(pair.target_url)
        with lock.pair_lock(state_dir, pair.name, timeout=120.0):
            found, other = orphans(target.list(), target,
                                   ownership(config, pair.target_url, pair.name).owns)
            _show(pair.name, found, other, config.service.timezone)
            if not found:
                return int(ExitCode.OK)
            if not args.yes:
                _confirm(pair.name)
            deleted = changed = 0
            for obj, _ in found:
                try:
                    target.delete(obj.href, obj.etag)
                    deleted += 1
                except PreconditionFailed:
                    changed += 1
            sync_state.forget(state_dir, pair.name)  # its counts of the calendar are stale
    finally:
        connection.close()
    common.say(f"pair {pair.name}: removed {deleted} orphaned entries; changed meanwhile "
               f"(left)={changed}; others left alone={other}")
    return int(ExitCode.FAILED if changed else ExitCode.OK)


def _show(name: str, found: list[tuple[RawObject, str]], other: int, zone: Any) -> None:
    tags = Counter(tag for _, tag in found)
    common.say(f"pair {name}: {len(found)} entries written by another UID key, "
               f"{other} other objects (never touched)")
    for tag, count in sorted(tags.items()):
        common.say(f"  installation tag {tag}: {count} entries")
    for obj, _ in found[:50]:
        event = read_back(obj.data).event
        assert event is not None
        common.say(f"  {instant(event.start, zone):%Y-%m-%d %H:%M}  {obj.href}")


def _confirm(name: str) -> None:
    if not sys.stdin.isatty():
        raise common.UsageError("remove-orphans: standard input is not a terminal; add --yes "
                                "to confirm")
    sys.stdout.write(f"Delete these entries from pair {name}'s phone calendar? "
                     "Type the pair name to confirm: ")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != name:
        raise common.UsageError("remove-orphans: not confirmed; nothing changed")
