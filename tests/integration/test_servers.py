"""The test servers and the demo's embedded Radicale really serve CalDAV.

Every other integration test trusts these launchers, so this module checks the
things those tests silently rely on: calendars can be created and written,
passwords and certificates are actually checked, and nothing is left behind.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import stat
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import demo.embedded_server as embedded_server
import tests.support.servers as servers_module
from demo.embedded_server import (
    EmbeddedRadicale,
    ServerStartError,
    dav_request,
)
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import CalDAVServer, XandikosServer

pytestmark = pytest.mark.integration  # every test here starts a real server

EVENT = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//calendar-sanitizer//tests//EN\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20260302T100000Z\r\n"
    "DTEND:20260302T110000Z\r\n"
    "SUMMARY:Busy\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
PROPFIND_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:resourcetype/></D:prop></D:propfind>'
)
XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}


def test_server_answers_authenticated_propfind(caldav_server: CalDAVServer) -> None:
    resp = caldav_server.request("PROPFIND", caldav_server.principal_url, headers={"Depth": "0"})
    assert resp.status == 207
    scheme = "https" if caldav_server.ca_file else "http"
    assert caldav_server.url.startswith(f"{scheme}://127.0.0.1:")


def test_created_calendar_is_a_calendar_with_its_name(fresh_calendars: FreshCalendars) -> None:
    server = fresh_calendars.server
    url = fresh_calendars.new("named", displayname="Work & <Court>")
    assert url.startswith(server.calendar_home_url)
    assert url.endswith("/")

    resp = server.request(
        "PROPFIND", url, body=PROPFIND_BODY, headers={"Depth": "0", **XML_HEADERS}
    )
    assert resp.status == 207
    text = resp.body.decode()
    assert "Work &amp; &lt;Court&gt;" in text
    assert "calendar" in text  # C:calendar resourcetype

    listing = server.request(
        "PROPFIND",
        server.calendar_home_url,
        body=PROPFIND_BODY,
        headers={"Depth": "1", **XML_HEADERS},
    )
    assert listing.status == 207
    assert url.removeprefix(server.url.rstrip("/")) in listing.body.decode()


def test_put_then_get_event(fresh_calendars: FreshCalendars) -> None:
    server = fresh_calendars.server
    cal = fresh_calendars.new("putget")
    event_url = f"{cal}busy-1.ics"
    body = EVENT.format(uid="busy-1@sanitizer.test")

    put = server.request("PUT", event_url, body=body, headers={**ICS_HEADERS, "If-None-Match": "*"})
    assert put.status == 201
    etag = put.header("etag")
    assert etag

    get = server.request("GET", event_url)
    assert get.status == 200
    assert (get.header("content-type") or "").startswith("text/calendar")
    # Both servers re-serialise (property order changes), so compare content lines.
    assert sorted(get.body.decode().splitlines()) == sorted(body.splitlines())
    assert get.header("etag") == etag

    again = server.request(
        "PUT", event_url, body=body, headers={**ICS_HEADERS, "If-None-Match": "*"}
    )
    assert again.status == 412


def test_calendars_are_isolated(fresh_calendars: FreshCalendars) -> None:
    server = fresh_calendars.server
    first, second = fresh_calendars.new("iso"), fresh_calendars.new("iso")
    assert first != second
    body = EVENT.format(uid="iso@sanitizer.test")
    assert server.request("PUT", f"{first}e.ics", body=body, headers=ICS_HEADERS).status == 201
    assert server.request("GET", f"{second}e.ics").status == 404


@pytest.mark.servers("enforces-auth")
def test_wrong_password_is_rejected(caldav_server: CalDAVServer) -> None:
    resp = caldav_server.request(
        "PROPFIND",
        caldav_server.principal_url,
        headers={"Depth": "0"},
        auth=(caldav_server.username, caldav_server.password + "x"),
    )
    assert resp.status == 401
    assert (resp.header("www-authenticate") or "").lower().startswith("basic")


def _tls_only(server: CalDAVServer) -> tuple[str, int]:
    assert server.ca_file is not None, "mark the test @pytest.mark.servers('tls')"
    host, port = server.url.removeprefix("https://").rstrip("/").split(":")
    return host, int(port)


@pytest.mark.servers("tls")
def test_tls_certificate_verifies_against_ca_file(caldav_server: CalDAVServer) -> None:
    host, port = _tls_only(caldav_server)
    assert caldav_server.ca_file is not None
    ctx = ssl.create_default_context(cafile=caldav_server.ca_file)
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}


@pytest.mark.servers("tls")
def test_tls_certificate_fails_without_ca_file(caldav_server: CalDAVServer) -> None:
    _tls_only(caldav_server)
    with pytest.raises(ssl.SSLCertVerificationError):
        dav_request(
            "PROPFIND",
            caldav_server.principal_url,
            auth=caldav_server.auth,
            headers={"Depth": "0"},
            ssl_context=ssl.create_default_context(),
        )


@pytest.mark.servers("tls")
def test_tls_server_refuses_plain_http(caldav_server: CalDAVServer) -> None:
    _tls_only(caldav_server)
    plain = caldav_server.principal_url.replace("https://", "http://", 1)
    with pytest.raises((OSError, http.client.HTTPException)):
        dav_request("PROPFIND", plain, auth=caldav_server.auth, headers={"Depth": "0"})


# --- EmbeddedRadicale itself -------------------------------------------------


def test_embedded_radicale_lifecycle_removes_temp_store() -> None:
    server = EmbeddedRadicale()
    server.start()
    try:
        store = server.store_dir
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert server.principal_url == f"{server.url}advocate/"
        htpasswd = store / "htpasswd"
        assert stat.S_IMODE(htpasswd.stat().st_mode) == 0o600
        assert htpasswd.read_text() == f"advocate:{server.password}\n"
        assert len(server.password) >= 16
        url = server.create_calendar("demo", "Demo")
        assert url == f"{server.principal_url}demo/"
        assert (store / "collections" / "collection-root" / "advocate" / "demo").is_dir()
    finally:
        server.stop()
    assert not store.exists()
    assert not server.running
    server.stop()  # idempotent


def test_embedded_radicale_keeps_given_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with EmbeddedRadicale(username="alice", password="s3cret", store_dir=store) as server:
        assert server.store_dir == store
        server.create_calendar("kept", "Kept")
        resp = dav_request(
            "PROPFIND", server.principal_url, auth=("alice", "wrong"), headers={"Depth": "0"}
        )
        assert resp.status == 401
    assert (store / "collections" / "collection-root" / "alice" / "kept").is_dir()
    assert (store / "radicale.log").exists()

    # A restart on the same store sees the earlier calendar.
    with EmbeddedRadicale(username="alice", password="other", store_dir=store) as again:
        resp = dav_request(
            "PROPFIND",
            f"{again.principal_url}kept/",
            auth=("alice", "other"),
            headers={"Depth": "0"},
        )
        assert resp.status == 207


def test_embedded_radicale_create_calendar_rejects_duplicates_and_bad_slugs() -> None:
    with EmbeddedRadicale() as server:
        server.create_calendar("once", "Once")
        with pytest.raises(embedded_server.CalendarCreationError, match="409"):
            server.create_calendar("once", "Twice")
        with pytest.raises(ValueError, match="slug"):
            server.create_calendar("../escape", "Nope")


def test_several_embedded_radicale_start_at_once() -> None:
    servers = [EmbeddedRadicale() for _ in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            for future in [pool.submit(s.start) for s in servers]:
                future.result(timeout=60)  # re-raises a start failure
        assert len({s.port for s in servers}) == len(servers)
        for i, server in enumerate(servers):
            url = server.create_calendar(f"cal{i}", f"Calendar {i}")
            # Each server only knows its own user and password.
            other = servers[(i + 1) % len(servers)]
            resp = dav_request("PROPFIND", url, auth=("advocate", other.password))
            assert resp.status == 401
    finally:
        for server in servers:
            server.stop()


def test_embedded_radicale_retries_when_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real = embedded_server.find_free_port
    ports = iter([taken])
    monkeypatch.setattr(embedded_server, "find_free_port", lambda: next(ports, None) or real())
    try:
        with EmbeddedRadicale() as server:
            assert server.port != taken
    finally:
        blocker.close()


def test_embedded_radicale_start_failure_is_one_line_with_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing_command(self: EmbeddedRadicale, port: int, htpasswd: Path) -> list[str]:
        script = "import sys; print('first line'); print('radicale exploded'); sys.exit(3)"
        return [sys.executable, "-c", script]

    monkeypatch.setattr(EmbeddedRadicale, "_command", failing_command)
    server = EmbeddedRadicale()
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "\n" not in message
    assert "status 3" in message
    assert "radicale exploded" in message
    assert not server.running


def test_xandikos_tls_stop_removes_work_dir() -> None:
    server = XandikosServer(tls=True)
    server.start()
    work = server.work_dir
    assert server.ca_file is not None
    assert Path(server.ca_file).is_relative_to(work)
    server.stop()
    assert not work.exists()


class _AnswersEverything(http.server.BaseHTTPRequestHandler):
    """Another program on the port: a 207 to anything, as a server with other users might."""

    def do_PROPFIND(self) -> None:
        self.send_response(207)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_start_never_takes_another_programs_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The port is picked, released, then bound by the child: if another program holds it by
    then, its 207 must not pass for our server's; the start moves to another port."""
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    taken = impostor.server_address[1]
    real = servers_module.find_free_port
    ports = iter([taken])
    monkeypatch.setattr(servers_module, "find_free_port", lambda: next(ports, None) or real())
    server = XandikosServer(tls=False)
    try:
        server.start()
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        assert port != taken and server.process is not None
        assert embedded_server.listener_pid_matches(server.process.pid, port)
    finally:
        server.stop()
        impostor.shutdown()
