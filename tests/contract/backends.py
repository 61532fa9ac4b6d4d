"""The five store implementations behind one test-facing adapter, for the contract suite.

Each backend starts (once per session) what its stores talk to, and makes `StorePair`s: a fresh,
empty phone calendar with its target store, and a fresh work calendar with its source store and a
way to fill it that does not go through the store under test (the test's "Outlook" or "web UI").
Stores are built from the store layer's own constructors, never through sanitizer.service.

Where the source store's requests are counted, so a test can show it never wrote:
- memory: the source MemoryCalendar's own request counter;
- radicale, xandikos, google: a counting FaultProxy (tests/support/faultproxy.py) that only the
  source store's transport goes through; test setup sends its PUTs to the server around it;
- graph: the simulator's request and per-mailbox write counters (`GraphSim.requests`,
  `GraphSim.writes`); test setup uses the simulator's own API, which they do not see.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import icalendar
import recurring_ical_events

from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.caldav.differences import STANDARD, ServerDifferences
from sanitizer.stores.caldav.store import CalDAVSource, CalDAVTarget, Credentials, Transport
from sanitizer.stores.google import service_account as google
from sanitizer.stores.microsoft365.source import GraphSource
from sanitizer.stores.microsoft365.target import GraphTarget
from tests.support.faultproxy import FaultProxy
from tests.support.google_sim import GoogleServer
from tests.support.graph_sim import ADVOCATE, PHONE, GraphSim, graph_account
from tests.support.memory_store import MemoryCalendar
from tests.support.servers import CalDAVServer, XandikosServer

__all__ = ["KINDS", "WRITE_METHODS", "Backend", "Quirks", "StorePair", "make_backend"]

KINDS = ("memory", "radicale", "xandikos", "graph", "google")
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE", "PROPPATCH", "MKCALENDAR", "MKCOL",
                           "MOVE", "COPY", "LOCK", "UNLOCK"})
# Wide enough for every series the tests write (Graph stores a series as its occurrences).
_EXPANDED = (datetime(2029, 7, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


@dataclass(frozen=True)
class Quirks:
    """A store's documented, intentional departures from what the other stores do.

    The defaults are the CalDAV stores' behaviour; each flag is set by one backend below, with a
    comment citing where the difference is documented. Tests assert the documented behaviour
    under a flag; none is skipped.
    """

    server_assigned_hrefs: bool = False  # create() ignores the name: the server picks the href
    filters_by_time: bool = True  # fetch() leaves out objects entirely outside the window
    server_expands_series: bool = False  # source objects are mapped instances, not iCalendar
    multiget_needs_changes: bool = False  # multiget() answers only for hrefs changes() named
    makes_calendars: bool = True  # create_calendar() can make a missing calendar
    lists_etags_first: bool = False  # the source is a ListingSource (read_listed)


class StorePair(abc.ABC):
    """A fresh target store and a fresh source store on one backend, with setup helpers."""

    kind: str
    quirks: Quirks
    source: SourceCalendar
    target: TargetCalendar

    @abc.abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store (or replace) the work event `name` without going through the source store."""

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Delete the work event `name` without going through the source store."""

    def name_of(self, href: str) -> str:
        """The `put` name a source href stands for (`<name>.ics` on every CalDAV store)."""
        return unquote(urlsplit(href).path.rsplit("/", 1)[-1]).removesuffix(".ics")

    @abc.abstractmethod
    def source_requests(self) -> tuple[int, int]:
        """(requests, write requests) the backend has seen from the source store since the
        pair was made: a record that saw no request at all would prove nothing."""

    @abc.abstractmethod
    def expected_href(self, href_name: str) -> str | None:
        """The href create(href_name) must return; None where the server assigns it."""

    @abc.abstractmethod
    def outside_href(self) -> str:
        """An href that does not lie in the target calendar."""

    @abc.abstractmethod
    def missing_target(self) -> TargetCalendar:
        """A target store for a calendar that does not exist (yet)."""

    def close(self) -> None:  # noqa: B027 - most pairs hold nothing to close
        """Release what the pair holds."""


class Backend(abc.ABC):
    """What one kind of store talks to, started once and shared by the kind's tests."""

    kind: str
    quirks: Quirks

    @abc.abstractmethod
    def pair(self) -> StorePair:
        """A store pair on fresh, uniquely named calendars."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop what `make_backend` started."""


def _slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------- memory

class MemoryPair(StorePair):
    """Two MemoryCalendars (tests/support/memory_store.py)."""

    def __init__(self, quirks: Quirks) -> None:
        self.kind, self.quirks = "memory", quirks
        self.work = MemoryCalendar(f"memory://{_slug('work')}/")
        self.phone = MemoryCalendar(f"memory://{_slug('phone')}/")
        self.source, self.target = self.work, self.phone

    def put(self, name: str, data: bytes) -> None:
        self.work.put_raw(f"{name}.ics", data)

    def remove(self, name: str) -> None:
        self.work.remove_raw(f"{self.work.url}{name}.ics")

    def source_requests(self) -> tuple[int, int]:
        requests = self.work.requests
        return sum(requests.values()), sum(requests[method] for method in WRITE_METHODS)

    def expected_href(self, href_name: str) -> str | None:
        return self.phone.url + href_name

    def outside_href(self) -> str:
        return f"memory://{_slug('elsewhere')}/foreign.ics"

    def missing_target(self) -> TargetCalendar:
        missing = MemoryCalendar(f"memory://{_slug('missing')}/")
        missing.exists = False
        return missing


class MemoryBackend(Backend):
    """Nothing to start."""

    kind = "memory"
    # memory_store.py: "Source side: time filtering is left to the expansion, which is the part
    # under test", so fetch() returns every object, as a server that ignores time-range would.
    quirks = Quirks(filters_by_time=False)

    def pair(self) -> StorePair:
        return MemoryPair(self.quirks)

    def stop(self) -> None:
        return None


# ---------------------------------------------------------------------------------- CalDAV

class DavPair(StorePair):
    """A work and a phone calendar on one CalDAV server; the source store reaches it through
    the backend's counting proxy."""

    def __init__(self, backend: DavBackend) -> None:
        self.kind, self.quirks, self.backend = backend.kind, backend.quirks, backend
        server = backend.server
        self.work_url = server.create_calendar(_slug("src"), "work")
        phone_url = server.create_calendar(_slug("dst"), "phone")
        self.source = CalDAVSource(backend.source_transport, backend.via_proxy(self.work_url))
        self.target = CalDAVTarget(backend.target_transport, phone_url)
        self._baseline = backend.proxy_requests()

    def put(self, name: str, data: bytes) -> None:
        reply = self.backend.server.request("PUT", f"{self.work_url}{name}.ics", body=data,
                                            headers=ICS)
        assert reply.status in (200, 201, 204), f"setup PUT answered {reply.status}"

    def remove(self, name: str) -> None:
        reply = self.backend.server.request("DELETE", f"{self.work_url}{name}.ics")
        assert reply.status in (200, 204), f"setup DELETE answered {reply.status}"

    def source_requests(self) -> tuple[int, int]:
        now = self.backend.proxy_requests()
        return now[0] - self._baseline[0], now[1] - self._baseline[1]

    def expected_href(self, href_name: str) -> str | None:
        target = self.target
        assert isinstance(target, CalDAVTarget)
        return target.url + href_name

    def outside_href(self) -> str:
        return f"{self.work_url}foreign.ics"  # a sibling calendar on the same server

    def missing_target(self) -> TargetCalendar:
        return CalDAVTarget(self.backend.target_transport, self.backend.missing_url())


class DavBackend(Backend):
    """A CalDAV server, a transport for targets, and a counting proxy for sources."""

    def __init__(self, kind: str, server: CalDAVServer, quirks: Quirks,
                 transport: Callable[[str], Transport], missing: Callable[[], str]) -> None:
        self.kind, self.server, self.quirks = kind, server, quirks
        self.missing_url = missing
        self.proxy = FaultProxy(server.url).start()
        self.target_transport = transport(server.url)
        self.source_transport = transport(self.proxy.url)

    def via_proxy(self, url: str) -> str:
        """The same calendar, addressed through the counting proxy."""
        assert url.startswith(self.server.url)
        return self.proxy.url + url[len(self.server.url):]

    def proxy_requests(self) -> tuple[int, int]:
        """(requests, write requests) the proxy has seen so far."""
        requests = self.proxy.stats().requests
        return sum(requests.values()), sum(count for method, count in requests.items()
                                           if method.upper() in WRITE_METHODS)

    def pair(self) -> StorePair:
        return DavPair(self)

    def stop(self) -> None:
        self.target_transport.close()
        self.source_transport.close()
        self.proxy.stop()


def _basic(server: CalDAVServer,
           differences: ServerDifferences = STANDARD) -> Callable[[str], Transport]:
    def transport(base: str) -> Transport:
        return Transport(Credentials(base, server.username, server.password, timeout=10.0),
                         differences=differences)
    return transport


def radicale_backend(server: CalDAVServer) -> Backend:
    """The session's Radicale (tests/support/server_fixtures.py), shared with other tests."""
    return DavBackend("radicale", server, Quirks(lists_etags_first=True), _basic(server),
                      lambda: f"{server.calendar_home_url}{_slug('missing')}/")


def xandikos_backend() -> Backend:
    """A plain-HTTP Xandikos of our own."""
    server = XandikosServer()
    server.start()
    try:
        return _Owning(DavBackend("xandikos", server, Quirks(lists_etags_first=True),
                                  _basic(server),
                                  lambda: f"{server.calendar_home_url}{_slug('missing')}/"))
    except BaseException:
        server.stop()
        raise


def google_backend() -> Backend:
    """Radicale behind the Google-like proxy and token endpoint (tests/support/google_sim.py),
    reached with service-account bearer tokens and Google's differences (stores/google.py)."""
    server = GoogleServer()
    server.start()
    try:
        tokens = google.ServiceAccountTokens(google.parse_key(server.password), server.user)

        def transport(base: str) -> Transport:
            return Transport(Credentials(base, server.user, "", True, 10.0, bearer=tokens),
                             differences=google.GOOGLE)

        # stores/google.py, GOOGLE.makes_calendars: "Does not support the HTTP method
        # MKCALENDAR", so create_calendar() refuses (calendar-must-exist) without a request.
        quirks = Quirks(makes_calendars=False, lists_etags_first=True)
        return _Owning(DavBackend(
            "google", server, quirks, transport,
            lambda: f"{server.calendar_home_url}{_slug('missing')}/events/"))
    except BaseException:
        server.stop()
        raise


class _Owning(Backend):
    """A DavBackend whose server was started for it, and is stopped with it."""

    def __init__(self, inner: DavBackend) -> None:
        self.inner = inner
        self.kind, self.quirks = inner.kind, inner.quirks

    def pair(self) -> StorePair:
        return self.inner.pair()

    def stop(self) -> None:
        try:
            self.inner.stop()
        finally:
            self.inner.server.stop()


# ---------------------------------------------------------------------------------- Graph

class GraphPair(StorePair):
    """A calendar in the advocate's mailbox and one in the phone's, on the Graph simulator."""

    def __init__(self, backend: GraphBackend) -> None:
        self.kind, self.quirks, self.backend = "graph", backend.quirks, backend
        sim, client = backend.sim, backend.account.client
        work, phone = _slug("work"), _slug("phone")
        self.work_id = sim.add_calendar(ADVOCATE, work)
        sim.add_calendar(PHONE, phone)
        self.source = GraphSource(client, ADVOCATE, work, read_subject=True)
        self.target = GraphTarget(client, PHONE, phone)
        self.ids: dict[str, list[str]] = {}  # put name -> the events (occurrences) it made
        self.names: dict[str, str] = {}  # event id -> put name
        self._baseline = self._counted()

    def _counted(self) -> tuple[int, int]:
        sim = self.backend.sim
        with sim.lock:
            return sum(sim.requests.values()), sum(sim.writes.values())

    def put(self, name: str, data: bytes) -> None:
        """As Outlook holds it: a single event, or a series as the occurrences calendarView
        shows; a changed single event keeps its id (a new changeKey), as an edit does."""
        sim = self.backend.sim
        calendar = icalendar.Calendar.from_ical(data)
        summary = str(calendar.walk("VEVENT")[0]["SUMMARY"])
        spans = [(e["DTSTART"].dt, e["DTEND"].dt)
                 for e in recurring_ical_events.of(calendar).between(*_EXPANDED)]
        known = self.ids.get(name, [])
        if len(known) == 1 and len(spans) == 1:
            start, end = spans[0]
            sim.update_event(known[0], start=start, end=end, subject=summary)
            return
        self.remove(name)
        if len(spans) == 1:
            made = [sim.add_event(self.work_id, *spans[0], subject=summary)]
        else:
            made = sim.add_series(self.work_id, [s for s, _ in spans], spans[0][1] - spans[0][0],
                                  subject=summary)
        self.ids[name] = made
        self.names.update(dict.fromkeys(made, name))

    def remove(self, name: str) -> None:
        for ident in self.ids.pop(name, []):
            self.backend.sim.delete_event(ident)

    def name_of(self, href: str) -> str:
        return self.names.get(href, href)

    def source_requests(self) -> tuple[int, int]:
        now = self._counted()
        return now[0] - self._baseline[0], now[1] - self._baseline[1]

    def expected_href(self, href_name: str) -> str | None:
        return None

    def outside_href(self) -> str:
        # target.py: "An href here is a Graph event id, always addressed under this mailbox's
        # calendar"; what is not shaped like an id (a CalDAV URL) is not held.
        return "http://127.0.0.1:1/advocate/casework/foreign.ics"

    def missing_target(self) -> TargetCalendar:
        return GraphTarget(self.backend.account.client, PHONE, _slug("missing"))


class GraphBackend(Backend):
    """The stateful Graph simulator (tests/support/graph_sim.py) and one account on it."""

    kind = "graph"
    quirks = Quirks(
        # target.py, create(): "POST the entry ...; the new id and etag": Graph assigns ids.
        server_assigned_hrefs=True,
        # source.py: "Graph expands series on the server"; RawObject: such a store "hands over
        # the mapped `instances` instead of iCalendar `data`".
        server_expands_series=True,
        # source.py, multiget(): "The changed instances `changes` received whole (Graph sends
        # them with the change)"; there is no request that fetches events by id.
        multiget_needs_changes=True,
    )

    def __init__(self) -> None:
        self.sim = GraphSim().start()
        self.account = graph_account(self.sim)

    def pair(self) -> StorePair:
        return GraphPair(self)

    def stop(self) -> None:
        try:
            self.account.close()
        finally:
            self.sim.stop()


def make_backend(kind: str, radicale: Callable[[], CalDAVServer]) -> Backend:
    """Start the backend of `kind`; `radicale` gives the session's shared Radicale."""
    if kind == "memory":
        return MemoryBackend()
    if kind == "radicale":
        return radicale_backend(radicale())
    if kind == "xandikos":
        return xandikos_backend()
    if kind == "graph":
        return GraphBackend()
    if kind == "google":
        return google_backend()
    raise ValueError(f"unknown store kind {kind!r}")
