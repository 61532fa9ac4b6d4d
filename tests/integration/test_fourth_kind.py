"""A kind of account that only the tests know (tests/support/folder_kind) works end to end.

Its package and its one registry line are all it takes: `check`, `create-target`, `sync` and
`status` use it without a change anywhere else. Planted survivor text never reaches the phone
folder, the output or the state.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from sanitizer.stores.registry import KINDS, register
from tests.support.harness import Setup, vevent

SECRET = "folder-secret-1"
MARKERS = ("Marker-Jane-Survivor", "Marker-Shelter-Street", "Marker-Case-Notes")


@pytest.fixture(autouse=True)
def folder() -> Iterator[ModuleType]:
    """The folder kind's module, registered for this module's tests only (imported here, not
    at collection, so that the other tests see the three real kinds)."""
    from tests.support.folder_kind import kind  # noqa: PLC0415

    register(kind.KIND)
    yield kind
    KINDS.pop(kind.KIND.name, None)


@pytest.fixture
def setup(tmp_path: Path, folder: ModuleType) -> Setup:
    """A root folder with a work calendar of one appointment tomorrow, and a config."""
    root = tmp_path / "calendars"
    (root / "work").mkdir(parents=True)
    (root / folder.SECRET_FILE).write_text(SECRET, encoding="utf-8")
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                            microsecond=0)
    stamp = "%Y%m%dT%H%M%SZ"
    (root / "work" / "intake.ics").write_text(vevent(
        "intake-1", start.strftime(stamp), (start + timedelta(hours=1)).strftime(stamp),
        summary=MARKERS[0], extra=f"LOCATION:{MARKERS[1]}\r\nDESCRIPTION:{MARKERS[2]}\r\n"),
        encoding="utf-8", newline="")
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "files").write_text(SECRET, encoding="utf-8")
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[service]\nstate_dir = "{state}"\n\n[accounts.files]\nkind = "folder"\n'
        f'root = "{root}"\n\n[[pairs]]\nname = "maria"\naccount = "files"\nsource = "work"\n'
        'target = "phone"\n', encoding="utf-8")
    config.chmod(0o600)
    now = time.time()
    os.utime(config, (now, now))
    return Setup(tmp_path, config, state, credentials)


def phone(setup: Setup) -> dict[str, bytes]:
    """The phone folder's files."""
    folder_path = setup.root / "calendars" / "phone"
    return {p.name: p.read_bytes() for p in folder_path.glob("*.ics")}


def test_the_kind_is_registered_only_from_its_own_package(folder: ModuleType) -> None:
    assert KINDS["folder"] is folder.KIND


@pytest.mark.integration
def test_check_sync_and_status_work_for_a_kind_only_the_tests_know(setup: Setup) -> None:
    work_before = (setup.root / "calendars" / "work" / "intake.ics").read_bytes()
    missing = setup.run("check")
    assert missing.code == 78, missing.output
    assert "account files  ok" in missing.stdout and "target-missing" in missing.stdout

    made = setup.run("create-target", "maria")
    assert made.code == 0 and "created" in made.output, made.output

    ready = setup.run("check")
    assert ready.code == 0, ready.output
    assert "source readable; target is a writable calendar" in ready.stdout, ready.stdout

    synced = setup.run("sync")
    assert synced.code == 0, synced.output
    entries = phone(setup)
    assert len(entries) == 1, entries
    entry = next(iter(entries.values()))
    assert b"SUMMARY:Appointment" in entry
    status = setup.run("status", "--json")
    assert status.code == 0, status.output
    pairs = json.loads(status.stdout)["pairs"]
    assert [p["name"] for p in pairs] == ["maria"] and pairs[0]["ok"], pairs

    (setup.root / "calendars" / "work" / "intake.ics").unlink()
    emptied = setup.run("sync")
    assert emptied.code == 0, emptied.output
    assert phone(setup) == {}

    written = b"".join([entry, synced.output.encode(), status.output.encode(),
                        ready.output.encode(), setup.state_bytes()])
    for marker in MARKERS:
        assert marker.encode() not in written
    assert work_before.decode().count(MARKERS[0]) == 1  # the source was only read


@pytest.mark.integration
def test_a_refused_secret_is_the_kinds_own_finding(setup: Setup) -> None:
    (setup.credentials / "files").write_text("wrong", encoding="utf-8")
    result = setup.run("check")
    assert result.code == 77, result.output
    assert "account files  auth-rejected" in result.stdout, result.stdout
