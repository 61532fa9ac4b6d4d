"""Logging that cannot carry event text.

Our own records carry counts, pair names, owned UIDs and reason codes. Records from libraries
(caldav, HTTP clients, icalendar warnings) can quote bodies and values, so below WARNING they are
dropped and at WARNING or above their text is withheld: only the logger name and level remain.
The text is withheld when the record is made, so a handler a library adds to its own logger
prints nothing of it either. No record prints a traceback: exception texts quote their input, so
only the exception's type is kept. Library switches that write traffic to files (caldav's
communication dump, TLS key logs) are turned off whatever the environment says.
Under journald (`$JOURNAL_STREAM`) lines carry `<N>` priority prefixes and no timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

OWN = "sanitizer"
LEVELS = ("debug", "info", "warning", "error")
QUIET_LIBRARIES = ("caldav", "niquests", "urllib3", "urllib3_future", "icalendar",
                   "recurring_ical_events", "x_wr_timezone", "keyring", "schedule",
                   "charset_normalizer", "qh3")
WITHHELD = "message withheld (it may quote calendar data)"
# Environment switches that make a library write requests and responses (calendar data, the
# Authorization header) or TLS session keys to files, or open a debugger on the terminal.
DUMP_SWITCHES = ("PYTHON_CALDAV_COMMDUMP", "PYTHON_CALDAV_DEBUGMODE", "SSLKEYLOGFILE")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def is_own(name: str) -> bool:
    """True for the program's own loggers."""
    return name == OWN or name.startswith(OWN + ".")


def redact(record: logging.LogRecord) -> logging.LogRecord:
    """Withhold a foreign record's text; drop any traceback, keeping the exception's type."""
    if not is_own(record.name):
        record.msg, record.args = WITHHELD, None
    elif record.exc_info and record.exc_info[0] is not None:
        record.msg = f"{record.getMessage()} ({record.exc_info[0].__name__})"
        record.args = None
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None
    return record


class WithholdForeignText(logging.Filter):
    """Let our records through; drop everyone else's below WARNING, withhold the rest's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_own(record.name) and record.levelno < logging.WARNING:
            return False
        redact(record)
        return True


class JournalFormatter(logging.Formatter):
    """`<N>name: message`, which journald turns into a priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{record.name}: {record.getMessage()}"


def _install_record_factory() -> None:
    """Redact every record as it is made, whichever handler later sees it (once per process)."""
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact(previous(*args, **kwargs))

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def disable_library_dumps() -> None:
    """Turn off caldav's communication dump and debugger, and TLS key logging.

    caldav reads its switches when first imported (after this runs, in Transport), so removing
    them from the environment is enough; if it was imported already, its flags are reset too.
    """
    for name in DUMP_SWITCHES:
        os.environ.pop(name, None)
    error = sys.modules.get("caldav.lib.error")
    if error is not None:
        flags = vars(error)
        flags["debug_dump_communication"] = False
        flags["debugmode"] = "PRODUCTION"


def setup(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    install(handler, getattr(logging, level.upper()))


def install(handler: logging.Handler, level: int) -> None:
    """Make `handler` the root logger's only one, behind the same guards as setup() (a worker
    process sends its records to the supervisor this way)."""
    disable_library_dumps()
    _install_record_factory()
    handler.addFilter(WithholdForeignText())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:  # their debug output includes request and response bodies
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(False)  # again, in case warnings.showwarning was replaced since
    logging.captureWarnings(True)
