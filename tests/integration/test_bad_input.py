"""Hostile and broken input from the work calendar's server.

Each object is skipped with a reason code (or, when its times are sound, synced), the rest of the
pair still syncs, the process keeps running, and time and memory stay bounded. Three levels:
expand_object on the bytes; the engine on in-memory calendars (which store what a real server
refuses, such as two objects with one UID); and the CLI against a Radicale phone calendar with the
source's REPORT answered by a stub, for bytes no real server would store.

The inputs are tests/data/bad_*.ics; objects over the size caps and with 10^6 instances are built
here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from sanitizer.core import expand
from sanitizer.core.expand import MAX_SECONDS, SkipObject, expand_object
from sanitizer.core.phone_format import read_back
from sanitizer.engine.desired import window_for
from sanitizer.engine.reconcile import sync_pair
from tests.integration.test_faults import (
    Answer,
    Seen,
    StubProxy,
    multistatus,
    phone_state,
    plain_http,
    sync,
)
from tests.support.core_builders import KEY, NOW, UTC_ZONE, ics, make_pair
from tests.support.harness import Setup, list_objects, put
from tests.support.memory_store import MemoryCalendar
from tests.support.server_fixtures import FreshCalendars

DATA = Path(__file__).resolve().parents[1] / "data"
WINDOW = window_for(make_pair(), NOW)
SECRET_WORDS = ("Vasquez", "555-0199", "H\u00e9l\u00e8ne", "Letter", "Case notes", "Other copy")

# file -> (reason it is skipped for, or None) and how many phone entries it gives
EXPECTED: dict[str, tuple[str | None, int]] = {
    "bad_dtstart_invalid.ics": ("bad-date", 0),
    "bad_dtstart_missing.ics": ("missing-dtstart", 0),
    "bad_dtend_before_dtstart.ics": ("end-before-start", 0),
    "bad_folding_status.ics": ("unparseable", 0),  # the broken line was STATUS:CANCELLED
    "bad_folding_exdate.ics": ("bad-recurrence", 0),  # the broken line was an EXDATE
    "bad_rrule_secondly_1e6.ics": ("recurrence-too-dense", 0),
    "bad_rrule_count_1e9.ics": (None, 14),  # a daily rule: only the window's instances
    "bad_rrule_never_matches.ics": ("expansion-timeout", 0),  # walks to year 9999
    "bad_rrule_dense_byparts.ics": ("recurrence-too-dense", 0),  # 86400 times a day
    "bad_rrule_unreadable.ics": ("bad-recurrence", 0),
    "bad_override_without_master.ics": (None, 1),  # an invitation to one instance
    "bad_vtodo.ics": ("not-an-event", 0),
    "bad_vjournal.ics": ("not-an-event", 0),
    "bad_unknown_tzid.ics": ("unknown-timezone", 0),
    "bad_non_utf8.ics": (None, 1),  # times are fine; no text is copied anyway
}


def five_megabyte_description() -> bytes:
    text = "Notes " * (5 * 1024 * 1024 // 6)
    folded = "\r\n ".join(text[i:i + 74] for i in range(0, len(text), 74))
    return ics("huge", NOW + timedelta(hours=5), extra=f"DESCRIPTION:{folded}\r\n")


def long_line(size: int = 300 * 1024, uid: str = "long") -> bytes:
    """One unfolded content line longer than any real one (an HTML description is tens of KB)."""
    return ics(uid, NOW + timedelta(hours=5), extra=f"X-ALT-DESC:{'x' * size}\r\n")


def near_the_caps() -> bytes:
    """Just under every cap: 900 KB, lines of 200 KB, 100 parameters on a line."""
    text = "Notes " * (200 * 1024 // 6)
    folded = "\r\n ".join(text[i:i + 74] for i in range(0, len(text), 74))
    attendee = "ATTENDEE" + "".join(f";X-P{i}=v" for i in range(100)) + ":mailto:a@example.org\r\n"
    return ics("near", NOW + timedelta(hours=5),
               extra="".join(f"X-NOTES-{i}:{folded}\r\n" for i in range(4)) + attendee)


def many_parameters(count: int = 101, quote: str = "") -> bytes:
    """A line with more parameters than any real one; `quote` opens a quote that never closes."""
    return ics("params", NOW + timedelta(hours=5),
               extra=f"ATTENDEE;CN={quote}x" + "".join(f";X-P{i}=v" for i in range(count))
               + ":mailto:a@example.org\r\n")


def million_seconds() -> bytes:
    """FREQ=SECONDLY with 10^6 instances, all inside the window."""
    return ics("dense", NOW + timedelta(hours=6),
               extra="RRULE:FREQ=SECONDLY;COUNT=1000000\r\n").replace(b"DTEND", b"X-DTEND")


def nested(depth: int) -> bytes:
    """Events inside events inside events."""
    body = b"BEGIN:VEVENT\r\nUID:n\r\nDTSTART:20300305T100000Z\r\n"
    return (b"BEGIN:VCALENDAR\r\n" + body * depth + b"END:VEVENT\r\n" * depth
            + b"END:VCALENDAR\r\n")


GENERATED: dict[str, tuple[Callable[[], bytes], str | None, int]] = {
    "5MB-description": (five_megabyte_description, "too-large", 0),
    "two-summaries": (lambda: ics("two", NOW + timedelta(hours=5), summary="Staff",
                                  extra="SUMMARY:Case notes\r\n"), "duplicate-property", 0),
    "just-over-1MiB": (lambda: long_line(1024 * 1024), "too-large", 0),
    "300KB-line": (long_line, "line-too-long", 0),
    "near-the-caps": (near_the_caps, None, 1),
    "101-parameters": (many_parameters, "too-many-parameters", 0),
    "2e4-parameters": (lambda: many_parameters(20_000), "too-many-parameters", 0),
    "parameters-after-an-open-quote": (lambda: many_parameters(101, '"'), "too-many-parameters",
                                       0),
    "quoted-semicolons": (lambda: ics("q", NOW + timedelta(hours=5), extra=(
        'ATTENDEE;CN="' + ";" * 500 + '":mailto:a@example.org\r\n')), None, 1),
    "value-semicolons": (lambda: ics("v", NOW + timedelta(hours=5), extra=(
        "DESCRIPTION:" + "a;" * 5000 + "\r\n")), None, 1),
    "secondly-1e6-in-window": (million_seconds, "recurrence-too-dense", 0),
    "nested-1999-deep": (lambda: nested(1999), None, 1),
    "nested-5000-deep": (lambda: nested(5000), "too-complex", 0),
    "non-calendar-bytes": (lambda: b"\xff\xfe<html>\x00\x01", "unparseable", 0),
    "two-calendars": (lambda: ics("a", NOW) + ics("b", NOW), "unparseable", 0),
    "many-lines": (lambda: ics("l", NOW, extra="X-A:b\r\n" * 60_000), "too-complex", 0),
    "many-rdates": (lambda: ics("r", NOW, extra=("RDATE:" + ",".join(
        f"20300305T{h:02d}{m:02d}00Z" for h in range(24) for m in range(60)) + "\r\n") * 15),
        "too-complex", 0),
}


def test_every_bad_file_is_covered() -> None:
    names = {p.name for p in DATA.glob("bad_*.ics")} - {"bad_duplicate_uid_a.ics",
                                                         "bad_duplicate_uid_b.ics"}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_skipped_with_its_reason_in_bounded_time(name: str) -> None:
    reason, entries = EXPECTED[name]
    check((DATA / name).read_bytes, reason, entries)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_hostile_object(name: str) -> None:
    make, reason, entries = GENERATED[name]
    check(make, reason, entries)


def check(make: Callable[[], bytes], reason: str | None, entries: int) -> None:
    data = make()
    started = time.thread_time()  # CPU time: a busy test machine must not fail this
    try:
        instances = expand_object(data, WINDOW, UTC_ZONE, "fallback")
        got: tuple[str | None, int] = (None, len(instances))
    except SkipObject as skip:
        got = (skip.reason, 0)
        assert str(skip) == skip.reason  # a code, nothing quoted
    elapsed = time.thread_time() - started
    assert got == (reason, entries)
    assert elapsed < MAX_SECONDS + 2.0, elapsed


def test_parsing_is_inside_the_cpu_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """An object under every cap whose parsing alone takes longer than the budget is cut off."""
    monkeypatch.setattr(expand, "MAX_SECONDS", 0.1)
    data = ics("slow", NOW + timedelta(hours=5), extra="X-A;X-B=c:d\r\n" * 40_000)
    started = time.thread_time()
    with pytest.raises(SkipObject, match=r"^expansion-timeout$"):
        expand_object(data, WINDOW, UTC_ZONE, "fallback")
    assert time.thread_time() - started < 0.6


# ----------------------------------------------------------------------------- engine level

def all_bad_objects() -> dict[str, bytes]:
    """Every bad file and every generated object, by name."""
    objects = {p.name: p.read_bytes() for p in sorted(DATA.glob("bad_*.ics"))}
    objects.update({f"{name}.ics": make() for name, (make, _, _) in GENERATED.items()})
    return objects


def test_the_rest_of_the_pair_syncs_around_every_bad_object() -> None:
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for i in range(5):
        source.put_raw(f"good-{i}.ics", ics(f"good-{i}", NOW + timedelta(hours=2 + i)))
    for name, data in all_bad_objects().items():
        source.put_raw(name, data)
    report = sync_pair(make_pair(), source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    expected = Counter(reason for reason, _ in EXPECTED.values() if reason)
    expected.update(reason for _, reason, _ in GENERATED.values() if reason)
    expected["duplicate-uid"] += 1  # bad_duplicate_uid_b.ics: same UID as _a
    assert report.skipped == expected
    good = 5 + sum(n for _, n in EXPECTED.values()) + sum(n for _, _, n in GENERATED.values())
    assert report.created == len(target.objects) == good + 1  # + bad_duplicate_uid_a.ics
    assert report.error is None and report.ok
    line = report.status_line()
    for reason in expected:
        assert f"{reason}={expected[reason]}" in line
    phone = b"".join(target.objects.values()).decode()
    assert not any(word in phone or word in line for word in SECRET_WORDS)


def test_a_duplicate_uid_keeps_the_first_object_by_href() -> None:
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    for name in ("bad_duplicate_uid_b.ics", "bad_duplicate_uid_a.ics"):
        source.put_raw(name, (DATA / name).read_bytes())
    report = sync_pair(make_pair(), source, target, key=KEY, now=NOW, zone=UTC_ZONE, workers=1)
    assert report.skipped == {"duplicate-uid": 1} and report.created == 1
    (data,) = target.objects.values()
    event = read_back(data).event
    assert event is not None and event.start.hour == 10  # from _a, the first href


# ----------------------------------------------------------------------------- CLI, stub source

def canned_source(objects: dict[str, bytes], encoding: str = "utf-8",
                  source_path: str = "") -> Callable[[Seen], Answer | None]:
    """Answer the source's REPORTs with `objects`, and its depth-0 PROPFIND with a sync token
    and a getctag that follow them (the real calendar behind never changes, so its ctag would
    say nothing changed); forward everything else."""
    tag = hashlib.sha256(b"".join(sorted(objects.values()))).hexdigest()[:16]

    def answer(seen: Seen) -> Answer | None:
        if seen.method == "PROPFIND" and seen.path == source_path:
            props = (f"<D:sync-token>canned-{tag}</D:sync-token>"
                     f'<CS:getctag xmlns:CS="http://calendarserver.org/ns/">{tag}</CS:getctag>')
            return 207, {"Content-Type": 'application/xml; charset="utf-8"'}, (
                '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
                f"<D:response><D:href>{source_path}</D:href><D:propstat><D:prop>{props}"
                "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
                "</D:multistatus>").encode()
        if seen.method == "REPORT" and seen.path == source_path:
            hrefs = {f"{source_path}{name}": data for name, data in objects.items()}
            return 207, {"Content-Type": f'application/xml; charset="{encoding}"'}, \
                multistatus(hrefs, encoding)
        return None
    return answer


@pytest.fixture
def stubbed(fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]):  # type: ignore[no-untyped-def]
    """(server, source path, target URL, stub, setup): the stub fronts a real server."""
    server = fresh_calendars.server
    plain_http(server)
    source = fresh_calendars.new("work")  # exists, so PROPFIND and 404 checks are real
    target = fresh_calendars.new("phone")
    with StubProxy(server.url) as stub:
        setup = make_setup(server, [("advocate", source[len(server.url):],
                                     target[len(server.url):])], url=stub.url)
        yield server, source[len(server.url) - 1:], target, stub, setup


def good_objects(n: int = 5) -> dict[str, bytes]:
    return {f"good-{i}.ics": ics(f"good-{i}", NOW + timedelta(hours=2 + i)) for i in range(n)}


@pytest.mark.servers("plain-http")
def test_hostile_objects_through_caldav_are_skipped_with_reasons(stubbed) -> None:  # type: ignore[no-untyped-def]
    server, source_path, target, stub, setup = stubbed
    bad = all_bad_objects()
    del bad["non-calendar-bytes.ics"]  # NUL is not allowed in XML at all
    # Latin-1 carries the stray bytes of bad_non_utf8.ics, as a server storing bytes must.
    stub.answer = canned_source({**good_objects(), **bad}, "iso-8859-1", source_path)
    result = sync(setup)
    assert result.code == 0, result.output
    expected = Counter(reason for reason, _ in EXPECTED.values() if reason)
    expected.update(reason for _, reason, _ in GENERATED.values() if reason)
    expected["duplicate-uid"] += 1
    expected["unparseable"] -= 1
    assert "(" + ", ".join(f"{k}={v}" for k, v in sorted(expected.items())) + ")" in result.stdout
    state = phone_state(server, target)
    good = 5 + sum(n for _, n in EXPECTED.values()) + sum(n for _, _, n in GENERATED.values())
    assert len(state.owned) == good + 1  # + bad_duplicate_uid_a.ics
    assert not any(word in result.output for word in SECRET_WORDS)
    assert all(s.method in ("PROPFIND", "REPORT") or s.path.startswith(
        target[len(server.url) - 1:]) for s in stub.seen)  # the source is only read


@pytest.mark.servers("plain-http")
def test_a_listing_that_is_not_xml_fails_the_pair_and_keeps_the_phone(stubbed) -> None:  # type: ignore[no-untyped-def]
    server, source_path, target, stub, setup = stubbed
    stub.answer = canned_source(good_objects(), "utf-8", source_path)
    assert sync(setup).code == 0
    before = list_objects(server, target)
    for body, ctype in ((b"<html><body>Sign in</body></html>", "text/html"),
                        (b"<?xml version='1.0'?><D:multistatus xmlns:D='DAV:'><D:resp",
                         "application/xml"),
                        (b"\xff\xfe not xml", "application/xml")):
        stub.answer = canned(source_path, 207 if ctype != "text/html" else 200, body, ctype)
        result = sync(setup, "--full")
        assert result.code == 1 and "FAILED" in result.stdout, result.output
        assert "bad-response" in (setup.state_dir / "status.json").read_text()
        assert list_objects(server, target) == before


def canned(path: str, status: int, body: bytes,
           content_type: str = "application/xml") -> Callable[[Seen], Answer | None]:
    def answer(seen: Seen) -> Answer | None:
        if seen.method == "REPORT" and seen.path == path:
            return status, {"Content-Type": content_type}, body
        return None
    return answer


@pytest.mark.servers("plain-http")
def test_507_on_put_is_counted_and_the_rest_is_written(stubbed) -> None:  # type: ignore[no-untyped-def]
    server, source_path, target, stub, setup = stubbed
    stub.answer = canned_source(good_objects(6), "utf-8", source_path)
    refuse = {"left": 2}
    source_answer = stub.answer

    def full_disk(seen: Seen) -> Answer | None:
        if seen.method == "PUT" and refuse["left"]:
            refuse["left"] -= 1
            return 507, {"Content-Type": "text/plain"}, b"Insufficient Storage"
        return source_answer(seen)

    stub.answer = full_disk
    first = sync(setup)
    assert first.code == 1, first.output
    assert "write-errors: insufficient-storage=2" in first.stdout
    assert len(phone_state(server, target).owned) == 4
    puts = sum(1 for s in stub.seen if s.method == "PUT")
    assert puts == 6  # a 507 is not retried
    second = sync(setup)
    assert second.code == 0 and "created=2" in second.stdout, second.output
    assert len(phone_state(server, target).owned) == 6


# ----------------------------------------------------------------------------- memory

PEAK = """
import atexit, resource, sys
def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    kb = max(int(kb), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # the workers
    sys.__stderr__.write(f"VmHWM {kb}\\n")
atexit.register(peak)
from sanitizer.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def peak_rss_of_sync(setup: Setup) -> tuple[int, int, str]:
    """Run `sync` as its own process; (exit code, peak RSS in MB, output).

    The peak is the process's own VmHWM: getrusage and wait4 report at least the RSS of the
    parent at fork time (Linux carries the high-water mark across exec), here pytest's.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(setup.environment())
    proc = subprocess.run([sys.executable, "-c", PEAK, "sync", "--now",
                           "2030-03-04T09:00:00+00:00"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    kb = int(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0])
    return proc.returncode, kb // 1024, proc.stdout + proc.stderr


@pytest.mark.servers("plain-http")
def test_memory_stays_bounded_for_the_largest_hostile_objects(stubbed) -> None:  # type: ignore[no-untyped-def]
    server, source_path, target, stub, setup = stubbed
    stub.answer = canned_source(good_objects(), "utf-8", source_path)
    code, baseline, out = peak_rss_of_sync(setup)
    assert code == 0, out
    figures = {"baseline": baseline}
    for name, make, entries in (("5MB-description", five_megabyte_description, 5),
                                ("near-the-caps", near_the_caps, 6),
                                ("secondly-1e6", million_seconds, 5)):
        stub.answer = canned_source({**good_objects(), f"{name}.ics": make()}, "utf-8",
                                    source_path)
        started = time.monotonic()
        code, peak, out = peak_rss_of_sync(setup)
        assert code == 0, out
        figures[name] = peak
        figures[name + "-seconds"] = round(time.monotonic() - started, 1)
        assert peak < baseline + 150, (name, peak, baseline)
        assert len(phone_state(server, target).owned) == entries
    print(f"\npeak RSS of `sync` in MB ({server.name}): {figures}")


@pytest.mark.integration
def test_sync_over_a_radicale_holding_objects_at_and_over_the_caps(calendars, make_setup) -> None:  # type: ignore[no-untyped-def]
    """Radicale stores what the caps refuse; the pair syncs around it in bounded memory."""
    server = calendars.server
    source = calendars.new("work")
    setup = make_setup(server, [("advocate", source, source.replace("/work", "/phone"))])
    for name, data in good_objects().items():
        put(server, source + name, data)
    code, baseline, out = peak_rss_of_sync(setup)
    assert code == 0, out
    near = near_the_caps()
    for i in range(12):  # as large as a sound object may be, each parsed in full
        put(server, source + f"near-{i}.ics", near.replace(b"UID:near", f"UID:near-{i}".encode()))
    put(server, source + "params.ics", many_parameters(20_000))
    put(server, source + "over.ics", long_line(3 * 1024 * 1024, "over"))
    put(server, source + "long.ics", long_line())
    started = time.monotonic()
    code, peak, out = peak_rss_of_sync(setup)
    seconds = time.monotonic() - started
    assert code == 0, out
    assert "created=12" in out and "too-many-parameters=1" in out, out
    assert "too-large=1" in out and "line-too-long=1" in out, out
    print(f"\npeak RSS of `sync` in MB, Radicale: {baseline} with 5 small objects, {peak} with "
          f"12 objects of 0.9 MB and 3 over the caps ({seconds:.1f} s)")
    assert peak < baseline + 100, (peak, baseline)


@pytest.mark.servers("plain-http")
def test_one_object_over_10_mb_does_not_block_the_pair(stubbed) -> None:  # type: ignore[no-untyped-def]
    server, source_path, target, stub, setup = stubbed
    blob = "QUJD" * (11 * 1024 * 1024 // 4)  # 11 MB of base64, as an inline ATTACH
    folded = "\r\n ".join(blob[i:i + 74] for i in range(0, len(blob), 74))
    big = ics("big", NOW + timedelta(hours=3),
              extra=f"ATTACH;ENCODING=BASE64;VALUE=BINARY:{folded}\r\n")
    stub.answer = canned_source({**good_objects(), "big.ics": big}, "utf-8", source_path)
    result = sync(setup)
    assert result.code == 0, result.output
    assert len(phone_state(server, target).owned) in (5, 6)  # the good ones, and big if kept
