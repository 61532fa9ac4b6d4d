"""Test times relative to the real date, for tests whose times meet the real clock somewhere in
the product (status staleness, token lifetimes, certificates): a fixed date in such a test is a
date bomb that goes off once the calendar passes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def tomorrow_at(hour: int) -> datetime:
    """Tomorrow (by the real clock, UTC) at `hour`:00 UTC: always ahead, never far."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1, hours=hour)


def graph_time(moment: datetime) -> str:
    """A UTC time as Microsoft Graph writes dateTime values."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")
