"""The status file and pause flags in state_dir: counts, times and reason codes only.

`status.json` holds, per pair, the last cycle's time (`time`, when it really ran, by the clock),
the time it reconciled as of when that was another (`as_of`, from `sync --now`), its result and
counts, the appointments in the window that are not on the phone (`missing`, by reason code), the
time of the last successful cycle (`last_success`) and the target it wrote then, when the pair was
first seen (`since`, from which a pair that never succeeds turns stale), and (from the daemon) the
next run and the count of failures in a row, so `status` can answer without talking to a server.
When the entries a pair's counts describe are gone (wiped, retired), so are the counts.
A pair is paused (after `wipe`) while `paused/PAIR` exists; the file says when and why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True)
class Noted:
    """One pair's cycle as the status file records it: the report, when it really ran (the
    clock), the time it reconciled as of when that was another (`sync --now`), and the calendar
    it wrote."""

    report: PairReport
    ran_at: datetime
    as_of: datetime | None = None
    target: str | None = None


def record(state_dir: Path, reports: list[PairReport], ran_at: datetime,
           as_of: datetime | None = None, targets: Mapping[str, str] | None = None) -> None:
    """Merge this cycle's reports into the status file, atomically. `ran_at` is the clock's
    time of the run; `as_of` the time it reconciled as of, when that was another; `targets`
    the calendar each pair wrote."""
    record_each(state_dir, [Noted(r, ran_at, as_of, (targets or {}).get(r.pair))
                            for r in reports])


def record_each(state_dir: Path, noted: Sequence[Noted]) -> None:
    """Merge cycles into the status file with one read and one atomic write, whatever their
    number (the supervisor gathers the pairs that finished within a second). A cycle that did
    not get through keeps the last known missing appointments: they are not back on the phone
    because a server was down."""
    if not noted:
        return
    data = read_status(state_dir)
    for item in noted:
        report, when = item.report, item.ran_at.isoformat(timespec="seconds")
        entry = data.get(report.pair)
        data[report.pair] = entry = dict(entry) if isinstance(entry, dict) else {}
        entry.pop("cleared", None)
        entry.setdefault("since", when)
        if report.ok:
            entry["last_success"] = when
            if item.target is not None:
                entry["success_target"] = item.target
        if report.error is None or not isinstance(entry.get("missing"), dict):
            entry["missing"] = dict(report.missing)
        if item.as_of is None:
            entry.pop("as_of", None)
        else:
            entry["as_of"] = item.as_of.isoformat(timespec="seconds")
        entry.update({
            "time": when,
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
        entry.setdefault("since", datetime.now(UTC).isoformat(timespec="seconds"))
        entry["next_run"] = next_run.isoformat(timespec="seconds")
        entry["failures"] = failures
    write_json(state_dir / STATUS_FILE, data, compact=True)


def clear(state_dir: Path, pair: str, why: str, now: datetime) -> None:
    """The pair's phone entries are gone (`why`: wiped, retired): drop the counts that described
    them; when it was first seen and last succeeded stay, so staleness still counts."""
    data = read_status(state_dir)
    entry = data.get(pair)
    if not isinstance(entry, dict):
        return
    data[pair] = {key: entry[key] for key in ("since", "last_success") if key in entry}
    data[pair]["cleared"] = {"at": now.isoformat(timespec="seconds"), "why": why}
    write_json(state_dir / STATUS_FILE, data)


def forget(state_dir: Path, pair: str) -> None:
    """A retired pair whose entries are all deleted: nothing of it is left to show."""
    data = read_status(state_dir)
    if data.pop(pair, None) is not None:
        write_json(state_dir / STATUS_FILE, data)


def success_target(state_dir: Path, pair: str) -> str | None:
    """The target the pair's last successful cycle wrote, if recorded."""
    entry = read_status(state_dir).get(pair)
    target = entry.get("success_target") if isinstance(entry, dict) else None
    return target if isinstance(target, str) else None


EMPTIED_DIR = "emptied"


def confirm_empty(state_dir: Path, pair: str, now: datetime) -> None:
    """The admin says the pair's source really is empty: its next cycle may empty the phone."""
    write_json(named(state_dir / EMPTIED_DIR, pair), {"since": now.isoformat(timespec="seconds")})


def empty_confirmed(state_dir: Path, pair: str) -> bool:
    """Whether an emptied source was confirmed and not yet acted on."""
    return named(state_dir / EMPTIED_DIR, pair).exists()


def empty_done(state_dir: Path, pair: str) -> None:
    """A cycle got through with the confirmation: it is used up (the guard is back)."""
    named(state_dir / EMPTIED_DIR, pair).unlink(missing_ok=True)


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

