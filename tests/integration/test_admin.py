"""Admin commands against a real Radicale: check, status, wipe, resume, and --help everywhere."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from demo.embedded_server import find_free_port
from sanitizer.cli.main import COMMANDS, main
from sanitizer.service import status
from tests.support.harness import REPO, list_objects, put, vevent
from tests.support.servers import XandikosServer

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work = calendars.new("work")
    phone = work.replace("/work", "/phone")
    setup = make_setup(server, [("advocate", work, phone)])
    setup.config_path.chmod(0o600)
    return server, work, phone, setup


def row(output: str, item: str) -> str:
    """The table row of one item."""
    return next(line for line in output.splitlines() if line.startswith(item + " "))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "usage: calendar-sanitizer" in capsys.readouterr().out


def test_admin_commands_are_registered() -> None:
    assert {"run", "check", "status", "wipe", "resume"} <= set(COMMANDS)


# check ---------------------------------------------------------------------------------------

def test_check_good_setup(pair) -> None:
    _, _, _, setup = pair
    result = setup.run("check")
    assert result.code == 0, result.output
    assert re.search(r"^account main\s+ok\s+password accepted", result.stdout, re.M)
    assert "target is a writable calendar" in row(result.stdout, "pair advocate")
    assert row(result.stdout, "permissions").split()[1] == "ok"
    assert result.stdout.rstrip().splitlines()[-1] == "all good"


def test_a_missing_target_is_made_only_by_create_target(calendars, make_setup) -> None:
    server = calendars.server
    work = calendars.new("work")
    phone = work.replace("/work", "/phone")
    setup = make_setup(server, [("advocate", work, phone)], create_targets=False)
    setup.config_path.chmod(0o600)
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    checked = setup.run("check")
    assert checked.code == 78, checked.output  # before: "warning ... the first cycle creates it"
    target_row = row(checked.stdout, "pair advocate")
    assert "target-missing" in target_row and "no cycle creates it" in target_row
    assert "calendar-sanitizer-admin create-target advocate" in target_row
    listed = target_row.split(f"Calendars in {phone.rsplit('/', 2)[0]}/: ", 1)[1]
    names = listed.split(". ")[0].split(", ")  # what does exist: the first ten, by name
    assert all(name.endswith("/") for name in names) and len(names) <= 10
    assert work.rsplit("/", 2)[1] + "/" in names or len(names) == 10  # a shared test server
    synced = setup.run("sync", "--now", NOW)
    assert synced.code == 78, synced.output  # before: 0, and MKCALENDAR made it
    assert "FAILED no calendar at " + phone in synced.stdout
    beside = synced.stdout.split(f"calendars in {phone.rsplit('/', 2)[0]}/: ", 1)[1]
    beside_names = beside.split(". ")[0].split(", ")  # the first ten, as `check` showed them
    assert work.rsplit("/", 2)[1] + "/" in beside_names or len(beside_names) == 10
    assert "create-target advocate" in synced.stdout and "Jane" not in synced.output
    assert server.request("PROPFIND", phone, headers={"Depth": "0"}).status == 404  # not made
    made = setup.run("create-target", "advocate")
    assert made.code == 0 and f"pair advocate: created {phone}" in made.stdout, made.output
    assert "exists already" in setup.run("create-target", "advocate").stdout
    assert setup.run("check").code == 0
    assert "created=1" in setup.run("sync", "--now", NOW).stdout


def test_check_missing_password(pair) -> None:
    _, _, _, setup = pair
    (setup.credentials / "main").unlink()
    result = setup.run("check")
    assert result.code == 78, result.output
    line = row(result.stdout, "account main")
    assert "no-password" in line
    assert "systemd-creds encrypt --name=main" in line and "LoadCredentialEncrypted=main:" in line
    assert "not-checked" in row(result.stdout, "pair advocate")


def test_check_wrong_password_is_77(pair) -> None:
    _, _, _, setup = pair
    (setup.credentials / "main").write_text("not-the-password")
    result = setup.run("check")
    assert result.code == 77, result.output
    assert "auth-rejected" in row(result.stdout, "account main")
    assert "not-the-password" not in result.output


def test_check_unreachable_server_is_69(calendars, make_setup) -> None:
    port = find_free_port()  # nothing listens there
    closed = f"http://127.0.0.1:{port}/"
    setup = make_setup(calendars.server, [("advocate", closed + "advocate/casework/",
                                           closed + "advocate/phone/")], url=closed)
    setup.config_path.chmod(0o600)
    result = setup.run("check")
    assert result.code == 69, result.output
    line = row(result.stdout, "account main")
    assert "unreachable" in line and "accounts.main.url" in line


def test_check_world_readable_config_is_78(pair) -> None:
    _, _, _, setup = pair
    setup.config_path.chmod(0o644)
    result = setup.run("check")
    assert result.code == 78, result.output
    line = row(result.stdout, "permissions")
    assert "too-open" in line and f"chmod 600 {setup.config_path}" in line
    assert "ok" in row(result.stdout, "account main")  # the other checks still ran


def test_check_open_state_dir_and_bad_target(pair) -> None:
    server, work, _, setup = pair
    setup.state_dir.mkdir(mode=0o755)
    setup.state_dir.chmod(0o755)
    text = setup.config_path.read_text()
    setup.config_path.write_text(text.replace(
        work.replace("/work", "/phone"), server.url + "advocate/nowhere/phone/"))
    result = setup.run("check")
    assert result.code == 78, result.output
    assert f"chmod 700 {setup.state_dir}" in result.stdout
    assert "target-missing" in row(result.stdout, "pair advocate")
    assert "pairs[0].target" in row(result.stdout, "pair advocate")


def test_check_source_missing(pair) -> None:
    _, work, _, setup = pair
    setup.config_path.write_text(setup.config_path.read_text().replace(
        f'source = "{work}"', f'source = "{work.rstrip("/")}-gone/"'))
    result = setup.run("check")
    assert result.code == 78, result.output
    assert "source-missing" in row(result.stdout, "pair advocate")


def test_check_invalid_config(pair) -> None:
    _, _, _, setup = pair
    setup.config_path.write_text(setup.config_path.read_text() + "\n[service2]\n")
    result = setup.run("check")
    assert result.code == 78
    assert "service2: unknown key" in row(result.stdout, "config")


# status --------------------------------------------------------------------------------------

def test_status_before_and_after_a_cycle(pair) -> None:
    server, work, _, setup = pair
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    before = setup.run("status")
    assert before.code == 0
    assert "daemon: not running" in before.stdout
    assert "pair advocate: last=never next=- paused=no" in before.stdout
    assert setup.run("sync", "--now", NOW).code == 0
    after = setup.run("status")
    assert after.code == 0, after.output
    line = row(after.stdout, "pair advocate:")
    ran = datetime.strptime(line.split("last=")[1][:19], "%Y-%m-%d %H:%M:%S")
    assert abs(ran.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5)  # the clock's
    assert "result=ok as_of=2030-03-04 09:00:00 UTC created=1 updated=0 deleted=0" in line
    assert "paused=no" in line
    assert "Jane" not in after.output


# wipe and resume -----------------------------------------------------------------------------

def test_wipe_deletes_owned_keeps_foreign_and_pauses_until_resume(pair) -> None:
    server, work, phone, setup = pair
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    put(server, work + "b.ics", vevent("b", "20300305T130000Z", "20300305T140000Z", "John Roe"))
    assert setup.run("sync", "--now", NOW).code == 0
    put(server, phone + "own.ics", vevent("advocate-own", "20300304T180000Z",
                                          "20300304T190000Z", "Pick up kids"))
    assert len(list_objects(server, phone)) == 3

    wiped = setup.run("wipe", "advocate", "--yes")
    assert wiped.code == 0, wiped.output
    assert "deleted=2 foreign=1 (left alone)" in wiped.stdout
    remaining = list_objects(server, phone)
    assert len(remaining) == 1
    assert b"advocate-own" in next(iter(remaining.values()))[1]

    skipped = setup.run("sync", "--now", NOW)  # the pair is skipped while paused
    assert skipped.code == 0 and "advocate" not in skipped.stdout
    assert len(list_objects(server, phone)) == 1
    shown = setup.run("status")
    assert "next=paused" in shown.stdout and "paused=yes(since " in shown.stdout
    assert "wipe)" in shown.stdout

    resumed = setup.run("resume", "advocate")
    assert resumed.code == 0 and "resumed" in resumed.stdout
    assert setup.run("resume", "advocate").stdout.strip() == "pair advocate: was not paused"
    synced = setup.run("sync", "--now", NOW)
    assert synced.code == 0 and "created=2" in synced.stdout, synced.output
    assert len(list_objects(server, phone)) == 3
    assert "Jane" not in wiped.output + synced.output


def test_wipe_refuses_without_a_terminal_or_yes(pair) -> None:
    server, work, phone, setup = pair
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    assert setup.run("sync", "--now", NOW).code == 0
    result = setup.run_process("wipe", "advocate", stdin="advocate\n")
    assert result.code == 64
    assert "add --yes" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert len(list_objects(server, phone)) == 1
    assert not (setup.state_dir / "paused" / "advocate").exists()


def test_wipe_of_a_missing_target_and_unknown_pair(pair) -> None:
    _, _, _, setup = pair
    result = setup.run("wipe", "advocate", "--yes")
    assert result.code == 0 and "deleted=0" in result.stdout
    unknown = setup.run("wipe", "nobody", "--yes")
    assert unknown.code == 64 and "no pair named 'nobody'" in unknown.stderr
    assert setup.run("resume", "nobody").code == 64


def test_wipe_and_resume_refuse_a_state_dir_of_another_user(pair) -> None:
    _, _, _, setup = pair
    setup.state_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(setup.state_dir, 4242, -1)
    if setup.state_dir.stat().st_uid == os.geteuid():
        pytest.skip("needs root to give the state directory to another user")
    result = setup.run("wipe", "advocate", "--yes")
    assert result.code == 77 and "run this as that user" in result.stderr
    assert setup.run("resume", "advocate").code == 77


def test_an_unreadable_pause_flag_counts_as_paused(tmp_path) -> None:
    (tmp_path / "paused").write_text("not a directory")
    assert status.is_paused(tmp_path, "advocate")
    assert not status.is_paused(tmp_path / "elsewhere", "advocate")


def test_check_verifies_tls(make_setup) -> None:
    """Against HTTPS with a private CA: verified with ca_file, refused (69) without it."""
    with XandikosServer(tls=True) as server:
        work = server.create_calendar("work", "work")
        setup = make_setup(server, [("advocate", work, work.replace("/work", "/phone"))])
        setup.config_path.chmod(0o600)
        good = setup.run("check")
        assert good.code == 0, good.output
        assert "TLS certificate verified" in row(good.stdout, "account main")
        text = setup.config_path.read_text()
        setup.config_path.write_text("".join(
            line for line in text.splitlines(keepends=True) if not line.startswith("ca_file")))
        bad = setup.run("check")
        assert bad.code == 69, bad.output
        assert "tls-failed" in row(bad.stdout, "account main")
        assert "accounts.main.ca_file" in row(bad.stdout, "account main")


@pytest.mark.parametrize(("answer", "code"), [("advocate", 0), ("yes", 64)])
def test_wipe_asks_on_a_terminal(pair, answer, code) -> None:
    """On a TTY the pair's name must be typed; anything else changes nothing."""
    server, work, phone, setup = pair
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    assert setup.run("sync", "--now", NOW).code == 0
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(setup.environment())
    proc = subprocess.Popen([sys.executable, "-m", "sanitizer", "wipe", "advocate"], cwd=REPO,
                            env=env, stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 20
    while b"Type the pair name" not in seen:
        assert time.monotonic() < deadline, seen
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 1024)
    os.write(master, answer.encode() + b"\n")
    assert proc.wait(30) == code
    os.close(master)
    assert len(list_objects(server, phone)) == (0 if code == 0 else 1)
    assert (setup.state_dir / "paused" / "advocate").exists() == (code == 0)


def test_wipe_without_a_password_still_pauses(pair) -> None:
    """The pause comes first: even a wipe that cannot reach the server stops all writes."""
    _, _, _, setup = pair
    (setup.credentials / "main").unlink()
    result = setup.run("wipe", "advocate", "--yes")
    assert result.code == 78 and "account main" in result.stderr
    assert "pair advocate: paused" in result.stdout
    assert status.is_paused(setup.state_dir, "advocate")
