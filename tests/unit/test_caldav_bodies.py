"""Request bodies come from caldav's element vocabulary and are well-formed XML whatever text a
server handed us: a sync token or an href that XML cannot carry is refused, not sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from sanitizer.core.model import Window
from sanitizer.errors import TokenRejected
from sanitizer.stores.caldav import bodies
from sanitizer.stores.caldav.store import CalDAVSource

WINDOW = Window(datetime(2030, 3, 4, tzinfo=UTC), datetime(2030, 3, 18, tzinfo=UTC))
DAV, CAL = "{DAV:}", "{urn:ietf:params:xml:ns:caldav}"


def parsed(body: bytes) -> etree._Element:
    return etree.fromstring(body)


def test_a_window_query_names_the_window_in_utc() -> None:
    root = parsed(bodies.calendar_query(WINDOW, data=True))
    assert root.tag == CAL + "calendar-query"
    time_range = root.find(f".//{CAL}time-range")
    assert time_range is not None
    assert time_range.attrib == {"start": "20300304T000000Z", "end": "20300318T000000Z"}
    assert root.find(f"{DAV}prop/{CAL}calendar-data") is not None


def test_the_series_query_asks_for_etags_of_recurring_events_only() -> None:
    root = parsed(bodies.calendar_query(WINDOW, data=False, recurring=True))
    assert root.find(f".//{CAL}prop-filter").get("name") == "RRULE"
    assert root.find(f"{DAV}prop/{CAL}calendar-data") is None


@given(st.text(max_size=60))
def test_any_token_is_sent_as_its_own_text_or_refused(token: str) -> None:
    try:
        body = bodies.sync_collection(token)
    except ValueError:
        assert any(not (ch in "\t\n\r" or " " <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
                        or ch >= "\U00010000") for ch in token)
        return
    sent = parsed(body).findtext(f"{DAV}sync-token")
    assert (sent or "") == token


def test_hrefs_that_xml_cannot_carry_are_not_asked_for() -> None:
    assert bodies.xml_safe(["/cal/a.ics", "/cal/b\x01.ics"]) == ["/cal/a.ics"]
    root = parsed(bodies.multiget(["/cal/a&b.ics", "/cal/<c>.ics"]))
    assert [h.text for h in root.iter(DAV + "href")] == ["/cal/a&b.ics", "/cal/<c>.ics"]


def test_a_token_xml_cannot_carry_means_a_full_read() -> None:
    class NoRequests:
        def request(self, *args: object) -> None:
            raise AssertionError("nothing is sent")

    source = CalDAVSource(NoRequests(), "https://dav.example.org/cal/")  # type: ignore[arg-type]
    with pytest.raises(TokenRejected):
        source._sync_collection("token\x00")


def test_fixed_bodies_are_built_once_and_well_formed() -> None:
    for body in (bodies.SYNC_TOKEN, bodies.TOKENS, bodies.CTAG, bodies.TARGET, bodies.PRINCIPAL,
                 bodies.HOME, bodies.LISTING, bodies.ALL_EVENTS, bodies.EVERYTHING):
        assert parsed(body).tag in (DAV + "propfind", CAL + "calendar-query")
    assert b"getctag" in bodies.CTAG and b"http://calendarserver.org/ns/" in bodies.CTAG
