"""`calendar-sanitizer run` in a child process, its output read line by line as it comes, so a
test waits for what the daemon says rather than for a file that is written before the line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from tests.support.harness import REPO, Setup


class Process:
    """`calendar-sanitizer run` in a child process, with its stderr collected line by line."""

    def __init__(self, setup: Setup, notify_socket: str | None = None, **env: str) -> None:
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("PYTEST", "NOTIFY_SOCKET", "WATCHDOG_"))}
        environment.update(setup.environment())
        if notify_socket is not None:
            environment["NOTIFY_SOCKET"] = notify_socket
        environment.update(env)
        self.lines: list[str] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sanitizer", "run"], env=environment, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 20, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in self.lines) >= count:
                return
            if self.proc.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no {count} line(s) with {text!r}; got:\n" + "\n".join(self.lines))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._thread.join(2)
        return code, time.monotonic() - sent

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
