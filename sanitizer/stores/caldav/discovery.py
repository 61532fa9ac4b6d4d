"""Which calendars an account can see: current-user-principal, calendar-home-set, then a listing.

The same walk vdirsyncer's `discover` makes (RFC 6764 section 6, RFC 4791 section 6.2.1). Every
href from the server is resolved against the URL asked and kept only if it stays on the account's
server; names are cut short and stripped of control characters; at most MAX_CALENDARS are listed.
Only collection properties and ETag counts are read, never an event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from sanitizer.errors import StoreError
from sanitizer.stores.caldav import bodies
from sanitizer.stores.caldav.store import CALDAV, DAV, XML_HEADERS, Transport, multistatus

MAX_CALENDARS = 200
MAX_NAME = 80
MAX_COUNTED = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WRITE = frozenset({DAV + "all", DAV + "write", DAV + "write-content", DAV + "bind"})


@dataclass(frozen=True)
class Calendar:
    """One calendar the account can see."""

    url: str
    name: str  # the display name, cleaned; the last path segment if it has none
    events: int | None  # how many events it holds (None: the server would not say)
    writable: bool | None  # None: the server does not say what we may do
    vevent: bool  # it can hold events (not a task list)


@dataclass(frozen=True)
class Discovery:
    """Where the calendars were found, and what they are."""

    principal: str
    home: str
    calendars: tuple[Calendar, ...]


def discover(transport: Transport, account_url: str) -> Discovery:
    """Follow the account URL to its calendars; StoreError if the server refuses."""
    principal = _one_href(transport, account_url, bodies.PRINCIPAL, DAV + "current-user-principal")
    principal = principal or account_url
    home = _one_href(transport, principal, bodies.HOME, CALDAV + "calendar-home-set") or account_url
    return Discovery(principal, home, tuple(list_calendars(transport, home)))


def list_calendars(transport: Transport, home: str) -> list[Calendar]:
    """The calendars directly inside a collection, by name."""
    reply = transport.request("PROPFIND", home, bodies.LISTING, {"Depth": "1", **XML_HEADERS})
    if reply.status == 404:
        return []
    found: dict[str, Calendar] = {}
    for href, status, prop in multistatus(reply, home, "PROPFIND"):
        if status != 200 or prop is None or not _same_server(href, home) or href in found:
            continue
        if CALDAV + "calendar" not in _types(prop) or _path(href) == _path(home):
            continue
        found[href] = _calendar(transport, href, prop)
        if len(found) >= MAX_CALENDARS:
            break
    return sorted(found.values(), key=lambda c: c.url)


def _calendar(transport: Transport, href: str, prop: Any) -> Calendar:
    components = prop.find(CALDAV + "supported-calendar-component-set")
    vevent = components is None or any(
        (comp.get("name") or "").upper() == "VEVENT" for comp in components)
    return Calendar(url=href, name=_clean_name(prop.findtext(DAV + "displayname"), href),
                    events=_count_events(transport, href) if vevent else 0,
                    writable=_writable(prop), vevent=vevent)


def _one_href(transport: Transport, url: str, body: bytes, tag: str) -> str | None:
    reply = transport.request("PROPFIND", url, body, {"Depth": "0", **XML_HEADERS})
    if reply.status != 207:
        return None
    for _, status, prop in multistatus(reply, url, "PROPFIND"):
        node = prop.find(tag) if status == 200 and prop is not None else None
        href = str(node.findtext(DAV + "href") or "") if node is not None else ""
        if href and _same_server(urljoin(url, href.strip()), url):
            return urljoin(url, href.strip())
    return None


def _count_events(transport: Transport, url: str) -> int | None:
    try:
        reply = transport.request("REPORT", url, bodies.ALL_EVENTS, {"Depth": "1", **XML_HEADERS})
        if reply.status != 207:
            return None
        count = 0
        for href, status, _ in multistatus(reply, url, "REPORT"):
            if status == 200 and _path(href) != _path(url):
                count += 1
                if count >= MAX_COUNTED:
                    break
    except StoreError:
        return None
    return count


def _writable(prop: Any) -> bool | None:
    node = prop.find(DAV + "current-user-privilege-set")
    if node is None:
        return None
    return any(child.tag in _WRITE for privilege in node.iter(DAV + "privilege")
               for child in privilege)


def _types(prop: Any) -> set[str]:
    node = prop.find(DAV + "resourcetype")
    return {child.tag for child in node} if node is not None else set()


def _clean_name(text: str | None, href: str) -> str:
    name = _CONTROL.sub("", (text or "").strip())[:MAX_NAME]
    return name or _path(href).rstrip("/").rsplit("/", 1)[-1] or "/"


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/") + "/"


def _same_server(url: str, base: str) -> bool:
    one, other = urlsplit(url), urlsplit(base)
    return (one.scheme, one.netloc) == (other.scheme, other.netloc)
