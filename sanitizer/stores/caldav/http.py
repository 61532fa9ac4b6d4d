"""HTTP for the CalDAV stores: every answer is hostile until proven bounded.

Each request goes only to the account's own URLs (plain HTTP only to loopback), follows no
redirect (a 3xx is an error that says to fix the URL), must deliver its whole answer before a
wall-clock deadline and within a size cap, and is read as it streams: XML is parsed chunk by chunk,
so the raw answer is never held next to its tree. Transient failures (connection errors, timeouts,
5xx, 429) are retried with backoff and jitter, honouring Retry-After, within the pair's cycle
budget; other 4xx are not. Nothing here logs a request or response body.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from lxml import etree

from sanitizer.errors import StoreError, TokenRejected
from sanitizer.stores import wire
from sanitizer.stores.bearer import BearerTokens
from sanitizer.stores.caldav.differences import STANDARD, ServerDifferences
from sanitizer.stores.retry import Backoff, NotBefore, retry_after
from sanitizer.stores.urls import is_loopback, within

MIB = 1024 * 1024
ANSWER_CAP = 20 * MIB  # many objects at the parser's per-object cap; two pairs in flight fit
DEADLINE_TIMEOUTS = 4.0  # a whole answer must arrive within this many `timeout`s
ERROR_HEAD = 4096  # bytes of a non-XML error answer kept to classify it (a quota message)
TRANSIENT_STATUSES = frozenset({408, 423, 425, 429, 500, 502, 503, 504})  # 423: Xandikos, busy
NOT_RETRIED = frozenset({"answer-too-large", "answer-too-slow", "cycle-budget-exhausted"})
CALENDAR_DATA = "{urn:ietf:params:xml:ns:caldav}calendar-data"
BLOB = "{urn:x-calendar-sanitizer}blob"  # set on every calendar-data element, whatever it had
FIX_URL = "the server redirects elsewhere; no redirect is followed: fix the URL in the config"


@dataclass(frozen=True)
class Credentials:
    """How to reach one account; the password never leaves this object except to the server.

    Requests may go to `url` and below, and below any of `bases` (calendars the config places
    elsewhere on the same server).
    """

    url: str
    username: str
    password: str
    verify: bool | str = True  # False, True, or the path of a CA bundle
    timeout: float = 30.0
    bases: tuple[str, ...] = ()
    bearer: BearerTokens | None = None  # OAuth instead of Basic: the password is unused

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True)
class Limits:
    """What one answer may cost: bytes, and seconds from sending to the last byte."""

    answer_bytes: int = ANSWER_CAP
    deadline: float | None = None  # None: DEADLINE_TIMEOUTS x the account's timeout


@dataclass(frozen=True)
class Reply:
    """What a request returned: status, headers, and the parsed XML (if any).

    Calendar data is taken out of the tree as it streams in: each calendar-data element is left
    empty, with a BLOB attribute that indexes `blobs`, so the data is held once, as bytes.
    """

    status: int
    headers: Mapping[str, str]
    tree: Any
    blobs: tuple[bytes, ...] = ()
    head: bytes = b""  # the start of a non-XML error answer, to classify it; never shown

    def calendar_data(self, node: Any) -> bytes | None:
        """The data of a calendar-data element of this reply's tree."""
        ref = node.get(BLOB)
        if ref is not None and ref.isdigit() and int(ref) < len(self.blobs):
            return self.blobs[int(ref)]
        return node.text.encode("utf-8") if node.text else None


class Requester(Protocol):
    """What the stores need: one request, answered or raised as StoreError, and how the
    service departs from the RFCs."""

    @property
    def differences(self) -> ServerDifferences:
        """The service's differences (STANDARD for most)."""
        ...

    def request(self, method: str, url: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> Reply:
        """Send; a Reply for any non-3xx answer within the limits."""
        ...


class Transport:
    """HTTP sessions from a small pool (each a kept-alive connection).

    A request checks a session out and returns it afterwards, so however many threads come and
    go (the daemon's pair threads, each cycle's writers), no more sessions exist than requests
    ever ran at once, and their connections are reused from cycle to cycle.
    """

    def __init__(self, credentials: Credentials, retry: Backoff | None = None,
                 limits: Limits | None = None,
                 differences: ServerDifferences = STANDARD) -> None:
        self.credentials = credentials
        self.retry = retry or Backoff()
        self.limits = limits or Limits()
        self.differences = differences
        self.requests: Counter[str] = Counter()
        self._idle: list[Any] = []
        self._made = 0
        self._lock = threading.Lock()
        self._not_before = NotBefore()

    @property
    def clients(self) -> int:
        """How many sessions (connections) this transport has made."""
        return self._made

    def within_budget(self, until: float) -> BudgetedTransport:
        """This transport, for one pair's cycle: no request runs past `until` (monotonic)."""
        return BudgetedTransport(self, until)

    def _checkout(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._made += 1
        return wire.session()

    def _checkin(self, session: Any) -> None:
        with self._lock:
            self._idle.append(session)

    def close(self) -> None:
        """Close every idle connection (call when no request is running)."""
        with self._lock:
            sessions, self._idle = self._idle, []
        for session in sessions:
            session.close()

    def request(self, method: str, url: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None, until: float | None = None) -> Reply:
        """Send with retries for transient faults; raise StoreError when it does not succeed."""
        error: StoreError | None = None
        for attempt in range(self.retry.attempts):
            if error is not None and not self.retry.pause(attempt, until):
                break
            self._not_before.wait("", self.retry.clock)
            try:
                reply = self._once(method, url, body, headers or {}, until)
            except StoreError as exc:
                if not exc.transient or exc.reason in NOT_RETRIED:
                    raise
                error = exc
            else:
                if reply.status not in TRANSIENT_STATUSES:
                    return reply
                error = StoreError(operation=method, url=url, reason=f"http-{reply.status}",
                                   status=reply.status, transient=True,
                                   retry_after=retry_after(reply.headers, self.retry.clock))
            if error.retry_after is not None and not self._not_before.hold("", error.retry_after,
                                                                            self.retry):
                break  # the server wants a longer pause than a cycle should take: next cycle
        assert error is not None
        raise error

    def _confine(self, method: str, url: str) -> None:
        """The backstop under href confinement: only the account's URLs, never plain HTTP to
        another host (the password would travel in clear)."""
        creds = self.credentials
        if not any(within(url, base) for base in (creds.url, *creds.bases)):
            raise StoreError(operation=method, url=url, reason="url-outside-account")
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" and not is_loopback(parts.hostname or ""):
            raise StoreError(operation=method, url=url, reason="plain-http-refused")

    def _deadline(self, until: float | None) -> float:
        seconds = self.limits.deadline
        if seconds is None:
            seconds = DEADLINE_TIMEOUTS * self.credentials.timeout
        deadline = time.monotonic() + seconds
        return deadline if until is None else min(deadline, until)

    def _once(self, method: str, url: str, body: bytes, headers: Mapping[str, str],
              until: float | None) -> Reply:
        self._confine(method, url)
        deadline = self._deadline(until)
        if until is not None and time.monotonic() >= until:
            raise _over_budget(method, url)
        self.requests[method] += 1
        session = self._checkout()
        try:
            return self._authorized(session, method, url, body, headers, deadline)
        except StoreError as exc:
            if until is not None and exc.transient and time.monotonic() >= until:
                raise _over_budget(method, url) from None  # cut short by the budget, not slow
            raise
        finally:
            self._checkin(session)

    def _authorized(self, session: Any, method: str, url: str, body: bytes,
                    headers: Mapping[str, str], deadline: float) -> Reply:
        """Basic with the password, or a bearer token; a refused token is forgotten and a new
        one tried, once (tokens expire between cycles)."""
        creds = self.credentials
        if creds.bearer is None:
            secret = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return self._exchange(session, method, url, body, headers, deadline,
                                  authorization=f"Basic {secret}")
        for fresh in (False, True):
            try:
                return self._exchange(session, method, url, body, headers, deadline,
                                      authorization=creds.bearer.authorization())
            except StoreError as exc:
                if exc.status != 401 or exc.operation == "TOKEN":
                    raise
                if fresh:  # a fresh token refused: no verdict on the key, never held back
                    raise StoreError(operation=method, url=url, reason="access-token-refused",
                                     status=401) from None
            creds.bearer.invalidate()
        raise AssertionError("unreachable")

    def _exchange(self, session: Any, method: str, url: str, body: bytes,
                  headers: Mapping[str, str], deadline: float, *, authorization: str) -> Reply:
        try:
            with wire.alarm(deadline):  # headers trickled a byte at a time end here too
                reply = self._send_and_read(session, method, url, body, headers,
                                            deadline=deadline, authorization=authorization)
        except wire.TooSlow:
            session.close()  # cut off mid-answer: its connection is not used again
            raise StoreError(operation=method, url=url, reason="answer-too-slow",
                             transient=True, hint="the answer did not arrive in time") from None
        self._raise_for_auth(reply, method, url)
        return reply

    def _send_and_read(self, session: Any, method: str, url: str, body: bytes,
                       headers: Mapping[str, str], *, deadline: float,
                       authorization: str) -> Reply:
        creds = self.credentials
        try:
            response = wire.send(session, method, url, timeout=creds.timeout, deadline=deadline,
                                 verify=creds.verify, data=body or None,
                                 headers={**headers, "Authorization": authorization})
        except wire.TooSlow:
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors may quote the server's reply
            raise _transport_error(method, url, exc) from None
        try:
            status = int(response.status_code or 0)
            if 300 <= status < 400:
                raise StoreError(operation=method, url=url, reason="redirect-refused",
                                 status=status, hint=FIX_URL)
            blobs: list[bytes] = []
            head = bytearray()
            tree = self._read(response, method, url, deadline, blobs, head)
            reply = Reply(status, dict(response.headers or {}), tree, tuple(blobs), bytes(head))
            del blobs
        finally:
            response.close()
        return reply

    def _raise_for_auth(self, reply: Reply, method: str, url: str) -> None:
        """401: the secret was refused; 403: forbidden, or a quota where the service says so."""
        if reply.status not in (401, 403):
            return
        tree = reply.tree
        if tree is not None and any(str(node.tag).endswith("valid-sync-token")
                                    for node in tree.iter()):
            raise TokenRejected(operation=method, url=url, reason="sync-token-rejected",
                                status=reply.status)
        if reply.status == 403 and tree is not None and any(
                str(node.tag) == "{DAV:}resource-must-be-null" for node in tree.iter()):
            return  # a precondition (something exists there), for the caller: not access
        if self.differences.is_rate_limit(reply.status, reply.head):
            raise StoreError(operation=method, url=url, reason="rate-limited",
                             status=reply.status, transient=True,
                             retry_after=retry_after(reply.headers, self.retry.clock))
        reason = "forbidden" if reply.status == 403 else "auth-rejected"
        raise StoreError(operation=method, url=url, reason=reason, status=reply.status)

    def _read(self, response: Any, method: str, url: str, deadline: float,
              blobs: list[bytes], head: bytearray) -> Any:
        """The answer, parsed as it streams if it is XML (else drained and dropped), within
        the size cap and the deadline; calendar data goes to `blobs`."""
        status = int(response.status_code or 0)
        content_type = str((response.headers or {}).get("content-type", "")).lower()
        parser = _parser() if status == 207 or "xml" in content_type else None
        cap = self.limits.answer_bytes
        try:
            for chunk in wire.chunks(response, cap, deadline):
                if parser is not None:
                    parser = _feed(parser, chunk, blobs)
                elif status >= 400 and len(head) < ERROR_HEAD:
                    head += chunk[:ERROR_HEAD - len(head)]
        except wire.TooLarge:
            raise StoreError(operation=method, url=url, reason="answer-too-large",
                             hint=f"the answer exceeds {_size(cap)}") from None
        except wire.TooSlow:
            raise StoreError(operation=method, url=url, reason="answer-too-slow",
                             transient=True, hint="the answer did not arrive in time") from None
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a reset or timeout while reading
            raise _transport_error(method, url, exc) from None
        return _close(parser)


class BudgetedTransport:
    """A transport seen by one pair's cycle: the same connections, the pair's time budget."""

    def __init__(self, transport: Transport, until: float) -> None:
        self.transport = transport
        self.until = until

    @property
    def differences(self) -> ServerDifferences:
        """Those of the transport."""
        return self.transport.differences

    def request(self, method: str, url: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> Reply:
        """Transport.request, never past the cycle budget."""
        return self.transport.request(method, url, body, headers, until=self.until)


def _over_budget(method: str, url: str) -> StoreError:
    return StoreError(operation=method, url=url, reason="cycle-budget-exhausted", transient=True,
                      hint="the pair's cycle ran out of time; the next cycle carries on")


def _parser() -> Any:
    # huge_tree: one object over 10 MB must be skipped alone (expand.py), not fail the whole
    # listing; the answer cap bounds it. Entities, DTDs and the network stay off.
    return etree.XMLPullParser(events=("end",), tag=CALENDAR_DATA, huge_tree=True,
                               resolve_entities=False, no_network=True, load_dtd=False)


def _feed(parser: Any, chunk: bytes, blobs: list[bytes]) -> Any:
    """Feed one chunk and move the calendar data it completed out of the tree; None once the
    XML is broken (the rest is still read, for the limits)."""
    try:
        parser.feed(chunk)
    except etree.XMLSyntaxError:
        return None
    for _, node in parser.read_events():
        blobs.append((node.text or "").encode("utf-8", "surrogatepass"))
        node.text = None
        node.set(BLOB, str(len(blobs) - 1))
    return parser


def _close(parser: Any) -> Any:
    if parser is None:
        return None
    try:
        return parser.close()
    except etree.XMLSyntaxError:
        return None


def _size(count: int) -> str:
    return f"{count // MIB} MiB" if count >= MIB else f"{count} bytes"


def _transport_error(method: str, url: str, exc: Exception) -> StoreError:
    name = type(exc).__name__.lower()
    if "ssl" in name or "certificate" in name or "CERTIFICATE" in str(exc):
        return StoreError(operation=method, url=url, reason="tls-verification-failed")
    if "timeout" in name:
        return StoreError(operation=method, url=url, reason="timeout", transient=True)
    return StoreError(operation=method, url=url, reason="connection-failed", transient=True)
