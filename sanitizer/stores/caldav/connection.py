"""A CalDAV account's connection and `check` probes: the requests behind caldav/kind.py.

Imported only when an account connects: it brings the HTTP stack, which the supervisor does not
load (it forks workers from itself while it has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from sanitizer.core.model import Window
from sanitizer.core.policy import Policy
from sanitizer.errors import ADMIN, ExitCode, StoreError
from sanitizer.stores.account import Account
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.caldav import bodies
from sanitizer.stores.caldav.discovery import Calendar, Discovery, list_calendars
from sanitizer.stores.caldav.http import Requester, Transport
from sanitizer.stores.caldav.kind import TLS_OFF
from sanitizer.stores.caldav.store import (
    CALDAV,
    DAV,
    XML_HEADERS,
    CalDAVSource,
    CalDAVTarget,
    multistatus,
)
from sanitizer.stores.kind import Missing, Probe, create_if_missing

_WRITE = frozenset({DAV + "all", DAV + "write", DAV + "write-content", DAV + "bind"})
_CREATE = frozenset({DAV + "all", DAV + "write", DAV + "bind"})


@dataclass
class DavConnection:
    """A CalDAV server (Google's included): one transport for every calendar of the account."""

    transport: Transport

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """CalDAV objects carry every field; the core reads only what the rules need."""
        return CalDAVSource(self._within(until), url)

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """A phone calendar on this server."""
        return CalDAVTarget(self._within(until), url)

    def tokens(self) -> Any:
        """The bearer token source of an OAuth account, or None for a password."""
        return self.transport.credentials.bearer

    def missing(self, url: str, shown: int) -> Missing:
        """The calendars in the missing calendar's parent, and the service's own advice if it
        cannot make calendars."""
        parent = urljoin(url, "..")
        try:
            beside: list[str] | None = [c.url for c in list_calendars(self.transport,
                                                                       parent)[:shown]]
        except StoreError:
            beside = None
        differences = self.transport.differences
        advice = None if differences.makes_calendars else (
            differences.missing_calendar_advice or "create it on the server")
        return Missing(beside, advice)

    def create_calendar(self, url: str) -> bool:
        """MKCALENDAR if missing. When the answer says the parent collection is missing (409: a
        phone login's principal on Radicale that never logged in), the parent is made first
        (MKCOL), one level only."""
        target = self.target(url)
        try:
            return create_if_missing(target)
        except StoreError as exc:
            if exc.status != 409:
                raise
        parent = urljoin(url, "..")
        reply = self.transport.request("MKCOL", parent, b"", {})
        if reply.status not in (201, 405):
            raise StoreError(operation="MKCOL", url=parent, reason="cannot-create",
                             status=reply.status) from None
        target.create_calendar()
        return True

    def _within(self, until: float | None) -> Requester:
        return self.transport if until is None else self.transport.within_budget(until)

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()


def first_request(account: Account, transport: Transport) -> Probe:
    """One PROPFIND of the account URL: reachability, TLS and the password at once."""
    status, _ = propfind(transport, account.url)
    if status == 404:
        return Probe("not-found", f"no such collection {account.url}: check "
                     f"accounts.{account.name}.url", ExitCode.CONFIG)
    if status != 207:
        return Probe("unavailable", f"PROPFIND {account.url} answered HTTP {status}",
                     ExitCode.UNAVAILABLE)
    if urlsplit(account.url).scheme == "http":
        return Probe("ok", f"password accepted by {account.url} (plain http, loopback)")
    if not account.verify_tls and account.ca_file is None:
        return Probe(TLS_OFF, f"password accepted by {account.url}, but TLS "
                     "verification is OFF, so anyone on the path can read the password and "
                     f"calendars: set accounts.{account.name}.ca_file to the server's CA and "
                     "remove verify_tls = false", ExitCode.CONFIG)
    return Probe("ok", f"password accepted by {account.url}; TLS certificate verified")


@dataclass
class DavProbe:
    """`check` of a pair's calendars on a CalDAV account: read-only requests."""

    transport: Transport
    compares: bool = True  # whether check compares UIDs of contents (see CalDAVKind.checker)

    @property
    def forbidden_advice(self) -> str:
        """The service's own advice for a 403."""
        return str(self.transport.differences.forbidden_advice)

    def source(self, pair: Policy, where: str, now: datetime) -> Probe | None:
        """One calendar-query over a one-minute window, ETags only: no event data is fetched."""
        start = now.replace(microsecond=0)
        body = bodies.calendar_query(Window(start, start + timedelta(minutes=1)), data=False)
        reply = self.transport.request("REPORT", pair.source_url, body,
                                       {"Depth": "1", **XML_HEADERS})
        if reply.status == 404:
            return Probe("source-missing", f"no calendar at {pair.source_url}: check "
                         f"{where}.source", ExitCode.CONFIG)
        if reply.status != 207:
            return Probe("source-unreadable", f"REPORT {pair.source_url} answered HTTP "
                         f"{reply.status}: check that {where}.source is a calendar",
                         ExitCode.CONFIG)
        return None

    def target(self, pair: Policy, where: str, account: str) -> Probe:
        """The target is a calendar we may write, or its parent a collection we may create in."""
        status, prop = propfind(self.transport, pair.target_url)
        if status == 207:
            if CALDAV + "calendar" not in _resource_types(prop):
                return Probe("target-not-calendar", f"{pair.target_url} exists but is not a "
                             f"calendar: point {where}.target at a calendar or a new name",
                             ExitCode.CONFIG)
            privileges = _privileges(prop)
            if privileges is not None and not privileges & _WRITE:
                return Probe("target-read-only", f"account {account} may not write "
                             f"{pair.target_url}: grant write access on the server",
                             ExitCode.NOPERM)
            return Probe("ok", "target is a writable calendar")
        if status != 404:
            return Probe("target-unavailable", f"PROPFIND {pair.target_url} answered HTTP "
                         f"{status}", ExitCode.UNAVAILABLE)
        if not self.transport.differences.makes_calendars:
            return Probe("target-missing", f"no calendar at {pair.target_url} ({where}.target): "
                         f"{self.transport.differences.missing_calendar_advice}", ExitCode.CONFIG)
        return self.parent(pair, where, account)

    def parent(self, pair: Policy, where: str, account: str) -> Probe:
        """A missing target: MKCALENDAR needs its parent to be a collection we may create in."""
        parent = urljoin(pair.target_url, "..")
        parent_status, parent_prop = propfind(self.transport, parent)
        if parent_status != 207 or DAV + "collection" not in _resource_types(parent_prop):
            return Probe("target-missing", f"neither {pair.target_url} nor its parent {parent} "
                         f"exists: check {where}.target", ExitCode.CONFIG)
        privileges = _privileges(parent_prop)
        if privileges is not None and not privileges & _CREATE:
            return Probe("cannot-create", f"{pair.target_url} does not exist and account "
                         f"{account} may not create it in {parent}: create the calendar on the "
                         "server or grant access", ExitCode.NOPERM)
        existing = ", ".join(c.url[len(parent):]
                             for c in list_calendars(self.transport, parent)[:10])
        return Probe("target-missing", f"{pair.target_url} does not exist, and no cycle "
                     f"creates it. Calendars in {parent}: {existing or 'none'}. If "
                     f"{where}.target has a typo, fix it; if the name is right, run "
                     f"`{ADMIN} create-target {pair.name}`", ExitCode.CONFIG)

    def compared_source(self, url: str) -> SourceCalendar | None:
        """CalDAV objects carry their UIDs as the server stores them."""
        return CalDAVSource(self.transport, url) if self.compares else None

    def compared_target(self, url: str) -> TargetCalendar | None:
        """The same for the target."""
        return CalDAVTarget(self.transport, url) if self.compares else None

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()


def propfind(transport: Transport, url: str) -> tuple[int, Any]:
    """(status, prop element) of a Depth 0 PROPFIND; a 207 that holds a 404 is a 404."""
    reply = transport.request("PROPFIND", url, bodies.TARGET, {"Depth": "0", **XML_HEADERS})
    if reply.status != 207:
        return reply.status, None
    own = urlsplit(url).path.rstrip("/")
    entries = list(multistatus(reply, url, "PROPFIND"))
    for href, status, prop in entries:
        if urlsplit(href).path.rstrip("/") == own:
            return (207 if status == 200 else status), prop
    if entries:
        _, status, prop = entries[0]
        return (207 if status == 200 else status), prop
    return 404, None


def _resource_types(prop: Any) -> set[str]:
    node = prop.find(DAV + "resourcetype") if prop is not None else None
    return {child.tag for child in node} if node is not None else set()


def _privileges(prop: Any) -> set[str] | None:
    """The privileges the server says we have, or None if it does not say."""
    node = prop.find(DAV + "current-user-privilege-set") if prop is not None else None
    if node is None:
        return None
    return {child.tag for privilege in node.iter(DAV + "privilege") for child in privilege}


def render(account: Account, found: Discovery) -> str:
    """A table, then one pasteable line per calendar."""
    lines = [f"account {account.name}: principal {found.principal}",
             f"calendar home {found.home}: {len(found.calendars)} calendar(s)"]
    if not found.calendars:
        lines.append("no calendars; create the work and phone calendars on the server first")
        return "\n".join(lines)
    width = max(len("NAME"), *(len(c.name) for c in found.calendars))
    lines.append(f"{'NAME':<{width}}  {'EVENTS':>6}  {'ACCESS':<10}  URL")
    lines += [f"{c.name:<{width}}  {_events(c):>6}  {_access(c):<10}  {c.url}"
              for c in found.calendars]
    lines += ["", "Paste into a [[pairs]] block: the work calendar as source, an empty calendar "
              f"the phone login may read as target (or a new name, then `{ADMIN} "
              "create-target PAIR`).", ""]
    lines += [paste_line(account, c) for c in found.calendars]
    return "\n".join(lines)


def paste_line(account: Account, calendar: Calendar) -> str:
    """`source = "..."` for a calendar with events, `target = "..."` for an empty writable one."""
    path = calendar.url[len(account.url):] if calendar.url.startswith(account.url) \
        else calendar.url
    key = "target" if calendar.events == 0 and calendar.writable is not False else "source"
    note = f"{calendar.name}: {_events(calendar)} event(s), {_access(calendar)}"
    if not calendar.vevent:
        key, note = "# not a calendar for events:", calendar.name
    return f'{key} = "{path}"   # {note}' if not key.startswith("#") else f"{key} {path}"


def _events(calendar: Calendar) -> str:
    return "?" if calendar.events is None else str(calendar.events)


def _access(calendar: Calendar) -> str:
    return {True: "read-write", False: "read-only", None: "unknown"}[calendar.writable]
