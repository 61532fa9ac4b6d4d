"""A CPU-time budget for one object's parsing and expansion, free until it runs out.

The parsing and recurrence libraries loop without calling back (a rule that never matches walks
to the year 9999), so a deadline checked between instances is not enough. In the main thread a
CPU-time interval timer (ITIMER_PROF) does the watching: nothing runs until it fires, then its
signal handler raises OutOfTime in whatever library code is running, and again every REPEAT
seconds of CPU, so a library that swallows one interruption meets the next. The clock is CPU time,
not wall time: a busy machine must not skip sound objects. Another thread cannot take signals, so
there a profile hook looks at the thread's CPU clock every 1024 events instead (slower: the
service parses in each worker's main thread). Frames of this module are never interrupted: the
caller turns the interruption into a reason code.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

REPEAT = 0.05  # seconds of CPU between interruptions once the budget is spent
_THIS_FILE = __file__
_CALLS = frozenset({"call", "c_call"})


class OutOfTime(BaseException):
    """Raised inside library code when an object's CPU budget is spent.

    A BaseException, so that a library's `except Exception` cannot swallow it.
    """


class CpuBudget:
    """`with CpuBudget(seconds):` interrupts the body once it has used `seconds` of CPU."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = False
        self.previous: Any = None
        self.timer = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> CpuBudget:
        self.active = True
        if self.timer:
            self.previous = signal.signal(signal.SIGPROF, self._fire)
            signal.setitimer(signal.ITIMER_PROF, max(self.seconds, 0.001), REPEAT)
        else:
            self.previous = sys.getprofile()
            sys.setprofile(_hook(self.seconds))
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self.timer:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, self.previous)
        else:
            sys.setprofile(self.previous)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.active and (frame is None or frame.f_code.co_filename != _THIS_FILE):
            raise OutOfTime


def _hook(seconds: float) -> Any:
    """The profile hook of a thread other than the main one."""
    deadline = time.thread_time() + seconds
    events = 0
    mask = 0x3FF

    def hook(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal events, mask
        events += 1
        if events & mask:
            return
        if mask and time.thread_time() <= deadline:
            return
        mask = 0  # out of time: from now on, look at every event
        if event in _CALLS and frame.f_code.co_filename != _THIS_FILE:
            raise OutOfTime

    return hook
