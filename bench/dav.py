"""Direct access to the benchmark's Radicale, bypassing the counting proxy.

The benchmark's own traffic (loading calendars, editing a source event, warming Radicale's
caches) must not be counted against either tool, so it goes straight to the server over one
keep-alive connection. Loopback only.
"""

from __future__ import annotations

import base64
import http.client
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

from demo.embedded_server import MKCALENDAR_TEMPLATE

ICS = {"Content-Type": "text/calendar; charset=utf-8"}
XML = {"Content-Type": "application/xml; charset=utf-8"}
QUERY_ALL = (b'<?xml version="1.0" encoding="utf-8"?>'
             b'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
             b"<D:prop><D:getetag/><C:calendar-data/></D:prop>"
             b'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
             b'<C:time-range start="19700101T000000Z" end="21000101T000000Z"/>'
             b"</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>")
SYNC_ALL = (b'<?xml version="1.0" encoding="utf-8"?>'
            b'<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
            b"<D:prop><D:getetag/></D:prop></D:sync-collection>")
ETAGS = (b'<?xml version="1.0" encoding="utf-8"?>'
         b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>')


class Dav:
    """One keep-alive HTTP/1.1 connection to a loopback server, with Basic auth."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.scheme != "http":
            raise ValueError(f"refusing non-loopback URL {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.auth = f"Basic {token}"
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, url: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send one request on the kept-alive connection (reconnecting once if it was closed)."""
        path = urlsplit(url).path or "/"
        all_headers = {"Authorization": self.auth, **(headers or {})}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                continue
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def mkcalendar(self, url: str, name: str) -> None:
        status, _, body = self.request("MKCALENDAR", url,
                                       MKCALENDAR_TEMPLATE.format(displayname=name).encode(), XML)
        if status != 201:
            raise RuntimeError(f"MKCALENDAR {url}: {status} {body[:200]!r}")

    def put(self, url: str, data: bytes) -> None:
        status, _, body = self.request("PUT", url, data, ICS)
        if status not in (201, 204):
            raise RuntimeError(f"PUT {url}: {status} {body[:200]!r}")

    def put_all(self, calendar_url: str, objects: Mapping[str, bytes]) -> None:
        for href, data in objects.items():
            self.put(calendar_url + href, data)

    def warm(self, calendar_url: str) -> None:
        """Make Radicale build its per-item caches (parsed item, sync history) now, so the
        first tool to read a calendar does not pay for the benchmark's way of loading it."""
        for body, method in ((QUERY_ALL, "REPORT"), (SYNC_ALL, "REPORT"), (ETAGS, "PROPFIND")):
            status, _, data = self.request(method, calendar_url, body, {"Depth": "1", **XML})
            if status != 207:
                raise RuntimeError(f"{method} {calendar_url}: {status} {data[:200]!r}")

    def count(self, calendar_url: str) -> int:
        """Objects in a calendar (a PROPFIND of ETags; the collection itself not counted)."""
        status, _, data = self.request("PROPFIND", calendar_url, ETAGS, {"Depth": "1", **XML})
        if status != 207:
            raise RuntimeError(f"PROPFIND {calendar_url}: {status}")
        tree = ElementTree.fromstring(data)
        return max(0, len(tree.findall("{DAV:}response")) - 1)


def collection_dir(store_dir: Path, user: str, slug: str) -> Path:
    """Where Radicale's multifilesystem store keeps a calendar's items."""
    return store_dir / "collections" / "collection-root" / user / slug


def write_items(directory: Path, objects: Mapping[str, bytes]) -> None:
    """Drop item files straight into an existing collection (no fsync, no cache: see warm())."""
    for href, data in objects.items():
        (directory / href).write_bytes(data)

