"""Checks that a target is a calendar of its own: not a source, not shared with another install.

For `check`: a target that is some pair's source under another spelling, a target that holds
objects with the UIDs of source events (the same calendar, or a copy), a source that holds phone
entries, and phone entries another installation wrote into the target. Only UIDs are compared and
only counts, URLs and pair names are reported.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sanitizer.core.identity import installation_tag, is_owned, tag_of
from sanitizer.core.model import Window
from sanitizer.errors import ExitCode, StoreError
from sanitizer.service.calendars import matching
from sanitizer.service.config import Config, Pair
from sanitizer.stores.base import SourceCalendar, TargetCalendar

Problem = tuple[str, str, ExitCode]  # result code, detail, exit code
_UID = re.compile(rb"^UID(?:;[^:\r\n]*)?:([^\r\n]*)", re.MULTILINE | re.IGNORECASE)


def uids(data: bytes) -> set[str]:
    """The UIDs in a calendar object (unfolded); compared only, never shown."""
    unfolded = data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"").replace(b"\n ", b"")
    return {m.group(1).strip().decode("utf-8", "replace") for m in _UID.finditer(unfolded)}


def target_is_source(config: Config, index: int, pair: Pair) -> Problem | None:
    """The target names some pair's source calendar (another host name, %-encoding, ...)."""
    for other in config.pairs:
        if matching(pair.target_url, [other.source_url]):
            return ("target-is-source", f"pairs[{index}].target {pair.target_url} is the same "
                    f"calendar as the source of pair {other.name} ({other.source_url}): the "
                    "sanitizer never writes a source; give the pair a phone calendar of its own",
                    ExitCode.CONFIG)
    return None


def contents_problems(pair: Pair, index: int, source: SourceCalendar, target: TargetCalendar,
                      key: bytes | None) -> list[Problem]:
    """Read both calendars once and compare UIDs (nothing is written)."""
    try:
        held = [uids(obj.data) for obj in target.list()]
    except StoreError as exc:
        if exc.status == 404:
            return []  # made on the first cycle: empty
        raise
    now = datetime.now(UTC)
    window = Window(now - pair.retention, now + pair.lookahead)
    source_uids = set().union(*(uids(obj.data)
                                for obj in source.fetch(window)))
    problems: list[Problem] = []
    copied = sum(bool(found & source_uids) for found in held)
    if copied:
        problems.append(("target-holds-source-events", f"{copied} object(s) in {pair.target_url} "
                         f"have the UIDs of events in the source {pair.source_url}: the target "
                         "is probably the same calendar or a copy of it; point "
                         f"pairs[{index}].target at a phone calendar of its own",
                         ExitCode.CONFIG))
    if any(is_owned(uid) for uid in source_uids):
        problems.append(("source-holds-phone-entries", f"the source {pair.source_url} holds "
                         "phone entries written by calendar-sanitizer: some pair's target is "
                         "this work calendar; fix that pair's target", ExitCode.CONFIG))
    ours = installation_tag(key) if key is not None else None
    others = sum(any(tag_of(uid) not in (None, ours) for uid in found) for found in held)
    if others:
        problems.append(("warning", f"{others} entries in {pair.target_url} were written by "
                         "another installation of calendar-sanitizer (another state directory "
                         "or UID key); they are left alone, but both installations put every "
                         "appointment there: stop one of them", ExitCode.OK))
    return problems
