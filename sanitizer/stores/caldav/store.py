"""The CalDAV adapters: the requests a cycle needs, over the bounded transport in http.py.

Requests are built here (calendar-query, MKCALENDAR, conditional PUT and DELETE) rather than through
caldav's search(), which post-filters and expands on the client without bounds. Every href a server
names is confined (urls.py) before anything is written to it: a phone-calendar listing entry
outside the calendar is foreign, and a write outside it is refused. Nothing here logs a request or
response body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from sanitizer.core.expand import MAX_OBJECT_BYTES
from sanitizer.core.model import Window
from sanitizer.errors import PreconditionFailed, StoreError, TokenRejected
from sanitizer.stores.base import Changes, RawObject
from sanitizer.stores.caldav import bodies, ctag
from sanitizer.stores.caldav.http import (
    TRANSIENT_STATUSES,
    BudgetedTransport,
    Credentials,
    Limits,
    Reply,
    Requester,
    Transport,
)
from sanitizer.stores.retry import Backoff
from sanitizer.stores.series import PAST, SERIES_REACH, reaching
from sanitizer.stores.urls import object_url

log = logging.getLogger(__name__)
LISTED_BATCH = 100  # objects per multiget when a calendar is fetched object by object

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
XML_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
__all__ = [
    "TRANSIENT_STATUSES",
    "Backoff",
    "BudgetedTransport",
    "CalDAVSource",
    "CalDAVTarget",
    "Credentials",
    "Limits",
    "Reply",
    "Requester",
    "Transport",
]

def multistatus(reply: Reply, url: str, operation: str) -> Iterator[tuple[str, int, Any]]:
    """(absolute href, status, prop element) for each response in a 207 body."""
    tree = reply.tree
    if reply.status != 207 or tree is None or getattr(tree, "tag", None) != DAV + "multistatus":
        raise StoreError(operation=operation, url=url, reason="bad-response", status=reply.status,
                         transient=reply.status == 207)
    for response in tree.iter(DAV + "response"):
        href = response.findtext(DAV + "href")
        if not href:
            continue
        absolute = urljoin(url, href.strip())
        direct = response.findtext(DAV + "status")
        if direct is not None:
            yield absolute, _status_code(direct), None
            continue
        for propstat in response.iter(DAV + "propstat"):
            status = _status_code(propstat.findtext(DAV + "status") or "")
            if status == 200:
                yield absolute, 200, propstat.find(DAV + "prop")


def _status_code(line: str) -> int:
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _is_collection(href: str, url: str) -> bool:
    return urlsplit(href).path.rstrip("/") == urlsplit(url).path.rstrip("/")


def _truncated(href: str, status: int, url: str, operation: str) -> None:
    """A 507 on the collection itself means the server cut the listing short (RFC 6578 3.6):
    taking the rest as gone would delete phone entries."""
    if status == 507 and _is_collection(href, url):
        raise StoreError(operation=operation, url=url, reason="listing-truncated", status=507)


def _objects(reply: Reply, url: str, operation: str) -> list[RawObject]:
    """The objects of a calendar-query or multiget answer; their data was taken out of the XML
    as it streamed in (http.py), so a large answer is held once."""
    found = []
    for href, status, prop in multistatus(reply, url, operation):
        _truncated(href, status, url, operation)
        if status != 200 or prop is None or _is_collection(href, url):
            continue
        node = prop.find(CALDAV + "calendar-data")
        data = reply.calendar_data(node) if node is not None else None
        etag = prop.findtext(DAV + "getetag")
        if data:
            found.append(RawObject(href, etag.strip() if etag else None, data))
    return found


def _expect(reply: Reply, ok: set[int], operation: str, url: str) -> None:
    if reply.status in ok and not _looks_like_a_page(reply):
        return
    if reply.status in ok:  # a captive portal or login page answering 200 is not a success
        raise StoreError(operation=operation, url=url, reason="not-a-dav-answer",
                         status=reply.status, transient=True)
    if reply.tree is not None and reply.tree.find(".//" + CALDAV + "no-uid-conflict") is not None:
        # Something else in the target holds this UID: not a race that heals by itself.
        raise StoreError(operation=operation, url=url, reason="uid-conflict", status=reply.status)
    if reply.status == 412:
        raise PreconditionFailed(operation=operation, url=url, reason="precondition-failed",
                                 status=412)
    reason = {404: "not-found", 405: "not-allowed", 409: "conflict", 507: "insufficient-storage",
              413: "too-large", 415: "unsupported-media"}.get(reply.status, f"http-{reply.status}")
    raise StoreError(operation=operation, url=url, reason=reason, status=reply.status)


class CalDAVSource:
    """A work calendar, read with one calendar-query per full cycle. It has no write method.

    Between full cycles, the collection's getctag says whether anything changed (one cheap
    request; see ctag.py), a sync-collection REPORT with the last token says what, and a
    calendar-multiget fetches only that. Without a usable getctag the REPORT is the probe.
    """

    def __init__(self, transport: Requester, url: str) -> None:
        self.transport = transport
        self.url = url

    def sync_token(self) -> str | None:
        """The collection's current sync token (with its getctag, in the same request, where
        the server has one we may trust), or None if the server has none (RFC 6578)."""
        found = self._properties(bodies.TOKENS, (DAV + "sync-token", CS + "getctag"))
        token = found.get(DAV + "sync-token")
        if not token:
            return None
        tag = ctag.usable(found.get(CS + "getctag")) if self._ctag_probe() else None
        return ctag.ProbeToken(token.strip(), tag).encode()

    def _ctag_probe(self) -> bool:
        return self.transport.differences.ctag_probe and ctag.trusted(self.url)

    def _properties(self, body: bytes, names: Sequence[str]) -> dict[str, str]:
        """Depth-0 PROPFIND of the collection: the named properties it answered."""
        reply = self.transport.request("PROPFIND", self.url, body,
                                       {"Depth": "0", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="PROPFIND", url=self.url, reason="source-not-found",
                             status=404)
        found: dict[str, str] = {}
        if reply.status != 207:
            return found
        for _, status, prop in multistatus(reply, self.url, "PROPFIND"):
            for name in names:
                value = prop.findtext(name) if prop is not None and status == 200 else None
                if value and name not in found:
                    found[name] = str(value)
        return found

    def changes(self, token: str) -> Changes:
        """What changed since `token`: by the ctag alone when it did not move (one PROPFIND),
        else by sync-collection; TokenRejected when the server forgot the token."""
        point = ctag.ProbeToken.decode(token)
        if point.ctag is None or not self._ctag_probe():
            return self._sync_collection(point.sync)
        if point.left == 0:
            return self._checked(point)
        now = ctag.usable(self._properties(bodies.CTAG, (CS + "getctag",)).get(CS + "getctag"))
        if now == point.ctag:
            return Changes(point.probed().encode(), (), ())
        found = self._sync_collection(point.sync)
        kept = ctag.ProbeToken(found.token, now).encode() if now else found.token
        return replace(found, token=kept)  # `now` was read before the REPORT's token

    def _checked(self, point: ctag.ProbeToken) -> Changes:
        """The REPORT that checks the ctag: if it shows changes the ctag did not, the ctag of
        this calendar is not trusted again."""
        found = self._sync_collection(point.sync)
        if found.changed or found.removed:
            after = self._properties(bodies.CTAG, (CS + "getctag",)).get(CS + "getctag")
            if ctag.usable(after) == point.ctag:
                ctag.distrust(self.url)
                log.info("%s: its getctag did not change with its contents; probing it with "
                         "sync-collection only", self.url)
                return found
        return replace(found, token=ctag.ProbeToken(found.token, point.ctag).encode())

    def _sync_collection(self, token: str) -> Changes:
        """What changed since the server's sync `token` (RFC 6578)."""
        try:
            body = bodies.sync_collection(token)
        except ValueError:  # a token XML cannot carry: start again from a full read
            raise TokenRejected(operation="REPORT", url=self.url, reason="sync-token-rejected",
                                status=None) from None
        reply = self.transport.request("REPORT", self.url, body, XML_HEADERS)
        if reply.status in self.transport.differences.forgotten_token_statuses:
            raise TokenRejected(operation="REPORT", url=self.url, reason="sync-token-rejected",
                                status=reply.status)
        changed, removed = [], []
        for href, status, prop in multistatus(reply, self.url, "REPORT"):
            _truncated(href, status, self.url, "REPORT")
            if _is_collection(href, self.url):
                continue
            if status == 404:
                removed.append(href)
            elif status == 200 and prop is not None:
                changed.append(href)
        new_token = reply.tree.findtext(DAV + "sync-token")
        if not new_token:
            raise TokenRejected(operation="REPORT", url=self.url, reason="no-sync-token",
                                status=reply.status)
        return Changes(new_token.strip(), tuple(changed), tuple(removed))

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The named objects with their data, in one request per batch of 200."""
        found: list[RawObject] = []
        inside = bodies.xml_safe(urlsplit(h).path for h in hrefs
                                 if object_url(h, self.url) is not None)
        for start in range(0, len(inside), 200):
            reply = self.transport.request("REPORT", self.url,
                                           bodies.multiget(inside[start:start + 200]),
                                           {"Depth": "1", **XML_HEADERS})
            found.extend(_objects(reply, self.url, "REPORT"))
        return found

    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """The token first, so that changes made while the window is read show up next time."""
        token = self.sync_token() if with_token else None
        return self.fetch(window), token

    def fetch(self, window: Window) -> list[RawObject]:
        """Every VEVENT object with an instance in the window, with its ETag and data, and every
        recurring one the server says reaches into the month before it (fetched only if the
        first answer left it out): the server's time filter is never the last word. An answer
        over the size cap (a few huge invitations) gives way to an ETag listing and a fetch of
        each object on its own, so the others still arrive."""
        body = bodies.calendar_query(window, data=True)
        try:
            reply = self.transport.request("REPORT", self.url, body,
                                           {"Depth": "1", **XML_HEADERS})
        except StoreError as exc:
            if exc.reason != "answer-too-large":
                raise
            log.warning("%s: the answer is over the size cap; fetching its objects one batch "
                        "at a time", self.url)
            found = self.fetch_listed(self.etags(window))
            return found + self._series(window, {obj.href for obj in found})
        if reply.status == 404:
            raise StoreError(operation="REPORT", url=self.url, reason="source-not-found",
                             status=404)
        found = _objects(reply, self.url, "REPORT")
        return found + self._series(window, {obj.href for obj in found})

    def _series(self, window: Window, seen: set[str]) -> list[RawObject]:
        """The recurring objects the window's answer left out that do reach into the window,
        by our own expansion (each fetched under the object cap)."""
        left_out = self._series_left_out(window, seen)
        todo = set(PAST.unchecked(self.url, left_out, window.start))
        fetched = self.fetch_listed([(h, e) for h, e in left_out if h in todo]) if todo else []
        kept = reaching([o for o in fetched if o.skip_reason is None], window)
        kept += [o for o in fetched if o.skip_reason is not None]  # counted, never dropped
        PAST.note_past(self.url, [o for o in fetched if o not in kept], window.start)
        return kept

    def _series_left_out(self, window: Window,
                         seen: set[str]) -> list[tuple[str, str | None]]:
        """(href, ETag) of the recurring objects reaching into the year before the window that
        `seen` lacks."""
        series = Window(window.start - SERIES_REACH, window.end)
        body = bodies.calendar_query(series, data=False, recurring=True)
        reply = self.transport.request("REPORT", self.url, body, {"Depth": "1", **XML_HEADERS})
        if 400 <= reply.status < 500 and reply.status not in (401, 429):
            # A server that does not take this filter (a prop-filter is optional for it) keeps
            # the window's answer as it was: the check is a net under a misreading server.
            log.info("%s: no recurring-object query (HTTP %d)", self.url, reply.status)
            return []
        left_out = []
        for href, status, prop in multistatus(reply, self.url, "REPORT"):
            _truncated(href, status, self.url, "REPORT")
            if status == 200 and href not in seen and not _is_collection(href, self.url):
                etag = prop.findtext(DAV + "getetag") if prop is not None else None
                left_out.append((href, etag.strip() if etag else None))
        return left_out

    def etags(self, window: Window) -> list[tuple[str, str | None]]:
        """(href, ETag) of every VEVENT object with an instance in the window, without data."""
        body = bodies.calendar_query(window, data=False)
        reply = self.transport.request("REPORT", self.url, body, {"Depth": "1", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="REPORT", url=self.url, reason="source-not-found",
                             status=404)
        listed = []
        for href, status, prop in multistatus(reply, self.url, "REPORT"):
            _truncated(href, status, self.url, "REPORT")
            if status == 200 and prop is not None and not _is_collection(href, self.url):
                etag = prop.findtext(DAV + "getetag")
                listed.append((href, etag.strip() if etag else None))
        return listed

    def read_listed(self, window: Window, *, with_token: bool,
                    skip: Callable[[str, str | None], bool]) -> tuple[list[RawObject], str | None]:
        """read(), but the objects `skip` names by (href, ETag) are listed and not fetched: they
        come back without data, for the caller to count."""
        token = self.sync_token() if with_token else None
        listed = self.etags(window)
        wanted = [(h, e) for h, e in listed if not skip(h, e)]
        skipped = [RawObject(h, e, b"") for h, e in listed if skip(h, e)]
        series = [obj for obj in self._series(window, {h for h, _ in listed})
                  if not skip(obj.href, obj.etag)]
        return self.fetch_listed(wanted) + series + skipped, token

    def fetch_listed(self, listed: Sequence[tuple[str, str | None]]) -> list[RawObject]:
        """The listed objects, fetched in batches; a batch whose answer is over the cap is split,
        and a single object over it is skipped as too-large (its ETag is known from the list)."""
        found: list[RawObject] = []
        pending = [list(listed[i:i + LISTED_BATCH]) for i in range(0, len(listed), LISTED_BATCH)]
        while pending:
            batch = pending.pop()
            try:
                objects = self.multiget([href for href, _ in batch])
            except StoreError as exc:
                if exc.reason != "answer-too-large":
                    raise
                if len(batch) == 1:
                    found.append(RawObject(batch[0][0], batch[0][1], b"", skip_reason="too-large"))
                else:
                    pending += [batch[:len(batch) // 2], batch[len(batch) // 2:]]
                continue
            found.extend(_capped(obj) for obj in objects)
        return found


def _capped(obj: RawObject) -> RawObject:
    """An object over the parser's cap is dropped here, so its bytes are not held."""
    if len(obj.data) > MAX_OBJECT_BYTES:
        return RawObject(obj.href, obj.etag, b"", skip_reason="too-large")
    return obj


class CalDAVTarget:
    """A phone calendar: listed, created if missing, written with conditional requests."""

    def __init__(self, transport: Requester, url: str, display_name: str = "Appointments") -> None:
        self.transport = transport
        self.url = url
        self.display_name = display_name
        self.listed: frozenset[str] | None = None  # paths seen by list(), to create beside

    def list(self) -> list[RawObject]:
        """Every VEVENT object in the calendar; 404 if the calendar does not exist."""
        body = bodies.EVERYTHING
        reply = self.transport.request("REPORT", self.url, body, {"Depth": "1", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="REPORT", url=self.url, reason="target-not-found",
                             status=404)
        # Confined hrefs in their usable spelling; the others stay as they are, for holds().
        objects = [replace(obj, href=object_url(obj.href, self.url) or obj.href)
                   for obj in _objects(reply, self.url, "REPORT")]
        self.listed = frozenset(_names(reply, self.url))
        return objects

    def create_calendar(self) -> None:
        """MKCALENDAR; a calendar that appeared meanwhile is fine."""
        if not self.transport.differences.makes_calendars:
            raise StoreError(operation="MKCALENDAR", url=self.url, reason="calendar-must-exist")
        reply = self.transport.request("MKCALENDAR", self.url,
                                       bodies.mkcalendar(self.display_name), XML_HEADERS)
        if reply.status == 405 or _names_existing(reply):  # already exists (RFC 4791 5.3.1.2)
            return
        _expect(reply, {200, 201}, "MKCALENDAR", self.url)

    def holds(self, href: str) -> bool:
        """Whether `href` names an object directly inside this calendar (urls.py); only those
        are ever written to or deleted. Listed hrefs are already in their usable spelling."""
        return object_url(href, self.url) == href

    def _confined(self, href: str, operation: str) -> str:
        url = object_url(href, self.url)
        if url is None:
            raise StoreError(operation=operation, url=self.url, reason="href-outside-calendar")
        return url

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """PUT If-None-Match: *, or where the server ignores that, only to a free name; never
        overwrites."""
        url = self._confined(urljoin(self.url, href_name), "PUT")
        headers = dict(ICS_HEADERS)
        if self.transport.differences.honours_if_none_match:
            headers["If-None-Match"] = "*"
        elif self._taken(url):
            raise StoreError(operation="PUT", url=url, reason="name-taken")
        reply = self.transport.request("PUT", url, data, headers)
        _expect(reply, {200, 201, 204}, "PUT", url)
        return url, _etag(reply.headers)

    def _taken(self, url: str) -> bool:
        """Whether something is stored at `url`: from this cycle's listing, else by asking."""
        path = unquote(urlsplit(url).path)
        if self.listed is not None:
            return path in self.listed
        reply = self.transport.request("PROPFIND", url, bodies.SYNC_TOKEN,
                                       {"Depth": "0", **XML_HEADERS})
        return reply.status != 404

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """PUT If-Match: the ETag read this cycle."""
        headers = {"If-Match": etag, **ICS_HEADERS} if etag else dict(ICS_HEADERS)
        href = self._confined(href, "PUT")
        reply = self.transport.request("PUT", href, data, headers)
        _expect(reply, {200, 201, 204}, "PUT", href)
        return _etag(reply.headers)

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE If-Match; already gone counts as done."""
        href = self._confined(href, "DELETE")
        reply = self.transport.request("DELETE", href, b"", {"If-Match": etag} if etag else {})
        if reply.status == 404:
            return
        _expect(reply, {200, 204}, "DELETE", href)


def _names(reply: Reply, url: str) -> Iterator[str]:
    """The path of every object a listing named, whatever its content or its spelling of "@"."""
    for href, _, _ in multistatus(reply, url, "REPORT"):
        if not _is_collection(href, url):
            yield unquote(urlsplit(href).path)


def _looks_like_a_page(reply: Reply) -> bool:
    content_type = {k.lower(): v for k, v in reply.headers.items()}.get("content-type", "")
    return content_type.lower().startswith("text/html") and reply.status == 200


def _names_existing(reply: Reply) -> bool:
    """A refused MKCALENDAR whose error body says something exists there already (Radicale
    answers 409 and Xandikos 403 with RFC 4791's DAV:resource-must-be-null)."""
    tree = reply.tree if reply.status in (403, 409) else None
    return tree is not None and tree.find(f".//{DAV}resource-must-be-null") is not None


def _etag(headers: Mapping[str, str]) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get("etag")
