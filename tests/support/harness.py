"""Run the real CLI against real servers: config files, credentials, raw DAV helpers.

Used as a pytest plugin (fixture `make_setup`) and imported by tests for the helpers.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from xml.etree import ElementTree

import pytest

from sanitizer.cli.main import main
from tests.support.servers import CalDAVServer

REPO = Path(__file__).resolve().parents[2]
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
LIST_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
    '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
)


@dataclass
class Result:
    """What a CLI run returned and printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for leak searches."""
        return self.stdout + self.stderr


@dataclass
class Setup:
    """A config file, a credentials directory and a state directory for one test."""

    root: Path
    config_path: Path
    state_dir: Path
    credentials: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """Variables the program reads: where its config and passwords are."""
        return {"CALENDAR_SANITIZER_CONFIG": str(self.config_path),
                "CREDENTIALS_DIRECTORY": str(self.credentials), **self.env}

    def run(self, *args: str) -> Result:
        """The CLI in this process (fast); stdout and stderr captured."""
        out, err = io.StringIO(), io.StringIO()
        saved = {k: os.environ.get(k) for k in self.environment()}
        os.environ.update(self.environment())
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return Result(code, out.getvalue(), err.getvalue())

    def run_process(self, *args: str, timeout: float = 120, stdin: str | None = None) -> Result:
        """The CLI as a separate process, as an admin or systemd runs it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(self.environment())
        proc = subprocess.run([sys.executable, "-m", "sanitizer", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, input=stdin, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def state_bytes(self) -> bytes:
        """Every byte in the state directory, for leak searches."""
        return b"".join(p.read_bytes() for p in sorted(self.state_dir.rglob("*")) if p.is_file())


def write_setup(root: Path, server: CalDAVServer, pairs: list[tuple[str, str, str]], *,
                url: str | None = None, pair_extra: str = "", rules: str = "",
                service_extra: str = "", timezone: str = "UTC",
                create_targets: bool = True) -> Setup:
    """Write a config with one account on `server` (or `url`, e.g. a proxy in front of it).

    Each pair's target is made first (MKCALENDAR, as `create-target` does), unless
    `create_targets` is False: no cycle creates a calendar."""
    root.mkdir(parents=True, exist_ok=True)
    state = root / "state"
    credentials = root / "credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    (credentials / "main").write_text(server.password, encoding="utf-8")
    ca = f'ca_file = "{server.ca_file}"\n' if server.ca_file else ""
    account = (f'url = "{url or server.url}"\nusername = "{server.username}"\n{ca}'
               if not hasattr(server, "account_toml") else server.account_toml(url))
    text = (f'[service]\ntimezone = "{timezone}"\nstate_dir = "{state}"\n{service_extra}\n'
            f'[accounts.main]\n{account}')
    for name, source, target in pairs:
        text += (f'\n[[pairs]]\nname = "{name}"\naccount = "main"\nsource = "{source}"\n'
                 f'target = "{target}"\n{pair_extra}\n{rules}\n')
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    now = time.time()  # the tests' clock, moved in `make test-shifted`, as the product reads it
    os.utime(path, (now, now))  # (a new pair is stale from its config's change, by mtime)
    for _, _, target in pairs if create_targets else ():
        make_calendar(server, urljoin(url or server.url, target))
    return Setup(root, path, state, credentials)


def make_calendar(server: CalDAVServer, url: str) -> None:
    """MKCALENDAR at `url` (a calendar there already answers 405; a server that cannot be
    reached, as some tests want it, is left alone)."""
    with contextlib.suppress(OSError):
        server.request("MKCALENDAR", url)


@pytest.fixture
def make_setup(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    """Factory: make_setup(server, pairs, **options) -> Setup in a fresh directory."""
    counter = iter(range(1000))

    def factory(server: CalDAVServer, pairs: list[tuple[str, str, str]], **options: Any) -> Setup:
        return write_setup(tmp_path / f"setup{next(counter)}", server, pairs, **options)

    yield factory


# Raw DAV access, independent of the program under test.

def put(server: CalDAVServer, url: str, ics: str | bytes, *, etag: str | None = None) -> str:
    """PUT an object; returns its ETag (or empty)."""
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    if etag:
        headers["If-Match"] = etag
    response = server.request("PUT", url, body=ics, headers=headers)
    assert response.status in (201, 204), f"PUT {url}: {response.status}"
    return response.header("etag") or ""


def delete(server: CalDAVServer, url: str) -> None:
    """DELETE an object."""
    response = server.request("DELETE", url)
    assert response.status in (200, 204), f"DELETE {url}: {response.status}"


def list_objects(server: CalDAVServer, calendar_url: str) -> dict[str, tuple[str, bytes]]:
    """href -> (ETag, data) for every object in a calendar, by one REPORT."""
    response = server.request("REPORT", calendar_url, body=LIST_BODY,
                              headers={"Depth": "1", "Content-Type": "application/xml"})
    assert response.status == 207, f"REPORT {calendar_url}: {response.status}"
    tree = ElementTree.fromstring(response.body)
    found = {}
    for node in tree.iter(DAV + "response"):
        href = node.findtext(DAV + "href") or ""
        data = node.findtext(f".//{CALDAV}calendar-data")
        if data:  # XML turns CRLF into LF; restore the line ends the server stored
            raw = data.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
            found[href] = (node.findtext(f".//{DAV}getetag") or "", raw)
    return found


def etags(server: CalDAVServer, calendar_url: str) -> Mapping[str, str]:
    """href -> ETag, to prove a calendar was not written."""
    return {href: etag for href, (etag, _) in list_objects(server, calendar_url).items()}


def vevent(uid: str, start: str, end: str, summary: str = "Secret name", extra: str = "") -> str:
    """A small work-calendar object; times like 20300304T100000Z or VALUE=DATE dates."""
    def prop(name: str, value: str) -> str:
        return f"{name};VALUE=DATE:{value}" if len(value) == 8 else f"{name}:{value}"

    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n{prop('DTSTART', start)}\r\n"
            f"{prop('DTEND', end)}\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


# A daily series with a moved and a cancelled instance, in a named zone.
SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20300101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20300304T100000\r\nDTEND;TZID=Europe/Berlin:20300304T110000\r\n"
    "RRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Group with Jane Doe\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20300101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20300305T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20300305T150000\r\nDTEND;TZID=Europe/Berlin:20300305T160000\r\n"
    "SUMMARY:Moved group with Jane Doe\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:series-1\r\nDTSTAMP:20300101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20300306T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20300306T100000\r\nDTEND;TZID=Europe/Berlin:20300306T110000\r\n"
    "STATUS:CANCELLED\r\nSUMMARY:Cancelled\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
