"""Phone calendars are made on purpose only: `create-target` makes one, a cycle never does.

A cycle that finds its target missing fails the pair; the message names the calendars that do
exist beside it (a typo shows at a glance) and the command that creates it. Calendar URLs and
names are the server's own listing of the account's calendars, never event text.
"""

from __future__ import annotations

from urllib.parse import urljoin

from sanitizer.engine.report import PairReport
from sanitizer.errors import ADMIN
from sanitizer.service.config import Pair
from sanitizer.stores.kind import Connection

MISSING = "target-missing"
SHOWN = 10  # calendars named in the message, at most


def explain_missing(report: PairReport, pair: Pair,
                    connection: Connection | None) -> PairReport:
    """A pair that failed for a missing target: say which calendars exist beside it."""
    if report.error_code != MISSING:
        return report
    parent = urljoin(pair.target_url, "..")
    existing = "(not listed)"
    how = f"run `{ADMIN} create-target {pair.name}`"
    if connection is not None:
        missing = connection.missing(pair.target_url, SHOWN)
        if missing.beside is not None:
            existing = ", ".join(url[len(parent):] if url.startswith(parent) else url
                                 for url in missing.beside) or "none"
        how = missing.advice or how
    report.error = (f"no calendar at {pair.target_url} (the pair's target); calendars in "
                    f"{parent}: {existing}. A cycle never creates one: fix the pair's target if "
                    f"it has a typo, else {how}")
    return report
