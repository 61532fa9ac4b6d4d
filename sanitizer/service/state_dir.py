"""The state directory as one object: every file a cycle reads or leaves for the next one.

The files themselves are written by their own modules (the ledger, a pair's sync state and
poison list, the status flags, the rejected secrets, the locks); this is the one door a cycle and
the supervisor go through, so that what a pair's cycle loads and saves is listed in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sanitizer.core.policy import Policy
from sanitizer.engine import ledger, poison, sync_state
from sanitizer.engine.expire import expired
from sanitizer.engine.report import PairReport
from sanitizer.service import credentials, lock, rejected, status


@dataclass(frozen=True)
class PairFiles:
    """What a pair's cycle starts from, read once before it asks any server."""

    state: sync_state.PairState | None
    poison: poison.Poison
    emptied: bool  # `confirm-empty` was given for the pair's next full cycle
    known: frozenset[str]  # the UIDs the ledger records for its target


@dataclass(frozen=True)
class StateDir:
    """One installation's state directory (`[service] state_dir`)."""

    path: Path

    def ledger(self) -> ledger.Ledger:
        """Every phone calendar written and the entries recorded in it."""
        return ledger.load(self.path)

    def uid_key(self, *, dry_run: bool) -> bytes | None:
        """The UID key; made on first use unless this is a dry run (then None if missing)."""
        return (credentials.existing_uid_key(self.path) if dry_run
                else credentials.uid_key(self.path))

    def sync_state(self, pair: str) -> sync_state.PairState | None:
        """What the pair's last cycle left, or None."""
        return sync_state.load(self.path, pair)

    def is_paused(self, pair: str) -> bool:
        """Whether `pause` holds the pair."""
        return status.is_paused(self.path, pair)

    def has_expired(self, pair: Policy, now: datetime) -> bool:
        """Whether the pair's recorded entries include one past retention (no request)."""
        state = sync_state.load(self.path, pair.name)
        return state is not None and bool(expired(state.entries, now, pair.retention))

    def pair_lock(self, pair: str, wait: float) -> contextlib.AbstractContextManager[None]:
        """The pair's lock: one process writes its target at a time (lock.PairBusy)."""
        return lock.pair_lock(self.path, pair, timeout=wait)

    def is_rejected(self, account: str, fingerprint: str) -> bool:
        """Whether the server rejected this very secret of the account before."""
        return rejected.is_rejected(self.path, account, fingerprint)

    def remember_rejection(self, account: str, fingerprint: str, now: datetime) -> None:
        """Keep a rejected secret from being sent again until it changes."""
        rejected.remember(self.path, account, fingerprint, now)

    def open_pair(self, pair: Policy, target_account: str, key: bytes, *,
                  dry_run: bool) -> PairFiles:
        """What the pair's cycle starts from. Unless this is a dry run, its target is written
        into the ledger first, so that a crash cannot hide a calendar it wrote."""
        known = (ledger.record(self.path, pair.target_url) if dry_run else
                 ledger.note_target(self.path, pair.target_url, pair.name, target_account))
        return PairFiles(sync_state.load(self.path, pair.name),
                         poison.load(self.path, pair.name, key),
                         status.empty_confirmed(self.path, pair.name),
                         frozenset(known.entries) if known is not None else frozenset())

    def save(self, pair: Policy, report: PairReport) -> None:
        """What a cycle leaves for the next one; a cycle that left nothing (it failed before
        reaching the target, or its worker died) keeps the entries known so far, and the next
        cycle is a full one."""
        if report.dry_run:
            return
        if report.ok and report.mode == "full" and status.empty_confirmed(self.path, pair.name):
            status.empty_done(self.path, pair.name)  # `confirm-empty` holds for one full cycle
        if report.poison is not None:
            poison.save(self.path, pair.name, report.poison)
        if report.state is None:
            sync_state.mark_unclean(self.path, pair.name)
            return
        sync_state.save(self.path, pair.name, report.state)
        self.note_entries(pair.target_url, {uid: entry.href
                                            for uid, entry in report.state.entries.items()})

    def note_entries(self, url: str, entries: Mapping[str, str]) -> None:
        """The entries a target holds now, in the ledger."""
        ledger.note_entries(self.path, url, entries)
