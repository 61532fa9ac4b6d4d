"""Work per pair does not grow with the number of pairs: the ledger is one file per target, and
which targets are retired is decided once per cycle from targets normalised once."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sanitizer.engine import ledger, sync_state
from sanitizer.service import calendars, cycle, retirement, runtime
from sanitizer.service.config import Config, parse_config

NOW = datetime.now(UTC).replace(microsecond=0)


def config_of(state_dir: Path, pairs: int) -> Config:
    data: dict[str, Any] = {
        "service": {"state_dir": str(state_dir), "timezone": "UTC"},
        "accounts": {"main": {"url": "http://127.0.0.1:5232/", "username": "u"}},
        "pairs": [{"name": f"p{i}", "account": "main", "title": "Appointment",
                   "source": f"http://127.0.0.1:5232/u/src{i}/",
                   "target": f"http://127.0.0.1:5232/u/dst{i}/"} for i in range(pairs)]}
    return parse_config(data)


def test_each_target_has_its_own_compact_ledger_file(tmp_path: Path) -> None:
    ledger.note_target(tmp_path, "http://h/a/", "a", "main")
    ledger.note_target(tmp_path, "http://h/b/", "b", "main")
    other = ledger.path_for(tmp_path, "http://h/b/")
    before = other.stat().st_ino
    ledger.note_entries(tmp_path, "http://h/a/", {"csan-x": "/a/x.ics"})
    assert other.stat().st_ino == before  # b's file was not rewritten for a's change
    text = ledger.path_for(tmp_path, "http://h/a/").read_text(encoding="utf-8")
    assert "\n" not in text and json.loads(text)["url"] == "http://h/a/"
    assert ledger.record(tmp_path, "http://h/a/").entries == {"csan-x": "/a/x.ics"}
    assert set(ledger.load(tmp_path)) == {"http://h/a/", "http://h/b/"}


def test_a_single_ledger_file_of_the_earlier_version_is_split(tmp_path: Path) -> None:
    old = {"version": 1, "targets": {"http://h/a/": {
        "pair": "a", "account": "main", "entries": {"csan-x": "/a/x.ics"}, "failures": 2,
        "retry_at": None, "error": "http-503", "last_try": None}}}
    (tmp_path / ledger.LEDGER_FILE).write_text(json.dumps(old), encoding="utf-8")
    record = ledger.record(tmp_path, "http://h/a/")
    assert record is not None and record.failures == 2 and record.error == "http-503"
    assert not (tmp_path / ledger.LEDGER_FILE).exists()
    assert ledger.path_for(tmp_path, "http://h/a/").exists()


def test_a_damaged_ledger_file_is_kept_aside_when_its_target_is_written(tmp_path: Path) -> None:
    path = ledger.path_for(tmp_path, "http://h/phone/")
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    assert ledger.load(tmp_path) == {}
    ledger.note_target(tmp_path, "http://h/phone/", "maria", "main")
    kept = path.with_name(path.name + ledger.DAMAGED_SUFFIX)
    assert kept.read_text(encoding="utf-8") == "{not json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_the_index_agrees_with_same_calendar() -> None:
    urls = ["http://127.0.0.1:5232/u/a/", "https://h.example/u/b%20c", "http://localhost:80/x"]
    index = calendars.CalendarIndex(urls)
    for probe in ["http://127.0.0.1:5232/u/a", "https://H.example:443/u/b c/",
                  "http://127.0.0.1/x/", "http://127.0.0.1:5233/u/a/", "http://h.example/u/d"]:
        assert index.matching(probe) == calendars.matching(probe, urls)


class Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names = self.loads = self.retirements = 0
        real_of, real_load = calendars.CalendarName.of, ledger.load
        real_retire = retirement.retire_abandoned

        def of(url: str) -> calendars.CalendarName:
            self.names += 1
            return real_of(url)

        def load(state_dir: Path) -> ledger.Ledger:
            self.loads += 1
            return real_load(state_dir)

        def retire(*args: Any, **kwargs: Any) -> list[retirement.Retirement]:
            self.retirements += 1
            return real_retire(*args, **kwargs)

        monkeypatch.setattr(calendars.CalendarName, "of", staticmethod(of))
        monkeypatch.setattr(ledger, "load", load)
        monkeypatch.setattr(retirement, "retire_abandoned", retire)


def one_cycle_per_pair(tmp_path: Path, pairs: int, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Two runs over the pairs in this process (every pair, then the clean-up of retired
    targets), as the demo runs them. No account has a password here, so each pair fails at
    once: what is left is the bookkeeping."""
    config = config_of(tmp_path / f"state-{pairs}", pairs)
    rt = runtime.Runtime(config, b"k" * 32)
    for i in range(pairs):
        ledger.note_target(config.service.state_dir, f"http://127.0.0.1:5232/u/old{i}/",
                           f"gone{i}", "main")
    counter = Counter(monkeypatch)
    cycle.run_cycle(rt, config.pairs, NOW)
    cycle.run_cycle(rt, [config.pairs[0]], NOW + timedelta(minutes=5))
    monkeypatch.undo()
    return counter


def test_retired_targets_are_decided_once_per_cycle_not_once_per_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = one_cycle_per_pair(tmp_path, 20, monkeypatch)
    assert counter.retirements == 2  # one per `now`, whatever the number of pairs
    assert counter.loads == 2


def test_the_work_of_a_cycle_grows_linearly_with_the_pairs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = one_cycle_per_pair(tmp_path, 10, monkeypatch)
    large = one_cycle_per_pair(tmp_path, 100, monkeypatch)
    # URL parses per pair stay flat: 10x the pairs is about 10x the parses, not 100x.
    assert large.names <= 12 * small.names, (small.names, large.names)
    assert os.listdir(tmp_path / "state-100" / ledger.LEDGER_DIR)


def test_an_unchanged_sync_state_is_not_written_again(tmp_path: Path) -> None:
    state = sync_state.PairState(fingerprint="f", token="t", last_full=NOW, next_boundary=NOW)
    sync_state.save(tmp_path, "maria", state)
    path = sync_state.path_for(tmp_path, "maria")
    before = path.stat().st_ino
    sync_state.save(tmp_path, "maria", state)  # a quiet cycle: the same state
    assert path.stat().st_ino == before
    sync_state.save(tmp_path, "maria", replace(state, clean=not state.clean))
    assert path.stat().st_ino != before and sync_state.load(tmp_path, "maria") is not None
