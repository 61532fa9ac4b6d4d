"""Microsoft 365 under attack, on the Graph simulator through the real CLI: a target that is the
work calendar under another spelling, a source that holds phone entries."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sanitizer.core.model import Action
from sanitizer.core.policy import Rule
from sanitizer.errors import StoreError
from sanitizer.stores.microsoft365.connect import target_for
from sanitizer.stores.microsoft365.target import MARK_ID
from tests.integration.test_microsoft365_cli import m365_setup
from tests.support.graph_sim import ADVOCATE, PHONE, SECRET, TENANT, GraphSim, Rig
from tests.support.harness import Setup
from tests.support.hostile_server import HostileServer, Seen
from tests.support.servers import generate_test_pki

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def sim() -> Iterator[GraphSim]:
    server = GraphSim().start()
    server.add_calendar(PHONE, "Calendar")
    server.add_calendar(PHONE, "Appointments")  # the pairs' phone calendar, made on purpose
    yield server
    server.stop()


def _work_calendar(sim: GraphSim) -> str:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    sim.add_event(calendar, NOW + HOUR, NOW + 2 * HOUR, subject="Intake")
    return calendar


def test_a_target_that_is_the_source_in_another_case_is_never_written(sim: GraphSim,
                                                                      tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim, target=f"{ADVOCATE}/calendar")
    check = setup.run("check")
    assert check.code == 78 and "target-name-taken" in check.stdout, check.output
    for minutes in range(0, 30, 5):
        sync = setup.run("sync", "--now", (NOW + timedelta(minutes=minutes)).isoformat())
        assert sync.code != 0 and "target-missing" in sync.output, sync.output
    assert [e["subject"] for e in sim.events(ADVOCATE, "Calendar")] == ["Intake"]
    assert sim.writes[ADVOCATE] == 0  # a cycle never even tries to create a calendar


def test_a_target_naming_the_source_mailbox_by_object_id_is_refused(sim: GraphSim,
                                                                   tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim, target=f"{sim.object_ids[ADVOCATE]}/Calendar")
    check = setup.run("check")
    assert check.code == 78 and "target-is-source" in check.stdout, check.output
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "target-is-a-source" in sync.output, sync.output
    assert [e["subject"] for e in sim.events(ADVOCATE, "Calendar")] == ["Intake"]
    assert sim.writes[ADVOCATE] == 0


def test_a_source_that_holds_phone_entries_fails_the_pair(sim: GraphSim,
                                                         tmp_path: Path) -> None:
    calendar = _work_calendar(sim)
    mark = [{"id": MARK_ID, "value": "csan-0123abcd-" + "0" * 40}]
    sim.add_event(calendar, NOW + 3 * HOUR, NOW + 4 * HOUR, subject="Appointment",
                  singleValueExtendedProperties=mark)
    setup = m365_setup(tmp_path, sim)
    check = setup.run("check")
    assert check.code == 78 and "source-holds-phone-entries" in check.stdout, check.output
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "source-holds-phone-entries" in sync.output, sync.output
    assert sim.events(PHONE, "Appointments") == []


def test_a_throttled_token_request_never_holds_the_account_back(sim: GraphSim,
                                                                tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    sim.token_faults += [(429, {"error": "temporarily_unavailable", "error_codes": [50196]},
                          {"Retry-After": "0"})] * 8  # more than one cycle's retries
    first = setup.run("sync", "--now", NOW.isoformat())
    assert first.code == 69 and "authority-unreachable" in first.output, first.output
    sim.token_faults.clear()
    later = setup.run("sync", "--now", (NOW + timedelta(days=1)).isoformat())
    assert later.code == 0 and "created=1" in later.stdout, later.output


def test_graph_refusing_a_fresh_token_never_holds_the_account_back(sim: GraphSim,
                                                                  tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    sim.fail(401, times=2)
    first = setup.run("sync", "--now", NOW.isoformat())
    assert first.code == 77 and "access-token-refused" in first.output, first.output
    later = setup.run("sync", "--now", (NOW + timedelta(days=1)).isoformat())
    assert later.code == 0 and "created=1" in later.stdout, later.output


def test_a_rejected_secret_is_held_back_until_it_changes(sim: GraphSim, tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    (setup.credentials / "graph-app").write_text("wrong", encoding="utf-8")
    first = setup.run("sync", "--now", NOW.isoformat())
    assert first.code == 77 and "auth-rejected" in first.output, first.output
    asked = sim.requests["token"]
    again = setup.run("sync", "--now", (NOW + timedelta(minutes=5)).isoformat())
    assert again.code == 77 and "rejected before" in again.output, again.output
    assert sim.requests["token"] == asked  # the refused secret was not sent again


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_authority(setup: Setup, authority: str, extra: str = "") -> None:
    text = setup.config_path.read_text(encoding="utf-8")
    start = text.index("authority = ")
    end = text.index("\n", start)
    setup.config_path.write_text(text[:start] + f'authority = "{authority}"\n{extra}'
                                 + text[end + 1:], encoding="utf-8")


def test_an_unreachable_authority_exits_69(sim: GraphSim, tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    _with_authority(setup, f"http://127.0.0.1:{_free_port()}/")
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 69 and "authority-unreachable" in sync.output, sync.output


def test_a_certificate_the_authority_cannot_prove_is_named(sim: GraphSim, tmp_path: Path) -> None:
    _work_calendar(sim)
    pki = generate_test_pki(tmp_path / "pki")
    setup = m365_setup(tmp_path / "run", sim)
    with HostileServer(tls=(str(pki.server_cert), str(pki.server_key))) as authority:
        _with_authority(setup, authority.url)
        check = setup.run("check")
        sync = setup.run("sync", "--now", NOW.isoformat())
        assert authority.seen == []  # no request ever got past the handshake
    assert check.code == 69 and "did not verify" in check.stdout, check.output
    assert sync.code == 69 and "tls-verification-failed" in sync.output, sync.output


def test_check_reports_a_mailbox_outside_the_apps_scope(sim: GraphSim, tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    sim.fail(403, times=10, match=ADVOCATE)
    check = setup.run("check")
    assert check.code == 77 and "forbidden" in check.stdout, check.output
    assert "management scope" in check.stdout and "Traceback" not in check.output


def test_a_lone_surrogate_in_a_kept_title_skips_that_event_only(sim: GraphSim) -> None:
    rig = Rig(sim, rules=(Rule("rules[0]", Action.KEEP_TITLE),))
    try:
        sim.add_event(rig.calendar, NOW, NOW + HOUR, subject="Staff meeting")
        sim.add_event(rig.calendar, NOW + 2 * HOUR, NOW + 3 * HOUR, subject="Case \ud800 review")
        report = rig.cycle(NOW)
        assert report.ok and report.created == 1, report.error
        assert report.skipped == {"graph-bad-field": 1}
        assert [e["subject"] for e in rig.phone()] == ["Staff meeting"]
    finally:
        rig.close()


def test_an_access_token_unfit_for_a_header_is_a_reason_code(sim: GraphSim,
                                                            tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    answer = {"token_type": "Bearer", "expires_in": 3599, "access_token": "\u2603-token"}
    sim.token_faults += [(200, answer, {})] * 8
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "authority-bad-answer" in sync.output, sync.output
    assert "Traceback" not in sync.output


def test_a_graph_error_code_never_becomes_a_reason_or_a_label(sim: GraphSim,
                                                             tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    sim.fail(400, times=1, match="delta")  # answered with Graph's code "serviceNotAvailable"
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "http-400" in sync.output, sync.output
    saved = "".join(p.read_text(encoding="utf-8", errors="replace")
                    for p in setup.state_dir.rglob("*") if p.is_file())
    assert "http-400" in saved and "servicenotavailable" not in (saved + sync.output).lower()


def _discovery(token_endpoint: str) -> Any:
    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        body = {"token_endpoint": token_endpoint, "issuer": f"{token_endpoint}/v2.0",
                "authorization_endpoint": f"{token_endpoint}/authorize"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
    return answer


@pytest.mark.parametrize("elsewhere", ["another-port", "another-host"])
def test_the_client_secret_goes_only_to_the_configured_authority(
        sim: GraphSim, tmp_path: Path, elsewhere: str) -> None:
    _work_calendar(sim)
    pki = generate_test_pki(tmp_path / "pki")
    tls = (str(pki.server_cert), str(pki.server_key))
    setup = m365_setup(tmp_path / "run", sim)
    with HostileServer(tls=tls) as authority, HostileServer(tls=tls) as other:
        host = (f"127.0.0.1:{other.port}" if elsewhere == "another-port"
                else f"localhost:{authority.port}")  # the certificate names both
        authority.script("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration",
                         _discovery(f"https://{host}/{TENANT}/oauth2/v2.0/token"))
        _with_authority(setup, authority.url, f'ca_file = "{pki.ca_cert}"\n')
        sync = setup.run("sync", "--now", NOW.isoformat())
        check = setup.run("check")
        sent = authority.seen + other.seen
    assert [s.method for s in authority.seen] == ["GET", "GET"]  # discovery, by sync and check
    assert not any(SECRET.encode() in s.body for s in sent) and other.seen == []
    assert sync.code == 1 and "url-outside-authority" in sync.output, sync.output
    assert check.code != 0 and "url-outside-authority" in check.stdout, check.output


def test_a_target_listing_that_links_to_itself_stops(sim: GraphSim,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import graph_routes  # noqa: PLC0415

    real = graph_routes._Graph.list_events

    def looping(self: graph_routes._Graph, user: str, rest: list[str]) -> Any:
        status, answer = real(self, user, rest)
        if isinstance(answer, dict) and "$filter" not in self.query:
            answer["@odata.nextLink"] = self.sim.graph_url + self.path[len("/v1.0/"):] + (
                "?" + "&".join(f"{k}={v[0]}" for k, v in self.query.items()))
        return status, answer

    rig = Rig(sim)
    try:
        sim.add_event(rig.calendar, NOW, NOW + HOUR)
        assert rig.cycle(NOW).created == 1
        monkeypatch.setattr(graph_routes._Graph, "list_events", looping)
        sim.requests.clear()
        report = rig.cycle(NOW + HOUR, force_full=True)
        assert report.error_code == "listing-loop" and sim.requests["GET events"] <= 3
    finally:
        rig.close()


def test_attendees_added_on_the_phone_are_never_mailed(sim: GraphSim) -> None:
    rig = Rig(sim)
    try:
        event = sim.add_event(rig.calendar, NOW + HOUR, NOW + 2 * HOUR, subject="Intake")
        assert rig.cycle(NOW).created == 1
        entry = rig.phone()[0]["id"]
        sim.update_event(entry, attendees=[{"type": "required", "emailAddress": {
            "address": "someone@example.net", "name": "x"}}])  # a minute with the phone
        sim.update_event(event, start=NOW + 3 * HOUR, end=NOW + 4 * HOUR)  # a move
        moved = rig.cycle(NOW + timedelta(minutes=5))
        again = rig.cycle(NOW + timedelta(minutes=10), force_full=True)
        assert moved.ok and again.ok and again.foreign == 1
        clean = [e for e in rig.phone() if not e["attendees"]]
        assert [e["start"]["dateTime"][:16] for e in clean] == [
            (NOW + 3 * HOUR).strftime("%Y-%m-%dT%H:%M")]  # the appointment is still there
        rig.cycle(NOW + timedelta(days=400), force_full=True)  # past retention
        target = target_for(rig.account, rig.pair.target_url)
        with pytest.raises(StoreError) as refused:
            target.delete(entry, None)  # as a wipe or a retired target would
        assert refused.value.reason == "entry-has-attendees"
        assert sim.mailed == []
        assert any(e["id"] == entry for e in rig.phone())
    finally:
        rig.close()


def test_a_hold_written_without_a_verdict_is_tried_again(sim: GraphSim, tmp_path: Path) -> None:
    """Earlier versions held an account back after a 429; such a hold is tried once more."""
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim)
    (setup.credentials / "graph-app").write_text("wrong", encoding="utf-8")
    assert setup.run("sync", "--now", NOW.isoformat()).code == 77
    (setup.credentials / "graph-app").write_text(SECRET, encoding="utf-8")
    path = setup.state_dir / "rejected.json"
    held = json.loads(path.read_text(encoding="utf-8"))
    fingerprint = held["agency"]["fingerprint"]
    sync = setup.run("sync", "--now", NOW.isoformat())  # a new secret: a new fingerprint
    assert sync.code == 0, sync.output
    held["agency"] = {"fingerprint": _fingerprint_now(setup), "since": "2026-01-01T00:00:00"}
    path.write_text(json.dumps(held), encoding="utf-8")  # as the old code wrote it after a 429
    later = setup.run("sync", "--now", (NOW + timedelta(days=1)).isoformat())
    assert later.code == 0 and "rejected before" not in later.output, later.output
    assert fingerprint != held["agency"]["fingerprint"]


def _fingerprint_now(setup: Setup) -> str:
    from sanitizer.service import credentials, rejected  # noqa: PLC0415
    from sanitizer.service.config import load_config  # noqa: PLC0415

    config = load_config(setup.config_path)
    key = credentials.existing_uid_key(config.service.state_dir)
    assert key is not None
    return rejected.fingerprint(key, config.accounts["agency"], SECRET)
