"""A Graph delta page is read element by element: its events are never all built at once, so a
hostile page of 15 MiB costs about its own size, and a round holds at most MAX_ITEMS events."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from sanitizer.core.model import Window
from sanitizer.errors import StoreError
from sanitizer.stores.microsoft365.graph_http import GraphClient, GraphSettings
from sanitizer.stores.microsoft365.source import MAX_ITEMS, GraphSource
from tests.support.hostile_server import HostileServer, Seen

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=30), NOW + timedelta(days=90))


def delta_page(count: int, link: str) -> bytes:
    """`count` small events dated outside the window (mapped, never wanted)."""
    when = {"dateTime": "2190-01-01T10:00:00.0000000", "timeZone": "UTC"}
    events = [{"@odata.etag": f'W/"{i}"', "id": f"AAMkAD{i:08d}", "subject": "s",
               "type": "singleInstance", "start": when, "end": when} for i in range(count)]
    return json.dumps({"value": events, "@odata.deltaLink": link}).encode()


def read_round(page: bytes) -> tuple[int, int, int]:
    """(events read, peak traced bytes above what the round keeps, page size)."""
    with HostileServer() as server:
        calendars = json.dumps({"value": [{"id": "CalendarId", "name": "Calendar"}]}).encode()

        def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
            if "/calendarView/delta" in seen.path:
                return 200, JSON, page
            return 200, JSON, calendars if seen.path.endswith("$top=100") else b'{"value":[]}'

        server.script("GET", "*", answer)
        client = GraphClient(GraphSettings(server.url + "v1.0/", timeout=60), lambda _: "token")
        source = GraphSource(client, "maria@agency.org", "Calendar")
        tracemalloc.start()
        try:
            objects, _ = source.read(WINDOW, with_token=True)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            client.close()
    return len(objects), peak - kept, len(page)


def test_a_large_page_costs_about_its_own_size() -> None:
    count, above, size = read_round(delta_page(40_000, "http://127.0.0.1:1/v1.0/d"))
    assert count == 40_000 and size > 4 * 1024 * 1024
    assert above < 2.5 * size, f"{above >> 20} MiB above what is kept, page {size >> 20} MiB"


def test_a_round_holds_at_most_max_items_events() -> None:
    with pytest.raises(StoreError) as caught:
        read_round(delta_page(MAX_ITEMS + 1, "http://127.0.0.1:1/v1.0/d"))
    assert caught.value.reason == "too-many-events"
