"""The per-object CPU budget: free while it has time left, firm once it runs out."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from datetime import UTC, timedelta

import pytest

from bench.parse_cost import START, moved_series
from sanitizer.core import expand
from sanitizer.core.budget import CpuBudget, OutOfTime
from sanitizer.core.model import Window

SERIES = moved_series(300)
WINDOW = Window(START, START + timedelta(days=400))


def _cpu(run: object, rounds: int = 3) -> float:
    assert callable(run)
    run()  # warm-up
    started = time.process_time()
    for _ in range(rounds):
        run()
    return time.process_time() - started


def test_the_budget_costs_nothing_until_it_fires() -> None:
    """Parsing under the budget costs about what parsing without it costs (a profile hook on
    every call made it three times as slow)."""
    def bare() -> None:
        expand._expand(expand._parse(SERIES), WINDOW, UTC, "f")

    def budgeted() -> None:
        expand.expand_object(SERIES, WINDOW, UTC, "f")

    assert _cpu(budgeted, 5) < 1.8 * _cpu(bare, 5) + 0.02


def _spin() -> None:
    while True:
        with contextlib.suppress(Exception):  # a library that swallows what it can
            sum(range(1000))


def test_spent_budget_interrupts_and_restores_the_previous_handler() -> None:
    before = signal.getsignal(signal.SIGPROF)
    started = time.process_time()
    with pytest.raises(OutOfTime), CpuBudget(0.1):
        _spin()
    assert time.process_time() - started < 1.0
    assert signal.getsignal(signal.SIGPROF) is before
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_another_thread_gets_the_same_budget() -> None:
    caught: list[BaseException] = []

    def run() -> None:
        try:
            with CpuBudget(0.1):
                _spin()
        except OutOfTime as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert caught and not thread.is_alive()
