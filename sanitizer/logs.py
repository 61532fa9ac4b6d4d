"""Logging that cannot carry event text.

Our own records carry counts, pair names, owned UIDs and reason codes. Records from libraries
(caldav, HTTP clients, icalendar warnings) can quote bodies and values, so below WARNING they are
dropped and at WARNING or above their text is withheld: only the logger name and level remain.
Under journald (`$JOURNAL_STREAM`) lines carry `<N>` priority prefixes and no timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

OWN = "sanitizer"
LEVELS = ("debug", "info", "warning", "error")
QUIET_LIBRARIES = ("caldav", "niquests", "urllib3", "urllib3_future", "icalendar",
                   "recurring_ical_events", "keyring", "schedule", "charset_normalizer", "qh3")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class WithholdForeignText(logging.Filter):
    """Let our records through; reduce everyone else's to a name and a level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OWN or record.name.startswith(OWN + "."):
            return True
        if record.levelno < logging.WARNING:
            return False
        record.msg = "message withheld (it may quote calendar data)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


class JournalFormatter(logging.Formatter):
    """`<N>name: message`, which journald turns into a priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{record.name}: {record.getMessage()}"


def setup(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(WithholdForeignText())
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    for name in QUIET_LIBRARIES:  # their debug output includes request and response bodies
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
