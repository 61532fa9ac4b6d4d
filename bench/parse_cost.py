"""CPU time to parse and expand one object, per object: a typical Outlook invitation, and a daily
series with 1,000 moved instances (long-running Exchange meetings look like that).

Usage: .venv/bin/python -m bench.parse_cost [ROUNDS]
Prints process CPU seconds (time.process_time) per call of expand_object, the mean of ROUNDS
calls after one warm-up call (the CPU clock may tick coarsely, so no single call is timed).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sanitizer.core.expand import expand_object
from sanitizer.core.model import Window

REPO = Path(__file__).resolve().parent.parent
TYPICAL = REPO / "tests" / "data" / "event_outlook_teams_meeting.ics"
START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def moved_series(moved: int) -> bytes:
    """A daily series from START, every one of its first `moved` instances moved by an hour."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "BEGIN:VEVENT",
             "UID:series-1", "DTSTAMP:20300101T000000Z", f"DTSTART:{START:%Y%m%dT%H%M%SZ}",
             f"DTEND:{START + timedelta(hours=1):%Y%m%dT%H%M%SZ}", "RRULE:FREQ=DAILY",
             "SUMMARY:Team meeting", "END:VEVENT"]
    for day in range(moved):
        original = START + timedelta(days=day)
        begin = original + timedelta(hours=1)
        lines += ["BEGIN:VEVENT", "UID:series-1", "DTSTAMP:20300101T000000Z",
                  f"RECURRENCE-ID:{original:%Y%m%dT%H%M%SZ}", f"DTSTART:{begin:%Y%m%dT%H%M%SZ}",
                  f"DTEND:{begin + timedelta(hours=1):%Y%m%dT%H%M%SZ}", "SUMMARY:Team meeting",
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def cost(data: bytes, window: Window, rounds: int) -> float:
    """The mean CPU seconds of one expand_object call."""
    expand_object(data, window, UTC, "fallback")
    started = time.process_time()
    for _ in range(rounds):
        expand_object(data, window, UTC, "fallback")
    return (time.process_time() - started) / rounds


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    typical = TYPICAL.read_bytes()
    wide = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))
    series = moved_series(1000)
    window = Window(START, START + timedelta(days=1100))
    print(f"typical event ({len(typical)} bytes): {cost(typical, wide, rounds) * 1000:.2f} ms")
    print(f"series, 1,000 moved instances ({len(series) // 1024} KiB): "
          f"{cost(series, window, max(3, rounds // 20)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
