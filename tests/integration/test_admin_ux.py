"""A new admin's path, as subprocesses against a real Radicale: discover, set-password, exit codes,
rejected passwords, status --json and staleness, the metrics file, policy, phone-setup, the demo,
and every command piped into `head -1` or run with stdin closed."""

from __future__ import annotations

import json
import os
import plistlib
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.embedded_server import find_free_port
from sanitizer.service import credentials, rejected
from sanitizer.service.config import load_config
from tests.support.faultproxy import FaultProxy
from tests.support.harness import REPO, Result, Setup, put, vevent

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
CRYPTFILE = "keyrings.cryptfile.cryptfile.CryptFileKeyring"
EVENT = vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe intake")


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work = calendars.new("work")
    phone = work.replace("/work", "/phone")
    put(server, work + "a.ics", EVENT)
    setup = make_setup(server, [("advocate", work, phone)])
    setup.config_path.chmod(0o600)
    return server, work, phone, setup


def without_credentials(setup: Setup, *args: str, stdin: str | None = "",
                        env: dict[str, str] | None = None) -> Result:
    """The CLI as a process, as an admin at a root shell runs it: no $CREDENTIALS_DIRECTORY."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("PYTEST") and k != credentials.CREDENTIALS_ENV}
    environment.update({"CALENDAR_SANITIZER_CONFIG": str(setup.config_path), **(env or {})})
    proc = subprocess.run([sys.executable, "-m", "sanitizer", *args], capture_output=True,
                          text=True, timeout=60, env=environment, check=False,
                          input=stdin, stdin=subprocess.DEVNULL if stdin is None else None)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def pin_cryptfile(setup: Setup) -> None:
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", f'[service]\nkeyring_backend = "{CRYPTFILE}"\n'))


def shell(setup: Setup, command: str) -> Result:
    """A shell line with `CS` standing for the CLI, e.g. `CS status | head -1`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(setup.environment())
    cli = f"{sys.executable} -m sanitizer"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", command.replace("CS", cli)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def no_internal_error(result: Result) -> None:
    assert "internal error" not in result.output and "Traceback" not in result.output, \
        result.output


# discover and check --------------------------------------------------------------------------

def test_discover_lists_the_accounts_calendars_with_lines_to_paste(pair, calendars) -> None:
    server, work, _, setup = pair
    empty = calendars.new("phone", displayname="Maria - phone")
    result = setup.run_process("discover", "main")
    assert result.code == 0, result.output
    out = result.stdout
    assert f"principal {server.url}advocate/" in out
    work_path = work[len(server.url):]
    empty_path = empty[len(server.url):]
    # the server is shared: earlier tests' calendars are listed too, so find this one's line
    work_lines = [line for line in out.splitlines() if line.startswith(f'source = "{work_path}"')]
    assert len(work_lines) == 1 and "1 event(s), read-write" in work_lines[0], out
    assert f'target = "{empty_path}"   # Maria - phone: 0 event(s), read-write' in out
    assert "Jane" not in result.output  # names of calendars, never of events


def test_discover_works_before_any_pair_is_written(pair) -> None:
    server, work, _, setup = pair
    text = setup.config_path.read_text()
    setup.config_path.write_text(text[:text.index("[[pairs]]")])
    result = setup.run_process("discover", "main")
    assert result.code == 0, result.output
    assert f'source = "{work[len(server.url):]}"' in result.stdout
    broken = setup.config_path.read_text().replace("[service]", "[service]\ninterval = 1")
    setup.config_path.write_text(broken)
    assert setup.run_process("discover", "main").code == 78  # other problems still count


def test_discover_unknown_account_is_64_and_wrong_password_77(pair) -> None:
    _, _, _, setup = pair
    assert setup.run_process("discover", "nobody").code == 64
    (setup.credentials / "main").write_text("not-the-password")
    wrong = setup.run_process("discover", "main")
    assert wrong.code == 77 and "wrong user name or password" in wrong.stderr, wrong.output
    assert "not-the-password" not in wrong.output


# set-password --------------------------------------------------------------------------------

def test_set_password_without_a_pinned_backend_says_what_to_do(pair, tmp_path) -> None:
    _, _, _, setup = pair
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": ""}
    for args, stdin in ((("--stdin",), "pw\n"), ((), None), (("--stdin",), None)):
        result = without_credentials(setup, "set-password", "main", *args, stdin=stdin, env=env)
        assert result.code == 78, result.output
        no_internal_error(result)
        assert "systemd-creds encrypt --name=main - /etc/calendar-sanitizer/credentials/main.cred" \
            in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "home").exists()  # nothing stored in the admin's home


def test_set_password_refuses_a_keyring_file_in_the_admins_home(pair, tmp_path) -> None:
    pytest.importorskip("keyrings.cryptfile")
    _, _, _, setup = pair
    pin_cryptfile(setup)
    (setup.credentials / "keyring-master").write_text("correct horse\n")
    (setup.credentials / "main").unlink()
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": "",
           credentials.CREDENTIALS_ENV: str(setup.credentials)}
    result = without_credentials(setup, "set-password", "main", "--stdin", stdin="pw\n", env=env)
    assert result.code == 78, result.output
    assert "where the service cannot read it" in result.stderr
    assert f"XDG_DATA_HOME={setup.state_dir}" in result.stderr
    assert not list(home.rglob("*.cfg"))
    env["XDG_DATA_HOME"] = str(setup.state_dir)  # as the service user would
    stored = without_credentials(setup, "set-password", "main", "--stdin", stdin="pw\n", env=env)
    assert stored.code == 0, stored.output


def test_set_password_with_a_cryptfile_backend_never_prompts_for_a_new_keyring(pair,
                                                                               tmp_path) -> None:
    """Without the master password credential, --stdin and a closed stdin fail in one line."""
    pytest.importorskip("keyrings.cryptfile")
    _, _, _, setup = pair
    pin_cryptfile(setup)
    env = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data")}
    for stdin in ("pw\n", None):
        result = without_credentials(setup, "set-password", "main", "--stdin", stdin=stdin,
                                     env=env)
        assert result.code == 78, result.output
        no_internal_error(result)
        assert "keyring-master" in result.stderr
    assert not (tmp_path / "data").exists()


# closed pipes and closed stdin ---------------------------------------------------------------

COMMANDS = ["status", "status --json", "check", "policy", "phone-setup advocate",
            "discover main", "preview --now " + NOW, "sync --dry-run --now " + NOW, "--help",
            "sync --help", "resume advocate"]


def test_every_command_piped_into_head_ends_without_an_internal_error(pair) -> None:
    _, _, _, setup = pair
    assert setup.run_process("sync", "--now", NOW).code == 0
    for command in COMMANDS:
        result = shell(setup, f"CS {command} | head -1")
        no_internal_error(result)
        assert result.stdout.count("\n") <= 1, (command, result.output)
        assert "BrokenPipe" not in result.stderr and "Exception ignored" not in result.stderr


def test_a_long_output_into_a_closed_pipe_keeps_the_commands_exit_code(pair) -> None:
    _, _, _, setup = pair
    result = shell(setup, "CS policy --config " + str(REPO / "config.example.toml")
                   + " | head -c 10 >/dev/null")
    no_internal_error(result)
    assert result.code == 0
    failing = shell(setup, "CS status --max-age 0s | true")  # the pair never ran: stale
    no_internal_error(failing)


def reading_commands(setup: Setup) -> list[str]:
    """The commands that read standard input, and two that do not."""
    return ["set-password main", "set-password main --stdin", "wipe advocate", "check",
            "status", f"phone-setup advocate --mobileconfig {setup.root}/p.mobileconfig "
            "--with-password"]


@pytest.mark.parametrize("redirect", ["<&-", "</dev/null", ">&-"])
def test_every_command_with_stdin_or_stdout_closed(pair, redirect) -> None:
    _, _, _, setup = pair
    commands = COMMANDS[:8] if redirect == ">&-" else reading_commands(setup)
    for command in commands:
        result = shell(setup, f"CS {command} {redirect}")
        no_internal_error(result)
        assert result.code in (0, 1, 64, 78), (command, redirect, result.output)


# failure reasons and exit codes --------------------------------------------------------------

def test_a_forbidden_path_is_forbidden_not_a_wrong_password(pair) -> None:
    server, work, _, setup = pair
    other = server.url + "someone-else/casework/"
    setup.config_path.write_text(setup.config_path.read_text().replace(work, other))
    result = setup.run_process("sync", "--now", NOW)
    assert result.code == 77, result.output
    assert "forbidden" in result.stdout and "HTTP 403" in result.stdout
    assert "wrong user name or password" not in result.output


def test_unreachable_server_is_69_for_sync(calendars, make_setup) -> None:
    closed = f"http://127.0.0.1:{find_free_port()}/"
    setup = make_setup(calendars.server, [("advocate", closed + "advocate/casework/",
                                           closed + "advocate/phone/")], url=closed,
                       service_extra='timeout = "2s"')
    result = setup.run_process("sync", "--now", NOW)
    assert result.code == 69, result.output
    assert "connection-failed" in result.stdout


def test_mixed_failures_exit_1(pair) -> None:
    _, work, phone, setup = pair
    text = setup.config_path.read_text()
    setup.config_path.write_text(text + (
        f'\n[[pairs]]\nname = "other"\naccount = "main"\nsource = "{work.rstrip("/")}-gone/"\n'
        f'target = "{phone.rstrip("/")}-2/"\n'))
    result = setup.run_process("sync", "--now", NOW)
    assert result.code == 1, result.output  # one ran, one failed


def test_a_rejected_password_is_not_sent_again_until_it_changes(pair) -> None:
    server, _, _, setup = pair
    with FaultProxy(server.url) as proxy:
        setup.config_path.write_text(setup.config_path.read_text().replace(server.url, proxy.url))
        (setup.credentials / "main").write_text("not-the-password")
        first = setup.run_process("sync", "--now", NOW)
        assert first.code == 77, first.output
        assert "wrong user name or password (auth-rejected, HTTP 401)" in first.stdout
        sent = proxy.stats().total_requests
        assert sent >= 1
        again = setup.run_process("sync", "--now", NOW)
        assert again.code == 77 and "not sent again" in again.stdout, again.output
        assert proxy.stats().total_requests == sent  # no request: no lockout
        saved = (setup.state_dir / rejected.REJECTED_FILE).read_bytes()
        assert b"not-the-password" not in saved
        status = json.loads(setup.run_process("status", "--json").stdout)
        assert status["pairs"][0]["error"] == "password-rejected"
        (setup.credentials / "main").write_text(server.password)  # a new credential
        fixed = setup.run_process("sync", "--now", NOW)
        assert fixed.code == 0, fixed.output


def test_a_passing_check_clears_an_earlier_rejection(pair) -> None:
    server, _, _, setup = pair
    config = load_config(setup.config_path)
    account = config.accounts["main"]
    key = credentials.uid_key(setup.state_dir)
    rejected.remember(setup.state_dir, "main", rejected.fingerprint(key, account,
                                                                     server.password),
                      datetime(2030, 3, 4, tzinfo=UTC))
    held = setup.run_process("sync", "--now", NOW)
    assert held.code == 77 and "not sent again" in held.stdout
    checked = setup.run_process("check")
    assert checked.code == 0, checked.output
    assert "cycles use it again" in checked.stdout
    assert setup.run_process("sync", "--now", NOW).code == 0
    # a change of the account's settings also counts as a change
    rejected.remember(setup.state_dir, "main", rejected.fingerprint(key, account,
                                                                     server.password),
                      datetime(2030, 3, 4, tzinfo=UTC))
    setup.config_path.write_text(setup.config_path.read_text().replace("127.0.0.1",
                                                                       "localhost"))
    assert setup.run_process("sync", "--now", NOW).code == 0


# status --json, staleness, metrics -----------------------------------------------------------

def age_last_success(setup: Setup, pair: str, by: timedelta) -> None:
    """Move the pair's recorded cycle times back, as if it last ran `by` ago."""
    path = setup.state_dir / "status.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("time", "last_success"):
        data[pair][key] = (datetime.fromisoformat(data[pair][key]) - by).isoformat()
    path.write_text(json.dumps(data), encoding="utf-8")


def test_status_json_and_the_staleness_exit(pair) -> None:
    _, _, _, setup = pair
    assert setup.run_process("sync", "--now", "2020-01-01T09:00:00+00:00").code == 0
    what_if = setup.run_process("status")  # as of 2020, but it ran just now: not stale
    assert what_if.code == 0, what_if.output
    assert "as_of=2020-01-01 09:00:00" in what_if.stdout and "STALE" not in what_if.stdout
    age_last_success(setup, "advocate", timedelta(hours=1))
    stale = setup.run_process("status")
    assert stale.code == 1, stale.output
    assert "pair advocate: STALE no successful cycle in the last 15m" in stale.stdout
    document = setup.run_process("status", "--json")
    assert document.code == 1
    data = json.loads(document.stdout)
    assert data["max_age_seconds"] == 900 and data["daemon"]["running"] is False
    entry = data["pairs"][0]
    assert entry["name"] == "advocate" and entry["ok"] is True and entry["stale"] is True
    assert entry["last_success"] == entry["last"] and entry["as_of"].startswith("2020-01-01")
    assert entry["created"] == 0 and entry["paused"] is None
    assert setup.run_process("status", "--max-age", "100000d").code == 0
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", '[service]\nstale_after = "100000d"\n'))
    fresh = setup.run_process("status", "--json")
    assert fresh.code == 0 and json.loads(fresh.stdout)["pairs"][0]["stale"] is False
    assert setup.run_process("status", "--max-age", "soon").code == 64


def test_a_run_as_of_the_past_never_hides_a_stale_pair(pair) -> None:
    """A what-if run that fails is the last attempt; the last success stays where it was."""
    _, work, _, setup = pair
    assert setup.run_process("sync").code == 0
    age_last_success(setup, "advocate", timedelta(hours=2))
    setup.config_path.write_text(setup.config_path.read_text().replace(work, work + "gone/"))
    failed = setup.run_process("sync", "--now", "2031-01-01T09:00:00+00:00")
    assert failed.code != 0, failed.output
    shown = setup.run_process("status")
    assert shown.code == 1 and "STALE" in shown.stdout, shown.output
    line = next(x for x in shown.stdout.splitlines() if x.startswith("pair advocate:"))
    assert "result=FAILED" in line and "last_ok=" in line and "last_ok=never" not in line
    entry = json.loads(setup.run_process("status", "--json").stdout)["pairs"][0]
    assert entry["last"] != entry["last_success"] and entry["stale"] is True


def test_metrics_file_in_the_prometheus_text_format(pair, tmp_path) -> None:
    _, _, _, setup = pair
    metrics = tmp_path / "textfile" / "calendar-sanitizer.prom"
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", f'[service]\nmetrics_file = "{metrics}"\n'))
    assert setup.run_process("sync", "--now", NOW).code == 0
    (setup.credentials / "main").write_text("wrong")
    assert setup.run_process("sync", "--now", NOW).code == 77
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    value = {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
             for f in families.values()}
    pair_label = (("pair", "advocate"),)
    assert value["calendar_sanitizer_phone_entries"][pair_label] == 1
    success = value["calendar_sanitizer_last_success_timestamp_seconds"][pair_label]
    assert abs(success - time.time()) < 600  # when it ran, by the clock, not as of --now
    assert value["calendar_sanitizer_cycle_duration_seconds"][pair_label] > 0
    failures = families["calendar_sanitizer_failures"]
    assert failures.type == "counter"
    assert any(s.labels == {"pair": "advocate", "reason": "auth-rejected"} and s.value == 1
               for s in failures.samples)
    assert "Jane" not in metrics.read_text()


def test_metrics_file_without_the_library_is_78_in_one_line(pair, tmp_path) -> None:
    _, _, _, setup = pair
    stub = tmp_path / "stub" / "prometheus_client"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('not installed')\n")
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", f'[service]\nmetrics_file = "{tmp_path}/m.prom"\n'))
    setup.env["PYTHONPATH"] = str(tmp_path / "stub")
    for command in ("sync", "run"):
        result = setup.run_process(command, "--now", NOW) if command == "sync" else \
            setup.run_process(command, timeout=60)
        assert result.code == 78, result.output
        assert result.stderr.strip().count("\n") == 0
        assert "calendar-sanitizer[metrics]" in result.stderr


# policy and phone-setup ----------------------------------------------------------------------

def test_policy_describes_the_example_config(tmp_path) -> None:
    example = str(REPO / "config.example.toml")
    result = subprocess.run([sys.executable, "-m", "sanitizer", "--config", example, "policy"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("# What the advocates' phones hold")
    assert "## Phone calendars of: maria, jo" in out  # identical policies, grouped
    assert 'the title "Appointment"' in out and "no reminders" in out
    assert "events in the category staff or training keep their own title" in out
    assert "events in the category personal or private are not put on the phone at all" in out
    assert 'events in the category court show as "Court" at "Courthouse"' in out
    assert "**How far ahead the phone sees:** 14 days" in out
    assert "**How long past entries stay:** 24 hours after they end" in out
    assert "## Never copied to any phone" in out and "## When a phone is lost" in out
    assert "calendar-sanitizer-admin wipe NAME --yes" in out
    text = subprocess.run([sys.executable, "-m", "sanitizer", "--config", example, "policy",
                           "--format", "text"], capture_output=True, text=True, timeout=60,
                          check=False).stdout
    assert "**" not in text and "# " not in text and "Phone calendars of: maria, jo" in text


def test_policy_separates_pairs_that_differ(pair) -> None:
    _, work, phone, setup = pair
    setup.config_path.write_text(setup.config_path.read_text() + (
        f'\n[[pairs]]\nname = "night"\naccount = "main"\nsource = "{work}"\n'
        f'target = "{phone.rstrip("/")}-night/"\ntitle = "Busy"\nalarm = "15m"\n'
        'lookahead = "7d"\n'))
    out = setup.run_process("policy").stdout
    assert "## Phone calendars of: advocate\n" in out and "## Phone calendars of: night\n" in out
    assert "one reminder 15 minutes before each entry" in out and "7 days" in out


def test_phone_setup_prints_the_url_and_login_and_writes_a_profile(pair, tmp_path) -> None:
    _, _, phone, setup = pair
    text = setup.run_process("phone-setup", "advocate")
    assert text.code == 0 and phone in text.stdout
    assert "<the phone's own login>" in text.stdout and "phone_user" in text.stdout
    setup.config_path.write_text(setup.config_path.read_text().replace(
        '\nname = "advocate"', '\nname = "advocate"\nphone_user = "maria-phone"'))
    profile_path = tmp_path / "maria.mobileconfig"
    result = setup.run_process("phone-setup", "advocate", "--mobileconfig", str(profile_path))
    assert result.code == 0, result.output
    assert "User name: maria-phone" in result.stdout and "DAVx5" in result.stdout
    assert "iPhone" in result.stdout
    assert stat.S_IMODE(profile_path.stat().st_mode) == 0o600
    profile = plistlib.loads(profile_path.read_bytes())
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    assert {"PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"} <= set(profile)
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.caldav.account"
    assert account["CalDAVHostName"] == "127.0.0.1" and account["CalDAVUseSSL"] is False
    assert account["CalDAVPort"] == int(phone.split(":")[2].split("/")[0])
    assert account["CalDAVPrincipalURL"] == phone.rstrip("/").rsplit("/", 1)[0] + "/"
    assert "WARNING" in result.stderr and "plain http" in result.stderr  # loopback, but a phone
    assert account["CalDAVUsername"] == "maria-phone"
    assert "CalDAVPassword" not in account
    again = setup.run_process("phone-setup", "advocate", "--mobileconfig", str(profile_path),
                              "--with-password", stdin="phone-secret\n")
    assert again.code == 0 and "phone-secret" not in again.output
    with_password = plistlib.loads(profile_path.read_bytes())
    assert with_password["PayloadContent"][0]["CalDAVPassword"] == "phone-secret"
    assert with_password["PayloadUUID"] == profile["PayloadUUID"]  # replaces, not duplicates
    assert setup.run_process("phone-setup", "nobody").code == 64


# the demo ------------------------------------------------------------------------------------

def test_the_demo_reprints_the_login_with_every_changed_table_and_only_then() -> None:
    proc = subprocess.run([sys.executable, "-m", "sanitizer", "demo", "--interval", "0.2",
                           "--cycles", "5"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.split("--- cycle ")[1:]
    assert len(blocks) == 2  # the first table and the one after the change
    for block in blocks:
        table_end = block.index("PHONE CALENDAR")
        assert "password:" in block[table_end:]
    quiet = [line for line in proc.stdout.splitlines() if line.endswith(": no change")]
    assert len(quiet) == 3


def test_the_daemon_does_not_send_a_rejected_password_again(pair) -> None:
    server, _, _, setup = pair
    with FaultProxy(server.url) as proxy:
        setup.config_path.write_text(setup.config_path.read_text().replace(
            server.url, proxy.url).replace("[service]\n", '[service]\ninterval = "5s"\n'))
        (setup.credentials / "main").write_text("not-the-password")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST", "NOTIFY_SOCKET", "WATCHDOG_"))}
        env.update(setup.environment())
        daemon = subprocess.Popen([sys.executable, "-m", "sanitizer", "run"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_status(setup, "auth-rejected")
            sent = proxy.stats().total_requests
            wait_for_status(setup, rejected.REASON)  # the next cycle of that pair
            assert proxy.stats().total_requests == sent
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(15) == 0


def wait_for_status(setup: Setup, error: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    path = setup.state_dir / "status.json"
    while time.monotonic() < deadline:
        if path.exists() and f'"error": "{error}"' in path.read_text(encoding="utf-8"):
            return
        time.sleep(0.1)
    raise AssertionError(f"status never showed {error}")


def test_the_demo_stopped_by_sigterm_stops_its_server_and_removes_its_files() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sanitizer", "demo", "--interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        while "Radicale is running at" not in line:
            line = proc.stdout.readline()
            assert line, "the demo ended before its server ran"
        store = Path(line.rsplit("(store: ", 1)[1].rstrip(")\n"))
        assert store.is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not store.exists()  # and so nothing of it runs: its server was stopped first
    running = subprocess.run(["pgrep", "-f", str(store)], capture_output=True, text=True,
                             check=False)
    assert running.stdout == "", running.stdout
