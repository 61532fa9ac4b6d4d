"""Poison objects: source objects that spent their whole CPU budget or broke a cap, remembered so
that each is paid for once.

Anyone who can send an invitation can put such an object into a work calendar; parsed again on
every cycle, forty of them cost minutes of CPU. Each is remembered by (href, ETag) with its reason
code, and skipped, counted and reported under that reason on later cycles without being fetched
(where the store can list ETags) or parsed again, until its ETag changes. A full cycle forgets the
objects that left the calendar. In `state_dir/poison/PAIR.json`, hrefs and ETags keyed with the
installation's secret, as in the pair's state: no event text, nothing that links without the key.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sanitizer.engine.sync_state import keyed
from sanitizer.files import named, write_json

VERSION = 1
POISON_DIR = "poison"
MAX_REMEMBERED = 10_000
REASONS = frozenset({"expansion-timeout", "too-large", "too-complex", "line-too-long",
                     "too-many-parameters", "too-many-instances", "recurrence-too-dense"})


@dataclass
class Poison:
    """The remembered objects of one pair: keyed href -> (keyed ETag, reason code)."""

    key: bytes = field(repr=False)
    known: dict[str, tuple[str, str]] = field(default_factory=dict)
    changed: bool = False

    def reason(self, href: str, etag: str | None) -> str | None:
        """The remembered reason if this very version of the object is known to be poison."""
        if etag is None:
            return None
        found = self.known.get(keyed(self.key, "href", href))
        return found[1] if found and found[0] == keyed(self.key, "etag", etag) else None

    def remember(self, href: str, etag: str | None, reason: str) -> None:
        """Keep an object that broke a budget or a cap (only with an ETag: a new version must
        be read again)."""
        if etag is None or reason not in REASONS or len(self.known) >= MAX_REMEMBERED:
            return
        self.known[keyed(self.key, "href", href)] = (keyed(self.key, "etag", etag), reason)
        self.changed = True

    def keep_only(self, hrefs: Collection[str]) -> None:
        """After a full listing: forget the objects that are no longer there."""
        present = {keyed(self.key, "href", href) for href in hrefs}
        gone = [k for k in self.known if k not in present]
        for k in gone:
            del self.known[k]
        self.changed = self.changed or bool(gone)


def path_for(state_dir: Path, pair: str) -> Path:
    """Where a pair's poison list lives."""
    return named(state_dir / POISON_DIR, pair, ".json")


def load(state_dir: Path, pair: str, key: bytes) -> Poison:
    """The remembered objects (none if the file is missing or unreadable: they are read again)."""
    try:
        data = json.loads(path_for(state_dir, pair).read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            return Poison(key)
        known = {str(h): (str(v[0]), str(v[1])) for h, v in data["objects"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return Poison(key)
    return Poison(key, known)


def save(state_dir: Path, pair: str, poison: Poison) -> None:
    """Write the list atomically (0600), if it changed."""
    if poison.changed:
        write_json(path_for(state_dir, pair),
                   {"version": VERSION, "objects": {h: list(v) for h, v in
                                                    sorted(poison.known.items())}})
