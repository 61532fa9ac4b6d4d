"""The outcome of one cycle of one pair: counts and reason codes, never event text."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sanitizer.core.model import Create, Delete, Plan, SanitizedEvent, Update
from sanitizer.engine.poison import Poison
from sanitizer.engine.sync_state import PairState
from sanitizer.errors import ADMIN

if TYPE_CHECKING:
    from sanitizer.engine.execute import WriteResult

log = logging.getLogger(__name__)
# Skips that are the point, not a loss: a cancelled instance, a rule's `skip`, a task or journal.
# Every other skip is an appointment in the window that is not on the phone.
INTENDED_SKIPS = frozenset({"cancelled", "rule-skip", "not-an-event"})


@dataclass
class PairReport:
    """The outcome of one cycle of one pair: counts and reason codes, nothing else."""

    pair: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    expired: int = 0
    unchanged: int = 0
    foreign: int = 0
    other_installations: int = 0  # of the foreign entries, those another installation made
    held_back: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    write_errors: Counter[str] = field(default_factory=Counter)
    unwritten: Counter[str] = field(default_factory=Counter)  # creates and updates that failed
    error: str | None = None  # a one-line message, already free of event text
    error_code: str | None = None  # a short reason code, for the status file
    failed_url: str | None = None  # the URL of the request that failed the cycle, if one did
    dry_run: bool = False
    mode: str = "full"  # full, quiet (nothing changed) or incremental
    desired: list[SanitizedEvent] = field(default_factory=list, repr=False)
    state: PairState | None = field(default=None, repr=False)
    poison: Poison | None = field(default=None, repr=False)  # objects to skip unread next time

    @property
    def ok(self) -> bool:
        """A pair fails if it could not be read or written, or if the guard held deletions."""
        real_errors = {k: v for k, v in self.write_errors.items() if k != "conflict"}
        return self.error is None and not real_errors and not self.held_back

    @property
    def missing(self) -> Counter[str]:
        """Appointments in the window that are not on the phone (or not as they are at work),
        by reason code: skipped ones, and those whose write failed this cycle, a lost race
        (`write-conflict`) included: if the next cycle writes them, they are gone from here."""
        found = missing(self.skipped)
        found.update({f"write-{reason}": count for reason, count in self.unwritten.items()})
        return found

    def status_line(self) -> str:
        """One line, for the CLI and the log."""
        if self.error is not None:
            return f"pair {self.pair}: FAILED {self.error}"
        state = "ok" if self.ok else "FAILED"
        words = "would create" if self.dry_run else "created"
        parts = [f"pair {self.pair}: {state}", f"{words}={self.created}",
                 f"updated={self.updated}", f"deleted={self.deleted}",
                 f"unchanged={self.unchanged}", f"skipped={sum(self.skipped.values())}",
                 f"foreign={self.foreign}"]
        if self.other_installations:
            parts.append(f"(of other installations: {self.other_installations})")
        if self.skipped:
            parts.append("(" + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) + ")")
        if self.missing:
            parts.append(f"MISSING={sum(self.missing.values())} not on the phone")
        if self.held_back:
            parts.append(f"held-back={self.held_back} (source returned nothing; if the work "
                         f"calendar really is empty: `{ADMIN} confirm-empty "
                         f"{self.pair}`)")
        if self.write_errors:
            parts.append("write-errors: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.write_errors.items())))
        return " ".join(parts) + f" [{self.mode}]"

    @classmethod
    def failed(cls, pair: str, reason: str, message: str, *, dry_run: bool = False,
               state: PairState | None = None, url: str | None = None) -> PairReport:
        """A cycle that did not run or did not finish: a reason code and a one-line message
        (already free of event text), what to remember if anything, and the URL of the
        request that failed (so that the account it concerns is known without reading the
        message)."""
        return cls(pair, error=message, error_code=reason, dry_run=dry_run, state=state,
                   failed_url=url)

    @classmethod
    def internal_error(cls, pair: str, exc: BaseException, *, dry_run: bool = False) -> PairReport:
        """A bug met while running the pair: named by the exception's type only (its text may
        quote input), so that one pair's bug never stops the others."""
        report = cls.failed(pair, "internal-error", f"internal error ({type(exc).__name__})",
                            dry_run=dry_run)
        log.error("pair %s: %s", pair, report.error)
        return report

    def count(self, the_plan: Plan, results: Sequence[WriteResult] | None = None) -> None:
        """The plan's counts, less the writes that failed (`results`, in the plan's order);
        each failure is counted by reason."""
        done = [r is None or r.error is None
                for r in (results if results is not None else [None] * len(the_plan.actions))]
        actions = list(zip(the_plan.actions, done, strict=True))
        self.created = sum(isinstance(a, Create) and ok for a, ok in actions)
        self.updated = sum(isinstance(a, Update) and ok for a, ok in actions)
        self.deleted = sum(isinstance(a, Delete) and ok for a, ok in actions)
        self.expired = sum(isinstance(a, Delete) and a.expired for a, _ in actions)
        self.unchanged = the_plan.unchanged
        self.foreign = len(the_plan.foreign)
        self.held_back = the_plan.held_back
        for action, result in zip(the_plan.actions, results or (), strict=False):
            if result.error is not None:
                self.write_errors[result.error] += 1
                if not isinstance(action, Delete):
                    self.unwritten[result.error] += 1


def missing(skipped: Counter[str] | dict[str, int]) -> Counter[str]:
    """Of the skips by reason, those that leave an appointment off the phone."""
    return Counter({reason: int(count) for reason, count in skipped.items()
                    if reason not in INTENDED_SKIPS and count})
