"""A phone calendar is created on purpose only, and a changed target's old calendar is emptied
only once the new one has synced: a typo in `target` never empties the advocate's phone."""

from __future__ import annotations

import pytest

from tests.support.harness import list_objects, put, vevent

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"


def test_a_typo_in_target_fails_the_pair_and_keeps_the_real_phone(calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    for uid in "abc":
        put(server, f"{work}{uid}.ics", vevent(uid, "20300304T130000Z", "20300304T140000Z"))
    setup = make_setup(server, [("maria", work, phone)])
    assert setup.run_process("sync", "--now", NOW).code == 0
    assert len(list_objects(server, phone)) == 3
    typo = phone.rstrip("/") + "-phnoe/"
    right = setup.config_path.read_text()
    setup.config_path.write_text(right.replace(f'target = "{phone}"', f'target = "{typo}"'))
    failed = setup.run_process("sync", "--now", NOW)
    assert failed.code == 78, failed.output  # before: ok, the typo made, the phone emptied
    assert f"pair maria: FAILED no calendar at {typo}" in failed.stdout
    assert "retired pair maria" not in failed.stdout
    assert server.request("PROPFIND", typo, headers={"Depth": "0"}).status == 404
    assert len(list_objects(server, phone)) == 3  # the phone still shows every appointment
    shown = setup.run_process("status")
    assert shown.code == 1 and "result=FAILED(target-missing)" in shown.stdout, shown.output
    assert f"retired pair maria: 3 entries left to delete in {phone} result=waiting" in shown.stdout
    setup.config_path.write_text(right)  # the typo fixed: nothing to clean, nothing lost
    again = setup.run_process("sync", "--now", NOW)
    assert again.code == 0 and "unchanged=3" in again.stdout, again.output
    assert len(list_objects(server, phone)) == 3


def test_a_changed_target_retires_the_old_one_after_its_first_good_cycle(
        calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    put(server, f"{work}a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    setup = make_setup(server, [("maria", work, phone)])
    assert setup.run_process("sync", "--now", NOW).code == 0
    new = phone.rstrip("/") + "-new/"
    setup.config_path.write_text(setup.config_path.read_text().replace(
        f'target = "{phone}"', f'target = "{new}"'))
    assert setup.run_process("sync", "--now", NOW).code == 78
    assert len(list_objects(server, phone)) == 1  # kept while the new target has not synced
    assert setup.run_process("create-target", "maria").code == 0
    moved = setup.run_process("sync", "--now", NOW)
    assert moved.code == 0, moved.output
    assert "pair maria: ok created=1" in moved.stdout
    assert f"retired pair maria: clean deleted=1 left=0 in {phone}" in moved.stdout
    assert list_objects(server, phone) == {} and len(list_objects(server, new)) == 1
