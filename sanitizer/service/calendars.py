"""Is this calendar URL the same calendar as that one, under another spelling?

Two URLs name the same calendar when their paths agree after percent-decoding and dropping the
trailing slash, their ports agree (the scheme's default filled in), and their host names agree
ignoring case or resolve to a shared address (`localhost` and `127.0.0.1`, say). The scheme is
ignored: a calendar reachable at one port by two schemes is still one calendar. When in doubt
the answer is "same": it only stops a write, never allows one.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class CalendarName:
    """A calendar URL reduced to what identifies the calendar."""

    host: str
    port: int | None
    path: str

    @classmethod
    def of(cls, url: str) -> CalendarName:
        """Normalise scheme, host case, default port, percent-encoding and trailing slash."""
        parts = urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = DEFAULT_PORTS.get(parts.scheme.lower())
        path = unquote(parts.path)
        while "//" in path:
            path = path.replace("//", "/")
        return cls((parts.hostname or "").lower().rstrip("."), port, path.rstrip("/") or "/")


@functools.lru_cache(maxsize=256)
def addresses(host: str) -> frozenset[str]:
    """The addresses a host name resolves to (the name itself if it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset({host})
    found = {str(info[4][0]).split("%")[0] for info in infos}
    return frozenset(found | {host})


def same_calendar(first: str, second: str) -> bool:
    """True if the two URLs may name the same calendar."""
    a, b = CalendarName.of(first), CalendarName.of(second)
    if a.path != b.path or a.port != b.port:
        return False
    return a.host == b.host or bool(addresses(a.host) & addresses(b.host))


def matching(url: str, others: Iterable[str]) -> list[str]:
    """The URLs among `others` that may name the same calendar as `url`."""
    return [other for other in others if same_calendar(url, other)]


class CalendarIndex:
    """Calendar URLs normalised once and filed by path and port, so that asking whether a URL
    names one of them is a dict lookup plus a host comparison, not a parse of every URL."""

    def __init__(self, urls: Iterable[str]) -> None:
        self._by_place: dict[tuple[int | None, str], list[tuple[str, str]]] = {}
        for url in urls:
            name = CalendarName.of(url)
            self._by_place.setdefault((name.port, name.path), []).append((name.host, url))

    def matching(self, url: str) -> list[str]:
        """The indexed URLs that may name the same calendar as `url` (as same_calendar)."""
        name = CalendarName.of(url)
        return [other for host, other in self._by_place.get((name.port, name.path), ())
                if host == name.host or bool(addresses(host) & addresses(name.host))]

    def __contains__(self, url: object) -> bool:
        return isinstance(url, str) and bool(self.matching(url))
