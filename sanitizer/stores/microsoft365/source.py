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
from typing import Any, NamedTuple
from urllib.parse import quote

from sanitizer.core.model import Window
from sanitizer.errors import StoreError
from sanitizer.stores.base import Changes, RawObject
from sanitizer.stores.microsoft365.graph_http import GraphClient
from sanitizer.stores.microsoft365.mapping import DeltaItem, delta_item, event_id

MAX_PAGES = 2000
MAX_ITEMS = 100_000
MAX_CALENDARS = 1000
PAGE_SIZE = 100
PREFER = f'outlook.timezone="UTC", odata.maxpagesize={PAGE_SIZE}, IdType="ImmutableId"'


def user_url(graph_url: str, user: str) -> str:
    """The mailbox's base URL."""
    return f"{graph_url}users/{quote(user, safe='@')}/"


class MailboxCalendar(NamedTuple):
    """One calendar of a mailbox as Graph lists it: its id, its name, and Graph's `canEdit`
    (None when the answer leaves it out)."""

    id: str
    name: str
    can_edit: bool | None


def list_calendars(client: GraphClient, user: str) -> list[MailboxCalendar]:
    """The mailbox's calendars, every page; StoreError as Graph answers (404: no such mailbox).
    Bounded in pages and calendars, so a hostile or broken server cannot keep it going."""
    url: str | None = user_url(client.settings.graph_url, user) + "calendars?$top=100"
    shown = user_url(client.settings.graph_url, user) + "calendars"
    found: list[MailboxCalendar] = []
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        if url is None:
            return found
        if url in seen:
            raise StoreError(operation="GET", url=shown, reason="listing-loop")
        seen.add(url)
        body = client.request("GET", url, user).body
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise StoreError(operation="GET", url=shown, reason="bad-response", transient=True)
        found += [MailboxCalendar(c["id"], c["name"], _can_edit(c)) for c in body["value"]
                  if isinstance(c, dict) and event_id(c.get("id"))
                  and isinstance(c.get("name"), str)]
        if len(found) > MAX_CALENDARS:
            raise StoreError(operation="GET", url=shown, reason="too-many-calendars")
        url = _link(body, "@odata.nextLink")
    raise StoreError(operation="GET", url=shown, reason="too-many-pages")


def _can_edit(calendar: dict[str, Any]) -> bool | None:
    value = calendar.get("canEdit")
    return value if isinstance(value, bool) else None


def find_calendar(client: GraphClient, user: str, name: str) -> str | None:
    """The id of the mailbox's calendar with that name (exact, else ignoring case), or None
    (also when there is no such mailbox)."""
    try:
        found = list_calendars(client, user)
    except StoreError as exc:
        if exc.status == 404:  # no such mailbox: no such calendar either
            return None
        raise
    for ident, found_name, _ in found:
        if found_name == name:
            return ident
    matches = [ident for ident, found_name, _ in found
               if found_name.casefold() == name.casefold()]
    return matches[0] if len(matches) == 1 else None


def _link(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


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
            body = self.client.request("GET", next_url, self.user,
                                       headers={"Prefer": PREFER}).body
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise StoreError(operation="GET", url=self.url, reason="bad-response",
                                 transient=True)
            for number, value in enumerate(body["value"]):
                self._add(items, delta_item(value, read_subject=self.read_subject), number)
            if len(items) > MAX_ITEMS:
                raise StoreError(operation="GET", url=self.url, reason="too-many-events")
            if (delta := _link(body, "@odata.deltaLink")) is not None:
                return items, delta
            seen.add(next_url)
            next_url = _link(body, "@odata.nextLink")
            if next_url in seen:
                raise StoreError(operation="GET", url=self.url, reason="listing-loop")
        raise StoreError(operation="GET", url=self.url, reason="too-many-pages")

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
