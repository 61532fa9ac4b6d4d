"""Microsoft 365 under attack, on the Graph simulator through the real CLI: a target that is the
work calendar under another spelling, a source that holds phone entries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sanitizer.stores.microsoft365.target import MARK_ID
from tests.integration.test_microsoft365_cli import m365_setup
from tests.support.graph_sim import ADVOCATE, PHONE, GraphSim

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def sim() -> Iterator[GraphSim]:
    server = GraphSim().start()
    server.add_calendar(PHONE, "Calendar")
    yield server
    server.stop()


def _work_calendar(sim: GraphSim) -> str:
    calendar = sim.add_calendar(ADVOCATE, "Calendar")
    sim.add_event(calendar, NOW + HOUR, NOW + 2 * HOUR, subject="Intake")
    return calendar


def test_a_target_that_is_the_source_in_another_case_is_never_written(sim: GraphSim,
                                                                      tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim, target=f"{ADVOCATE}/calendar")
    check = setup.run("check")
    assert check.code == 78 and "target-name-taken" in check.stdout, check.output
    for minutes in range(0, 30, 5):
        sync = setup.run("sync", "--now", (NOW + timedelta(minutes=minutes)).isoformat())
        assert sync.code != 0 and "target-not-found" in sync.output, sync.output
    assert [e["subject"] for e in sim.events(ADVOCATE, "Calendar")] == ["Intake"]
    assert sim.writes[ADVOCATE] <= 6  # at most the refused calendar creations


def test_a_target_naming_the_source_mailbox_by_object_id_is_refused(sim: GraphSim,
                                                                   tmp_path: Path) -> None:
    _work_calendar(sim)
    setup = m365_setup(tmp_path, sim, target=f"{sim.object_ids[ADVOCATE]}/Calendar")
    check = setup.run("check")
    assert check.code == 78 and "target-is-source" in check.stdout, check.output
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "target-is-a-source" in sync.output, sync.output
    assert [e["subject"] for e in sim.events(ADVOCATE, "Calendar")] == ["Intake"]
    assert sim.writes[ADVOCATE] == 0


def test_a_source_that_holds_phone_entries_fails_the_pair(sim: GraphSim,
                                                         tmp_path: Path) -> None:
    calendar = _work_calendar(sim)
    mark = [{"id": MARK_ID, "value": "csan-0123abcd-" + "0" * 40}]
    sim.add_event(calendar, NOW + 3 * HOUR, NOW + 4 * HOUR, subject="Appointment",
                  singleValueExtendedProperties=mark)
    setup = m365_setup(tmp_path, sim)
    check = setup.run("check")
    assert check.code == 78 and "source-holds-phone-entries" in check.stdout, check.output
    sync = setup.run("sync", "--now", NOW.isoformat())
    assert sync.code == 1 and "source-holds-phone-entries" in sync.output, sync.output
    assert sim.events(PHONE, "Appointments") == []
