"""Target UIDs: stable per source instance, unlinkable to it without the installation's key.

UID = prefix + installation tag + "-" + HMAC-SHA256(key, pair name, source UID, instance key). The
instance key is the original start of a recurring instance (its RECURRENCE-ID), so a moved instance
keeps its UID and is updated in place. The prefix marks a phone entry; the tag (derived from the
key, never the key itself) says which installation made it. Only entries with this installation's
tag are ever changed or deleted; entries of another installation are foreign.

Entries written before tags existed carry the prefix and the digest only ("legacy" UIDs). One is
ours only when this key recomputes it for a wanted instance, or when our own records list it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

OWNED_PREFIX = "csan-"
KEY_BYTES = 32
TAG_LENGTH = 8
_DIGEST = 40
_TAGGED = re.compile(rf"{OWNED_PREFIX}([0-9a-f]{{{TAG_LENGTH}}})-([0-9a-f]{{{_DIGEST}}})")
_LEGACY = re.compile(rf"{OWNED_PREFIX}[0-9a-f]{{{_DIGEST}}}")


def installation_tag(key: bytes) -> str:
    """A short public name of the installation: derived from the key, reveals nothing of it."""
    return hmac.new(key, b"installation-tag", hashlib.sha256).hexdigest()[:TAG_LENGTH]


def target_uid(key: bytes, pair: str, source_uid: str, occurrence_id: str) -> str:
    """The phone entry's UID for one instance of one source event in one pair."""
    message = b"\x00".join(part.encode("utf-8", "surrogatepass")
                           for part in ("v1", pair, source_uid, occurrence_id))
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"{OWNED_PREFIX}{installation_tag(key)}-{digest[:_DIGEST]}"


def is_owned(uid: str | None) -> bool:
    """True for UIDs some installation of this program made (a phone entry); False otherwise."""
    return uid is not None and bool(_TAGGED.fullmatch(uid) or _LEGACY.fullmatch(uid))


def tag_of(uid: str | None) -> str | None:
    """The installation tag in a phone entry's UID; None for legacy and foreign UIDs."""
    match = _TAGGED.fullmatch(uid) if uid is not None else None
    return match.group(1) if match else None


def is_legacy(uid: str | None) -> bool:
    """True for a phone entry's UID from before installation tags."""
    return uid is not None and bool(_LEGACY.fullmatch(uid))


def legacy_uid(uid: str) -> str:
    """The UID the same instance had before tags: the prefix and the digest."""
    match = _TAGGED.fullmatch(uid)
    return OWNED_PREFIX + match.group(2) if match else uid


@dataclass(frozen=True)
class Ownership:
    """Which phone entries this installation may change: its tag, and legacy UIDs it made."""

    tag: str
    legacy: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, key: bytes, known: Iterable[str] = ()) -> Ownership:
        """The ownership of the installation with this key; `known` are UIDs it recorded."""
        return cls(installation_tag(key), frozenset(u for u in known if is_legacy(u)))

    def owns(self, uid: str | None) -> bool:
        """True only for entries this installation made."""
        return uid is not None and (tag_of(uid) == self.tag or uid in self.legacy)

    def with_legacy(self, uids: Iterable[str]) -> Ownership:
        """The same ownership, also over these recomputed legacy UIDs."""
        return Ownership(self.tag, self.legacy | {u for u in uids if is_legacy(u)})
