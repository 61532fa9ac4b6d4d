"""A pair that never succeeds turns stale from when it was first seen: the daemon records that
with its first schedule, and a cycle with its first result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sanitizer.cli.status import is_stale
from sanitizer.engine.report import PairReport
from sanitizer.service import status


def test_the_daemons_first_schedule_starts_the_staleness_clock(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    status.record_schedule(tmp_path, {"maria": (now + timedelta(minutes=5), 0)})
    entry = status.read_status(tmp_path)["maria"]
    since = datetime.fromisoformat(entry["since"])
    assert abs((since - now).total_seconds()) < 60
    assert not is_stale(entry, now, timedelta(minutes=15))
    assert is_stale(entry, now + timedelta(minutes=16), timedelta(minutes=15))
    status.record_schedule(tmp_path, {"maria": (now + timedelta(minutes=10), 1)})
    assert status.read_status(tmp_path)["maria"]["since"] == entry["since"]  # first seen stays


def test_a_failed_cycle_keeps_the_last_known_missing_appointments(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    seen = PairReport("maria")
    seen.skipped.update({"unknown-timezone": 2, "cancelled": 1})
    status.record(tmp_path, [seen], now)
    assert status.read_status(tmp_path)["maria"]["missing"] == {"unknown-timezone": 2}
    status.record(tmp_path, [PairReport.failed("maria", "timeout", "timed out")], now)
    assert status.read_status(tmp_path)["maria"]["missing"] == {"unknown-timezone": 2}
    status.record(tmp_path, [PairReport("maria")], now)
    assert status.read_status(tmp_path)["maria"]["missing"] == {}


def test_the_rejected_account_is_known_from_the_failed_requests_url() -> None:
    from sanitizer.service.config import parse_config  # noqa: PLC0415
    from sanitizer.service.runtime import _rejected_accounts  # noqa: PLC0415

    config = parse_config({
        "service": {"timezone": "UTC"},
        "accounts": {"work": {"url": "https://dav.example/work/", "username": "w"},
                     "phone": {"url": "https://dav.example/phones/", "username": "p"}},
        "pairs": [{"name": "maria", "source_account": "work", "target_account": "phone",
                   "source": "maria/", "target": "maria-phone/"}]})
    pair = config.pair("maria")
    assert _rejected_accounts(pair, "https://dav.example/work/maria/a.ics") == {"work"}
    assert _rejected_accounts(pair, "https://dav.example/phones/maria-phone/") == {"phone"}
    assert _rejected_accounts(pair, "https://dav.example/phones/") == {"phone"}  # its principal
    # a message that quotes the other side's URL does not count: only the request's own URL
    assert _rejected_accounts(pair, "https://oauth.example/token") == {"work", "phone"}
    assert _rejected_accounts(pair, None) == {"work", "phone"}
