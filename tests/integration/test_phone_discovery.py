"""Phones find their calendar by discovery, as DAVx5 and iOS do: from the server's root, with the
phone's own login, a real client (the caldav library's principal discovery, and vdirsyncer's
`discover`) finds exactly the phone calendar, in each layout docs/phones.md recommends:

* Radicale: the phone calendar inside the phone login's principal (`maria-phone/phone/`), the
  sanitizer's login allowed to write it, the phone login only to read it;
* Xandikos (one principal per server): a Xandikos of the phone's own, holding only its calendar.

`phone-setup --mobileconfig` gives the server and the principal, and the client finds the
calendar from the profile's principal URL too."""

from __future__ import annotations

import os
import plistlib
import subprocess
from pathlib import Path

import caldav
import pytest

from demo.embedded_server import EmbeddedRadicale, dav_request
from tests.support.harness import put, vevent
from tests.support.servers import RadicaleServer, XandikosServer

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
PHONE_USER = "maria-phone"
VDIRSYNCER = Path(os.__file__).parents[3] / "bin" / "vdirsyncer"
# The layout docs/phones.md recommends for Radicale; the first matching section wins.
RIGHTS = """\
[root]
user: .+
collection:
permissions: R

[phone-reads-its-calendar]
user: .+-phone
collection: {user}/phone
permissions: r

[phone-sees-its-principal]
user: .+-phone
collection: {user}
permissions: R

[phone-has-nothing-else]
user: .+-phone
collection: .+
permissions:

[sanitizer-writes-the-phone-calendars]
user: sanitizer
collection: [^/]+-phone(/phone)?
permissions: RWrw

[principal]
user: .+
collection: {user}
permissions: RW

[own-calendars]
user: .+
collection: {user}/[^/]+
permissions: rw
"""


class PhoneRadicale(EmbeddedRadicale):
    """The product's embedded Radicale with a phone user and the recommended rights file."""

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


def discovered(root: str, password: str, verify: str | bool = True) -> list[str]:
    """The calendars the caldav library finds from `root` with the phone's login."""
    client = caldav.DAVClient(url=root, username=PHONE_USER, password=password,
                              ssl_verify_cert=verify)
    return sorted(str(c.url) for c in client.principal().calendars())


def vdirsyncer_finds(root: str, password: str, home: Path) -> list[str]:
    """The collections `vdirsyncer discover` finds from `root` with the phone's login."""
    home.mkdir()
    (home / "password").write_text(password, encoding="utf-8")
    config = home / "config"
    config.write_text(
        f'[general]\nstatus_path = "{home / "status"}/"\n\n'
        '[pair phone]\na = "remote"\nb = "local"\ncollections = ["from a"]\n\n'
        f'[storage remote]\ntype = "caldav"\nurl = "{root}"\nusername = "{PHONE_USER}"\n'
        f'password.fetch = ["command", "cat", "{home / "password"}"]\nread_only = true\n\n'
        f'[storage local]\ntype = "filesystem"\npath = "{home / "local"}/"\n'
        'fileext = ".ics"\n', encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"),
           "XDG_DATA_HOME": str(home / "xdg-data"), "VDIRSYNCER_CONFIG": str(config)}
    done = subprocess.run([str(VDIRSYNCER), "discover"], env=env, input="y\n" * 8, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(p.name for p in (home / "local").iterdir())


def test_a_phone_finds_exactly_its_calendar_on_radicale(make_setup, tmp_path: Path) -> None:
    phone_password = "phone-" + os.urandom(6).hex()
    server = RadicaleServer()
    server.embedded = PhoneRadicale(phone_password)
    with server:
        work = server.create_calendar("work-maria", "Work")
        target = f"{server.url}{PHONE_USER}/phone/"
        put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z",
                                            "Jane Doe 555-0100"))
        setup = make_setup(server, [("maria", work, target)], create_targets=False,
                           pair_extra=f'phone_user = "{PHONE_USER}"\n')
        assert setup.run("create-target", "maria").code == 0
        assert setup.run("sync", "--now", NOW).code == 0
        assert discovered(server.url, phone_password) == [target]  # and not the work calendar
        profile_path = tmp_path / "maria.mobileconfig"
        made = setup.run("phone-setup", "maria", "--mobileconfig", str(profile_path))
        assert made.code == 0, made.output
        (account,) = plistlib.loads(profile_path.read_bytes())["PayloadContent"]
        assert account["CalDAVPrincipalURL"] == f"{server.url}{PHONE_USER}/"
        assert discovered(account["CalDAVPrincipalURL"], phone_password) == [target]
        if VDIRSYNCER.exists():
            assert vdirsyncer_finds(server.url, phone_password, tmp_path / "vdir") == ["phone"]
        as_phone = (PHONE_USER, phone_password)
        for method, url in (("PUT", target + "new.ics"), ("MKCALENDAR", target + "x/"),
                            ("PROPFIND", work)):
            answer = dav_request(method, url, auth=as_phone,
                                 body=vevent("n", "20300304T130000Z", "20300304T140000Z"),
                                 headers={"Depth": "0", "Content-Type": "text/calendar"})
            assert answer.status == 403, (method, url, answer.status)  # read only


def test_a_phone_finds_exactly_its_calendar_on_a_xandikos_of_its_own(make_setup,
                                                                     tmp_path: Path) -> None:
    with XandikosServer(username=PHONE_USER) as phones, XandikosServer() as work_server:
        work = work_server.create_calendar("work-maria", "Work")
        put(work_server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
        target = f"{phones.calendar_home_url}phone/"
        setup = make_setup(work_server, [("maria", work, target)], create_targets=False)
        text = setup.config_path.read_text()
        text = text.replace('account = "main"\n', 'source_account = "main"\n'
                            'target_account = "phones"\n')
        text += (f'\n[accounts.phones]\nurl = "{phones.url}"\nusername = "{PHONE_USER}"\n')
        setup.config_path.write_text(text)
        (setup.credentials / "phones").write_text(phones.password)
        assert setup.run("create-target", "maria").code == 0
        synced = setup.run("sync", "--now", NOW)
        assert synced.code == 0, synced.output
        assert discovered(phones.url, phones.password) == [target]
        if VDIRSYNCER.exists():
            assert vdirsyncer_finds(phones.url, phones.password, tmp_path / "vdir") == ["phone"]
