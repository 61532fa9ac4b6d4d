"""`status --json` and the staleness test: for monitoring (Nagios/Icinga, systemd OnFailure=).

A pair is stale when it has not completed a cycle successfully within `service.stale_after`
(default 3 x interval); paused pairs are not, and before the installation's first cycle (no
status file yet) no pair is. Counts, times and reason codes only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sanitizer.cli.common import UsageError
from sanitizer.core.durations import parse_duration
from sanitizer.service import status
from sanitizer.service.config import Config

COUNTS = ("created", "updated", "deleted", "unchanged", "foreign", "held_back")


def max_age(config: Config, option: str | None) -> timedelta:
    """--max-age, else service.stale_after, else 3 x interval."""
    if option:
        try:
            return parse_duration(option)
        except ValueError as exc:
            raise UsageError(f"--max-age: {exc}") from None
    return config.service.stale_limit


def is_stale(entry: Mapping[str, Any] | None, now: datetime, limit: timedelta) -> bool:
    """True unless the last cycle succeeded and ended less than `limit` ago."""
    if not entry or not entry.get("ok") or "time" not in entry:
        return entry is not None
    try:
        when = datetime.fromisoformat(str(entry["time"]))
    except ValueError:
        return True
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return now - when > limit


def stale_pairs(config: Config, data: Mapping[str, Any], now: datetime,
                limit: timedelta) -> list[str]:
    """Pairs (not paused) without a successful cycle within `limit`."""
    state_dir = config.service.state_dir
    empty: Mapping[str, Any] = {}
    return [pair.name for pair in config.pairs
            if status.paused_info(state_dir, pair.name) is None
            and is_stale(_entry(data, pair.name) or (empty if data else None), now, limit)]


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
        "error": entry.get("error"), "stale": stale,
        **{key: int(entry.get(key) or 0) for key in COUNTS},
        "skipped": dict(skipped) if isinstance(skipped, dict) else {},
        "write_errors": dict(write_errors) if isinstance(write_errors, dict) else {},
        "next_run": entry.get("next_run"), "failures_in_a_row": int(entry.get("failures") or 0),
        "paused": status.paused_info(state_dir, name),
    }


def _entry(data: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    entry = data.get(name)
    return entry if isinstance(entry, dict) else None
