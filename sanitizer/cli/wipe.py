"""`calendar-sanitizer wipe PAIR` (lost phone) and `resume PAIR`, its way back.

wipe pauses the pair first, so no cycle writes again, then deletes every entry this installation
made in its phone calendar; others' entries are left alone. A retired pair (in the ledger, no
longer configured) has its old targets cleaned. Counts and names only, never an event.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sanitizer.cli import common
from sanitizer.core.identity import Ownership, is_owned
from sanitizer.core.phone_format import read_back
from sanitizer.engine import ledger, sync_state
from sanitizer.errors import ADMIN, ExitCode, PreconditionFailed, StoreError
from sanitizer.service import credentials, lock, retirement, status
from sanitizer.service.config import Config, Pair
from sanitizer.stores.base import TargetCalendar

WIPE_WAIT = 120.0  # seconds to wait for a sync of the pair that is in flight
WIPE_PASSES = 3  # list-and-delete rounds, for entries that changed while we deleted


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `wipe` and `resume`."""
    wipe = common.add_command(
        commands, parent, "wipe", "lost phone: delete all our entries from a pair's phone calendar",
        "Pause the pair, then delete every entry calendar-sanitizer made in its phone "
        "calendar (others are left alone). The pair stays paused until `resume`.")
    wipe.add_argument("pair", metavar="PAIR", help="the pair's name")
    wipe.add_argument("--yes", action="store_true",
                      help="do not ask for confirmation (needed when stdin is not a terminal)")
    resume = common.add_command(
        commands, parent, "resume", "resume a paused pair (after wipe)",
        "Remove a pair's pause flag; the next cycle fills its phone calendar again.")
    resume.add_argument("pair", metavar="PAIR", help="the pair's name")


def cmd_wipe(args: argparse.Namespace) -> int:
    """Lost phone: pause the pair first (so no cycle writes again), then delete what we made.
    A retired pair (in the ledger, no longer configured) has its old targets cleaned."""
    config = common.load(args)
    name = common.known_pair(config, args.pair)
    common.require_owner(config.service.state_dir)
    if name not in {p.name for p in config.pairs}:
        return wipe_retired(config, name, args.yes)
    pair = common.pair(config, name)
    if not args.yes:
        _confirm(pair.name, [pair.target_url], retired=False)
    state_dir = config.service.state_dir
    status.pause(state_dir, pair.name, "wipe", datetime.now(UTC))  # first: even if the rest fails
    common.say(f"pair {pair.name}: paused")
    target, close = _target_store(config, pair)
    try:
        with lock.pair_lock(state_dir, pair.name, timeout=WIPE_WAIT):
            ours = ownership(config, pair.target_url, pair.name)
            deleted, foreign, remaining = wipe_target(target, ours.owns)
            sync_state.forget(state_dir, pair.name)  # what it remembers of the phone is gone
            status.clear(state_dir, pair.name, "wiped", datetime.now(UTC))
            if not remaining:
                ledger.note_entries(state_dir, pair.target_url, {})
    finally:
        close()
    common.say(f"pair {pair.name}: wiped deleted={deleted} foreign={foreign} (left alone) "
               f"not-deleted={remaining}; paused until `{ADMIN} resume {pair.name}`")
    if remaining:
        common.say(f"pair {pair.name}: {remaining} entries changed while deleting; "
                   "run the wipe again")
    return int(ExitCode.FAILED if remaining else ExitCode.OK)


def cmd_resume(args: argparse.Namespace) -> int:
    """Remove the pause flag; the next cycle fills the phone calendar again."""
    config = common.load(args)
    state_dir = config.service.state_dir
    common.require_owner(state_dir)
    name = common.known_pair(config, args.pair)  # checked before any path is made from it
    if status.paused_info(state_dir, name) is None:
        common.say(f"pair {name}: was not paused")
        return 0
    status.resume(state_dir, name)
    sync_state.forget(state_dir, name)  # whatever the phone holds now, the next cycle reads it all
    common.say(f"pair {name}: resumed; the next cycle syncs it "
               "(`systemctl reload calendar-sanitizer` to run one now)")
    return 0


def wipe_target(target: TargetCalendar,
                ours: Callable[[str | None], bool] = is_owned) -> tuple[int, int, int]:
    """Delete every entry of ours; (deleted, foreign, still there). Foreign entries are kept, and
    so is anything listed at an href outside the calendar, whatever it holds."""
    deleted = foreign = remaining = 0
    for _ in range(WIPE_PASSES):
        try:
            objects = target.list()
        except StoreError as exc:
            if exc.status == 404:
                return deleted, 0, 0
            raise
        owned = []
        foreign = 0
        for obj in objects:
            if target.holds(obj.href) and ours(read_back(obj.data).uid):
                owned.append(obj)
            else:
                foreign += 1
        remaining = 0
        for obj in owned:
            try:
                target.delete(obj.href, obj.etag)
                deleted += 1
            except PreconditionFailed:
                remaining += 1  # changed since listed: listed and checked again next pass
        if not remaining:
            break
    return deleted, foreign, remaining


def wipe_retired(config: Config, name: str, yes: bool) -> int:
    """`wipe NAME` for a pair that is only in the ledger: clean each of its retired targets."""
    targets = {url: r for url, r in common.retired_records(config).items() if r.pair == name}
    if not targets:
        common.say(f"pair {name}: no retired target left to wipe")
        return 0
    if not yes:
        _confirm(name, sorted(targets), retired=True)
    failed = False
    for url, record in sorted(targets.items()):
        failed |= not _wipe_retired_target(config, url, record)
    return int(ExitCode.FAILED if failed else ExitCode.OK)


def ownership(config: Config, target_url: str, pair: str | None) -> Ownership:
    """What this installation may delete in a target: its tag, and legacy UIDs it recorded."""
    state_dir = config.service.state_dir
    key = credentials.existing_uid_key(state_dir)
    record = ledger.record(state_dir, target_url)
    known = list(record.entries) if record is not None else []
    state = sync_state.load(state_dir, pair) if pair is not None else None
    known += list(state.entries) if state is not None else []
    if key is None:  # no key, no tagged entry of ours: only what the records list
        return Ownership("-", frozenset(known))
    return Ownership.of(key, known)


def _confirm(name: str, targets: list[str], retired: bool) -> None:
    if not sys.stdin.isatty():
        raise common.UsageError("wipe: standard input is not a terminal; add --yes to confirm")
    after = ("" if retired else f"and pauses pair {name} until `{ADMIN} resume "
             f"{name}`.\n")
    sys.stdout.write(f"This deletes every entry calendar-sanitizer made in {', '.join(targets)}\n"
                     f"{after}Type the pair name to confirm: ")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != name:
        raise common.UsageError("wipe: not confirmed; nothing changed")


def _target_store(config: Config, pair: Pair) -> tuple[TargetCalendar, Callable[[], None]]:
    """The pair's target store and how to close its connections."""
    connection = common.connection(config, pair.target_account)
    return connection.target(pair.target_url), connection.close


def _wipe_retired_target(config: Config, url: str, record: ledger.Record) -> bool:
    account = config.accounts.get(record.account)
    if account is None:
        common.say(f"retired pair {record.pair}: account {record.account} is no longer in the "
                   f"config; add it back to reach {url}")
        return False
    connection = common.connection(config, account, url)
    try:
        ours = ownership(config, url, None)
        deleted, foreign, remaining = wipe_target(connection.target(url), ours.owns)
    finally:
        connection.close()
    if not remaining:
        retirement.forget_pair(config, record.pair)
        ledger.cleaned(config.service.state_dir, url)
    common.say(f"retired pair {record.pair}: wiped {url} deleted={deleted} foreign={foreign} "
               f"(left alone) not-deleted={remaining}")
    return not remaining
