"""Peak memory of `sync` and of one cycle of `run` over the largest answers a server may send.

A HostileServer (tests/hostile_server.py) in this process answers with calendars built to be as
expensive as the answer cap allows; the CLI runs as a child process and its peak RSS is read from
wait4(). Usage: .venv/bin/python -m bench.hostile_memory
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests package, when run as a script

from sanitizer.stores.caldav.http import ANSWER_CAP, MIB  # noqa: E402
from tests.support.hostile_server import HostileServer, configure  # noqa: E402

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def event(uid: str, day: int, minute: int, description: int) -> bytes:
    """An appointment `day` days from today, in the window of both `sync` and `run`."""
    begin = TODAY + timedelta(days=day, hours=8, minutes=minute)
    start, end = f"{begin:%Y%m%dT%H%M%SZ}", f"{begin + timedelta(hours=1):%Y%m%dT%H%M%SZ}"
    text = "DESCRIPTION:" + "d" * description + "\r\n" if description else ""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:Client {uid}\r\n{text}END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def fill(objects: dict[str, bytes], make: Callable[[int], bytes], budget: int) -> None:
    """Objects from make(i) until their listing would pass `budget` bytes."""
    used, i = 0, 0
    while True:
        data = make(i)
        used += len(data) + 300  # the XML around each object
        if used > budget:
            return
        objects[f"o{i}.ics"] = data
        i += 1


def big_objects(server: HostileServer) -> None:
    """Both answers just under the cap, of objects of 1 MiB each (the parser's cap)."""
    fill(server.calendars["/casework/"],
         lambda i: event(f"big-{i}", 1 + i % 9, i % 480, MIB - 400), ANSWER_CAP - MIB)
    fill(server.calendars["/phone/"],
         lambda i: event(f"foreign-{i}", 1 + i % 9, i % 480, MIB - 400), ANSWER_CAP - MIB)


def many_small(server: HostileServer) -> None:
    """The source answer just under the cap, of small appointments, all in the window."""
    fill(server.calendars["/casework/"],
         lambda i: event(f"small-{i}", 1 + i % 9, i % 480, 1500), ANSWER_CAP - MIB)


def two_pairs(server: HostileServer) -> None:
    """Two pairs, each source like many_small and each phone calendar as full of small foreign
    entries: the daemon runs them side by side."""
    many_small(server)
    fill(server.calendars["/phone/"],
         lambda i: event(f"foreign-{i}", 1 + i % 9, i % 480, 1500), ANSWER_CAP - MIB)
    server.calendar("/q-casework/", dict(server.calendars["/casework/"]))
    server.calendar("/q-phone/", dict(server.calendars["/phone/"]))


def serve(kind: str) -> None:
    """The server, in its own process: a child forked from a large parent would count the
    parent's pages in its peak RSS."""
    with HostileServer() as server:
        server.calendar("/casework/")
        server.calendar("/phone/")
        SCENARIOS[kind](server)
        size = sum(len(d) for d in server.calendars["/casework/"].values())
        print(server.url, len(server.calendars["/casework/"]), f"{size / MIB:.1f}", flush=True)
        time.sleep(3600)


def peak_kib(args: list[str], env: dict[str, str], until: Callable[[], bool] | None) -> int:
    """The child's peak RSS; with `until`, SIGTERM once it is true (one cycle of `run`)."""
    proc = subprocess.Popen([sys.executable, "-m", "sanitizer", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if until is not None:
        while not until():
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(proc.pid, 0)
    return int(usage.ru_maxrss)


def measure(kind: str) -> None:
    for command in ("sync", "run"):
        server = subprocess.Popen([sys.executable, "-m", "bench.hostile_memory", "serve", kind],
                                  stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert server.stdout is not None
        url, count, size = server.stdout.readline().split()
        try:
            with tempfile.TemporaryDirectory() as root:
                pairs = ("p", "q") if kind == "two-pairs" else ("p",)
                setup = configure(Path(root), Listening(url), service='interval = "1h"\n',
                                  pairs=pairs)
                env = {**os.environ, **setup.environment()}
                status = setup.state_dir / "status.json"
                kib = peak_kib([command], env, status.exists if command == "run" else None)
        finally:
            server.kill()
            server.wait()
        print(f"{kind:12} {command:4} source objects={count} ({size} MiB) "
              f"peak RSS {kib / 1024:.0f} MiB", flush=True)


class Listening(HostileServer):
    """A server running in another process, known by its URL."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    @property
    def url(self) -> str:
        return self._url


SCENARIOS = {"big-objects": big_objects, "many-small": many_small, "two-pairs": two_pairs}

if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
    else:
        for name in sys.argv[1:] or SCENARIOS:
            measure(name)
