"""Broken configurations: `sync` exits 78 with one exact line per problem and prints nothing else.

Each case is a small edit of a valid config. The expected lines are the whole of stderr: a message
that names the wrong key path, repeats itself or points at the wrong cause fails the test. Cases
marked xfail would show a message that is still wrong; their reason says what it should be.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sanitizer.cli.main import main

PREFIX = "calendar-sanitizer: config error: "

BASE = """[service]
state_dir = "/var/lib/calendar-sanitizer-test"
{service}
[accounts.main]
url = "{url}"
username = "advocate"
{account}
[[pairs]]
name = "{name}"
account = "main"
source = "{source}"
target = "{target}"
{pair}
{rest}"""

SECOND_PAIR = ('\n[[pairs]]\nname = "{name}"\naccount = "main"\nsource = "{source}"\n'
               'target = "{target}"\n')


def config(**parts: str) -> str:
    """The valid base config with some parts filled in."""
    values = {"service": "", "url": "https://dav.example.org/", "account": "", "name": "alice",
              "source": "work/", "target": "phone/", "pair": "", "rest": ""}
    values.update(parts)
    return BASE.format(**values)


def second_pair(name: str, source: str, target: str) -> str:
    return config() + SECOND_PAIR.format(name=name, source=source, target=target)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: tuple[str, ...]  # problems, without the prefix; {path} is the config file
    wrong: str | None = None  # why the current message is wrong (xfail), or None


CASES = [
    # TOML syntax
    Case("toml-unclosed-table", "[service\nstate_dir = 1\n",
         ("{path}: TOML syntax error: Expected ']' at the end of a table declaration "
          "(at line 1, column 9)",)),
    Case("toml-duplicate-key", config(service="workers = 2\nworkers = 3"),
         ("{path}: TOML syntax error: Cannot overwrite a value (at line 4, column 12)",)),
    Case("toml-bad-string", config(pair='title = "Appointment'),
         ("{path}: TOML syntax error: Illegal character '\\n' (at line 13, column 21)",)),
    Case("empty-file", "", ("pairs: no [[pairs]] defined",)),
    # unknown keys, at every level
    Case("unknown-top-level", 'colour = "red"\n' + config(), ("colour: unknown key",)),
    Case("unknown-service-key", config(service='intervall = "5m"'),
         ("service.intervall: unknown key",)),
    Case("unknown-account-key", config(account="verify = true"),
         ("accounts.main.verify: unknown key",)),
    Case("unknown-pair-key", config(pair='lookahed = "7d"'), ("pairs[0].lookahed: unknown key",)),
    Case("unknown-rule-key",
         config(pair='[[pairs.rules]]\nmatch_category = ["x"]\naction = "skip"'),
         ("pairs[0].rules[0].match_category: unknown key",)),
    Case("unknown-global-rule-key", config(rest='[[rules]]\nmatch = "x"\n'),
         ("rules[0].match: unknown key",)),
    # a password in the config
    Case("password-in-account", config(account='password = "hunter2"'),
         ("accounts.main.password: passwords do not belong in the config file; "
          "store it with: calendar-sanitizer set-password main",)),
    # wrong types
    Case("workers-string", config(service='workers = "4"'),
         ("service.workers: expected an integer, got a string",)),
    Case("timeout-number", config(service="timeout = 30"),
         ("service.timeout: expected a string, got an integer",)),
    Case("keyring-backend-number", config(service="keyring_backend = 1"),
         ("service.keyring_backend: expected a string, got an integer",)),
    Case("pairs-is-a-table",
         '[accounts.main]\nurl = "https://dav.example.org/"\nusername = "u"\n[pairs]\nname = "a"\n',
         ("pairs: expected an array of tables ([[pairs]])",)),
    Case("categories-not-a-list",
         config(pair='[[pairs.rules]]\nmatch_categories = "staff"\naction = "skip"'),
         ("pairs[0].rules[0].match_categories: expected a list, got a string",)),
    Case("account-not-a-table",
         config().replace('[accounts.main]\nurl = "https://dav.example.org/"\n'
                          'username = "advocate"\n', '[accounts]\nmain = "https://x.example/"\n'),
         ("accounts.main: expected a table",)),
    # accounts
    Case("no-accounts",
         '[[pairs]]\nname = "alice"\naccount = "main"\nsource = "w/"\ntarget = "p/"\n',
         ("pairs[0].account: no [accounts.main] defined",)),
    Case("pair-without-account", config().replace('account = "main"\n', ""),
         ("pairs[0].account: missing (or source_account and target_account)",)),
    Case("username-missing", config().replace('username = "advocate"\n', ""),
         ("accounts.main.username: missing",)),
    Case("account-name", config().replace("[accounts.main]", '[accounts."main account"]')
         .replace('account = "main"', 'account = "main account"'),
         ("accounts.\"main account\": account names use letters, digits, '_', '.', '-' (max 64)",)),
    # URLs
    Case("url-without-scheme", config(url="dav.example.org/cal/"),
         ("accounts.main.url: expected an http(s) URL with a host",)),
    Case("url-ftp", config(url="ftp://dav.example.org/"),
         ("accounts.main.url: expected an http(s) URL with a host",)),
    Case("url-plain-http-remote", config(url="http://dav.example.org/"),
         ("accounts.main.url: plain http is refused except to loopback; use https",)),
    Case("url-with-password", config(url="https://advocate:secret@dav.example.org/"),
         ("accounts.main.url: must not contain a user or password "
          "(passwords belong in the keyring)",)),
    Case("url-with-query", config(url="https://dav.example.org/?token=abc"),
         ("accounts.main.url: must not contain a query or fragment",)),
    Case("source-on-another-server", config(source="https://elsewhere.example.net/casework/"),
         ("pairs[0].source: must be on the account's server",)),
    Case("target-plain-http-remote", config(target="http://dav.example.org/phone/"),
         ("pairs[0].target: plain http is refused except to loopback; use https",)),
    Case("ca-file-relative", config(account='ca_file = "ca.pem"'),
         ("accounts.main.ca_file: must be an absolute path",)),
    # durations and ranges
    Case("duration-words", config(service='interval = "5 minutes"'),
         ('service.interval: expected a number and a unit, like "90s", "15m", "24h", "14d" '
          'or "2w"',)),
    Case("interval-too-short", config(service='interval = "1s"'),
         ("service.interval: must be at least 5s",)),
    Case("retention-in-years", config(pair='retention = "1y"'),
         ('pairs[0].retention: expected a number and a unit, like "90s", "15m", "24h", "14d" '
          'or "2w"',)),
    Case("negative-alarm", config(pair='alarm = "-15m"'),
         ('pairs[0].alarm: expected a number and a unit, like "90s", "15m", "24h", "14d" '
          'or "2w"',)),
    Case("lookahead-too-long", config(pair='lookahead = "400d"'),
         ("pairs[0].lookahead: must be at most 366d",)),
    Case("full-reconcile-word", config(service='full_reconcile = "hourly"'),
         ('service.full_reconcile: expected a number and a unit, like "90s", "15m", "24h", '
          '"14d" or "2w"',)),
    Case("timeout-zero", config(service='timeout = "0s"'),
         ("service.timeout: must be at least 1s",)),
    Case("workers-zero", config(service="workers = 0"),
         ("service.workers: must be between 1 and 32",)),
    Case("workers-too-many", config(service="workers = 64"),
         ("service.workers: must be between 1 and 32",)),
    Case("state-dir-relative", config().replace('"/var/lib/calendar-sanitizer-test"', '"state"'),
         ("service.state_dir: must be an absolute path",)),
    Case("unknown-zone", config(service='timezone = "Europe/Atlantis"'),
         ("service.timezone: unknown time zone (expected an IANA name like Europe/Berlin)",)),
    # pairs
    Case("pair-name-with-space", config(name="alice smith"),
         ("pairs[0].name: pair names use letters, digits, '_', '.', '-' (max 64)",)),
    Case("duplicate-pair-names", second_pair("alice", "work2/", "phone2/"),
         ("pairs[1].name: duplicate pair name 'alice'",)),
    Case("target-equals-own-source", config(target="work/"),
         ("pairs[0].target: is also a source calendar; refusing to write",)),
    Case("target-is-another-pairs-source", second_pair("bob", "phone/", "phone3/"),
         ("pairs[0].target: is also a source calendar; refusing to write",)),
    Case("target-shared", second_pair("bob", "work2/", "phone/"),
         ("pairs[1].target: is already the target of pair 'alice'",)),
    Case("empty-title", config(pair='title = ""'),
         ("pairs[0].title: a label must be 1-200 characters with no control characters",)),
    Case("title-with-newline", config(pair='title = "a\\nb"'),
         ("pairs[0].title: a label must be 1-200 characters with no control characters",)),
    Case("location-too-long", config(pair=f'location = "{"x" * 201}"'),
         ("pairs[0].location: a label must be 1-200 characters with no control characters",)),
    # rules
    Case("bad-regex",
         config(pair='[[pairs.rules]]\nmatch_summary = "(staff"\naction = "keep-title"'),
         ("pairs[0].rules[0].match_summary: invalid regular expression "
          "(missing ), unterminated subpattern)",)),
    Case("bad-action", config(pair='[[pairs.rules]]\nmatch_categories = ["x"]\naction = "hide"'),
         ("pairs[0].rules[0].action: expected one of sanitize, keep-title, skip",)),
    Case("bad-global-action", config(rest='[[rules]]\naction = "delete"\n'),
         ("rules[0].action: expected one of sanitize, keep-title, skip",)),
    Case("title-on-keep-title-rule", config(pair='[[pairs.rules]]\nmatch_categories = ["staff"]'
                                                 '\naction = "keep-title"\ntitle = "Staff"'),
         ("pairs[0].rules[0].title: only a sanitize rule takes a title, not keep-title",)),
    Case("title-on-skip-rule", config(pair='[[pairs.rules]]\nmatch_categories = ["x"]'
                                           '\naction = "skip"\ntitle = "Hidden"'),
         ("pairs[0].rules[0].title: only a sanitize rule takes a title, not skip",)),
]


def run_sync(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(path), "sync"])
    return code, out.getvalue(), err.getvalue()


def _params() -> list[object]:
    params: list[object] = []
    for case in CASES:
        marks = [pytest.mark.xfail(reason=case.wrong, strict=True)] if case.wrong else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", _params())
def test_broken_config_gives_exact_lines_and_exit_78(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(case.text, encoding="utf-8")
    code, out, err = run_sync(path)
    expected = [PREFIX + line.format(path=path) for line in case.expected]
    assert (code, out, err.splitlines()) == (78, "", expected)


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert run_sync(missing) == (78, "", f"{PREFIX}{missing}: no such file\n")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[service]\ntimezone = "Europe/Zürich"\n'.encode("latin-1"))
    assert run_sync(latin1) == (78, "", f"{PREFIX}{latin1}: not UTF-8 text\n")


def test_a_directory_instead_of_a_file(tmp_path: Path) -> None:
    assert run_sync(tmp_path) == (78, "", f"{PREFIX}{tmp_path}: is a directory, not a file\n")


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The same through `python -m sanitizer`, as systemd runs it."""
    path = tmp_path / "config.toml"
    path.write_text(config(url="http://dav.example.org/", service='interval = "soon"'),
                    encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sanitizer", "--config", str(path), "sync"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 78 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[:2] == [
        PREFIX + 'service.interval: expected a number and a unit, like "90s", "15m", "24h", '
                 '"14d" or "2w"',
        PREFIX + "accounts.main.url: plain http is refused except to loopback; use https"]
    assert all(line.startswith(PREFIX) for line in lines)
    assert "Traceback" not in proc.stderr
