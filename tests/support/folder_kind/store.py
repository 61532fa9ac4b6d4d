"""A folder of .ics files as a source and as a target, with ETags and a change feed.

The ETag is a hash of the bytes; conditional writes fail as a 412 would. A sync token names a
snapshot of (file, ETag) pairs kept under the account's `.sync/` folder, so that a worker process
and the next one see the same feed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sanitizer.core.model import Window
from sanitizer.errors import PreconditionFailed, StoreError, TokenRejected
from sanitizer.stores.base import Changes, RawObject

SUFFIX = ".ics"


def folder_of(url: str) -> Path:
    """The folder a `folder:///path/` URL names."""
    return Path(unquote(urlsplit(url).path))


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


class FolderCalendar:
    """One calendar: the .ics files directly inside a folder."""

    def __init__(self, url: str, sync_dir: Path) -> None:
        self.url = url
        self.path = folder_of(url)
        self.sync_dir = sync_dir / hashlib.sha256(url.encode()).hexdigest()[:16]

    def _objects(self) -> dict[str, bytes]:
        if not self.path.is_dir():
            raise StoreError(operation="LIST", url=self.url, reason="not-found", status=404)
        return {self.url + p.name: p.read_bytes()
                for p in sorted(self.path.iterdir()) if p.suffix == SUFFIX and p.is_file()}

    def _file(self, href: str) -> Path:
        if not self.holds(href):
            raise StoreError(operation="PUT", url=self.url, reason="href-outside-calendar")
        return self.path / href[len(self.url):]

    # Source side.
    def fetch(self, window: Window) -> list[RawObject]:
        """Every object (the expansion filters by time)."""
        return [RawObject(h, _etag(d), d) for h, d in self._objects().items()]

    def read(self, window: Window, *, with_token: bool) -> tuple[list[RawObject], str | None]:
        """Every object, and a token for the change feed."""
        objects = self._objects()
        token = self._snapshot(objects) if with_token else None
        return [RawObject(h, _etag(d), d) for h, d in objects.items()], token

    def changes(self, token: str) -> Changes:
        """Files changed, added or removed since the token's snapshot."""
        try:
            before = json.loads((self.sync_dir / f"{token}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise TokenRejected(operation="REPORT", url=self.url, reason="sync-token-rejected",
                                status=403) from None
        objects = self._objects()
        now = {href: _etag(data) for href, data in objects.items()}
        changed = tuple(sorted(h for h, etag in now.items() if before.get(h) != etag))
        removed = tuple(sorted(h for h in before if h not in now))
        return Changes(self._snapshot(objects), changed, removed)

    def multiget(self, hrefs: Sequence[str]) -> list[RawObject]:
        """The named objects that exist."""
        objects = self._objects()
        return [RawObject(h, _etag(objects[h]), objects[h]) for h in hrefs if h in objects]

    def _snapshot(self, objects: dict[str, bytes]) -> str:
        state = {href: _etag(data) for href, data in objects.items()}
        text = json.dumps(state, sort_keys=True)
        token = "t" + hashlib.sha256(text.encode()).hexdigest()[:24]
        self.sync_dir.mkdir(parents=True, exist_ok=True)
        (self.sync_dir / f"{token}.json").write_text(text, encoding="utf-8")
        return token

    # Target side.
    def list(self) -> list[RawObject]:
        """Every object; 404 if the folder does not exist."""
        return [RawObject(h, _etag(d), d) for h, d in self._objects().items()]

    def create_calendar(self) -> None:
        """Make the folder."""
        self.path.mkdir(parents=True, exist_ok=True)

    def holds(self, href: str) -> bool:
        """Whether `href` names a file directly inside this folder."""
        name = href[len(self.url):] if href.startswith(self.url) else ""
        return bool(name) and "/" not in name and name not in (".", "..")

    def create(self, href_name: str, data: bytes) -> tuple[str, str | None]:
        """A new file; 412 if one is there."""
        href = self.url + href_name
        try:
            with open(self._file(href), "xb") as out:
                out.write(data)
        except FileExistsError:
            raise PreconditionFailed(operation="PUT", url=href, reason="exists",
                                     status=412) from None
        return href, _etag(data)

    def update(self, href: str, etag: str | None, data: bytes) -> str | None:
        """Replace a file whose ETag is `etag`; 412 otherwise."""
        path = self._file(href)
        if not path.is_file() or (etag is not None and _etag(path.read_bytes()) != etag):
            raise PreconditionFailed(operation="PUT", url=href, reason="changed", status=412)
        path.write_bytes(data)
        return _etag(data)

    def delete(self, href: str, etag: str | None) -> None:
        """Remove a file whose ETag is `etag`; a missing one is already gone."""
        path = self._file(href)
        if not path.is_file():
            return
        if etag is not None and _etag(path.read_bytes()) != etag:
            raise PreconditionFailed(operation="DELETE", url=href, reason="changed", status=412)
        os.unlink(path)
