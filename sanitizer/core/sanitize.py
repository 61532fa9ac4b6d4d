"""Instance + decision -> a new SanitizedEvent built from the allowlist (pure).

Nothing of the source instance is carried over but its times, whether it is tentative or free, and,
under a `keep-title` rule only, its SUMMARY. Cancelled instances and skipped events give nothing.
Times are whole minutes: seconds are free for whoever sends an invitation to stamp bits into.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sanitizer.core.identity import target_uid
from sanitizer.core.model import (
    Action,
    Instance,
    Label,
    SanitizedEvent,
    Status,
    Transparency,
    When,
)
from sanitizer.core.policy import Policy
from sanitizer.core.rules import Decision, from_agency


def sanitize(instance: Instance, decision: Decision, pair: Policy,
             key: bytes) -> SanitizedEvent | None:
    """The phone entry for one instance, or None when nothing should appear."""
    if decision.action is Action.SKIP or instance.status == "CANCELLED":
        return None
    title: Label = decision.title or pair.title
    if decision.action is Action.KEEP_TITLE and from_agency(instance, pair.agency_domains):
        title = Label.kept_title(instance.summary or "") or pair.title
    start, end = whole_minutes(instance.start, instance.end)
    return SanitizedEvent(
        uid=target_uid(key, pair.name, instance.source_uid, instance.occurrence_id),
        start=start,
        end=end,
        title=title,
        location=decision.location or pair.location,
        status=Status.TENTATIVE if instance.status == "TENTATIVE" else Status.CONFIRMED,
        transparency=Transparency.TRANSPARENT if instance.transparent else Transparency.OPAQUE,
        alarm=pair.alarm if pair.alarm is not None and pair.alarm >= timedelta(0) else None,
    )


def whole_minutes(start: When, end: When) -> tuple[When, When]:
    """Start rounded down, end rounded up to the minute; dates and moments stay as they are.

    Rounding outwards keeps every instant of the appointment, and a positive length positive.
    """
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return start, end
    floor = start.replace(second=0, microsecond=0)
    if end == start:
        return floor, floor
    ceiling = end.replace(second=0, microsecond=0)
    if ceiling < end:
        ceiling += timedelta(minutes=1)
    return floor, ceiling
