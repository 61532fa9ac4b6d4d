"""The status file and pause flags in state_dir: counts, times and reason codes only.

`status.json` holds, per pair, the last cycle's time, result and counts, and (from the daemon) the
next run and the count of failures in a row, so `status` can answer without talking to a server.
A pair is paused (after `wipe`) while `paused/PAIR` exists; the file says when and why.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sanitizer.engine.report import PairReport
from sanitizer.files import named, write_json

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
PAUSED_DIR = "paused"


def is_paused(state_dir: Path, pair: str) -> bool:
    """True while the pair is paused (after a wipe, until resume). A flag that cannot be looked
    at counts as set: after a lost phone, writing to it again by mistake is the worse error."""
    try:
        (named(state_dir / PAUSED_DIR, pair)).stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("pair %s: cannot read its pause flag (%s); treating it as paused",
                    pair, exc.strerror)
    return True


def read_status(state_dir: Path) -> dict[str, Any]:
    """The last recorded status of every pair (empty if none yet)."""
    try:
        data = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(state_dir: Path, reports: list[PairReport], now: datetime) -> None:
    """Merge this cycle's reports into the status file, atomically."""
    data = read_status(state_dir)
    for report in reports:
        entry = data.get(report.pair)
        data[report.pair] = entry = dict(entry) if isinstance(entry, dict) else {}
        entry.update({
            "time": now.isoformat(timespec="seconds"),
            "ok": report.ok,
            "error": report.error_code,
            "created": report.created, "updated": report.updated, "deleted": report.deleted,
            "unchanged": report.unchanged, "foreign": report.foreign,
            "other_installations": report.other_installations,
            "held_back": report.held_back, "skipped": dict(report.skipped),
            "write_errors": dict(report.write_errors),
        })
    write_json(state_dir / STATUS_FILE, data, compact=True)


def record_schedule(state_dir: Path, schedule: dict[str, tuple[datetime, int]]) -> None:
    """The daemon's plan per pair: next run and failures in a row (0 after a success)."""
    data = read_status(state_dir)
    for pair, (next_run, failures) in schedule.items():
        entry = data.get(pair)
        data[pair] = entry = dict(entry) if isinstance(entry, dict) else {}
        entry["next_run"] = next_run.isoformat(timespec="seconds")
        entry["failures"] = failures
    write_json(state_dir / STATUS_FILE, data, compact=True)


def pause(state_dir: Path, pair: str, reason: str, now: datetime) -> None:
    """Pause a pair: every cycle skips it until resume()."""
    write_json(named(state_dir / PAUSED_DIR, pair),
               {"since": now.isoformat(timespec="seconds"), "reason": reason})


def resume(state_dir: Path, pair: str) -> bool:
    """Remove the pause flag; False if the pair was not paused."""
    try:
        (named(state_dir / PAUSED_DIR, pair)).unlink()
    except FileNotFoundError:
        return False
    return True


def paused_info(state_dir: Path, pair: str) -> dict[str, Any] | None:
    """When and why the pair was paused ({} if the flag has no readable details), or None."""
    path = named(state_dir / PAUSED_DIR, pair)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

