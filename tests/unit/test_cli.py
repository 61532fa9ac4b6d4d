"""The command line: help for every command, usage and config errors as one line each."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from sanitizer.cli import main as cli_main
from sanitizer.cli.main import build_parser, main


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # --help and --version exit through argparse
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def command_names() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)


@pytest.mark.parametrize("command", command_names())
def test_every_command_has_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0 and "usage:" in out and len(out.splitlines()) > 3


def test_usage_errors_exit_64_with_one_line() -> None:
    code, _, err = run("sync", "--bogus")
    assert code == 64 and len(err.strip().splitlines()) == 1
    assert run("frobnicate")[0] == 64


def test_missing_config_exits_78(tmp_path: Path) -> None:
    code, _, err = run("--config", str(tmp_path / "nope.toml"), "sync")
    assert code == 78 and "no such file" in err and "Traceback" not in err


def test_bad_config_prints_each_problem_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[service]\ninterval = 5\n[[pairs]]\nname = "x y"\n', encoding="utf-8")
    code, out, err = run("--config", str(path), "sync")
    lines = err.strip().splitlines()
    assert code == 78 and not out and len(lines) >= 3
    assert all(line.startswith("calendar-sanitizer: config error: ") for line in lines)
    assert any("service.interval: expected a string" in line for line in lines)


def test_global_options_work_after_the_command_and_module_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sanitizer", "sync", "--config",
                           str(tmp_path / "x.toml"), "--log-level", "debug"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 78 and "Traceback" not in proc.stderr


def test_an_installed_package_without_the_demo_says_where_the_demo_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel holds sanitizer/ alone, in site-packages, where no clone's demo/ is beside it:
    `demo` says where the demo is, exit 64, and runs no other package that is named demo."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "run.py").write_text("raise SystemExit('another package')\n")
    monkeypatch.setattr(cli_main, "SOURCE_ROOT", tmp_path)  # as site-packages, no pyproject.toml
    code, out, err = run("demo", "--cycles", "1")
    assert code == 64, err
    assert "make demo" in err and "internal error" not in err and out == ""


def test_a_clone_whose_demo_cannot_be_imported_says_where_the_demo_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "demo.run", None)  # as if demo/ were not importable
    code, out, err = run("demo", "--cycles", "1")
    assert code == 64, err
    assert "make demo" in err and "internal error" not in err and out == ""


def test_discover_of_an_unreachable_server_exits_69(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's table: a server that cannot be reached is 69, not 75 (our own locks)."""
    creds, state = tmp_path / "creds", tmp_path / "state"
    creds.mkdir(mode=0o700)
    state.mkdir(mode=0o700)
    (creds / "a").write_text("pw")
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\nstate_dir = "{state}"\n[accounts.a]\n'
                      'url = "http://127.0.0.1:9/dav/"\nusername = "u"\n')
    config.chmod(0o600)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    code, _, err = run("--config", str(config), "discover", "a")
    assert code == 69, err
    assert "connection-failed" in err and "Traceback" not in err
