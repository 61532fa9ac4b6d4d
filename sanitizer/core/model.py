"""The data the pure core passes around, as frozen dataclasses.

`SanitizedEvent` is the only thing the serializer accepts, and it has no field that can hold source
text: titles and locations are `Label`s, made by the config loader or, for a `keep-title` rule only,
by `Label.kept_title`. Fields that do hold source text (on `Instance`) are left out of `repr`, so an
accidental log of an instance shows no survivor data.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

When = date | datetime  # a date for all-day entries, an aware UTC datetime otherwise

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LABEL_LENGTH = 200


class LabelOrigin(enum.Enum):
    """Where a label's text came from; only CONFIG and KEEP_TITLE exist, by design."""

    CONFIG = "config"
    KEEP_TITLE = "keep-title"


@dataclass(frozen=True)
class Label:
    """A title or location that may be written to the phone."""

    text: str
    origin: LabelOrigin = field(default=LabelOrigin.CONFIG, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.origin, LabelOrigin):
            raise TypeError("a label needs an origin")
        if _CONTROL.search(self.text) or len(self.text) > MAX_LABEL_LENGTH or not self.text.strip():
            raise ValueError("a label must be 1-200 characters with no control characters")

    @classmethod
    def kept_title(cls, summary: str) -> Label | None:
        """The source SUMMARY, for events a `keep-title` rule lets through; None if unusable."""
        text = " ".join(_CONTROL.sub(" ", summary).split())[:MAX_LABEL_LENGTH]
        return cls(text, LabelOrigin.KEEP_TITLE) if text else None

    def __repr__(self) -> str:
        if self.origin is LabelOrigin.KEEP_TITLE:
            return "Label(<kept title>)"
        return f"Label({self.text!r})"


class Action(enum.Enum):
    """What a rule does with an event it matches."""

    SANITIZE = "sanitize"
    KEEP_TITLE = "keep-title"
    SKIP = "skip"


class Status(enum.Enum):
    """The only STATUS values a phone event may carry (a cancelled instance is not written)."""

    CONFIRMED = "CONFIRMED"
    TENTATIVE = "TENTATIVE"


class Transparency(enum.Enum):
    """TRANSP values: whether the entry blocks time."""

    OPAQUE = "OPAQUE"
    TRANSPARENT = "TRANSPARENT"


@dataclass(frozen=True)
class Instance:
    """One occurrence of a source event inside the window, parsed and validated.

    `start`/`end` are dates (all-day) or aware UTC datetimes. `occurrence_id` identifies the
    occurrence within its series (its original start), empty for a single event. Text fields are
    for rules only.
    """

    source_uid: str = field(repr=False)
    occurrence_id: str
    start: When
    end: When
    status: str  # CONFIRMED, TENTATIVE or CANCELLED (anything else becomes CONFIRMED)
    transparent: bool
    categories: tuple[str, ...] = field(default=(), repr=False)
    klass: str = field(default="PUBLIC", repr=False)
    summary: str | None = field(default=None, repr=False)
    # The ORGANIZER's mail domain, lower-cased; "" when it has no readable one, None without one.
    organizer_domain: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SanitizedEvent:
    """Everything a phone entry holds. Built from an allowlist, never from a source component."""

    uid: str
    start: When
    end: When
    title: Label
    location: Label | None = None
    status: Status = Status.CONFIRMED
    transparency: Transparency = Transparency.OPAQUE
    alarm: timedelta | None = None  # a reminder this long before the start

    def __post_init__(self) -> None:
        if isinstance(self.start, datetime) != isinstance(self.end, datetime):
            raise ValueError("start and end must both be dates or both date-times")
        for value in (self.start, self.end):
            if isinstance(value, datetime) and value.utcoffset() != timedelta(0):
                raise ValueError("date-times must be in UTC")
        if self.end < self.start:
            raise ValueError("an entry must not end before it starts")


def instant(value: When, zone: tzinfo) -> datetime:
    """The instant a start or end stands for; a date means midnight in the agency's zone."""
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class TargetItem:
    """An object found in a target calendar. `event` is None when it is foreign or unreadable."""

    href: str
    etag: str | None
    uid: str | None
    event: SanitizedEvent | None = None
    extra: bool = False  # an owned event that carries something the sanitizer never writes


@dataclass(frozen=True)
class Create:
    """Write a new entry (If-None-Match: *)."""

    event: SanitizedEvent


@dataclass(frozen=True)
class Update:
    """Overwrite an owned entry whose content differs (If-Match: the ETag read this cycle)."""

    href: str
    etag: str | None
    event: SanitizedEvent


@dataclass(frozen=True)
class Delete:
    """Remove an owned entry that is no longer desired."""

    href: str
    etag: str | None
    uid: str
    expired: bool


PlanAction = Create | Update | Delete


@dataclass(frozen=True)
class Plan:
    """The actions for one pair, plus what was left alone and why."""

    actions: tuple[PlanAction, ...]
    unchanged: int
    foreign: tuple[str, ...]  # hrefs of objects the sanitizer does not own
    held_back: int = 0  # deletions the mass-deletion guard refused

    @property
    def creates(self) -> int:
        """Number of Create actions."""
        return sum(isinstance(a, Create) for a in self.actions)

    @property
    def updates(self) -> int:
        """Number of Update actions."""
        return sum(isinstance(a, Update) for a in self.actions)

    @property
    def deletes(self) -> int:
        """Number of Delete actions."""
        return sum(isinstance(a, Delete) for a in self.actions)


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC: instances that end after start and begin before end are kept."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.utcoffset() != timedelta(0) or self.end.utcoffset() != timedelta(0):
            raise ValueError("window bounds must be UTC")


@dataclass(frozen=True)
class Entry:
    """One owned phone entry as the sanitizer last saw or wrote it."""

    href: str
    etag: str | None
    digest: str  # of the bytes written (phone_format.serialize), keyed
    end: str  # ISO time the entry ends, for expiry
    origin: str  # keyed hash of the source href it came from
