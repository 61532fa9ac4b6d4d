"""Monitoring never says ok while an appointment is not on the phone, and never shows what is gone:
skips that outlive quiet cycles, a pair that never ran, counts after a wipe or a retirement, a
pair put back after its entries were deleted. Against a real Radicale, through the CLI."""

from __future__ import annotations

import json
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import delete, list_objects, put, vevent

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
UNKNOWN_ZONE = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
                "UID:bad-zone\r\nDTSTAMP:20300301T080000Z\r\n"
                "DTSTART;TZID=Shelter Time:20300304T150000\r\n"
                "DTEND;TZID=Shelter Time:20300304T160000\r\n"
                "SUMMARY:Jane Doe court date\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    setup = make_setup(server, [("advocate", work, phone)])
    setup.config_path.chmod(0o600)
    return server, work, phone, setup


def line_of(output: str, pair: str = "advocate") -> str:
    return next(x for x in output.splitlines() if x.startswith(f"pair {pair}:"))


def test_a_skipped_appointment_stays_visible_through_quiet_cycles(pair, tmp_path) -> None:
    server, work, _, setup = pair
    metrics = tmp_path / "metrics.prom"
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", f'[service]\nmetrics_file = "{metrics}"\n'))
    put(server, work + "bad.ics", UNKNOWN_ZONE)
    full = setup.run_process("sync", "--now", NOW)
    assert full.code == 0 and "[full]" in full.stdout, full.output
    assert "WARNING" in full.stderr and "1 appointment(s) in the window are not on the phone " \
        "(unknown-timezone=1)" in full.stderr, full.stderr
    quiet = setup.run_process("sync", "--now", NOW)
    assert "[quiet]" in quiet.stdout and "skipped=1" in quiet.stdout, quiet.output
    shown = setup.run_process("status")
    assert shown.code == 3, shown.output  # before: 0, and skipped=0
    assert "MISSING=1(unknown-timezone=1)" in line_of(shown.stdout)
    document = setup.run_process("status", "--json")
    assert document.code == 3
    entry = json.loads(document.stdout)["pairs"][0]
    assert entry["missing"] == {"unknown-timezone": 1}
    assert entry["skipped"] == {"unknown-timezone": 1}
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert [s.value for s in families["calendar_sanitizer_missing_appointments"].samples] == [1]
    by_reason = families["calendar_sanitizer_missing_appointments_by_reason"].samples
    assert [(s.labels["reason"], s.value) for s in by_reason] == [("unknown-timezone", 1)]
    assert "Jane" not in shown.output + document.output + metrics.read_text()
    assert b"Shelter" not in setup.state_bytes() and b"Jane" not in setup.state_bytes()
    delete(server, work + "bad.ics")  # the problem is gone: so is the alarm
    assert setup.run_process("sync", "--now", NOW).code == 0
    fixed = setup.run_process("status")
    assert fixed.code == 0 and "MISSING" not in line_of(fixed.stdout), fixed.output


def test_an_intended_skip_is_not_a_missing_appointment(pair) -> None:
    server, work, _, setup = pair
    put(server, work + "c.ics", vevent("c", "20300304T150000Z", "20300304T160000Z", "Gone",
                                       "STATUS:CANCELLED\r\n"))
    assert setup.run_process("sync", "--now", NOW).code == 0
    shown = setup.run_process("status")
    assert shown.code == 0 and "skipped=1" in line_of(shown.stdout), shown.output
    assert "MISSING" not in shown.stdout


def test_a_pair_that_never_ran_turns_stale(pair) -> None:
    _, _, _, setup = pair
    fresh = setup.run_process("status", "--max-age", "1h")  # the config was written just now
    assert fresh.code == 0 and "last=never" in fresh.stdout, fresh.output
    an_hour_ago = time.time() - 3600
    os.utime(setup.config_path, (an_hour_ago, an_hour_ago))
    never = setup.run_process("status", "--max-age", "1s")
    assert never.code == 1, never.output  # before: exit 0, a service that never started passed
    assert "pair advocate: STALE" in never.stdout
    entry = json.loads(setup.run_process("status", "--json", "--max-age", "1s").stdout)
    assert entry["pairs"][0]["stale"] is True and entry["pairs"][0]["last"] is None


def test_a_pair_that_never_succeeds_turns_stale_from_when_it_was_first_seen(pair) -> None:
    _, work, _, setup = pair
    setup.config_path.write_text(setup.config_path.read_text().replace(work, work + "gone/"))
    assert setup.run_process("sync").code != 0
    path = setup.state_dir / "status.json"
    data = json.loads(path.read_text())
    assert "last_success" not in data["advocate"] and data["advocate"]["since"]
    data["advocate"]["since"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps(data))
    shown = setup.run_process("status", "--max-age", "1d")
    assert shown.code == 1 and "last_ok=never" in shown.stdout and "STALE" in shown.stdout


def test_status_shows_no_counts_after_a_wipe(pair) -> None:
    server, _, phone, setup = pair
    assert setup.run_process("sync", "--now", NOW).code == 0
    assert "created=1" in line_of(setup.run_process("status").stdout)
    assert setup.run_process("wipe", "advocate", "--yes").code == 0
    assert list_objects(server, phone) == {}
    line = line_of(setup.run_process("status").stdout)
    assert "created=" not in line and "unchanged=" not in line, line  # before: created=1
    assert "last=- (entries wiped" in line and "paused=yes" in line
    assert setup.run_process("resume", "advocate").code == 0
    again = setup.run_process("sync", "--now", NOW)
    assert again.code == 0 and "created=1" in again.stdout and "[full]" in again.stdout
    assert len(list_objects(server, phone)) == 1


def test_a_pair_put_back_after_retirement_fills_its_phone_again(calendars, make_setup) -> None:
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    other_work, other_phone = calendars.new("work2"), calendars.new("phone2")
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    setup = make_setup(server, [("maria", work, phone), ("ana", other_work, other_phone)])
    both = setup.config_path.read_text()
    assert setup.run_process("sync", "--now", NOW).code == 0
    assert "unchanged=1" in setup.run_process("sync", "--now", NOW).stdout  # it has a state
    without = both[:both.index('\n[[pairs]]\nname = "ana"')].replace(
        f'name = "maria"\naccount = "main"\nsource = "{work}"\ntarget = "{phone}"\n', "")
    without = without.replace('\n[[pairs]]\n\n', "\n") + both[both.index(
        '\n[[pairs]]\nname = "ana"'):]
    setup.config_path.write_text(without)
    retired = setup.run_process("sync", "--now", NOW)
    assert "retired pair maria: clean deleted=1" in retired.stdout, retired.output
    assert list_objects(server, phone) == {}
    assert "pair maria:" not in setup.run_process("status").stdout
    setup.config_path.write_text(both)
    back = setup.run_process("sync", "--now", NOW)
    assert "pair maria: ok created=1" in back.stdout, back.output  # before: unchanged=1 [quiet]
    assert len(list_objects(server, phone)) == 1
