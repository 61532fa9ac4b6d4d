"""Target UIDs: stable per source instance, unlinkable to it without the installation's key.

UID = prefix + HMAC-SHA256(key, pair name, source UID, instance key). The instance key is the
original start of a recurring instance (its RECURRENCE-ID), so a moved instance keeps its UID and is
updated in place. The prefix marks ownership: only events with it are ever changed or deleted.
"""

from __future__ import annotations

import hashlib
import hmac

OWNED_PREFIX = "csan-"
KEY_BYTES = 32


def target_uid(key: bytes, pair: str, source_uid: str, instance_key: str) -> str:
    """The phone entry's UID for one instance of one source event in one pair."""
    message = b"\x00".join(part.encode("utf-8", "surrogatepass")
                           for part in ("v1", pair, source_uid, instance_key))
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return OWNED_PREFIX + digest[:40]


def is_owned(uid: str | None) -> bool:
    """True for UIDs this program made; everything else in a target is foreign."""
    return bool(uid) and uid is not None and uid.startswith(OWNED_PREFIX) and len(uid) == 45
