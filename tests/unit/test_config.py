"""Config loading: the example file, defaults, and reporting every problem at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sanitizer.core.model import Action
from sanitizer.errors import ConfigError
from sanitizer.service.config import load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_the_example_config_loads() -> None:
    config = load_config(REPO / "config.example.toml")
    pair = config.pair("maria")
    assert pair.source_url.startswith("https://") and pair.target_url.endswith("/phone/")
    assert [r.action for r in pair.rules] == [Action.KEEP_TITLE, Action.SANITIZE, Action.SKIP]
    assert [r.where for r in pair.rules] == ["rules[0]", "rules[1]", "rules[2]"]
    assert all(p.rules == pair.rules for p in config.pairs)  # the agency's rules, for everyone


NEW_ADVOCATE = """
[[pairs]]
name = "sam"
account = "agency"
source = "sam/casework/"
target = "sam/phone/"
"""


def test_adding_an_advocate_to_the_example_is_five_lines_and_moves_no_rules(tmp_path) -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert len(NEW_ADVOCATE.strip().splitlines()) == 5
    before = load_config(REPO / "config.example.toml")
    path = tmp_path / "config.toml"
    path.write_text(text + NEW_ADVOCATE, encoding="utf-8")
    after = load_config(path)
    assert [p.name for p in after.pairs] == [*(p.name for p in before.pairs), "sam"]
    for old in before.pairs:
        assert after.pair(old.name).rules == old.rules
    assert after.pair("sam").rules == after.pair("maria").rules
    assert after.pair("sam").rules[0].action is Action.KEEP_TITLE  # staff meetings keep titles


def test_the_examples_per_pair_rule_belongs_to_the_pair_above_it(tmp_path) -> None:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('# [[pairs.rules]]\n# match_summary = "^Supervision"\n'
                        '# action = "keep-title"',
                        '[[pairs.rules]]\nmatch_summary = "^Supervision"\naction = "keep-title"')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    last = config.pairs[-1]
    assert last.rules[0].where == f"pairs[{len(config.pairs) - 1}].rules[0]"
    assert all(len(p.rules) == 3 for p in config.pairs[:-1])


def test_defaults() -> None:
    config = parse_config({"accounts": {"a": {"url": "http://127.0.0.1:5232/", "username": "u"}},
                           "pairs": [{"name": "p", "account": "a", "source": "u/w/",
                                      "target": "u/p/"}]})
    pair = config.pairs[0]
    assert (pair.lookahead, pair.retention) == (timedelta(days=14), timedelta(hours=24))
    assert pair.title.text == "Appointment" and pair.location is None
    assert config.service.interval == timedelta(minutes=5)


def test_every_problem_is_reported_at_once_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "service": {"interval": "soon", "timezone": "Mars/Base", "colour": 1},
            "accounts": {"a": {"url": "http://calendar.example.org/", "username": "u",
                               "password": "x"}},
            "pairs": [{"name": "p", "account": "b", "source": "w/", "target": "p/",
                       "rules": [{"match_summary": "(", "action": "hide"}]},
                      {"name": "p", "account": "a", "source": "w/", "target": "w/"}],
        })
    problems = "\n".join(caught.value.problems)
    for expected in ("service.interval: expected a number and a unit",
                     "service.timezone: unknown time zone", "service.colour: unknown key",
                     "accounts.a.url: plain http is refused except to loopback",
                     "accounts.a.password: passwords do not belong in the config file",
                     "pairs[0].account: no [accounts.b]",
                     "pairs[0].rules[0].match_summary: invalid regular expression",
                     "pairs[0].rules[0].action: expected one of"):
        assert expected in problems, problems
