"""Faults on the Graph side: throttling with Retry-After, 5xx, timeouts, lost races, expired
tokens, redirects, oversized answers, links leading elsewhere, and the mailbox concurrency cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sanitizer.errors import StoreError
from sanitizer.stores.microsoft365 import graph_http
from tests.support.clock import tomorrow_at
from tests.support.graph_sim import ADVOCATE, GraphSim, Rig, graph_account

pytestmark = pytest.mark.integration
NOW = tomorrow_at(9)  # relative to the real date: tokens and status use the clock
HOUR = timedelta(hours=1)


@pytest.fixture
def rig(sim: GraphSim) -> Iterator[Rig]:
    made = Rig(sim)
    for i in range(3):
        sim.add_event(made.calendar, NOW + i * HOUR, NOW + i * HOUR + HOUR / 2)
    yield made
    made.close()


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(rig: Rig, sim: GraphSim, status: int) -> None:
    sim.fail(status, times=2, retry_after="0.3", match="/delta")
    started = time.monotonic()
    report = rig.cycle(NOW)
    assert report.ok and report.created == 3
    assert time.monotonic() - started >= 0.6  # two waits of 0.3 s
    assert sim.requests["GET delta"] == 3


def test_a_retry_after_longer_than_a_cycle_ends_the_try(rig: Rig, sim: GraphSim) -> None:
    rig.account.client.settings = graph_http.GraphSettings(sim.graph_url, max_delay=1.0,
                                                           base_delay=0.01)
    sim.fail(429, times=1, retry_after="120", match="/delta")
    started = time.monotonic()
    report = rig.cycle(NOW)
    assert time.monotonic() - started < 5 and report.error_code == "rate-limited"
    assert rig.phone() == [] and sim.requests["GET delta"] == 1


def test_a_500_is_retried_and_a_lasting_one_fails_the_pair_alone(rig: Rig, sim: GraphSim) -> None:
    sim.fail(500, times=1, match="/events", method="POST")
    assert rig.cycle(NOW).created == 3
    sim.fail(500, times=100, match="/delta")
    report = rig.cycle(NOW + HOUR, force_full=True)
    assert not report.ok and report.error_code == "http-500"
    assert "pair maria: FAILED" in report.status_line() and len(rig.phone()) == 3


def test_a_write_that_keeps_failing_is_counted_and_the_rest_go_on(rig: Rig,
                                                                  sim: GraphSim) -> None:
    rig.workers = 1  # the first create gets all four failures
    sim.fail(503, times=4, match="/events", method="POST")
    report = rig.cycle(NOW)
    assert report.created == 2 and report.write_errors["http-503"] == 1
    assert not report.state.clean  # the next cycle reconciles fully
    assert rig.cycle(NOW + timedelta(minutes=5)).created == 1


def test_a_hanging_server_times_out_and_is_retried(sim: GraphSim) -> None:
    account = graph_account(sim, timeout=0.5)
    try:
        sim.add_calendar(ADVOCATE, "Calendar")
        sim.fail(200, times=1, hang=1.5, match="/calendars", method="GET")
        started = time.monotonic()
        from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415

        assert find_calendar(account.client, ADVOCATE, "Calendar") is not None
        assert time.monotonic() - started < 3
        assert sim.requests["GET calendars"] == 2
    finally:
        account.close()


def test_a_lost_race_is_a_conflict_and_the_next_cycle_reconciles(rig: Rig,
                                                                sim: GraphSim) -> None:
    rig.cycle(NOW)
    entry = rig.phone()[0]
    sim.update_event(entry["id"], subject="changed on the phone")
    first = next(iter(sim.calendars[rig.calendar].events))
    sim.update_event(first, start=NOW + 5 * HOUR, end=NOW + 6 * HOUR)
    for event in rig.phone():  # every phone entry changed since we wrote it
        sim.update_event(event["id"], bodyPreview="x")
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert report.mode == "incremental" and report.write_errors["conflict"] == 1
    assert not report.state.clean
    again = rig.cycle(NOW + timedelta(minutes=10))
    assert again.mode == "full" and again.ok and again.updated == 3


def test_an_expired_token_is_refreshed_once(rig: Rig, sim: GraphSim) -> None:
    rig.cycle(NOW)
    sim.access_tokens.clear()  # every token Graph knew is now invalid
    sim.add_event(rig.calendar, NOW + 9 * HOUR, NOW + 10 * HOUR)
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert report.ok and report.created == 1 and sim.requests["token"] == 2


def test_a_wrong_secret_is_an_auth_error(sim: GraphSim) -> None:
    account = graph_account(sim, secret="s3cret-that-is-refused")
    try:
        sim.add_calendar(ADVOCATE, "Calendar")
        from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415

        with pytest.raises(StoreError) as caught:
            find_calendar(account.client, ADVOCATE, "Calendar")
        assert caught.value.reason == "auth-rejected" and caught.value.exit_code == 77
        assert "s3cret-that-is-refused" not in str(caught.value)
    finally:
        account.close()


def test_redirects_are_refused(rig: Rig, sim: GraphSim) -> None:
    sim.fail(302, times=1, match="/delta")
    report = rig.cycle(NOW)
    assert report.error_code == "redirect-refused" and rig.phone() == []


def test_an_oversized_answer_is_refused(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_http, "MAX_ANSWER_BYTES", 1000)
    report = rig.cycle(NOW)
    assert report.error_code == "answer-too-large" and rig.phone() == []


def test_links_outside_graph_url_are_never_followed(rig: Rig, sim: GraphSim) -> None:
    rig.cycle(NOW)
    assert rig.state is not None
    rig.state = replace(rig.state, token="http://127.0.0.2:9/v1.0/users/x/delta")
    before = dict(sim.requests)
    report = rig.cycle(NOW + timedelta(minutes=5))
    assert report.error_code == "url-outside-graph" and dict(sim.requests) == before
    assert rig.cycle(NOW + timedelta(minutes=10)).mode == "full"


def _busy_cycle(sim: GraphSim) -> bool:
    sim.delay = 0.05
    rig = Rig(sim, workers=12)
    try:
        for i in range(24):
            sim.add_event(rig.calendar, NOW + i * HOUR, NOW + i * HOUR + HOUR / 2)
        return bool(rig.cycle(NOW).ok)
    finally:
        rig.close()


def test_at_most_four_requests_per_mailbox(sim: GraphSim,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert _busy_cycle(sim)
    assert sim.throttled == 0 and max(sim.peak.values()) == 4
    # Without the gate the simulator's limit bites (and retries hide it): the test can fail.
    monkeypatch.setattr(graph_http, "MAILBOX_CONCURRENCY", 12)
    other = GraphSim().start()
    try:
        _busy_cycle(other)
        assert other.throttled > 0 and max(other.peak.values()) > 4
    finally:
        other.stop()


def test_a_certificate_credential_signs_in(sim: GraphSim) -> None:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calendar-sanitizer")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.now(UTC) - HOUR)
            .not_valid_after(datetime.now(UTC) + 24 * HOUR)
            .sign(key, hashes.SHA256()))
    pem = (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
           + cert.public_bytes(serialization.Encoding.PEM).decode())
    unknown = graph_account(sim, secret=pem)
    with pytest.raises(StoreError) as caught:
        unknown.auth.token()
    assert caught.value.reason == "auth-rejected"
    unknown.close()
    sim.certificates.append(cert)
    account = graph_account(sim, secret=pem)
    try:
        assert account.auth.token() in sim.access_tokens
        assert not any(b"PRIVATE KEY" in body for body in sim.bodies)
    finally:
        account.close()


def test_a_pem_without_a_certificate_is_unusable(sim: GraphSim) -> None:
    account = graph_account(sim, secret="-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                        "-----END PRIVATE KEY-----\n")
    try:
        with pytest.raises(StoreError) as caught:
            account.auth.token()
        assert caught.value.reason == "credential-unusable" and "AAAA" not in str(caught.value)
    finally:
        account.close()


def test_a_server_that_drips_its_answer_is_cut_off(sim: GraphSim) -> None:
    account = graph_account(sim, timeout=1.0, attempts=1)
    try:
        sim.add_calendar(ADVOCATE, "Calendar")
        sim.fail(200, times=1, drip=0.2, match="/calendars", method="GET")
        from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415

        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            find_calendar(account.client, ADVOCATE, "Calendar")
        assert caught.value.reason == "timeout" and time.monotonic() - started < 2.5
    finally:
        account.close()


def test_a_round_cut_short_deletes_nothing(rig: Rig, sim: GraphSim) -> None:
    rig.cycle(NOW)
    sim.page_size = 2
    sim.cut_rounds = True  # the first page of three events, and no link to the rest
    report = rig.cycle(NOW + HOUR, force_full=True)
    assert report.error_code == "listing-truncated" and len(rig.phone()) == 3


def test_an_expired_token_on_the_only_attempt_is_refreshed(sim: GraphSim) -> None:
    account = graph_account(sim, attempts=1)
    try:
        sim.add_calendar(ADVOCATE, "Calendar")
        from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415

        assert find_calendar(account.client, ADVOCATE, "Calendar") is not None
        sim.access_tokens.clear()
        sim.fail(503, times=1, retry_after="0", match="/calendars")
        with pytest.raises(StoreError):  # one attempt: the 503 after the refresh ends it
            find_calendar(account.client, ADVOCATE, "Calendar")
        assert find_calendar(account.client, ADVOCATE, "Calendar") is not None
        assert sim.requests["token"] == 2  # refreshed once, not once per try
    finally:
        account.close()


def test_a_next_link_back_to_itself_is_a_loop(rig: Rig, sim: GraphSim,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import graph_routes  # noqa: PLC0415

    real = graph_routes._Graph.page

    def looping(self: graph_routes._Graph, items: list[Any], token: str) -> Any:
        status, answer = real(self, items, token)
        answer.pop("@odata.deltaLink", None)
        answer["@odata.nextLink"] = (self.sim.graph_url + self.path[len("/v1.0/"):]
                                     + "?$skiptoken=same")
        return status, answer

    monkeypatch.setattr(graph_routes._Graph, "page", looping)
    sim.skip_tokens["same"] = ([], "t")
    report = rig.cycle(NOW)
    assert report.error_code == "listing-loop" and sim.requests["GET delta"] == 2
