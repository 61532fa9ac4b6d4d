"""Tests for the fault-injecting proxy, against a tiny in-process upstream.

The proxy is test infrastructure that other tests trust to fail in exactly
the advertised way, so each fault kind is checked from a real HTTP client.
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import niquests
import pytest
import urllib3

from tests.support.faultproxy import FAULT_KINDS, FaultProxy, LogEntry

# -- tiny upstream -----------------------------------------------------------


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int


@dataclass
class Upstream:
    url: str
    bodies: dict[str, bytes] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def header(self, i: int, name: str) -> str | None:
        values = [v for k, v in self.seen[i].headers if k.lower() == name.lower()]
        return values[0] if values else None


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream: Upstream

    def server_bind(self) -> None:
        # Avoid HTTPServer's reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _UpstreamServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        up = self.server.upstream
        with up.lock:
            up.seen.append(
                Seen(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    self.client_address[1],
                )
            )
        return body

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        up = self.server.upstream
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/slow-upstream":
            time.sleep(0.2)
            self._reply(200, b"slow")
            return
        if self.path == "/close":
            self._reply(200, b"bye", {"Connection": "close"})
            self.close_connection = True
            return
        with up.lock:
            body = up.bodies.get(self.path)
        if body is None:
            self._reply(404, b"missing")
        else:
            self._reply(200, body, {"ETag": f'"{len(body)}"', "Content-Type": "text/calendar"})

    def do_PUT(self) -> None:
        body = self._record()
        up = self.server.upstream
        with up.lock:
            existed = self.path in up.bodies
            up.bodies[self.path] = body
        headers = {"ETag": f'"{len(body)}"', "Location": self.path}
        self._reply(204 if existed else 201, b"", headers)

    def do_DELETE(self) -> None:
        self._record()
        up = self.server.upstream
        with up.lock:
            found = up.bodies.pop(self.path, None) is not None
        self._reply(204 if found else 404)

    def do_PROPFIND(self) -> None:
        self._record()
        depth = self.headers.get("Depth", "none")
        xml = (
            '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response>'
            f"<d:href>{self.path}</d:href><d:depth>{depth}</d:depth>"
            "</d:response></d:multistatus>"
        ).encode()
        self._reply(207, xml, {"Content-Type": "application/xml; charset=utf-8"})


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = _UpstreamServer(("127.0.0.1", 0), _UpstreamHandler)
    up = Upstream(url=f"http://127.0.0.1:{server.server_address[1]}/dav/")
    server.upstream = up
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield up
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url, log=True, hang_seconds=5.0, slow_seconds=0.3) as p:
        yield p


def client(read: float = 2.0) -> urllib3.PoolManager:
    # retries=False so each fault surfaces as-is instead of being retried away.
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=read))


def base(p: FaultProxy) -> str:
    return p.url.rstrip("/")


# -- pass-through --------------------------------------------------------------


def test_url_keeps_upstream_path(proxy: FaultProxy) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}/dav/"


def test_pass_through_methods_headers_bodies_with_keepalive(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    http = client()
    ics = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    put = http.request(
        "PUT",
        f"{base(proxy)}/cal/a.ics",
        body=ics,
        headers={
            "Content-Type": "text/calendar",
            "If-None-Match": "*",
            "Authorization": "Basic dTpw",
        },
    )
    assert put.status == 201
    assert put.headers["ETag"] == f'"{len(ics)}"'
    assert put.headers["Location"] == "/dav/cal/a.ics"

    get = http.request("GET", f"{base(proxy)}/cal/a.ics", headers={"If-Match": '"x"'})
    assert get.status == 200
    assert get.data == ics
    assert get.headers["Content-Type"] == "text/calendar"

    prop = http.request(
        "PROPFIND",
        f"{base(proxy)}/cal/",
        body=b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>',
        headers={"Depth": "1", "Content-Type": "application/xml"},
    )
    assert prop.status == 207
    assert b"<d:depth>1</d:depth>" in prop.data

    delete = http.request("DELETE", f"{base(proxy)}/cal/a.ics")
    assert delete.status == 204
    assert upstream.bodies == {}

    assert [s.method for s in upstream.seen] == ["PUT", "GET", "PROPFIND", "DELETE"]
    assert upstream.seen[0].body == ics
    assert upstream.header(0, "Authorization") == "Basic dTpw"
    assert upstream.header(0, "If-None-Match") == "*"
    assert upstream.header(0, "Content-Type") == "text/calendar"
    assert upstream.header(1, "If-Match") == '"x"'
    assert upstream.header(2, "Depth") == "1"
    assert upstream.seen[2].body.startswith(b"<?xml")
    host, port = upstream.url.split("/")[2].split(":")
    assert upstream.header(0, "Host") == f"{host}:{port}"

    # Keep-alive on both sides: one client connection, one upstream connection.
    assert len({s.client_port for s in upstream.seen}) == 1
    stats = proxy.stats()
    assert stats.client_connections == 1
    assert stats.upstream_connections == 1
    assert dict(stats.requests) == {"PUT": 1, "GET": 1, "PROPFIND": 1, "DELETE": 1}
    assert dict(stats.forwarded) == dict(stats.requests)
    assert stats.total_faults == 0


def test_hop_by_hop_headers_are_not_forwarded(proxy: FaultProxy, upstream: Upstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
    conn.request(
        "GET",
        "/dav/missing",
        headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-End-To-End": "kept",
        },
    )
    resp = conn.getresponse()
    assert resp.status == 404
    assert resp.read() == b"missing"
    conn.close()
    names = {k.lower() for k, _ in upstream.seen[0].headers}
    assert "x-end-to-end" in names
    assert not names & {"x-hop", "keep-alive", "proxy-authorization"}
    assert upstream.header(0, "Connection") in (None, "keep-alive")


def test_chunked_upstream_response_is_reframed(proxy: FaultProxy) -> None:
    resp = client().request("GET", f"http://127.0.0.1:{proxy.port}/chunked")
    assert resp.status == 200
    assert resp.data == b"hello chunked world"
    assert resp.headers["Content-Length"] == str(len(b"hello chunked world"))
    assert "Transfer-Encoding" not in resp.headers


def test_chunked_request_body_is_forwarded_with_length(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=2)
    conn.request("PUT", "/dav/c.ics", body=iter([b"ab", b"cd"]), encode_chunked=True)
    assert conn.getresponse().status == 201
    conn.close()
    assert upstream.bodies["/dav/c.ics"] == b"abcd"
    assert upstream.header(0, "Content-Length") == "4"
    assert upstream.header(0, "Transfer-Encoding") is None


def test_upstream_connection_close_is_followed_by_reconnect(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    http = client()
    assert http.request("GET", f"http://127.0.0.1:{proxy.port}/close").status == 200
    assert http.request("GET", f"http://127.0.0.1:{proxy.port}/close").status == 200
    stats = proxy.stats()
    assert stats.client_connections == 1  # the client side stays alive
    assert stats.upstream_connections == 2


def test_upstream_down_gives_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{dead}/") as p:
        resp = client().request("GET", p.url)
        assert resp.status == 502
        assert p.stats().upstream_errors == 1


def test_niquests_session_keeps_alive(proxy: FaultProxy, upstream: Upstream) -> None:
    with niquests.Session() as s:
        s.trust_env = False
        for i in range(3):
            r = s.put(f"{base(proxy)}/n{i}.ics", data=b"x" * i, timeout=2)
            assert r.status_code == 201
        r = s.request("PROPFIND", f"{base(proxy)}/", headers={"Depth": "0"}, timeout=2)
        assert r.status_code == 207
    assert proxy.stats().client_connections == 1
    assert upstream.bodies["/dav/n2.ics"] == b"xx"


# -- faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "header"),
    [
        ("500", 500, None),
        ("502", 502, None),
        ("503", 503, None),
        ("429", 429, ("Retry-After", "1")),
        ("401-once", 401, ("WWW-Authenticate", 'Basic realm="x"')),
        ("html", 200, None),
    ],
)
def test_answered_faults_are_not_forwarded_and_keep_the_connection(
    proxy: FaultProxy,
    upstream: Upstream,
    kind: str,
    status: int,
    header: tuple[str, str] | None,
) -> None:
    http = client()
    proxy.force(kind)
    resp = http.request("PUT", f"{base(proxy)}/f.ics", body=b"data")
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("text/html")
    assert b"<html" in resp.data
    if header is not None:
        assert resp.headers[header[0]] == header[1]
    assert upstream.seen == []
    assert "/dav/f.ics" not in upstream.bodies

    ok = http.request("PUT", f"{base(proxy)}/f.ics", body=b"data")
    assert ok.status == 201
    stats = proxy.stats()
    assert stats.client_connections == 1
    assert dict(stats.faults) == {kind: 1}
    assert proxy.log_entries() == [
        LogEntry("PUT", "/dav/f.ics", status),
        LogEntry("PUT", "/dav/f.ics", 201),
    ]


def test_reset_fault(proxy: FaultProxy, upstream: Upstream) -> None:
    http = client()
    proxy.force("reset")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", f"{base(proxy)}/x")
    assert upstream.seen == []
    assert http.request("GET", f"{base(proxy)}/x").status == 404
    assert proxy.log_entries()[0] == LogEntry("GET", "/dav/x", None)


def test_reset_fault_sends_rst(proxy: FaultProxy) -> None:
    # SO_LINGER 0 must turn the close into an RST, not an orderly FIN.
    proxy.force("reset")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
        s.sendall(b"GET /dav/x HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            s.recv(100)


def test_timeout_fault_does_not_block_other_connections(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.force("timeout")
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client(read=0.3).request("GET", f"{base(proxy)}/x")
    assert time.monotonic() - started < 2.0
    # The held connection is still open on the proxy side; others get through.
    other = client().request("GET", f"{base(proxy)}/x")
    assert other.status == 404
    assert [s.method for s in upstream.seen] == ["GET"]
    assert proxy.stats().faults == {"timeout": 1}


def test_timeout_fault_closes_after_hang_seconds(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, hang_seconds=0.2) as p:
        p.force("timeout")
        with socket.create_connection(("127.0.0.1", p.port), timeout=3) as s:
            s.sendall(b"GET /dav/x HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            assert s.recv(100) == b""
            assert 0.15 <= time.monotonic() - started < 2.0
    assert upstream.seen == []


@pytest.mark.parametrize(("path", "method"), [("/dav/big.ics", "GET"), ("/dav/big.ics", "PUT")])
def test_truncated_fault(proxy: FaultProxy, upstream: Upstream, path: str, method: str) -> None:
    upstream.bodies[path] = b"B" * 1000
    proxy.force("truncated")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        # GET: body cut in half; PUT: empty 204 body, so the header block is cut.
        client().request(method, f"http://127.0.0.1:{proxy.port}{path}", body=b"B" * 1000)
    assert [s.method for s in upstream.seen] == [method]


def test_truncated_fault_sends_real_length_and_half_body(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    upstream.bodies["/dav/big.ics"] = b"B" * 1000
    proxy.force("truncated")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
        s.sendall(b"GET /dav/big.ics HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head
    assert body == b"B" * 500


def test_slow_fault(proxy: FaultProxy, upstream: Upstream) -> None:
    upstream.bodies["/dav/s.ics"] = b"s"
    proxy.force("slow")
    started = time.monotonic()
    resp = client().request("GET", f"{base(proxy)}/s.ics")
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert resp.data == b"s"
    assert elapsed >= 0.3
    # The delay is the proxy's, not the server's.
    assert proxy.stats().upstream_seconds["GET"] < 0.25


def test_applied_lost_fault_applies_the_put(proxy: FaultProxy, upstream: Upstream) -> None:
    http = client()
    proxy.force("applied-lost", methods=["PUT"])
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("PUT", f"{base(proxy)}/lost.ics", body=b"applied")
    assert upstream.bodies["/dav/lost.ics"] == b"applied"
    again = http.request("GET", f"{base(proxy)}/lost.ics")
    assert again.status == 200
    assert again.data == b"applied"
    assert proxy.log_entries() == [
        LogEntry("PUT", "/dav/lost.ics", None),
        LogEntry("GET", "/dav/lost.ics", 200),
    ]
    assert proxy.stats().forwarded == {"PUT": 1, "GET": 1}


def test_concurrent_clients(proxy: FaultProxy, upstream: Upstream) -> None:
    failures: list[BaseException] = []

    def work(n: int) -> None:
        http = client()
        try:
            for i in range(10):
                r = http.request("PUT", f"{base(proxy)}/t{n}-{i}.ics", body=f"{n}-{i}".encode())
                assert r.status == 201
                assert (
                    http.request("GET", f"{base(proxy)}/t{n}-{i}.ics").data == f"{n}-{i}".encode()
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert failures == []
    stats = proxy.stats()
    assert dict(stats.requests) == {"PUT": 80, "GET": 80}
    assert stats.client_connections == 8
    assert stats.upstream_connections == 8
    assert len(upstream.bodies) == 80


# -- fault selection ---------------------------------------------------------------


def _fault_sequence(url: str, seed: int) -> list[int]:
    statuses = []
    with FaultProxy(url, seed=seed, fault_rate=0.5, kinds=["500", "503", "429"]) as p:
        http = client()
        for i in range(40):
            method = "PUT" if i % 3 == 0 else "GET"
            statuses.append(http.request(method, f"{base(p)}/d{i % 5}.ics", body=b"d").status)
        assert p.stats().total_faults == sum(s in (500, 503, 429) for s in statuses)
    return statuses


def test_same_seed_same_faults(upstream: Upstream) -> None:
    first = _fault_sequence(upstream.url, seed=7)
    upstream.bodies.clear()
    second = _fault_sequence(upstream.url, seed=7)
    upstream.bodies.clear()
    other = _fault_sequence(upstream.url, seed=8)
    assert first == second
    assert first != other
    assert {500, 503, 429} & set(first)
    assert {200, 201, 204, 404} & set(first)


def test_methods_filter_and_runtime_policy(proxy: FaultProxy, upstream: Upstream) -> None:
    http = client()
    proxy.set_faults(1.0, kinds=["503"], methods=["put"])
    assert http.request("GET", f"{base(proxy)}/m.ics").status == 404
    assert http.request("PUT", f"{base(proxy)}/m.ics", body=b"m").status == 503
    proxy.set_faults(0.0)
    assert http.request("PUT", f"{base(proxy)}/m.ics", body=b"m").status == 201


def test_force_count_and_methods(proxy: FaultProxy) -> None:
    http = client()
    proxy.set_faults(1.0, kinds=["500"], methods=["DELETE"])  # random policy stays out of the way
    proxy.force("503", count=2, methods=["PUT"])
    statuses = [
        http.request(m, f"{base(proxy)}/f.ics", body=b"f").status
        for m in ("GET", "PUT", "GET", "PUT", "PUT")
    ]
    assert statuses == [404, 503, 404, 503, 201]
    assert proxy.stats().faults == {"503": 2}


def test_invalid_arguments(upstream: Upstream) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultProxy(upstream.url, kinds=["boom"])
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://127.0.0.1:1/")
    p = FaultProxy(upstream.url)
    with pytest.raises(ValueError):
        p.set_faults(1.5)
    with pytest.raises(ValueError):
        p.force("reset", count=0)
    assert set(FAULT_KINDS) >= {"500", "reset", "timeout", "applied-lost", "html"}


# -- counters, log, shutdown -----------------------------------------------------


def test_counters_and_upstream_time(proxy: FaultProxy) -> None:
    http = client()
    for _ in range(2):
        assert http.request("GET", f"http://127.0.0.1:{proxy.port}/slow-upstream").status == 200
    proxy.force("500")
    assert http.request("PROPFIND", f"{base(proxy)}/", headers={"Depth": "0"}).status == 500
    assert http.request("PROPFIND", f"{base(proxy)}/", headers={"Depth": "0"}).status == 207

    stats = proxy.stats()
    assert dict(stats.requests) == {"GET": 2, "PROPFIND": 2}
    assert dict(stats.forwarded) == {"GET": 2, "PROPFIND": 1}
    assert dict(stats.faults) == {"500": 1}
    assert 0.4 <= stats.upstream_seconds["GET"] < 2.0
    assert stats.upstream_seconds["PROPFIND"] < 0.2
    assert stats.total_upstream_seconds == pytest.approx(
        stats.upstream_seconds["GET"] + stats.upstream_seconds["PROPFIND"]
    )
    assert stats.bytes_in > 4 * len("GET / HTTP/1.1\r\n")
    assert stats.bytes_out > 2 * len(b"slow")
    with pytest.raises(AttributeError):
        stats.bytes_in = 0  # type: ignore[misc]

    proxy.reset_stats()
    zero = proxy.stats()
    assert zero.total_requests == 0
    assert zero.bytes_in == zero.bytes_out == 0
    assert zero.upstream_seconds == {}
    assert proxy.log_entries() == []


def test_log_supports_read_only_assertions(proxy: FaultProxy, upstream: Upstream) -> None:
    http = client()
    http.request("GET", f"{base(proxy)}/a.ics")
    http.request("PROPFIND", f"{base(proxy)}/", headers={"Depth": "1"})
    log = proxy.log_entries()
    assert log == [LogEntry("GET", "/dav/a.ics", 404), LogEntry("PROPFIND", "/dav/", 207)]
    assert not [e for e in log if e.method in ("PUT", "DELETE")]


def test_log_is_off_by_default(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as p:
        client().request("GET", p.url)
        assert p.log_entries() == []
        assert p.stats().total_requests == 1


def test_stop_is_fast_while_a_timeout_fault_holds(upstream: Upstream) -> None:
    p = FaultProxy(upstream.url, hang_seconds=30.0, log=True).start()
    p.force("timeout")
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            client(read=20.0).request("GET", p.url)
        except urllib3.exceptions.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    deadline = time.monotonic() + 2.0
    while not p.log_entries() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.log_entries() == [LogEntry("GET", "/dav/", None)]

    # An idle keep-alive client connection must not delay stop() either.
    idle = client()
    assert idle.request("GET", f"{base(p)}/x").status == 404

    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 1.0
    t.join(2.0)
    assert not t.is_alive()
    assert errors  # the held client saw the connection go away
    p.stop()  # idempotent
