"""The docs tell one story with the code: the example config's Microsoft 365 keys load, no page
says the Microsoft 365 and Google stores are missing, and what an admin is told to run is the
wrapper a documented install has."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sanitizer.cli.policy_text import render
from sanitizer.service.config import load_config

REPO = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/install.md", "docs/phones.md", "docs/microsoft365.md",
         "docs/threat-model.md", "docs/google.md"]


def test_the_example_config_shows_the_microsoft365_keys_and_they_load(tmp_path) -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [accounts.m365]"):]
    block = block[:block.index("\n\n")]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    path = tmp_path / "config.toml"
    path.write_text(text.replace(block, uncommented), encoding="utf-8")
    config = load_config(path)
    account = config.accounts["m365"]
    assert account.kind == "microsoft365" and account.client_credential == "graph-app"


def test_no_page_says_microsoft365_or_google_are_not_usable() -> None:
    for page in PAGES:
        text = re.sub(r"\s+", " ", (REPO / page).read_text(encoding="utf-8"))
        for claim in ("not usable", "with this version", "being added", "as those stores arrive",
                      "Still open", "release notes", "The organizer is not read"):
            assert claim not in text, (page, claim)


def test_the_policy_names_the_command_an_admin_runs() -> None:
    config = load_config(REPO / "config.example.toml")
    text = render(config, datetime(2030, 3, 4, tzinfo=UTC))
    assert "`calendar-sanitizer-admin wipe NAME --yes`" in text
    assert "`calendar-sanitizer-admin resume NAME`" in text
