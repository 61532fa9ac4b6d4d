"""Access tokens handed from one worker process to the next, so that each account's token is
minted once per lifetime, not once per pair's cycle.

Each pair's cycle runs in a fresh worker process (service/pool.py). A token class whose account
has a `handoff_key` looks here before minting and leaves what it minted here; the worker sends
what it holds back to the supervisor, which keeps it in memory and hands it to the next worker of
the same account. Never written to disk, never logged: `Handed` hides the token in its repr.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

MARGIN = 300.0  # seconds before expiry a handed token is no longer used (clock skew, a slow cycle)


@dataclass(frozen=True)
class Handed:
    """One access token and when it expires (seconds since the epoch)."""

    token: str = field(repr=False)
    expires: float

    def usable(self, now: float | None = None) -> bool:
        """Whether the token still has more than MARGIN seconds to live."""
        return self.expires - MARGIN > (time.time() if now is None else now)


_HELD: dict[str, Handed] = {}


def take(key: str | None) -> str | None:
    """The usable token held for `key`, or None (no key: this process hands nothing on)."""
    handed = _HELD.get(key) if key is not None else None
    return handed.token if handed is not None and handed.usable() else None


def keep(key: str | None, token: str, expires: float) -> None:
    """Hold a freshly minted token for the workers after this one."""
    if key is not None and token:
        _HELD[key] = Handed(token, expires)


def drop(key: str | None) -> None:
    """Forget a token the server refused."""
    if key is not None:
        _HELD.pop(key, None)


def seed(tokens: Mapping[str, Handed]) -> None:
    """In a new worker: the tokens the supervisor handed over."""
    _HELD.clear()
    _HELD.update({k: v for k, v in tokens.items() if v.usable()})


def held() -> dict[str, Handed]:
    """What this process holds now, to send back to the supervisor."""
    return {k: v for k, v in _HELD.items() if v.usable()}
