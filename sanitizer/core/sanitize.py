"""Instance + decision -> a new SanitizedEvent built from the allowlist (pure).

Nothing of the source instance is carried over but its times, whether it is tentative or free, and,
under a `keep-title` rule only, its SUMMARY. Cancelled instances and skipped events give nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sanitizer.core.identity import target_uid
from sanitizer.core.model import Action, Instance, Label, SanitizedEvent, Status, Transparency
from sanitizer.core.policy import Policy
from sanitizer.core.rules import Decision


def sanitize(instance: Instance, decision: Decision, pair: Policy,
             key: bytes) -> SanitizedEvent | None:
    """The phone entry for one instance, or None when nothing should appear."""
    if decision.action is Action.SKIP or instance.status == "CANCELLED":
        return None
    title: Label = decision.title or pair.title
    if decision.action is Action.KEEP_TITLE:
        title = Label.kept_title(instance.summary or "") or pair.title
    return SanitizedEvent(
        uid=target_uid(key, pair.name, instance.source_uid, instance.key),
        start=instance.start,
        end=instance.end,
        title=title,
        location=decision.location or pair.location,
        status=Status.TENTATIVE if instance.status == "TENTATIVE" else Status.CONFIRMED,
        transparency=Transparency.TRANSPARENT if instance.transparent else Transparency.OPAQUE,
        alarm=pair.alarm if pair.alarm is not None and pair.alarm >= timedelta(0) else None,
    )
