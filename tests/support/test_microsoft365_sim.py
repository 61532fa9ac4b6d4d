"""The Graph simulator answers like Microsoft's reference: the same keys and value types as the
examples in tests/data/graph/, and the documented behaviours the store relies on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.support.clock import tomorrow_at
from tests.support.graph_sim import ADVOCATE, CLIENT_ID, SECRET, TENANT, GraphSim

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "graph"
NOW = tomorrow_at(9)  # relative to the real date: tokens and status use the clock
HOUR = timedelta(hours=1)


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def shape_problems(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` lacks a key of `expected`, or holds another JSON type (null matches any)."""
    if expected is None or actual is None:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object"]
        return [problem for key, value in expected.items()
                for problem in ([f"{path}.{key}: missing"] if key not in actual
                                else shape_problems(value, actual[key], f"{path}.{key}"))]
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array"]
        return shape_problems(expected[0], actual[0], f"{path}[0]") if expected and actual else []
    numbers = (int, float)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if isinstance(expected, bool) and isinstance(actual, bool) else [
            f"{path}: expected {type(expected).__name__}"]
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        return []
    return [] if type(expected) is type(actual) else [f"{path}: expected {type(expected).__name__}"]


class Client:
    """Raw HTTP to the simulator, with a token from its token endpoint."""

    def __init__(self, sim: GraphSim) -> None:
        self.sim = sim
        self.token_answer = requests.post(
            f"{sim.base}/{TENANT}/oauth2/v2.0/token", timeout=5,
            data={"client_id": CLIENT_ID, "client_secret": SECRET,
                  "grant_type": "client_credentials",
                  "scope": "https://graph.microsoft.com/.default"})
        self.token = self.token_answer.json()["access_token"]

    def __call__(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        url = path if path.startswith("http") else self.sim.graph_url + path
        return requests.request(method, url, json=body, timeout=5, headers={
            "Authorization": f"Bearer {self.token}", **(headers or {})})


@pytest.fixture
def sim() -> Iterator[GraphSim]:
    server = GraphSim(page_size=2).start()
    yield server
    server.stop()


@pytest.fixture
def client(sim: GraphSim) -> Client:
    return Client(sim)


def _user() -> str:
    return quote(ADVOCATE, safe="@")


def _delta(calendar: str) -> str:
    start, end = (f"{(NOW + days * 24 * HOUR):%Y-%m-%dT00:00:00Z}" for days in (-1, 29))
    return (f"users/{_user()}/calendars/{quote(calendar, safe='')}/calendarView/delta"
            f"?startDateTime={start}&endDateTime={end}")


def test_token_and_error_answers_have_the_reference_shape(client: Client) -> None:
    assert shape_problems(example("token-response.json"), client.token_answer.json()) == []
    missing = client("GET", f"users/{_user()}/events/AAMkADnone")
    assert missing.status_code == 404  # an unknown mailbox or event
    assert shape_problems(example("error-response.json"), missing.json()) == []


def test_calendar_answers_have_the_reference_shape(client: Client, sim: GraphSim) -> None:
    sim.add_calendar(ADVOCATE, "Calendar")
    listed = client("GET", f"users/{_user()}/calendars")
    assert shape_problems(example("list-calendars.json"), listed.json()) == []
    made = client("POST", f"users/{_user()}/calendars", {"name": "Volunteer"})
    assert made.status_code == 201
    assert shape_problems(example("create-calendar.json"), made.json()) == []
    again = client("POST", f"users/{_user()}/calendars", {"name": "volunteer"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ErrorFolderExists"


def test_delta_pages_and_rounds_have_the_reference_shape(client: Client, sim: GraphSim) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    ids = [sim.add_event(calendar, NOW + i * HOUR, NOW + i * HOUR + HOUR / 2, subject=f"e{i}")
           for i in range(3)]
    first = client("GET", _delta(calendar), headers={"Prefer": 'outlook.timezone="UTC"'})
    assert shape_problems(example("delta-first-page.json"), first.json()) == []
    assert len(first.json()["value"]) == 2 and "@odata.deltaLink" not in first.json()
    last = client("GET", first.json()["@odata.nextLink"]).json()
    assert "@odata.nextLink" not in last and len(last["value"]) == 1
    sim.delete_event(ids[0])
    sim.update_event(ids[1], subject="changed")
    sim.update_event(ids[2], start=NOW + 90 * 24 * HOUR, end=NOW + 91 * 24 * HOUR)  # left
    round_two = client("GET", last["@odata.deltaLink"]).json()
    values = list(round_two["value"])
    while "@odata.nextLink" in round_two:
        round_two = client("GET", round_two["@odata.nextLink"]).json()
        values += round_two["value"]
    expected = example("delta-next-round.json")
    removed = [v for v in values if "@removed" in v]
    changed = [v for v in values if "@removed" not in v]
    assert sorted(v["id"] for v in removed) == sorted([ids[0], ids[2]])
    assert [v["subject"] for v in changed] == ["changed"]
    assert shape_problems(expected["value"][0], removed[0]) == []
    assert shape_problems({k: v for k, v in expected["value"][1].items() if k != "location"},
                          changed[0]) == []
    assert shape_problems({k: v for k, v in expected.items() if k != "value"}, round_two) == []


def test_delta_refuses_what_the_reference_says_it_does_not_support(client: Client,
                                                                   sim: GraphSim) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    assert client("GET", _delta(calendar) + "&$select=subject").status_code == 400
    no_window = client("GET", _delta(calendar).split("?")[0])
    assert no_window.json()["error"]["code"] == "ErrorInvalidParameter"
    link = client("GET", _delta(calendar)).json()["@odata.deltaLink"]
    sim.forget_tokens()
    gone = client("GET", link)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"


def test_events_create_with_transaction_id_and_if_match(client: Client, sim: GraphSim) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    body = {"subject": "Let's go for lunch",
            "body": {"contentType": "HTML", "content": "Does mid month work for you?"},
            "start": {"dateTime": "2019-03-15T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2019-03-15T14:00:00", "timeZone": "UTC"},
            "location": {"displayName": "Harry's Bar"},
            "attendees": [{"emailAddress": {"address": "adelev@contoso.onmicrosoft.com",
                                            "name": "Adele Vance"}, "type": "required"}],
            "transactionId": "7E163156-7762-4BEB-A1C6-729EA81755A7"}
    events = f"users/{_user()}/calendars/{quote(calendar, safe='')}/events"
    made = client("POST", events, body)
    assert made.status_code == 201
    assert shape_problems(example("create-event-response.json"), made.json()) == []
    assert client("POST", events, body).json()["id"] == made.json()["id"]  # a retry
    other = client("POST", events, {**body, "subject": "something else"})
    assert other.json()["error"]["code"] == "ErrorDuplicateTransactionId"
    url = f"users/{_user()}/events/{quote(made.json()['id'], safe='')}"
    stale = client("PATCH", url, {"subject": "x"}, {"If-Match": 'W/"stale"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
    fresh = client("PATCH", url, {"subject": "x"}, {"If-Match": made.json()["@odata.etag"]})
    assert fresh.status_code == 200 and fresh.json()["@odata.etag"] != made.json()["@odata.etag"]


def test_an_extended_property_comes_back_through_expand(client: Client, sim: GraphSim) -> None:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    prop = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color"
    ident = sim.add_event(calendar, NOW, NOW + HOUR, singleValueExtendedProperties=[
        {"id": prop, "value": "Green"}])
    got = client("GET", f"users/{_user()}/events/{quote(ident, safe='')}?$expand="
                 f"singleValueExtendedProperties($filter=id eq '{prop}')")
    assert shape_problems(example("get-event-extended-property.json"), got.json()) == []
    assert "singleValueExtendedProperties" not in client(
        "GET", f"users/{_user()}/events/{quote(ident, safe='')}").json()


def test_a_fifth_concurrent_request_to_a_mailbox_is_throttled(client: Client,
                                                              sim: GraphSim) -> None:
    sim.add_calendar(ADVOCATE, "Calendar")
    sim.delay = 0.3
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(
        client("GET", f"users/{_user()}/calendars"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    throttled = [a for a in answers if a.status_code == 429]
    assert len(throttled) == 2 and sum(a.status_code == 200 for a in answers) == 4
    assert throttled[0].json()["error"]["code"] == "ApplicationThrottled"
    assert float(throttled[0].headers["Retry-After"]) > 0


def test_the_shape_check_can_fail() -> None:
    assert shape_problems({"a": {"b": 1}, "c": "x"}, {"a": {}, "c": 2}) == [
        "$.a.b: missing", "$.c: expected str"]
    assert shape_problems({"v": [{"k": True}]}, {"v": [{"k": "yes"}]}) == [
        "$.v[0].k: expected bool"]
