"""Pure parts of the admin commands, by property: sync's exit code, the kept metrics, staleness,
and the rejected-password fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from sanitizer.cli.status import is_stale
from sanitizer.cli.sync import REASON_EXIT, sync_exit_code
from sanitizer.engine.report import PairReport
from sanitizer.service import metrics, rejected
from sanitizer.stores.caldav.kind import CalDAVAccount

REASONS = [*REASON_EXIT, "bad-response", "source-not-found", "internal-error", None]
NOW = datetime(2030, 3, 4, 9, tzinfo=UTC)


def report(name: str, reason: str | None, created: int = 0) -> PairReport:
    made = PairReport(name, created=created)
    if reason is not None:
        made.error, made.error_code = f"failed: {reason}", reason
    return made


reports = st.lists(st.tuples(st.sampled_from(REASONS), st.integers(0, 50)), max_size=6).map(
    lambda items: [report(f"p{i}", reason, n) for i, (reason, n) in enumerate(items)])


@given(reports)
def test_sync_exit_code_names_a_reason_only_when_every_pair_failed_for_it(got) -> None:
    code = sync_exit_code(got)
    if all(r.ok for r in got):
        assert code == 0
        return
    classes = {REASON_EXIT.get(r.error_code or "") for r in got}
    assert code == (int(classes.pop()) if len(classes) == 1 and None not in classes else 1)


@given(reports, reports)
def test_metrics_failure_counts_only_grow_and_entries_come_from_successes(first, second) -> None:
    kept = metrics.update({}, first, {r.pair: 0.5 for r in first}, NOW)
    later = metrics.update(kept, second, {}, NOW + timedelta(minutes=5))
    for name, entry in kept.items():
        for reason, count in entry["failures"].items():
            assert later[name]["failures"][reason] >= count
    for r in second:
        if r.ok:
            assert later[r.pair]["entries"] == r.created
            assert later[r.pair]["last_success"] == (NOW + timedelta(minutes=5)).timestamp()


@given(st.integers(-10_000, 10_000), st.booleans(), st.integers(1, 5_000))
def test_a_pair_is_stale_unless_its_last_good_cycle_is_recent(age, ok, limit) -> None:
    entry = {"time": (NOW - timedelta(seconds=age)).isoformat(), "ok": ok}
    assert is_stale(entry, NOW, timedelta(seconds=limit)) == (not ok or age > limit)
    assert is_stale({}, NOW, timedelta(seconds=limit))  # a status file without this pair
    assert is_stale(None, NOW, timedelta(seconds=limit))  # never seen, written when unknown
    seen = NOW - timedelta(seconds=age)  # never ran: stale once `limit` passed since first seen
    assert is_stale(None, NOW, timedelta(seconds=limit), seen) == (age > limit)
    assert is_stale({"since": seen.isoformat()}, NOW, timedelta(seconds=limit)) == (age > limit)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_the_fingerprint_changes_with_the_password_and_never_holds_it(one, other) -> None:
    account = CalDAVAccount("agency", "https://dav.example.org/", username="sanitizer")
    key = b"k" * 32
    first = rejected.fingerprint(key, account, one)
    assert len(first) == 64
    assert len(one) < 12 or one not in first  # a keyed hash, not the password
    assert (first == rejected.fingerprint(key, account, other)) == (one == other)
    moved = CalDAVAccount("agency", "https://dav2.example.org/", username="sanitizer")
    assert rejected.fingerprint(key, moved, one) != first


def test_the_policy_says_outside_invitations_never_keep_their_title() -> None:
    """With agency_domains set, the written policy must not promise staff titles to anyone."""
    from sanitizer.cli.policy_text import rule_text  # noqa: PLC0415
    from sanitizer.core.model import Action  # noqa: PLC0415
    from sanitizer.core.policy import Rule  # noqa: PLC0415

    rule = Rule("rules[0]", Action.KEEP_TITLE, match_categories=frozenset({"staff"}))
    assert "organised inside" not in rule_text(rule)
    text = rule_text(rule, ("agency.example.org",))
    assert "organised inside agency.example.org" in text and "anyone else" in text
