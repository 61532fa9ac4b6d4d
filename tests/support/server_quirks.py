"""How the CalDAV servers the tests start differ, measured, kept as data the tests check.

tests/integration/test_server_differences.py measures the Radicale and Xandikos rows on every run,
so a server upgrade that changes a behaviour fails a test. The product does not read this table:
it never depends on these going one way (it decides "changed" on parsed content, never on bytes or
ETags, and lists the whole phone calendar on a full cycle). What the stores must do differently
for a service lives in sanitizer/stores/caldav/differences.py. docs/servers.md explains each column.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["QUIRKS", "Expand", "ServerQuirks", "SyncAnswer", "classify_sync_answer"]


class Expand(enum.Enum):
    """What a server does with CALDAV:expand in a calendar-query (RFC 4791 section 9.6.5)."""

    UTC = "utc"  # one VEVENT per instance, times in UTC, as the RFC requires
    KEEPS_TZID = "keeps-tzid"  # instances, but local times with a TZID and no VTIMEZONE
    IGNORED = "ignored"  # the stored object, RRULE and all


class SyncAnswer(enum.Enum):
    """What a reply to a sync-collection REPORT that carried a token means for the caller."""

    DELTA = "delta"  # 207: changes since the token (or, on some servers, everything; see below)
    RESYNC = "resync"  # the server does not know the token: list everything, take a fresh token
    FAILED = "failed"  # any other answer: an error like that of any other request


@dataclass(frozen=True)
class ServerQuirks:
    """One server implementation's observable behaviour, as far as the sanitizer meets it."""

    kind: str
    get_identical: bool  # GET returns the very bytes that were PUT
    adds_properties: frozenset[str]  # properties it adds to what was PUT (beyond reordering)
    reput_changes_etag: bool  # PUT of identical bytes gives a new ETag
    reput_changes_token: bool  # ... and a new sync token
    sync_state_form: str  # what its DAV:sync-token values look like (for docs, reports)
    unknown_token_status: int  # its answer to sync-collection with a token it does not know
    duplicate_uid_status: int | None  # a second object with a UID already present; None: accepted
    busy_status: int | None  # its answer to a write it cannot take now (concurrent writers)
    expand: Expand  # its answer to CALDAV:expand; the product expands by itself
    measured_here: bool  # measured by tests/test_server_differences.py on every run

    @property
    def stale_token_lists_everything(self) -> bool:
        """A 207 to a forgotten token is a full listing without removals: it looks like a delta.

        On such a server a deletion is only seen by a full listing, so a client that relies on
        sync tokens must still list everything from time to time.
        """
        return self.unknown_token_status == 207


QUIRKS: dict[str, ServerQuirks] = {
    q.kind: q
    for q in (
        ServerQuirks(
            kind="radicale", get_identical=False, adds_properties=frozenset(),
            reput_changes_etag=False, reput_changes_token=False,
            sync_state_form="http://radicale.org/ns/sync/<sha256 hex>", unknown_token_status=403,
            duplicate_uid_status=409, busy_status=None, expand=Expand.UTC, measured_here=True,
        ),
        ServerQuirks(
            kind="xandikos", get_identical=False, adds_properties=frozenset(),
            reput_changes_etag=False, reput_changes_token=False,
            sync_state_form="<git commit sha1 hex>", unknown_token_status=412,
            duplicate_uid_status=412, busy_status=423, expand=Expand.KEEPS_TZID, measured_here=True,
        ),
        ServerQuirks(
            kind="davical", get_identical=True, adds_properties=frozenset(),
            reput_changes_etag=False, reput_changes_token=True,
            sync_state_form="data:,<n>", unknown_token_status=207,
            duplicate_uid_status=None, busy_status=None, expand=Expand.UTC, measured_here=False,
        ),
        ServerQuirks(
            kind="sogo", get_identical=False, adds_properties=frozenset({"CLASS"}),
            reput_changes_etag=True, reput_changes_token=True,
            sync_state_form="<unix seconds>", unknown_token_status=207,
            duplicate_uid_status=409, busy_status=None, expand=Expand.IGNORED, measured_here=False,
        ),
    )
}
QUIRKS["xandikos-tls"] = QUIRKS["xandikos"]


def classify_sync_answer(status: int, body: bytes | str | None = None) -> SyncAnswer:
    """What a sync-collection reply means: RFC 6578 section 3.2 says a forgotten token is refused
    with DAV:valid-sync-token; Radicale answers 403 and Xandikos 412, both with that element.

    A 403 without it is a permission problem, not a stale token. DAViCal and SOGo answer a
    forgotten token with 207 and the whole collection, which cannot be told from a delta here
    (see ServerQuirks.stale_token_lists_everything).
    """
    if status == 207:
        return SyncAnswer.DELTA
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    names_token = "valid-sync-token" in text
    if status == 412 or (status in (403, 409) and names_token):
        return SyncAnswer.RESYNC
    return SyncAnswer.FAILED
