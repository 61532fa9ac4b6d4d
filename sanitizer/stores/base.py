"""What the engine needs from a calendar, as two small protocols.

The source side has no write method at all: the work calendar cannot be written through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sanitizer.core.model import Instance, Window


@dataclass(frozen=True)
class RawObject:
    """One calendar object as the server holds it; `data` may hold survivor text: never log it.

    A store whose server expands recurrences itself (Microsoft Graph) hands over the mapped
    `instances` instead of iCalendar `data`, or the reason code it skipped the object for.
    """

    href: str
    etag: str | None
    data: bytes
    instances: tuple[Instance, ...] | None = None
    skip_reason: str | None = None

    def __repr__(self) -> str:
        return f"RawObject(href={self.href!r}, etag={self.etag!r}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class Changes:
    """What changed in a collection since a sync token: hrefs changed or added, and removed."""

    token: str
    changed: tuple[str, ...]
    removed: tuple[str, ...]


class SourceCalendar(Protocol):
    """A work calendar, read only, with a change feed (RFC 6578 sync-collection, or a Graph
    delta link) so that a cycle where nothing changed costs one request."""

    def fetch(self, window: Window) -> list[RawObject]:
        """Every event object that has an instance overlapping the window."""
        ...

    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """fetch(), and, if asked, the token from which `changes` reports what changes after
        this read (None when the source has no change feed)."""
        ...

    def changes(self, token: str) -> Changes:
        """Changed and removed hrefs since the token, and the new token; TokenRejected when the
        source forgot it."""
        ...

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The named objects."""
        ...


@runtime_checkable
class ListingSource(Protocol):
    """A source that can list (href, ETag) first and fetch only what the caller wants."""

    def read_listed(self, window: Window, *, with_token: bool,
                    skip: Callable[[str, str | None], bool]) -> tuple[list[RawObject], str | None]:
        """read(), but the objects `skip` names come back without data, unfetched."""
        ...


class TargetCalendar(Protocol):
    """A phone calendar the sanitizer writes."""

    def list(self) -> list[RawObject]:
        """Every event object in the calendar, owned or not; StoreError 404 if it is missing."""
        ...

    def create_calendar(self) -> None:
        """MKCALENDAR, after list() found no calendar."""
        ...

    def holds(self, href: str) -> bool:
        """Whether a listed href lies directly inside this calendar: others are foreign."""
        ...

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """PUT a new object (If-None-Match: *); its href and the new ETag if the server gave one."""
        ...

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """PUT over an object (If-Match: etag when known); the new ETag if given."""
        ...

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE an object (If-Match: etag when known); a 404 counts as done."""
        ...
