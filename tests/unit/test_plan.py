"""The planner's decision table, and its properties under hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer.core.identity import OWNED_PREFIX
from sanitizer.core.model import Create, Delete, Label, SanitizedEvent, TargetItem, Update
from sanitizer.core.plan import plan
from tests.support.core_builders import NOW, UTC_ZONE

RETENTION = timedelta(hours=24)


def event(n: int, hours: int = 0, title: str = "Appointment") -> SanitizedEvent:
    start = NOW + timedelta(hours=hours)
    return SanitizedEvent(uid=f"{OWNED_PREFIX}{n:040d}", start=start,
                          end=start + timedelta(hours=1), title=Label(title))


def item(ev: SanitizedEvent, href: str | None = None, extra: bool = False) -> TargetItem:
    return TargetItem(href or f"/p/{ev.uid}.ics", '"e"', ev.uid, ev, extra)


def test_decision_table() -> None:
    keep, change, gone, dup = event(1), event(2), event(3, hours=5), event(4)
    existing = [item(keep), item(event(2, title="Old")), item(gone), item(dup), item(dup, "/p/x"),
                TargetItem("/p/foreign.ics", '"f"', "someone-else", None)]
    desired = {e.uid: e for e in (keep, change, dup, event(5))}
    result = plan(desired, existing, now=NOW, retention=RETENTION, zone=UTC_ZONE)
    kinds = sorted(type(a).__name__ for a in result.actions)
    assert kinds == ["Create", "Delete", "Delete", "Update"]
    assert result.unchanged == 2 and result.foreign == ("/p/foreign.ics",)
    assert not any(getattr(a, "href", "") == "/p/foreign.ics" for a in result.actions)


def test_owned_event_with_extra_content_is_rewritten() -> None:
    ev = event(1)
    result = plan({ev.uid: ev}, [item(ev, extra=True)], now=NOW, retention=RETENTION,
                  zone=UTC_ZONE)
    assert [type(a) for a in result.actions] == [Update]


def test_guard_holds_future_deletions_but_expires_old_ones() -> None:
    futures, old = [event(1, hours=48), event(3, hours=50)], event(2, hours=-30)
    result = plan({}, [*map(item, futures), item(old)], now=NOW, retention=RETENTION,
                  zone=UTC_ZONE, source_empty=True)
    assert result.held_back == 2
    assert [(type(a), a.expired) for a in result.actions] == [(Delete, True)]  # type: ignore[union-attr]


def test_guard_lets_a_single_last_entry_go() -> None:
    result = plan({}, [item(event(1, hours=48))], now=NOW, retention=RETENTION, zone=UTC_ZONE,
                  source_empty=True)
    assert result.held_back == 0 and [type(a) for a in result.actions] == [Delete]


def apply(actions, items: dict[str, TargetItem]) -> dict[str, TargetItem]:  # type: ignore[no-untyped-def]
    """What a server holds after the actions (the executor's effect, without a server)."""
    result = dict(items)
    for action in actions:
        if isinstance(action, Create):
            href = f"/p/{action.event.uid}.ics"
            assert href not in result
            result[href] = TargetItem(href, '"n"', action.event.uid, action.event)
        elif isinstance(action, Update):
            result[action.href] = TargetItem(action.href, '"u"', action.event.uid, action.event)
        else:
            del result[action.href]
    return result


EVENTS = st.builds(event, st.integers(0, 12), st.integers(-60, 400),
                   st.sampled_from(["Appointment", "Busy", "Staff meeting"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, max_size=10), st.lists(EVENTS, max_size=10),
       st.lists(st.integers(0, 5), max_size=3), st.booleans())
def test_applying_a_plan_reaches_the_desired_state(desired_list, existing_list, foreign_ids,
                                                   source_empty) -> None:  # type: ignore[no-untyped-def]
    """Properties: the plan reaches the desired state (minus held-back entries), never touches
    a foreign object, and planning again yields nothing."""
    desired = {e.uid: e for e in desired_list}
    items = {f"/p/{e.uid}.ics": item(e) for e in existing_list}
    items.update({f"/p/f{n}.ics": TargetItem(f"/p/f{n}.ics", '"f"', f"foreign-{n}", None)
                  for n in foreign_ids})
    first = plan(desired, list(items.values()), now=NOW, retention=RETENTION, zone=UTC_ZONE,
                 source_empty=source_empty and not desired)
    after = apply(first.actions, items)
    owned = {i.uid: i.event for i in after.values() if i.uid and i.uid.startswith(OWNED_PREFIX)}
    assert {uid: ev for uid, ev in owned.items() if uid in desired} == desired
    assert len(owned) - len(desired) == first.held_back
    for href, foreign in items.items():
        if not (foreign.uid or "").startswith(OWNED_PREFIX):
            assert after[href] == foreign
    again = plan(desired, list(after.values()), now=NOW, retention=RETENTION, zone=UTC_ZONE,
                 source_empty=source_empty and not desired)
    assert again.actions == ()


def test_all_day_expiry_uses_the_agency_zone() -> None:
    ev = SanitizedEvent(uid=OWNED_PREFIX + "0" * 40, start=date(2030, 3, 3),
                        end=date(2030, 3, 4), title=Label("Court"))
    now = datetime(2030, 3, 5, 4, 30, tzinfo=UTC)  # 2030-03-04 23:30 in New York
    new_york = plan({}, [item(ev)], now=now, retention=RETENTION,
                    zone=ZoneInfo("America/New_York"))
    assert not new_york.actions[0].expired  # type: ignore[union-attr]  # ended 23.5 h ago there
    tokyo = plan({}, [item(ev)], now=now, retention=RETENTION, zone=ZoneInfo("Asia/Tokyo"))
    assert tokyo.actions[0].expired  # type: ignore[union-attr]
