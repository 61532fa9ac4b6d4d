"""Retention never depends on the source: an entry past the retention window leaves the phone
even when the work calendar cannot be read, reached or parsed (the scripted hostile server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sanitizer.engine import sync_state
from tests.support.harness import vevent
from tests.support.hostile_server import RAW, HostileServer, configure, trickled_headers

pytestmark = pytest.mark.integration

FIRST = "2030-03-04T09:00:00+00:00"
# "a" ends 2030-03-04T14:00Z; with 24h retention it is past the window from 03-05T14:00Z on
LATER = "2030-03-06T09:00:00+00:00"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        hostile.calendar("/casework/", {
            "a.ics": vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe").encode(),
            "b.ics": vevent("b", "20300310T130000Z", "20300310T140000Z", "Court").encode()})
        hostile.calendar("/phone/")
        yield hostile


BROKEN = {
    "unreachable": lambda seen: (503, {}, b""),
    "unreadable": lambda seen: (207, {"Content-Type": "application/xml"}, b"<not-xml"),
    "too-large": lambda seen: (207, {"Content-Type": "application/xml"},
                               (b" " * 65536 for _ in range(400))),
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_an_expired_entry_leaves_the_phone_while_the_source_is_broken(
        server: HostileServer, tmp_path: Path, how: str) -> None:
    setup = configure(tmp_path, server)
    assert setup.run("sync", "--now", FIRST).code == 0
    assert len(server.calendars["/phone/"]) == 2
    server.script("REPORT", "/casework/", BROKEN[how])
    server.script("PROPFIND", "/casework/", BROKEN[how])
    for _ in range(2):  # and again: a failed cycle keeps what it knows of the phone
        result = setup.run("sync", "--now", LATER, "--full")
        assert result.code != 0, result.output
    assert len(server.calendars["/phone/"]) == 1, result.output  # "b" stays: it is not past
    state = sync_state.load(setup.state_dir, "p")
    assert state is not None and len(state.entries) == 1 and not state.clean


def test_an_expired_entry_leaves_the_phone_while_the_source_stalls(
        server: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source trickles its headers until the request's deadline ends it (or, off the main
    thread, the worker is killed): retention ran first."""
    monkeypatch.setattr("sanitizer.service.runtime.BUDGET_MIN", 1.0)
    monkeypatch.setattr("sanitizer.service.runtime.BUDGET_TIMEOUTS", 0)
    monkeypatch.setattr("sanitizer.service.supervise.WALL_SLACK", 1.0)
    setup = configure(tmp_path, server, service='timeout = "1s"')
    assert setup.run("sync", "--now", FIRST).code == 0
    server.script("PROPFIND", "/casework/", lambda seen: (RAW, {}, trickled_headers(30)))
    result = setup.run("sync", "--now", LATER)
    stalled = ("answer-too-slow", "cycle-budget-exhausted", "worker-timeout")
    assert result.code != 0 and any(r in result.output for r in stalled), result.output
    assert len(server.calendars["/phone/"]) == 1


def test_a_pair_that_backs_off_still_loses_its_expired_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon does not run a failing pair's cycle until its backoff ends, but a sweep gives
    it a retention-only worker when a recorded entry is past retention."""
    from sanitizer.service import daemon, worker  # noqa: PLC0415
    from sanitizer.service.config import load_config  # noqa: PLC0415
    from sanitizer.service.pool import Finished  # noqa: PLC0415

    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(days=3)
    with HostileServer() as server:
        server.calendar("/casework/", {
            "a.ics": vevent("a", f"{first + timedelta(hours=4):%Y%m%dT%H%M%SZ}",
                            f"{first + timedelta(hours=5):%Y%m%dT%H%M%SZ}", "Jane").encode(),
            "b.ics": vevent("b", f"{now + timedelta(days=1):%Y%m%dT%H%M%SZ}",
                            f"{now + timedelta(days=1, hours=1):%Y%m%dT%H%M%SZ}", "x").encode()})
        server.calendar("/phone/")
        setup = configure(tmp_path, server)
        assert setup.run("sync", "--now", first.isoformat()).code == 0
        assert len(server.calendars["/phone/"]) == 2
        for key, value in setup.environment().items():
            monkeypatch.setenv(key, value)
        config = load_config(setup.config_path)
        supervisor = daemon.Daemon(setup.config_path, config, daemon.open_checked_runtime(config))
        supervisor.states["p"] = daemon.Backoff(3, now + timedelta(hours=1))
        supervisor._cycle()
        jobs = [job for job in supervisor.queue if job.pair == "p"]
        assert [job.kind for job in jobs] == [worker.EXPIRE]
        outcome = worker.run(jobs[0])
        supervisor.boss.finish(Finished(jobs[0], outcome, 0.0))
        assert len(server.calendars["/phone/"]) == 1
        state = sync_state.load(setup.state_dir, "p")
        assert state is not None and len(state.entries) == 1
