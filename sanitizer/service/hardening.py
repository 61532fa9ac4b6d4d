"""Process start-up hardening: no core dump may ever hold a password, the UID key or event text.

A daemon killed with SIGABRT (the watchdog's signal) would otherwise leave a core file with
everything in its memory. The units set LimitCORE=0 too; this covers runs outside systemd.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import resource
import signal
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_PDEATHSIG = 1


def forbid_core_dumps() -> None:
    """Set the core size limit to 0 and, on Linux, make the process non-dumpable.

    Best effort and silent: a syscall filter may refuse setrlimit (the units' LimitCORE=0 holds
    then), and no failure here may stop the service.
    """
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_DUMPABLE, 0)


def die_with_parent() -> None:
    """In a worker: be killed when the process that started it dies, so that a supervisor that
    is killed (SIGKILL, the watchdog) leaves no worker writing, or holding its locks, behind."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


def is_dumpable() -> bool | None:
    """The kernel's dumpable flag for this process (None where it cannot be read)."""
    if not sys.platform.startswith("linux"):
        return None
    result = _prctl(PR_GET_DUMPABLE, 0)
    return None if result is None or result < 0 else result != 0


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, found once per process (and inherited by every worker of a fork server):
    the symbols already loaded into the interpreter, where prctl is; looking it up by name runs
    `ldconfig` in a child process, milliseconds each time."""
    loaded = ctypes.CDLL(None, use_errno=True)
    if hasattr(loaded, "prctl"):
        return loaded
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> int | None:
    try:
        result: int = _libc().prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0),
                                    ctypes.c_ulong(0), ctypes.c_ulong(0))
    except (OSError, AttributeError):
        return None
    return result
