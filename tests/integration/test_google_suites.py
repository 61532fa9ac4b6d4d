"""The sync, privacy-canary and fault suites, run through the Google-like proxy on every run.

The tests are those of tests/test_sync_integration.py, tests/test_privacy_e2e.py and
tests/test_faults.py, imported here so that this module's `caldav_server` (the "google" server
kind of tests/google_sim.py) stands in for the session's servers. `CALDAV_SERVERS=google` runs
those modules whole through it (the seeded convergence runs and the broken-fixture canary too);
this module keeps a representative part in the default run, about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_faults import (  # noqa: F401 - fixtures and tests, collected again here
    bench,
    proxy,
    test_a_412_is_a_conflict_never_retried_and_fixed_by_the_next_cycle,
    test_a_lost_create_response_gives_no_duplicate,
    test_a_source_edited_during_a_cycle_arrives_next_cycle,
    test_faults_that_cannot_heal_by_retrying_are_not_retried,
)
from tests.integration.test_privacy_e2e import (  # noqa: F401
    test_nothing_identifying_reaches_the_phone_the_logs_or_the_disk,
)
from tests.integration.test_sync_integration import (  # noqa: F401
    pair,
    test_changes_follow_and_a_second_cycle_is_quiet,
    test_dry_run_and_preview_write_nothing,
    test_expiry_after_retention_and_foreign_events_left_alone,
    test_first_sync_creates_sanitized_entries_and_leaves_source_alone,
)
from tests.support.google_sim import GoogleServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def caldav_server() -> Iterator[GoogleServer]:
    """Radicale behind the Google-like proxy, with its token endpoint, for this module."""
    with GoogleServer() as server:
        yield server
