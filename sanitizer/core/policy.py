"""What a pair asks of the core: its rules, labels, window and reminder; no accounts, no I/O.

The config loader builds these (a configured pair is a `Policy` with accounts attached); the core,
the engine and the stores see only this type, so they never depend on how the config is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta

from sanitizer.core.model import Action, Label


@dataclass(frozen=True)
class Rule:
    """One classification rule; an event matches when every given `match_*` test passes."""

    where: str  # key path, e.g. "pairs[0].rules[1]", used in reports instead of event text
    action: Action = Action.SANITIZE
    match_categories: frozenset[str] = frozenset()
    match_class: frozenset[str] = frozenset()
    match_summary: re.Pattern[str] | None = None
    title: Label | None = None
    location: Label | None = None


@dataclass(frozen=True, kw_only=True)
class Policy:
    """One advocate's sync: which calendars, how far ahead and back, and what a phone entry says."""

    name: str
    source_url: str
    target_url: str
    lookahead: timedelta = timedelta(days=14)
    retention: timedelta = timedelta(hours=24)
    title: Label = Label("Appointment")
    location: Label | None = None
    alarm: timedelta | None = None
    rules: tuple[Rule, ...] = ()
    # Mail domains whose ORGANIZER makes an event the agency's own (sorted); empty: not set.
    agency_domains: tuple[str, ...] = ()

    def shape(self) -> str:
        """Every policy field and nothing else, for a fingerprint that changes with the policy.

        Sets are written sorted: their order changes from one process to the next.
        """
        return repr([(f.name, _stable(getattr(self, f.name))) for f in fields(Policy)])


def _stable(value: object) -> object:
    """The value with every set sorted, and dataclasses as (name, fields), for a stable repr."""
    if isinstance(value, frozenset | set):
        return sorted((_stable(item) for item in value), key=repr)
    if isinstance(value, tuple | list):
        return [_stable(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                [(f.name, _stable(getattr(value, f.name))) for f in fields(value)])
    return value
