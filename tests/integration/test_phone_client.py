"""An independent CalDAV client reads the phone calendar the way a phone does.

vdirsyncer (its own HTTP stack, discovery and parser) pulls the target calendar into a folder, one
way: the remote storage is read_only, so the local copy is reverted to whatever the server holds,
like a phone account marked read-only. The test checks it gets exactly the sanitized entries, each
within the allowlist and without a word of the source, and that entries past retention disappear
from it on its next sync. Everything vdirsyncer reads or writes lives under tmp_path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo.embedded_server import EmbeddedRadicale, dav_request
from tests.support.harness import SERIES, put, vevent
from tests.support.schema import assert_schema
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import RadicaleServer

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
NOW = "2030-03-04T09:00:00+00:00"
RETENTION_RUN = "2030-03-06T12:00:00+00:00"  # 24h retention: what ended by 03-05 12:00Z goes
SECRETS = ("Jane", "Doe", "555-0100", "Elm", "Shelter", "Court")
# (DTSTART line, DTEND line, SUMMARY line) of every entry the phone must show after the first sync
FIRST = {
    ("DTSTART:20300304T130000Z", "DTEND:20300304T140000Z", "SUMMARY:Appointment"),  # a
    ("DTSTART;VALUE=DATE:20300307", "DTEND;VALUE=DATE:20300308", "SUMMARY:Appointment"),  # b
    ("DTSTART:20300304T090000Z", "DTEND:20300304T100000Z", "SUMMARY:Appointment"),  # series
    ("DTSTART:20300305T140000Z", "DTEND:20300305T150000Z", "SUMMARY:Appointment"),  # moved
    ("DTSTART:20300307T090000Z", "DTEND:20300307T100000Z", "SUMMARY:Appointment"),
    ("DTSTART:20300308T090000Z", "DTEND:20300308T100000Z", "SUMMARY:Appointment"),
    ("DTSTART:20300305T080000Z", "DTEND:20300305T090000Z", "SUMMARY:Team meeting"),  # keep-title
    ("DTSTART:20300312T130000Z", "DTEND:20300312T140000Z", "SUMMARY:Appointment"),  # later
}
# ended before 2030-03-05T12:00Z: gone after the retention run
EXPIRED = {e for e in FIRST if e[1] in ("DTEND:20300304T140000Z", "DTEND:20300304T100000Z",
                                        "DTEND:20300305T090000Z")}


class Vdirsyncer:
    """vdirsyncer with a config, status and HOME of its own under `root`."""

    def __init__(self, root: Path, url: str, username: str, password: str,
                 ca_file: str | None) -> None:
        self.root = root
        self.local = root / "phone"
        self.local.mkdir(parents=True)
        secret = root / "password"
        secret.write_text(password, encoding="utf-8")
        secret.chmod(0o600)
        verify = f'verify = "{ca_file}"\n' if ca_file else ""
        self.config = root / "config"
        self.config.write_text(
            f'[general]\nstatus_path = "{root / "status"}/"\n\n'
            '[pair phone]\na = "phone_remote"\nb = "phone_local"\ncollections = null\n'
            'conflict_resolution = "a wins"\n\n'
            f'[storage phone_remote]\ntype = "caldav"\nurl = "{url}"\nusername = "{username}"\n'
            f'password.fetch = ["command", "cat", "{secret}"]\nread_only = true\n{verify}\n'
            f'[storage phone_local]\ntype = "filesystem"\npath = "{self.local}/"\n'
            'fileext = ".ics"\n', encoding="utf-8")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One vdirsyncer command; its output is returned for assertions and failure messages."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": str(self.root), "XDG_CONFIG_HOME": str(self.root / "xdg"),
               "XDG_DATA_HOME": str(self.root / "xdg-data"),
               "XDG_CACHE_HOME": str(self.root / "xdg-cache"),
               "VDIRSYNCER_CONFIG": str(self.config)}
        return subprocess.run([str(VDIRSYNCER), *args], env=env, input="y\n" * 4, text=True,
                              capture_output=True, timeout=120, check=False)

    def pull(self) -> subprocess.CompletedProcess[str]:
        """`vdirsyncer sync`, which must succeed."""
        done = self.run("sync")
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def files(self) -> dict[str, bytes]:
        """name -> bytes of every item vdirsyncer stored."""
        return {p.name: p.read_bytes() for p in sorted(self.local.glob("*.ics"))}


def entries(files: dict[str, bytes]) -> set[tuple[str, str, str]]:
    """(DTSTART, DTEND, SUMMARY) lines of each stored item, after checking it like a phone would."""
    found = set()
    for name, data in files.items():
        # The bytes came out of a REPORT's XML body, and XML parsers turn CRLF into LF
        # (XML 1.0 section 2.11); put the line ends back, check everything else as received.
        crlf = re.sub(rb"\r?\n", b"\r\n", data)
        assert_schema(crlf)
        text = crlf.decode("utf-8")
        for word in SECRETS:
            assert word.lower() not in text.lower(), f"{name} holds source text"
        lines = text.replace("\r\n ", "").split("\r\n")
        assert name == next(line[4:] for line in lines if line.startswith("UID:")) + ".ics"
        pick = [next(line for line in lines if line.startswith(p))
                for p in ("DTSTART", "DTEND", "SUMMARY")]
        found.add((pick[0], pick[1], pick[2]))
        assert "TRIGGER:-PT15M" in lines
    return found


@pytest.mark.skipif(not VDIRSYNCER.exists(), reason="vdirsyncer is not installed in this venv")
def test_a_phone_client_gets_exactly_the_sanitized_entries(
        fresh_calendars: FreshCalendars, make_setup, tmp_path: Path) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")
    rules = '[[pairs.rules]]\nmatch_categories = ["staff"]\naction = "keep-title"\n'
    setup = make_setup(server, [("advocate", source, target)], rules=rules,
                       pair_extra='alarm = "15m"\n')
    put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                          "Jane Doe 555-0100", "LOCATION:12 Elm St\r\n"))
    put(server, source + "b.ics", vevent("b", "20300307", "20300308", "Court: J. Doe",
                                          "DESCRIPTION:Shelter intake\r\n"))
    put(server, source + "s.ics", SERIES)
    put(server, source + "t.ics", vevent("t", "20300305T080000Z", "20300305T090000Z",
                                          "Team meeting", "CATEGORIES:Staff\r\n"))
    put(server, source + "l.ics", vevent("l", "20300312T130000Z", "20300312T140000Z",
                                          "Jane Doe follow-up"))
    first = setup.run("sync", "--now", NOW)
    assert first.code == 0 and "created=8" in first.stdout, first.output

    phone = Vdirsyncer(tmp_path / "vdirsyncer", target, server.username, server.password,
                       server.ca_file)
    discover = phone.run("discover")
    assert discover.returncode == 0, discover.stdout + discover.stderr
    phone.pull()
    assert entries(phone.files()) == FIRST

    retention = setup.run("sync", "--now", RETENTION_RUN)
    assert retention.code == 0 and "deleted=3" in retention.stdout, retention.output
    phone.pull()
    assert entries(phone.files()) == FIRST - EXPIRED

    # An edit on the phone side is never pushed (read_only) and vdirsyncer puts the server's
    # version back (partial_sync = "revert" acts on the sync after the one that saw the edit).
    name, data = next(iter(phone.files().items()))
    (phone.local / name).write_bytes(data.replace(b"SUMMARY:", b"SUMMARY:Edited "))
    phone.pull()
    phone.pull()
    assert entries(phone.files()) == FIRST - EXPIRED
    quiet = setup.run("sync", "--now", RETENTION_RUN)
    assert "created=0 updated=0 deleted=0 unchanged=5" in quiet.stdout, quiet.output


# ---------------------------------------------------------------------------------------------
# The phone's own, read-only login (the set-up docs/servers.md recommends), on Radicale
# ---------------------------------------------------------------------------------------------

PHONE_USER = "maria-phone"
RIGHTS = """\
[principal]
user: .+
collection: {user}
permissions: RW

[own-calendars]
user: .+
collection: {user}/[^/]+
permissions: rw

[phone-reads-its-calendar]
user: maria-phone
collection: sanitizer/phone-maria
permissions: r
"""


class TwoUserRadicale(EmbeddedRadicale):
    """The product's embedded Radicale with a second (phone) user and a rights file."""

    def __init__(self, phone_password: str) -> None:
        super().__init__(username="sanitizer")
        self.phone_password = phone_password

    def _write_htpasswd(self) -> Path:
        path = super()._write_htpasswd()
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{PHONE_USER}:{self.phone_password}\n")
        (self.store_dir / "rights").write_text(RIGHTS, encoding="utf-8")
        return path

    def _command(self, port: int, htpasswd: Path) -> list[str]:
        command = super()._command(port, htpasswd)
        at = command.index("--rights-type")
        command[at + 1] = "from_file"
        return [*command, "--rights-file", str(self.store_dir / "rights")]


@pytest.mark.integration
@pytest.mark.skipif(not VDIRSYNCER.exists(), reason="vdirsyncer is not installed in this venv")
def test_the_phone_reads_with_its_own_read_only_login(make_setup, tmp_path: Path) -> None:
    phone_password = "phone-" + os.urandom(6).hex()
    server = RadicaleServer()
    server.embedded = TwoUserRadicale(phone_password)
    with server:
        source = server.create_calendar("work-maria", "Work")
        target = server.url + "sanitizer/phone-maria/"  # created by the first sync
        put(server, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                              "Jane Doe 555-0100"))
        setup = make_setup(server, [("maria", source, target)])
        assert setup.run("sync", "--now", NOW).code == 0

        phone = Vdirsyncer(tmp_path / "phone", target, PHONE_USER, phone_password, None)
        assert phone.run("discover").returncode == 0
        phone.pull()
        (data,) = phone.files().values()
        assert b"DTSTART:20300304T130000Z" in data and b"Jane" not in data

        as_phone = (PHONE_USER, phone_password)
        href = target + next(iter(phone.files()))
        for method, url, body in (("PUT", href, data), ("DELETE", href, None),
                                  ("PUT", target + "new.ics", data.replace(b"csan-", b"x-")),
                                  ("PROPFIND", source, None), ("GET", source + "a.ics", None)):
            answer = dav_request(method, url, auth=as_phone, body=body,
                                 headers={"Depth": "0", "Content-Type": "text/calendar"})
            assert answer.status == 403, (method, url, answer.status)
        quiet = setup.run("sync", "--full", "--now", NOW)
        assert "created=0 updated=0 deleted=0 unchanged=1" in quiet.stdout, quiet.output
