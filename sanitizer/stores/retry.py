"""Retries for every store: the backoff between attempts, Retry-After, and a not-before gate
that a throttled answer sets for every request to the same place, with the clock and the sleep
injectable so that tests of retries neither wait for real nor depend on the machine's speed.

One place decides how long to wait, so CalDAV and Microsoft Graph back off alike: full jitter
in the upper half of an exponential ceiling, and a Retry-After longer than a cycle should take
ends the cycle's try (the next cycle retries) instead of holding the pair.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["SYSTEM_CLOCK", "Backoff", "Clock", "NotBefore", "retry_after"]


@dataclass(frozen=True)
class Clock:
    """Where retries read the time and how they wait: the system's unless a test says."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class Backoff:
    """Attempts per request and the pause before each retry."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0  # also the longest Retry-After honoured within a cycle
    clock: Clock = SYSTEM_CLOCK

    def delay(self, attempt: int) -> float:
        """The pause before attempt `attempt` (1 = the first retry): jittered, capped."""
        ceiling = min(self.base_delay * float(2 ** max(attempt - 1, 0)), self.max_delay)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def pause(self, attempt: int, until: float | None = None) -> bool:
        """Sleep before a retry; False (no sleep) if that would run past `until` (monotonic)."""
        seconds = self.delay(attempt)
        if until is not None and self.clock.monotonic() + seconds >= until:
            return False
        self.clock.sleep(seconds)
        return True


class NotBefore:
    """Retry-After holds back every request with the same key (a server, a mailbox), not only
    the one that was told, so parallel requests do not multiply a rate limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def hold(self, key: str, seconds: float, backoff: Backoff) -> bool:
        """Hold `key` back for `seconds`; False if that is longer than `backoff.max_delay`,
        longer than a cycle should wait."""
        if seconds > backoff.max_delay:
            return False
        with self._lock:
            self._until[key] = max(self._until.get(key, 0.0), backoff.clock.monotonic() + seconds)
        return True

    def wait(self, key: str, clock: Clock) -> None:
        """Sleep until `key` may be asked again (at once if it was never held back)."""
        with self._lock:
            pause = self._until.get(key, 0.0) - clock.monotonic()
        if pause > 0:
            clock.sleep(pause)


def retry_after(headers: Mapping[str, str], clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date);
    None if absent or unreadable. Never negative or NaN."""
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - clock.now()).total_seconds()
    if math.isnan(seconds):  # NaN: not an answer (inf is: longer than any cycle waits)
        return None
    return max(0.0, seconds)
