"""A Microsoft 365 work calendar, read through calendarView delta. It has no write method.

Graph expands series on the server: a round of delta pages gives the window's single events,
occurrences and exceptions, and ends in a deltaLink, this store's sync token. The next cycle
follows the deltaLink (one request when nothing changed) and gets changed events whole and
`@removed` ids, so `multiget` answers from what `changes` already received. The window is fixed
by a round's first request; the engine starts a new round when a boundary is crossed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any
from urllib.parse import quote

from sanitizer.core.model import Window
from sanitizer.errors import StoreError
from sanitizer.stores.base import Changes, RawObject
from sanitizer.stores.microsoft365.graph_http import GraphClient
from sanitizer.stores.microsoft365.mailbox import (
    MAX_PAGES,
    find_calendar,
    holds_marks,
    link,
    user_url,
)
from sanitizer.stores.microsoft365.mapping import DeltaItem, delta_item
from sanitizer.stores.microsoft365.pages import PageError, TooManyElements, read_page

MAX_ITEMS = 50_000  # events per round: about what a CalDAV listing of 20 MiB (its cap) holds
PAGE_SIZE = 100
PREFER = f'outlook.timezone="UTC", odata.maxpagesize={PAGE_SIZE}, IdType="ImmutableId"'


class GraphSource:
    """One mailbox calendar, read only."""

    def __init__(self, client: GraphClient, user: str, calendar: str, *,
                 read_subject: bool = False) -> None:
        self.client = client
        self.user = user
        self.calendar = calendar
        self.read_subject = read_subject  # only when a rule reads titles (keep-title, summary)
        self.url = user_url(client.settings.graph_url, user) + "calendars/" + quote(calendar)
        self._received: dict[str, RawObject] = {}

    def _delta_url(self, window: Window) -> str:
        ident = find_calendar(self.client, self.user, self.calendar)
        if ident is None:
            raise StoreError(operation="GET", url=self.url, reason="source-not-found", status=404)
        if holds_marks(self.client, self.user, ident):  # some pair's target: never read as input
            raise StoreError(operation="GET", url=self.url, reason="source-holds-phone-entries")
        start = f"{window.start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        end = f"{window.end.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        return (user_url(self.client.settings.graph_url, self.user)
                + f"calendars/{quote(ident, safe='')}/calendarView/delta"
                + f"?startDateTime={start}&endDateTime={end}")

    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """A whole delta round over the window: its instances, and the deltaLink, which is
        bound to this window (a new window starts a new round)."""
        items, token = self._round(self._delta_url(window))
        return [obj for obj in items.values() if obj is not None], token if with_token else None

    def fetch(self, window: Window) -> list[RawObject]:
        """Every instance in the window (a delta round whose token is not kept)."""
        return self.read(window, with_token=False)[0]

    def changes(self, token: str) -> Changes:
        """What changed since the deltaLink; TokenRejected (410) when Graph forgot it."""
        items, new_token = self._round(token)
        self._received = {href: obj for href, obj in items.items() if obj is not None}
        removed = tuple(sorted(href for href, obj in items.items() if obj is None))
        return Changes(new_token, tuple(sorted(self._received)), removed)

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The changed instances `changes` received whole (Graph sends them with the change)."""
        return [self._received[h] for h in hrefs if h in self._received]

    def _round(self, url: str) -> tuple[dict[str, RawObject | None], str]:
        """Follow nextLinks to the deltaLink; id -> object, or None for a removal."""
        items: dict[str, RawObject | None] = {}
        next_url: str | None = url
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            if next_url is None:  # neither more pages nor the end of the round: a cut listing
                raise StoreError(operation="GET", url=self.url, reason="listing-truncated",
                                 transient=True)
            body = self._page(next_url, items)
            if (delta := link(body, "@odata.deltaLink")) is not None:
                return items, delta
            seen.add(next_url)
            next_url = link(body, "@odata.nextLink")
            if next_url in seen:
                raise StoreError(operation="GET", url=self.url, reason="listing-loop")
        raise StoreError(operation="GET", url=self.url, reason="too-many-pages")

    def _page(self, url: str, items: dict[str, RawObject | None]) -> dict[str, Any]:
        """One page, each event mapped as it is decoded (never the whole page's JSON at once);
        the page's links. At most MAX_ITEMS events per round."""
        def add(value: object, number: int) -> None:
            self._add(items, delta_item(value, read_subject=self.read_subject), number)

        try:  # the bytes are held by read_page alone, which drops them once decoded
            return read_page(self.client.request("GET", url, self.user, parse=False,
                                                 headers={"Prefer": PREFER}).body,
                             add, MAX_ITEMS - len(items))
        except TooManyElements:
            raise StoreError(operation="GET", url=self.url, reason="too-many-events") from None
        except PageError:
            raise StoreError(operation="GET", url=self.url, reason="bad-response",
                             transient=True) from None

    @staticmethod
    def _add(items: dict[str, RawObject | None], item: DeltaItem | None, number: int) -> None:
        if item is None:  # no usable id: counted as skipped, never matched to anything
            key = f"graph-bad-id-{len(items)}-{number}"
            items[key] = RawObject(key, None, b"", (), "graph-bad-id")
            return
        if item.removed:
            items[item.id] = None
            return
        instances = (item.instance,) if item.instance is not None else ()
        items[item.id] = RawObject(item.id, item.etag, b"", instances, item.skip_reason)
