"""Admin commands (run, check, status, wipe, resume), registered into the CLI's parser.

Like the rest of the CLI they print counts, pair and account names, URLs from the config and
reason codes; never anything from an event.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sanitizer.cli import status_extra
from sanitizer.core.identity import Ownership, is_owned
from sanitizer.core.phone_format import read_back
from sanitizer.engine import ledger, sync_state
from sanitizer.errors import ExitCode, PreconditionFailed, SanitizerError, StoreError
from sanitizer.service import checks, credentials, lock, logs, retirement, status
from sanitizer.service.config import Config, Pair, load_config, resolve_path
from sanitizer.service.connections import Connection, open_connection
from sanitizer.service.runtime import account_urls
from sanitizer.stores.base import TargetCalendar

WIPE_WAIT = 120.0  # seconds to wait for a sync of the pair that is in flight
WIPE_PASSES = 3  # list-and-delete rounds, for entries that changed while we deleted


class AdminUsageError(SanitizerError):
    """Bad usage of an admin command (exit 64)."""

    exit_code = ExitCode.USAGE


class NotOwner(SanitizerError):
    """The state directory belongs to another user (exit 77)."""

    exit_code = ExitCode.NOPERM


def _require_owner(state_dir: Path) -> None:
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


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _config_path(args: argparse.Namespace) -> Path:
    return resolve_path(getattr(args, "config", None))


def _pair(config: Config, name: str) -> Pair:
    try:
        return config.pair(name)
    except KeyError:
        raise AdminUsageError(f"no pair named {name!r} in {config.path}") from None


# run -----------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    """The daemon (see daemon.py); logs at info unless --log-level says otherwise."""
    from sanitizer.service import daemon  # noqa: PLC0415 - only this command needs it

    if getattr(args, "log_level", None) is None:
        logs.setup("info")
    return daemon.run(_config_path(args))


# check ---------------------------------------------------------------------------------------

def cmd_check(args: argparse.Namespace) -> int:
    """Print the readiness table; the exit code names the worst kind of problem."""
    findings = checks.run_checks(_config_path(args))
    _say(checks.render(findings))
    code = checks.exit_code(findings)
    problems = sum(f.code is not ExitCode.OK for f in findings)
    warnings = sum(f.result == "warning" for f in findings)
    good = "all good" + (f" ({warnings} warning(s): read them above)" if warnings else "")
    _say(good if code == 0 else f"{problems} problem(s); exit {code}")
    return code


# status --------------------------------------------------------------------------------------

def _when(text: Any, zone: tzinfo) -> str:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return "?"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _result(entry: dict[str, Any]) -> str:
    if entry.get("ok"):
        return "ok"
    if entry.get("error"):
        return f"FAILED({entry['error']})"
    if entry.get("held_back"):
        return "FAILED(held-back)"
    return "FAILED(write-errors)"


def status_line(pair: str, entry: dict[str, Any] | None, paused: dict[str, Any] | None,
                running: bool, zone: tzinfo) -> str:
    """One pair: last cycle, result, counts, next run, pause."""
    parts = [f"pair {pair}:"]
    if entry and "time" in entry:
        skipped = entry.get("skipped")
        write_errors = entry.get("write_errors")
        parts += [f"last={_when(entry['time'], zone)}", f"result={_result(entry)}"]
        parts += [f"{key}={int(entry.get(key) or 0)}" for key in
                  ("created", "updated", "deleted", "unchanged", "foreign", "held_back")]
        parts.append(f"skipped={sum(skipped.values()) if isinstance(skipped, dict) else 0}")
        if entry.get("other_installations"):
            parts.append(f"of_other_installations={int(entry['other_installations'])}")
        if isinstance(write_errors, dict) and write_errors:
            parts.append(f"write_errors={sum(write_errors.values())}")
    else:
        parts.append("last=never")
    if paused is not None:
        parts.append("next=paused")
    elif running and entry and "next_run" in entry:
        parts.append(f"next={_when(entry['next_run'], zone)}")
        if entry.get("failures"):
            parts.append(f"failures_in_a_row={int(entry['failures'])}")
    else:
        parts.append("next=-")
    if paused is None:
        parts.append("paused=no")
    else:
        since = _when(paused["since"], zone) if "since" in paused else "?"
        parts.append(f"paused=yes(since {since}, {paused.get('reason', '?')})")
    return " ".join(parts)


def cmd_status(args: argparse.Namespace) -> int:
    """From status.json and the pause flags; talks to no server. Exit 1 if a pair last failed."""
    config = load_config(_config_path(args))
    state_dir, zone = config.service.state_dir, config.service.timezone
    if state_dir.exists() and not os.access(state_dir, os.R_OK | os.X_OK):
        raise NotOwner(f"{state_dir}: not readable by this user; run this as root or as the "
                       "service's user")
    pid = lock.holder(state_dir)
    now, limit = datetime.now(UTC), status_extra.max_age(config, args.max_age)
    if args.json:
        data = status.read_status(state_dir)
        _say(status_extra.as_json(config, data, pid, now, limit))
        failed = any(isinstance(e := data.get(p.name), dict) and "time" in e and not e.get("ok")
                     for p in config.pairs)
        stale = status_extra.stale_pairs(config, data, now, limit)
        return int(ExitCode.FAILED if failed or stale else ExitCode.OK)
    _say(f"daemon: running (pid {pid})" if pid else
         "daemon: not running (next=- below; the timer variant runs `sync` on its own schedule)")
    data = status.read_status(state_dir)
    failed = False
    for pair in config.pairs:
        entry = data.get(pair.name)
        entry = entry if isinstance(entry, dict) else None
        failed |= bool(entry and "time" in entry and not entry.get("ok"))
        _say(status_line(pair.name, entry, status.paused_info(state_dir, pair.name),
                         pid is not None, zone))
    for url, record in sorted(retired_records(config).items()):
        failed |= record.error is not None
        _say(retired_line(url, record, zone))
    stale = status_extra.stale_pairs(config, data, now, limit)
    for name in stale:
        _say(f"pair {name}: STALE no successful cycle in the last {_age(limit)} "
             "(service.stale_after)")
    return int(ExitCode.FAILED if failed or stale else ExitCode.OK)


def _age(limit: timedelta) -> str:
    seconds = int(limit.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def retired_records(config: Config) -> dict[str, ledger.Record]:
    """The ledger's targets that no configured pair writes any more."""
    return ledger.retired(ledger.load(config.service.state_dir),
                          lambda url: not retirement.is_retired(config, url))


def retired_line(url: str, record: ledger.Record, zone: tzinfo) -> str:
    """One retired target: what is left to delete there, and how the clean-up goes."""
    parts = [f"retired pair {record.pair}: {len(record.entries)} entries left to delete in {url}"]
    if record.error is None:
        parts.append("result=pending (deleted by the next cycle)")
    else:
        parts.append(f"result=FAILED({record.error})")
        parts.append(f"last={_when(record.last_try, zone)}")
        parts.append(f"failures_in_a_row={record.failures}")
        parts.append(f"next={_when(record.retry_at, zone)}")
    return " ".join(parts)


# wipe and resume -----------------------------------------------------------------------------

def _target_store(config: Config, pair: Pair) -> tuple[TargetCalendar, Callable[[], None]]:
    """The pair's target store and how to close its connections."""
    backend = credentials.select_backend(config.service.keyring_backend)
    connection = open_connection(pair.target_account, backend,
                                 config.service.timeout.total_seconds(),
                                 bases=account_urls(config, pair.target_account))
    return connection.target(pair.target_url), connection.close


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


def _confirm(name: str, targets: list[str], retired: bool) -> None:
    if not sys.stdin.isatty():
        raise AdminUsageError("wipe: standard input is not a terminal; add --yes to confirm")
    after = ("" if retired else f"and pauses pair {name} until `calendar-sanitizer resume "
             f"{name}`.\n")
    sys.stdout.write(f"This deletes every entry calendar-sanitizer made in {', '.join(targets)}\n"
                     f"{after}Type the pair name to confirm: ")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != name:
        raise AdminUsageError("wipe: not confirmed; nothing changed")


def known_pair(config: Config, name: str) -> str:
    """A pair name from the command line, if the config or the ledger knows it; the name that
    is returned comes from there, so no argument ever becomes part of a file path."""
    names = {pair.name for pair in config.pairs}
    names |= {record.pair for record in ledger.load(config.service.state_dir).values()}
    for known in names:
        if known == name:
            return known
    raise AdminUsageError(f"no pair named {name!r} in {config.path} or among retired pairs")


def ownership(config: Config, target_url: str, pair: str | None) -> Ownership:
    """What this installation may delete in a target: its tag, and legacy UIDs it recorded."""
    state_dir = config.service.state_dir
    key = credentials.existing_uid_key(state_dir)
    record = ledger.load(state_dir).get(target_url)
    known = list(record.entries) if record is not None else []
    state = sync_state.load(state_dir, pair) if pair is not None else None
    known += list(state.entries) if state is not None else []
    if key is None:  # no key, no tagged entry of ours: only what the records list
        return Ownership("-", frozenset(known))
    return Ownership.of(key, known)


def cmd_wipe(args: argparse.Namespace) -> int:
    """Lost phone: pause the pair first (so no cycle writes again), then delete what we made.
    A retired pair (in the ledger, no longer configured) has its old targets cleaned."""
    config = load_config(_config_path(args))
    name = known_pair(config, args.pair)
    _require_owner(config.service.state_dir)
    if name not in {p.name for p in config.pairs}:
        return wipe_retired(config, name, args.yes)
    pair = _pair(config, name)
    if not args.yes:
        _confirm(pair.name, [pair.target_url], retired=False)
    state_dir = config.service.state_dir
    status.pause(state_dir, pair.name, "wipe", datetime.now(UTC))  # first: even if the rest fails
    _say(f"pair {pair.name}: paused")
    target, close = _target_store(config, pair)
    try:
        with lock.pair_lock(state_dir, pair.name, timeout=WIPE_WAIT):
            ours = ownership(config, pair.target_url, pair.name)
            deleted, foreign, remaining = wipe_target(target, ours.owns)
            sync_state.forget(state_dir, pair.name)  # what it remembers of the phone is gone
            if not remaining:
                ledger.note_entries(state_dir, pair.target_url, {})
    finally:
        close()
    _say(f"pair {pair.name}: wiped deleted={deleted} foreign={foreign} (left alone) "
         f"not-deleted={remaining}; paused until `calendar-sanitizer resume {pair.name}`")
    if remaining:
        _say(f"pair {pair.name}: {remaining} entries changed while deleting; "
             "run the wipe again")
    return int(ExitCode.FAILED if remaining else ExitCode.OK)


def wipe_retired(config: Config, name: str, yes: bool) -> int:
    """`wipe NAME` for a pair that is only in the ledger: clean each of its retired targets."""
    targets = {url: r for url, r in retired_records(config).items() if r.pair == name}
    if not targets:
        _say(f"pair {name}: no retired target left to wipe")
        return 0
    if not yes:
        _confirm(name, sorted(targets), retired=True)
    failed = False
    for url, record in sorted(targets.items()):
        failed |= not _wipe_retired_target(config, url, record)
    return int(ExitCode.FAILED if failed else ExitCode.OK)


def _wipe_retired_target(config: Config, url: str, record: ledger.Record) -> bool:
    account = config.accounts.get(record.account)
    if account is None:
        _say(f"retired pair {record.pair}: account {record.account} is no longer in the config; "
             f"add it back to reach {url}")
        return False
    backend = credentials.select_backend(config.service.keyring_backend)
    connection: Connection = open_connection(account, backend,
                                             config.service.timeout.total_seconds(),
                                             bases=[url, *account_urls(config, account)])
    try:
        ours = ownership(config, url, None)
        deleted, foreign, remaining = wipe_target(connection.target(url), ours.owns)
    finally:
        connection.close()
    if not remaining:
        ledger.cleaned(config.service.state_dir, url)
    _say(f"retired pair {record.pair}: wiped {url} deleted={deleted} foreign={foreign} "
         f"(left alone) not-deleted={remaining}")
    return not remaining


def cmd_resume(args: argparse.Namespace) -> int:
    """Remove the pause flag; the next cycle fills the phone calendar again."""
    config = load_config(_config_path(args))
    state_dir = config.service.state_dir
    _require_owner(state_dir)
    name = known_pair(config, args.pair)  # checked before any path is made from it
    if status.paused_info(state_dir, name) is None:
        _say(f"pair {name}: was not paused")
        return 0
    status.resume(state_dir, name)
    _say(f"pair {name}: resumed; the next cycle syncs it "
         "(`systemctl reload calendar-sanitizer` to run one now)")
    return 0


# registration --------------------------------------------------------------------------------

ADMIN_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check": cmd_check,
    "status": cmd_status,
    "wipe": cmd_wipe,
    "resume": cmd_resume,
}


def add_admin_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the admin subcommands to the CLI's subparsers."""
    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, parents=[common], help=help_text, description=description)
        return parser

    add("run", "run as a service: a cycle every service.interval until stopped",
        "Sync every pair every service.interval (with jitter) until SIGTERM. SIGHUP reloads the "
        "config and passwords. Talks to systemd (Type=notify, watchdog) when started by it. "
        "Exit 75 if another instance runs, 78 if the config or a password is missing.")
    add("check", "check config, permissions, passwords and servers; write nothing",
        "Check the config, file permissions, every password, each source (one query) and each "
        "target (exists or can be created). Exit 0 all good, 78 config, 77 auth, 69 "
        "unreachable.")
    state = add("status", "per pair: last cycle, result, counts, next run, paused",
                "Show what the last cycle of each pair did and when the next runs, from the "
                "state directory (no server is contacted). Exit 1 if a pair's last cycle "
                "failed or a pair (not paused) has no successful cycle within --max-age.")
    state.add_argument("--json", action="store_true", help="one JSON document, for monitoring")
    state.add_argument("--max-age", metavar="DURATION", default=None,
                       help="how old a pair's last successful cycle may be (default: "
                            "service.stale_after, else 3 x service.interval)")
    wipe = add("wipe", "lost phone: delete all our entries from a pair's phone calendar",
               "Pause the pair, then delete every entry calendar-sanitizer made in its phone "
               "calendar (others are left alone). The pair stays paused until `resume`.")
    wipe.add_argument("pair", metavar="PAIR", help="the pair's name")
    wipe.add_argument("--yes", action="store_true",
                      help="do not ask for confirmation (needed when stdin is not a terminal)")
    resume = add("resume", "resume a paused pair (after wipe)",
                 "Remove a pair's pause flag; the next cycle fills its phone calendar again.")
    resume.add_argument("pair", metavar="PAIR", help="the pair's name")
