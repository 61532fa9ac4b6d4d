"""A phone calendar in a Microsoft 365 mailbox, holding marked entries and nothing else of ours.

Each entry carries an owner mark, a single-value extended property holding its phone UID; only
marked entries are ever changed or deleted, everything else is foreign. Entries have no body and
no attendees (so nothing is ever sent to anyone) and are private. A create carries a fresh
`transactionId`, so a retried POST never duplicates; updates and deletes send If-Match. For the
planner, `list()` presents a marked entry as the phone-format bytes of what it stands for, and an
unmarked one as empty bytes (foreign).
"""

from __future__ import annotations

import builtins
import logging
import uuid
from typing import Any
from urllib.parse import quote

from sanitizer.core.model import SanitizedEvent
from sanitizer.core.phone_format import read_back, serialize
from sanitizer.errors import StoreError
from sanitizer.stores.base import RawObject
from sanitizer.stores.microsoft365.graph_http import GraphClient
from sanitizer.stores.microsoft365.mailbox import (
    MAX_PAGES,
    calendars_or_none,
    is_a_source,
    pick,
    user_url,
)
from sanitizer.stores.microsoft365.mapping import (
    clean_etag,
    entry_json,
    event_id,
    target_entry,
)
from sanitizer.stores.microsoft365.names import MARK_ID
from sanitizer.stores.microsoft365.pages import PageError, TooManyElements, read_page
from sanitizer.stores.microsoft365.source import MAX_ITEMS

log = logging.getLogger(__name__)
EXPAND = f"singleValueExtendedProperties($filter=id eq '{MARK_ID}')"
SELECT = ("id,subject,start,end,isAllDay,showAs,sensitivity,isReminderOn,"
          "reminderMinutesBeforeStart,location,bodyPreview,categories,type,attendees")
PREFER = {"Prefer": 'outlook.timezone="UTC", IdType="ImmutableId"'}
EXTRA_LINE = b"X-GRAPH-EXTRA:1\r\nEND:VEVENT"  # makes read_back report `extra`: rewrite it


def mark_of(obj: dict[str, Any]) -> str | None:
    """The owner mark's value, if the event carries exactly our property."""
    props = obj.get("singleValueExtendedProperties")
    if not isinstance(props, list):
        return None
    for prop in props:
        if (isinstance(prop, dict) and isinstance(prop.get("id"), str)
                and prop["id"].lower() == MARK_ID.lower() and isinstance(prop.get("value"), str)):
            return str(prop["value"])
    return None


def has_attendees(obj: dict[str, Any]) -> bool:
    """Attendees added on the phone (or attendees we cannot read): the entry is a meeting, and
    Exchange mails attendees whenever a meeting is changed or deleted."""
    attendees = obj.get("attendees", [])
    return attendees is not None and attendees != []


def phone_bytes(obj: dict[str, Any]) -> bytes:
    """What the planner reads: our own format for marked entries, nothing for foreign ones
    and for entries that became meetings (never changed or deleted: see has_attendees)."""
    if has_attendees(obj):
        return b""
    entry = target_entry(obj, mark_of(obj))
    if entry.uid is None:
        return b""
    if entry.event is None:  # marked but unreadable: owned, and rewritten by the planner
        return (f"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:{entry.uid}\r\nEND:VEVENT\r\n"
                "END:VCALENDAR\r\n").encode()
    data = serialize(entry.event)
    return data.replace(b"END:VEVENT", EXTRA_LINE, 1) if entry.extra else data


class GraphTarget:
    """One calendar, by name, in the phone's mailbox."""

    def __init__(self, client: GraphClient, user: str, calendar: str,
                 sources: tuple[tuple[str, str], ...] = ()) -> None:
        self.client = client
        self.user = user
        self.calendar = calendar
        self.sources = sources  # (user, name) of every configured source: never written
        self.base = user_url(client.settings.graph_url, user)
        self.url = self.base + "calendars/" + quote(calendar)
        self._calendar_id: str | None = None
        self._owned: set[str] = set()  # ids seen marked, or created, by this instance
        self.meetings = 0  # marked entries that attendees were added to: never touched

    def resolve(self) -> str:
        """The calendar's id: named exactly, and not any configured source under another
        spelling (StoreError `target-is-a-source`, or 404 `target-not-found`)."""
        if self._calendar_id is None:
            found = calendars_or_none(self.client, self.user)
            ident = pick(found, self.calendar, exact=True)
            if ident is None:
                raise StoreError(operation="GET", url=self.url, reason="target-not-found",
                                 status=404)
            if is_a_source(self.client, self.user, ident, found, self.sources):
                raise StoreError(operation="GET", url=self.url, reason="target-is-a-source")
            self._calendar_id = ident
        return self._calendar_id

    def _events_url(self) -> str:
        return f"{self.base}calendars/{quote(self.resolve(), safe='')}/events"

    def list(self) -> list[RawObject]:
        """Every event in the calendar; 404 if there is no calendar of that name."""
        url: str | None = (self._events_url() + f"?$select={SELECT}&$top=100&$expand="
                           + quote(EXPAND, safe="()$=,"))
        found: list[RawObject] = []
        seen: set[str] = set()
        self.meetings = 0
        for _ in range(MAX_PAGES):
            if url is None:
                self._warn_meetings()
                return found
            if url in seen:  # a nextLink back to a page already read never ends
                raise StoreError(operation="GET", url=self.url, reason="listing-loop")
            seen.add(url)
            body = self._page(url, found)
            next_link = body.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) else None
        raise StoreError(operation="GET", url=self.url, reason="too-many-pages")

    def _warn_meetings(self) -> None:
        if self.meetings:
            log.warning("%s: %d of our entries had attendees added on the phone; they are left "
                        "alone (changing or deleting them would mail those attendees): a person "
                        "must delete them (see docs/threat-model.md)", self.url, self.meetings)

    def _page(self, url: str, found: builtins.list[RawObject]) -> dict[str, Any]:
        """One listing page, each entry read as it is decoded; the page's links."""
        def add(obj: object, _: int) -> None:
            ident = event_id(obj.get("id")) if isinstance(obj, dict) else None
            if ident is None or not isinstance(obj, dict):
                return
            data = phone_bytes(obj)
            if data:
                self._owned.add(ident)
            elif mark_of(obj) is not None and has_attendees(obj):
                self.meetings += 1
            found.append(RawObject(ident, clean_etag(obj.get("@odata.etag")), data))

        try:
            return read_page(self.client.request("GET", url, self.user, headers=PREFER,
                                                 parse=False).body,
                             add, MAX_ITEMS - len(found))
        except TooManyElements:
            raise StoreError(operation="GET", url=self.url, reason="too-many-events") from None
        except PageError:
            raise StoreError(operation="GET", url=self.url, reason="bad-response",
                             transient=True) from None

    def create_calendar(self) -> None:
        """Create the calendar; one that appeared meanwhile is fine."""
        try:
            reply = self.client.request("POST", self.base + "calendars", self.user,
                                        body={"name": self.calendar})
        except StoreError as exc:
            if exc.status != 409:
                raise
            return
        ident = reply.body.get("id") if isinstance(reply.body, dict) else None
        self._calendar_id = event_id(ident)

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """POST the entry with its mark and a transactionId; the new id and etag."""
        event = _ours(data, self.url)
        body = {**entry_json(event), "transactionId": str(uuid.uuid4()),
                "singleValueExtendedProperties": [{"id": MARK_ID, "value": event.uid}]}
        reply = self.client.request("POST", self._events_url(), self.user, body=body,
                                    headers=PREFER)
        ident = event_id(reply.body.get("id")) if isinstance(reply.body, dict) else None
        if ident is None:
            raise StoreError(operation="POST", url=self.url, reason="bad-response",
                             transient=True)
        self._owned.add(ident)
        return ident, _etag(reply.body)

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """PATCH If-Match: the etag read this cycle; the new etag."""
        event = _ours(data, self.url)
        headers = {**PREFER, "If-Match": etag} if etag else dict(PREFER)
        reply = self.client.request("PATCH", self._event_url(href), self.user,
                                    body=entry_json(event), headers=headers)
        return _etag(reply.body)

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE If-Match, of a marked entry only; already gone counts as done."""
        url = self._event_url(href)
        try:
            if href not in self._owned:
                self._check_marked(url)
            self.client.request("DELETE", url, self.user,
                                headers={"If-Match": etag} if etag else {})
        except StoreError as exc:
            if exc.status != 404:
                raise

    def _check_marked(self, url: str) -> None:
        query = "?$select=id,attendees&$expand=" + quote(EXPAND, safe="()$=,")
        reply = self.client.request("GET", url + query, self.user)
        if not isinstance(reply.body, dict) or mark_of(reply.body) is None:
            raise StoreError(operation="DELETE", url=self.url, reason="not-owned")
        if has_attendees(reply.body):  # a delete would mail them a cancellation
            raise StoreError(operation="DELETE", url=self.url, reason="entry-has-attendees")

    def holds(self, href: str) -> bool:
        """An href here is a Graph event id, always addressed under this mailbox's calendar."""
        return event_id(href) is not None

    def _event_url(self, href: str) -> str:
        ident = event_id(href)
        if ident is None:
            raise StoreError(operation="PATCH", url=self.url, reason="bad-href")
        return f"{self.base}events/{quote(ident, safe='')}"


def _ours(data: bytes, url: str) -> SanitizedEvent:
    """The engine hands over our own phone format; anything else is refused."""
    event = read_back(data).event
    if event is None:
        raise StoreError(operation="POST", url=url, reason="not-an-entry")
    return event


def _etag(body: Any) -> str | None:
    return clean_etag(body.get("@odata.etag")) if isinstance(body, dict) else None
