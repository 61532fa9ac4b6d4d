"""`calendar-sanitizer status`: per pair, the last cycle, its result and counts, the next run and
any pause, from the state directory; no server is contacted. `--json` is the same for monitoring
(Nagios/Icinga, systemd OnFailure=).

A pair is stale when it has not completed a cycle successfully within `service.stale_after`
(default 3 x interval), by the clock: a `sync --now` run counts when it ran, not as of when. A pair
that never succeeded is stale once that long has passed since it was first seen (the daemon's
start, its first cycle) or, with no record of it at all, since the config file was last written.
Paused pairs are not. The last attempt and the last success are shown apart, and so are the
appointments in the window that are not on the phone, by reason code, for as long as they exist.

Exit codes: 1 if a pair failed or is stale; else 3 if appointments are missing from a phone;
else 0. Counts, times, pair names, URLs from the config and reason codes; never anything from an
event.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sanitizer.cli import common
from sanitizer.core.durations import parse_duration
from sanitizer.engine import ledger
from sanitizer.engine.report import missing
from sanitizer.errors import ExitCode
from sanitizer.service import lock, retirement, status
from sanitizer.service.config import Config

COUNTS = ("created", "updated", "deleted", "unchanged", "foreign", "held_back")


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `status`."""
    state = common.add_command(
        commands, parent, "status", "per pair: last cycle, result, counts, next run, paused",
        "Show what the last cycle of each pair did and when the next runs, from the "
        "state directory (no server is contacted). Exit 1 if a pair's last cycle "
        "failed or a pair (not paused) has no successful cycle within --max-age (a pair "
        "that never ran: within --max-age of when it was first seen); else exit 3 if "
        "appointments in the window are not on a phone (missing=, by reason); else 0.")
    state.add_argument("--json", action="store_true", help="one JSON document, for monitoring")
    state.add_argument("--max-age", metavar="DURATION", default=None,
                       help="how old a pair's last successful cycle may be (default: "
                            "service.stale_after, else 3 x service.interval)")


def cmd_status(args: argparse.Namespace) -> int:
    """From status.json and the pause flags; talks to no server. Exit 1 if a pair last failed."""
    config = common.load(args)
    state_dir, zone = config.service.state_dir, config.service.timezone
    if state_dir.exists() and not os.access(state_dir, os.R_OK | os.X_OK):
        raise common.NotOwner(f"{state_dir}: not readable by this user; run this as root or as "
                              "the service's user")
    pid = lock.holder(state_dir)
    now, limit = datetime.now(UTC), max_age(config, args.max_age)
    data = status.read_status(state_dir)
    stale = stale_pairs(config, data, now, limit)
    failed = any(isinstance(e := data.get(p.name), dict) and "time" in e and not e.get("ok")
                 for p in config.pairs)
    missing = any(_missing(_entry(data, p.name)) for p in config.pairs)
    if args.json:
        common.say(as_json(config, data, pid, now, limit))
        return exit_code(failed or bool(stale), missing)
    common.say(f"daemon: running (pid {pid})" if pid else
               "daemon: not running (next=- below; the timer variant runs `sync` on its own "
               "schedule)")
    for pair in config.pairs:
        common.say(status_line(pair.name, _entry(data, pair.name),
                               status.paused_info(state_dir, pair.name), pid is not None, zone))
    for url, record in sorted(common.retired_records(config).items()):
        failed |= record.error is not None
        waiting = retirement.waits_for_new_target(config, record.pair)
        common.say(retired_line(url, record, zone, waiting))
    for name in stale:
        common.say(f"pair {name}: STALE no successful cycle in the last {_age(limit)} "
                   "(service.stale_after)")
    return exit_code(failed or bool(stale), missing)


def exit_code(failed: bool, missing: bool) -> int:
    """1 for a failed or stale pair, else 3 for appointments missing from a phone, else 0."""
    if failed:
        return int(ExitCode.FAILED)
    return int(ExitCode.MISSING if missing else ExitCode.OK)


def status_line(pair: str, entry: Mapping[str, Any] | None, paused: dict[str, Any] | None,
                running: bool, zone: tzinfo) -> str:
    """One pair: last cycle, result, counts, missing appointments, next run, pause."""
    parts = [f"pair {pair}:", *_last_parts(entry, zone)]
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


def _last_parts(entry: Mapping[str, Any] | None, zone: tzinfo) -> list[str]:
    """The last cycle: when, its result, its counts; or why there are none."""
    if not entry or "time" not in entry:
        cleared = entry.get("cleared") if entry else None
        if isinstance(cleared, dict):
            return [f"last=- (entries {cleared.get('why', '?')} {_when(cleared.get('at'), zone)})"]
        return ["last=never"]
    skipped, write_errors = entry.get("skipped"), entry.get("write_errors")
    parts = [f"last={_when(entry['time'], zone)}", f"result={_result(entry)}"]
    if not entry.get("ok"):
        success = entry.get("last_success")
        parts.append(f"last_ok={_when(success, zone) if success else 'never'}")
    if entry.get("as_of"):
        parts.append(f"as_of={_when(entry['as_of'], zone)}")
    parts += [f"{key}={int(entry.get(key) or 0)}" for key in COUNTS]
    parts.append(f"skipped={sum(skipped.values()) if isinstance(skipped, dict) else 0}")
    if found := _missing(entry):
        parts.append(_missing_text(found))
    if entry.get("other_installations"):
        parts.append(f"of_other_installations={int(entry['other_installations'])}")
    if isinstance(write_errors, dict) and write_errors:
        parts.append(f"write_errors={sum(write_errors.values())}")
    return parts


def retired_line(url: str, record: ledger.Record, zone: tzinfo, waiting: bool = False) -> str:
    """One retired target: what is left to delete there, and how the clean-up goes."""
    parts = [f"retired pair {record.pair}: {len(record.entries)} entries left to delete in {url}"]
    if waiting:
        parts.append(f"result=waiting (kept until pair {record.pair}'s new target has synced)")
    elif record.error is None:
        parts.append("result=pending (deleted by the next cycle)")
    else:
        parts.append(f"result=FAILED({record.error})")
        parts.append(f"last={_when(record.last_try, zone)}")
        parts.append(f"failures_in_a_row={record.failures}")
        parts.append(f"next={_when(record.retry_at, zone)}")
    return " ".join(parts)


def max_age(config: Config, option: str | None) -> timedelta:
    """--max-age, else service.stale_after, else 3 x interval."""
    if option:
        try:
            return parse_duration(option)
        except ValueError as exc:
            raise common.UsageError(f"--max-age: {exc}") from None
    return config.service.stale_limit


def is_stale(entry: Mapping[str, Any] | None, now: datetime, limit: timedelta,
             seen: datetime | None = None) -> bool:
    """True unless the pair's last successful cycle ran (by the clock) less than `limit` ago;
    a pair that never succeeded gets `limit` from when it was first seen (its `since`, else
    `seen`: when the config was last written), and is stale when that is unknown.

    The time a run reconciled as of (`sync --now`) plays no part: only when it really ran.
    """
    success = last_success(entry) if entry is not None else None
    if success is None:
        first = _parse(entry.get("since")) if entry is not None else None
        first = first or seen
        return first is None or now - first > limit
    return now - success > limit


def last_success(entry: Mapping[str, Any]) -> datetime | None:
    """When the pair's last successful cycle ran; files written before `last_success` was kept
    have only the last cycle's time, which counts when that cycle succeeded."""
    text = entry.get("last_success") or (entry.get("time") if entry.get("ok") else None)
    return _parse(text)


def stale_pairs(config: Config, data: Mapping[str, Any], now: datetime,
                limit: timedelta) -> list[str]:
    """Pairs (not paused) without a successful cycle within `limit`."""
    state_dir = config.service.state_dir
    seen = config_written(config)
    return [pair.name for pair in config.pairs
            if status.paused_info(state_dir, pair.name) is None
            and is_stale(_entry(data, pair.name), now, limit, seen)]


def config_written(config: Config) -> datetime | None:
    """When the config file was last written: a pair in it was there by then at the latest."""
    if config.path is None:
        return None
    try:
        return datetime.fromtimestamp(config.path.stat().st_mtime, UTC)
    except OSError:
        return None


def as_json(config: Config, data: Mapping[str, Any], pid: int | None, now: datetime,
            limit: timedelta) -> str:
    """One JSON document: the daemon, then every configured pair."""
    stale = set(stale_pairs(config, data, now, limit))
    pairs = [_pair_json(config.service.state_dir, name, _entry(data, name), name in stale)
             for name in (pair.name for pair in config.pairs)]
    return json.dumps({"daemon": {"running": pid is not None, "pid": pid},
                       "max_age_seconds": int(limit.total_seconds()), "pairs": pairs},
                      indent=1, sort_keys=True)


def _pair_json(state_dir: Path, name: str, entry: Mapping[str, Any] | None,
               stale: bool) -> dict[str, Any]:
    entry = entry or {}
    skipped, write_errors = entry.get("skipped"), entry.get("write_errors")
    return {
        "name": name, "last": entry.get("time"), "ok": entry.get("ok"),
        "last_success": _iso(last_success(entry)) if entry else None,
        "as_of": entry.get("as_of"),
        "error": entry.get("error"), "stale": stale,
        **{key: int(entry.get(key) or 0) for key in COUNTS},
        "skipped": dict(skipped) if isinstance(skipped, dict) else {},
        "missing": dict(_missing(entry)), "since": entry.get("since"),
        "write_errors": dict(write_errors) if isinstance(write_errors, dict) else {},
        "next_run": entry.get("next_run"), "failures_in_a_row": int(entry.get("failures") or 0),
        "paused": status.paused_info(state_dir, name),
    }


def _missing(entry: Mapping[str, Any] | None) -> dict[str, int]:
    """The appointments not on the phone, by reason, as the last cycle that got through saw
    them (a status file without `missing` counts its skips the same way)."""
    if not entry or "time" not in entry:
        return {}
    recorded = entry.get("missing")
    if not isinstance(recorded, dict):
        skipped = entry.get("skipped")
        recorded = missing(skipped) if isinstance(skipped, dict) else {}
    return {str(k): int(v) for k, v in sorted(recorded.items()) if isinstance(v, int) and v}


def _missing_text(found: Mapping[str, int]) -> str:
    reasons = ",".join(f"{k}={v}" for k, v in found.items())
    return f"MISSING={sum(found.values())}({reasons})"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _entry(data: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    entry = data.get(name)
    return entry if isinstance(entry, dict) else None


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(text: Any, zone: tzinfo) -> str:
    value = _parse(text)
    return "?" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _result(entry: Mapping[str, Any]) -> str:
    if entry.get("ok"):
        return "ok"
    if entry.get("error"):
        return f"FAILED({entry['error']})"
    if entry.get("held_back"):
        return "FAILED(held-back)"
    return "FAILED(write-errors)"


def _age(limit: timedelta) -> str:
    seconds = int(limit.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
