"""The one retry module: backoff, Retry-After and the shared not-before gate, on a fake clock, so
that the waits are checked exactly and no test sleeps for real."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanitizer.stores.retry import Backoff, Clock, NotBefore, retry_after

NOW = datetime(2030, 3, 4, 9, tzinfo=UTC)


@dataclass
class FakeTime:
    """A monotonic clock that moves only when something sleeps."""

    at: float = 100.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.at, sleep=self.sleep, now=lambda: NOW)


@given(st.integers(min_value=1, max_value=40))
def test_each_delay_lies_in_the_upper_half_of_its_capped_ceiling(attempt: int) -> None:
    backoff = Backoff(base_delay=0.5, max_delay=30.0)
    ceiling = min(0.5 * 2 ** (attempt - 1), 30.0)
    assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_a_pause_that_would_run_past_the_budget_is_not_taken() -> None:
    fake = FakeTime()
    backoff = Backoff(base_delay=4.0, clock=fake.clock())
    assert backoff.pause(1, until=fake.at + 100) is True
    assert 2.0 <= fake.slept[0] <= 4.0
    assert backoff.pause(1, until=fake.at + 1.0) is False  # at least 2 s: over the budget
    assert len(fake.slept) == 1


def test_a_held_key_holds_back_every_request_with_that_key_only() -> None:
    fake = FakeTime()
    backoff = Backoff(max_delay=30.0, clock=fake.clock())
    gate = NotBefore()
    assert gate.hold("maria@agency.example", 5.0, backoff)
    assert gate.hold("maria@agency.example", 2.0, backoff)  # a shorter wait never shortens
    gate.wait("jo@agency.example", backoff.clock)
    assert fake.slept == []
    gate.wait("maria@agency.example", backoff.clock)
    assert fake.slept == [5.0]
    gate.wait("maria@agency.example", backoff.clock)  # already waited out
    assert fake.slept == [5.0]


def test_a_wait_longer_than_a_cycle_is_refused_not_held() -> None:
    fake = FakeTime()
    backoff = Backoff(max_delay=30.0, clock=fake.clock())
    gate = NotBefore()
    assert gate.hold("", 31.0, backoff) is False
    assert gate.hold("", float("inf"), backoff) is False
    gate.wait("", backoff.clock)
    assert fake.slept == []


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), ("2.128", 2.128), ("-5", 0.0), ("0", 0.0), ("inf", float("inf")),
    ("nan", None), ("soon", None), ("", None), ("Mon, 04 Mar 2030 09:00:30 GMT", 30.0),
    ("Mon, 04 Mar 2030 08:00:00 GMT", 0.0), ("Mon, 04 Mar 2030 09:00:30", None)])
def test_retry_after_in_either_form(value: str, seconds: float | None) -> None:
    clock = Clock(now=lambda: NOW)
    assert retry_after({"Retry-After": value}, clock) == seconds


def test_no_retry_after_is_none() -> None:
    assert retry_after({"Content-Type": "text/plain"}) is None


@given(st.text(max_size=40))
def test_any_retry_after_text_is_a_number_or_none(value: str) -> None:
    seconds = retry_after({"retry-after": value}, Clock(now=lambda: NOW + timedelta(0)))
    assert seconds is None or seconds >= 0.0
