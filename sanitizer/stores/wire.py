"""The one HTTP client for everything that leaves the process: CalDAV, Microsoft Graph, the
Microsoft authority and Google's token endpoint.

One stack (niquests over urllib3-future, which caldav brings anyway) and one policy, so that a
bound added here holds for every request:

- the session trusts nothing from the environment: no proxy, CA bundle or .netrc (`trust_env`
  off), no cookies, no HTTP/3 or OCSP side channels: the configured server, verified as
  configured, is the only peer;
- no redirect is ever followed (`send` asks for none; a 3xx is the caller's error);
- the connect and read timeouts of a request never reach past its deadline (`send` computes them
  from what is left), and the answer is read as it streams against a size cap and the same
  wall-clock deadline (`read_capped`, `chunks`).

A server that trickles its response headers a byte at a time defeats any per-read timeout. In
the main thread (where a cycle's reads run) `alarm` raises TooSlow at the request's deadline
whatever the thread is blocked in, from a real-time interval timer; in other threads (a
cycle's parallel writes) the bound is the worker process itself, which the supervisor kills at
its deadline (service/pool.py).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

CHUNK = 64 * 1024
MIN_WAIT = 0.01


class TooLarge(Exception):
    """The answer is larger than its cap."""


class TooSlow(Exception):
    """The answer was still arriving at its deadline."""


def session() -> Any:
    """A new session with the project's policy (sessions are pooled by their callers)."""
    import niquests  # noqa: PLC0415 - heavy; only when talking to a server

    made = niquests.Session(disable_http3=True, revocation_configuration=None,
                            allow_incoming_cookies=False)
    made.trust_env = False
    return made


def timeouts(timeout: float, deadline: float) -> tuple[float, float]:
    """(connect, read) timeouts for a request: each at most `timeout`, neither past
    `deadline` (monotonic)."""
    wait = max(MIN_WAIT, min(timeout, deadline - time.monotonic()))
    return wait, wait


def send(http: Any, method: str, url: str, *, timeout: float, deadline: float,
         verify: bool | str, data: Any = None,
         headers: Mapping[str, str] | None = None) -> Any:
    """One request on `http` (a session from `session()`), streamed, without redirects;
    niquests' exceptions pass through for the caller to name."""
    return http.request(method, url, data=data, headers=dict(headers or {}),
                        stream=True, allow_redirects=False,
                        timeout=timeouts(timeout, deadline), verify=verify)


def chunks(response: Any, cap: int, deadline: float) -> Iterator[bytes]:
    """The answer's decoded bytes as they arrive; TooLarge past `cap` bytes, TooSlow at
    `deadline` (checked after each read, so a server that drips bytes is cut off one read
    timeout after it at most)."""
    size = 0
    while chunk := response.raw.read1(CHUNK, decode_content=True):
        size += len(chunk)
        if size > cap:
            raise TooLarge
        if time.monotonic() > deadline:
            raise TooSlow
        yield chunk
    if time.monotonic() > deadline:
        raise TooSlow


@dataclass(frozen=True)
class Answer:
    """A whole answer: status, headers as the server named them, and the body."""

    status: int
    headers: dict[str, str]
    body: bytearray


def fetch(http: Any, method: str, url: str, *, deadline: float, verify: bool | str, cap: int,
          data: Any = None, headers: Mapping[str, str] | None = None) -> Answer:
    """One request and its whole answer within every bound: timeouts, headers (`alarm`) and
    body by `deadline`, at most `cap` bytes. TooSlow, TooLarge, or niquests' own exception."""
    with alarm(deadline):  # headers trickled a byte at a time end here too
        response = send(http, method, url, timeout=deadline - time.monotonic(),
                        deadline=deadline, verify=verify, data=data, headers=headers)
        with response:
            body = read_capped(response, cap, deadline)
            return Answer(int(response.status_code or 0), dict(response.headers or {}), body)


def read_capped(response: Any, cap: int, deadline: float) -> bytearray:
    """The whole answer, held once (grown in place), within `cap` and `deadline`."""
    data = bytearray()
    for chunk in chunks(response, cap, deadline):
        data += chunk
    return data


@contextmanager
def alarm(deadline: float) -> Iterator[None]:
    """Raise TooSlow in this thread at `deadline` (monotonic), whatever it is blocked in. Only
    the main thread can take a signal: elsewhere this does nothing. A timer already set (a test
    runner's) is put back afterwards, and is left alone when it is due first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    started = time.monotonic()
    seconds = deadline - started
    if seconds <= 0:
        raise TooSlow
    before = signal.getsignal(signal.SIGALRM)
    due, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    if due and due <= seconds:
        signal.setitimer(signal.ITIMER_REAL, due, interval)
        yield
        return

    def fire(signum: int, frame: FrameType | None) -> None:
        raise TooSlow

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before if before is not None else signal.SIG_DFL)
        if due:
            left = max(0.001, due - (time.monotonic() - started))
            signal.setitimer(signal.ITIMER_REAL, left, interval)
