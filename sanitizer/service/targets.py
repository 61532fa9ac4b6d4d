"""Phone calendars are made on purpose only: `create-target` makes one, a cycle never does.

A cycle that finds its target missing fails the pair; the message names the calendars that do
exist beside it (a typo shows at a glance) and the command that creates it. Calendar URLs and
names are the server's own listing of the account's calendars, never event text.
"""

from __future__ import annotations

from urllib.parse import urljoin

from sanitizer.engine.report import PairReport
from sanitizer.errors import ADMIN, StoreError
from sanitizer.service.config import Pair
from sanitizer.stores.base import TargetCalendar
from sanitizer.stores.caldav.discovery import list_calendars
from sanitizer.stores.caldav.store import Transport

MISSING = "target-missing"
SHOWN = 10  # calendars named in the message, at most


def explain_missing(report: PairReport, pair: Pair, transport: Transport | None) -> PairReport:
    """A pair that failed for a missing target: say which calendars exist beside it."""
    if report.error_code != MISSING:
        return report
    parent = urljoin(pair.target_url, "..")
    existing = "(not listed)"
    if transport is not None:
        try:
            names = [c.url[len(parent):] if c.url.startswith(parent) else c.url
                     for c in list_calendars(transport, parent)[:SHOWN]]
            existing = ", ".join(names) or "none"
        except StoreError:
            pass
    how = f"run `{ADMIN} create-target {pair.name}`"
    if transport is not None and not transport.differences.makes_calendars:
        how = transport.differences.missing_calendar_advice or "create it on the server"
    report.error = (f"no calendar at {pair.target_url} (the pair's target); calendars in "
                    f"{parent}: {existing}. A cycle never creates one: fix the pair's target if "
                    f"it has a typo, else {how}")
    return report


def create(target: TargetCalendar, url: str, transport: Transport | None = None) -> bool:
    """Make the phone calendar if it is missing; False if it was there already. On a CalDAV
    server whose answer says the parent collection is missing (409: a phone login's principal
    on Radicale that was never logged in), the parent is made first (MKCOL), one level only."""
    try:
        target.list()
        return False
    except StoreError as exc:
        if exc.status != 404:
            raise
    try:
        target.create_calendar()
    except StoreError as exc:
        if exc.status != 409 or transport is None:
            raise
        parent = urljoin(url, "..")
        reply = transport.request("MKCOL", parent, b"", {})
        if reply.status not in (201, 405):
            raise StoreError(operation="MKCOL", url=parent, reason="cannot-create",
                             status=reply.status) from None
        target.create_calendar()
    return True
