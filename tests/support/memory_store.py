"""In-memory calendars that enforce ETags like a server, for fast tests of the engine.

ETags are deterministic (a hash of the bytes) and conditional writes fail with PreconditionFailed as
a 412 would. A duplicate UID in one calendar is accepted, as DAViCal does, so tests can build one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Sequence

from sanitizer.core.model import Window
from sanitizer.errors import PreconditionFailed, StoreError, TokenRejected
from sanitizer.stores.base import Changes, RawObject


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


class MemoryCalendar:
    """A calendar collection: href -> bytes, with ETags and request counts."""

    def __init__(self, url: str = "memory://calendar/") -> None:
        self.url = url
        self.objects: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.exists = True
        self.version = 0
        self.versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def etag(self, href: str) -> str:
        """The current ETag of an object."""
        return _etag(self.objects[href])

    def put_raw(self, name: str, data: bytes) -> str:
        """Store an object without conditions (test setup); returns its href."""
        href = self.url + name
        with self._lock:
            self._store(href, data)
        return href

    def remove_raw(self, href: str) -> None:
        """Delete an object without conditions (test setup)."""
        with self._lock:
            self.objects.pop(href, None)
            self._changed(href)

    def _store(self, href: str, data: bytes) -> None:
        self.objects[href] = data
        self._changed(href)

    def _changed(self, href: str) -> None:
        self.version += 1
        self.versions[href] = self.version

    # The change feed of RFC 6578: a token is the version counter.
    def sync_token(self) -> str | None:
        """The current version, as a token."""
        with self._lock:
            self.requests["PROPFIND"] += 1
            return f"v{self.version}"

    def changes(self, token: str) -> Changes:
        """Hrefs changed or removed since the token."""
        with self._lock:
            self.requests["REPORT"] += 1
            known = token.startswith("v") and token[1:].isdigit()
            if not known or int(token[1:]) > self.version:
                raise TokenRejected(operation="REPORT", url=self.url,
                                    reason="sync-token-rejected", status=403)
            since = int(token[1:])
            touched = sorted(h for h, v in self.versions.items() if v > since)
            return Changes(f"v{self.version}", tuple(h for h in touched if h in self.objects),
                           tuple(h for h in touched if h not in self.objects))

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The named objects that exist."""
        with self._lock:
            self.requests["REPORT"] += 1
            return [RawObject(h, _etag(self.objects[h]), self.objects[h])
                    for h in hrefs if h in self.objects]

    # Source side: time filtering is left to the expansion, which is the part under test.
    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """The token, then every object, as a CalDAV source reads them."""
        token = self.sync_token() if with_token else None
        return self.fetch(window), token

    def fetch(self, window: Window) -> list[RawObject]:
        """All objects (a server would filter by time; expansion filters again)."""
        return self._all()

    def _all(self) -> list[RawObject]:
        with self._lock:
            self.requests["REPORT"] += 1
            return [RawObject(h, _etag(d), d) for h, d in sorted(self.objects.items())]

    # Target side.
    def create_calendar(self) -> None:
        """Create the collection."""
        self.requests["MKCALENDAR"] += 1
        self.exists = True

    def holds(self, href: str) -> bool:
        """Whether `href` names an object directly inside this calendar."""
        name = href[len(self.url):] if href.startswith(self.url) else ""
        return bool(name) and "/" not in name

    def list(self) -> list[RawObject]:
        """All objects; 404 if the collection does not exist."""
        if not self.exists:
            raise StoreError(operation="REPORT", url=self.url, reason="target-not-found",
                             status=404)
        return self._all()

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """PUT with If-None-Match: *."""
        href = self.url + href_name
        with self._lock:
            self.requests["PUT"] += 1
            if href in self.objects:
                raise PreconditionFailed(operation="PUT", url=href, reason="exists", status=412)
            self._store(href, data)
            return href, _etag(data)

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """PUT with If-Match."""
        with self._lock:
            self.requests["PUT"] += 1
            if href not in self.objects or (etag is not None and _etag(self.objects[href]) != etag):
                raise PreconditionFailed(operation="PUT", url=href, reason="changed", status=412)
            self._store(href, data)
            return _etag(data)

    def delete(self, href: str, etag: str | None) -> None:
        """DELETE with If-Match; a missing object is already gone."""
        with self._lock:
            self.requests["DELETE"] += 1
            if href not in self.objects:
                return
            if etag is not None and _etag(self.objects[href]) != etag:
                raise PreconditionFailed(operation="DELETE", url=href, reason="changed",
                                         status=412)
            del self.objects[href]
            self._changed(href)


class UnreachableCalendar:
    """A calendar whose server does not answer, for failure isolation tests."""

    def __init__(self, url: str = "memory://down/") -> None:
        self.url = url

    def _fail(self) -> StoreError:
        return StoreError(operation="REPORT", url=self.url, reason="connection-failed",
                          transient=True)

    def fetch(self, window: Window) -> list[RawObject]:
        """Always fails."""
        raise self._fail()

    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """Always fails."""
        raise self._fail()

    def changes(self, token: str) -> Changes:
        """Always fails."""
        raise self._fail()

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """Always fails."""
        raise self._fail()

    def create_calendar(self) -> None:
        """Always fails."""
        raise self._fail()

    def list(self) -> list[RawObject]:
        """Always fails."""
        raise self._fail()

    def holds(self, href: str) -> bool:
        """Nothing is ever listed."""
        return False
