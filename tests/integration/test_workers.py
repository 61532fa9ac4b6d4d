"""Each pair's cycle in a worker process: a server that stalls, an answer that eats memory or a
bug in a library costs its own pair one failed cycle, never the others, the watchdog or the
service. Against the scripted hostile server, with the real CLI and the real daemon."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sanitizer.service import runtime, status
from sanitizer.stores.caldav.http import MIB
from tests.integration.test_daemon import INTERVAL, NotifySocket, Process, soon
from tests.support.harness import Setup, vevent
from tests.support.hostile_server import (
    RAW,
    XML,
    HostileServer,
    configure,
    multistatus,
    response_xml,
    trickled_headers,
)

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
WORK = vevent("work-1", "20300305T100000Z", "20300305T110000Z", "Client Jane Doe").encode()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()
        print("\n".join(["--- daemon output:", *process.lines]))  # shown when a test fails


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        hostile.calendar("/slow-casework/", {"work-1.ics": WORK})
        hostile.calendar("/slow-phone/")
        hostile.calendar("/casework/", {"work-1.ics": WORK})
        hostile.calendar("/phone/")
        yield hostile


def test_trickled_headers_hold_up_neither_the_other_pair_nor_the_watchdog(
        server: HostileServer, tmp_path: Path, processes: list[Process],
        notify: NotifySocket) -> None:
    """Response headers trickled a byte every 0.2 s (inside any read timeout, so no
    request deadline fires): the healthy pair keeps its rhythm, cycle after cycle, and the
    watchdog is pinged every half period."""
    start, end = soon()
    server.calendars["/casework/"] = {"a.ics": vevent("a", start, end, "Jane Doe").encode()}
    server.script("REPORT", "/slow-casework/", lambda seen: (RAW, {}, trickled_headers(120)))
    setup = configure(tmp_path, server, service=INTERVAL, pairs=("slow", "p"))
    process = Process(setup, notify.address, WATCHDOG_USEC="600000")
    processes.append(process)
    ready = notify.wait_for(lambda f: f == "READY=1")
    process.wait_for_line("pair p: ok", count=3, timeout=30)
    pings = [t for t, f in notify.fields() if f == "WATCHDOG=1" and t >= ready]
    assert max(b - a for a, b in itertools.pairwise(pings)) < 0.6
    assert server.calendars["/phone/"] and not server.calendars["/slow-phone/"]


def test_a_worker_past_its_deadline_is_killed_and_fails_its_pair_alone(
        server: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "BUDGET_MIN", 1.0)
    monkeypatch.setattr(runtime, "BUDGET_TIMEOUTS", 0)
    monkeypatch.setattr("sanitizer.service.supervise.WALL_SLACK", 1.0)
    # The writes of a cycle run in threads, where no signal reaches: a PUT whose headers
    # trickle there is ended by the worker's deadline alone.
    server.calendars["/slow-casework/"] = {
        f"w{i}.ics": vevent(f"w{i}", f"2030030{i}T100000Z", f"2030030{i}T110000Z").encode()
        for i in (5, 6)}
    server.script("PUT", "*", lambda seen: (RAW, {}, trickled_headers(60))
                  if seen.path.startswith("/slow-phone/") else None)
    setup = configure(tmp_path, server, service='timeout = "1s"', pairs=("slow", "p"))
    started = time.monotonic()
    result = setup.run("sync", "--now", NOW)
    assert time.monotonic() - started < 15, result.output
    assert result.code == 1
    assert "pair slow: FAILED" in result.output and "worker-timeout" in _status(setup, "slow")
    assert "pair p: ok created=1" in result.output
    assert not server.calendars["/slow-phone/"] and server.calendars["/phone/"]


def test_trickled_headers_end_at_the_request_deadline_not_the_workers(
        server: HostileServer, tmp_path: Path) -> None:
    """A read whose response headers trickle a byte every 0.2 s (no read timeout fires) ends
    at its own deadline (4 x timeout), long before the worker's."""
    server.script("REPORT", "/slow-casework/", lambda seen: (RAW, {}, trickled_headers(60)))
    setup = configure(tmp_path, server, service='timeout = "1s"', pairs=("slow", "p"))
    started = time.monotonic()
    result = setup.run("sync", "--now", NOW)
    took = time.monotonic() - started
    assert result.code == 1, result.output
    assert "answer-too-slow" in _status(setup, "slow"), result.output
    assert 3.5 < took < 20, result.output  # the worker's own deadline is 60 + 3 + 10 s
    assert "pair p: ok created=1" in result.output


def test_a_worker_over_its_memory_limit_fails_its_pair_alone(
        server: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """12,000 small appointments, each under every cap, in an answer under the 20 MiB cap: with
    64 MiB for each worker, the big pair's worker runs out of memory (the XML parser's
    allocations fail, or Python's), its cycle fails with nothing written, and the other pair,
    under the same limit, syncs."""
    monkeypatch.setattr("sanitizer.service.supervise.worker_data", lambda parallel: 64 * MIB)

    def many() -> Iterator[bytes]:
        yield multistatus([]).split(b"</D:multistatus>")[0]
        for n in range(12_000):
            yield response_xml(f"/slow-casework/o{n}.ics", vevent(
                f"o{n}", "20300305T100000Z", "20300305T110000Z", "Client",
                "DESCRIPTION:" + "d" * 1200 + "\r\n").encode()).encode()
        yield b"</D:multistatus>"

    server.script("REPORT", "/slow-casework/", lambda seen: (207, XML, many()))
    setup = configure(tmp_path, server, pairs=("slow", "p"))
    result = setup.run("sync", "--now", NOW)
    assert result.code == 1, result.output
    assert "pair slow: FAILED" in result.output and "pair p: ok created=1" in result.output
    assert not server.calendars["/slow-phone/"]


def _status(setup: Setup, pair: str) -> str:
    return str(status.read_status(setup.state_dir).get(pair, {}).get("error"))



def test_a_graph_pair_that_is_told_to_wait_stops_at_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph answers every delta request 429 with Retry-After: 29, and its client waits as
    told, past the cycle's budget: the worker is stopped at its deadline."""
    from tests.integration.test_microsoft365_cli import m365_setup  # noqa: PLC0415
    from tests.support.graph_sim import ADVOCATE, PHONE, GraphSim  # noqa: PLC0415

    monkeypatch.setattr(runtime, "BUDGET_MIN", 1.0)
    monkeypatch.setattr(runtime, "BUDGET_TIMEOUTS", 0)
    monkeypatch.setattr("sanitizer.service.supervise.WALL_SLACK", 1.0)
    sim = GraphSim().start()
    try:
        sim.add_calendar(PHONE, "Calendar")
        sim.add_calendar(ADVOCATE, "Calendar")
        sim.fail(429, times=1000, retry_after="29", match="/delta")
        setup = m365_setup(tmp_path, sim)
        text = setup.config_path.read_text().replace("[service]\n", '[service]\ntimeout = "1s"\n')
        setup.config_path.write_text(text)
        started = time.monotonic()
        result = setup.run("sync", "--now", NOW)
        assert time.monotonic() - started < 20, result.output
        assert result.code != 0 and _status(setup, "maria") == "worker-timeout", result.output
    finally:
        sim.stop()
