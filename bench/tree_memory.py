"""Peak memory of the whole process tree of `run` (the daemon and every process under it, RSS
summed from /proc every 20 ms) over its first cycle, against the worst answers a server may send.

Scenarios: two-graph-pairs (two Microsoft 365 pairs whose Graph answers three delta pages of
about 15 MiB each, every field of every event, $select and the page size ignored, made of small JSON
objects: 500 attendees per event) and two-caldav-pairs
(bench.hostile_memory's two pairs, each answer just under the 20 MiB cap).
Usage: .venv/bin/python -m bench.tree_memory [SCENARIO...]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests package, when run as a script

MIB = 1024 * 1024
PAGE_BYTES = 15 * MIB + 300 * 1024  # each delta page, as in the attack
PAGES = 3  # delta pages per pair
EVENT_BYTES = 500 * 126 + 3000  # an event with 500 attendees, as JSON


def tree_rss(root: int) -> tuple[int, int]:
    """Bytes of (RSS, PSS) of `root` and all its descendants, now: RSS counts pages shared
    between them (libraries, the fork server's heap) once per process, PSS splits them."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parent = int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(parent, []).append(int(entry))
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, shared, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        shared += _pss(pid)
        todo += children.get(pid, [])
    return total, shared


def _pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    line = next((x for x in text.splitlines() if x.startswith("Pss:")), "Pss: 0 kB")
    return int(line.split()[1]) * 1024


def serve_graph() -> None:
    """A Graph simulator in this process that ignores $select and the page size."""
    from tests.support import graph_routes  # noqa: PLC0415
    from tests.support.graph_sim import PHONE, GraphSim  # noqa: PLC0415

    graph_routes._Graph.shown_event = lambda self, event: event  # type: ignore[method-assign]
    paged = graph_routes._Graph.page

    def page(self: Any, items: list[dict[str, Any]], token: str) -> Any:
        headers = self.headers  # the client's odata.maxpagesize is ignored
        self.headers = _NoPrefer(headers)
        try:
            return paged(self, items, token)
        finally:
            self.headers = headers

    graph_routes._Graph.page = page  # type: ignore[method-assign]
    sim = GraphSim(page_size=PAGE_BYTES // EVENT_BYTES).start()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    sim.add_calendar(PHONE, "Calendar")
    for name in ("maria", "rosa"):  # the phone calendars, as `create-target` makes them
        sim.add_calendar(PHONE, f"Phone-{name}")
    for user in ("maria@agency.org", "rosa@agency.org"):
        calendar = sim.add_calendar(user, "Calendar")
        used, i = 0, 0
        attendee = {"type": "required", "status": {"response": "none", "time": "0"},
                    "emailAddress": {"name": "a", "address": "a@b"}}
        while used < PAGES * PAGE_BYTES:  # small JSON objects: each costs ten times its size
            sim.add_event(calendar, start + timedelta(minutes=i), start + timedelta(minutes=i + 30),
                          subject=f"Client {i}", attendees=[attendee] * 500)
            used += EVENT_BYTES
            i += 1
    print(sim.base, sim.graph_url, flush=True)
    time.sleep(3600)


class _NoPrefer:
    def __init__(self, headers: Any) -> None:
        self.headers = headers

    def get_all(self, name: str, default: Any = None) -> Any:
        return default if name.lower() == "prefer" else self.headers.get_all(name, default)


def graph_config(root: Path, base: str, graph_url: str) -> tuple[Path, dict[str, str]]:
    from tests.support.graph_sim import CLIENT_ID, PHONE, SECRET, TENANT  # noqa: PLC0415

    state, credentials = root / "state", root / "credentials"
    credentials.mkdir(parents=True, mode=0o700)
    (credentials / "graph-app").write_text(SECRET, encoding="utf-8")
    (credentials / "uid-key").write_text(os.urandom(32).hex(), encoding="utf-8")
    text = (f'[service]\nstate_dir = "{state}"\ninterval = "1h"\n\n[accounts.agency]\n'
            f'kind = "microsoft365"\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            f'client_credential = "graph-app"\ngraph_url = "{graph_url}"\n'
            f'authority = "{base}/"\n')
    for name, user in (("maria", "maria@agency.org"), ("rosa", "rosa@agency.org")):
        text += (f'\n[[pairs]]\nname = "{name}"\naccount = "agency"\n'
                 f'source = "{user}/Calendar"\ntarget = "{PHONE}/Phone-{name}"\n')
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path, {"CALENDAR_SANITIZER_CONFIG": str(path), "CREDENTIALS_DIRECTORY":
                  str(credentials)}


def peak(env: dict[str, str], state: Path, pairs: int,
         limit: float = 300.0) -> tuple[int, int, int, str]:
    """(peak tree RSS, peak tree PSS, peak RSS of the daemon alone, each pair's result) over
    the first cycle of `run`."""
    log = state.parent / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sanitizer", "run"], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    top = pss = alone = 0
    end = time.monotonic() + limit
    status = state / "status.json"
    try:
        while time.monotonic() < end and proc.poll() is None:
            now_rss, now_pss = tree_rss(proc.pid)
            top, pss = max(top, now_rss), max(pss, now_pss)
            alone = max(alone, tree_rss_of(proc.pid))
            if status.exists() and status.read_text().count('"time"') >= pairs:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    results = json.loads(status.read_text()) if status.exists() else {}
    said = ", ".join(f"{name}: {'ok' if r.get('ok') else r.get('error')}"
                     for name, r in sorted(results.items()) if isinstance(r, dict))
    if not said:
        said = "no result: " + " | ".join(log.read_text().splitlines()[-3:])
    return top, pss, alone, said


def tree_rss_of(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in text.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) * 1024


def measure_graph() -> None:
    server = subprocess.Popen([sys.executable, "-m", "bench.tree_memory", "serve-graph"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None
    base, graph_url = server.stdout.readline().split()
    try:
        with tempfile.TemporaryDirectory() as root:
            _, extra = graph_config(Path(root), base, graph_url)
            top, pss, alone, said = peak({**os.environ, **extra}, Path(root) / "state", 2)
    finally:
        server.kill()
        server.wait()
    report("two-graph-pairs", top, pss, alone, said)


def measure_caldav() -> None:
    from bench.hostile_memory import Listening  # noqa: PLC0415
    from tests.support.hostile_server import configure  # noqa: PLC0415

    server = subprocess.Popen([sys.executable, "-m", "bench.hostile_memory", "serve",
                               "two-pairs"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None
    url = server.stdout.readline().split()[0]
    try:
        with tempfile.TemporaryDirectory() as root:
            setup = configure(Path(root), Listening(url), service='interval = "1h"\n',
                              pairs=("p", "q"))
            top, pss, alone, said = peak({**os.environ, **setup.environment()},
                                         setup.state_dir, 2)
    finally:
        server.kill()
        server.wait()
    report("two-caldav-pairs", top, pss, alone, said)


def report(name: str, top: int, pss: int, alone: int, said: str) -> None:
    print(f"{name:17} run: peak tree RSS {top / MIB:.0f} MiB, PSS {pss / MIB:.0f} MiB "
          f"(the first process alone {alone / MIB:.0f} MiB); {said}", flush=True)


SCENARIOS = {"two-graph-pairs": measure_graph, "two-caldav-pairs": measure_caldav}

if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-graph"]:
        serve_graph()
    else:
        for name in sys.argv[1:] or SCENARIOS:
            SCENARIOS[name]()
