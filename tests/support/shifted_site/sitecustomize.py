"""Moves this Python process's clock by TEST_CLOCK_SHIFT_DAYS (see tests/support/clock_shift.py):
on PYTHONPATH only for a shifted test run, so the servers and the CLI processes the tests start
see the same moved date as the tests themselves."""

import os

if os.environ.get("TEST_CLOCK_SHIFT_DAYS"):
    import datetime

    import time_machine

    time_machine.travel(datetime.timedelta(days=float(os.environ["TEST_CLOCK_SHIFT_DAYS"])),
                        tick=True).start()
