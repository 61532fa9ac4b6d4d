"""What a production install is made of: the version written once, and a constraints file that
pins every package the production extras need (`make constraints` keeps it current)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import sanitizer

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_EXTRAS = ("microsoft365", "google", "metrics", "cryptfile")


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_the_installed_version_is_the_one_in_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("calendar-sanitizer") == sanitizer.__version__


def test_constraints_pin_every_production_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in PRODUCTION_EXTRAS:
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    pinned = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, exact = line.partition("==")
            assert exact, f"constraints.txt: {line!r} is not an exact pin"
            pinned[_name(name)] = exact
    missing = sorted(wanted - set(pinned))
    assert not missing, f"run `make constraints`: not pinned: {missing}"


def test_make_constraints_uses_the_same_extras() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert f"PRODUCTION_EXTRAS := {','.join(PRODUCTION_EXTRAS)}" in makefile
