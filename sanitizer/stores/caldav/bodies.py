"""The XML bodies of the CalDAV requests, built from caldav's RFC 4791 / RFC 6578 elements.

The caldav library is used for what it does well, its vocabulary of WebDAV and CalDAV elements
(names, namespaces, the UTC form of a time-range), and not for its client: every body is sent over
the project's bounded transport (http.py, wire.py), and every answer is parsed there. Bodies that
never change are built once, at import. Text that came from a server (a sync token, an href) is
refused here if XML cannot carry it, instead of being sent as a malformed request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from caldav.elements import cdav, dav
from caldav.elements.base import BaseElement
from lxml import etree

from sanitizer.core.model import Window

CS_NS = "http://calendarserver.org/ns/"
# XML 1.0's Char production: anything else cannot be sent as element text.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _GetCtag(BaseElement):
    """calendarserver.org's collection tag, which caldav's vocabulary does not name."""

    tag = f"{{{CS_NS}}}getctag"

    def xmlelement(self) -> etree._Element:
        """The element, with the CS prefix servers expect."""
        return etree.Element(self.tag, nsmap={"CS": CS_NS})


def serialize(element: BaseElement) -> bytes:
    """The request body: an XML declaration and the element tree, each namespace declared once."""
    root = element.xmlelement()
    etree.cleanup_namespaces(root, top_nsmap={"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"})
    return bytes(etree.tostring(root, encoding="utf-8", xml_declaration=True))


def xml_text(text: str) -> str:
    """Text from a server, if XML can carry it; ValueError otherwise."""
    if _NOT_XML.search(text):
        raise ValueError("not XML text")
    return text


def tree(parent: BaseElement, *children: BaseElement) -> BaseElement:
    """`parent` with `children` appended, in order."""
    return parent.append(list(children))


def propfind(*properties: BaseElement) -> bytes:
    """A PROPFIND for the named properties."""
    return serialize(tree(dav.Propfind(), tree(dav.Prop(), *properties)))


def _events(*conditions: BaseElement) -> BaseElement:
    """The VEVENTs of a calendar, with `conditions` on them."""
    return tree(cdav.Filter(), tree(cdav.CompFilter("VCALENDAR"),
                                    tree(cdav.CompFilter("VEVENT"), *conditions)))


def calendar_query(window: Window | None, *, data: bool, recurring: bool = False) -> bytes:
    """ETags (and the data, with `data`) of the events that overlap `window` (all, without
    one); with `recurring`, only those with an RRULE."""
    conditions: list[BaseElement] = []
    if window is not None:
        conditions.append(cdav.TimeRange(window.start, window.end))
    if recurring:
        conditions.append(cdav.PropFilter("RRULE"))
    wanted = tree(dav.Prop(), dav.GetEtag(), *([cdav.CalendarData()] if data else []))
    return serialize(tree(cdav.CalendarQuery(), wanted, _events(*conditions)))


def sync_collection(token: str) -> bytes:
    """RFC 6578: what changed since `token` (ETags only); ValueError if XML cannot carry it."""
    return serialize(tree(dav.SyncCollection(), dav.SyncToken(value=xml_text(token)),
                          dav.SyncLevel(value="1"), tree(dav.Prop(), dav.GetEtag())))


def multiget(paths: Sequence[str]) -> bytes:
    """The data and ETags of the objects at `paths` (which XML can carry: see xml_text)."""
    return serialize(tree(cdav.CalendarMultiGet(),
                          tree(dav.Prop(), dav.GetEtag(), cdav.CalendarData()),
                          *(dav.Href(value=xml_text(path)) for path in paths)))


def mkcalendar(name: str) -> bytes:
    """MKCALENDAR for events only, with a display name."""
    prop = tree(dav.Prop(), dav.DisplayName(value=xml_text(name)),
                tree(cdav.SupportedCalendarComponentSet(), cdav.Comp("VEVENT")))
    return serialize(tree(cdav.Mkcalendar(), tree(dav.Set(), prop)))


def xml_safe(paths: Iterable[str]) -> list[str]:
    """The paths XML can carry; the others are not asked for (a server's garbage)."""
    return [path for path in paths if not _NOT_XML.search(path)]


SYNC_TOKEN = propfind(dav.SyncToken())
TOKENS = propfind(dav.SyncToken(), _GetCtag())
CTAG = propfind(_GetCtag())
TARGET = propfind(dav.ResourceType(), dav.CurrentUserPrivilegeSet())
PRINCIPAL = propfind(dav.CurrentUserPrincipal())
HOME = propfind(cdav.CalendarHomeSet())
LISTING = propfind(dav.ResourceType(), dav.DisplayName(), dav.CurrentUserPrivilegeSet(),
                   cdav.SupportedCalendarComponentSet())
ALL_EVENTS = calendar_query(None, data=False)
EVERYTHING = calendar_query(None, data=True)
