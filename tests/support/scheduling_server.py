"""A scripted CalDAV server that schedules implicitly, as RFC 6638 section 3.2 says and as
sabre/dav's iTIP broker (Nextcloud's scheduling) does it.

A calendar object with an ORGANIZER and ATTENDEEs is a scheduling object resource. When the
organizer's account PUTs a new version, every attendee of the old or the new version whose
SCHEDULE-AGENT is not CLIENT gets a message: CANCEL if the new version no longer lists them
(this includes a version without ORGANIZER: sabre keeps the old organizer), REQUEST otherwise.
A DELETE sends CANCEL to every such attendee of the stored version. Messages are recorded in
`itip` (method, attendee) instead of being delivered, so a test can prove none was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.support.hostile_server import XML, Answer, HostileServer, Seen, etag

_UID = re.compile(rb"^UID:([^\r\n]*)", re.MULTILINE)
_LINE = re.compile(rb"^(ORGANIZER|ATTENDEE)((?:;[^:\r\n]*)?):([^\r\n]*)", re.MULTILINE | re.I)


def _unfold(data: bytes) -> bytes:
    return data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")


def parties(data: bytes) -> tuple[str | None, set[str]]:
    """(organizer, attendees scheduled by the server) of a calendar object."""
    organizer, attendees = None, set()
    for name, params, value in _LINE.findall(_unfold(data)):
        address = value.decode(errors="replace").strip().lower()
        if name.upper() == b"ORGANIZER":
            organizer = address
        elif b"SCHEDULE-AGENT=CLIENT" not in params.upper():
            attendees.add(address)
    return organizer, attendees


@dataclass
class SchedulingServer(HostileServer):
    """The hostile server's tiny CalDAV, plus implicit scheduling for the organizer."""

    itip: list[tuple[str, str]] = field(default_factory=list)

    def _stored(self, path: str) -> bytes | None:
        where = self._split(path)
        return None if where is None else self.calendars[where[0]].get(where[1])

    def _put(self, seen: Seen) -> Answer:
        old = self._stored(seen.path)
        if (refused := self._precondition(seen, old)) is not None:
            return refused
        answer = super()._put(seen)
        if old is not None and answer[0] < 300:
            (organizer, before), (new_organizer, after) = parties(old), parties(seen.body)
            if (organizer or new_organizer) and (before or after):
                self.itip += [("CANCEL", a) for a in sorted(before - after)]
                self.itip += [("REQUEST", a) for a in sorted(after)]
        return answer

    def _precondition(self, seen: Seen, old: bytes | None) -> Answer | None:
        """If-None-Match, If-Match and CalDAV's no-uid-conflict, as real servers check them."""
        if seen.headers.get("if-none-match") == "*" and old is not None:
            return 412, {}, b""
        wanted = seen.headers.get("if-match")
        if wanted is not None and (old is None or wanted != etag(old)):
            return 412, {}, b""
        where = self._split(seen.path)
        uid = _UID.search(_unfold(seen.body))
        if where is not None and uid is not None and any(
                name != where[1] and _UID.search(_unfold(data)) is not None
                and _UID.search(_unfold(data)).group(1) == uid.group(1)  # type: ignore[union-attr]
                for name, data in self.calendars[where[0]].items()):
            return 403, XML, (b'<?xml version="1.0"?><D:error xmlns:D="DAV:" xmlns:C='
                              b'"urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict/></D:error>')
        return None

    def _delete(self, seen: Seen) -> Answer:
        old = self._stored(seen.path)
        wanted = seen.headers.get("if-match")
        if wanted is not None and old is not None and wanted != etag(old):
            return 412, {}, b""
        answer = super()._delete(seen)
        if old is not None and answer[0] < 300:
            organizer, attendees = parties(old)
            if organizer:
                self.itip += [("CANCEL", a) for a in sorted(attendees)]
        return answer
