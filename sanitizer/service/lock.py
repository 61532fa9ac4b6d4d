"""flock(2) locks in state_dir: one daemon per state directory, one writer per pair.

`state_dir/lock` is held by `run` for its lifetime, so a second instance stops at once (exit 75).
`state_dir/locks/PAIR` is held while a pair is written (by the daemon's cycle and by `wipe`),
so a wipe never interleaves with a sync of the same pair. The kernel drops both when the process
dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from sanitizer.errors import AlreadyRunning, ExitCode, SanitizerError
from sanitizer.files import named

LOCK_FILE = "lock"
PAIR_LOCK_DIR = "locks"


class PairBusy(SanitizerError):
    """Another process is writing the pair's target (exit 75: try again)."""

    exit_code = ExitCode.TEMPFAIL


def _open(path: Path) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class LockError(SanitizerError):
    """The lock file cannot be opened: the state directory's owner or mode is wrong (exit 78)."""

    exit_code = ExitCode.CONFIG


class InstanceLock:
    """The daemon's lock; release() (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock and close."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def require_private(state_dir: Path) -> None:
    """Refuse a state directory another local user could change (exit 78): whoever can replace
    the UID key or the ledger decides what the service writes and deletes."""
    try:
        info = state_dir.stat()
    except FileNotFoundError:
        return  # made 0700 by this user on first use
    except OSError as exc:
        raise LockError(f"{state_dir}: {exc.strerror}") from None
    if info.st_uid != os.geteuid():
        raise LockError(f"the state directory {state_dir} belongs to uid {info.st_uid}, not to "
                        f"this user (uid {os.geteuid()}); run as its owner or chown it")
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise LockError(f"the state directory {state_dir} is writable by group or others "
                        f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 700 {state_dir}`")


def acquire(state_dir: Path) -> InstanceLock:
    """Take `state_dir/lock` without waiting, or raise AlreadyRunning naming the holder.

    A state directory that is not private to this user is refused first (LockError, exit 78).
    """
    require_private(state_dir)
    path = state_dir / LOCK_FILE
    try:
        fd = _open(path)
    except OSError as exc:
        raise LockError(f"cannot open the lock {path} ({exc.strerror}); the state directory "
                        "must belong to the user the service runs as") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        pid = holder(state_dir)
        who = f"pid {pid}" if pid else "another process"
        raise AlreadyRunning(f"already running ({who} holds {path})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return InstanceLock(path, fd)


def holder(state_dir: Path) -> int | None:
    """The pid of the running daemon, or None if no process holds the lock."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def pair_lock(state_dir: Path, pair: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold the pair's write lock, waiting up to `timeout` seconds for another holder."""
    fd = _open(named(state_dir / PAIR_LOCK_DIR, pair))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise PairBusy(f"pair {pair}: another process is writing it; "
                                   "try again in a minute") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing drops the lock
