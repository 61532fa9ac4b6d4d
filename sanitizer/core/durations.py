"""Durations written as "90s", "15m", "24h", "14d" or "2w", the only form the config accepts."""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(r"^\s*(\d{1,7})\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError with a message that does not echo long input."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError('expected a number and a unit, like "90s", "15m", "24h", "14d" or "2w"')
    number, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(number)})

