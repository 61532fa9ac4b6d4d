"""The privacy guarantee end to end: canaried calendars on a real server, every command run, and
everything the program produced searched for every marker.

The work calendar is filled with the planted fixture corpus and with hostile calendars drawn from
`strategies.py` with a fixed seed, each stored under a resource name that is itself a marker.
Then `sync --log-level debug`, `preview`, `sync --dry-run`, `status`, `check`, a quiet sync, an
incremental sync after an edit and a deletion, and `sync --full` run as separate processes, as an
admin or systemd runs them. Searched: every object of the phone calendar (from a REPORT and from a
plain GET), its href, stdout and stderr of every run, and every file in the state directory.
The only markers allowed are the SUMMARYs a keep-title rule (category Staff) lets through, and
they are accounted for exactly: each one on the phone and in `preview`, nowhere else.

A second test serves every broken fixture (bytes no server would store included) through a stub in
front of the server, among good events: the good ones sync, each broken one is skipped and
counted under its reason code in the sync line, and no marker appears.
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urljoin

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from sanitizer.core.model import Window
from sanitizer.core.phone_format import PRODID
from sanitizer.stores.base import RawObject
from sanitizer.stores.caldav import bodies
from tests.integration.test_faults import Answer, Seen, StubProxy, multistatus, plain_http
from tests.support.canary import Marker, MarkerSet, parse_content_line, split_content_lines
from tests.support.harness import Result, Setup, delete, etags, list_objects, put
from tests.support.schema import assert_schema
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import CalDAVServer
from tests.support.strategies import ANCHOR, calendars
from tests.unit.test_privacy_properties import (
    CORPUS,
    PREFIX,
    RULE_SETS,
    kept_title_token,
    plant_any,
    resource_name,
    restamp,
    run_pipeline,
)

NOW = "2030-03-04T09:00:00+00:00"
WINDOW_START = ANCHOR - timedelta(days=21)  # the pair's window: 21 days either side of NOW
WINDOW_END = ANCHOR + timedelta(days=22)  # and the day the engine reads past it
TIMEZONE = "Europe/Berlin"  # the zone test_privacy_properties expands in
# The TOML twin of RULE_SETS["mixed"]: one rule of every action, keep-title for Staff only.
PAIR_EXTRA = 'lookahead = "21d"\nretention = "21d"\nalarm = "10m"\n'
RULES = """
[[pairs.rules]]
match_categories = ["Staff"]
action = "keep-title"

[[pairs.rules]]
match_categories = ["Personal"]
action = "skip"

[[pairs.rules]]
match_categories = ["Court"]
title = "Court date"
location = "Courthouse"

[[pairs.rules]]
match_class = ["CONFIDENTIAL"]
action = "skip"

[[pairs.rules]]
match_summary = "[aeiou]"
title = "Visit"
"""
MIXED = RULE_SETS["mixed"]
# Radicale expands a rule when it stores an object: these can stall it for minutes. They reach
# the program through the stub in the second test instead.
RULE_BOMBS = frozenset({"bad_rrule_dense_byparts.ics", "bad_rrule_never_matches.ics",
                        "bad_rrule_secondly_1e6.ics"})
GENERATED = 24


# ----------------------------------------------------------------------------- inputs

@functools.cache
def generated_calendars(count: int) -> tuple[bytes, ...]:
    """`count` hostile calendars from the strategies, the same ones on every run."""
    found: list[bytes] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(calendars())
    def collect(data: bytes) -> None:
        if data not in found:
            found.append(data)

    collect()
    return tuple(found)


@dataclass
class Planted:
    """Source objects planted with markers, by resource name, and what they cover."""

    objects: dict[str, bytes] = field(default_factory=dict)  # resource name -> bytes
    origin: dict[str, str] = field(default_factory=dict)  # resource name -> file or "generated"
    markers: MarkerSet = field(default_factory=lambda: MarkerSet(PREFIX))
    per_object: dict[str, int] = field(default_factory=dict)  # resource name -> markers

    def add(self, data: bytes, origin: str, seed: int) -> str:
        planted, markers = plant_any(data, seed)
        name = resource_name(markers)
        self.objects[name] = planted
        self.origin[name] = origin
        self.markers |= markers
        self.per_object[name] = len(markers)
        return name

    def coverage(self, names: set[str] | None = None) -> dict[str, int]:
        """Events (VEVENTs, overrides included), markers, and distinct property/parameter names."""
        properties: set[str] = set()
        parameters: set[str] = set()
        events = 0
        for name, data in self.objects.items():
            if names is not None and name not in names:
                continue
            for line in split_content_lines(data):
                cl = parse_content_line(line)
                if cl is None:
                    continue
                if cl.uname == "BEGIN":
                    events += cl.value.strip().upper() == "VEVENT"
                elif cl.uname != "END":
                    properties.add(cl.uname)
                    parameters.update(p.upper() for p, _ in cl.params if p.upper() != "X-CANARY")
        chosen = self.objects.keys() if names is None else names
        return {"objects": len(chosen), "events": events,
                "markers": sum(self.per_object[name] for name in chosen),
                "properties": len(properties),
                "parameters": len(parameters)}


# ----------------------------------------------------------------------------- searching

@dataclass
class Findings:
    """Every place searched and every marker found; kept titles are counted apart."""

    markers: MarkerSet
    kept: set[str]  # markers a keep-title rule may show
    places: int = 0
    leaks: list[str] = field(default_factory=list)

    def search(self, data: bytes | str, where: str, kept_allowed: bool = False) -> set[str]:
        """Record leaks; return the kept-title markers found (allowed only where a title is)."""
        self.places += 1
        seen = set()
        for hit in self.markers.find(data, found_in=where):
            if kept_allowed and hit.token in self.kept:
                seen.add(hit.token)
            else:
                self.leaks.append(str(hit))
        return seen

    def run(self, label: str, result: Result, kept_allowed: bool = False) -> set[str]:
        self.search(without_log_times(result.stderr), f"{label} stderr")
        return self.search(result.stdout, f"{label} stdout", kept_allowed)


LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ", re.MULTILINE)


def without_log_times(text: str) -> str:
    """Log lines without their leading clock time, which can match a planted time of day."""
    return LOG_TIME.sub("", text)


def search_target(server: CalDAVServer, target: str, findings: Findings) -> tuple[int, set[str]]:
    """Each phone object from a REPORT and from a GET, its href, and the allowlist."""
    kept: set[str] = set()
    objects = list_objects(server, target)
    for href, (_, data) in objects.items():
        findings.search(href, f"phone href {href}")
        kept |= findings.search(data, f"phone object {href} (REPORT)", kept_allowed=True)
        assert_schema(data, served=True)
        response = server.request("GET", urljoin(server.url, href))
        assert response.status == 200, (href, response.status)
        kept |= findings.search(response.body, f"phone object {href} (GET)", kept_allowed=True)
        assert_schema(response.body, expected_prodid=PRODID, served=True)
    return len(objects), kept


def search_state(setup: Setup, findings: Findings) -> None:
    """Every file in the state directory, and every file name."""
    findings.search(setup.state_bytes(), "state directory files")
    names = "\n".join(str(p.relative_to(setup.state_dir)) for p in setup.state_dir.rglob("*"))
    findings.search(names, "state directory names")


def expected_phone(server: CalDAVServer, source: str, markers: MarkerSet) -> tuple[int, set[str]]:
    """Entries the mixed rules give for what the server stored, and the kept-title markers."""
    stored = [RawObject(urljoin(server.url, href), None, data)
              for href, (_, data) in list_objects(server, source).items()]
    run = run_pipeline(stored, MIXED)
    wanted = {event.uid for event in run.report.desired}
    kept: set[str] = set()
    for output in run.outputs:
        if output.event.uid in wanted:
            kept |= kept_title_token(output, markers)
    return len(wanted), kept


# ----------------------------------------------------------------------------- the phone side

PHONE_MARKERS = MarkerSet("PHNE", [Marker(t, "phone-side", ("phone calendar",), (t.casefold(),))
                                   for t in (f"PHNE{n:010x}" for n in range(0xC0FFEE0000,
                                                                             0xC0FFEE0004))])
PHONE_TOKENS = PHONE_MARKERS.tokens


def phone_side_text(server: CalDAVServer, target: str) -> tuple[tuple[str, str], str]:
    """PUT the advocate's own event and add notes to one of our entries (one without a kept
    title, which the incremental sync deleted); ((own href, its ETag), tampered href)."""
    own = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
           f"UID:{PHONE_TOKENS[0]}\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300305T170000Z\r\n"
           f"DTEND:20300305T180000Z\r\nSUMMARY:{PHONE_TOKENS[1]} pick up kids\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n")
    own_etag = put(server, target + "own-event.ics", own)
    objects = list_objects(server, target)
    # One of ours, never the advocate's own event (the listing's order is the server's).
    href, (etag, data) = next((h, o) for h, o in sorted(objects.items())
                              if b"CNRY" not in o[1] and not h.endswith("/own-event.ics"))
    notes = (f"DESCRIPTION:{PHONE_TOKENS[2]} she called from a new number\r\n"
             f"ATTENDEE;CN={PHONE_TOKENS[3]}:mailto:friend@example.org\r\nEND:VEVENT")
    put(server, urljoin(server.url, href), data.replace(b"END:VEVENT", notes.encode(), 1),
        etag=etag)
    own_href = next(h for h in list_objects(server, target) if h.endswith("/own-event.ics"))
    return (own_href, own_etag or list_objects(server, target)[own_href][0]), href


# ----------------------------------------------------------------------------- the main test

def timed(setup: Setup, log: list[tuple[str, Result, float]], label: str, *args: str) -> Result:
    """Run the CLI as its own process with debug logging, and remember the result."""
    started = time.monotonic()
    result = setup.run_process("--log-level", "debug", *args)
    log.append((label, result, time.monotonic() - started))
    return result


def fill_source(fresh_calendars: FreshCalendars, source: str,
                planted: Planted) -> tuple[set[str], dict[str, list[str]]]:
    """PUT every object the server stores and still answers queries with; the rest is counted.

    Each object is tried first in a scratch calendar with the calendar-query the program sends:
    Xandikos stores some broken dates (even some it answers 412 to), and from then on answers
    every query of that collection with HTTP 500, deleting the object or not.
    """
    server = fresh_calendars.server
    query = bodies.calendar_query(Window(WINDOW_START, WINDOW_END), data=True)
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    stored: set[str] = set()
    left_out: dict[str, list[str]] = {"refused": [], "breaks-query": []}
    scratch = fresh_calendars.new("probe")
    for name, data in planted.objects.items():
        response = server.request("PUT", scratch + name, body=data, headers=headers)
        answer = server.request("REPORT", scratch, body=query,
                                headers={"Depth": "1", "Content-Type": "application/xml"})
        if answer.status != 207:
            left_out["breaks-query"].append(planted.origin[name])
            scratch = fresh_calendars.new("probe")
        elif response.status not in (201, 204):
            left_out["refused"].append(planted.origin[name])
        else:
            put(server, source + name, data)
            stored.add(name)
    return stored, left_out


@pytest.mark.servers("plain-http")
def test_nothing_identifying_reaches_the_phone_the_logs_or_the_disk(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")  # made by the first sync (MKCALENDAR)
    clock = time.monotonic()
    planted = Planted()
    corpus = [p for p in CORPUS if p.name not in RULE_BOMBS]
    names = {path.name: planted.add(path.read_bytes(), path.name, seed=1000 + index)
             for index, path in enumerate(corpus)}
    for index, data in enumerate(generated_calendars(GENERATED)):
        planted.add(data, "generated", seed=2000 + index)
    prepared = time.monotonic() - clock
    stored, left_out = fill_source(fresh_calendars, source, planted)
    filled = time.monotonic() - clock - prepared
    entries, kept = expected_phone(server, source, planted.markers)
    assert kept, "the keep-title rule should let some Staff titles through"
    source_tags = etags(server, source)

    setup = make_setup(server, [("advocate", source, target)], pair_extra=PAIR_EXTRA,
                       rules=RULES, timezone=TIMEZONE)
    runs: list[tuple[str, Result, float]] = []
    first = timed(setup, runs, "sync", "sync", "--now", NOW)
    assert first.code == 0 and f"created={entries} " in first.stdout, (entries, first.output)
    preview = timed(setup, runs, "preview", "preview", "--now", NOW)
    assert preview.code == 0 and f"{entries} entries" in preview.stdout, preview.output
    dry = timed(setup, runs, "sync --dry-run", "sync", "--dry-run", "--now", NOW)
    assert dry.code == 0 and f"unchanged={entries} " in dry.stdout, dry.output
    status = timed(setup, runs, "status", "status")
    # the corpus's broken events are appointments that cannot reach the phone: exit 3, by reason
    assert status.code == 3 and "result=ok" in status.stdout, status.output
    assert "MISSING=" in status.stdout and "unknown-timezone=" in status.stdout
    check = timed(setup, runs, "check", "check")
    assert "account main" in check.stdout and "pair advocate" in check.stdout, check.output
    quiet = timed(setup, runs, "quiet sync", "sync", "--now", NOW)
    assert quiet.code == 0 and "[quiet]" in quiet.stdout, quiet.output
    assert etags(server, source) == source_tags  # read only

    # A deletion (a kept title goes) and an edit of nothing but DTSTAMP and SEQUENCE arrive
    # through the change feed: one entry deleted, none updated.
    gone, edited = names["event_staff_meeting.ics"], names["event_zimbra_recurring.ics"]
    assert {gone, edited} <= stored
    delete(server, source + gone)
    put(server, source + edited, restamp(planted.objects[edited], "20291212T121212Z", "77"))
    entries_after, kept_after = expected_phone(server, source, planted.markers)
    assert entries_after == entries - 1 and kept_after < kept
    source_tags = etags(server, source)
    incremental = timed(setup, runs, "incremental sync", "sync", "--now", NOW)
    assert incremental.code == 0 and "[incremental]" in incremental.stdout, incremental.output
    assert "updated=0 deleted=1" in incremental.stdout, incremental.output
    # Text that reaches the phone calendar from the phone side: the advocate's own event, and
    # notes and an invitee added to one of our entries. The full reconcile leaves the first
    # alone and rewrites the second from the allowlist; neither is printed or stored.
    own, tampered = phone_side_text(server, target)
    full = timed(setup, runs, "sync --full", "sync", "--full", "--now", NOW)
    assert full.code == 0 and "[full]" in full.stdout, full.output
    assert (f"created=0 updated=1 deleted=0 unchanged={entries_after - 1} skipped="
            in full.stdout and "foreign=1 " in full.stdout), full.output
    assert etags(server, source) == source_tags

    findings = Findings(planted.markers, kept)
    phone_findings = Findings(PHONE_MARKERS, set())
    for label, result, _ in runs:
        seen = findings.run(label, result, kept_allowed=label == "preview")
        phone_findings.run(label, result)
        if label == "preview":
            assert seen == kept, kept ^ seen  # every kept title shown, and no other
    after = list_objects(server, target)
    assert after.pop(own[0])[0] == own[1]  # the advocate's own event, untouched
    for href, (_, data) in after.items():
        phone_findings.search(data, f"phone object {href}")
    search_state(setup, phone_findings)
    delete(server, urljoin(server.url, own[0]))
    phone, seen = search_target(server, target, findings)
    search_state(setup, findings)
    leaks = findings.leaks + phone_findings.leaks
    assert not leaks, f"{len(leaks)} marker(s) leaked:\n" + "\n".join(leaks)
    assert phone == entries_after and seen == kept_after, (phone, kept_after ^ seen)
    assert tampered in after

    cover = planted.coverage(stored)
    corpus_stored = sum(planted.origin[n] != "generated" for n in stored)
    left = {k: dict(Counter(v)) for k, v in left_out.items()}
    print(f"\n[{server.name}] stored {cover['objects']} planted objects ({corpus_stored} corpus "
          f"files, {cover['objects'] - corpus_stored} generated; left out: {left}), "
          f"{cover['events']} VEVENTs, {cover['markers']} markers, {cover['properties']} "
          f"property names, {cover['parameters']} parameter names; phone entries {entries} "
          f"then {phone}; kept titles {len(kept)}; searched {findings.places} places; "
          f"markers leaked {len(findings.leaks)}; inputs {prepared:.1f}s, PUTs {filled:.1f}s, "
          + ", ".join(f"{label} {seconds:.1f}s" for label, _, seconds in runs))


# ----------------------------------------------------------------------------- broken among good

# What each broken fixture gives, planted (None: its times are sound, so it syncs; no text of it
# is copied either way). An invalid X-WR-TIMEZONE is dropped instead of failing the object, and
# Latin-1 bytes are read as replacement characters, which are never copied.
BROKEN_REASONS: dict[str, str | None] = {
    "bad_dtend_before_dtstart.ics": "end-before-start",
    "bad_dtstart_invalid.ics": "bad-date",
    "bad_dtstart_missing.ics": "missing-dtstart",
    "bad_duplicate_uid_a.ics": None,  # alone; together with _b one of them is a duplicate-uid
    "bad_duplicate_uid_b.ics": None,
    "bad_folding_exdate.ics": "bad-recurrence",
    "bad_folding_status.ics": "unparseable",
    "bad_non_utf8.ics": None,
    "bad_override_without_master.ics": None,
    "bad_rrule_count_1e9.ics": None,
    "bad_rrule_dense_byparts.ics": "recurrence-too-dense",
    "bad_rrule_never_matches.ics": "expansion-timeout",
    "bad_rrule_secondly_1e6.ics": "recurrence-too-dense",
    "bad_rrule_unreadable.ics": "bad-recurrence",
    "bad_unknown_tzid.ics": "unknown-timezone",
    "bad_vjournal.ics": "not-an-event",
    "bad_vtodo.ics": "not-an-event",
    "event_broken_dtend_before_dtstart.ics": "end-before-start",
    "event_broken_dtstart_value.ics": "bad-date",
    "event_broken_latin1_summary.ics": None,
    "event_broken_line_folding.ics": "unparseable",
    "event_broken_missing_dtstart.ics": "missing-dtstart",
    "event_broken_truncated.ics": "unparseable",
    "event_broken_unknown_tzid.ics": "unknown-timezone",
    "event_broken_vjournal_only.ics": "not-an-event",
    "event_broken_vtodo_only.ics": "not-an-event",
    "event_broken_x_wr_timezone.ics": None,
}
GOOD = ("event_staff_meeting.ics", "event_outlook_teams_meeting.ics",
        "event_google_recurring_exceptions.ics", "event_zimbra_recurring.ics",
        "event_utc_personal.ics", "event_cancelled_event.ics", "event_confidential_class.ics")
DATA = CORPUS[0].parent


def test_every_broken_fixture_is_listed() -> None:
    names = {p.name for p in DATA.glob("*.ics") if p.name.startswith(("bad_", "event_broken_"))}
    assert names == set(BROKEN_REASONS)


def as_delivered(data: bytes) -> bytes:
    """The bytes the program gets from a multistatus sent as ISO-8859-1 (which carries any
    byte, so the Latin-1 fixtures arrive as they are)."""
    return data.decode("latin-1").encode("utf-8")


def planted_broken_and_good() -> tuple[Planted, dict[str, str]]:
    """Every broken fixture and a few good ones, planted; the two duplicate-UID files keep
    sharing one (planted) UID."""
    planted = Planted()
    names = {}
    for index, name in enumerate([*BROKEN_REASONS, *GOOD]):
        names[name] = planted.add((DATA / name).read_bytes(), name, seed=3000 + index)
    a, b = names["bad_duplicate_uid_a.ics"], names["bad_duplicate_uid_b.ics"]
    planted.objects[b] = planted.objects[b].replace(b.removesuffix(".ics").encode(),
                                                    a.removesuffix(".ics").encode())
    return planted, names


def canned_source(path: str, objects: dict[str, bytes]) -> Callable[[Seen], Answer | None]:
    """Answer the source's REPORTs with `objects` (ISO-8859-1); forward everything else."""
    hrefs = {f"{path}{name}": data for name, data in objects.items()}
    body = multistatus(hrefs, "iso-8859-1")

    def answer(seen: Seen) -> Answer | None:
        if seen.method == "REPORT" and seen.path == path:
            return 207, {"Content-Type": 'application/xml; charset="iso-8859-1"'}, body
        return None
    return answer


@pytest.fixture
def stubbed_source(fresh_calendars: FreshCalendars) -> Iterator[tuple[StubProxy, str, str]]:
    """(stub, source path, target URL): a stub in front of the server answers the source."""
    server = fresh_calendars.server
    plain_http(server)
    source = fresh_calendars.new("work")  # exists and is empty: PROPFIND and 404s are real
    target = fresh_calendars.new("phone")
    with StubProxy(server.url) as stub:
        yield stub, source[len(server.url) - 1:], target


@pytest.mark.servers("plain-http")
def test_broken_events_among_good_are_counted_and_leak_nothing(
        stubbed_source: tuple[StubProxy, str, str], fresh_calendars: FreshCalendars,
        make_setup: Callable[..., Setup]) -> None:
    server = fresh_calendars.server
    stub, source_path, target = stubbed_source
    planted, names = planted_broken_and_good()
    delivered = {name: as_delivered(data) for name, data in planted.objects.items()}
    skipped: Counter[str] = Counter()
    entries = 0
    kept: set[str] = set()
    for file, name in names.items():  # one by one: each broken file's own reason
        run = run_pipeline([RawObject(name, None, delivered[name])], MIXED)
        reasons = {k for k in run.skipped if k not in ("cancelled", "rule-skip")}
        if file in BROKEN_REASONS:
            assert reasons == ({BROKEN_REASONS[file]} - {None}), (file, run.skipped)
        skipped += run.report.skipped
        entries += run.report.created
        for output in run.outputs:
            kept |= kept_title_token(output, planted.markers)
    skipped["duplicate-uid"] += 1  # the two files with one UID: the second is a duplicate
    entries -= 1
    stub.answer = canned_source(source_path, delivered)
    setup = make_setup(server, [("advocate", source_path[1:], target[len(server.url):])],
                       url=stub.url, pair_extra=PAIR_EXTRA, rules=RULES, timezone=TIMEZONE)
    runs: list[tuple[str, Result, float]] = []
    sync = timed(setup, runs, "sync", "sync", "--now", NOW)
    assert sync.code == 0, sync.output
    reasons = "(" + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) + ")"
    assert f"created={entries} " in sync.stdout and reasons in sync.stdout, (
        entries, reasons, sync.stdout)
    assert f"skipped={sum(skipped.values())} " in sync.stdout
    preview = timed(setup, runs, "preview", "preview", "--now", NOW)
    assert preview.code == 0 and f"{entries} entries" in preview.stdout, preview.output

    findings = Findings(planted.markers, kept)
    for label, result, _ in runs:
        seen = findings.run(label, result, kept_allowed=label == "preview")
        if label == "preview":
            assert seen == kept, kept ^ seen
    phone, seen = search_target(server, target, findings)
    search_state(setup, findings)
    assert not findings.leaks, f"{len(findings.leaks)} marker(s) leaked:\n" + "\n".join(
        findings.leaks)
    assert phone == entries and seen == kept
    assert all(s.method in ("PROPFIND", "REPORT") or s.path.startswith(target[len(server.url) - 1:])
               for s in stub.seen)  # the source is only read
    cover = planted.coverage()
    print(f"\n[{server.name}] broken among good: {len(BROKEN_REASONS)} broken + {len(GOOD)} good "
          f"files, {cover['events']} VEVENTs, {cover['markers']} markers; sync line {reasons}; "
          f"phone entries {phone}; markers leaked {len(findings.leaks)}; "
          + ", ".join(f"{label} {seconds:.1f}s" for label, _, seconds in runs))
