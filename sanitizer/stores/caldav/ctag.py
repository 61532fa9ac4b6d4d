"""The cheapest quiet probe: a collection's getctag first, sync-collection only when it changed.

Most CalDAV servers (Radicale, Xandikos, sabre/dav and what is built on it) keep a `getctag` that
changes whenever anything in the collection does; a depth-0 PROPFIND of it costs less than a
sync-collection REPORT, much less on some servers. So the token a pair keeps in its sync state
carries, besides the server's sync token, the ctag read no later than that token (the same
PROPFIND reads both), and a quiet cycle asks for the ctag alone: the same ctag means nothing
changed, one request; another means a REPORT with the sync token, as before.

A ctag that does not change with the calendar would hide changes, so it is checked: every
VERIFY_EVERY quiet probes the REPORT goes out anyway, and if it shows changes that the ctag did
not, that calendar is probed with sync-collection only from then on (and until a restart, for a
daemon; for one-shot runs until the next full cycle reads a ctag again). A server without getctag,
or one whose differences say not to trust it, is never probed this way.
"""

from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass, replace

PREFIX = "csan-ctag:"  # no server's sync token (a URI) starts like this
VERIFY_EVERY = 10  # quiet probes between two sync-collection REPORTs that check the ctag
MAX_CTAG = 512  # characters; a longer "ctag" is not used

_UNRELIABLE: set[str] = set()  # calendar URLs whose ctag stayed put while the calendar changed
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProbeToken:
    """What a pair keeps as its source token: the sync token, and the ctag read no later."""

    sync: str
    ctag: str | None = None
    left: int = VERIFY_EVERY  # ctag probes before the next checking REPORT

    def encode(self) -> str:
        """The token as kept in sync state (the bare sync token when there is no ctag)."""
        if self.ctag is None:
            return self.sync
        packed = base64.urlsafe_b64encode(self.ctag.encode("utf-8", "surrogatepass")).decode()
        return f"{PREFIX}{self.left}:{packed}:{self.sync}"

    @classmethod
    def decode(cls, token: str) -> ProbeToken:
        """The parts of a kept token; a token this module did not make is a bare sync token,
        and one that is damaged probes with sync-collection (its sync token, if readable)."""
        if not token.startswith(PREFIX):
            return cls(token)
        left, _, rest = token[len(PREFIX):].partition(":")
        packed, _, sync = rest.partition(":")
        try:
            ctag = base64.urlsafe_b64decode(packed.encode()).decode("utf-8", "surrogatepass")
            count = int(left)
        except (ValueError, binascii.Error):
            return cls(sync or token)
        return cls(sync, ctag, max(0, min(count, VERIFY_EVERY)))

    def probed(self) -> ProbeToken:
        """After a quiet probe that found the same ctag: one fewer before the check."""
        return replace(self, left=max(0, self.left - 1))


def usable(ctag: str | None) -> str | None:
    """The ctag if it can be kept (present, not oversized)."""
    if ctag is None:
        return None
    ctag = ctag.strip()
    return ctag if ctag and len(ctag) <= MAX_CTAG else None


def trusted(url: str) -> bool:
    """False once this calendar's ctag was caught not changing with it."""
    with _LOCK:
        return url not in _UNRELIABLE


def distrust(url: str) -> None:
    """Probe this calendar with sync-collection only from now on."""
    with _LOCK:
        _UNRELIABLE.add(url)
