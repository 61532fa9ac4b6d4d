"""Google Workspace accounts, against tests/google_sim.py: a local token endpoint that checks the
service account's signed grant, and a Google-like proxy in front of a real Radicale."""

from __future__ import annotations

import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanitizer.engine import sync_state
from sanitizer.errors import ConfigError, SecretError, StoreError
from sanitizer.service.config import parse_config
from sanitizer.stores.caldav.differences import STANDARD
from sanitizer.stores.caldav.store import Credentials, Transport
from sanitizer.stores.google import kind as google_kind
from sanitizer.stores.google import service_account as google
from sanitizer.stores.google.kind import CALDAV_BASE_URL as GOOGLE_CALDAV_URL
from tests.support.faultproxy import FaultProxy
from tests.support.google_sim import (
    PHONE_USER,
    READ_ONLY_SCOPE,
    SCOPE,
    GoogleServer,
    rate_limit_body,
)
from tests.support.harness import LIST_BODY, Setup, list_objects, put, vevent, write_setup
from tests.support.hostile_server import HostileServer
from tests.support.servers import generate_test_pki

NOW = "2030-03-04T09:00:00+00:00"
PROPFIND = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
            b"<D:getetag/></D:prop></D:propfind>")


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleServer]:
    with GoogleServer() as running:
        yield running


@pytest.fixture
def sim(server: GoogleServer) -> Iterator[GoogleServer]:
    """The module's server with counters zeroed and the default token lifetime."""
    assert server.proxy is not None and server.tokens is not None
    server.proxy.reset()
    server.tokens.minted.clear()
    server.tokens.expires_in = 3599
    yield server
    server.proxy.reset()


@pytest.fixture
def bench(sim: GoogleServer, tmp_path: Path) -> tuple[GoogleServer, str, str, Setup]:
    """A work calendar with two events, its phone twin, and a config for the pair."""
    source = new_calendar(sim, "work")
    target = source.replace("/work", "/phone")
    put(sim, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    put(sim, source + "b.ics", vevent("b", "20300305T130000Z", "20300305T140000Z", "Court"))
    setup = write_setup(tmp_path / "setup", sim, [("advocate", source, target)])
    assert sim.proxy is not None
    sim.proxy.reset()
    return sim, source, target, setup


def new_calendar(sim: GoogleServer, prefix: str) -> str:
    """A calendar made "in Google Calendar" (a work-* one with its phone-* twin)."""
    return sim.create_calendar(f"{prefix}-{uuid.uuid4().hex[:8]}", prefix)


def transport(sim: GoogleServer, key: str | None = None) -> Transport:
    tokens = google.ServiceAccountTokens(google.parse_key(key or sim.password), sim.user)
    return Transport(Credentials(sim.url, sim.user, "", True, 10.0, bearer=tokens),
                     differences=google.GOOGLE)


# ----------------------------------------------------------------------------- configuration

def google_account(**keys: str) -> dict[str, object]:
    account = {"kind": "google", "service_account_key": "agency-sa",
               "impersonate": "advocate@agency.example", **keys}
    return {"accounts": {"g": account},
            "pairs": [{"name": "p", "account": "g",
                       "source": "advocate%40agency.example/events/",
                       "target": "phone-cal%40group.calendar.google.com/events/"}]}


def test_a_google_account_defaults_to_googles_caldav_base() -> None:
    config = parse_config(google_account())
    account = config.accounts["g"]
    assert (account.kind, account.url, account.impersonate) == (
        "google", GOOGLE_CALDAV_URL, "advocate@agency.example")
    assert config.pairs[0].source_url == GOOGLE_CALDAV_URL + "advocate%40agency.example/events/"


@pytest.mark.parametrize(("keys", "problem"), [
    ({"kind": "exchange"}, "accounts.g.kind: expected one of caldav, google"),
    ({"impersonate": "advocate"}, "accounts.g.impersonate: expected the Workspace user's email"),
    ({"username": "x"}, "accounts.g.username: unknown key"),
    ({"url": "http://calendar.example/caldav/v2/"}, "accounts.g.url: plain http is refused"),
    ({"service_account_key": "../key"}, "accounts.g.service_account_key: credential names use"),
])
def test_google_account_problems_are_config_errors(keys: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(google_account(**keys))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


@pytest.mark.integration
def test_without_the_extra_a_google_account_is_a_one_line_config_error(
        bench: tuple[GoogleServer, str, str, Setup], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, _, setup = bench
    monkeypatch.setattr(google_kind, "google_auth_installed", lambda: False)
    result = setup.run("sync", "--now", NOW)
    assert result.code == 78, result.output
    lines = [line for line in result.output.splitlines() if "calendar-sanitizer[google]" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "accounts.main.kind: google accounts need the extra: "
        "pip install 'calendar-sanitizer[google]'"), result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
@pytest.mark.parametrize(("text", "message"), [
    ("not json SECRET-MARKER", "is not JSON"),
    ('{"type": "authorized_user", "private_key": "SECRET-MARKER"}',
     "is not a service account key"),
    ('{"type": "service_account", "client_email": "a@b", "private_key": "SECRET-MARKER"}',
     "has no token_uri"),
    (json.dumps({"type": "service_account", "client_email": "a@b", "token_uri": "https://o.test/t",
                 "private_key": "-----BEGIN PRIVATE KEY-----\nSECRET-MARKER\n-----END"}),
     "has a private key that does not load"),
])
def test_a_bad_key_is_named_not_quoted(sim: GoogleServer, tmp_path: Path, text: str,
                                       message: str) -> None:
    source = new_calendar(sim, "work-badkey")
    setup = write_setup(tmp_path, sim, [("p", source, source.replace("/work", "/phone"))])
    (setup.credentials / "main").write_text(text, encoding="utf-8")
    setup.config_path.chmod(0o600)
    result = setup.run("check")
    assert result.code == 78 and message in result.stdout, result.output
    assert "SECRET-MARKER" not in result.output


@pytest.mark.integration
def test_a_missing_key_says_how_to_store_one(bench: tuple[GoogleServer, str, str, Setup]) -> None:
    _, _, _, setup = bench
    (setup.credentials / "main").unlink()
    setup.config_path.chmod(0o600)
    result = setup.run("check")
    assert result.code == 78, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("account main"))
    assert "no-key" in row and "service account key" not in row, row  # the hint, not the label
    assert "systemd-creds encrypt --name=main KEY.json" in row, row
    sync = setup.run("sync", "--now", NOW)
    assert "service account key main: no credential file 'main'" in sync.output, sync.output


@pytest.mark.integration
def test_a_token_uri_over_plain_http_elsewhere_is_refused(sim: GoogleServer) -> None:
    from sanitizer.service.connections import open_connection  # noqa: PLC0415

    key = json.loads(sim.password)
    key["token_uri"] = "http://oauth.example/token"

    class Keyring:
        def get_password(self, service: str, name: str) -> str:
            return json.dumps(key)

    account = parse_config(google_account()).accounts["g"]
    with pytest.raises(SecretError, match="token_uri plain http is refused"):
        open_connection(account, Keyring(), 5.0)  # type: ignore[arg-type]


KEY_FIELDS = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.just("service_account"), st.text(max_size=10), st.none()),
    "client_email": st.one_of(st.just("sa@p.iam.gserviceaccount.com"), st.text(max_size=10),
                              st.integers()),
    "token_uri": st.one_of(st.just("https://oauth2.googleapis.com/token"), st.text(max_size=10),
                           st.none()),
    "private_key": st.sampled_from(["-----BEGIN PRIVATE KEY-----MARKER", "", 7]),
})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KEY_FIELDS)
def test_a_key_problem_never_quotes_the_key(fields: dict[str, object]) -> None:
    try:
        key = google.parse_key(json.dumps(fields))
    except ValueError as problem:
        assert "MARKER" not in str(problem)
    else:
        assert "MARKER" not in repr(key) and key.client_email == fields["client_email"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([200, 401, 403, 404, 429, 500]), st.booleans(),
       st.text(st.characters(blacklist_characters='"'), max_size=50))
def test_only_a_403_naming_a_usage_limit_is_a_rate_limit(status: int, named: bool,
                                                         noise: str) -> None:
    body = noise.encode("utf-8", "surrogatepass") + (rate_limit_body(status) if named else b"")
    assert google.GOOGLE.is_rate_limit(status, body) == (status == 403 and named)
    assert not STANDARD.is_rate_limit(status, body)


# ----------------------------------------------------------------------------- tokens

@pytest.mark.integration
def test_tokens_are_minted_lazily_cached_and_minted_again_when_refused(
        sim: GoogleServer) -> None:
    calendar = new_calendar(sim, "work-tokens")
    t = transport(sim)
    assert sim.tokens is not None and sim.proxy is not None
    assert sum(sim.tokens.minted.values()) == 0  # nothing before the first request
    for _ in range(3):
        assert t.request("PROPFIND", calendar, PROPFIND, {"Depth": "0"}).status == 207
    assert sim.tokens.minted[sim.user] == 1
    sim.tokens.expire_all()  # the server forgets the token before the client thinks it stale
    assert t.request("PROPFIND", calendar, PROPFIND, {"Depth": "0"}).status == 207
    assert sim.tokens.minted[sim.user] == 2
    assert sim.proxy.refused["unauthenticated"] == 1


@pytest.mark.integration
def test_one_token_per_account_for_every_pairs_worker(sim: GoogleServer, tmp_path: Path) -> None:
    """Each pair's cycle runs in a worker process of its own; the token the first one mints is
    handed back to the supervisor and on to the others, never minted again per pair."""
    pairs = []
    for n in range(3):
        source = new_calendar(sim, f"work-{n}")
        put(sim, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane"))
        pairs.append((f"p{n}", source, source.replace("/work", "/phone")))
    setup = write_setup(tmp_path / "setup", sim, pairs)
    assert sim.tokens is not None
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    assert result.stdout.count("created=1") == 3
    assert sim.tokens.minted[sim.user] == 1


@pytest.mark.integration
def test_a_token_google_auth_thinks_stale_is_minted_again_before_use(sim: GoogleServer) -> None:
    """google-auth treats a token as expired 3m45s early: one that lives 200s is never reused."""
    calendar = new_calendar(sim, "work-stale")
    assert sim.tokens is not None and sim.proxy is not None
    sim.tokens.expires_in = 200
    t = transport(sim)
    for _ in range(2):
        t.request("PROPFIND", calendar, PROPFIND, {"Depth": "0"})
    assert sim.tokens.minted[sim.user] == 2 and not sim.proxy.refused


@pytest.mark.integration
def test_a_refused_grant_fails_the_pair_with_77_and_a_reason_code(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, target, setup = bench
    assert sim.tokens is not None
    sim.tokens.refuse_next = "unauthorized_client"
    setup.config_path.chmod(0o600)
    result = setup.run("check")
    assert result.code == 77, result.output
    assert "token-unauthorized-client" in result.stdout and "domain-wide delegation" in \
        result.stdout
    assert "Refused on request" not in result.output  # the endpoint's text is not repeated
    assert not list_objects(sim, target)


@pytest.mark.integration
def test_check_names_the_caldav_api_when_google_refuses_the_calendars(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, _, setup = bench
    assert sim.proxy is not None
    setup.config_path.chmod(0o600)
    sim.proxy.caldav_api_enabled = False
    try:
        result = setup.run("check")
    finally:
        sim.proxy.caldav_api_enabled = True
    assert result.code == 77, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("pair advocate"))
    assert "forbidden" in row and "CalDAV API (caldav.googleapis.com) is enabled" in row, row


@pytest.mark.integration
def test_no_token_or_key_reaches_a_log_line_the_output_or_the_disk(
        bench: tuple[GoogleServer, str, str, Setup], caplog: pytest.LogCaptureFixture) -> None:
    sim, _, _, setup = bench
    caplog.set_level(logging.DEBUG)  # caldav logs request headers at DEBUG
    first = setup.run("sync", "--now", NOW)
    assert first.code == 0, first.output
    assert sim.tokens is not None
    issued = list(sim.tokens.grants)
    assert issued
    secret = json.loads(sim.password)["private_key"].splitlines()[1]
    everything = caplog.text + first.output + setup.state_bytes().decode("utf-8", "replace")
    assert not [token for token in issued if token in everything]
    assert secret not in everything


# ----------------------------------------------------------------------------- differences

@pytest.mark.integration
@pytest.mark.parametrize("spelling", ["%40", "@"])
def test_a_create_never_overwrites_what_is_at_its_name(
        sim: GoogleServer, tmp_path: Path, spelling: str) -> None:
    """Google ignores If-None-Match, so a create looks at the listing first, whichever way the
    listing spells the "@" of a calendar ID (Google writes "%40", but not always)."""
    assert sim.proxy is not None
    source = sim.create_calendar(f"work-{uuid.uuid4().hex[:8]}%40group.calendar.google.com", "w")
    target = source.replace("/work", "/phone")
    put(sim, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    setup = write_setup(tmp_path, sim, [("advocate", source, target)])
    assert setup.run("sync", "--now", NOW).code == 0
    href = sorted(list_objects(sim, target))[0]
    url = target + href.rsplit("/", 1)[1]
    sim.request("DELETE", url)
    put(sim, url, vevent("someone-else", "20300306T100000Z", "20300306T110000Z", "Not ours"))
    sim.proxy.at_in_hrefs = spelling == "@"
    try:
        result = setup.run("sync", "--now", NOW, "--full")
    finally:
        sim.proxy.at_in_hrefs = False
    assert "name-taken=1" in result.stdout, result.output
    assert b"UID:someone-else" in list_objects(sim, target)[href][1]


@pytest.mark.integration
def test_a_create_between_full_cycles_asks_whether_its_name_is_free(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    """No listing is read on a quiet cycle, so the name is looked up before the PUT."""
    sim, source, _, setup = bench
    assert sim.proxy is not None
    assert setup.run("sync", "--now", NOW).code == 0
    put(sim, source + "c.ics", vevent("c", "20300306T130000Z", "20300306T140000Z"))
    sim.proxy.reset()
    result = setup.run("sync", "--now", NOW)
    assert "created=1" in result.stdout and "[incremental]" in result.stdout, result.output
    assert sim.proxy.requests["PROPFIND"] == 1 and sim.proxy.requests["PUT"] == 1


@pytest.mark.integration
def test_the_phone_calendar_is_never_made_and_check_says_how(
        sim: GoogleServer, tmp_path: Path) -> None:
    source = new_calendar(sim, "work-nophone")
    put(sim, source + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    target = source.replace("/work-nophone", "/missing")
    setup = write_setup(tmp_path, sim, [("advocate", source, target)], create_targets=False)
    assert sim.proxy is not None
    result = setup.run("sync", "--now", NOW)
    assert result.code != 0 and "Google cannot create calendars" in result.output, result.output
    assert sim.proxy.requests["MKCALENDAR"] == 0
    setup.config_path.chmod(0o600)
    check = setup.run("check")
    assert check.code == 78 and "target-missing" in check.stdout, check.output
    assert "create the phone calendar in Google Calendar" in check.stdout
    assert "See all event details" in check.stdout


@pytest.mark.integration
@pytest.mark.parametrize("statuses", [(403,), (429,), (403, 429)])
def test_rate_limits_are_retried_with_backoff(
        bench: tuple[GoogleServer, str, str, Setup], statuses: tuple[int, ...]) -> None:
    sim, _, target, setup = bench
    assert sim.proxy is not None
    sim.proxy.limit_next(*statuses)
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0 and "created=2" in result.stdout, result.output
    assert sim.proxy.refused["rate-limited"] == len(statuses)
    assert len(list_objects(sim, target)) == 2


@pytest.mark.integration
def test_a_403_that_is_no_rate_limit_is_not_retried(sim: GoogleServer) -> None:
    calendar = new_calendar(sim, "work-403")
    t = transport(sim)
    todo = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n"
            "END:VCALENDAR\r\n")
    with pytest.raises(StoreError) as caught:
        t.request("PUT", calendar + "t.ics", todo.encode(), {"Content-Type": "text/calendar"})
    assert caught.value.reason == "forbidden" and t.requests["PUT"] == 1


@pytest.mark.integration
def test_a_forgotten_sync_token_answered_410_falls_back_to_a_full_cycle(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, _, setup = bench
    assert setup.run("sync", "--now", NOW).code == 0
    path = sync_state.path_for(setup.state_dir, "advocate")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["token"] = "http://radicale.org/ns/sync/" + "0" * 64
    path.write_text(json.dumps(data), encoding="utf-8")
    assert sim.proxy is not None
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0 and "unchanged=2" in result.stdout, result.output
    assert "[full]" in result.stdout
    assert sim.proxy.refused["forgotten-sync-token"] == 1


@pytest.mark.integration
def test_a_read_only_token_cannot_write(sim: GoogleServer) -> None:
    """What the simulator does with the read-only scope (Google does not document it)."""
    calendar = new_calendar(sim, "work-ro")
    assert sim.tokens is not None
    token = sim.tokens.issue(sim.user, frozenset({READ_ONLY_SCOPE}))
    from demo.embedded_server import dav_request  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/calendar"}
    answer = dav_request("PUT", calendar + "x.ics", body=vevent("x", "20300304T130000Z",
                                                               "20300304T140000Z"),
                         headers=headers)
    assert answer.status == 403 and SCOPE not in sim.tokens.grants[token].scopes


# ----------------------------------------------------------------------------- whole cycles

@pytest.mark.integration
def test_the_phones_own_account_sees_only_the_shared_phone_calendar(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    """The setup docs/google.md describes: the phone calendar shared read-only with the phone's
    account, which sees the sanitized entries and nothing else, and cannot change them."""
    sim, source, target, setup = bench
    assert sim.proxy is not None and sim.tokens is not None
    sim.proxy.share(target, PHONE_USER, "read")
    assert setup.run("sync", "--now", NOW).code == 0
    token = sim.tokens.issue(PHONE_USER)
    headers = {"Authorization": f"Bearer {token}", "Depth": "1",
               "Content-Type": "application/xml"}
    from demo.embedded_server import dav_request  # noqa: PLC0415

    phone = dav_request("REPORT", target, body=LIST_BODY, headers=headers)
    assert phone.status == 207 and phone.body.count(b"BEGIN:VEVENT") == 2
    assert b"Jane" not in phone.body and b"Court" not in phone.body
    assert dav_request("REPORT", source, body=LIST_BODY, headers=headers).status == 404
    entry = sorted(list_objects(sim, target))[0].rsplit("/", 1)[1]
    assert dav_request("DELETE", target + entry, headers=headers).status == 403
    assert len(list_objects(sim, target)) == 2


@pytest.mark.integration
def test_google_and_caldav_accounts_mix_in_one_config(sim: GoogleServer, tmp_path: Path) -> None:
    """A Google work calendar to a Radicale phone calendar, and a Radicale one to Google."""
    radicale = sim.radicale
    google_work = new_calendar(sim, "work-mixed")
    put(sim, google_work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z"))
    plain_phone = radicale.create_calendar(f"plain-phone-{uuid.uuid4().hex[:8]}", "phone")
    plain_work = radicale.create_calendar(f"plain-work-{uuid.uuid4().hex[:8]}", "work")
    put(radicale, plain_work + "b.ics", vevent("b", "20300304T150000Z", "20300304T160000Z"))
    google_phone = google_work.replace("/work", "/phone")
    setup = write_setup(tmp_path, sim, [])
    (setup.credentials / "plain").write_text(radicale.password, encoding="utf-8")
    text = setup.config_path.read_text(encoding="utf-8") + (
        f'\n[accounts.plain]\nurl = "{radicale.url}"\nusername = "{radicale.username}"\n'
        f'\n[[pairs]]\nname = "g2c"\nsource_account = "main"\ntarget_account = "plain"\n'
        f'source = "{google_work}"\ntarget = "{plain_phone}"\n'
        f'\n[[pairs]]\nname = "c2g"\nsource_account = "plain"\ntarget_account = "main"\n'
        f'source = "{plain_work}"\ntarget = "{google_phone}"\n')
    setup.config_path.write_text(text, encoding="utf-8")
    result = setup.run("sync", "--now", NOW)
    assert result.code == 0, result.output
    assert result.stdout.count("created=1") == 2, result.output
    assert len(list_objects(radicale, plain_phone)) == 1
    assert len(list_objects(sim, google_phone)) == 1


@pytest.mark.integration
def test_requests_and_token_mints_of_a_first_and_a_quiet_cycle_of_100_events(
        sim: GoogleServer, tmp_path: Path) -> None:
    """Counted at a proxy between the sanitizer and Google's; tokens counted at the endpoint."""
    source = new_calendar(sim, "work-hundred")
    for i in range(100):
        day, hour = divmod(i, 8)
        put(sim, f"{source}e{i}.ics", vevent(f"e{i}", f"203003{4 + day:02d}T{9 + hour:02d}0000Z",
                                              f"203003{4 + day:02d}T{9 + hour:02d}3000Z"))
    assert sim.tokens is not None and sim.proxy is not None
    sim.tokens.minted.clear()
    with FaultProxy(sim.url, log=True) as proxy:
        relative = [u.removeprefix(sim.url) for u in (source, source.replace("/work", "/phone"))]
        setup = write_setup(tmp_path, sim, [("advocate", *relative)], url=proxy.url,
                            create_targets=False)
        first = setup.run("sync", "--now", NOW)
        counts_first = dict(proxy.stats().requests)
        proxy.reset_stats()
        sim.tokens.expire_all()  # the second run's process would mint anew anyway
        second = setup.run("sync", "--now", NOW)
        counts_second = dict(proxy.stats().requests)
    assert first.code == 0 and "created=100" in first.stdout, first.output
    assert second.code == 0 and "unchanged=100" in second.stdout, second.output
    assert counts_first.get("PUT") == 100 and not counts_first.get("MKCALENDAR")
    assert counts_second == {"REPORT": 1}, counts_second
    assert sim.tokens.minted[sim.user] == 2  # one per run: cached across 100+ requests
    print(f"\n[google] first sync: {counts_first}; quiet sync: {counts_second}; "
          f"tokens minted: {sim.tokens.minted[sim.user]}")


@pytest.mark.integration
def test_a_refused_fresh_token_never_holds_the_account_back(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, target, setup = bench
    assert sim.proxy is not None
    sim.proxy.refuse_tokens = True
    first = setup.run("sync", "--now", NOW)
    assert first.code == 77 and "access-token-refused" in first.output, first.output
    sim.proxy.refuse_tokens = False
    later = setup.run("sync", "--now", NOW)
    assert later.code == 0 and "created=2" in later.stdout, later.output
    assert len(list_objects(sim, target)) == 2


@pytest.mark.integration
def test_a_token_answer_google_auth_cannot_compute_with_is_a_reason_code(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, target, setup = bench
    assert sim.tokens is not None
    sim.tokens.expires_in = 10**12
    result = setup.run("sync", "--now", NOW)
    assert result.code == 1 and "token-bad-answer" in result.output, result.output
    assert "Traceback" not in result.output and not list_objects(sim, target)


@pytest.mark.integration
def test_a_token_error_word_of_the_servers_choosing_is_never_a_reason(
        bench: tuple[GoogleServer, str, str, Setup]) -> None:
    sim, _, _, setup = bench
    assert sim.tokens is not None
    sim.tokens.refuse_next = "made_up_by_the_server"
    result = setup.run("sync", "--now", NOW)
    assert "token-refused" in result.output and "made" not in result.output, result.output
    assert "made" not in "".join(p.read_text(encoding="utf-8", errors="replace")
                                 for p in setup.state_dir.rglob("*") if p.is_file())


@pytest.mark.integration
@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_token_request_trusts_no_ca_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    from google.auth import exceptions  # noqa: PLC0415

    pki = generate_test_pki(tmp_path / "pki")
    if variable == "SSL_CERT_DIR":  # a hashed directory, as c_rehash makes it
        digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca_cert)],
                                capture_output=True, text=True, check=True).stdout.strip()
        (tmp_path / "certs").mkdir()
        (tmp_path / "certs" / f"{digest}.0").write_bytes(pki.ca_cert.read_bytes())
    monkeypatch.setenv(variable, str(tmp_path / "certs" if variable == "SSL_CERT_DIR"
                                     else pki.ca_cert))
    with HostileServer(tls=(str(pki.server_cert), str(pki.server_key))) as endpoint:
        uri = endpoint.url + "token"
        request = google.TokenRequest(uri, True, 5.0)
        with pytest.raises(exceptions.TransportError):
            request(uri, "POST", b"assertion=signed-grant")
        assert endpoint.seen == []  # the handshake failed: the grant was never sent
