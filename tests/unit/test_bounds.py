"""What a server sends is bounded and checked whole: ids, ETags, times and mailbox names match in
full (a trailing newline is no part of any), Graph links are compared after percent-decoding,
and a sync token or deltaLink larger than any real one is not stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sanitizer.engine import sync_state
from sanitizer.stores.microsoft365.mapping import clean_etag, delta_item, event_id
from sanitizer.stores.microsoft365.names import mailbox, same_origin_prefix, split_calendar

GRAPH = "https://graph.microsoft.com/v1.0/"


def test_ids_etags_and_mailboxes_match_whole() -> None:
    assert event_id("AAMkAD+/=") == "AAMkAD+/="
    assert event_id("AAMkAD\n") is None
    assert clean_etag('W/"abc"') == 'W/"abc"' and clean_etag('W/"abc"\n') is None
    with pytest.raises(ValueError):
        mailbox("maria@agency.org\n")
    with pytest.raises(ValueError):
        split_calendar("maria@agency.org\n/Calendar")


def test_a_time_with_a_trailing_newline_skips_the_event() -> None:
    when = {"dateTime": "2030-01-01T10:00:00.0000000\n", "timeZone": "UTC"}
    item = delta_item({"id": "AAMk", "start": when, "end": when}, read_subject=False)
    assert item is not None and item.skip_reason == "graph-bad-time"


@pytest.mark.parametrize("link", [
    GRAPH + "users/%2e%2e/%2E%2E/admin",
    GRAPH + "users/x/%2e%2e%2f%2e%2e/other",
    GRAPH + "users/x/./calendars",
    GRAPH + "users/x\\..\\y",
    GRAPH + "users/x%5c..%5cy",
])
def test_dot_segments_are_found_after_decoding(link: str) -> None:
    assert not same_origin_prefix(GRAPH, link)


def test_graph_links_with_quoted_ids_still_pass() -> None:
    assert same_origin_prefix(GRAPH, GRAPH + "users/m@a.org/events/AAMk%2Fx%2B%3D?$skip=10")


def test_an_inflated_sync_token_is_not_stored(tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    state = sync_state.PairState("f", "t" * (5 * 1024 * 1024), now, now)
    sync_state.save(tmp_path, "p", state)
    assert sync_state.path_for(tmp_path, "p").stat().st_size < 4096
    loaded = sync_state.load(tmp_path, "p")
    assert loaded is not None and loaded.token is None  # the next cycle runs in full
    sync_state.save(tmp_path, "p", sync_state.PairState("f", "real-token", now, now))
    assert (sync_state.load(tmp_path, "p") or state).token == "real-token"
