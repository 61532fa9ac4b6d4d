"""Logs cannot carry event text: library messages that quote input are dropped or withheld,
library switches that dump traffic are off, and the code never logs a traceback or an
event-derived value.

The parsing libraries quote what they choke on: icalendar's property errors and its
globally-unique-TZID warning, x-wr-timezone's unknown zone, recurring-ical-events' rule errors.
Each is triggered here with a canary inside (the test first shows the library really does quote
it), the objects are served to the CLI through a stub in front of a real server (a server would
refuse most of them), and `sync` and `preview` run with `--log-level debug`: no marker may reach
stdout or stderr. Then caldav, niquests and urllib3 debug logging on a real server, with caldav's
own debug switches set in the environment: nothing printed, nothing dumped to disk.
"""

from __future__ import annotations

import ast
import io
import logging
import socket
import subprocess
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events
import x_wr_timezone

from sanitizer.service import logs
from tests.integration.test_faults import StubProxy, plain_http
from tests.integration.test_privacy_e2e import canned_source, without_log_times
from tests.support.canary import Marker, MarkerSet, assert_clean, plant
from tests.support.harness import Setup, list_objects, put
from tests.support.schema import assert_schema
from tests.support.server_fixtures import FreshCalendars

NOW = "2030-03-04T09:00:00+00:00"
SANITIZER = Path(__file__).resolve().parents[2] / "sanitizer"
TOKENS = [f"CNRY{n:010x}" for n in range(0xA1B2C3D400, 0xA1B2C3D400 + 16)]
MARKERS = MarkerSet("CNRY", [Marker(t, "hand-planted", ("test_log_hygiene",), (t.casefold(),))
                             for t in TOKENS])


def ics(event: str, calendar: str = "", uid: str = "u") -> bytes:
    """One object; `event` and `calendar` are extra content lines, CRLF-terminated."""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + calendar
            + f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n" + event
            + "SUMMARY:Intake\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


TIMES = "DTSTART:20300305T100000Z\r\nDTEND:20300305T110000Z\r\n"
# name -> (object with a marker where a library quotes it, its skip reason or its phone entries)
HOSTILE: dict[str, tuple[bytes, str | int]] = {
    "invalid X-WR-TIMEZONE": (ics("DTSTART:20300305T100000\r\nDTEND:20300305T110000\r\n",
                                  f"X-WR-TIMEZONE:Mars/{TOKENS[0]}\r\n"), 1),
    "globally unique TZID": (ics(f"DTSTART;TZID=/{TOKENS[1]}.example/Europe/Berlin:"
                                 "20300305T100000\r\nDTEND;TZID=/"
                                 f"{TOKENS[1]}.example/Europe/Berlin:20300305T110000\r\n"), 1),
    "unknown TZID": (ics(f"DTSTART;TZID={TOKENS[2]}/Nowhere:20300305T100000\r\n"
                         f"DTEND;TZID={TOKENS[2]}/Nowhere:20300305T110000\r\n"),
                     "unknown-timezone"),
    "bad DTSTART": (ics(f"DTSTART:2030{TOKENS[3]}\r\nDTEND:20300305T110000Z\r\n"), "bad-date"),
    "bad RRULE UNTIL": (ics(TIMES + f"RRULE:FREQ=DAILY;UNTIL={TOKENS[4]}\r\n"),
                        "bad-recurrence"),
    "bad RRULE FREQ": (ics(TIMES + f"RRULE:FREQ={TOKENS[5]}\r\n"), "bad-recurrence"),
    "bad DURATION": (ics(f"DTSTART:20300305T100000Z\r\nDURATION:P{TOKENS[6]}\r\n"),
                     "bad-duration"),
    "bad EXDATE": (ics(TIMES + f"RRULE:FREQ=DAILY;COUNT=3\r\nEXDATE:{TOKENS[7]}\r\n"),
                   "bad-recurrence"),
    "broken folding": (ics(TIMES + f"DESCRIPTION:call back\r\n{TOKENS[8]} 555-0199\r\n"),
                       "unparseable"),
    # An RDATE in a zone nobody defines is read as floating: one more entry, at a guessed time.
    "bad RDATE zone": (ics(TIMES + f"RDATE;TZID={TOKENS[9]}:20300306T100000\r\n"),
                       "unknown-timezone"),
}


def library_texts(data: bytes) -> list[str]:
    """What the libraries say about an object: property errors, warnings, exception texts."""
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            calendar = icalendar.Calendar.from_ical(data)
        except Exception as exc:  # noqa: BLE001 - its text is what is looked at
            return [str(exc)]
        texts += [str(error) for c in calendar.walk() for error in c.errors]
        try:
            calendar = x_wr_timezone.to_standard(calendar)
        except Exception as exc:  # noqa: BLE001
            texts.append(str(exc))
        try:
            recurring_ical_events.of(calendar).between(datetime(2030, 3, 1), datetime(2030, 4, 1))
        except Exception as exc:  # noqa: BLE001
            texts.append(str(exc))
    return texts + [str(w.message) for w in caught]


QUOTED = [name for name in HOSTILE if name not in ("unknown TZID", "bad RDATE zone")]


@pytest.mark.parametrize("name", QUOTED)
def test_the_libraries_do_quote_their_input(name: str) -> None:
    """Without this, the CLI test below would prove nothing."""
    assert MARKERS.find("\n".join(library_texts(HOSTILE[name][0])))


# ----------------------------------------------------------------------------- through the CLI

@pytest.fixture
def stubbed(fresh_calendars: FreshCalendars,
            make_setup: Callable[..., Setup]) -> Iterator[tuple[StubProxy, str, str, Setup]]:
    """(stub, source path, target URL, setup): the source's REPORT is answered by the stub."""
    server = fresh_calendars.server
    plain_http(server)
    source = fresh_calendars.new("work")
    target = fresh_calendars.new("phone")
    with StubProxy(server.url) as stub:
        path = source[len(server.url) - 1:]
        setup = make_setup(server, [("advocate", path[1:], target[len(server.url):])],
                           url=stub.url, timezone="Europe/Berlin")
        yield stub, path, target, setup


@pytest.mark.servers("plain-http")
def test_library_messages_quoting_input_never_reach_the_output(
        stubbed: tuple[StubProxy, str, str, Setup], fresh_calendars: FreshCalendars) -> None:
    stub, path, target, setup = stubbed
    objects = {f"{TOKENS[10 + i % 6]}-{i}.ics": data.replace(b"UID:u", f"UID:u{i}".encode())
               for i, (data, _) in enumerate(HOSTILE.values())}
    stub.answer = canned_source(path, objects)
    sync = setup.run_process("--log-level", "debug", "sync", "--now", NOW)
    preview = setup.run_process("--log-level", "debug", "preview", "--now", NOW)
    assert sync.code == 0 and preview.code == 0, sync.output + preview.output
    reasons = Counter(outcome for _, outcome in HOSTILE.values() if isinstance(outcome, str))
    synced = sum(outcome for _, outcome in HOSTILE.values() if isinstance(outcome, int))
    line = "(" + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) + ")"
    assert f"created={synced} " in sync.stdout and line in sync.stdout, sync.stdout
    for result, what in ((sync, "sync"), (preview, "preview")):
        assert_clean(result.stdout, MARKERS, f"{what} stdout")
        assert_clean(result.stderr, MARKERS, f"{what} stderr")
    phone = list_objects(fresh_calendars.server, target)
    assert len(phone) == synced
    for href, (_, data) in phone.items():
        assert_clean(href.encode() + data, MARKERS, "phone object")
        assert_schema(data, served=True)
    assert_clean(setup.state_bytes(), MARKERS, "state directory")
    assert all(s.method in ("PROPFIND", "REPORT") for s in stub.seen if s.path.startswith(path))


def test_client_debug_logging_and_dump_switches_leak_nothing(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup],
        tmp_path: Path) -> None:
    """caldav, niquests and urllib3 log bodies at debug level; caldav dumps every request and
    response to /tmp under PYTHON_CALDAV_COMMDUMP; TLS keys go to SSLKEYLOGFILE. With all of them
    set and --log-level debug, nothing of the event reaches stderr or any file."""
    server = fresh_calendars.server
    source = fresh_calendars.new("work")
    target = source.replace("/work", "/phone")
    planted, markers = plant(ics(TIMES + "DESCRIPTION:Safe word: blue umbrella\r\n"
                                 "LOCATION:42 Linden Court\r\nATTENDEE;CN=Maria Alvarez:"
                                 "mailto:maria@example.org\r\n"), "CNRY", seed=7)
    put(server, source + "visit.ics", planted)
    setup = make_setup(server, [("advocate", source, target)])
    dumps = tmp_path / "tmp"
    dumps.mkdir()
    setup.env.update({"PYTHON_CALDAV_COMMDUMP": "1", "PYTHON_CALDAV_DEBUGMODE": "DEBUG",
                      "SSLKEYLOGFILE": str(dumps / "tls-keys"), "TMPDIR": str(dumps)})
    results = [setup.run_process("--log-level", "debug", *args)
               for args in (("sync", "--now", NOW), ("sync", "--now", NOW), ("check",))]
    assert [r.code for r in results[:2]] == [0, 0], [r.output for r in results]
    assert "created=1 " in results[0].stdout and "[quiet]" in results[1].stdout
    for result in results:
        assert_clean(result.stdout + without_log_times(result.stderr), markers, "output")
    assert sorted(p.name for p in dumps.iterdir()) == []  # no caldavcomm* file, no key log
    for _, data in list_objects(server, target).values():
        assert_clean(data, markers, "phone object")


@pytest.mark.servers("plain-http")
def test_proxy_settings_in_the_environment_are_not_used(
        fresh_calendars: FreshCalendars, make_setup: Callable[..., Setup]) -> None:
    """Plain HTTP goes to the loopback server only; a proxy from the environment would take it
    elsewhere (here a listener that records what it gets, also on 127.0.0.1)."""
    server = fresh_calendars.server
    plain_http(server)
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def accept() -> None:
        while listener.fileno() != -1:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                received.append(conn.recv(4096))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    source = fresh_calendars.new("work")
    put(server, source + "a.ics", ics(TIMES))
    setup = make_setup(server, [("advocate", source, source.replace("/work", "/phone"))])
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    setup.env.update({"HTTP_PROXY": proxy, "http_proxy": proxy, "ALL_PROXY": proxy,
                      "NO_PROXY": "", "no_proxy": ""})
    try:
        result = setup.run_process("sync", "--now", NOW)
    finally:
        listener.close()
        thread.join(timeout=5)
    assert not received, received[0][:200]
    assert result.code == 0, result.output


# ----------------------------------------------------------------------------- logs.setup itself

@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """logs.setup at debug into a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.setup("debug", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logging.captureWarnings(False)


FOREIGN = ("caldav", "niquests", "urllib3", "urllib3_future", "icalendar", "x_wr_timezone",
           "recurring_ical_events", "charset_normalizer", "py.warnings", "root", "some.dependency")


def _raise_with(text: str) -> BaseException:
    try:
        raise ValueError(f"Wrong datetime format: {text}")
    except ValueError as exc:
        return exc


def test_foreign_records_are_dropped_or_withheld(configured: io.StringIO) -> None:
    token = TOKENS[11]
    for name in FOREIGN:
        logger = logging.getLogger(name) if name != "root" else logging.getLogger()
        logger.setLevel(logging.DEBUG)  # as a library in debug mode would
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
            logger.log(level, "body: %s", token, exc_info=_raise_with(token), stack_info=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"Timezone '/{token}/Europe/Berlin' is a globally unique TZID",
                      stacklevel=1)
    text = configured.getvalue()
    assert_clean(text, MARKERS, "log output")
    assert text.count(logs.WITHHELD) == 2 * len(FOREIGN) + 1  # WARNING, ERROR; the warning
    for name in logs.QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def test_a_library_handler_of_its_own_prints_nothing_quoted(configured: io.StringIO) -> None:
    """charset_normalizer's explain mode adds a StreamHandler to its logger, past our filter."""
    own_stream = io.StringIO()
    logger = logging.getLogger("charset_normalizer")
    handler = logging.StreamHandler(own_stream)
    logger.addHandler(handler)
    try:
        logger.warning("decoded %r", TOKENS[12])
        logger.error("failed", exc_info=_raise_with(TOKENS[12]))
    finally:
        logger.removeHandler(handler)
    assert_clean(own_stream.getvalue() + configured.getvalue(), MARKERS, "library handler")
    assert logs.WITHHELD in own_stream.getvalue()


def test_own_records_never_carry_a_traceback(configured: io.StringIO) -> None:
    log = logging.getLogger("sanitizer.engine.reconcile")
    log.warning("pair %s: failed", "advocate", exc_info=_raise_with(TOKENS[13]))
    try:
        raise KeyError(TOKENS[13])
    except KeyError:
        log.exception("pair %s: internal error", "advocate")  # what the AST test forbids anyway
    text = configured.getvalue()
    assert_clean(text, MARKERS, "own records")
    assert "pair advocate: failed (ValueError)" in text
    assert "pair advocate: internal error (KeyError)" in text and "Traceback" not in text


def test_library_loggers_stay_at_warning(configured: io.StringIO) -> None:
    for name in logs.QUIET_LIBRARIES:
        assert logging.getLogger(name).level == logging.WARNING, name


def test_caldav_debug_mode_cannot_lower_its_level() -> None:
    """caldav sets its logger to DEBUG when it is imported with PYTHON_CALDAV_DEBUGMODE=DEBUG;
    the program imports it after logs.setup, so the switch must be gone by then."""
    code = ("import logging, sys\nfrom sanitizer.service import logs\nlogs.setup('debug')\n"
            "import caldav.davclient\nfrom caldav.lib import error\n"
            "print(logging.getLogger('caldav').level, error.debugmode,"
            " bool(error.debug_dump_communication))")
    env = {"PYTHON_CALDAV_DEBUGMODE": "DEBUG", "PYTHON_CALDAV_COMMDUMP": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=SANITIZER.parent, check=True, timeout=60)
    assert out.stdout.split() == [str(logging.WARNING), "PRODUCTION", "False"], out


def test_switches_are_reset_when_caldav_was_imported_first(configured: io.StringIO) -> None:
    from caldav.lib import error  # noqa: PLC0415 - the point is the import order

    vars(error)["debug_dump_communication"] = "1"
    logs.setup("debug", configured)
    assert not error.debug_dump_communication and error.debugmode == "PRODUCTION"


# ----------------------------------------------------------------------------- the source code

LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception",
                         "log"})
# Names that hold, or are commonly used for, event content: a log or print argument must not
# mention them. `x.status_line()` (the report line) is a method call and allowed.
EVENT_NAMES = frozenset({"summary", "description", "location", "data", "ics", "raw", "component",
                         "components", "calendar", "vevent", "attendee", "organizer", "comment",
                         "body", "errors", "obj", "objects",
                         "instance", "instances", "source_uid", "categories", "klass", "title"})
SOURCES = sorted([*SANITIZER.rglob("*.py"), *(SANITIZER.parent / "demo").rglob("*.py")])


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _is_log_call(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr in LOG_METHODS
            and isinstance(func.value, ast.Name)
            and func.value.id in ("log", "logger", "logging", "_log", "LOG"))


def _is_output_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in ("print", "_say")
    return isinstance(func, ast.Attribute) and func.attr == "write"


def _event_names(node: ast.AST) -> list[str]:
    """Mentions of event-content names in an expression; `something.status_line()` is allowed."""
    called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in EVENT_NAMES:
            found.append(sub.id)
        elif (isinstance(sub, ast.Attribute) and sub.attr in EVENT_NAMES
              and id(sub) not in called):
            found.append(sub.attr)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_traceback_is_ever_logged(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for call in _calls(tree):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("exception", "print_exc", "print_exception", "format_exc", "format_exception",
                    "print_stack", "format_tb", "print_tb"):
            problems.append(f"line {call.lineno}: {name}()")
        for keyword in call.keywords:
            if keyword.arg in ("exc_info", "stack_info") and not (
                    isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                problems.append(f"line {call.lineno}: {keyword.arg}=")
    assert not problems, problems


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "demo.py"],
                         ids=lambda p: p.name)
def test_log_and_print_calls_mention_no_event_content(path: Path) -> None:
    """Conservative: a name that usually holds event text may not appear in a log or print call
    (demo.py prints its own fake sample data, by design)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for call in _calls(tree):
        if not (_is_log_call(call) or _is_output_call(call)):
            continue
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            problems += [f"line {call.lineno}: {name}" for name in _event_names(arg)]
    assert not problems, problems


def test_the_source_check_would_catch_a_leak() -> None:
    bad = ast.parse("log.info('pair %s: %s', pair.name, instance.summary)\n"
                    "log.warning('%s', data)\nprint(component)\n"
                    "log.info('%s', report.status_line())")
    found = [name for call in _calls(bad) if _is_log_call(call) or _is_output_call(call)
             for arg in call.args for name in _event_names(arg)]
    assert sorted(found) == ["component", "data", "instance", "summary"]
