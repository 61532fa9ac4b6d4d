"""Builders for pure-core tests: pairs, instances and source objects without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sanitizer.core.model import Action
from sanitizer.core.policy import Rule
from sanitizer.service.config import Pair
from sanitizer.stores.caldav.kind import CalDAVAccount

KEY = b"k" * 32
UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
ACCOUNT = CalDAVAccount("main", "http://127.0.0.1:1/", username="user")


def make_pair(name: str = "advocate", rules: tuple[Rule, ...] = (), **options: object) -> Pair:
    """A pair with the defaults of the config loader."""
    return Pair(name=name, source_account=ACCOUNT, target_account=ACCOUNT,
                source_url="http://127.0.0.1:1/u/casework/", target_url="http://127.0.0.1:1/u/phone/",
                rules=rules, **options)  # type: ignore[arg-type]


def keep_title_rule(category: str = "staff") -> Rule:
    """A keep-title rule for a category."""
    return Rule(where="pairs[0].rules[0]", action=Action.KEEP_TITLE,
                match_categories=frozenset({category}))


def ics(uid: str, start: datetime, minutes: int = 60, summary: str = "Jane Doe",
        extra: str = "") -> bytes:
    """One timed event object in UTC."""
    end = start + timedelta(minutes=minutes)
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:{summary}\r\n{extra}"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()
