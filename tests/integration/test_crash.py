"""Crashes: `sync` is killed (SIGKILL) at random points and restarted; nothing is lost or doubled.

A first sync of 500 events is killed after delays drawn from a seeded RNG, restarted, killed again,
and finally left to finish; then the phone must hold exactly what the pure engine computes from the
same source, with no duplicate. The same for a cycle that moves and deletes many events (within two
clean cycles). The UID key
is created once per installation, so its creation is killed at every line it executes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from sanitizer.core.model import SanitizedEvent
from sanitizer.core.phone_format import read_back
from sanitizer.engine.reconcile import sync_pair
from sanitizer.service.config import load_config
from tests.integration.test_faults import (
    FOREIGN,
    KEY,
    NOW,
    Bench,
    PhoneState,
    make_bench,
    phone_state,
    sync,
)
from tests.support.harness import Setup, delete, list_objects, put, vevent
from tests.support.memory_store import MemoryCalendar
from tests.support.server_fixtures import FreshCalendars

EVENTS = 500
TRIES = 5


@pytest.fixture
def bench(fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> Bench:
    return make_bench(fresh_calendars, make_setup)


def many_events(n: int, rng: random.Random) -> dict[str, str]:
    """n single events at distinct times over the two weeks."""
    slots = rng.sample([(d, h, m) for d in range(4, 18) for h in range(7, 19)
                        for m in (0, 10, 20, 30, 40, 50)], n)
    return {f"ev-{i}.ics": vevent(f"ev-{i}", f"203003{d:02d}T{h:02d}{m:02d}00Z",
                                  f"203003{d:02d}T{h:02d}{m + 9:02d}00Z", f"Client {i}")
            for i, (d, h, m) in enumerate(slots)}


def put_all(bench: Bench, objects: dict[str, str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: put(bench.server, bench.source + item[0], item[1]),
                      objects.items()))


def expected(bench: Bench, setup: Setup) -> dict[str, SanitizedEvent]:
    """The pure engine on the source as the server holds it, with the setup's pair and key."""
    config = load_config(setup.config_path)
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for href, (_, data) in list_objects(bench.server, bench.source).items():
        source.put_raw(href.rsplit("/", 1)[1], data)
    sync_pair(config.pairs[0], source, target, key=KEY.encode(), zone=config.service.timezone,
              now=datetime.fromisoformat(NOW), workers=1)
    events = {}
    for data in target.objects.values():
        back = read_back(data)
        assert back.uid is not None and back.event is not None
        events[back.uid] = back.event
    return events


def start_sync(setup: Setup) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(setup.environment())
    return subprocess.Popen([sys.executable, "-m", "sanitizer", "sync", "--now", NOW], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def check_invariants(bench: Bench, foreign: dict[str, tuple[str, bytes]],
                     source: dict[str, tuple[str, bytes]], setup: Setup) -> PhoneState:
    state = phone_state(bench.server, bench.target)
    assert state.duplicate_uids == state.duplicate_slots == state.unreadable == 0
    assert state.foreign == foreign
    assert list_objects(bench.server, bench.source) == source
    for path in setup.state_dir.rglob("*.json"):  # written by rename: never half a file
        json.loads(path.read_text(encoding="utf-8"))
    return state


def kill_loop(bench: Bench, setup: Setup, rng: random.Random, longest: float,
              foreign: dict[str, tuple[str, bytes]]) -> list[str]:
    """Start `sync` TRIES times, killing each after a random delay; return what happened."""
    source = list_objects(bench.server, bench.source)
    log = []
    for _ in range(TRIES):
        delay = rng.uniform(0.3, longest)
        proc = start_sync(setup)
        try:
            proc.wait(timeout=delay)
            outcome = f"finished before {delay:.1f}s"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            outcome = f"killed at {delay:.1f}s"
        state = check_invariants(bench, foreign, source, setup)
        log.append(f"{outcome}: {len(state.owned)} entries")
    return log


@pytest.mark.servers("radicale")
def test_a_first_sync_killed_again_and_again_ends_exact(bench: Bench) -> None:
    rng = random.Random(20300304)
    put_all(bench, many_events(EVENTS, rng))
    put(bench.server, bench.target + "own.ics", FOREIGN)
    foreign = phone_state(bench.server, bench.target).foreign
    setup = bench.setup()
    started = time.monotonic()
    log = kill_loop(bench, setup, rng, longest=6.0, foreign=foreign)
    final = sync(setup)
    assert final.code == 0, final.output
    state = check_invariants(bench, foreign, list_objects(bench.server, bench.source), setup)
    assert state.owned == expected(bench, setup)
    assert len(state.owned) == EVENTS
    print(f"\ncrash, first sync of {EVENTS}: {log}; then: {final.stdout.strip()} "
          f"({time.monotonic() - started:.0f}s)")


@pytest.mark.servers("radicale")
def test_a_cycle_of_moves_and_deletions_killed_again_and_again_ends_exact(
        bench: Bench) -> None:
    rng = random.Random(4)
    objects = many_events(200, rng)
    put_all(bench, objects)
    setup = bench.setup()
    assert sync(setup).code == 0
    foreign = phone_state(bench.server, bench.target).foreign
    names = sorted(objects)
    moved = {}
    for name in rng.sample(names, 100):  # five minutes later (no other event starts then)
        text = objects[name]
        start, end = (text.split(f"{prop}:")[1][:16] for prop in ("DTSTART", "DTEND"))
        later = [f"{v[:13]}5{v[14:]}" for v in (start, end)]
        moved[name] = text.replace(start, later[0]).replace(end, later[1])
    put_all(bench, moved)
    gone = rng.sample([n for n in names if n not in moved], 40)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: delete(bench.server, bench.source + name), gone))
    started = time.monotonic()
    log = kill_loop(bench, setup, rng, longest=2.5, foreign=foreign)
    clean = [sync(setup), sync(setup)]
    state = check_invariants(bench, foreign, list_objects(bench.server, bench.source), setup)
    assert state.owned == expected(bench, setup), [c.stdout for c in clean]
    assert len(state.owned) == len(objects) - len(gone)
    print(f"\ncrash, cycle with 100 moves and 40 deletions of 200: {log}; then: "
          f"{[c.stdout.strip() for c in clean]} ({time.monotonic() - started:.0f}s)")


KILL_AT_LINE = """
import os, signal, sys
from pathlib import Path
from sanitizer.service import credentials
target, count = int(sys.argv[2]), 0
def tracer(frame, event, arg):
    global count
    if frame.f_code.co_filename != credentials.__file__:
        return None
    if event == "line":
        count += 1
        if count == target:
            os.kill(os.getpid(), signal.SIGKILL)
    return tracer
sys.settrace(tracer)
key = credentials.uid_key(Path(sys.argv[1]))
sys.settrace(None)
print(key.decode())
"""


def run_key(state_dir: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST") and k != "CREDENTIALS_DIRECTORY"}
    return subprocess.run([sys.executable, "-c", KILL_AT_LINE, str(state_dir), str(kill_at)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_uid_key_survives_a_kill_at_every_line_of_its_creation(tmp_path: Path) -> None:
    killed_at = []
    for line in range(1, 200):
        state_dir = tmp_path / f"state-{line}"
        crashed = run_key(state_dir, line)
        if crashed.returncode == 0:
            break  # the creation ran to its end before reaching this line
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        killed_at.append(line)
        after = run_key(state_dir, 0)
        assert after.returncode == 0, f"killed at line {line}: {after.stderr.strip()[-200:]}"
        again = run_key(state_dir, 0)
        assert again.stdout == after.stdout and len(after.stdout.strip()) >= 32
    assert len(killed_at) >= 5
