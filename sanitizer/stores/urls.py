"""Where a server may make us send a request: URL confinement (pure).

A server's href is hostile input. It is usable only if, after normalisation (case of scheme and
host, default ports, percent-decoding), it has the calendar's scheme, host and port and names one
object directly inside the calendar, spelled without dot or empty segments, a query, a fragment or
a user. Anything else is foreign: counted, reported, never requested. The transport's own backstop
is `within`: no request leaves the account's URLs, and no password crosses plain HTTP off this host.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_IN_NAME = frozenset("/\\\x00\r\n\t")


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) normalised, or None for anything but a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def _segments(parts: SplitResult) -> list[str] | None:
    """The decoded path segments (the trailing empty one of a collection dropped), or None when
    the path has dot or empty segments, or a segment that decodes to a separator."""
    if parts.query or parts.fragment or not parts.path.startswith("/"):
        return None
    raw = parts.path[1:].split("/")
    if raw and raw[-1] == "":
        raw.pop()
    decoded = [unquote(segment, errors="strict") if "%" in segment else segment
               for segment in raw]
    for segment in decoded:
        if segment in ("", ".", "..") or _BAD_IN_NAME.intersection(segment):
            return None
    return decoded


def _split(url: str) -> tuple[tuple[str, str, int], list[str], SplitResult] | None:
    where = origin(url)
    if where is None:
        return None
    parts = urlsplit(url)
    try:
        segments = _segments(parts)
    except UnicodeDecodeError:
        return None
    if segments is None:
        return None
    return where, segments, parts


def object_url(href: str, collection: str) -> str | None:
    """The URL to use for `href` (absolute) if it names an object directly inside `collection`,
    spelled as the server spelled its name; None if the href is foreign."""
    found, home = _split(href), _split(collection)
    if found is None or home is None:
        return None
    (where, segments, parts), (home_where, home_segments, _) = found, home
    if where != home_where or parts.path.endswith("/"):
        return None
    if len(segments) != len(home_segments) + 1 or segments[:-1] != home_segments:
        return None
    name = parts.path.rsplit("/", 1)[1]
    return collection if collection.endswith("/") and not name else (
        collection.rstrip("/") + "/" + name)


def within(url: str, base: str) -> bool:
    """True if `url` is `base` or lies beneath it, with the same scheme, host and port."""
    found, home = _split(url), _split(base)
    if found is None or home is None:
        return False
    return found[0] == home[0] and found[1][:len(home[1])] == home[1]


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1: the only hosts plain HTTP may reach."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
