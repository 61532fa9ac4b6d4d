"""`python -m bench --smoke`: every part of the benchmark, small, so a bench that no longer runs
(or can no longer see a daemon cycle) fails here. No timing is asserted: figures are the bench's
output, not a test's pass mark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import REPO

pytestmark = pytest.mark.integration


def test_the_smoke_bench_runs_every_part_to_the_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path / "out"),
         "--work-dir", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result_file] = (tmp_path / "out").glob("bench-*.json")
    results = json.loads(result_file.read_text(encoding="utf-8"))
    assert results["failures"] == []
    scenarios = {(row["scenario"], row["tool"]) for row in results["rows"]}
    assert {("b quiet", "sanitizer"), ("b quiet", "vdirsyncer"), ("pairs first", "sanitizer run"),
            ("pairs quiet", "sanitizer run")} <= scenarios
    [daemon] = results["agencies"]
    assert daemon["cycles_seen"] >= 2
    assert daemon["tree_peak"]["rss_mb"] > 0 and daemon["tree_peak"]["processes"] >= 1
    assert daemon["latency"]["missing"] == 0
    assert set(results["server_probes"]) == {"radicale", "xandikos"}
    for by_size in results["server_probes"].values():
        for probe in by_size.values():
            assert probe["getctag_ms"] > 0 and probe["sync_collection_ms"] > 0
