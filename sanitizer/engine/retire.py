"""Clean a target calendar no configured pair wants any more: delete every entry we made there.

Only this installation's entries go (its tag, or a legacy UID the ledger lists); everything else,
another installation's entries included, stays and is counted. Used for retired pairs and
corrected targets, so nothing written outlives the config that wanted it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sanitizer.core.identity import Ownership
from sanitizer.core.phone_format import read_back
from sanitizer.errors import PreconditionFailed, StoreError
from sanitizer.stores.base import TargetCalendar

log = logging.getLogger(__name__)


@dataclass
class Cleanup:
    """What one clean-up of a retired target did: counts, owned UIDs and a reason code."""

    deleted: int = 0
    foreign: int = 0
    left: dict[str, str] = field(default_factory=dict)  # owned UID -> href, still there
    error: str | None = None

    @property
    def done(self) -> bool:
        """The target holds nothing of ours any more."""
        return self.error is None and not self.left


def clean_target(target: TargetCalendar, ours: Ownership) -> Cleanup:
    """Delete every entry of ours in the target; a missing calendar holds nothing of ours."""
    result = Cleanup()
    try:
        objects = target.list()
    except StoreError as exc:
        if exc.status == 404:
            return result
        result.error = exc.reason
        return result
    for obj in objects:
        uid = read_back(obj.data).uid
        if uid is None or not ours.owns(uid):
            result.foreign += 1
            continue
        try:
            target.delete(obj.href, obj.etag)
            result.deleted += 1
        except PreconditionFailed:
            result.left[uid] = obj.href  # changed since listed: listed again next time
        except StoreError as exc:
            result.left[uid] = obj.href
            result.error = exc.reason
    return result
