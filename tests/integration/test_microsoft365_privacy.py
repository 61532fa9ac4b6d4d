"""The privacy canary on the Microsoft 365 store: a marker in every Graph field a work event has
(subject, body, location, attendees, organizer, categories, extended properties, online meeting
links, ids), and none may reach the phone mailbox, a log line, a report or the state directory."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sanitizer.core.model import Action
from sanitizer.core.policy import Rule
from sanitizer.engine import sync_state
from tests.support.canary import Marker, MarkerSet, assert_clean
from tests.support.clock import tomorrow_at
from tests.support.graph_sim import PHONE, GraphSim, Rig

pytestmark = pytest.mark.integration
NOW = tomorrow_at(9)  # relative to the real date: tokens and status use the clock
HOUR = timedelta(hours=1)


class Planter:
    """Fresh markers, each recorded with where it was planted."""

    def __init__(self) -> None:
        self.markers = MarkerSet("CNRY")

    def __call__(self, where: str) -> str:
        token = f"CNRY{secrets.token_hex(5)}"
        self.markers.add(Marker(token, "graph", (where,), (token.casefold(),)))
        return token


def planted_event(mark: Planter, n: int) -> dict[str, Any]:
    """Every identifying field of a Graph event, each holding a marker."""
    def person(where: str) -> dict[str, Any]:
        return {"emailAddress": {"name": mark(f"{where}.name"),
                                 "address": mark(f"{where}.address") + "@example.org"}}

    place = {"displayName": mark("location.displayName"), "locationType": "default",
             "uniqueId": mark("location.uniqueId"), "uniqueIdType": "private",
             "address": {"street": mark("location.street"), "city": mark("location.city"),
                         "state": "WA", "countryOrRegion": mark("location.country"),
                         "postalCode": ""}}
    return {
        "id": "AAMkAD" + mark("id") + str(n), "subject": mark("subject"),
        "body": {"contentType": "html", "content": f"<p>{mark('body')}</p>"},
        "bodyPreview": mark("bodyPreview"), "location": place, "locations": [place],
        "attendees": [{"type": "required", "status": {"response": "accepted",
                                                      "time": "0001-01-01T00:00:00Z"},
                       **person("attendee")}],
        "organizer": person("organizer"), "categories": [mark("categories")],
        "singleValueExtendedProperties": [{"id": "String {66f5a359-4659-4830-9070-00047ec6ac6e}"
                                                 " Name " + mark("extprop.name"),
                                           "value": mark("extprop.value")}],
        "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeeting": {"joinUrl": "https://teams.example/" + mark("onlineMeeting.joinUrl"),
                          "conferenceId": mark("onlineMeeting.conferenceId")},
        "onlineMeetingUrl": "https://teams.example/" + mark("onlineMeetingUrl"),
        "webLink": "https://outlook.example/?itemid=" + mark("webLink"),
        "iCalUId": mark("iCalUId"), "originalStartTimeZone": mark("originalStartTimeZone"),
        "seriesMasterId": None, "importance": "high",
    }


def test_no_marker_leaves_the_work_mailbox(sim: GraphSim, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    mark = Planter()
    # Rules that read titles, so subjects are read into memory, and one that skips by category.
    skip_category = mark("categories.rule")
    rules = (Rule("rules[0]", Action.SKIP,
                  match_categories=frozenset({skip_category.casefold()})),
             Rule("rules[1]", Action.SANITIZE, match_summary=__import__("re").compile("zzz")))
    rig = Rig(sim, rules=rules)
    try:
        ids = [sim.add_event(rig.calendar, NOW + i * HOUR, NOW + i * HOUR + HOUR / 2,
                             **planted_event(mark, i)) for i in range(6)]
        sim.update_event(ids[5], categories=[skip_category])
        sim.add_series(rig.calendar, [NOW + i * 24 * HOUR for i in range(3)], HOUR,
                       **{k: v for k, v in planted_event(mark, 99).items()
                          if k not in ("id", "seriesMasterId")})
        reports = [rig.cycle(NOW)]
        sim.update_event(ids[0], subject=mark("subject.changed"), start=NOW + 20 * HOUR,
                         end=NOW + 21 * HOUR)
        sim.delete_event(ids[1])
        reports.append(rig.cycle(NOW + timedelta(minutes=5)))
        reports.append(rig.cycle(NOW + HOUR, force_full=True))
        sim.fail(500, times=8, match="/calendars")
        reports.append(rig.cycle(NOW + 2 * HOUR, force_full=True))
        assert [r.mode for r in reports[:3]] == ["full", "incremental", "full"]
        assert reports[0].created == 8 and reports[0].skipped["rule-skip"] == 1
        assert reports[3].error is not None
        for report in reports:
            if report.state is not None:
                sync_state.save(tmp_path, "maria", report.state)
        phone = json.dumps(sim.events(PHONE, "Appointments"))
        sent = b"\n".join(sim.bodies).decode("utf-8", "replace")
        texts = {"phone mailbox": phone, "request bodies": sent,
                 "log": "\n".join(r.getMessage() for r in caplog.records),
                 "reports": "\n".join(r.status_line() + repr(r) for r in reports),
                 "state dir": "\n".join(p.read_text(errors="replace")
                                        for p in tmp_path.rglob("*") if p.is_file())}
        for where, text in texts.items():
            assert_clean(text, mark.markers, where)
        with capsys.disabled():
            fields = {where for m in mark.markers for where in m.where}
            print(f"\ncanary: {len(mark.markers)} markers in {len(fields)} Graph fields, "
                  f"{len(caplog.records)} log records, "
                  f"{sum(len(t) for t in texts.values())} characters searched, 0 found")
    finally:
        rig.close()


def test_the_canary_finds_a_leak(sim: GraphSim) -> None:
    """The search above can fail: a subject copied by a keep-title rule is found."""
    mark = Planter()
    rig = Rig(sim, rules=(Rule("rules[0]", Action.KEEP_TITLE),))
    try:
        sim.add_event(rig.calendar, NOW, NOW + HOUR, **planted_event(mark, 1))
        rig.cycle(NOW)
        with pytest.raises(AssertionError):
            assert_clean(json.dumps(sim.events(PHONE, "Appointments")), mark.markers, "phone")
    finally:
        rig.close()
