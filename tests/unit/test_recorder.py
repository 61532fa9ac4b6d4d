"""The supervisor's bookkeeping per finished cycle does not grow with the number of pairs: the
status file and the metrics are written for all the pairs that finished within a second, and a
worker for one pair reads nothing about the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sanitizer.engine import ledger
from sanitizer.engine.report import PairReport
from sanitizer.service import metrics, recorder, runtime, status
from sanitizer.stores.caldav.connection import DavConnection
from tests.unit.test_scale import config_of

NOW = datetime.now(UTC).replace(microsecond=0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writes_of(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files written through files.write_json, as they are written."""
    written: list[str] = []
    for module in (status, metrics):
        real = module.write_json

        def spy(path: Path, data: object, *, compact: bool = False, real=real) -> None:  # type: ignore[no-untyped-def]
            written.append(path.name)
            real(path, data, compact=compact)

        monkeypatch.setattr(module, "write_json", spy)
    return written


def test_many_finished_cycles_are_one_write_of_each_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    prom = tmp_path / "metrics.prom"
    notes = recorder.Recorder(tmp_path, prom, every=1.0, clock=clock)
    written = writes_of(monkeypatch)
    assert notes.due_in() is None and notes.wait(60.0) == 60.0
    for i in range(200):
        notes.note(status.Noted(PairReport(f"p{i}"), NOW, None, f"http://h/p{i}/"), 0.5)
        clock.now += 0.001
        notes.flush()  # not due yet: nothing written
    assert written == [] and notes.wait(60.0) == pytest.approx(0.8)
    clock.now += 1.0
    notes.flush()
    assert written == [status.STATUS_FILE, metrics.METRICS_STATE]
    recorded = status.read_status(tmp_path)
    assert len(recorded) == 200 and recorded["p7"]["success_target"] == "http://h/p7/"
    assert "calendar_sanitizer_cycle_duration_seconds{pair=\"p199\"} 0.5" in prom.read_text()
    notes.flush(force=True)  # nothing waits: nothing written
    assert len(written) == 2 and notes.due_in() is None


def test_a_write_merges_with_what_another_command_wrote_meanwhile(tmp_path: Path) -> None:
    clock = Clock()
    notes = recorder.Recorder(tmp_path, None, clock=clock)
    status.record(tmp_path, [PairReport("ana")], NOW - timedelta(hours=1))
    notes.note(status.Noted(PairReport("maria"), NOW, as_of=NOW + timedelta(days=3)))
    status.clear(tmp_path, "ana", "wiped", NOW)  # `wipe ana` while maria's note waits
    notes.flush(force=True)
    recorded = status.read_status(tmp_path)
    assert recorded["ana"]["cleared"]["why"] == "wiped"
    assert recorded["maria"]["as_of"] == (NOW + timedelta(days=3)).isoformat()
    assert recorded["maria"]["time"] == NOW.isoformat()


def test_an_unwritable_status_file_is_tried_again(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be", encoding="utf-8")
    notes = recorder.Recorder(blocked, None, clock=clock)
    notes.note(status.Noted(PairReport("maria"), NOW))
    notes.flush(force=True)
    assert "cannot write the status file" in caplog.text
    assert notes.due_in() == pytest.approx(1.0)  # kept, and tried again a second later
    blocked.unlink()
    blocked.mkdir()
    clock.now += 1.0
    notes.flush()
    assert json.loads((blocked / status.STATUS_FILE).read_text())["maria"]["ok"] is True


def test_a_worker_for_one_pair_reads_no_other_pairs_calendars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_of(tmp_path, 50)
    for i in range(50):
        ledger.note_target(tmp_path, f"http://127.0.0.1:5232/u/old{i}/", f"gone{i}", "main")
    loads: list[Path] = []
    real = ledger.load

    def load(state_dir: Path) -> ledger.Ledger:
        loads.append(state_dir)
        return real(state_dir)

    monkeypatch.setattr(ledger, "load", load)
    pair = config.pair("p7")
    worker = runtime.Runtime(config, b"k" * 32, secrets={"main": "pw"})
    worker.connect([pair])
    connection = worker.connections["main"]
    assert isinstance(connection, DavConnection)
    assert set(connection.transport.credentials.bases) == {pair.source_url, pair.target_url}
    assert loads == []
    everything = runtime.Runtime(config, b"k" * 32, secrets={"main": "pw"})
    everything.connect()  # the retired targets' clean-up: every calendar the ledger knows
    assert len(loads) == 1
    bases = everything.connections["main"].transport.credentials.bases  # type: ignore[union-attr]
    assert "http://127.0.0.1:5232/u/old3/" in bases
