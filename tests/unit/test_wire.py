"""The one HTTP client's bounds: a server that trickles its response headers a byte at a time,
inside any read timeout, is cut off at the request's deadline in the main thread; a timer that
was set before (a test runner's) is put back."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sanitizer.stores import wire


@pytest.fixture
def trickler() -> Iterator[str]:
    """A server that answers every connection with headers a byte every 0.1 s, forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if stop.wait(0.1):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(2)
    listener.close()


def test_trickled_headers_end_at_the_deadline(trickler: str) -> None:
    http = wire.session()
    started = time.monotonic()
    deadline = started + 1.5
    with pytest.raises(wire.TooSlow), wire.alarm(deadline):  # a read timeout of 5 s never fires
        response = wire.send(http, "GET", trickler, timeout=5.0, deadline=started + 30,
                             verify=True)
        wire.read_capped(response, 1024, started + 30)
    assert 1.4 < time.monotonic() - started < 3.0
    http.close()


def test_a_timer_set_before_is_put_back() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)
        with wire.alarm(time.monotonic() + 5.0):  # due after the runner's: left alone
            pass
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0.3
        signal.setitimer(signal.ITIMER_REAL, 3.0)
        with wire.alarm(time.monotonic() + 0.3):  # due first: ours, then theirs again
            time.sleep(0.1)
        assert 2.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 3.0
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        time.sleep(0.4)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_off_the_main_thread_it_does_nothing() -> None:
    seen: list[float] = []
    before = signal.getitimer(signal.ITIMER_REAL)[0]

    def other() -> None:
        started = time.monotonic()
        with wire.alarm(started + 0.05):  # the worker's own deadline bounds this thread
            time.sleep(0.2)
        seen.append(time.monotonic() - started)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert len(seen) == 1 and seen[0] >= 0.2
    assert abs(signal.getitimer(signal.ITIMER_REAL)[0] - before) < 1.0  # untouched
