"""The ledger: every target calendar this installation has written, whatever the config says now.

`state_dir/ledger.json` holds, per target URL, the pair and account that wrote it and the owned
entries there (UID -> href), and for a target no configured pair wants any more ("retired"), how
its clean-up went: failures in a row, when to try again, the last reason code. A target is noted
before the first write to it, so a crash cannot hide it; it leaves the ledger only once it holds
nothing of ours. No event text is stored: UIDs and hrefs are ours and keyed.
"""

from __future__ import annotations

import fcntl
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
VERSION = 1
LEDGER_FILE = "ledger.json"
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


def load(state_dir: Path) -> Ledger:
    """The ledger (empty if there is none yet); a damaged one is reported and read as empty."""
    return _read(state_dir)[0]


def _read(state_dir: Path) -> tuple[Ledger, bool]:
    """(the ledger, whether a file was there but could not be read)."""
    path = state_dir / LEDGER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError("unknown version")
        return {str(url): _record(item) for url, item in data["targets"].items()}, False
    except FileNotFoundError:
        return {}, False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("the ledger %s is unreadable; retired targets are not cleaned until it is "
                    "restored (a new one is started, the old one kept as %s)", path,
                    DAMAGED_SUFFIX)
        return {}, True


def _record(item: Any) -> Record:
    entries = {str(uid): str(href) for uid, href in dict(item["entries"]).items()}
    return Record(pair=str(item["pair"]), account=str(item["account"]), entries=entries,
                  failures=int(item.get("failures", 0)), retry_at=item.get("retry_at"),
                  error=item.get("error"), last_try=item.get("last_try"))


def _save(state_dir: Path, ledger: Ledger) -> None:
    targets = {url: asdict(record) for url, record in sorted(ledger.items())}
    write_json(state_dir / LEDGER_FILE, {"version": VERSION, "targets": targets})


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


def update(state_dir: Path, change: Callable[[Ledger], None]) -> Ledger:
    """Read, change and write the ledger under its lock; written only if something changed."""
    with _locked(state_dir):
        ledger, damaged = _read(state_dir)
        before = dict(ledger)
        change(ledger)
        if ledger != before:
            if damaged:  # kept for the admin to restore from, never overwritten
                path = state_dir / LEDGER_FILE
                path.replace(path.with_name(LEDGER_FILE + DAMAGED_SUFFIX))
            _save(state_dir, ledger)
        return ledger


def note_target(state_dir: Path, url: str, pair: str, account: str) -> None:
    """Before the first write to a target: remember it, so it is cleaned if it is ever retired."""
    def change(ledger: Ledger) -> None:
        old = ledger.get(url)
        if old is None:
            ledger[url] = Record(pair, account)
        elif (old.pair, old.account, old.failures) != (pair, account, 0):
            ledger[url] = Record(pair, account, old.entries)
    update(state_dir, change)


def note_entries(state_dir: Path, url: str, entries: Mapping[str, str]) -> None:
    """After a cycle: the owned entries the target holds now (UID -> href)."""
    def change(ledger: Ledger) -> None:
        old = ledger.get(url)
        if old is not None and dict(old.entries) != dict(entries):
            ledger[url] = replace(old, entries=dict(sorted(entries.items())))
    update(state_dir, change)


def cleaned(state_dir: Path, url: str) -> None:
    """A retired target holds nothing of ours any more: forget it."""
    def change(ledger: Ledger) -> None:
        ledger.pop(url, None)
    update(state_dir, change)


def clean_up_failed(state_dir: Path, url: str, *, entries: Mapping[str, str], error: str,
                    now: datetime, retry_at: datetime) -> None:
    """A retired target could not be cleaned: what is left, why, and when to try again."""
    def change(ledger: Ledger) -> None:
        old = ledger.get(url)
        if old is not None:
            ledger[url] = replace(old, entries=dict(entries), failures=old.failures + 1,
                                  error=error, retry_at=retry_at.isoformat(timespec="seconds"),
                                  last_try=now.isoformat(timespec="seconds"))
    update(state_dir, change)


def retired(ledger: Ledger, wanted: Callable[[str], bool]) -> Ledger:
    """The targets no configured pair writes any more."""
    return {url: record for url, record in ledger.items() if not wanted(url)}
