"""`discover --user` for Microsoft 365 (pure parts): pasted lines read back as the exact name, no
terminal control reaches the screen, and the calendar listing stays bounded."""

from __future__ import annotations

import tomllib
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.errors import StoreError
from sanitizer.stores.microsoft365.discover import paste_lines, render
from sanitizer.stores.microsoft365.graph_http import GraphReply, GraphSettings
from sanitizer.stores.microsoft365.mailbox import find_calendar, list_calendars
from sanitizer.stores.microsoft365.names import split_calendar

USER = "maria@agency.org"
GRAPH = "https://graph.example/v1.0/"


@given(st.text(min_size=1, max_size=300))
def test_a_pasted_line_reads_back_as_the_exact_calendar(name: str) -> None:
    lines = paste_lines(USER, name, None)
    if lines[0].startswith("#"):  # a name no pair can use is only a comment
        with pytest.raises(ValueError):
            split_calendar(f"{USER}/{name}")
            name.encode("utf-8")
        return
    for line in lines:
        key = line.split(" ", 1)[0]
        assert split_calendar(tomllib.loads(line)[key]) == (USER, name)


@given(st.text(max_size=100))
def test_no_control_character_reaches_the_terminal(name: str) -> None:
    text = render("agency", USER, [(name, True), (name, False)])
    assert not any(unicodedata.category(ch).startswith("C") for ch in text.replace("\n", ""))


def test_a_read_only_calendar_gets_no_target_line() -> None:
    assert [line.split(" ")[0] for line in paste_lines(USER, "Board", False)] == ["source"]
    assert [line.split(" ")[0] for line in paste_lines(USER, "Phone", True)] == ["source",
                                                                               "target"]


class PagedClient:
    """Answers calendar listings from a table of URL -> body."""

    def __init__(self, pages: dict[str, Any]) -> None:
        self.settings = GraphSettings(GRAPH)
        self.pages = pages
        self.asked: list[str] = []

    def request(self, method: str, url: str, mailbox: str, **_: Any) -> GraphReply:
        self.asked.append(url)
        return GraphReply(200, {}, self.pages[url])


def _calendar(ident: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "name": name, **extra}


def test_the_listing_follows_next_links_and_reads_can_edit() -> None:
    first = f"{GRAPH}users/{USER}/calendars?$top=100"
    second = f"{GRAPH}users/{USER}/calendars?$skip=1"
    client: Any = PagedClient({
        first: {"value": [_calendar("A1=", "Calendar", canEdit=True)],
                "@odata.nextLink": second},
        second: {"value": [_calendar("B2=", "Board", canEdit=False),
                           _calendar("C3=", "Odd", canEdit="yes"), {"id": 5, "name": "x"}]}})
    found = list_calendars(client, USER)
    assert [(c.name, c.can_edit) for c in found] == [("Calendar", True), ("Board", False),
                                                     ("Odd", None)]
    assert find_calendar(client, USER, "board") == "B2="


def test_a_next_link_loop_is_an_error_not_an_endless_listing() -> None:
    first = f"{GRAPH}users/{USER}/calendars?$top=100"
    client: Any = PagedClient({first: {"value": [], "@odata.nextLink": first}})
    with pytest.raises(StoreError) as caught:
        list_calendars(client, USER)
    assert caught.value.reason == "listing-loop" and len(client.asked) == 1
