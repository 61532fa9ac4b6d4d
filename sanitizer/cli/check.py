"""`calendar-sanitizer check`: is the installation ready? Config, permissions, passwords, servers;
writes nothing."""

from __future__ import annotations

import argparse
from typing import Any

from sanitizer.cli import common
from sanitizer.errors import ExitCode
from sanitizer.service import checks


def add_parser(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Register `check`."""
    common.add_command(
        commands, parent, "check",
        "check config, permissions, passwords and servers; write nothing",
        "Check the config, file permissions, every password, each source (one query) and each "
        "target (exists or can be created). Exit 0 all good, 78 config, 77 auth, 69 "
        "unreachable.")


def cmd_check(args: argparse.Namespace) -> int:
    """Print the readiness table; the exit code names the worst kind of problem."""
    findings = checks.run_checks(common.config_path(args))
    common.say(checks.render(findings))
    code = checks.exit_code(findings)
    problems = sum(f.code is not ExitCode.OK for f in findings)
    warnings = sum(f.result == "warning" for f in findings)
    good = "all good" + (f" ({warnings} warning(s): read them above)" if warnings else "")
    common.say(good if code == 0 else f"{problems} problem(s); exit {code}")
    return code
