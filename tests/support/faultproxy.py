"""Fault-injecting, request-counting HTTP/1.1 reverse proxy for tests and benchmarks.

It sits on 127.0.0.1 in front of a real CalDAV server (Radicale, Xandikos) so
the sync code meets the failures a phone-sync setup really sees (5xx bursts,
rate limits, resets, lost responses, captive-portal HTML) while the data still
lands in a real server, and so a benchmark can split client time from server
time. Faults are drawn from a seeded RNG so a failing run can be replayed.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import random
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import NamedTuple, Self, cast
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FAULT_KINDS", "FaultProxy", "LogEntry", "ProxyStats"]

_log = logging.getLogger(__name__)

FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "429",
    "401-once",
    "reset",
    "timeout",
    "truncated",
    "slow",
    "applied-lost",
    "html",
)

# Kinds answered by the proxy itself with a status page, never forwarded.
_STATUS_FAULTS: Mapping[str, int] = {
    "500": 500,
    "502": 502,
    "503": 503,
    "429": 429,
    "401-once": 401,
}

# RFC 9110 section 7.6.1 connection-specific headers, plus the legacy
# Proxy-Connection: they describe one hop, so the proxy must not pass them on.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers the proxy recomputes (Host, framing) or has already acted on (Expect).
_REQUEST_RECOMPUTED = frozenset({"host", "content-length", "expect"})

_MAX_LINE = 65536

_LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
    b'<h1>Sign in</h1><form method="post" action="/login">'
    b'<input name="username"><input name="password" type="password">'
    b'<button type="submit">Sign in</button></form></body></html>\n'
)


class LogEntry(NamedTuple):
    """One client request as the proxy saw it; status is None when no response was sent."""

    method: str
    path: str
    status: int | None


@dataclass(frozen=True)
class ProxyStats:
    """Immutable snapshot of the counters, so tests can diff before/after safely."""

    requests: Mapping[str, int]
    """Client requests by method, as the client spelled it."""
    forwarded: Mapping[str, int]
    """Requests that reached the upstream (and got a full response), by method."""
    faults: Mapping[str, int]
    """Injected faults by kind."""
    upstream_seconds: Mapping[str, float]
    """Server time by method: from sending upstream to having the full response."""
    upstream_errors: int
    """Upstream failures turned into 502 responses."""
    bytes_in: int
    """Bytes read from clients (request lines, headers, bodies)."""
    bytes_out: int
    """Bytes written to clients (status lines, headers, bodies)."""
    client_connections: int
    """TCP connections accepted from clients; stays low when clients keep alive."""
    upstream_connections: int
    """TCP connections opened to the upstream; stays low when keep-alive works."""

    @property
    def total_requests(self) -> int:
        """All client requests, whatever the method."""
        return sum(self.requests.values())

    @property
    def total_faults(self) -> int:
        """All injected faults, whatever the kind."""
        return sum(self.faults.values())

    @property
    def total_upstream_seconds(self) -> float:
        """All server time, whatever the method."""
        return sum(self.upstream_seconds.values())


class _Forced:
    """A pending forced fault: deterministic tests queue these instead of tuning a rate."""

    __slots__ = ("kind", "methods", "remaining")

    def __init__(self, kind: str, remaining: int, methods: frozenset[str] | None) -> None:
        self.kind = kind
        self.remaining = remaining
        self.methods = methods


class _Upstream(NamedTuple):
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return FAULT_KINDS
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown!r}; known: {FAULT_KINDS!r}")
    if not chosen:
        raise ValueError("kinds must not be empty (use fault_rate=0 for no faults)")
    return chosen


def _check_methods(methods: Collection[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(m.upper() for m in methods)


def _check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault rate must be within [0, 1], got {rate!r}")
    return float(rate)


class FaultProxy:
    """Reverse proxy on 127.0.0.1 that forwards to `upstream` and injects faults on demand.

    The proxy URL keeps the upstream path, so a client only swaps scheme, host and port.
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.0,
        kinds: Sequence[str] | None = None,
        methods: Collection[str] | None = None,
        hang_seconds: float = 30.0,
        slow_seconds: float = 1.5,
        upstream_timeout: float = 60.0,
        log: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be a plain http:// URL, got {upstream!r}")
        self._upstream_url = upstream
        self._up_host = parts.hostname
        self._up_port = parts.port or 80
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._up_hostheader = f"{host}:{parts.port}" if parts.port else host
        self._parts = parts
        self.hang_seconds = hang_seconds
        """How long a "timeout" fault holds the connection before closing it."""
        self.slow_seconds = slow_seconds
        """How long a "slow" fault delays the (already fetched) upstream response."""
        self.upstream_timeout = upstream_timeout
        """Socket timeout towards the upstream; expiry becomes a 502."""
        self._log_enabled = log

        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified as each request arrives
        self._rng = random.Random(seed)
        self._rate = _check_rate(fault_rate)
        self._kinds = _check_kinds(kinds)
        self._methods = _check_methods(methods)
        self._forced: list[_Forced] = []

        self._requests: Counter[str] = Counter()
        self._forwarded: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._upstream_seconds: dict[str, float] = {}
        self._upstream_errors = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._client_connections = 0
        self._upstream_connections = 0
        self._entries: list[LogEntry] = []

        self._stopping = threading.Event()
        self._server: _ProxyServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._handlers: set[_Handler] = set()
        self._started = False
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        with self._lock:
            if self._started:
                raise RuntimeError("FaultProxy can only be started once")
            self._started = True
        server = _ProxyServer(self)
        self._server = server
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"faultproxy-{self._port}",
            daemon=True,
        )
        self._serve_thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection, within about a second even mid-fault."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.abort()
        deadline = time.monotonic() + 0.8
        for handler in handlers:
            handler.thread.join(max(0.0, deadline - time.monotonic()))
        if self._serve_thread is not None:
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port; only valid after start()."""
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def url(self) -> str:
        """Proxy base URL: the upstream URL with scheme, host and port swapped."""
        p = self._parts
        return urlunsplit(("http", f"127.0.0.1:{self.port}", p.path, p.query, p.fragment))

    @property
    def upstream(self) -> str:
        """The upstream URL given at construction."""
        return self._upstream_url

    # -- fault control -----------------------------------------------------

    def set_faults(
        self,
        rate: float,
        kinds: Sequence[str] | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        """Change the random fault policy at run time; kinds/methods None mean all."""
        checked_rate = _check_rate(rate)
        checked_kinds = _check_kinds(kinds)
        checked_methods = _check_methods(methods)
        with self._lock:
            self._rate = checked_rate
            self._kinds = checked_kinds
            self._methods = checked_methods

    def force(self, kind: str, count: int = 1, methods: Collection[str] | None = None) -> None:
        """Inject `kind` into the next `count` requests whose method matches.

        Forced faults are queued in order, take precedence over the random
        policy and do not consume the RNG, so they leave the seeded sequence intact.
        """
        _check_kinds([kind])
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        with self._lock:
            self._forced.append(_Forced(kind, count, _check_methods(methods)))

    def clear_forced(self) -> None:
        """Drop forced faults that have not fired yet."""
        with self._lock:
            self._forced.clear()

    def _choose_fault(self, method: str) -> str | None:
        m = method.upper()
        with self._lock:
            for i, forced in enumerate(self._forced):
                if forced.methods is None or m in forced.methods:
                    forced.remaining -= 1
                    if forced.remaining <= 0:
                        del self._forced[i]
                    kind: str | None = forced.kind
                    break
            else:
                kind = None
                eligible = self._methods is None or m in self._methods
                if self._rate > 0.0 and eligible and self._rng.random() < self._rate:
                    kind = self._rng.choice(self._kinds)
            if kind is not None:
                self._faults[kind] += 1
            return kind

    # -- counters ----------------------------------------------------------

    def stats(self) -> ProxyStats:
        """Consistent snapshot of all counters."""
        with self._lock:
            return ProxyStats(
                requests=MappingProxyType(dict(self._requests)),
                forwarded=MappingProxyType(dict(self._forwarded)),
                faults=MappingProxyType(dict(self._faults)),
                upstream_seconds=MappingProxyType(dict(self._upstream_seconds)),
                upstream_errors=self._upstream_errors,
                bytes_in=self._bytes_in,
                bytes_out=self._bytes_out,
                client_connections=self._client_connections,
                upstream_connections=self._upstream_connections,
            )

    def reset_stats(self) -> None:
        """Zero all counters and clear the request log, e.g. between test phases."""
        with self._lock:
            self._requests.clear()
            self._forwarded.clear()
            self._faults.clear()
            self._upstream_seconds.clear()
            self._upstream_errors = 0
            self._bytes_in = 0
            self._bytes_out = 0
            self._client_connections = 0
            self._upstream_connections = 0
            self._entries.clear()

    def log_entries(self) -> list[LogEntry]:
        """Requests seen so far, in completion order (empty unless log=True)."""
        with self._lock:
            return list(self._entries)

    def _record(self, method: str, path: str, status: int | None) -> None:
        if self._log_enabled:
            with self._lock:
                self._entries.append(LogEntry(method, path, status))

    def _count_request(self, method: str) -> None:
        with self._lock:
            self._requests[method] += 1
            self._arrived.notify_all()

    def wait_for_requests(self, method: str | None = None, count: int = 1,
                          timeout: float = 20.0) -> None:
        """Block until `count` requests (of `method`, or any) have arrived, so a test orders
        its steps on what the client did instead of on a sleep; AssertionError at `timeout`."""
        def arrived() -> bool:
            return (self._requests[method] if method else sum(self._requests.values())) >= count

        with self._arrived:
            if not self._arrived.wait_for(arrived, timeout):
                raise AssertionError(f"{count} {method or 'any'} request(s) not seen in "
                                     f"{timeout} s: {dict(self._requests)}")

    def _count_forwarded(self, method: str, seconds: float) -> None:
        with self._lock:
            self._forwarded[method] += 1
            self._upstream_seconds[method] = self._upstream_seconds.get(method, 0.0) + seconds

    def _count_upstream_error(self) -> None:
        with self._lock:
            self._upstream_errors += 1

    def _count_upstream_connection(self) -> None:
        with self._lock:
            self._upstream_connections += 1

    def _add_in(self, n: int) -> None:
        with self._lock:
            self._bytes_in += n

    def _add_out(self, n: int) -> None:
        with self._lock:
            self._bytes_out += n

    def _register(self, handler: _Handler) -> None:
        with self._lock:
            self._handlers.add(handler)
            self._client_connections += 1
            stopping = self._stopping.is_set()
        if stopping:  # accepted just before shutdown: do not let it linger
            handler.abort()

    def _unregister(self, handler: _Handler) -> None:
        with self._lock:
            self._handlers.discard(handler)

    def _new_upstream(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self._up_host, self._up_port, timeout=self.upstream_timeout
        )


class _CountingReader:
    """Counts bytes the handler consumes from the client socket."""

    def __init__(self, inner: io.BufferedIOBase, add: Callable[[int], None]) -> None:
        self._inner = inner
        self._add = add

    def readline(self, limit: int = -1) -> bytes:
        data = self._inner.readline(limit)
        self._add(len(data))
        return data

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._add(len(data))
        return data

    def close(self) -> None:
        self._inner.close()

    @property
    def closed(self) -> bool:
        return self._inner.closed


class _CountingWriter:
    """Counts bytes the handler writes to the client socket."""

    def __init__(self, inner: io.BufferedIOBase, add: Callable[[int], None]) -> None:
        self._inner = inner
        self._add = add

    def write(self, data: bytes) -> int:
        n = self._inner.write(data)
        self._add(len(data))
        return n

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        self._inner.close()

    @property
    def closed(self) -> bool:
        return self._inner.closed


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients vanishing (or being cut by a fault) is routine here, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            _log.debug("client %s: connection error", client_address, exc_info=True)
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    """One client connection; owns one persistent upstream connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer
    thread: threading.Thread
    _upstream: http.client.HTTPConnection | None

    def setup(self) -> None:
        super().setup()
        proxy = self.server.proxy
        self.rfile = cast(io.BufferedIOBase, _CountingReader(self.rfile, proxy._add_in))
        self.wfile = cast(io.BufferedIOBase, _CountingWriter(self.wfile, proxy._add_out))
        self._upstream = None
        self.thread = threading.current_thread()
        proxy._register(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._close_upstream()
            self.server.proxy._unregister(self)

    def abort(self) -> None:
        """Unblock this handler's thread from another thread (used by stop())."""
        socks = [self.connection]
        upstream = self._upstream
        if upstream is not None and upstream.sock is not None:
            socks.append(upstream.sock)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        # Replaces the do_<METHOD> dispatch so that any method (PROPFIND,
        # REPORT, MKCALENDAR, ...) goes through the same forwarding path.
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if len(self.raw_requestline) > _MAX_LINE:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._handle()
            if not self.wfile.closed:
                self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    # -- request handling --------------------------------------------------

    def _handle(self) -> None:
        proxy = self.server.proxy
        method, path = self.command, self.path
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return
        proxy._count_request(method)
        kind = proxy._choose_fault(method)

        status = _STATUS_FAULTS.get(kind) if kind else None
        if status is not None:
            extra: list[tuple[str, str]] = []
            if kind == "429":
                extra.append(("Retry-After", "1"))
            elif kind == "401-once":
                extra.append(("WWW-Authenticate", 'Basic realm="x"'))
            proxy._record(method, path, status)
            self._send_page(status, extra)
            return
        if kind == "html":
            proxy._record(method, path, 200)
            self._send_page(200, [], _LOGIN_PAGE)
            return
        if kind == "reset":
            proxy._record(method, path, None)
            self._hard_close()
            return
        if kind == "timeout":
            proxy._record(method, path, None)
            proxy._stopping.wait(proxy.hang_seconds)
            self.close_connection = True
            return

        result = self._forward(method, self._target(path), body)
        if result is None:
            proxy._record(method, path, 502)
            self._send_page(502, [])
            return
        if kind == "applied-lost":
            proxy._record(method, path, None)
            self._hard_close()
            return
        if kind == "slow":
            proxy._stopping.wait(proxy.slow_seconds)
        proxy._record(method, path, result.status)
        self._send_upstream(result, truncate=kind == "truncated")

    def _read_body(self) -> bytes | None:
        """Read the whole request body so the connection stays in sync whatever happens next."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
            if n < 0:
                raise ValueError(length)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            return None
        data = self.rfile.read(n)
        return data if len(data) == n else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line:
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.send_error(HTTPStatus.BAD_REQUEST, "bad chunk size")
                return None
            if size == 0:
                while True:  # trailers are dropped
                    trailer = self.rfile.readline(_MAX_LINE + 1)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(chunks)
                    if not trailer:
                        return None
            data = self.rfile.read(size)
            if len(data) < size:
                return None
            chunks.append(data)
            self.rfile.readline(_MAX_LINE + 1)

    @staticmethod
    def _target(path: str) -> str:
        """Accept absolute-form targets too, forwarding only path and query."""
        if path.startswith(("http://", "https://")):
            p = urlsplit(path)
            return urlunsplit(("", "", p.path or "/", p.query, ""))
        return path

    def _upstream_headers(self, body: bytes) -> list[tuple[str, str]]:
        listed = {
            token.strip().lower()
            for value in self.headers.get_all("Connection", [])
            for token in value.split(",")
        }
        drop = _HOP_BY_HOP | _REQUEST_RECOMPUTED | listed
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        headers.insert(0, ("Host", self.server.proxy._up_hostheader))
        framed = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        if body or framed:
            headers.append(("Content-Length", str(len(body))))
        return headers

    def _forward(self, method: str, target: str, body: bytes) -> _Upstream | None:
        """Send upstream on this thread's persistent connection; None means "answer 502"."""
        proxy = self.server.proxy
        headers = self._upstream_headers(body)
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = proxy._new_upstream()
            conn = self._upstream
            reused = conn.sock is not None
            try:
                if not reused:
                    conn.connect()
                    proxy._count_upstream_connection()
                started = time.perf_counter()
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.perf_counter() - started
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._close_upstream()
                if reused and attempt == 1 and not proxy._stopping.is_set():
                    # The upstream closed an idle keep-alive connection; one retry
                    # on a fresh connection is what any HTTP client would do.
                    continue
                proxy._count_upstream_error()
                _log.debug("upstream %s %s failed", method, target, exc_info=True)
                return None
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                proxy._count_upstream_error()
                _log.debug("upstream %s %s failed", method, target, exc_info=True)
                return None
            proxy._count_forwarded(method, elapsed)
            return _Upstream(resp.status, resp.reason, resp.getheaders(), data)
        return None  # pragma: no cover - loop always returns

    def _close_upstream(self) -> None:
        conn, self._upstream = self._upstream, None
        if conn is not None:
            conn.close()

    # -- responses ---------------------------------------------------------

    def _has_body(self, status: int) -> bool:
        return self.command != "HEAD" and status >= 200 and status not in (204, 304)

    def _head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_page(
        self, status: int, extra: list[tuple[str, str]], page: bytes | None = None
    ) -> None:
        phrase = HTTPStatus(status).phrase
        if page is None:
            page = (
                f"<html><head><title>{status} {phrase}</title></head>"
                f"<body><h1>{status} {phrase}</h1></body></html>\n"
            ).encode()
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(page))),
            *extra,
        ]
        head = self._head(status, phrase, headers)
        self.wfile.write(head + page if self._has_body(status) else head)

    def _send_upstream(self, resp: _Upstream, *, truncate: bool) -> None:
        listed = {
            token.strip().lower()
            for k, v in resp.headers
            if k.lower() == "connection"
            for token in v.split(",")
        }
        drop = _HOP_BY_HOP | listed
        has_body = self._has_body(resp.status)
        if has_body:
            drop |= {"content-length"}
        headers = [(k, v) for k, v in resp.headers if k.lower() not in drop]
        if has_body:
            headers.append(("Content-Length", str(len(resp.body))))
        body = resp.body if has_body else b""
        if truncate:
            self.close_connection = True
        head = self._head(resp.status, resp.reason, headers)
        if not truncate:
            self.wfile.write(head + body)
        elif body:
            self.wfile.write(head + body[: len(body) // 2])
        else:
            # Nothing to cut in the body: cut the header block instead so the
            # client still sees a broken response rather than a valid empty one.
            self.wfile.write(head[: len(head) // 2])

    def _hard_close(self) -> None:
        """Close with SO_LINGER 0 so the client gets an RST, as from a crashed middlebox."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The fd is only released (and the RST sent) once the makefile() wrappers are closed too.
        for stream in (self.rfile, self.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        self.connection.close()
