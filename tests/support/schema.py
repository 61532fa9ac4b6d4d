"""Allowlist checker for what the sanitizer writes to the phone calendar.

A sanitized event may contain only the properties listed in `ALLOWED` and no
parameter except VALUE=DATE on DTSTART/DTEND. Anything else is a potential
leak, however harmless it looks, so `check_output` reports it.

Checks run twice: on the raw content lines (so nothing icalendar normalises,
drops or re-quotes can hide) and on icalendar's parsed objects (so what a
client library sees is checked too).
"""

from __future__ import annotations

import re
from datetime import date, datetime

import icalendar

from tests.support.canary import parse_content_line, unfold

__all__ = ["ALLOWED", "ENUMS", "assert_schema", "check_output"]

ALLOWED: dict[str, frozenset[str]] = {
    "VCALENDAR": frozenset({"PRODID", "VERSION", "CALSCALE"}),
    "VEVENT": frozenset(
        {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "LOCATION", "STATUS", "TRANSP", "CLASS"}
    ),
    "VALARM": frozenset({"ACTION", "DESCRIPTION", "TRIGGER"}),
}
PARENT = {"VCALENDAR": None, "VEVENT": "VCALENDAR", "VALARM": "VEVENT"}
ENUMS: dict[str, frozenset[str]] = {
    "STATUS": frozenset({"TENTATIVE", "CONFIRMED"}),
    "TRANSP": frozenset({"OPAQUE", "TRANSPARENT"}),
    "CLASS": frozenset({"PRIVATE"}),
    "ACTION": frozenset({"DISPLAY"}),
    "VERSION": frozenset({"2.0"}),
    "CALSCALE": frozenset({"GREGORIAN"}),
}
REQUIRED = {
    "VCALENDAR": frozenset({"PRODID", "VERSION"}),
    "VEVENT": frozenset({"UID", "DTSTAMP", "DTSTART"}),
    "VALARM": frozenset({"ACTION", "DESCRIPTION", "TRIGGER"}),
}
DATE_PARAM_PROPERTIES = frozenset({"DTSTART", "DTEND"})

_DATE_RE = re.compile(r"\d{8}")
_DATETIME_RE = re.compile(r"\d{8}T\d{6}Z?")
_UTC_RE = re.compile(r"\d{8}T\d{6}Z")
_DURATION_RE = re.compile(
    r"[+-]?P(?:\d+W|(?=\d|T\d)(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?)"
)
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _parse_when(value: str, is_date: bool) -> date | datetime | None:
    try:
        if is_date:
            return datetime.strptime(value, "%Y%m%d").date()
        return datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        return None


def _check_physical(data: bytes, problems: list[str], line_length: bool = True) -> None:
    """Line endings, line length and encoding as a phone client will meet them. A server may
    fold again what it stores (Radicale folds at 75 characters, not octets): for what a server
    serves, `line_length` is off, and the lines are checked unfolded."""
    if data.startswith(b"\xef\xbb\xbf"):
        problems.append("starts with a UTF-8 byte order mark")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"not valid UTF-8 at byte {exc.start}")
    if not data.endswith(b"\r\n"):
        problems.append("does not end with CRLF")
    lines = data.split(b"\r\n")
    if lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if b"\n" in line or b"\r" in line:
            problems.append(f"physical line {number}: bare CR or LF (lines must end with CRLF)")
        if line_length and len(line) > 75:
            problems.append(f"physical line {number}: {len(line)} octets, longer than 75")


def _check_raw(text: str, problems: list[str], expected_prodid: str | None) -> None:
    """Walk unfolded content lines with a strict lexer and an explicit component stack."""
    stack: list[tuple[str, dict[str, list[str]], dict[str, int]]] = []
    top_level = 0
    for number, line in enumerate((ln for ln in re.split(r"\r?\n", text) if ln), start=1):
        where = f"line {number}"
        if _CTL_RE.search(line):
            problems.append(f"{where}: control character in content line")
        cl = parse_content_line(line)
        if cl is None:
            problems.append(f"{where}: not a valid content line: {_short(line)!r}")
            continue
        name = cl.uname
        if name == "BEGIN":
            comp = cl.value.upper()
            parent = stack[-1][0] if stack else None
            if comp not in PARENT:
                problems.append(f"{where}: component {comp} not allowed")
            elif PARENT[comp] != parent:
                problems.append(f"{where}: component {comp} not allowed inside {parent or 'top'}")
            if cl.params:
                problems.append(f"{where}: parameters on BEGIN")
            if parent is None:
                top_level += 1
            else:
                stack[-1][2][comp] = stack[-1][2].get(comp, 0) + 1
            stack.append((comp, {}, {}))
            continue
        if name == "END":
            comp = cl.value.upper()
            if not stack or stack[-1][0] != comp:
                problems.append(f"{where}: END:{comp} does not close the open component")
                continue
            _check_component(*stack.pop(), problems, expected_prodid)
            continue
        if not stack:
            problems.append(f"{where}: property {name} outside any component")
            continue
        comp, props, _children = stack[-1]
        value = cl.value
        props.setdefault(name, []).append(value)
        allowed = ALLOWED.get(comp, frozenset())
        if name not in allowed:
            problems.append(f"{where}: {comp} property {name} not allowed")
        for pname, pvalues in cl.params:
            if not (
                pname.upper() == "VALUE"
                and name in DATE_PARAM_PROPERTIES
                and [v.upper() for v in pvalues] == ["DATE"]
            ):
                problems.append(
                    f"{where}: parameter {pname}={_short(','.join(pvalues))!r} on {name} "
                    "not allowed"
                )
        if name in ENUMS and value not in ENUMS[name]:
            problems.append(f"{where}: {name} value {_short(value)!r} not allowed")
        is_date = (cl.param("VALUE") or ("",))[0].upper() == "DATE"
        if name in DATE_PARAM_PROPERTIES:
            pattern = _DATE_RE if is_date else _DATETIME_RE
            if not pattern.fullmatch(value) or _parse_when(value, is_date) is None:
                problems.append(f"{where}: {name} value {_short(value)!r} is not a valid "
                                f"{'DATE' if is_date else 'DATE-TIME'}")  # fmt: skip
            props.setdefault(f"{name}#date", []).append("1" if is_date else "0")
        if name == "DTSTAMP" and (
            not _UTC_RE.fullmatch(value) or _parse_when(value, False) is None
        ):
            problems.append(f"{where}: DTSTAMP {_short(value)!r} is not a UTC DATE-TIME")
        if name == "TRIGGER" and not _DURATION_RE.fullmatch(value):
            problems.append(f"{where}: TRIGGER {_short(value)!r} is not a DURATION")
        if name == "UID" and not value.strip():
            problems.append(f"{where}: empty UID")
    for comp, *_ in stack:
        problems.append(f"component {comp} is never closed")
    if top_level != 1:
        problems.append(f"expected exactly one VCALENDAR, found {top_level}")


def _check_component(
    comp: str,
    props: dict[str, list[str]],
    children: dict[str, int],
    problems: list[str],
    expected_prodid: str | None,
) -> None:
    """Cardinality and cross-property rules, checked when the component closes."""
    if comp not in ALLOWED:
        return
    for name in REQUIRED[comp]:
        if name not in props:
            problems.append(f"{comp} lacks required {name}")
    for name in ALLOWED[comp]:
        if len(props.get(name, ())) > 1:
            problems.append(f"{comp} has {len(props[name])} {name} properties")
    if comp == "VCALENDAR":
        if children.get("VEVENT", 0) != 1:
            problems.append(
                f"VCALENDAR holds {children.get('VEVENT', 0)} VEVENTs; a CalDAV object without "
                "RECURRENCE-ID must hold exactly one"
            )
        if expected_prodid is not None and props.get("PRODID", [expected_prodid])[0] != (
            expected_prodid
        ):
            problems.append(f"PRODID {_short(props['PRODID'][0])!r} is not the expected constant")
    if comp == "VEVENT" and len(props.get("DTSTART", ())) == 1 and len(props.get("DTEND", ())) == 1:
        start_date = props["DTSTART#date"][0] == "1"
        end_date = props["DTEND#date"][0] == "1"
        if start_date != end_date:
            problems.append("VEVENT mixes DATE and DATE-TIME in DTSTART/DTEND")
        elif props["DTSTART"][0].endswith("Z") != props["DTEND"][0].endswith("Z"):
            problems.append("VEVENT mixes UTC and floating DTSTART/DTEND")
        else:
            start = _parse_when(props["DTSTART"][0], start_date)
            end = _parse_when(props["DTEND"][0], end_date)
            if start is not None and end is not None and end <= start:
                problems.append("VEVENT DTEND is not after DTSTART")


def _check_parsed(data: bytes, problems: list[str]) -> None:
    """What icalendar (and so most client libraries) makes of the same bytes."""
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a finding
        problems.append(f"icalendar cannot parse it: {type(exc).__name__}: {_short(str(exc))}")
        return
    for cal in calendars:
        for component in cal.walk():
            comp = component.name
            if component.errors:
                problems.append(f"icalendar reports errors in {comp}: {component.errors}")
            if comp not in ALLOWED:
                problems.append(f"icalendar sees component {comp}, not allowed")
                continue
            for name, values in component.items():
                uname = name.upper()
                if uname not in ALLOWED[comp]:
                    problems.append(f"icalendar sees {comp} property {uname}, not allowed")
                for value in values if isinstance(values, list) else [values]:
                    _check_parsed_params(comp, uname, value, problems)


def _check_parsed_params(comp: str, name: str, value: object, problems: list[str]) -> None:
    params = getattr(value, "params", None) or {}
    for pname, pvalue in params.items():
        if not (
            pname.upper() == "VALUE"
            and name in DATE_PARAM_PROPERTIES
            and str(pvalue).upper() == "DATE"
        ):
            problems.append(f"icalendar sees parameter {pname} on {comp}.{name}, not allowed")


def check_output(ics: bytes | str, expected_prodid: str | None = None, *,
                 served: bool = False) -> list[str]:
    """Every way `ics` departs from the phone-calendar allowlist; empty means clean. `served`:
    the bytes a server answered, which it may have folded again."""
    data = ics.encode("utf-8") if isinstance(ics, str) else ics
    problems: list[str] = []
    _check_physical(data, problems, line_length=not served)
    _check_raw(unfold(data), problems, expected_prodid)
    _check_parsed(data, problems)
    return list(dict.fromkeys(problems))


def assert_schema(ics: bytes | str, expected_prodid: str | None = None, *,
                  served: bool = False) -> None:
    """Fail listing every allowlist violation in `ics`."""
    problems = check_output(ics, expected_prodid, served=served)
    if problems:
        raise AssertionError(
            f"sanitized output violates the allowlist ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems)
        )
