"""Pytest plugin: `TEST_CLOCK_SHIFT_DAYS=365 pytest` runs the whole suite with the date moved,
in this process and in every Python process it starts (servers, the CLI), to find tests that
depend on today's date: a fixed date that the real clock meets somewhere in the product
(staleness, token lifetimes, certificates, the window) is a bomb that goes off one day.

The monotonic clock and sleeps are left alone (time-machine does not move them), and so is the C
library's clock that OpenSSL reads: the tests' certificates are valid from two years back, so
they verify on either date. `make test-shifted` runs it.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

ENV = "TEST_CLOCK_SHIFT_DAYS"
SITE = Path(__file__).with_name("shifted_site")


def pytest_configure(config: pytest.Config) -> None:
    """Move the clock for the whole session, here and in child processes."""
    days = os.environ.get(ENV)
    if not days:
        return
    import time_machine  # noqa: PLC0415 - only for a shifted run

    traveller = time_machine.travel(datetime.timedelta(days=float(days)), tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)
    paths = [str(SITE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def pytest_report_header() -> str | None:
    """Say so at the top of the run."""
    days = os.environ.get(ENV)
    return f"clock moved by {days} days ({ENV})" if days else None
