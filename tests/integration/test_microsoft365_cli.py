"""Microsoft 365 accounts through the real CLI and config loader: check, preview, sync, status,
wipe on the Graph simulator; a pair from Microsoft 365 to CalDAV; config problems (exit 78)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sanitizer.errors import ConfigError
from sanitizer.service.config import parse_config
from sanitizer.stores.microsoft365 import kind as m365_kind
from tests.support.clock import tomorrow_at
from tests.support.daemon_process import Process
from tests.support.graph_sim import ADVOCATE, CLIENT_ID, PHONE, SECRET, TENANT, GraphSim
from tests.support.harness import Setup
from tests.support.servers import RadicaleServer

NOW = tomorrow_at(9)  # relative to the real date: tokens and status use the clock
HOUR = timedelta(hours=1)
M365 = {"kind": "microsoft365", "tenant_id": TENANT, "client_id": CLIENT_ID,
        "client_credential": "graph-app"}


def m365_setup(root: Path, sim: GraphSim, target: str = f"{PHONE}/Appointments",
               target_account: str = "agency", extra_account: str = "") -> Setup:
    state, credentials = root / "state", root / "credentials"
    credentials.mkdir(parents=True, mode=0o700)
    (credentials / "graph-app").write_text(SECRET, encoding="utf-8")
    text = (f'[service]\nstate_dir = "{state}"\n\n[accounts.agency]\nkind = "microsoft365"\n'
            f'tenant_id = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            f'client_credential = "graph-app"\ngraph_url = "{sim.graph_url}"\n'
            f'authority = "{sim.base}/"\n{extra_account}\n'
            f'[[pairs]]\nname = "maria"\nsource_account = "agency"\n'
            f'target_account = "{target_account}"\nsource = "{ADVOCATE}/Calendar"\n'
            f'target = "{target}"\n')
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return Setup(root, path, state, credentials)


@pytest.fixture
def sim() -> Iterator[GraphSim]:
    server = GraphSim().start()
    server.add_calendar(PHONE, "Calendar")
    yield server
    server.stop()


@pytest.mark.integration
def test_check_preview_sync_status_wipe(sim: GraphSim, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # `status` compares with the clock
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    for i in range(3):
        sim.add_event(calendar, now + i * HOUR, now + i * HOUR + HOUR / 2, subject="Secret-subject")
    setup = m365_setup(tmp_path, sim)
    missing = setup.run("check")
    assert missing.code == 78 and "create-target maria" in missing.stdout, missing.output
    assert setup.run("sync", "--now", NOW.isoformat()).code == 78  # no cycle creates it
    assert not any(sim.calendars[c].name == "Appointments" for c in sim.mailboxes.get(PHONE, []))
    made = setup.run("create-target", "maria")
    assert made.code == 0 and "created" in made.stdout, made.output
    check = setup.run("check")
    assert check.code == 0, check.output
    assert "app token issued" in check.stdout and "target calendar found" in check.stdout
    preview = setup.run("preview", "--now", now.isoformat())
    assert preview.code == 0 and sim.events(PHONE, "Appointments") == []
    sync = setup.run("sync", "--now", now.isoformat())
    assert sync.code == 0 and "created=3" in sync.stdout, sync.output
    quiet = setup.run("sync", "--now", (now + timedelta(minutes=5)).isoformat())
    assert "[quiet]" in quiet.stdout
    assert setup.run("status").code == 0
    phone_cal = next(c for c in sim.mailboxes[PHONE] if sim.calendars[c].name == "Appointments")
    sim.add_event(phone_cal, now, now + HOUR, subject="the phone's own")
    wipe = setup.run("wipe", "maria", "--yes")
    assert wipe.code == 0 and "deleted=3 foreign=1" in wipe.stdout, wipe.output
    assert [e["subject"] for e in sim.events(PHONE, "Appointments")] == ["the phone's own"]
    assert "secret-subject" not in (check.output + preview.output + sync.output
                                    + wipe.output).lower()


@pytest.mark.integration
def test_check_reports_a_refused_credential_and_a_missing_calendar(sim: GraphSim,
                                                                   tmp_path: Path) -> None:
    setup = m365_setup(tmp_path, sim)
    (setup.credentials / "graph-app").write_text("wrong", encoding="utf-8")
    result = setup.run("check")
    assert result.code == 77 and "auth-rejected" in result.stdout, result.output
    (setup.credentials / "graph-app").write_text(SECRET, encoding="utf-8")
    result = setup.run("check")
    assert result.code == 78 and "source-missing" in result.stdout, result.output


@pytest.mark.integration
def test_a_pair_from_microsoft365_to_caldav(sim: GraphSim, tmp_path: Path,
                                            radicale: RadicaleServer) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    sim.add_event(calendar, NOW + HOUR, NOW + 2 * HOUR, subject="private")
    phone_url = radicale.create_calendar(f"m365-{tmp_path.name}"[-40:], "Appointments")
    caldav = (f'\n[accounts.phone]\nurl = "{radicale.url}"\n'
              f'username = "{radicale.username}"\n')
    setup = m365_setup(tmp_path, sim, target=phone_url, target_account="phone",
                       extra_account=caldav)
    (setup.credentials / "phone").write_text(radicale.password, encoding="utf-8")
    result = setup.run("sync", "--now", NOW.isoformat())
    assert result.code == 0 and "created=1" in result.stdout, result.output


@pytest.mark.integration
def test_the_daemon_syncs_a_microsoft365_pair(sim: GraphSim, tmp_path: Path) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    soon = datetime.now(UTC).replace(microsecond=0) + 24 * HOUR
    sim.add_event(calendar, soon, soon + HOUR, subject="Secret-subject")
    setup = m365_setup(tmp_path, sim)
    assert setup.run("create-target", "maria").code == 0
    minted = len(sim.access_tokens)  # create-target's own
    text = setup.config_path.read_text().replace("[service]\n", '[service]\ninterval = "5s"\n')
    setup.config_path.write_text(text)
    process = Process(setup)
    try:
        deadline = time.monotonic() + 30
        while not sim.events(PHONE, "Appointments") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(sim.events(PHONE, "Appointments")) == 1
        process.wait_for_line("cycle 2:", timeout=60)  # its second cycle, in a worker of its own
        code, _ = process.stop(timeout=15)
    finally:
        process.kill()
    output = "\n".join(process.lines)
    assert code == 0, output
    assert "created=1" in output and "Traceback" not in output
    assert "secret-subject" not in output.lower()
    assert len(sim.access_tokens) == minted + 1  # one, handed on


def _problems(accounts: dict[str, Any], source: str = f"{ADVOCATE}/Calendar") -> list[str]:
    data = {"accounts": accounts, "pairs": [{"name": "maria", "account": "a", "source": source,
                                             "target": f"{PHONE}/Appointments"}]}
    try:
        parse_config(data)
    except ConfigError as exc:
        return exc.problems
    return []


def test_a_microsoft365_account_is_read_with_its_defaults() -> None:
    config = parse_config({"accounts": {"a": M365}, "pairs": [
        {"name": "maria", "account": "a", "source": f"{ADVOCATE}/Calendar",
         "target": "Maria-Phone@Agency.org/Appointments"}]})
    account = config.accounts["a"]
    assert (account.kind, account.url) == ("microsoft365", "https://graph.microsoft.com/v1.0/")
    assert account.authority == "https://login.microsoftonline.com/"
    assert account.secret_name == "graph-app"
    assert config.pairs[0].target_url == ("https://graph.microsoft.com/v1.0/users/"
                                          "maria-phone@agency.org/calendars/Appointments/")


def test_caldav_accounts_are_unchanged() -> None:
    config = parse_config({"accounts": {"a": {"url": "https://dav.example/", "username": "u"}},
                           "pairs": [{"name": "p", "account": "a", "source": "work/",
                                      "target": "phone/"}]})
    assert config.accounts["a"].kind == "caldav" and config.accounts["a"].secret_name == "a"


@pytest.mark.parametrize(("change", "expected"), [
    ({"kind": "exchange"}, "accounts.a.kind: expected one of caldav, google, microsoft365"),
    ({"tenant_id": "not a tenant"}, "accounts.a.tenant_id: not a valid tenant id"),
    ({"client_id": "x"}, "accounts.a.client_id: not a valid client id"),
    ({"graph_url": "http://graph.example/v1.0/"}, "accounts.a.graph_url: plain http is refused"),
    ({"url": "https://x/"}, "accounts.a.url: unknown key"),
])
def test_microsoft365_account_problems(change: dict[str, str], expected: str) -> None:
    problems = _problems({"a": {**M365, **change}})
    assert any(p.startswith(expected) for p in problems), problems


def test_a_pair_calendar_must_be_user_slash_calendar() -> None:
    problems = _problems({"a": M365}, source="Calendar")
    assert problems == ["pairs[0].source: expected USER/CALENDAR, USER a mailbox address or "
                        "object id"]


def test_without_msal_the_account_is_a_config_problem(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(m365_kind.importlib.util, "find_spec",
                        lambda name, *a: None if name == "msal" else real(name, *a))
    problems = _problems({"a": M365})
    assert problems == ["accounts.a.kind: Microsoft 365 accounts need msal; install the extra: "
                        "pip install 'calendar-sanitizer[microsoft365]'"]
    sim = GraphSim()
    sim.server = type("S", (), {"server_address": ("127.0.0.1", 9)})()  # not started
    result = m365_setup(tmp_path, sim).run("sync")
    assert result.code == 78 and "calendar-sanitizer[microsoft365]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# discover ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_discover_lists_a_mailboxs_calendars_with_lines_to_paste(sim: GraphSim,
                                                                  tmp_path: Path) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    sim.add_event(calendar, NOW, NOW + HOUR, subject="Secret-subject")
    sim.add_calendar(ADVOCATE, 'Shared "board"', can_edit=False)
    for i in range(3):
        sim.add_calendar(ADVOCATE, f"Extra {i}")
    sim.calendar_page_size = 2  # three pages, followed through @odata.nextLink
    setup = m365_setup(tmp_path, sim)
    result = setup.run("discover", "agency", "--user", ADVOCATE.upper())
    assert result.code == 0, result.output
    out = result.stdout
    assert f"account agency: mailbox {ADVOCATE}: 5 calendar(s)" in out
    assert f'source = "{ADVOCATE}/Calendar"   # Calendar: read-write' in out
    assert f'target = "{ADVOCATE}/Calendar"   # Calendar: read-write' in out
    assert f'source = "{ADVOCATE}/Shared \\"board\\""   # Shared "board": read-only' in out
    assert f'target = "{ADVOCATE}/Shared' not in out  # Graph says read-only
    assert f'source = "{ADVOCATE}/Extra 2"' in out
    assert not any(ident in result.output for ident in sim.calendars)  # ids never shown
    assert "secret-subject" not in result.output.lower() and SECRET not in result.output


@pytest.mark.integration
def test_discover_pasted_lines_make_a_pair_that_check_accepts(sim: GraphSim,
                                                              tmp_path: Path) -> None:
    sim.add_calendar(ADVOCATE, "Casework ü")
    setup = m365_setup(tmp_path, sim)
    out = setup.run("discover", "agency", "--user", ADVOCATE).stdout
    source = next(line for line in out.splitlines() if line.startswith("source = "))
    text = setup.config_path.read_text().replace(f'source = "{ADVOCATE}/Calendar"', source)
    setup.config_path.write_text(text)
    assert setup.run("create-target", "maria").code == 0
    check = setup.run("check")
    assert check.code == 0, check.output


@pytest.mark.integration
def test_discover_usage_errors_for_user(sim: GraphSim, tmp_path: Path) -> None:
    caldav = '\n[accounts.dav]\nurl = "https://dav.example.org/"\nusername = "u"\n'
    setup = m365_setup(tmp_path, sim, extra_account=caldav)
    missing = setup.run("discover", "agency")
    assert missing.code == 64 and "--user MAILBOX" in missing.stderr, missing.output
    not_m365 = setup.run("discover", "dav", "--user", ADVOCATE)
    assert not_m365.code == 64 and "--user is for Microsoft 365" in not_m365.stderr
    malformed = setup.run("discover", "agency", "--user", "maria/../x")
    assert malformed.code == 64 and sim.requests.total() == 0, malformed.output
    for result in (missing, not_m365, malformed):
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_discover_wrong_secret_is_77(sim: GraphSim, tmp_path: Path) -> None:
    setup = m365_setup(tmp_path, sim)
    (setup.credentials / "graph-app").write_text("wrong-secret-value", encoding="utf-8")
    result = setup.run("discover", "agency", "--user", ADVOCATE)
    assert result.code == 77 and "auth-rejected" in result.stderr, result.output
    assert "client_credential" not in result.stderr and "'graph-app'" in result.stderr
    assert "wrong-secret-value" not in result.output and SECRET not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.integration
def test_discover_unknown_mailbox_names_it(sim: GraphSim, tmp_path: Path) -> None:
    setup = m365_setup(tmp_path, sim)
    result = setup.run("discover", "agency", "--user", "nobody@agency.org")
    assert result.code == 64 and "no mailbox nobody@agency.org" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_discover_unreachable_graph_is_69(sim: GraphSim, tmp_path: Path) -> None:
    setup = m365_setup(tmp_path, sim)
    sim.fail(503, times=10)
    result = setup.run("discover", "agency", "--user", ADVOCATE)
    assert result.code == 69 and "503" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    nowhere = GraphSim()
    nowhere.server = type("S", (), {"server_address": ("127.0.0.1", 9)})()  # not started
    result = m365_setup(tmp_path / "nowhere", nowhere).run("discover", "agency", "--user",
                                                           ADVOCATE)
    assert result.code == 69 and "authority-unreachable" in result.stderr, result.output
