"""How a CalDAV service departs from the RFCs, as data the stores read instead of `if server`.

Most servers need nothing here (STANDARD). A service that cannot create calendars, ignores
If-None-Match or signals rate limits with 403 says so in its own instance (see
stores/google/service_account.py).
"""

from __future__ import annotations

from dataclasses import dataclass

RFC_FORGOTTEN_TOKEN = frozenset({403, 409, 412})  # RFC 6578 3.2; 403: Radicale, 412: Xandikos
# Google's reasons for a 403 that is a quota, not a refusal (Calendar API error reference).
USAGE_LIMIT_WORDS = ('"usageLimits"', '"rateLimitExceeded"', '"userRateLimitExceeded"')


@dataclass(frozen=True)
class ServerDifferences:
    """What the stores must do differently for one kind of service."""

    makes_calendars: bool = True  # MKCALENDAR works; else the target must exist beforehand
    honours_if_none_match: bool = True  # else a create looks before it PUTs, never overwriting
    forgotten_token_statuses: frozenset[int] = RFC_FORGOTTEN_TOKEN  # answers to an old token
    ctag_probe: bool = True  # a quiet cycle may ask getctag first (checked: see ctag.py)
    rate_limit_403: bool = False  # a 403 naming a usage limit is a rate limit, not a refusal
    missing_calendar_advice: str = ""  # what `check` tells an admin when the target is missing
    forbidden_advice: str = ""  # what `check` tells an admin when a calendar answers 403

    def is_rate_limit(self, status: int | None, body: object) -> bool:
        """A 403 that names a usage limit, on a service that signals rate limits that way."""
        if not self.rate_limit_403 or status != 403:
            return False
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        return any(word in text[:4096] for word in USAGE_LIMIT_WORDS)


STANDARD = ServerDifferences()
