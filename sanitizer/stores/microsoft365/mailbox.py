"""A mailbox's calendars as Graph lists them, and what identifies one calendar for good.

A pair names a calendar as `USER/NAME`; two such names are the same calendar when they resolve
to the same mailbox object id and the same calendar id. A mailbox given by address and by object
id is one mailbox, and Exchange's calendar names ignore case, so only these ids can say that a
target is not a source. A source that holds entries carrying the owner mark is some pair's
target: a filtered query finds one without reading any event.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import quote

from sanitizer.core.identity import OWNED_PREFIX
from sanitizer.errors import StoreError
from sanitizer.stores.microsoft365.graph_http import GraphClient
from sanitizer.stores.microsoft365.mapping import event_id
from sanitizer.stores.microsoft365.names import MARK_ID

MAX_PAGES = 2000
MAX_CALENDARS = 1000
_OBJECT_ID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")
MARK_FILTER = (f"singleValueExtendedProperties/any(ep: ep/id eq '{MARK_ID}' and "
               f"startswith(ep/value, '{OWNED_PREFIX}'))")


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
        url = link(body, "@odata.nextLink")
    raise StoreError(operation="GET", url=shown, reason="too-many-pages")


def _can_edit(calendar: dict[str, Any]) -> bool | None:
    value = calendar.get("canEdit")
    return value if isinstance(value, bool) else None


def pick(found: list[MailboxCalendar], name: str, *, exact: bool) -> str | None:
    """The id of the calendar with that name; a source may also match ignoring case (one
    match only), a target never: writes go only to the calendar named exactly."""
    for ident, found_name, _ in found:
        if found_name == name:
            return ident
    if exact:
        return None
    matches = [ident for ident, found_name, _ in found
               if found_name.casefold() == name.casefold()]
    return matches[0] if len(matches) == 1 else None


def calendars_or_none(client: GraphClient, user: str) -> list[MailboxCalendar]:
    """The mailbox's calendars; none when there is no such mailbox (404)."""
    try:
        return list_calendars(client, user)
    except StoreError as exc:
        if exc.status == 404:
            return []
        raise


def find_calendar(client: GraphClient, user: str, name: str, *,
                  exact: bool = False) -> str | None:
    """The id of the mailbox's calendar with that name (see `pick`), or None (also when there
    is no such mailbox)."""
    return pick(calendars_or_none(client, user), name, exact=exact)


def mailbox_id(client: GraphClient, user: str) -> str | None:
    """The mailbox's object id (asked once per client), or None when Graph shows no such
    mailbox to this app (404, 403: then the app cannot write there either)."""
    key = user.lower()
    if key not in client.mailbox_ids:
        try:
            body = client.request("GET", user_url(client.settings.graph_url, user)
                                  + "?$select=id", user).body
        except StoreError as exc:
            if exc.status in (403, 404):
                return None
            raise
        ident = body.get("id") if isinstance(body, dict) else None
        if not isinstance(ident, str) or not _OBJECT_ID.fullmatch(ident.lower()):
            raise StoreError(operation="GET", url=user_url(client.settings.graph_url, user),
                             reason="bad-response", transient=True)
        client.mailbox_ids[key] = ident.lower()
    return client.mailbox_ids[key]


def is_a_source(client: GraphClient, user: str, ident: str, found: list[MailboxCalendar],
                sources: tuple[tuple[str, str], ...]) -> bool:
    """Whether the calendar `ident` of `user` (listed as `found`) is one of the sources."""
    mine = None
    for source_user, source_name in sources:
        if pick(found, source_name, exact=False) != ident:
            continue
        mine = mine or mailbox_id(client, user)
        if mine is not None and mailbox_id(client, source_user) == mine:
            return True
    return False


def holds_marks(client: GraphClient, user: str, calendar: str) -> bool:
    """Whether the calendar holds an entry with the owner mark (one filtered request)."""
    url = (user_url(client.settings.graph_url, user) + f"calendars/{quote(calendar, safe='')}"
           f"/events?$select=id&$top=1&$filter={quote(MARK_FILTER, safe='')}")
    body = client.request("GET", url, user).body
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise StoreError(operation="GET", url=user_url(client.settings.graph_url, user),
                         reason="bad-response", transient=True)
    return bool(body["value"])


def link(body: dict[str, Any], key: str) -> str | None:
    """A link of a page (nextLink, deltaLink), if it is a string."""
    value = body.get(key)
    return value if isinstance(value, str) else None
