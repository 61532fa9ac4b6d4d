"""Quiet pairs probed together, against Radicale: one worker asks each quiet pair's ctag, and
every pair whose probe finds anything (an edit, a missing calendar, a server that refuses)
runs its whole cycle in a worker of its own, in the same run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sanitizer.service.pool import Pool
from sanitizer.service.worker import CYCLE, PROBE, RETIRE, Job
from tests.integration.test_daemon import soon
from tests.support.daemon_process import Process
from tests.support.faultproxy import FaultProxy
from tests.support.harness import Setup, delete, list_objects, put, vevent
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import CalDAVServer

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
NAMES = ("ana", "ben", "cy")


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """Every worker the supervisor starts: its kind, its pair, the pairs it probes."""
    seen: list[tuple[str, str | None, tuple[str, ...]]] = []
    real = Pool.start

    def start(self: Pool, job: Job) -> Any:
        seen.append((job.kind, job.pair, job.probes))
        return real(self, job)

    monkeypatch.setattr(Pool, "start", start)
    return seen


@dataclass
class Three:
    """Three pairs on one account, behind a counting proxy, after their first cycle."""

    setup: Setup
    proxy: FaultProxy
    server: CalDAVServer  # for the edits the sanitizer does not make
    sources: dict[str, str]


@pytest.fixture
def three(calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> Iterator[Three]:
    """Three pairs on one account, behind a counting proxy, after their first cycle."""
    server = calendars.server
    sources = {}
    pairs = []
    for name in NAMES:
        source = calendars.new(f"{name}-work")
        put(server, f"{source}e0.ics", vevent("e0", "20300305T100000Z", "20300305T110000Z"))
        sources[name] = source
        pairs.append((name, source.removeprefix(server.url),
                      source.removeprefix(server.url).replace("-work-", "-phone-")))
    with FaultProxy(server.url, log=True) as proxy:
        setup = make_setup(server, pairs, url=proxy.url)
        first = setup.run("sync", "--now", NOW)
        assert first.code == 0 and first.stdout.count("created=1") == 3, first.output
        proxy.reset_stats()
        yield Three(setup, proxy, server, sources)


def states(setup: Setup) -> dict[str, Any]:
    result = setup.run("status", "--json")
    return {p["name"]: p for p in json.loads(result.stdout)["pairs"]}


def test_quiet_pairs_share_one_probe_worker_and_an_edit_still_follows(
        three: Three,
        started: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
    setup, proxy, sources = three.setup, three.proxy, three.sources
    quiet = setup.run("sync", "--now", NOW)
    assert quiet.code == 0 and quiet.stdout.count("unchanged=1") == 3, quiet.output
    assert dict(proxy.stats().requests) == {"PROPFIND": 3}  # one getctag per pair, no more
    assert started == [(PROBE, None, NAMES), (RETIRE, None, ())]
    put(three.server, f"{sources['ben']}e0.ics",
        vevent("e0", "20300305T120000Z", "20300305T130000Z"))
    started.clear()
    edited = setup.run("sync", "--now", NOW)
    assert edited.code == 0, edited.output
    assert "pair ben: ok created=0 updated=1" in edited.stdout
    assert edited.stdout.count("unchanged=1") == 2
    assert started == [(PROBE, None, NAMES), (CYCLE, "ben", ()), (RETIRE, None, ())]
    assert all(p["ok"] for p in states(setup).values())


def test_a_missing_calendar_fails_its_own_pair_and_the_probes_go_on(
        three: Three,
        started: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
    setup, sources = three.setup, three.sources
    delete(three.server, sources["ana"])  # the first pair probed
    result = setup.run("sync", "--now", NOW)
    assert result.code != 0
    assert "pair ana: FAILED" in result.stdout
    assert result.stdout.count("unchanged=1") == 2, result.output
    assert started == [(PROBE, None, NAMES), (CYCLE, "ana", ()), (RETIRE, None, ())]


def test_a_refusing_server_ends_the_probes_and_every_pair_runs_its_own_cycle(
        three: Three,
        started: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
    setup, proxy = three.setup, three.proxy
    proxy.force("401-once", methods={"PROPFIND"})  # a rejected secret is not sent again
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0 and result.stdout.count("unchanged=1") == 3, result.output
    assert started == [(PROBE, None, NAMES), *((CYCLE, name, ()) for name in NAMES),
                       (RETIRE, None, ())]
    assert proxy.stats().requests["PROPFIND"] == 4  # the refused probe, then one per pair


def test_the_daemon_probes_quiet_pairs_and_an_edit_reaches_the_phone_in_the_next_sweep(
        calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    server = calendars.server
    start, end = soon()
    sources, pairs = {}, []
    for name in NAMES:
        source = calendars.new(f"{name}-work")
        put(server, f"{source}e0.ics", vevent("e0", start, end))
        sources[name] = source
        pairs.append((name, source, source.replace("-work-", "-phone-")))
    setup = make_setup(server, pairs, service_extra='interval = "5s"\n')
    process = Process(setup)
    try:
        process.wait_for_line("cycle 2: 3 ok, 0 failed", timeout=60)
        moved = vevent("e0", *soon(hour=15))
        put(server, f"{sources['ben']}e0.ics", moved)
        process.wait_for_line("pair ben: ok created=0 updated=1", timeout=60)
        done = sum("cycle " in line and ": 3 ok, 0 failed" in line for line in process.lines)
        process.wait_for_line(": 3 ok, 0 failed", count=done + 1, timeout=60)
        code, _ = process.stop()
    finally:
        process.kill()
    assert code == 0, "\n".join(process.lines)
    assert all(" 3 ok, 0 failed, 0 paused, 0 backing off" in line
               for line in process.lines if "INFO sanitizer.service.daemon: cycle " in line)
    phone = list_objects(server, pairs[1][2])
    assert len(phone) == 1
    assert soon(hour=15)[0].encode() in next(iter(phone.values()))[1]
