"""A scripted hostile CalDAV server on 127.0.0.1, for what no real server does on purpose.

By default it behaves like a tiny CalDAV server: calendars are dicts of name -> ICS, a REPORT on a
calendar lists every object (no sync token, so every cycle is a full one), PUT/DELETE/MKCALENDAR
work with If-None-Match. A test scripts it per (method, path): a fixed answer or a function of the
request, whose body may be an iterator of chunks streamed without Content-Length (trickles, answers
of any size generated on the fly, never held in memory); status RAW sends the body's chunks as
the whole answer, status line and headers included (headers trickled a byte at a time). Listings
can carry extra entries with hostile hrefs. Every request is recorded (method, path, port, whether
it carried Authorization), so a test can prove what was never sent. A second instance on another
port stands for another host.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from tests.support.harness import Setup

Body = bytes | Iterable[bytes]
Answer = tuple[int, dict[str, str], Body]
Script = Answer | Callable[["Seen"], Answer | None]
XML = {"Content-Type": 'application/xml; charset="utf-8"'}
PASSWORD = "hostile-test-password"
RAW = 0  # the status of an answer whose body is the raw bytes to send, status line included


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    port: int
    authorized: bool
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # names in lower case


def etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def response_xml(href: str, data: bytes | None, with_data: bool = True) -> str:
    """One DAV:response with an ETag and, if given and wanted, calendar-data."""
    payload = (f"<C:calendar-data>{escape(data.decode())}</C:calendar-data>"
               if data and with_data else "")
    tag = etag(data) if data else '"collection"'
    return (f"<D:response><D:href>{escape(href)}</D:href><D:propstat><D:prop>"
            f"<D:getetag>{tag}</D:getetag>{payload}</D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")


def multistatus(responses: Iterable[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav">' + "".join(responses)
            + "</D:multistatus>").encode()


@dataclass
class HostileServer:
    """The server; use as a context manager. `tls` is (cert file, key file) to speak HTTPS."""

    tls: tuple[str, str] | None = None
    calendars: dict[str, dict[str, bytes]] = field(default_factory=dict)
    extra: dict[str, list[tuple[str, bytes | None]]] = field(default_factory=dict)
    scripts: dict[tuple[str, str], Script] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    served: list[str] = field(default_factory=list)  # hrefs whose data a REPORT sent
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def calendar(self, path: str, objects: dict[str, bytes] | None = None) -> str:
        """Create a calendar at `path` (like /casework/); its URL."""
        self.calendars[path] = dict(objects or {})
        return self.url + path.lstrip("/")

    def script(self, method: str, path: str, answer: Script) -> None:
        """Answer `method` on `path` ("*": any path) with `answer`; a function may return None
        to behave normally."""
        self.scripts[(method, path)] = answer

    def writes(self) -> list[Seen]:
        """Every request that could change something."""
        return [s for s in self.seen if s.method in ("PUT", "DELETE", "MKCALENDAR", "MOVE")]

    # default behaviour ---------------------------------------------------------------------

    def answer(self, seen: Seen) -> Answer:
        scripted = self.scripts.get((seen.method, seen.path), self.scripts.get((seen.method, "*")))
        if scripted is not None:
            canned = scripted(seen) if callable(scripted) else scripted
            if canned is not None:
                return canned
        handler = getattr(self, "_" + seen.method.lower(), None)
        return handler(seen) if handler else (405, {}, b"")

    def _split(self, path: str) -> tuple[str, str] | None:
        folder, _, name = path.rpartition("/")
        return (folder + "/", name) if folder + "/" in self.calendars and name else None

    def _report(self, seen: Seen) -> Answer:
        """Every object, with its data if the request asks for calendar-data; a multiget gets
        the objects it names only."""
        objects = self.calendars.get(seen.path)
        if objects is None:
            return 404, {}, b""
        named = None
        if b"calendar-multiget" in seen.body:
            named = {h.decode() for h in re.findall(rb"<D:href>([^<]*)</D:href>", seen.body)}
        wanted = [(seen.path + name, data) for name, data in sorted(objects.items())]
        wanted += list(self.extra.get(seen.path, []))
        wanted = [(href, data) for href, data in wanted if named is None or href in named]
        with_data = b"calendar-data" in seen.body or not seen.body
        if with_data:
            self.served += [href for href, data in wanted if data]
        return 207, XML, multistatus(response_xml(href, data, with_data)
                                     for href, data in wanted)

    def _propfind(self, seen: Seen) -> Answer:
        kind = "<C:calendar/>" if seen.path in self.calendars else ""
        return 207, XML, multistatus([
            f"<D:response><D:href>{escape(seen.path)}</D:href><D:propstat><D:prop>"
            f"<D:resourcetype><D:collection/>{kind}</D:resourcetype></D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"])

    def _put(self, seen: Seen) -> Answer:
        where = self._split(seen.path)
        if where is None:
            return 409, {}, b""
        self.calendars[where[0]][where[1]] = seen.body
        return 201, {"ETag": etag(seen.body)}, b""

    def _delete(self, seen: Seen) -> Answer:
        where = self._split(seen.path)
        if where is None or self.calendars[where[0]].pop(where[1], None) is None:
            return 404, {}, b""
        return 204, {}, b""

    def _mkcalendar(self, seen: Seen) -> Answer:
        self.calendars.setdefault(seen.path, {})
        return 201, {}, b""

    # plumbing ------------------------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, server.port,
                            "Authorization" in self.headers, self.rfile.read(length),
                            {k.lower(): v for k, v in self.headers.items()})
                server.seen.append(seen)
                status, headers, body = server.answer(seen)
                if status == RAW:
                    self.close_connection = True
                    self._raw(body)
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Connection", "close")  # streamed: the end of the body is EOF
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # the client gave up, as it should

            def _raw(self, body: Body) -> None:
                try:
                    for chunk in [body] if isinstance(body, bytes) else body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def trickled_headers(seconds: float, every: float = 0.2) -> Iterator[bytes]:
    """A status line and headers sent one byte every `every` seconds, for `seconds`: each byte
    comes well inside any read timeout, and the answer never starts."""
    text = b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nX-Slow: " + b"a" * 10_000
    end = time.monotonic() + seconds
    for byte in text:
        if time.monotonic() >= end:
            return
        yield bytes([byte])
        time.sleep(every)


def stream(head: bytes, repeat: bytes, count: int, tail: bytes) -> Iterator[bytes]:
    """head + repeat * count + tail, generated as it is sent."""
    yield head
    for _ in range(count):
        yield repeat
    yield tail


UID_KEY = b"hostile-server-tests-uid-key-0123456789abcdef"


def configure(root: Path, server: HostileServer, *, service: str = "", account: str = "",
              pairs: tuple[str, ...] = ("p",)) -> Setup:
    """One account on the server; pair NAME reads /NAME-casework/ ("p": /casework/) and writes
    /NAME-phone/ ("p": /phone/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "credentials").mkdir(mode=0o700, exist_ok=True)
    (root / "credentials" / "main").write_text(PASSWORD, encoding="utf-8")
    (root / "credentials" / "uid-key").write_bytes(UID_KEY)  # so tests can make "our" entries
    text = (f'[service]\ntimezone = "UTC"\nstate_dir = "{root / "state"}"\n{service}\n'
            f'[accounts.main]\nurl = "{server.url}"\nusername = "advocate"\n{account}\n')
    for name in pairs:
        prefix = "" if name == "p" else name + "-"
        text += (f'\n[[pairs]]\nname = "{name}"\naccount = "main"\n'
                 f'source = "{prefix}casework/"\ntarget = "{prefix}phone/"\n')
    (root / "config.toml").write_text(text, encoding="utf-8")
    return Setup(root, root / "config.toml", root / "state", root / "credentials")
