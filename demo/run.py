"""`calendar-sanitizer demo`: the whole product on an embedded Radicale with fake casework.

It starts Radicale on 127.0.0.1 (free port, throwaway store and password), fills a work calendar,
syncs every few seconds with the normal engine and config, changes the work calendar once (a move
and a deletion) to show the phone following, and prints this week side by side. Ctrl-C stops it all
and removes the store. The work column shows the demo's own invented data, never real data.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from demo.data import demo_config, sample_events
from demo.embedded_server import EmbeddedRadicale, dav_request
from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.model import Instance, SanitizedEvent, When
from sanitizer.engine.desired import read_target, window_for
from sanitizer.engine.report import PairReport
from sanitizer.service.config import load_config
from sanitizer.service.credentials import CREDENTIALS_ENV
from sanitizer.service.cycle import run_cycle
from sanitizer.service.runtime import Runtime, open_runtime

COLUMN = 46


def local_zone_name() -> str:
    """The machine's IANA zone (from $TZ or /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    link = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    for name in candidates:
        try:
            if name:
                ZoneInfo(name)
                return name
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return "UTC"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the demo as Ctrl-C does, through its clean-up."""
    raise KeyboardInterrupt


def run_demo(interval: float = 5.0, cycles: int = 0) -> int:
    """Run until Ctrl-C or SIGTERM (or `cycles` cycles); always removes what it created: the
    embedded server runs in a session of its own, so a stop signal meant for the demo does not
    reach it, and the demo must stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="calendar-sanitizer-demo-"))
    saved = os.environ.get(CREDENTIALS_ENV)
    server = EmbeddedRadicale(username="advocate", store_dir=workdir / "radicale")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
        zone_name = local_zone_name()
        zone = ZoneInfo(zone_name)
        work_url = server.create_calendar("casework", "Work calendar (full detail)")
        today = datetime.now(zone).date()
        for event in sample_events(today, zone_name):
            dav_request("PUT", work_url + event.name, body=event.ics,
                        auth=(server.username, server.password),
                        headers={"Content-Type": "text/calendar; charset=utf-8"})
        config_path = _write_setup(workdir, server, zone_name)
        config = load_config(config_path)
        runtime = open_runtime(config)
        for pair in config.pairs:  # what `calendar-sanitizer create-target PAIR` does
            connection = runtime.connection(pair.target_account)
            if connection is not None:
                connection.create_calendar(pair.target_url)
        print(f"Radicale is running at {server.url} (store: {server.store_dir})")
        _loop(runtime, work_url, server, zone, today, interval=interval, cycles=cycles)
        runtime.close()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if saved is None:
            os.environ.pop(CREDENTIALS_ENV, None)
        else:
            os.environ[CREDENTIALS_ENV] = saved
    return 0


def _write_setup(workdir: Path, server: EmbeddedRadicale, zone_name: str) -> Path:
    """A config file and a credentials directory, as systemd would provide them."""
    credentials = workdir / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "demo").write_text(server.password, encoding="utf-8")
    (credentials / "demo").chmod(0o600)
    os.environ[CREDENTIALS_ENV] = str(credentials)
    path = workdir / "config.toml"
    path.write_text(demo_config(server.url, server.username, str(workdir / "state"), zone_name),
                    encoding="utf-8")
    return path


def _loop(runtime: Runtime, work_url: str, server: EmbeddedRadicale, zone: ZoneInfo,
          today: date, *, interval: float, cycles: int) -> None:
    phone_url = server.url + "advocate/phone/"
    count = 0
    shown = ""
    while True:
        count += 1
        now = datetime.now(UTC)
        reports = run_cycle(runtime, runtime.config.pairs, now).reports
        table = side_by_side(runtime, work_url, phone_url, zone, today, now)
        print(cycle_text(count, now.astimezone(zone), reports, table, shown,
                         _connect_text(phone_url, server)))
        shown = table
        if count == 2:
            _change_work_calendar(work_url, server, zone, today)
        if cycles and count >= cycles:
            return
        time.sleep(interval)


def cycle_text(count: int, when: datetime, reports: list[PairReport], table: str, shown: str,
               connect: str) -> str:
    """A changed table with the phone login under it (so it never scrolls away), or one line."""
    if table == shown:
        return f"cycle {count} at {when:%H:%M:%S}: no change"
    lines = [f"\n--- cycle {count} at {when:%H:%M:%S} ---"]
    lines += [report.status_line() for report in reports]
    return "\n".join([*lines, table, connect])


def _change_work_calendar(work_url: str, server: EmbeddedRadicale, zone: ZoneInfo,
                          today: date) -> None:
    """Move one appointment by an hour and delete another, as an advocate would at work."""
    auth = (server.username, server.password)
    moved = {e.name: e for e in sample_events(today, str(zone), intake_moved=True)}
    dav_request("PUT", work_url + "intake-rosa.ics", body=moved["intake-rosa.ics"].ics,
                auth=auth, headers={"Content-Type": "text/calendar; charset=utf-8"})
    dav_request("DELETE", work_url + "shelter-visit.ics", auth=auth)
    print("\n*** work calendar changed: today's intake moved one hour later, the shelter visit"
          " deleted. Watch the phone column follow on the next cycle. ***")


def side_by_side(runtime: Runtime, work_url: str, phone_url: str, zone: tzinfo, today: date,
                 now: datetime) -> str:
    """The coming week, day by day: the work calendar left, the phone calendar right."""
    pair = runtime.config.pairs[0]
    connection = runtime.connection(pair.source_account)
    assert connection is not None
    window = window_for(pair, now)
    work: dict[date, list[tuple[When, str]]] = defaultdict(list)
    for obj in connection.source(work_url, read_titles=True).fetch(window):
        try:
            instances = expand_object(obj.data, window, zone, obj.href)
        except SkipObject:
            continue
        for instance in instances:
            work[_day(instance.start, zone)].append(_work_line(instance, zone))
    phone: dict[date, list[tuple[When, str]]] = defaultdict(list)
    for item in read_target(connection.target(phone_url).list()):
        if item.event is not None:
            phone[_day(item.event.start, zone)].append(_phone_line(item.event, zone))
    rows = [f"{'WORK CALENDAR (stays on the server)':<{COLUMN}} | PHONE CALENDAR (what syncs)"]
    for offset in range(7):
        day = today + timedelta(days=offset)
        rows.append(f"{day:%a %d %b}")
        right = sorted(phone[day], key=lambda p: str(p[0]))
        for start, text in sorted(work[day], key=lambda p: str(p[0])):
            match = next((p for p in right if p[0] == start), None)
            if match is not None:
                right.remove(match)
            shown = match[1] if match else "-- (not on the phone)"
            rows.append(f"  {text[:COLUMN - 2]:<{COLUMN - 2}} | {shown}")
        rows += [f"  {'':<{COLUMN - 2}} | {text}" for _, text in right]
    return "\n".join(rows)


def _day(value: When, zone: tzinfo) -> date:
    return value.astimezone(zone).date() if isinstance(value, datetime) else value


def _clock(start: When, end: When, zone: tzinfo) -> str:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return f"{start.astimezone(zone):%H:%M}-{end.astimezone(zone):%H:%M}"
    return "all day    "


def _work_line(instance: Instance, zone: tzinfo) -> tuple[When, str]:
    status = " [CANCELLED]" if instance.status == "CANCELLED" else ""
    summary = instance.summary or ""
    return instance.start, f"{_clock(instance.start, instance.end, zone)} {summary}{status}"


def _phone_line(event: SanitizedEvent, zone: tzinfo) -> tuple[When, str]:
    where = f" @ {event.location.text}" if event.location else ""
    return event.start, f"{_clock(event.start, event.end, zone)} {event.title.text}{where}"


def _connect_text(phone_url: str, server: EmbeddedRadicale) -> str:
    return (f"\nConnect a phone or Thunderbird to the PHONE calendar (loopback only):\n"
            f"  URL:      {phone_url}\n  user:     {server.username}\n"
            f"  password: {server.password}\n"
            "(DAVx5 or iOS need the machine's address instead of 127.0.0.1; the demo listens on"
            " loopback only.) Press Ctrl-C to stop and remove everything.")
