"""The ledger: every target calendar this installation has written, whatever the config says now.

`state_dir/ledger/` holds one small file per target URL: the pair and account that wrote it and
the owned entries there (UID -> href), and for a target no configured pair wants any more
("retired"), how its clean-up went: failures in a row, when to try again, the last reason code.
One file per target, so that a pair's cycle reads and writes only its own target's record,
whatever the number of pairs; only the once-per-cycle retirement check reads them all. A target is
noted before the first write to it, so a crash cannot hide it; it leaves the ledger only once it
holds nothing of ours. No event text is stored: UIDs and hrefs are ours and keyed. A single
`ledger.json` of an earlier version is split into the directory the first time it is read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sanitizer.files import write_json

log = logging.getLogger(__name__)
VERSION = 2
LEGACY_VERSION = 1
LEDGER_DIR = "ledger"
LEDGER_FILE = "ledger.json"  # the single file of version 1, split on first read
LOCK_FILE = "ledger.lock"
DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True)
class Record:
    """What this installation wrote into one target calendar."""

    pair: str
    account: str
    entries: Mapping[str, str] = field(default_factory=dict)  # owned UID -> href
    failures: int = 0  # clean-up attempts in a row that failed (retired targets only)
    retry_at: str | None = None  # ISO time before which no clean-up is tried again
    error: str | None = None  # the last clean-up's reason code
    last_try: str | None = None


Ledger = dict[str, Record]  # target URL -> record


def path_for(state_dir: Path, url: str) -> Path:
    """The file of one target's record: named by a hash of its URL, so any URL is safe."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return state_dir / LEDGER_DIR / f"{digest}.json"


def load(state_dir: Path) -> Ledger:
    """Every target's record (empty if there are none yet); a damaged file is reported and
    skipped (it is kept aside when its target is next written)."""
    _split_legacy(state_dir)
    found: Ledger = {}
    try:
        names = sorted(os.listdir(state_dir / LEDGER_DIR))
    except FileNotFoundError:
        return found
    for name in names:
        if name.endswith(".json"):
            url, record = _read_file(state_dir / LEDGER_DIR / name)
            if url is not None and record is not None:
                found[url] = record
    return found


def record(state_dir: Path, url: str) -> Record | None:
    """One target's record, reading only its own file."""
    _split_legacy(state_dir)
    found, item = _read_file(path_for(state_dir, url))
    return item if found == url else None


def _read_file(path: Path) -> tuple[str | None, Record | None]:
    """(URL, record) of one file; (None, None) if there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError("unknown version")
        return str(data["url"]), _record(data)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("the ledger file %s is unreadable; its target is not cleaned until it is "
                    "restored (it is kept as %s when the target is written again)", path,
                    DAMAGED_SUFFIX)
        return None, None


def _record(item: Any) -> Record:
    entries = {str(uid): str(href) for uid, href in dict(item["entries"]).items()}
    return Record(pair=str(item["pair"]), account=str(item["account"]), entries=entries,
                  failures=int(item.get("failures", 0)), retry_at=item.get("retry_at"),
                  error=item.get("error"), last_try=item.get("last_try"))


def _split_legacy(state_dir: Path) -> None:
    """A version-1 `ledger.json`: one file per target from it, then it goes; a damaged one is
    kept aside as `ledger.json.damaged`, never overwritten."""
    legacy = state_dir / LEDGER_FILE
    if not legacy.exists():
        return
    with _locked(state_dir):
        try:
            data = json.loads(legacy.read_text(encoding="utf-8"))
            if data.get("version") != LEGACY_VERSION:
                raise ValueError("unknown version")
            old = {str(url): _record(item) for url, item in data["targets"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("the ledger %s is unreadable; retired targets are not cleaned until it "
                        "is restored (it is kept as %s)", legacy, DAMAGED_SUFFIX)
            legacy.replace(legacy.with_name(LEDGER_FILE + DAMAGED_SUFFIX))
            return
        for url, item in old.items():
            if not path_for(state_dir, url).exists():
                _save(state_dir, url, item)
        legacy.unlink()


def _save(state_dir: Path, url: str, item: Record | None) -> None:
    path = path_for(state_dir, url)
    if item is None:
        path.unlink(missing_ok=True)
        return
    write_json(path, {"version": VERSION, "url": url, **asdict(item)}, compact=True)


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One writer of the ledger at a time, across threads and processes."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def update(state_dir: Path, url: str,
           change: Callable[[Record | None], Record | None]) -> Record | None:
    """Read, change and write one target's record under the lock; written only if it changed
    (None: the target leaves the ledger)."""
    _split_legacy(state_dir)
    path = path_for(state_dir, url)
    with _locked(state_dir):
        found, old = _read_file(path)
        if found != url:
            old = None
        new = change(old)
        if new != old:
            if found != url and path.exists():  # damaged (or a hash clash): kept, not lost
                path.replace(path.with_name(path.name + DAMAGED_SUFFIX))
            _save(state_dir, url, new)
        return new


def note_target(state_dir: Path, url: str, pair: str, account: str) -> Record:
    """Before the first write to a target: remember it, so it is cleaned if it is ever retired.
    Returns the record (with the entries known from earlier cycles)."""
    def change(old: Record | None) -> Record:
        if old is None:
            return Record(pair, account)
        if (old.pair, old.account, old.failures) != (pair, account, 0):
            return Record(pair, account, old.entries)
        return old
    noted = update(state_dir, url, change)
    return noted if noted is not None else Record(pair, account)


def note_entries(state_dir: Path, url: str, entries: Mapping[str, str]) -> None:
    """After a cycle: the owned entries the target holds now (UID -> href)."""
    def change(old: Record | None) -> Record | None:
        if old is not None and dict(old.entries) != dict(entries):
            return replace(old, entries=dict(sorted(entries.items())))
        return old
    update(state_dir, url, change)


def cleaned(state_dir: Path, url: str) -> None:
    """A retired target holds nothing of ours any more: forget it."""
    update(state_dir, url, lambda old: None)


def clean_up_failed(state_dir: Path, url: str, *, entries: Mapping[str, str], error: str,
                    now: datetime, retry_at: datetime) -> None:
    """A retired target could not be cleaned: what is left, why, and when to try again."""
    def change(old: Record | None) -> Record | None:
        if old is None:
            return None
        return replace(old, entries=dict(entries), failures=old.failures + 1, error=error,
                       retry_at=retry_at.isoformat(timespec="seconds"),
                       last_try=now.isoformat(timespec="seconds"))
    update(state_dir, url, change)


def retired(ledger: Ledger, wanted: Callable[[str], bool]) -> Ledger:
    """The targets no configured pair writes any more."""
    return {url: record for url, record in ledger.items() if not wanted(url)}
