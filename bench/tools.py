"""The two tools under test, each run as its own process with its own config.

Each run is a child process reaped with os.wait4, so its peak RSS (ru_maxrss) is the client's
own, and wall time is measured around it. Output goes to files in the run's directory; only
the sanitizer's one-line pair summaries (counts only) are read back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
_COUNTS = re.compile(r"(created|updated|deleted|unchanged|skipped|foreign)=(\d+)")


@dataclass
class Run:
    """One client process: what it cost on the client side."""

    argv: list[str]
    code: int
    wall: float
    maxrss_kib: int
    cpu_s: float  # user + system CPU of the client process
    stdout: str
    stderr_tail: str

    @property
    def rss_mb(self) -> float:
        return self.maxrss_kib / 1024


def run_process(argv: Sequence[str], cwd: Path, env: dict[str, str], name: str,
                timeout: float = 1800) -> Run:
    """Start, wait with os.wait4 (for this child's rusage), and collect output files."""
    out_path, err_path = cwd / f"{name}.out", cwd / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_text(errors="replace").strip().splitlines()
    return Run(list(argv), proc.returncode, wall, usage.ru_maxrss,
               usage.ru_utime + usage.ru_stime, out_path.read_text(errors="replace"),
               " | ".join(stderr[-3:]))


def base_env() -> dict[str, str]:
    """The parent's environment without anything that would redirect the tools."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "CALENDAR_SANITIZER", "VDIRSYNCER", "CREDENTIALS"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


@dataclass
class PairSpec:
    name: str
    source: str  # absolute URL (through the proxy)
    target: str


@dataclass
class Sanitizer:
    """calendar-sanitizer with a config, a credentials directory and a state directory."""

    root: Path
    base_url: str
    username: str
    password: str
    pairs: list[PairSpec]
    timezone: str = "America/Chicago"
    service_extra: str = ""
    lookahead: str = "14d"
    retention: str = "24h"
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        creds = self.root / "credentials"
        creds.mkdir(mode=0o700, exist_ok=True)
        (creds / "main").write_text(self.password + "\n", encoding="utf-8")
        (creds / "main").chmod(0o600)
        lines = ["[service]", f'timezone = "{self.timezone}"',
                 f'state_dir = "{self.root / "state"}"', self.service_extra, "",
                 "[accounts.main]", f'url = "{self.base_url}"', f'username = "{self.username}"']
        for pair in self.pairs:
            lines += ["", "[[pairs]]", f'name = "{pair.name}"', 'account = "main"',
                      f'source = "{pair.source}"', f'target = "{pair.target}"',
                      f'lookahead = "{self.lookahead}"', f'retention = "{self.retention}"',
                      'title = "Appointment"']
        self.config = self.root / "config.toml"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.config.chmod(0o600)

    def env(self) -> dict[str, str]:
        env = base_env()
        env["CREDENTIALS_DIRECTORY"] = str(self.root / "credentials")
        # The checkout's package first: an editable install made before sanitizer/__init__.py
        # existed maps `sanitizer` as a namespace package, which breaks the console script.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def argv(self, *args: str) -> list[str]:
        exe = BIN / "calendar-sanitizer"
        head = [str(exe)] if exe.exists() else [sys.executable, "-m", "sanitizer"]
        return [*head, "--config", str(self.config), *args]

    def sync(self, now: datetime, name: str) -> Run:
        return run_process(self.argv("sync", "--now", now.isoformat()), self.root, self.env(),
                           name)

    def has_command(self, command: str) -> bool:
        """Whether this build of the CLI knows `command` (e.g. `run`, which may be new)."""
        proc = subprocess.run([*self.argv(command, "--help")], env=self.env(),
                              capture_output=True, check=False, timeout=60)
        return proc.returncode == 0

    def start_daemon(self, name: str = "daemon") -> subprocess.Popen[bytes]:
        out = (self.root / f"{name}.log").open("wb")
        return subprocess.Popen(self.argv("run"), cwd=self.root, env=self.env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    @staticmethod
    def counts(run: Run) -> dict[str, int]:
        """Totals over the pair summaries `pair NAME: ok created=.. updated=..` (counts only)."""
        totals: dict[str, int] = {}
        for line in run.stdout.splitlines():
            if not line.startswith("pair "):
                continue
            for key, value in _COUNTS.findall(line):
                totals[key] = totals.get(key, 0) + int(value)
            if ": FAILED" in line:
                totals["failed_pairs"] = totals.get("failed_pairs", 0) + 1
        return totals


def vdirsyncer_version() -> str | None:
    exe = BIN / "vdirsyncer"
    if not exe.exists():
        return None
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                          check=False, timeout=60)
    return proc.stdout.strip() or None


def ensure_vdirsyncer() -> str:
    """vdirsyncer in this venv (it is a test extra); pip-install it if it is missing."""
    version = vdirsyncer_version()
    if version is None:
        print("vdirsyncer not found in the venv; installing it with pip ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "vdirsyncer"],
                       check=True)
        version = vdirsyncer_version()
    if version is None:
        raise SystemExit("bench: vdirsyncer could not be installed")
    return version


@dataclass
class Vdirsyncer:
    """vdirsyncer one way: source read-only with the same window, target written, a wins."""

    root: Path
    source: str
    target: str
    username: str
    password: str
    lookahead: timedelta = timedelta(days=14)
    retention: timedelta = timedelta(hours=24)
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        start = f"datetime.now() - timedelta(seconds={int(self.retention.total_seconds())})"
        end = f"datetime.now() + timedelta(seconds={int(self.lookahead.total_seconds())})"
        text = f"""[general]
status_path = "{self.root / 'status'}/"

[pair bench]
a = "bench_source"
b = "bench_target"
collections = null
conflict_resolution = "a wins"
partial_sync = "revert"

[storage bench_source]
type = "caldav"
url = "{self.source}"
username = "{self.username}"
password = "{self.password}"
read_only = true
item_types = ["VEVENT"]
start_date = "{start}"
end_date = "{end}"

[storage bench_target]
type = "caldav"
url = "{self.target}"
username = "{self.username}"
password = "{self.password}"
"""
        self.config = self.root / "config"
        self.config.write_text(text, encoding="utf-8")
        self.config.chmod(0o600)

    def _run(self, command: str, name: str) -> Run:
        env = base_env()
        env["VDIRSYNCER_CONFIG"] = str(self.config)
        return run_process([str(BIN / "vdirsyncer"), command], self.root, env, name)

    def discover(self) -> Run:
        return self._run("discover", "discover")

    def sync(self, name: str) -> Run:
        return self._run("sync", name)


def reset_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
