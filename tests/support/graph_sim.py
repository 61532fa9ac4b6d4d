"""A stateful Microsoft Graph (calendars) and token-endpoint simulator on 127.0.0.1.

It implements the documented behaviour the Microsoft 365 store relies on, with answers shaped
like the examples in Microsoft's Graph reference (tests/data/graph/ holds those examples, and
test_microsoft365_sim.py checks the shapes):

- the v2 client-credentials token endpoint and the OpenID configuration msal reads first
  (endpoints are advertised as https: msal refuses http; the store's authority client sends
  them as plain http to this loopback server);
- calendars (list with `$top`/`$skip` paging, create, 409 on a duplicate name);
- calendarView delta: server-side expansion (events are stored as the instances a calendarView
  shows), pages with `@odata.nextLink`, a round ending in `@odata.deltaLink`, `@removed` for
  deletions and for events that left the window, 410 SyncStateNotFound for a forgotten token;
- events: list with `$select`/`$expand` of one extended property and `$top`/`$skip` paging,
  create (201, `transactionId` idempotency), PATCH/DELETE with If-Match (412 on a mismatch);
- throttling: a 5th concurrent request to one mailbox gets 429 ApplicationThrottled with
  Retry-After; faults (429/503 with Retry-After, 500, a hang) can be injected.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

GRAPH_PREFIX = "/v1.0/"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.0000000"
TENANT = "5f0e2a4c-1b7d-4c3e-9a8f-2d6b1e0c7a93"
CLIENT_ID = "9a1c3e5f-7b2d-4f6a-8c0e-1d3b5f7a9c2e"
SECRET = "simulated-client-secret"  # a test credential for a local simulator


def _new_id(prefix: str = "AAMkAD") -> str:
    # Standard base64 (with + / =) so that stores must quote ids in URLs.
    return prefix + base64.b64encode(secrets.token_bytes(24)).decode()


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime(UTC_FORMAT), "timeZone": "UTC"}


def _parse_time(value: Any) -> datetime:
    text = value["dateTime"]
    if value.get("timeZone") not in ("UTC", "Etc/UTC"):
        raise ValueError("the simulator only takes UTC")
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)


def _change_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()


@dataclass
class Calendar:
    """A calendar folder and its change log (one sequence number per change)."""

    id: str
    name: str
    owner: str
    can_edit: bool = True  # Graph's canEdit: false for a calendar shared read-only
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id -> last change seq
    seq: int = 0


@dataclass
class Fault:
    """An injected answer for the next `times` Graph requests that match."""

    status: int
    times: int
    retry_after: str | None = None
    match: str = ""
    method: str | None = None
    hang: float = 0.0
    after: bool = False  # carry the request out first, then answer with the fault
    drip: float = 0.0  # answer 200 and send the body one byte per `drip` seconds


class GraphSim:
    """The simulated tenant: mailboxes, calendars, events, tokens and the HTTP server."""

    def __init__(self, *, page_size: int = 10, retry_after: str = "0.05") -> None:
        self.page_size = page_size
        self.calendar_page_size = 100  # the most calendars one listing page holds ($top caps it)
        self.retry_after = retry_after  # on concurrency throttling
        self.concurrency_limit = 4
        self.delay = 0.0  # seconds every Graph request takes, to make concurrency visible
        self.cut_rounds = False  # end delta pages with neither nextLink nor deltaLink
        self.secret = SECRET
        self.certificates: list[Any] = []  # certificates (cryptography x509) that may sign in
        self.calendars: dict[str, Calendar] = {}
        self.mailboxes: dict[str, list[str]] = {}  # user -> calendar ids
        self.object_ids: dict[str, str] = {}  # user -> the mailbox's object id (a GUID)
        self.transactions: dict[tuple[str, str], tuple[str, str]] = {}
        self.delta_tokens: dict[str, tuple[str, datetime, datetime, int]] = {}
        self.skip_tokens: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self.access_tokens: set[str] = set()
        self.faults: list[Fault] = []
        self.token_faults: list[tuple[int, Any, dict[str, str]]] = []  # next token answers
        self.requests: Counter[str] = Counter()
        self.bodies: list[bytes] = []  # every request body the simulator received
        # what Exchange would mail ("update"/"cancel", address) when an organizer changes or
        # deletes a meeting (Graph's event-update and event-delete pages)
        self.mailed: list[tuple[str, str]] = []
        self.in_flight: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()  # POST, PATCH, DELETE per mailbox
        self.peak: Counter[str] = Counter()
        self.throttled = 0
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def graph_url(self) -> str:
        """The account's graph_url."""
        return self.base + GRAPH_PREFIX

    def start(self) -> GraphSim:
        """Listen on a free loopback port."""
        from tests.support.graph_routes import handler  # noqa: PLC0415 - it imports this module

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- test setup (what a user does in Outlook) ---------------------------------------------

    def add_calendar(self, user: str, name: str, *, can_edit: bool = True) -> str:
        """A calendar in the mailbox (created with the mailbox if need be); its id."""
        with self.lock:
            ident = _new_id("AAMkAGI2")
            self.calendars[ident] = Calendar(ident, name, user.lower(), can_edit)
            self.mailboxes.setdefault(user.lower(), []).append(ident)
            self.object_ids.setdefault(user.lower(), str(uuid.uuid4()))
            return ident

    def add_event(self, calendar: str, start: datetime, end: datetime, **fields: Any) -> str:
        """An event as Outlook would hold it (every field a real one has); its id."""
        event = {
            "id": _new_id(), "createdDateTime": "2026-01-01T00:00:00Z",
            "lastModifiedDateTime": "2026-01-01T00:00:00Z", "categories": [],
            "originalStartTimeZone": "UTC", "originalEndTimeZone": "UTC",
            "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(8),
            "reminderMinutesBeforeStart": 15, "isReminderOn": True, "hasAttachments": False,
            "subject": "", "bodyPreview": "", "importance": "normal", "sensitivity": "normal",
            "isAllDay": False, "isCancelled": False, "isDraft": False, "isOrganizer": True,
            "responseRequested": True, "seriesMasterId": None, "showAs": "busy",
            "type": "singleInstance", "webLink": "https://outlook.office365.com/owa/?itemid=x",
            "onlineMeetingUrl": None, "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown", "onlineMeeting": None, "recurrence": None,
            "hideAttendees": False,
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": {"contentType": "html", "content": ""},
            "start": _graph_time(start), "end": _graph_time(end),
            "location": {"displayName": "", "locationType": "default",
                         "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
            "locations": [], "attendees": [],
            "organizer": {"emailAddress": {"name": "", "address": ""}},
        }
        event.update(fields)
        with self.lock:
            cal = self.calendars[calendar]
            self._store(cal, event)
            return str(event["id"])

    def add_series(self, calendar: str, starts: list[datetime], length: timedelta,
                   **fields: Any) -> list[str]:
        """A recurring series as a calendarView shows it: one occurrence per start."""
        master = _new_id()
        return [self.add_event(calendar, s, s + length, type="occurrence",
                               seriesMasterId=master, **fields) for s in starts]

    def update_event(self, event_id: str, **fields: Any) -> None:
        """An edit in Outlook: new changeKey, a change the delta feed reports."""
        with self.lock:
            cal = self._calendar_of(event_id)
            assert cal is not None
            event = dict(cal.events[event_id])
            for key, value in fields.items():
                event[key] = _graph_time(value) if isinstance(value, datetime) else value
            self._store(cal, event)

    def delete_event(self, event_id: str) -> None:
        """A deletion in Outlook (or an occurrence cancelled from its series)."""
        with self.lock:
            cal = self._calendar_of(event_id)
            assert cal is not None
            del cal.events[event_id]
            cal.seq += 1
            cal.changed[event_id] = cal.seq

    def forget_tokens(self) -> None:
        """The server's delta token cache was emptied: every token now gets 410."""
        with self.lock:
            self.delta_tokens.clear()
            self.skip_tokens.clear()

    def fail(self, status: int, times: int = 1, *, retry_after: str | None = None,
             match: str = "", method: str | None = None, hang: float = 0.0,
             after: bool = False, drip: float = 0.0) -> None:
        """Answer the next `times` matching Graph requests with `status` (hang first, or carry
        the request out first if `after`: the answer is lost, the change is made)."""
        with self.lock:
            self.faults.append(Fault(status, times, retry_after, match, method, hang, after,
                                     drip))

    def events(self, user: str, name: str) -> list[dict[str, Any]]:
        """The events of a calendar, by name (for assertions)."""
        with self.lock:
            for ident in self.mailboxes.get(user.lower(), []):
                if self.calendars[ident].name == name:
                    return [dict(e) for e in self.calendars[ident].events.values()]
        return []

    # -- internals ------------------------------------------------------------------------------

    def _store(self, cal: Calendar, event: dict[str, Any]) -> None:
        for bound in ("start", "end"):  # as Outlook writes them back: 7 fractional digits
            event[bound] = _graph_time(_parse_time(event[bound]))
        key = _change_key()
        event["changeKey"] = key
        event["@odata.etag"] = f'W/"{key}"'
        cal.events[event["id"]] = event
        cal.seq += 1
        cal.changed[event["id"]] = cal.seq

    def _calendar_of(self, event_id: str) -> Calendar | None:
        for cal in self.calendars.values():
            if event_id in cal.events:
                return cal
        return None



def graph_account(sim: GraphSim, *, secret: str = SECRET, timeout: float = 5.0,
                  attempts: int = 4, max_delay: float = 5.0) -> Any:
    """A GraphAccount (token source + client) aimed at the simulator, with quick retries."""
    from sanitizer.stores.microsoft365.auth import AppLogin, GraphAuth  # noqa: PLC0415
    from sanitizer.stores.microsoft365.connect import GraphAccount  # noqa: PLC0415
    from sanitizer.stores.microsoft365.graph_http import GraphClient, GraphSettings  # noqa: PLC0415

    auth = GraphAuth(AppLogin(TENANT, CLIENT_ID, secret, sim.base + "/", timeout))
    settings = GraphSettings(sim.graph_url, timeout=timeout, attempts=attempts, base_delay=0.01,
                             max_delay=max_delay)
    return GraphAccount(auth, GraphClient(settings, auth.token))


ADVOCATE = "maria@agency.org"
PHONE = "maria-phone@agency.org"
KEY = b"k" * 32


class Rig:
    """One pair from an advocate's mailbox calendar to a phone mailbox, run cycle by cycle the way
    the runtime does (fresh stores each cycle, the saved state carried over)."""

    def __init__(self, sim: GraphSim, workers: int = 4, **policy: Any) -> None:
        from sanitizer.core.policy import Policy  # noqa: PLC0415
        from sanitizer.stores.microsoft365.names import calendar_url  # noqa: PLC0415

        self.sim = sim
        self.workers = workers
        self.account = graph_account(sim)
        self.calendar = sim.add_calendar(ADVOCATE, "Calendar")
        if PHONE not in sim.mailboxes:
            sim.add_calendar(PHONE, "Calendar")
        if not any(sim.calendars[c].name == "Appointments" for c in sim.mailboxes[PHONE]):
            sim.add_calendar(PHONE, "Appointments")  # made on purpose, as create-target does
        self.pair = Policy(name="maria", source_url=calendar_url(sim.graph_url, ADVOCATE,
                                                                  "Calendar"),
                           target_url=calendar_url(sim.graph_url, PHONE, "Appointments"),
                           **policy)
        self.state: Any = None

    def cycle(self, now: datetime, *, force_full: bool = False, dry_run: bool = False) -> Any:
        """One cycle; the state is kept for the next one."""
        from sanitizer.engine.reconcile import sync_pair  # noqa: PLC0415
        from sanitizer.service.runtime import reads_titles  # noqa: PLC0415
        from sanitizer.stores.microsoft365.connect import source_for, target_for  # noqa: PLC0415

        source = source_for(self.account, self.pair.source_url,
                            read_subject=reads_titles(self.pair))
        target = target_for(self.account, self.pair.target_url)
        report = sync_pair(self.pair, source, target, key=KEY, now=now, zone=UTC,
                           state=self.state, force_full=force_full, dry_run=dry_run,
                           workers=self.workers)
        if not dry_run:
            self.state = report.state
        return report

    def phone(self) -> list[dict[str, Any]]:
        """The phone calendar's events, as the simulator holds them."""
        return self.sim.events(PHONE, "Appointments")

    def close(self) -> None:
        """Close the account's connections."""
        self.account.close()


@pytest.fixture
def sim() -> Iterator[GraphSim]:
    """A fresh simulator for one test (a pytest plugin: see tests/conftest.py)."""
    server = GraphSim().start()
    yield server
    server.stop()
