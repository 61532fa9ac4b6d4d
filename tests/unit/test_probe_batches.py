"""Which cycles the supervisor probes together (Supervisor.batch): only pairs whose state says
their cycle is a quiet probe unless the source changed, only pairs of the same two accounts in
one worker, at most PROBE_BATCH of them, each worker with its own pairs' config and secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sanitizer.engine import sync_state
from sanitizer.engine.sync_state import PairState
from sanitizer.service import runtime
from sanitizer.service.config import Config, parse_config
from sanitizer.service.supervise import PROBE_BATCH, Supervisor
from sanitizer.service.worker import CYCLE, PROBE, Job

NOW = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
KEY = b"k" * 32


def config_of(state_dir: Path, mains: int) -> Config:
    pairs: list[dict[str, Any]] = [
        {"name": f"m{i}", "account": "main", "source": f"http://127.0.0.1:5232/u/src{i}/",
         "target": f"http://127.0.0.1:5232/u/dst{i}/"} for i in range(mains)]
    pairs += [{"name": f"o{i}", "account": "other", "source": f"http://127.0.0.1:5233/o/s{i}/",
               "target": f"http://127.0.0.1:5233/o/d{i}/"} for i in range(2)]
    pairs.append({"name": "mixed", "source_account": "main", "target_account": "other",
                  "source": "http://127.0.0.1:5232/u/src-x/",
                  "target": "http://127.0.0.1:5233/o/d-x/"})
    return parse_config({
        "service": {"state_dir": str(state_dir), "timezone": "UTC"},
        "accounts": {"main": {"url": "http://127.0.0.1:5232/", "username": "u"},
                     "other": {"url": "http://127.0.0.1:5233/", "username": "o"}},
        "pairs": pairs})


def quiet_state(config: Config, name: str, **changes: Any) -> PairState:
    pair = config.pair(name)
    fields: dict[str, Any] = {
        "fingerprint": sync_state.fingerprint(pair, config.service.timezone, KEY),
        "token": "tok", "last_full": NOW - timedelta(minutes=10),
        "next_boundary": NOW + timedelta(days=1)}
    fields.update(changes)
    return PairState(**fields)


def supervisor(config: Config) -> Supervisor:
    secrets = {"main": "pw-main", "other": "pw-other"}
    return Supervisor(runtime.Runtime(config, KEY, secrets=secrets), pool=None)  # type: ignore[arg-type]


def jobs_of(boss: Supervisor, config: Config, **options: bool) -> list[Job]:
    return [boss.job(CYCLE, pair, NOW, **options) for pair in config.pairs]


def test_quiet_pairs_of_the_same_accounts_are_probed_together(tmp_path: Path) -> None:
    config = config_of(tmp_path, PROBE_BATCH + 5)
    for pair in config.pairs:
        sync_state.save(tmp_path, pair.name, quiet_state(config, pair.name))
    boss = supervisor(config)
    jobs = boss.batch(jobs_of(boss, config))
    probes = [job for job in jobs if job.kind == PROBE]
    cycles = sorted(job.pair or "" for job in jobs if job.kind == CYCLE)
    assert [len(job.probes) for job in probes] == [PROBE_BATCH, 5, 2]
    assert cycles == ["mixed"]  # alone with its two accounts: a probe job would gain nothing
    for job in probes:
        assert tuple(p.name for p in job.config.pairs) == job.probes  # its pairs' config only
        accounts = {a for p in job.config.pairs for a in (p.source_account.name,
                                                         p.target_account.name)}
        assert set(job.secrets) == accounts == set(job.config.accounts)
        assert job.pair is None and not job.dry_run and not job.force_full


def test_only_cycles_that_are_a_quiet_probe_are_batched(tmp_path: Path) -> None:
    config = config_of(tmp_path, 6)
    states = {
        "m0": quiet_state(config, "m0"),
        "m1": quiet_state(config, "m1"),
        "m2": quiet_state(config, "m2", clean=False),
        "m3": quiet_state(config, "m3", last_full=NOW - timedelta(hours=2)),  # full one due
        "m4": quiet_state(config, "m4", fingerprint="another config"),
    }  # m5 has no state yet: its first cycle is a full one
    for name, state in states.items():
        sync_state.save(tmp_path, name, state)
    boss = supervisor(config)
    jobs = boss.batch(jobs_of(boss, config))
    assert [job.probes for job in jobs if job.kind == PROBE] == [("m0", "m1")]
    assert {job.pair for job in jobs if job.kind == CYCLE} == {
        "m2", "m3", "m4", "m5", "o0", "o1", "mixed"}
    for options in ({"dry_run": True}, {"force_full": True}):
        assert all(job.kind == CYCLE for job in boss.batch(jobs_of(boss, config, **options)))
