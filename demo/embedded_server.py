"""Run a private Radicale CalDAV server on 127.0.0.1 for the demo and the tests.

The demo needs a real calendar server without asking the user to install or
configure one, and the tests need one that behaves like production servers do.
Radicale is started as a child process on a free loopback port with its own
throw-away store and password, so several instances can run side by side and
nothing outside the store directory is read or written.

Only the standard library is used to talk to the server (readiness checks and
calendar creation), so this module adds no dependency beyond Radicale itself.
``http.client`` is used rather than ``urllib.request`` because it never
consults ``*_proxy`` environment variables: loopback traffic must stay local.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

__all__ = [
    "CalendarCreationError",
    "DavResponse",
    "EmbeddedRadicale",
    "ServerStartError",
    "dav_request",
    "find_free_port",
    "log_tail",
    "mkcalendar",
    "stop_process",
    "wait_for_server",
]

LOOPBACK = "127.0.0.1"
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.1
_STOP_GRACE_SECONDS = 5.0

MKCALENDAR_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set>
    <D:prop>
      <D:displayname>{displayname}</D:displayname>
      <C:supported-calendar-component-set>
        <C:comp name="VEVENT"/>
      </C:supported-calendar-component-set>
    </D:prop>
  </D:set>
</C:mkcalendar>
"""


class ServerStartError(RuntimeError):
    """The server did not become ready; the message carries the log's last lines."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        """Keep whether the failure was a port clash so callers can retry elsewhere."""
        super().__init__(message)
        self.port_in_use = port_in_use


class CalendarCreationError(RuntimeError):
    """MKCALENDAR was refused, so the caller must not sync into that URL."""


@dataclass(frozen=True)
class DavResponse:
    """A fully read HTTP response, so callers need not manage connections."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """Look a header up case-insensitively, as HTTP requires."""
        return self.headers.get(name.lower())


def find_free_port() -> int:
    """Ask the kernel for an unused loopback port, so instances never collide by design.

    The port is released before the server binds it, so a clash is still possible;
    launchers detect it from the server log and retry with another port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 5) -> str:
    """Return the last lines of a log joined on one line, for one-line error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(log is empty)"


def _basic_auth(username: str, password: str) -> str:
    """Build a Basic credential; CalDAV servers here accept nothing else."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def dav_request(
    method: str,
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> DavResponse:
    """Send one WebDAV request to a local server and read the whole answer.

    Restricted to loopback hosts because it exists to drive embedded servers;
    a typo must never turn it into a request to the outside world.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if host not in _LOCAL_HOSTS or parts.scheme not in {"http", "https"}:
        raise ValueError(f"refusing non-loopback URL {url!r}")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    all_headers = dict(headers or {})
    if auth is not None:
        all_headers["Authorization"] = _basic_auth(*auth)
    payload = body.encode("utf-8") if isinstance(body, str) else body
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
        return DavResponse(
            status=resp.status,
            headers={k.lower(): v for k, v in resp.getheaders()},
            body=data,
        )
    finally:
        conn.close()


def mkcalendar(
    url: str,
    displayname: str,
    *,
    auth: tuple[str, str] | None,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """Create an event calendar at ``url`` and return it.

    Each run gets a fresh calendar so runs and tests never see each other's events.
    """
    body = MKCALENDAR_TEMPLATE.format(displayname=escape(displayname))
    resp = dav_request(
        "MKCALENDAR",
        url,
        auth=auth,
        body=body,
        headers={"Content-Type": "application/xml; charset=utf-8"},
        ssl_context=ssl_context,
    )
    if resp.status != 201:
        snippet = resp.body[:200].decode("utf-8", errors="replace").replace("\n", " ")
        raise CalendarCreationError(f"MKCALENDAR {url} answered {resp.status}: {snippet}")
    return url


def listener_pid_matches(pid: int, port: int) -> bool | None:
    """Whether the process `pid` holds the socket listening on loopback `port` (Linux /proc);
    None where that cannot be told. A port is picked, released, then bound by the child: in
    between, another program may take it, and its answers must not pass for our server's."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[1].rsplit(":", 1)[1] == f"{port:04X}" and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    links = set()
    for fd in fds:
        with contextlib.suppress(OSError):  # an fd may close while we look
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return bool(inodes) and any(f"socket:[{inode}]" in links for inode in inodes)


def wait_for_server(
    proc: subprocess.Popen[bytes],
    probe: Callable[[], int | None],
    log_path: Path,
    *,
    what: str,
    timeout: float = 30.0,
    port: int | None = None,
) -> None:
    """Poll ``probe`` until it reports 207, failing fast if the process dies.

    A 207 to an authenticated PROPFIND proves the server listens, parses DAV and
    accepts our credentials, which is what every caller needs next.
    ``probe`` returns the HTTP status, or None when nothing answered yet. With ``port``,
    the answer counts only if ``proc`` itself listens there; if another program does,
    the start fails as "port in use" so that the caller tries another port.
    """
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        code = proc.poll()
        if code is not None:
            tail = log_tail(log_path)
            raise ServerStartError(
                f"{what} exited with status {code} before it was ready: {tail}",
                port_in_use="address already in use" in tail.lower(),
            )
        try:
            status = probe()
        except (OSError, http.client.HTTPException) as exc:
            status, last = None, f"{type(exc).__name__}: {exc}"
        if status == 207:
            owner = None if port is None else listener_pid_matches(proc.pid, port)
            if owner is not False:
                return
            raise ServerStartError(f"{what}: another program answers on that port",
                                   port_in_use=True)
        if status is not None:
            last = f"HTTP {status}"
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{what} not ready after {timeout:.0f} s (last probe: {last}): {log_tail(log_path)}"
            )
        time.sleep(_POLL_INTERVAL)


def stop_process(proc: subprocess.Popen[bytes], grace: float = _STOP_GRACE_SECONDS) -> None:
    """Stop politely first so the server can flush its store, then insist."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _check_segment(kind: str, value: str) -> None:
    """Reject names that would change the URL path or break the htpasswd line."""
    if not _SAFE_SEGMENT.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must match {_SAFE_SEGMENT.pattern}")


class EmbeddedRadicale:
    """A Radicale server on a free 127.0.0.1 port with one Basic-auth user.

    Use it as a context manager. A store directory passed in is kept (so a demo
    can be resumed); otherwise a temporary one is created and removed on stop.
    """

    def __init__(
        self,
        username: str = "advocate",
        password: str | None = None,
        store_dir: Path | None = None,
    ) -> None:
        """Remember settings only; nothing starts until ``start()``."""
        _check_segment("username", username)
        if password is not None and ("\n" in password or "\r" in password):
            raise ValueError("password must not contain line breaks")
        self._username = username
        self._password = password if password is not None else secrets.token_urlsafe(12)
        self._given_store = store_dir
        self._store_dir: Path | None = None
        self._owns_store = False
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def username(self) -> str:
        """The only user the server accepts."""
        return self._username

    @property
    def password(self) -> str:
        """That user's password (random unless one was given)."""
        return self._password

    @property
    def port(self) -> int:
        """The loopback port the running server listens on."""
        if self._port is None:
            raise RuntimeError("EmbeddedRadicale is not running")
        return self._port

    @property
    def url(self) -> str:
        """Server root URL, e.g. ``http://127.0.0.1:PORT/``."""
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def principal_url(self) -> str:
        """The user's principal, which in Radicale is also the calendar home."""
        return f"{self.url}{self._username}/"

    @property
    def store_dir(self) -> Path:
        """Directory holding collections, htpasswd and the server log."""
        if self._store_dir is None:
            raise RuntimeError("EmbeddedRadicale has no store before start()")
        return self._store_dir

    @property
    def log_path(self) -> Path:
        """Where the server's output goes, so it never reaches the terminal."""
        return self.store_dir / "radicale.log"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch Radicale and return once it answers an authenticated PROPFIND."""
        if self._proc is not None:
            raise RuntimeError("EmbeddedRadicale is already started")
        if self._given_store is not None:
            self._given_store.mkdir(parents=True, exist_ok=True)
            self._store_dir = self._given_store
            self._owns_store = False
        else:
            self._store_dir = Path(tempfile.mkdtemp(prefix="embedded-radicale-"))
            self._owns_store = True
        try:
            htpasswd = self._write_htpasswd()
            for attempt in range(_START_ATTEMPTS):
                try:
                    self._launch(htpasswd)
                    return
                except ServerStartError as exc:
                    self._reap()
                    if not exc.port_in_use or attempt == _START_ATTEMPTS - 1:
                        raise
        except BaseException:
            self.stop()
            raise

    def _write_htpasswd(self) -> Path:
        """Write ``user:password`` readable by us only; Radicale reads it in plain mode."""
        path = self.store_dir / "htpasswd"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{self._username}:{self._password}\n")
        path.chmod(0o600)
        return path

    def _command(self, port: int, htpasswd: Path) -> list[str]:
        """Build the command line; ``--config ""`` keeps user/system config out."""
        return [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"{LOOPBACK}:{port}",
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(htpasswd),
            "--auth-htpasswd-encryption",
            "plain",
            "--auth-delay",
            "0",
            "--rights-type",
            "owner_only",
            "--storage-filesystem-folder",
            str(self.store_dir / "collections"),
            "--logging-level",
            "warning",
        ]

    def _launch(self, htpasswd: Path) -> None:
        """Start one attempt on a fresh port and wait for readiness."""
        port = find_free_port()
        env = dict(os.environ)
        env.pop("RADICALE_CONFIG", None)
        with self.log_path.open("wb") as log:
            # A new session keeps a terminal Ctrl-C from killing the server
            # behind the caller's back; the caller stops it in order.
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
                self._command(port, htpasswd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.store_dir,
                start_new_session=True,
            )
        self._port = port
        wait_for_server(self._proc, self._probe, self.log_path, what=f"Radicale on port {port}",
                        port=port)

    def _probe(self) -> int | None:
        """Status of an authenticated Depth-0 PROPFIND on the principal."""
        resp = dav_request(
            "PROPFIND",
            self.principal_url,
            auth=(self._username, self._password),
            headers={"Depth": "0"},
            timeout=2.0,
        )
        return resp.status

    def create_calendar(self, slug: str, displayname: str) -> str:
        """Create ``principal_url + slug + "/"`` as an event calendar and return its URL."""
        _check_segment("calendar slug", slug)
        return mkcalendar(
            f"{self.principal_url}{slug}/",
            displayname,
            auth=(self._username, self._password),
        )

    def _reap(self) -> None:
        """Stop the child, if any, and forget its port."""
        if self._proc is not None:
            stop_process(self._proc)
        self._proc = None
        self._port = None

    def stop(self) -> None:
        """Stop the server and remove the store if this instance created it; idempotent."""
        self._reap()
        if self._owns_store and self._store_dir is not None:
            shutil.rmtree(self._store_dir, ignore_errors=True)
            self._store_dir = None
            self._owns_store = False

    def __enter__(self) -> Self:
        """Start on entry so ``with EmbeddedRadicale() as server:`` is ready to use."""
        self.start()
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        """Always stop, even when the body raised."""
        self.stop()
