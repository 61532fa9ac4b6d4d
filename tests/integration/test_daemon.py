"""`calendar-sanitizer run` as systemd runs it: a real process, real Radicale, real signals, and
sd_notify datagrams read from a socket the test owns."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sanitizer.engine.report import PairReport
from sanitizer.service import status
from sanitizer.service.daemon import backoff, backs_off, jitter
from tests.support.daemon_process import Process
from tests.support.faultproxy import FaultProxy
from tests.support.harness import list_objects, put, vevent

pytestmark = pytest.mark.integration


def soon(days: int = 1, hour: int = 10) -> tuple[str, str]:
    """An hour-long slot inside the default window (the daemon syncs at the real time)."""
    start = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0,
                                                               microsecond=0)
    end = start + timedelta(hours=1)
    return f"{start:%Y%m%dT%H%M%SZ}", f"{end:%Y%m%dT%H%M%SZ}"


class NotifySocket:
    """An AF_UNIX datagram socket like systemd's; collects every message with its arrival time."""

    def __init__(self, abstract: bool = False) -> None:
        self.messages: list[tuple[float, str]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"csan-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self._dir = tempfile.mkdtemp(prefix="csan-")  # short: sun_path is 108 bytes
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def fields(self) -> list[tuple[float, str]]:
        """Every `KEY=value` line received, in order."""
        return [(t, line) for t, message in list(self.messages) for line in message.splitlines()]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20,
                 after: float = 0.0) -> float:
        """Arrival time of the first field (received after `after`) that matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, line in self.fields():
                if arrived >= after and predicate(line):
                    return arrived
            time.sleep(0.02)
        raise AssertionError(f"no matching notify message; got {[m for _, m in self.fields()]}")

    def wait_for_pings(self, count: int, after: float, timeout: float = 20) -> list[float]:
        """Arrival times of WATCHDOG=1 pings after `after`, once there are `count` of them."""
        self.wait_for(lambda _: len(self.pings(after)) >= count, timeout)
        return self.pings(after)

    def pings(self, after: float) -> list[float]:
        return [t for t, f in self.fields() if f == "WATCHDOG=1" and t >= after]

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(1)


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


INTERVAL = 'interval = "5s"\n'
WATCHDOG_PERIOD = 1.0  # seconds; the daemon pings every half period, so a gap of a whole period
# (what systemd would kill the service for) leaves half a second for a busy machine's scheduling


def test_ready_status_watchdog_stop(calendars, make_setup, processes, notify) -> None:
    """READY=1 after start-up, STATUS= per cycle (counts), WATCHDOG=1 at least twice per period,
    a failing pair backs off alone, and SIGTERM exits 0 with STOPPING=1."""
    server = calendars.server
    good, bad = calendars.new("work"), calendars.new("work")
    put(server, good + "a.ics", vevent("a", *soon(), "Jane Doe"))
    missing = bad.rstrip("/") + "-missing/"
    setup = make_setup(server, [("good", good, good.replace("/work", "/phone")),
                                ("bad", missing, bad.replace("/work", "/phone"))],
                       service_extra=INTERVAL)
    process = Process(setup, notify.address, WATCHDOG_USEC=str(int(WATCHDOG_PERIOD * 1e6)))
    processes.append(process)
    ready = notify.wait_for(lambda f: f == "READY=1")
    print(f"\nstart-to-READY: {ready - process.started:.2f}s")
    status_at = notify.wait_for(lambda f: f.startswith("STATUS=cycle 1:"))
    line = next(f for _, f in notify.fields() if f.startswith("STATUS=cycle 1:"))
    assert "1 ok, 1 failed, 0 paused" in line and "created=1" in line, line
    assert len(list_objects(server, good.replace("/work", "/phone"))) == 1
    process.wait_for_line("pair bad: failed 1 time(s) in a row")
    pings = notify.wait_for_pings(4, after=status_at)  # the daemon pings every half period
    assert max(b - a for a, b in itertools.pairwise(pings)) < WATCHDOG_PERIOD  # none missed
    state = status.read_status(setup.state_dir)
    assert state["good"]["failures"] == 0 and state["bad"]["failures"] == 1
    assert state["bad"]["error"] == "source-not-found"
    shown = setup.run("status")
    assert "daemon: running (pid" in shown.stdout
    assert "failures_in_a_row=1" in shown.stdout
    code, took = process.stop()
    assert code == 0 and took < 10
    notify.wait_for(lambda f: f == "STOPPING=1", timeout=2)
    assert "Jane" not in "\n".join(process.lines)
    assert not any(line.startswith("Traceback") for line in process.lines)


def test_second_instance_exits_75(calendars, make_setup, processes) -> None:
    """The lock in state_dir: a second `run` stops at once with one line."""
    work = calendars.new("work")
    setup = make_setup(calendars.server, [("p", work, work.replace("/work", "/phone"))],
                       service_extra=INTERVAL)
    notify = NotifySocket(abstract=True)  # systemd's "@name" form
    try:
        first = Process(setup, notify.address)
        processes.append(first)
        notify.wait_for(lambda f: f == "READY=1")
    finally:
        notify.close()
    second = setup.run_process("run", timeout=30)
    assert second.code == 75, second.output
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "already running" in lines[0] and str(first.proc.pid) in lines[0]
    code, _ = first.stop()
    assert code == 0


def test_sighup_reload(calendars, make_setup, processes, notify) -> None:
    """A broken config is refused (problems logged one per line, old config keeps running);
    a good one takes effect at once."""
    server = calendars.server
    work = calendars.new("work")
    phone = work.replace("/work", "/phone")
    put(server, work + "a.ics", vevent("a", *soon(), "Jane Doe"))
    setup = make_setup(server, [("p", work, phone)], service_extra=INTERVAL)
    process = Process(setup, notify.address)
    processes.append(process)
    notify.wait_for(lambda f: f.startswith("STATUS=cycle 1:"))
    good_text = setup.config_path.read_text()

    broken = good_text.replace(INTERVAL, 'interval = "soon"\ncolour = "blue"\n')
    setup.config_path.write_text(broken)
    sent = time.monotonic()
    process.signal(signal.SIGHUP)
    process.wait_for_line("reload refused")
    process.wait_for_line("reload: config error: service.interval")
    process.wait_for_line("reload: config error: service.colour: unknown key")
    notify.wait_for(lambda f: f == "RELOADING=1", after=sent)
    notify.wait_for(lambda f: f == "READY=1", after=sent)
    assert process.proc.poll() is None

    setup.config_path.write_text(good_text.replace('name = "p"', 'name = "p"\ntitle = "Busy"'))
    process.signal(signal.SIGHUP)
    process.wait_for_line("reloaded: 1 pair(s)")
    process.wait_for_line("cycle 2: 1 ok")  # the cycle right after the reload
    assert "updated=1" in process.lines[-1]
    data = b"".join(d for _, d in list_objects(server, phone).values())
    assert b"SUMMARY:Busy" in data and b"Jane" not in data
    code, _ = process.stop()
    assert code == 0


def test_wipe_while_running_then_resume(calendars, make_setup, processes, notify) -> None:
    """wipe works next to the daemon; the daemon skips the paused pair until resume."""
    server = calendars.server
    work = calendars.new("work")
    phone = work.replace("/work", "/phone")
    put(server, work + "a.ics", vevent("a", *soon(), "Jane Doe"))
    put(server, work + "b.ics", vevent("b", *soon(2), "John Roe"))
    setup = make_setup(server, [("p", work, phone)], service_extra=INTERVAL)
    process = Process(setup, notify.address)
    processes.append(process)
    notify.wait_for(lambda f: f.startswith("STATUS=cycle 1:"))
    assert len(list_objects(server, phone)) == 2

    wiped = setup.run("wipe", "p", "--yes")
    assert wiped.code == 0, wiped.output
    assert "deleted=2" in wiped.stdout
    process.signal(signal.SIGHUP)  # reload = a cycle now
    process.wait_for_line("pair p: paused")
    process.wait_for_line("0 ok, 0 failed, 1 paused")
    assert list_objects(server, phone) == {}

    assert setup.run("resume", "p").code == 0
    process.signal(signal.SIGHUP)
    process.wait_for_line("cycle 3: 1 ok, 0 failed, 0 paused")
    assert "created=2" in process.lines[-1]
    assert len(list_objects(server, phone)) == 2
    code, _ = process.stop()
    assert code == 0


def test_sigterm_during_a_hanging_request_exits_0_within_10s(calendars, make_setup, processes,
                                                              notify) -> None:
    """The request in flight does not answer: the daemon waits its grace period, then leaves."""
    server = calendars.server
    work = calendars.new("work")
    with FaultProxy(server.url, hang_seconds=30) as proxy:
        proxy.force("timeout", count=5, methods={"REPORT"})
        work = proxy.url + work.removeprefix(server.url)
        setup = make_setup(server, [("p", work, work.replace("/work", "/phone"))],
                           url=proxy.url, service_extra=INTERVAL + 'timeout = "60s"\n')
        process = Process(setup, notify.address)
        processes.append(process)
        notify.wait_for(lambda f: f == "READY=1")
        proxy.wait_for_requests("REPORT")  # the first REPORT is now hanging
        code, took = process.stop(timeout=12)
    assert code == 0
    assert took < 10, took
    assert any("stopping anyway" in line for line in process.lines)


def test_sighup_during_a_cycle_is_not_lost(calendars, make_setup, processes, notify) -> None:
    """A reload asked for while a pair is in flight runs right after the cycle, not an interval
    later."""
    server = calendars.server
    work = calendars.new("work")
    with FaultProxy(server.url, slow_seconds=1.5) as proxy:
        proxy.force("slow", count=2)
        work = proxy.url + work.removeprefix(server.url)
        setup = make_setup(server, [("p", work, work.replace("/work", "/phone"))],
                           url=proxy.url, service_extra='interval = "10m"\n')
        proxy.reset_stats()  # the setup's MKCALENDAR went through the proxy: count the daemon's
        process = Process(setup, notify.address)
        processes.append(process)
        notify.wait_for(lambda f: f == "READY=1")
        proxy.wait_for_requests()  # the daemon's first request is being slowed down
        process.signal(signal.SIGHUP)
        process.wait_for_line("reloaded: 1 pair(s)", timeout=10)
        process.wait_for_line("cycle 2:", timeout=10)
        code, _ = process.stop()
    assert code == 0


def test_missing_password_stops_start_up_with_78(calendars, make_setup) -> None:
    work = calendars.new("work")
    setup = make_setup(calendars.server, [("p", work, work.replace("/work", "/phone"))])
    (setup.credentials / "main").unlink()
    result = setup.run_process("run", timeout=30)
    assert result.code == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "account main" in lines[0] and "systemd-creds encrypt --name=main" in lines[0]


def test_backoff_doubles_per_pair_up_to_an_hour() -> None:
    five = timedelta(minutes=5)
    assert [backoff(five, n) for n in range(5)] == [
        timedelta(0), five, 2 * five, 4 * five, 8 * five]
    assert backoff(five, 10) == timedelta(hours=1)
    assert backoff(timedelta(hours=2), 3) == timedelta(hours=2)  # never below one interval
    assert jitter(300) == 30 and jitter(5) == 1 and jitter(3600) == 30


def test_what_backs_off() -> None:
    ok = PairReport("p")
    down = PairReport("p", error="REPORT x: connection-failed", error_code="connection-failed")
    conflict = PairReport("p")
    conflict.write_errors["conflict"] += 1
    rejected = PairReport("p")
    rejected.write_errors["insufficient-storage"] += 1
    held = PairReport("p", held_back=3)
    assert [backs_off(r) for r in (ok, down, conflict, rejected, held)] == [
        False, True, False, True, False]


def test_state_dir_is_private(calendars, make_setup, processes, notify) -> None:
    work = calendars.new("work")
    setup = make_setup(calendars.server, [("p", work, work.replace("/work", "/phone"))],
                       service_extra=INTERVAL)
    process = Process(setup, notify.address)
    processes.append(process)
    notify.wait_for(lambda f: f.startswith("STATUS=cycle 1:"))
    process.stop()
    for path in [setup.state_dir, *setup.state_dir.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, (path, oct(mode))
    assert (Path(setup.state_dir) / "lock").exists()


def test_a_slow_pair_delays_neither_the_watchdog_nor_the_other_pairs(tmp_path, processes,
                                                                      notify) -> None:
    """One server trickles its answer for a minute: the other pair is synced at once, and the
    watchdog is pinged every half period throughout."""
    from tests.support.hostile_server import XML, HostileServer, configure  # noqa: PLC0415

    def trickle() -> Iterator[bytes]:
        yield b'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'
        for _ in range(120):
            time.sleep(0.5)
            yield b" "

    start, end = soon()
    with HostileServer() as server:
        server.calendar("/slow-casework/")
        server.calendar("/slow-phone/")
        server.calendar("/casework/", {"a.ics": vevent("a", start, end, "Jane Doe").encode()})
        server.calendar("/phone/")
        server.script("REPORT", "/slow-casework/", lambda seen: (207, XML, trickle()))
        setup = configure(tmp_path, server, service=INTERVAL + 'timeout = "30s"\n',
                          pairs=("slow", "p"))
        process = Process(setup, notify.address, WATCHDOG_USEC=str(int(WATCHDOG_PERIOD * 1e6)))
        processes.append(process)
        ready = notify.wait_for(lambda f: f == "READY=1")
        deadline = time.monotonic() + 8
        while not server.calendars["/phone/"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.calendars["/phone/"], "the other pair waited for the slow one"
        pings = notify.wait_for_pings(8, after=ready)  # while the slow pair still trickles
        assert max(b - a for a, b in itertools.pairwise(pings)) < WATCHDOG_PERIOD
        assert "Jane" not in "\n".join(process.lines)
