"""A bounded HTTPS client for Microsoft Graph: everything a server says is hostile.

Every URL must lie under the account's graph_url (nextLink and deltaLink included); redirects are
refused; each request has a total deadline and an answer-size cap (the one HTTP client,
stores/wire.py); 429/503/504 (and 500) are
retried honouring Retry-After for the whole mailbox; at most 4 requests per mailbox are in flight,
the limit Exchange Online enforces. Nothing here logs a URL's query, a request or a response body.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sanitizer.errors import PreconditionFailed, StoreError, TokenRejected
from sanitizer.stores import wire
from sanitizer.stores.microsoft365.names import same_origin_prefix
from sanitizer.stores.retry import SYSTEM_CLOCK, Backoff, Clock, NotBefore, retry_after

MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAILBOX_CONCURRENCY = 4
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TOKEN_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


@dataclass(frozen=True)
class GraphSettings:
    """Where Graph is and how long a request may take."""

    graph_url: str
    timeout: float = 30.0
    verify: bool | str = True
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0  # a longer Retry-After ends the cycle's try; the next cycle retries
    clock: Clock = SYSTEM_CLOCK

    @property
    def backoff(self) -> Backoff:
        """The retry policy these settings describe."""
        return Backoff(self.attempts, self.base_delay, self.max_delay, self.clock)


@dataclass(frozen=True)
class GraphReply:
    """A successful answer: status, headers (lower-case names) and the JSON body (if any)."""

    status: int
    headers: Mapping[str, str]
    body: Any


class GraphClient:
    """One per account: the token source, one connection pool, a gate per mailbox."""

    def __init__(self, settings: GraphSettings, token: Callable[[bool], str]) -> None:
        self.settings = settings
        self.token = token  # token(refresh) -> a bearer token; refresh after a 401
        self.requests: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()  # the most requests a mailbox had in flight
        self.mailbox_ids: dict[str, str] = {}  # address or id -> object id (see mailbox.py)
        self._session = wire.session()  # nothing from the environment (stores/wire.py)
        self._lock = threading.Lock()
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._in_flight: Counter[str] = Counter()
        self._not_before = NotBefore()

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def request(self, method: str, url: str, mailbox: str, *, body: Any = None,
                headers: Mapping[str, str] | None = None, parse: bool = True) -> GraphReply:
        """Send with retries for throttling and transient faults; raise StoreError otherwise.
        Without `parse`, a successful answer's body is its bytes (see pages.py)."""
        if not same_origin_prefix(self.settings.graph_url, url):
            raise StoreError(operation=method, url=_shown(self.settings.graph_url),
                             reason="url-outside-graph")
        error: StoreError | None = None
        refreshed = refresh = False
        attempt = 0
        backoff = self.settings.backoff
        while attempt < backoff.attempts:
            if error is not None:
                backoff.pause(attempt)
            self._not_before.wait(mailbox.lower(), backoff.clock)
            try:
                status, reply_headers, raw = self._gated(method, url, mailbox, body, headers,
                                                         refresh)
            except StoreError as exc:
                if not exc.transient:
                    raise
                error, attempt, refresh = exc, attempt + 1, False  # a timeout: try again
                continue
            if status == 401 and not refreshed:
                refreshed = refresh = True  # an expired or revoked token: a new one, once
                continue
            refresh = False
            if status not in RETRY_STATUSES:
                return _answer(method, url, status, reply_headers, raw, parse)
            wait = retry_after(reply_headers, backoff.clock)
            error = StoreError(operation=method, url=_shown(url), reason=_reason(status),
                               status=status, transient=True, retry_after=wait)
            attempt += 1
            if wait is not None and not self._not_before.hold(mailbox.lower(), wait, backoff):
                break
        assert error is not None
        raise error

    def _gated(self, method: str, url: str, mailbox: str, body: Any,
               headers: Mapping[str, str] | None,
               refresh: bool) -> tuple[int, dict[str, str], bytes | bytearray]:
        gate = self._gate(mailbox)
        with gate:
            with self._lock:
                self._in_flight[mailbox] += 1
                self.peak[mailbox] = max(self.peak[mailbox], self._in_flight[mailbox])
                self.requests[method] += 1
            try:
                return self._once(method, url, body, headers or {}, refresh)
            finally:
                with self._lock:
                    self._in_flight[mailbox] -= 1

    def _gate(self, mailbox: str) -> threading.BoundedSemaphore:
        with self._lock:
            return self._gates.setdefault(mailbox.lower(),
                                          threading.BoundedSemaphore(MAILBOX_CONCURRENCY))

    def _once(self, method: str, url: str, body: Any, headers: Mapping[str, str],
              refresh: bool) -> tuple[int, dict[str, str], bytes | bytearray]:
        deadline = time.monotonic() + self.settings.timeout
        sent = {"Authorization": "Bearer " + self.token(refresh), "Accept": "application/json",
                **headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        try:
            answer = wire.fetch(self._session, method, url, deadline=deadline,
                                verify=self.settings.verify, cap=MAX_ANSWER_BYTES, data=data,
                                headers=sent)
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.body
        except wire.TooLarge:
            raise StoreError(operation=method, url=_shown(url),
                             reason="answer-too-large") from None
        except wire.TooSlow:
            raise StoreError(operation=method, url=_shown(url), reason="timeout",
                             transient=True) from None
        except Exception as exc:  # noqa: BLE001 - transport errors may quote the server's reply
            raise StoreError(operation=method, url=_shown(url), reason=_failure(exc),
                             transient=_failure(exc) != "tls-verification-failed") from None


def _failure(exc: Exception) -> str:
    """A reason code for a transport error, from its type's name only (its text may quote the
    server): a certificate that did not verify, a timeout, or a failed connection."""
    name = type(exc).__name__.lower()
    if "ssl" in name or "certificate" in name:
        return "tls-verification-failed"
    return "timeout" if "timeout" in name else "connection-failed"


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return _NOT_JSON


_NOT_JSON = object()


def _code(raw: bytes | bytearray) -> str | None:
    """Graph's error code (lower case), compared with known codes only: never a reason code.
    An error answer is a few hundred bytes; a larger one is not parsed."""
    if len(raw) > MAX_ERROR_BYTES:
        return None
    body = _json(raw)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code.lower() if isinstance(code, str) and len(code) <= 64 else None


def _reason(status: int) -> str:
    """A reason code from a fixed set: what the server calls its error is left out, so status
    files and metric labels hold only this project's words."""
    if status == 429:
        return "rate-limited"
    return f"http-{status}" if 400 <= status <= 599 else "bad-response"


def _answer(method: str, url: str, status: int, headers: Mapping[str, str],
            raw: bytes | bytearray, parse: bool = True) -> GraphReply:
    shown = _shown(url)
    if 300 <= status < 400:
        raise StoreError(operation=method, url=shown, reason="redirect-refused", status=status)
    if status == 412:
        raise PreconditionFailed(operation=method, url=shown, reason="precondition-failed",
                                 status=412)
    if status == 410 or (400 <= status < 500 and _code(raw) in TOKEN_CODES):
        raise TokenRejected(operation=method, url=shown, reason="sync-token-rejected",
                            status=status)
    if status in (401, 403):  # 403: the app may not use this mailbox (its RBAC scope)
        # 401 after a fresh token: Graph refused the token, which says nothing final about the
        # credential (the authority just accepted it), so the account is never held back
        reason = "forbidden" if status == 403 else "access-token-refused"
        raise StoreError(operation=method, url=shown, reason=reason, status=status)
    if status == 404:
        raise StoreError(operation=method, url=shown, reason="not-found", status=404)
    if not 200 <= status < 300:
        raise StoreError(operation=method, url=shown, reason=_reason(status), status=status)
    if not parse:
        return GraphReply(status, headers, raw)
    body = _json(raw)
    if body is _NOT_JSON:
        raise StoreError(operation=method, url=shown, reason="bad-response", status=status,
                         transient=True)
    return GraphReply(status, headers, body)


def _shown(url: str) -> str:
    """A URL as it may appear in a message: no query (tokens, filters)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
