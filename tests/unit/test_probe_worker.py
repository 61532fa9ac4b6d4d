"""A probe worker's loop (worker.probe_all) on in-memory calendars: it settles only the pairs
whose state still calls for a probe alone and whose source changed nothing; it goes on past a
calendar's own failure and stops at one that may be the server's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sanitizer.engine import sync_state
from sanitizer.engine.reconcile import sync_pair
from sanitizer.errors import StoreError
from sanitizer.service import runtime
from sanitizer.service.config import Config, parse_config
from sanitizer.service.supervise import Supervisor
from sanitizer.service.worker import PROBE, Job, probe_all
from tests.support.core_builders import ics
from tests.support.memory_store import MemoryCalendar

NOW = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
KEY = b"k" * 32
NAMES = ("a", "b", "c", "d")


class Calendars:
    """An account's connection over in-memory calendars, by URL."""

    def __init__(self) -> None:
        self.calendars: dict[str, Any] = {}

    def get(self, url: str) -> Any:
        return self.calendars.setdefault(url, MemoryCalendar(url))

    def source(self, url: str, *, read_titles: bool, until: float | None = None) -> Any:
        return self.get(url)

    def target(self, url: str, *, until: float | None = None) -> Any:
        return self.get(url)

    def tokens(self) -> None:
        return None

    def close(self) -> None:
        pass


class Failing(MemoryCalendar):
    """A source whose probe gets an HTTP status."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(url)
        self.status = status

    def changes(self, token: str) -> Any:
        self.requests["REPORT"] += 1
        raise StoreError(operation="REPORT", url=self.url, reason=f"http-{self.status}",
                         status=self.status)


def setting_up(tmp_path: Path) -> tuple[Config, runtime.Runtime, Calendars]:
    config = parse_config({
        "service": {"state_dir": str(tmp_path), "timezone": "UTC"},
        "accounts": {"main": {"url": "http://127.0.0.1:5232/", "username": "u"}},
        "pairs": [{"name": name, "account": "main", "source": f"http://127.0.0.1:5232/u/{name}/",
                   "target": f"http://127.0.0.1:5232/u/{name}-phone/"} for name in NAMES]})
    calendars = Calendars()
    for pair in config.pairs:
        source = calendars.get(pair.source_url)
        source.put_raw("e.ics", ics("e", NOW + timedelta(hours=3)))
        report = sync_pair(pair, source, calendars.get(pair.target_url), key=KEY, now=NOW,
                           zone=config.service.timezone, workers=1)
        assert report.state is not None
        sync_state.save(tmp_path, pair.name, report.state)
    for calendar in calendars.calendars.values():
        calendar.requests.clear()
    worker = runtime.Runtime(config, KEY, secrets={"main": "pw"})
    worker.connections["main"] = calendars  # type: ignore[assignment]
    return config, worker, calendars


def probe_job(config: Config) -> Job:
    boss = Supervisor(runtime.Runtime(config, KEY, secrets={"main": "pw"}), pool=None)  # type: ignore[arg-type]
    job = boss.probe_job([boss.job("cycle", config.pair(n), LATER) for n in NAMES])
    assert job.kind == PROBE and job.probes == NAMES
    return job


def test_only_pairs_still_due_and_unchanged_are_settled(tmp_path: Path) -> None:
    config, worker, calendars = setting_up(tmp_path)
    job = probe_job(config)
    calendars.get(config.pair("b").source_url).put_raw("e.ics", ics("e", NOW + timedelta(hours=5)))
    doubtful = sync_state.load(tmp_path, "c")
    assert doubtful is not None
    sync_state.save(tmp_path, "c", replace(doubtful, clean=False))  # after the batch was made
    c_source = calendars.get(config.pair("c").source_url)
    found = probe_all(worker, job)
    assert sorted(found) == ["a", "d"]  # b changed; c's last cycle left something in doubt
    assert all(p.report.mode == "quiet" and p.report.unchanged == 1 for p in found.values())
    assert not c_source.requests  # a state that no longer calls for a probe is not probed
    assert not any(calendars.get(p.target_url).requests.get(op)
                   for p in config.pairs for op in ("PUT", "DELETE"))


def test_a_calendar_s_own_failure_does_not_stop_the_probes(tmp_path: Path) -> None:
    config, worker, calendars = setting_up(tmp_path)
    url = config.pair("a").source_url
    calendars.calendars[url] = Failing(url, 404)
    assert sorted(probe_all(worker, probe_job(config))) == ["b", "c", "d"]


def test_a_failure_that_may_be_the_server_s_ends_the_probes(tmp_path: Path) -> None:
    for status in (401, 429, 503):
        config, worker, calendars = setting_up(tmp_path / str(status))
        url = config.pair("b").source_url
        calendars.calendars[url] = Failing(url, status)
        later = calendars.get(config.pair("c").source_url)
        later.requests.clear()
        assert sorted(probe_all(worker, probe_job(config))) == ["a"], status
        assert not later.requests  # a rejected secret is not sent again, a busy server not asked
