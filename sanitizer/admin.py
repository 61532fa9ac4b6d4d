"""Admin commands (run, check, status, wipe, resume), registered into the CLI's parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

ADMIN_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_admin_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the admin subcommands to the CLI's subparsers."""
