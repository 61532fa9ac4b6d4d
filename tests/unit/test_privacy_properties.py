"""The privacy guarantee of the pure pipeline, on hostile calendars: nothing of the source survives.

Calendars from `strategies.py` and the fixture corpus are planted with canary markers
(`canary.plant`), then run through expand_object -> classify -> sanitize -> serialize under every
rule action: the default, a sanitize rule with title and location labels, skip, keep-title, and a
mix chosen by category, class and summary. No marker may appear in the phone bytes, in the
repr() of anything the pipeline builds, in the report line, in `preview` or in the state and
status files; every phone object passes the allowlist (`schema.check_output`). The one exception
is a keep-title rule, which lets through the SUMMARY of the very instance it matched, and nothing
else. The output must also be deterministic and ignore DTSTAMP, CREATED, LAST-MODIFIED and
SEQUENCE, which would otherwise leak when an event was edited.

Shared helpers (rule sets, the pipeline, keep-title accounting) are imported by the other privacy
tests.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings

from sanitizer.cli.sync import render_preview
from sanitizer.core.expand import SkipObject, expand_object
from sanitizer.core.model import Action, Instance, Label, SanitizedEvent
from sanitizer.core.phone_format import PRODID, serialize
from sanitizer.core.plan import plan
from sanitizer.core.policy import Rule
from sanitizer.core.rules import Decision, classify
from sanitizer.core.sanitize import sanitize
from sanitizer.engine import sync_state
from sanitizer.engine.desired import desired_state, window_for
from sanitizer.engine.reconcile import sync_pair
from sanitizer.engine.report import PairReport
from sanitizer.service import status
from sanitizer.service.config import Pair
from sanitizer.stores.base import RawObject
from tests.support.canary import (
    ContentLine,
    Marker,
    MarkerSet,
    assert_clean,
    fold_line,
    format_content_line,
    parse_content_line,
    plant,
    split_content_lines,
)
from tests.support.core_builders import ACCOUNT, KEY
from tests.support.memory_store import MemoryCalendar
from tests.support.schema import check_output
from tests.support.strategies import ANCHOR, CATEGORY_VOCABULARY, calendar_sets, calendars

DATA = Path(__file__).resolve().parents[1] / "data"
NOW = ANCHOR  # 2030-03-04T09:00Z: the corpus and the strategies are built around it
ZONE = ZoneInfo("Europe/Berlin")  # floating and all-day times are placed in a real zone
PREFIX = "CNRY"
# The strategies keep every occurrence within 20 days of ANCHOR; the window covers all of them.
HORIZON = timedelta(days=21)
VOLATILE = ("DTSTAMP", "CREATED", "LAST-MODIFIED", "SEQUENCE")
# Where a master's or an override's own SUMMARY is planted (not an alarm's or a participant's).
TOP_SUMMARY = re.compile(r"VEVENT\[\d+\]\.SUMMARY(\[\d+\])?")
HYPOTHESIS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- rule sets

def pair_with(rules: Sequence[Rule] = (), **options: object) -> Pair:
    """A pair whose window covers every generated occurrence."""
    settings_: dict[str, object] = {"lookahead": HORIZON, "retention": HORIZON, **options}
    return Pair(name="advocate", source_account=ACCOUNT, target_account=ACCOUNT,
                source_url="http://127.0.0.1:1/u/casework/", target_url="http://127.0.0.1:1/u/phone/",
                rules=tuple(rules), **settings_)  # type: ignore[arg-type]


def rule(index: int, action: Action, **options: object) -> Rule:
    """A rule as the config loader builds it (categories case-folded, classes upper-case)."""
    return Rule(where=f"pairs[0].rules[{index}]", action=action, **options)  # type: ignore[arg-type]


MIXED_RULES = (
    rule(0, Action.KEEP_TITLE, match_categories=frozenset({"staff"})),
    rule(1, Action.SKIP, match_categories=frozenset({"personal"})),
    rule(2, Action.SANITIZE, match_categories=frozenset({"court"}), title=Label("Court date"),
         location=Label("Courthouse")),
    rule(3, Action.SKIP, match_class=frozenset({"CONFIDENTIAL"})),
    rule(4, Action.SANITIZE, match_summary=re.compile("[aeiou]", re.IGNORECASE),
         title=Label("Visit")),
)
# Every rule action, with and without labels; all share one window, so one expansion serves all.
RULE_SETS: dict[str, Pair] = {
    "default": pair_with(),
    "labelled": pair_with(
        [rule(0, Action.SANITIZE, title=Label("Meeting"), location=Label("Office"))],
        title=Label("Appointment"), location=Label("Agency"), alarm=timedelta(minutes=15)),
    "skip": pair_with([rule(0, Action.SKIP)]),
    "keep-title": pair_with([rule(0, Action.KEEP_TITLE, location=Label("Office"))]),
    "mixed": pair_with(MIXED_RULES, alarm=timedelta(minutes=10)),
}


# ----------------------------------------------------------------------------- the pipeline

@dataclass(frozen=True)
class Output:
    """One phone entry and what produced it."""

    instance: Instance
    decision: Decision
    event: SanitizedEvent
    data: bytes


@dataclass
class Run:
    """Everything one pass of the pure pipeline produced for one rule set."""

    outputs: list[Output]
    instances: list[Instance]
    skipped: Counter[str]
    report: PairReport


def expand_all(objects: Sequence[RawObject], pair: Pair) -> tuple[list[Instance], Counter[str]]:
    """Every instance of every object inside the pair's window; skip reasons counted."""
    window = window_for(pair, NOW)
    instances: list[Instance] = []
    skipped: Counter[str] = Counter()
    for obj in objects:
        try:
            instances += expand_object(obj.data, window, ZONE, fallback_uid=obj.href)
        except SkipObject as skip:
            assert str(skip) == skip.reason and repr(skip) == f"SkipObject({skip.reason!r})"
            skipped[skip.reason] += 1
    return instances, skipped


def run_pipeline(objects: Sequence[RawObject], pair: Pair,
                 expanded: tuple[list[Instance], Counter[str]] | None = None) -> Run:
    """expand_object -> classify -> sanitize -> serialize, instance by instance."""
    instances, skipped = expanded if expanded is not None else expand_all(objects, pair)
    outputs = []
    for instance in instances:
        decision = classify(instance, pair.rules)
        event = sanitize(instance, decision, pair, KEY)
        if event is not None:
            outputs.append(Output(instance, decision, event, serialize(event)))
    engine_skipped: Counter[str] = Counter()
    desired = desired_state(objects, pair, KEY, NOW, ZONE, engine_skipped)
    # The engine takes the same path; it only leaves out what starts after the window.
    assert {e.uid for e in desired.events.values()} <= {o.event.uid for o in outputs}
    entries = sorted(desired.events.values(), key=lambda e: (str(e.start), e.uid))
    report = PairReport(pair.name, created=len(entries), skipped=engine_skipped, desired=entries)
    return Run(outputs, instances, skipped, report)


# ----------------------------------------------------------------------------- accounting

def kept_title_token(output: Output, markers: MarkerSet) -> set[str]:
    """The markers a keep-title entry may show: those of its instance's own SUMMARY."""
    if output.decision.action is not Action.KEEP_TITLE or not output.instance.summary:
        return set()
    tokens = {hit.token for hit in markers.find(output.instance.summary)}
    for token in tokens:  # a VEVENT's (master's or override's) own SUMMARY, nothing nested
        planted = markers[token].where if token in markers else ("?",)
        assert all(TOP_SUMMARY.fullmatch(w) for w in planted), (token, planted)
    return tokens


def without_summary(data: bytes) -> str:
    """The unfolded object minus its SUMMARY line, where a kept title lives."""
    return "\n".join(line for line in split_content_lines(data)
                     if not line.upper().startswith(("SUMMARY:", "SUMMARY;")))


def check_output_clean(output: Output, markers: MarkerSet, label: str) -> set[str]:
    """Allowlist and canary checks of one phone entry; returns the kept-title markers it shows."""
    problems = check_output(output.data, expected_prodid=PRODID)
    assert not problems, f"{label}: {problems}"
    allowed = kept_title_token(output, markers)
    hits = markers.find(output.data, found_in=f"{label} phone object")
    shown = {hit.token for hit in hits}
    assert shown <= allowed, "\n".join(str(h) for h in hits if h.token not in allowed)
    assert shown == allowed, f"{label}: the kept title lost its marker"  # the accounting is exact
    assert_clean(without_summary(output.data), markers, f"{label} phone object outside SUMMARY")
    if output.decision.action is Action.KEEP_TITLE:
        # The title is the only carrier: with the pair's title instead, nothing is left.
        assert_clean(serialize(replace(output.event, title=Label("Appointment"))), markers, label)
        assert output.event.title.text == (
            Label.kept_title(output.instance.summary or "") or Label("Appointment")).text
    for thing in (output.instance, output.decision, output.event):
        assert_clean(repr(thing), markers, f"{label} repr({type(thing).__name__})")
    return shown


def check_run(run: Run, pair: Pair, markers: MarkerSet, label: str) -> set[str]:
    """Every entry, the report, its line, the plan and `preview`; returns kept-title markers."""
    shown: set[str] = set()
    for output in run.outputs:
        shown |= check_output_clean(output, markers, label)
    for instance in run.instances:
        assert_clean(repr(instance), markers, f"{label} repr(Instance)")
    assert_clean(repr(run.report), markers, f"{label} repr(PairReport)")
    assert_clean(run.report.status_line(), markers, f"{label} PairReport.status_line()")
    the_plan = plan({e.uid: e for e in run.report.desired}, [], now=NOW,
                    retention=pair.retention, zone=ZONE)
    assert_clean(repr(the_plan), markers, f"{label} repr(Plan)")
    preview = render_preview(run.report, ZONE)
    hits = markers.find(preview, found_in=f"{label} preview")
    assert {h.token for h in hits} <= shown, "\n".join(map(str, hits))
    return shown


def planted_objects(datas: Iterable[bytes], seed: int = 0) -> tuple[list[RawObject], MarkerSet]:
    """Plant each object; name its resource after its UID marker, so an href leak shows too."""
    objects: list[RawObject] = []
    markers = MarkerSet(PREFIX)
    for index, data in enumerate(datas):
        planted, planted_markers = plant(data, PREFIX, seed=seed + index,
                                         keep_categories=CATEGORY_VOCABULARY)
        markers |= planted_markers
        objects.append(RawObject(f"http://127.0.0.1:1/u/casework/{resource_name(planted_markers)}",
                                 None, planted))
    return objects, markers


def resource_name(markers: MarkerSet) -> str:
    """`<uid marker>.ics`, or a fresh marker when the object has no UID."""
    uid_tokens = [m.token for m in markers if m.kind == "uid"]
    if uid_tokens:
        return f"{uid_tokens[0]}.ics"
    token = markers.prefix + hashlib.sha256(repr(markers.tokens).encode()).hexdigest()[:10]
    markers.add(Marker(token, "href", ("resource name",), (token.casefold(),)))
    return f"{token}.ics"


# ----------------------------------------------------------------------------- restamping

def restamp(data: bytes, stamp: str | None, sequence: str | None) -> bytes:
    """Give every DTSTAMP/CREATED/LAST-MODIFIED one value and SEQUENCE another; None drops them."""
    lines = []
    for line in split_content_lines(data):
        cl = parse_content_line(line)
        if cl is None or cl.uname not in VOLATILE:
            lines.append(fold_line(line))
            continue
        value = sequence if cl.uname == "SEQUENCE" else stamp
        if value is not None:
            lines.append(fold_line(format_content_line(ContentLine(cl.name, cl.params, value))))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def phone_bytes(objects: Sequence[RawObject], pair: Pair) -> list[bytes]:
    """The phone entries the engine would write, in a stable order."""
    desired = desired_state(objects, pair, KEY, NOW, ZONE, Counter())
    return sorted(serialize(event) for event in desired.events.values())


# ----------------------------------------------------------------------------- the in-memory engine

def engine_round(objects: Sequence[RawObject], pair: Pair, markers: MarkerSet,
                 allowed: set[str], label: str) -> None:
    """The whole engine on in-memory calendars: a full cycle, an incremental one after an edit
    and a deletion, and a quiet one; with the state and status files it writes."""
    source, target = MemoryCalendar("mem://casework/"), MemoryCalendar("mem://phone/")
    hrefs = [source.put_raw(obj.href.rsplit("/", 1)[1], obj.data) for obj in objects]
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp)
        state = None
        for cycle in ("full", "incremental", "quiet"):
            if cycle == "incremental":
                source.put_raw(hrefs[0].rsplit("/", 1)[1],
                               restamp(objects[0].data, "20291111T111111Z", "3"))
                source.remove_raw(hrefs[-1])
            report = sync_pair(pair, source, target, key=KEY, now=NOW, zone=ZONE, workers=1,
                               state=state)
            assert report.ok, report.status_line()
            assert report.state is not None
            sync_state.save(state_dir, pair.name, report.state)
            state = sync_state.load(state_dir, pair.name)
            status.record(state_dir, [report], NOW)
            for text, what in ((report.status_line(), "status line"),
                               (repr(report), "repr(PairReport)"),
                               (repr(report.state), "repr(PairState)")):
                assert_clean(text, markers, f"{label} {what}, {cycle} cycle")
        assert report.mode == "quiet", report.status_line()
        disk = b"".join(p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file())
        assert_clean(disk, markers, f"{label} state and status files")
    for href, data in target.objects.items():
        assert_clean(href, markers, f"{label} phone href")
        assert not check_output(data, expected_prodid=PRODID), check_output(data)
        hits = markers.find(data, found_in=f"{label} phone object {href}")
        assert {h.token for h in hits} <= allowed, "\n".join(map(str, hits))


# ----------------------------------------------------------------------------- the tests

def check_all_rule_sets(objects: list[RawObject], markers: MarkerSet, label: str) -> None:
    """Every rule set on the same objects (one expansion: the window is shared)."""
    expanded = expand_all(objects, RULE_SETS["default"])
    for name, pair in RULE_SETS.items():
        run = run_pipeline(objects, pair, expanded)
        shown = check_run(run, pair, markers, f"{label} [{name}]")
        if name == "skip":
            assert not run.outputs
        if name not in ("keep-title", "mixed"):
            assert not shown


@settings(HYPOTHESIS, max_examples=45)
@given(calendars())
def test_no_marker_survives_any_rule(data: bytes) -> None:
    objects, markers = planted_objects([data])
    check_all_rule_sets(objects, markers, "generated")


@settings(HYPOTHESIS, max_examples=10)
@given(calendar_sets(min_size=2, max_size=4))
def test_no_marker_survives_the_engine_with_its_state(datas: list[bytes]) -> None:
    objects, markers = planted_objects(datas)
    expanded = expand_all(objects, RULE_SETS["default"])
    for name, pair in RULE_SETS.items():
        run = run_pipeline(objects, pair, expanded)
        allowed = check_run(run, pair, markers, f"set [{name}]")
        if name in ("labelled", "keep-title", "mixed"):  # the others add nothing to the engine
            engine_round(objects, pair, markers, allowed, f"set [{name}]")


@settings(HYPOTHESIS, max_examples=20)
@given(calendars())
def test_output_is_deterministic_and_ignores_edit_stamps(data: bytes) -> None:
    objects, _ = planted_objects([data])
    (obj,) = objects
    for name in ("labelled", "mixed"):
        pair = RULE_SETS[name]
        first = phone_bytes(objects, pair)
        assert phone_bytes(objects, pair) == first  # same input twice: same bytes
        variants = [restamp(obj.data, "19991231T235959Z", "7"),
                    restamp(obj.data, "20290101T000001Z", "4242"),
                    restamp(obj.data, None, None)]
        for variant in variants:
            assert phone_bytes([replace(obj, data=variant)], pair) == first, name


CORPUS = sorted(DATA.glob("*.ics"))


SLOW_CORPUS = {"bad_rrule_never_matches.ics"}  # spends the CPU budget per expansion; see e2e


def plant_any(raw: bytes, seed: int) -> tuple[bytes, MarkerSet]:
    """Plant strictly; a file broken on purpose keeps its brokenness; unplantable stays raw."""
    try:
        return plant(raw, PREFIX, seed=seed, keep_categories=CATEGORY_VOCABULARY)
    except ValueError:
        pass
    try:
        return plant(raw, PREFIX, seed=seed, keep_categories=CATEGORY_VOCABULARY, strict=False)
    except Exception:  # noqa: BLE001 - a file too broken to plant still goes through, unmarked
        return raw, MarkerSet(PREFIX)


@pytest.mark.parametrize("path", [p for p in CORPUS if p.name not in SLOW_CORPUS],
                         ids=lambda p: p.name)
def test_corpus_file_leaks_nothing_under_any_rule(path: Path) -> None:
    planted, markers = plant_any(path.read_bytes(), seed=len(path.name))
    obj = RawObject(f"http://127.0.0.1:1/u/casework/{resource_name(markers)}", None, planted)
    check_all_rule_sets([obj], markers, path.name)
    if not path.name.startswith(("bad_", "event_broken_")):  # re-folding would mend them
        first = phone_bytes([obj], RULE_SETS["mixed"])
        edited = replace(obj, data=restamp(planted, "19991231T235959Z", "9"))
        assert phone_bytes([edited], RULE_SETS["mixed"]) == first
