"""The status file and pause flags in state_dir: counts, times and reason codes only.

`status.json` holds, per pair, the last cycle's time, result and counts, so `status` can answer
without talking to a server. A pair is paused (after `wipe`) while `paused/PAIR` exists.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sanitizer.engine import PairReport

STATUS_FILE = "status.json"
PAUSED_DIR = "paused"


def is_paused(state_dir: Path, pair: str) -> bool:
    """True while the pair is paused (after a wipe, until resume)."""
    return (state_dir / PAUSED_DIR / pair).exists()


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
        data[report.pair] = {
            "time": now.isoformat(timespec="seconds"),
            "ok": report.ok,
            "error": report.error_code,
            "created": report.created, "updated": report.updated, "deleted": report.deleted,
            "unchanged": report.unchanged, "foreign": report.foreign,
            "held_back": report.held_back, "skipped": dict(report.skipped),
            "write_errors": dict(report.write_errors),
        }
    write_json(state_dir / STATUS_FILE, data)


def write_json(path: Path, data: Any) -> None:
    """Write a 0600 file by rename, so a crash never leaves half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
