"""The promises hold through config edits, staff changes and admin mistakes (a real Radicale).

Each test is one way a new admin broke "only what the sanitizer created is ever changed, and
nothing it wrote outlives the retention window": a target that is the source under another name,
a pair removed, a target corrected, two installations, a weak key, file names as arguments, a
loose state directory, a dry run that wrote. The server is reached as 127.0.0.1 and as localhost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sanitizer.core import identity
from sanitizer.core.identity import OWNED_PREFIX
from sanitizer.core.phone_format import read_back
from tests.integration.test_faults import with_key
from tests.support.harness import Setup, delete, list_objects, put, vevent
from tests.support.servers import RadicaleServer

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
KEY, OTHER_KEY = "5" * 64, "6" * 64


def two_host_setup(root: Path, server: RadicaleServer, pairs: list[tuple[str, str, str]],
                   writer: str = "phone") -> Setup:
    """Account `work` at http://127.0.0.1:PORT/, account `phone` at http://localhost:PORT/:
    each pair reads with `work` and writes with `writer`."""
    root.mkdir(parents=True, exist_ok=True)
    credentials = root / "credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    for name in ("work", "phone"):
        (credentials / name).write_text(server.password, encoding="utf-8")
    alias = server.url.replace("127.0.0.1", "localhost")
    text = (f'[service]\ntimezone = "UTC"\nstate_dir = "{root / "state"}"\n\n'
            f'[accounts.work]\nurl = "{server.url}"\nusername = "{server.username}"\n\n'
            f'[accounts.phone]\nurl = "{alias}"\nusername = "{server.username}"\n')
    for name, source, target in pairs:
        text += (f'\n[[pairs]]\nname = "{name}"\nsource_account = "work"\n'
                 f'target_account = "{writer}"\nsource = "{source}"\ntarget = "{target}"\n')
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return Setup(root, path, root / "state", credentials)


def fill(server: RadicaleServer, work: str, count: int, day: str = "20300305") -> None:
    """`count` appointments on DAY, half an hour each."""
    for n in range(count):
        put(server, f"{work}ev{n}.ics", vevent(f"ev{n}-{day}@agency.example",
                                              f"{day}T{10 + n:02d}0000Z",
                                              f"{day}T{10 + n:02d}3000Z"))


def tomorrow() -> str:
    """For `check`, which looks at the pair's window from the real clock."""
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d")


def owned(server: RadicaleServer, calendar: str) -> dict[str, str]:
    """href -> UID of the phone entries in a calendar (of any installation)."""
    found = {}
    for href, (_, data) in list_objects(server, calendar).items():
        uid = read_back(data).uid
        if uid and uid.startswith(OWNED_PREFIX):
            found[href] = uid
    return found


def alias(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


def with_config(setup: Setup, pairs: list[tuple[str, str, str]], server: RadicaleServer,
                writer: str = "phone") -> None:
    """Rewrite the setup's config with other pairs (the admin edits the file)."""
    fresh = two_host_setup(setup.root, server, pairs, writer)
    assert fresh.config_path == setup.config_path


# 1. Never read your own output as input ------------------------------------------------------

def test_target_that_is_the_source_under_another_host_name(calendars, tmp_path) -> None:
    server = calendars.server
    work = calendars.new("work")
    fill(server, work, 3)
    setup = with_key(two_host_setup(tmp_path, server, [("maria", work, alias(work))]), KEY)
    before = dict(list_objects(server, work))

    checked = setup.run("check")
    assert checked.code == 78, checked.output
    assert "target-is-source" in checked.stdout and "all good" not in checked.stdout

    counts = []
    for _ in range(4):
        result = setup.run("sync", "--full", "--now", NOW)
        assert result.code == 1
        assert "is the same calendar as the source of pair maria" in result.stdout, result.output
        counts.append(len(list_objects(server, work)))
    assert counts == [3, 3, 3, 3]  # before the fix: 6, 9, 12, 15
    assert {h: e for h, (e, _) in list_objects(server, work).items()} == {
        h: e for h, (e, _) in before.items()}
    status = json.loads((setup.state_dir / "status.json").read_text(encoding="utf-8"))
    assert status["maria"]["error"] == "target-is-a-source"


def test_percent_encoded_target_is_the_source(calendars, make_setup) -> None:
    server = calendars.server
    work = calendars.new("casework")
    fill(server, work, 3)
    spelled = work.replace("/casework-", "/%63asework-")
    setup = with_key(make_setup(server, [("maria", work, spelled)]), KEY)
    setup.config_path.chmod(0o600)

    checked = setup.run("check")
    assert checked.code == 78, checked.output
    row = next(line for line in checked.stdout.splitlines() if line.startswith("pair maria"))
    assert "target-is-source" in row and "grant write access" not in checked.stdout
    synced = setup.run("sync", "--now", NOW)
    assert synced.code == 1 and len(list_objects(server, work)) == 3, synced.output


def test_a_source_holding_phone_entries_fails_the_pair_and_writes_nothing(
        calendars, make_setup) -> None:
    """The server shows one calendar under two paths no URL rule can know: the UIDs tell."""
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 2)
    day = tomorrow()
    entry = vevent(f"{OWNED_PREFIX}0123abcd-{'7' * 40}", f"{day}T150000Z", f"{day}T160000Z",
                   "Appointment")
    put(server, work + "copied.ics", entry)
    setup = with_key(make_setup(server, [("maria", work, phone)]), KEY)
    setup.config_path.chmod(0o600)
    result = setup.run("sync")  # the real clock: the entry is tomorrow
    assert result.code == 1, result.output
    assert "the source holds 1 phone entries" in result.stdout
    assert "the target is probably the same calendar as the source" in result.stdout
    assert list_objects(server, phone) == {}  # before the fix: 3 entries, one of them our own
    checked = setup.run("check")
    assert checked.code == 78 and "source-holds-phone-entries" in checked.stdout


def test_check_reports_a_target_holding_events_of_the_source(calendars, make_setup) -> None:
    server = calendars.server
    work, copy = calendars.new("work"), calendars.new("copy")
    fill(server, work, 2, tomorrow())
    fill(server, copy, 2, tomorrow())  # the same events: an export of the work calendar
    setup = make_setup(server, [("maria", work, copy)])
    setup.config_path.chmod(0o600)
    checked = setup.run("check")
    assert checked.code == 78, checked.output
    assert "target-holds-source-events" in checked.stdout
    assert "2 object(s) in" in checked.stdout and "Secret" not in checked.output
    assert not setup.state_dir.exists()  # check writes nothing


# 2. The ledger: retired pairs and corrected targets are cleaned ------------------------------

def test_a_removed_pair_is_cleaned_on_the_next_cycle(calendars, tmp_path) -> None:
    server = calendars.server
    maria_work, tom_work = calendars.new("maria-work"), calendars.new("tom-work")
    maria_phone, tom_phone = calendars.new("maria-phone"), calendars.new("tom-phone")
    fill(server, maria_work, 2)
    fill(server, tom_work, 4)
    put(server, tom_phone + "own.ics", vevent("tom-own", "20300305T180000Z", "20300305T190000Z"))
    pairs = [("maria", maria_work, alias(maria_phone)),
             ("ana", calendars.new("ana-work"), alias(calendars.new("ana-phone"))),
             ("tom", tom_work, alias(tom_phone))]
    setup = with_key(two_host_setup(tmp_path, server, pairs), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    assert len(owned(server, tom_phone)) == 4

    with_config(setup, pairs[:2], server)  # tom leaves
    shown = setup.run("status")
    assert "retired pair tom: 4 entries left to delete" in shown.stdout, shown.output
    assert "pair maria:" in shown.stdout

    cycle = setup.run("sync", "--now", NOW)  # cycle 1 after the change
    assert cycle.code == 0, cycle.output
    assert "retired pair tom: clean deleted=4 left=0" in cycle.stdout
    assert owned(server, tom_phone) == {}  # before the fix: 4, forever
    assert len(list_objects(server, tom_phone)) == 1  # the advocate's own entry stays
    assert len(owned(server, maria_phone)) == 2
    assert "tom" not in setup.run("status").stdout


def test_wipe_works_for_a_retired_pair(calendars, tmp_path) -> None:
    server = calendars.server
    work, phone = calendars.new("tom-work"), calendars.new("tom-phone")
    other_work, other_phone = calendars.new("maria-work"), calendars.new("maria-phone")
    fill(server, work, 3)
    pairs = [("maria", other_work, alias(other_phone)), ("tom", work, alias(phone))]
    setup = with_key(two_host_setup(tmp_path, server, pairs), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    with_config(setup, pairs[:1], server)
    wiped = setup.run("wipe", "tom", "--yes")  # before the fix: "no pair named 'tom'"
    assert wiped.code == 0, wiped.output
    assert "deleted=3" in wiped.stdout and owned(server, phone) == {}
    assert "tom" not in setup.run("status").stdout
    assert setup.run("wipe", "nobody", "--yes").code == 64


def test_a_corrected_target_leaves_nothing_in_the_old_one(calendars, tmp_path) -> None:
    server = calendars.server
    work, personal, phone = (calendars.new(n) for n in ("work", "personal", "phone"))
    fill(server, work, 6)
    put(server, personal + "own.ics", vevent("own", "20300305T180000Z", "20300305T190000Z"))
    setup = with_key(two_host_setup(tmp_path, server, [("maria", work, alias(personal))]), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    assert len(list_objects(server, personal)) == 7

    with_config(setup, [("maria", work, alias(phone))], server)
    shown = setup.run("status")
    assert "retired pair maria: 6 entries left to delete in" in shown.stdout, shown.output
    cycle = setup.run("sync", "--now", NOW)
    assert cycle.code == 0, cycle.output
    assert len(list_objects(server, personal)) == 1  # before the fix: 7, forever
    assert len(owned(server, phone)) == 6


def test_an_unreachable_retired_target_fails_retries_with_backoff_then_is_cleaned(
        calendars, tmp_path) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 2)
    setup = with_key(two_host_setup(tmp_path, server, [("tom", work, alias(phone))]), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    with_config(setup, [("maria", calendars.new("w2"), calendars.new("p2"))], server, "work")
    saved = (setup.credentials / "phone").read_text(encoding="utf-8")
    (setup.credentials / "phone").unlink()  # tom's phone account cannot log in any more

    failed = setup.run("sync", "--now", NOW)
    assert failed.code == 1 and "retired pair tom: FAILED(no-password)" in failed.stdout
    shown = setup.run("status")
    assert shown.code == 1 and "result=FAILED(no-password)" in shown.stdout
    (setup.credentials / "phone").write_text(saved, encoding="utf-8")
    waiting = setup.run("sync", "--now", "2030-03-04T09:01:00+00:00")  # within the backoff
    assert waiting.code == 1 and "left=2" in waiting.stdout
    assert len(owned(server, phone)) == 2
    done = setup.run("sync", "--now", "2030-03-04T09:10:00+00:00")
    assert done.code == 0 and "retired pair tom: clean deleted=2" in done.stdout, done.output
    assert owned(server, phone) == {}


# 3. Installations do not fight ---------------------------------------------------------------

def test_two_installations_writing_one_phone_calendar_do_not_fight(calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 5)
    first = with_key(make_setup(server, [("maria", work, phone)]), KEY)
    second = with_key(make_setup(server, [("maria", work, phone)]), OTHER_KEY)
    lines = []
    for _ in range(2):
        for setup in (first, second):
            result = setup.run("sync", "--full", "--now", NOW)
            assert result.code == 0, result.output
            lines.append(result.stdout)
    for line in lines[2:]:  # before the fix: deleted=5 created=5, every time
        assert "created=0 updated=0 deleted=0 unchanged=5" in line, line
        assert "foreign=5 (of other installations: 5)" in line
    tags = {identity.tag_of(uid) for uid in owned(server, phone).values()}
    assert tags == {identity.installation_tag(k.encode()) for k in (KEY, OTHER_KEY)}
    assert len(list_objects(server, phone)) == 10
    assert "foreign=5 held_back=0 skipped=0 of_other_installations=5" in first.run("status").stdout
    second.config_path.chmod(0o600)
    checked = second.run("check")
    assert "were written by another installation" in checked.stdout, checked.output


def test_entries_from_before_tags_are_adopted_in_place(calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 3)
    setup = with_key(make_setup(server, [("maria", work, phone)]), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    for href, uid in owned(server, phone).items():  # as the version before tags wrote them
        data = list_objects(server, phone)[href][1]
        delete(server, server.url.rstrip("/") + href)
        put(server, f"{phone}{identity.legacy_uid(uid)}.ics",
            data.replace(uid.encode(), identity.legacy_uid(uid).encode()))
    stranger = f"{OWNED_PREFIX}{'e' * 40}"  # another installation's, from before tags
    put(server, f"{phone}{stranger}.ics", vevent(stranger, "20300306T100000Z",
                                                 "20300306T110000Z", "Appointment"))
    for path in (setup.state_dir / "pairs").iterdir():
        path.unlink()  # the old version's state would list legacy UIDs; start from none
    shutil.rmtree(setup.state_dir / "ledger")
    before = {h: e for h, (e, _) in list_objects(server, phone).items()}

    result = setup.run("sync", "--full", "--now", NOW)
    assert result.code == 0, result.output
    assert "created=0 updated=0 deleted=0 unchanged=3" in result.stdout
    assert "foreign=1 (of other installations: 1)" in result.stdout
    assert {h: e for h, (e, _) in list_objects(server, phone).items()} == before
    again = setup.run("sync", "--full", "--now", NOW)
    assert "created=0 updated=0 deleted=0 unchanged=3" in again.stdout, again.output


# 4. Keys and files ---------------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["", "\n", "1", "x" * 31])
def test_a_weak_uid_key_credential_is_refused(calendars, make_setup, weak: str) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 1)
    setup = make_setup(server, [("maria", work, phone)])
    (setup.credentials / "uid-key").write_text(weak, encoding="utf-8")
    result = setup.run("sync", "--now", NOW)
    assert result.code == 78, result.output
    assert "credential uid-key" in result.stderr and "32 bytes" in result.stderr
    assert owned(server, phone) == {}


def test_command_line_names_never_become_file_paths(calendars, make_setup, tmp_path) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 1)
    setup = with_key(make_setup(server, [("maria", work, phone)]), KEY)
    assert setup.run("sync", "--now", NOW).code == 0
    assert setup.run("wipe", "maria", "--yes").code == 0
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    for name in ("../uid-key", "../status.json", str(outside), "..", "maria/../../uid-key"):
        for command in ("resume", "wipe"):
            result = setup.run(command, name, "--yes") if command == "wipe" else setup.run(
                command, name)
            assert result.code == 64, (command, name, result.output)
    assert (setup.state_dir / "uid-key").exists() and (setup.state_dir / "status.json").exists()
    assert outside.exists()
    assert setup.run("resume", "maria").code == 0


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720])
def test_sync_and_run_refuse_a_loose_state_directory(calendars, make_setup, mode: int) -> None:
    server = calendars.server
    setup = with_key(make_setup(server, [("maria", calendars.new("work"),
                                          calendars.new("phone"))]), KEY)
    setup.state_dir.chmod(mode)
    synced = setup.run("sync", "--now", NOW)
    assert synced.code == 78 and "writable by group or others" in synced.stderr, synced.output
    ran = setup.run_process("run", timeout=60)
    assert ran.code == 78 and "writable by group or others" in ran.stderr, ran.output


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_sync_refuses_a_state_directory_of_another_user(calendars, make_setup) -> None:
    server = calendars.server
    setup = with_key(make_setup(server, [("maria", calendars.new("work"),
                                          calendars.new("phone"))]), KEY)
    os.chown(setup.state_dir, 65534, 65534)
    synced = setup.run("sync", "--now", NOW)
    assert synced.code == 78 and "belongs to uid 65534" in synced.stderr, synced.output


# 5. Dry runs are dry -------------------------------------------------------------------------

def test_dry_runs_create_no_directory_no_key_and_no_state(calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    fill(server, work, 2)
    setup = make_setup(server, [("maria", work, phone)])
    setup.config_path.chmod(0o600)
    dry = setup.run("sync", "--dry-run", "--now", NOW)
    assert dry.code == 0 and "would create=2" in dry.stdout, dry.output
    assert "throwaway key" in dry.stderr
    preview = setup.run("preview", "--now", NOW)
    assert preview.code == 0 and "2 entries" in preview.stdout and "throwaway" in preview.stderr
    assert setup.run("check").code == 0
    assert not setup.state_dir.exists()  # before the fix: the directory and a new UID key
    assert server.request("PROPFIND", phone, headers={"Depth": "0"}).status == 207
    assert list_objects(server, phone) == {}


# 6. Honest status ----------------------------------------------------------------------------

def test_status_lists_pairs_that_never_ran(calendars, make_setup) -> None:
    server = calendars.server
    pairs = [("maria", calendars.new("work"), calendars.new("phone")),
             ("ana", calendars.new("work2"), calendars.new("phone2"))]
    setup = with_key(make_setup(server, pairs), KEY)
    assert setup.run("sync", "--pair", "maria", "--now", NOW).code == 0
    shown = setup.run("status").stdout
    assert re.search(r"^pair maria: last=\S+", shown, re.M)
    assert "pair ana: last=never" in shown
