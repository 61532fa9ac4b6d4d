"""The CalDAV adapters, on the caldav library's client; caldav and HTTP errors are translated here.

Requests are built here (calendar-query, MKCALENDAR, conditional PUT and DELETE) rather than through
caldav's search(), which post-filters and expands on the client without bounds. Transient failures
(connection errors, timeouts, 5xx, 429) are retried with backoff and jitter, honouring Retry-After;
other 4xx are not. Nothing here logs a request or response body.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from sanitizer.core.model import Window
from sanitizer.errors import PreconditionFailed, StoreError, TokenRejected
from sanitizer.stores.base import Changes, RawObject
from sanitizer.stores.bearer import BearerAuth, BearerTokens
from sanitizer.stores.differences import STANDARD, ServerDifferences

log = logging.getLogger(__name__)

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
TRANSIENT_STATUSES = frozenset({408, 423, 425, 429, 500, 502, 503, 504})  # 423: Xandikos, busy
XML_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}

_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{range}</C:comp-filter>
  </C:comp-filter></C:filter>
</C:calendar-query>"""

_PROPFIND_SYNC_STATE = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>"""

_SYNC_COLLECTION = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>
  <D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>
</D:sync-collection>"""

_MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
{hrefs}
</C:calendar-multiget>"""

_MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


@dataclass(frozen=True)
class Credentials:
    """How to reach one account; the password never leaves this object except to the client."""

    url: str
    username: str
    password: str
    verify: bool | str = True  # False, True, or the path of a CA bundle
    timeout: float = 30.0
    bearer: BearerTokens | None = None  # OAuth instead of Basic: the password is unused

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True)
class Reply:
    """What a request returned: status, headers, and the parsed XML (if any)."""

    status: int
    headers: Mapping[str, str]
    tree: Any


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request and the backoff between them."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0


class Transport:
    """HTTP over caldav's DAVClient, from a small pool of clients (each a kept-alive connection).

    A request checks a client out and returns it afterwards, so however many threads come and
    go (the daemon's pair threads, each cycle's writers), no more clients exist than requests
    ever ran at once, and their connections are reused from cycle to cycle.
    """

    def __init__(self, credentials: Credentials, retry: RetryPolicy | None = None,
                 differences: ServerDifferences = STANDARD) -> None:
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.differences = differences
        self.requests: Counter[str] = Counter()
        self._idle: list[Any] = []
        self._made = 0
        self._lock = threading.Lock()
        self._not_before = 0.0

    @property
    def clients(self) -> int:
        """How many clients (connections) this transport has made."""
        return self._made

    def _checkout(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._made += 1
        from caldav.davclient import DAVClient  # noqa: PLC0415 - heavy; only when talking CalDAV

        creds = self.credentials
        login: dict[str, Any] = {"username": creds.username, "password": creds.password,
                                 "auth_type": "basic"}
        if creds.bearer is not None:  # applied by the session, so never in a logged header
            login = {"auth": BearerAuth("")}
        client = DAVClient(
            # huge_tree: one object over 10 MB must be skipped alone (expand.py), not fail
            # the whole listing; entity expansion stays off in caldav's parser.
            huge_tree=True, url=creds.url, **login,
            timeout=creds.timeout,  # type: ignore[arg-type] # a float works
            ssl_verify_cert=creds.verify,
            enable_rfc6764=False, rate_limit_handle=False,
        )
        # No proxy, CA bundle or .netrc from the environment: the configured server, verified
        # as configured, is the only place passwords and calendar data go.
        client.session.trust_env = False
        return client

    def _checkin(self, client: Any) -> None:
        with self._lock:
            self._idle.append(client)

    def close(self) -> None:
        """Close every idle connection (call when no request is running)."""
        with self._lock:
            clients, self._idle = self._idle, []
        for client in clients:
            client.close()

    def request(self, method: str, url: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> Reply:
        """Send with retries for transient faults; raise StoreError when it does not succeed."""
        error: StoreError | None = None
        for attempt in range(self.retry.attempts):
            if error is not None:
                time.sleep(self._delay(attempt))
            self._wait_if_told()
            try:
                reply = self._once(method, url, body, headers or {})
            except StoreError as exc:
                if not exc.transient:
                    raise
                error = exc
            else:
                if reply.status not in TRANSIENT_STATUSES:
                    return reply
                error = StoreError(operation=method, url=url, reason=f"http-{reply.status}",
                                   status=reply.status, transient=True,
                                   retry_after=_retry_after(reply.headers))
            if error.retry_after is not None and not self._told_to_wait(error.retry_after):
                break  # the server wants a longer pause than a cycle should take: next cycle
        assert error is not None
        raise error

    def _told_to_wait(self, seconds: float) -> bool:
        """Honour Retry-After for every request of this transport, not each on its own, so
        parallel writes do not multiply a rate limit. False if the wait is too long."""
        if seconds > self.retry.max_delay:
            return False
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)
        return True

    def _wait_if_told(self) -> None:
        with self._lock:
            pause = self._not_before - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.retry.base_delay * float(2 ** max(attempt - 1, 0)), self.retry.max_delay)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def _once(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """One request; a refused bearer token is forgotten and a new one tried, once."""
        bearer = self.credentials.bearer
        if bearer is None:
            return self._send(method, url, body, headers)
        try:
            return self._send(method, url, body, headers, bearer.authorization())
        except StoreError as exc:
            if exc.status != 401 or exc.operation == "TOKEN":
                raise
        bearer.invalidate()
        return self._send(method, url, body, headers, bearer.authorization())

    def _send(self, method: str, url: str, body: bytes, headers: Mapping[str, str],
              authorization: str | None = None) -> Reply:
        from caldav.lib import error as caldav_error  # noqa: PLC0415

        self.requests[method] += 1
        try:
            client = self._checkout()
            if authorization is not None:  # each request has the client to itself
                client.auth = BearerAuth(authorization)
            try:
                response = client.request(url, method, body, dict(headers))
            finally:
                self._checkin(client)
        except caldav_error.AuthorizationError as exc:
            if any(p.endswith("valid-sync-token") for p in exc.preconditions):
                raise TokenRejected(operation=method, url=url, reason="sync-token-rejected",
                                    status=exc.status) from None
            if self.differences.is_rate_limit(exc.status, exc.body):
                raise StoreError(operation=method, url=url, reason="rate-limited",
                                 status=exc.status, transient=True) from None
            reason = "forbidden" if exc.status == 403 else "auth-rejected"
            raise StoreError(operation=method, url=url, reason=reason,
                             status=exc.status) from None
        except caldav_error.RateLimitError as exc:
            raise StoreError(operation=method, url=url, reason="rate-limited",
                             status=exc.status, transient=True,
                             retry_after=exc.retry_after_seconds) from None
        except Exception as exc:  # noqa: BLE001 - transport errors may quote the server's reply
            raise _transport_error(method, url, exc) from None
        return Reply(response.status, dict(response.headers or {}), response.tree)


def _transport_error(method: str, url: str, exc: Exception) -> StoreError:
    name = type(exc).__name__.lower()
    if "ssl" in name or "certificate" in name or "CERTIFICATE" in str(exc):
        return StoreError(operation=method, url=url, reason="tls-verification-failed")
    if "timeout" in name:
        return StoreError(operation=method, url=url, reason="timeout", transient=True)
    if "xml" in name or "syntax" in name:
        return StoreError(operation=method, url=url, reason="bad-response", transient=True)
    return StoreError(operation=method, url=url, reason="connection-failed", transient=True)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else None


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
    found = []
    for href, status, prop in multistatus(reply, url, operation):
        _truncated(href, status, url, operation)
        if status != 200 or prop is None or _is_collection(href, url):
            continue
        data = prop.findtext(CALDAV + "calendar-data")
        if not data:
            continue
        etag = prop.findtext(DAV + "getetag")
        found.append(RawObject(href, etag.strip() if etag else None, data.encode("utf-8")))
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


def _range(window: Window) -> str:
    return (f'<C:time-range start="{window.start:%Y%m%dT%H%M%SZ}" '
            f'end="{window.end:%Y%m%dT%H%M%SZ}"/>')


class CalDAVSource:
    """A work calendar, read with one calendar-query per full cycle. It has no write method.

    Between full cycles, a sync-collection REPORT with the last token says whether anything
    changed (one cheap request), and a calendar-multiget fetches only what did.
    """

    def __init__(self, transport: Transport, url: str) -> None:
        self.transport = transport
        self.url = url

    def sync_token(self) -> str | None:
        """The collection's current sync token, or None if the server has none (RFC 6578)."""
        reply = self.transport.request("PROPFIND", self.url, _PROPFIND_SYNC_STATE.encode(),
                                       {"Depth": "0", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="PROPFIND", url=self.url, reason="source-not-found",
                             status=404)
        if reply.status != 207:
            return None
        for _, status, prop in multistatus(reply, self.url, "PROPFIND"):
            token = prop.findtext(DAV + "sync-token") if prop is not None else None
            if status == 200 and token:
                return str(token).strip()
        return None

    def changes(self, token: str) -> Changes:
        """What changed since `token`; TokenRejected when the server forgot it."""
        body = _SYNC_COLLECTION.format(token=_xml_text(token)).encode()
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
        for start in range(0, len(hrefs), 200):
            batch = hrefs[start:start + 200]
            lines = "\n".join(f"  <D:href>{_xml_text(urlsplit(h).path)}</D:href>" for h in batch)
            reply = self.transport.request("REPORT", self.url,
                                           _MULTIGET.format(hrefs=lines).encode(),
                                           {"Depth": "1", **XML_HEADERS})
            found.extend(_objects(reply, self.url, "REPORT"))
        return found

    def fetch(self, window: Window) -> list[RawObject]:
        """Every VEVENT object with an instance in the window, with its ETag and data."""
        body = _QUERY.format(range=_range(window)).encode()
        reply = self.transport.request("REPORT", self.url, body, {"Depth": "1", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="REPORT", url=self.url, reason="source-not-found",
                             status=404)
        return _objects(reply, self.url, "REPORT")


class CalDAVTarget:
    """A phone calendar: listed, created if missing, written with conditional requests."""

    def __init__(self, transport: Transport, url: str, display_name: str = "Appointments") -> None:
        self.transport = transport
        self.url = url
        self.display_name = display_name
        self.listed: frozenset[str] | None = None  # paths seen by list(), to create beside

    def list(self) -> list[RawObject]:
        """Every VEVENT object in the calendar; 404 if the calendar does not exist."""
        body = _QUERY.format(range="").encode()
        reply = self.transport.request("REPORT", self.url, body, {"Depth": "1", **XML_HEADERS})
        if reply.status == 404:
            raise StoreError(operation="REPORT", url=self.url, reason="target-not-found",
                             status=404)
        objects = _objects(reply, self.url, "REPORT")
        self.listed = frozenset(_names(reply, self.url))
        return objects

    def create_calendar(self) -> None:
        """MKCALENDAR; a calendar that appeared meanwhile is fine."""
        if not self.transport.differences.makes_calendars:
            raise StoreError(operation="MKCALENDAR", url=self.url, reason="calendar-must-exist")
        name = _xml_text(self.display_name)
        reply = self.transport.request("MKCALENDAR", self.url,
                                       _MKCALENDAR.format(name=name).encode(), XML_HEADERS)
        if reply.status == 405:  # already exists (RFC 4791 5.3.1.2)
            return
        _expect(reply, {200, 201}, "MKCALENDAR", self.url)

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """PUT If-None-Match: *, or where the server ignores that, only to a free name."""
        url = urljoin(self.url, href_name)
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
        reply = self.transport.request("PROPFIND", url, _PROPFIND_SYNC_STATE.encode(),
                                       {"Depth": "0", **XML_HEADERS})
        return reply.status != 404

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """PUT If-Match: the ETag read this cycle."""
        headers = {"If-Match": etag, **ICS_HEADERS} if etag else dict(ICS_HEADERS)
        reply = self.transport.request("PUT", href, data, headers)
        _expect(reply, {200, 201, 204}, "PUT", href)
        return _etag(reply.headers)

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE If-Match; already gone counts as done."""
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


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _etag(headers: Mapping[str, str]) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get("etag")
