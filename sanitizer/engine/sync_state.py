"""What a pair remembers between cycles, so that a quiet cycle costs one cheap request.

Per pair, in `state_dir/pairs/NAME.json`: the source's sync token (for a CalDAV source with a
getctag, that ctag too and how many quiet cycles until it is checked again:
stores/caldav/ctag.py, so that a quiet cycle costs one PROPFIND), when the last full reconcile ran,
the next time the window's contents change by time alone (an instance entering the lookahead or
passing retention), and the owned phone entries (UID, href, ETag, a digest of what was written, its
end time, and a keyed hash of the source object it came from), and the skip reasons of the source
objects that were skipped, by the same keyed hash, so a quiet cycle still reports them. No text
from any event is stored: digests and source hashes are keyed with the installation's secret, so
they link to nothing without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sanitizer.core.model import Entry
from sanitizer.core.policy import Policy
from sanitizer.files import named, write_json

VERSION = 1
PAIRS_DIR = "pairs"
MAX_TOKEN = 8192  # characters; real sync tokens and deltaLinks are a few hundred


@dataclass(frozen=True)
class PairState:
    """The state of one pair after a cycle that reached the target."""

    fingerprint: str
    token: str | None
    last_full: datetime
    next_boundary: datetime
    entries: Mapping[str, Entry] = field(default_factory=dict)
    foreign: int = 0
    clean: bool = True
    other_installations: int = 0
    skipped: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # origin -> reasons

    def allows_quiet(self, fingerprint: str, now: datetime, full_every: timedelta) -> bool:
        """Whether the next cycle may ask only what changed: the last cycle left nothing in
        doubt, the config is the same, a full reconcile is not due and no time boundary passed."""
        return (self.clean and bool(self.token) and self.fingerprint == fingerprint
                and self.last_full <= now < self.last_full + full_every
                and now < self.next_boundary)


def keyed(key: bytes, *parts: str | bytes) -> str:
    """A short keyed hash: stable for this installation, meaningless without its key."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        mac.update(b"\x00")
    return mac.hexdigest()[:24]


def fingerprint(pair: Policy, zone: tzinfo, key: bytes) -> str:
    """Changes whenever anything that shapes the phone entries changes (rules, titles, zone)."""
    return keyed(key, "config", pair.shape(), str(zone))


def path_for(state_dir: Path, pair: str) -> Path:
    """Where a pair's state lives (a name that could leave the directory is refused)."""
    return named(state_dir / PAIRS_DIR, pair, ".json")


def load(state_dir: Path, pair: str) -> PairState | None:
    """The saved state, or None if there is none or it is unreadable (then a full cycle runs)."""
    try:
        data = json.loads(path_for(state_dir, pair).read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            return None
        return PairState(
            fingerprint=str(data["fingerprint"]), token=bounded(data["token"]),
            last_full=datetime.fromisoformat(data["last_full"]),
            next_boundary=datetime.fromisoformat(data["next_boundary"]),
            entries={uid: Entry(**entry) for uid, entry in data["entries"].items()},
            foreign=int(data["foreign"]), clean=bool(data["clean"]),
            other_installations=int(data.get("other_installations", 0)),
            skipped={str(origin): {str(k): int(v) for k, v in reasons.items()}
                     for origin, reasons in data.get("skipped", {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def bounded(token: object) -> str | None:
    """A sync token or deltaLink as the server gave it, or none when it is larger than any
    real one (the next cycle then runs in full instead of storing what a server inflated)."""
    return token if isinstance(token, str) and len(token) <= MAX_TOKEN else None


def save(state_dir: Path, pair: str, state: PairState) -> None:
    """Write the state atomically (0600), compactly: every pair writes it every cycle (a
    quiet cycle's state is the same as before: then nothing is written)."""
    data: dict[str, Any] = {
        "version": VERSION, "fingerprint": state.fingerprint, "token": bounded(state.token),
        "last_full": state.last_full.isoformat(), "next_boundary": state.next_boundary.isoformat(),
        "entries": {uid: _fields(entry) for uid, entry in sorted(state.entries.items())},
        "foreign": state.foreign, "clean": state.clean,
        "other_installations": state.other_installations,
        "skipped": {origin: dict(reasons) for origin, reasons in sorted(state.skipped.items())},
    }
    write_json(path_for(state_dir, pair), data, compact=True, if_changed=True)


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def _fields(entry: Entry) -> dict[str, str | None]:
    """An entry as saved: its fields by name (dataclasses.asdict deep-copies every value, a
    third of the supervisor's CPU per quiet pair at 1,000 pairs)."""
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}


def forget(state_dir: Path, pair: str) -> None:
    """Drop a pair's state: its next cycle is a full reconcile (after a wipe, say)."""
    path_for(state_dir, pair).unlink(missing_ok=True)


def mark_unclean(state_dir: Path, pair: str) -> None:
    """Keep a pair's entries (their ends drive retention) but make its next cycle a full one:
    the last cycle failed, or its worker died halfway."""
    state = load(state_dir, pair)
    if state is not None and state.clean:
        save(state_dir, pair, replace(state, clean=False))
