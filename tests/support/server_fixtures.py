"""Pytest plugin: real CalDAV servers, started once per session, and fresh calendars per test.

Starting a server costs a fraction of a second but tests are many, so each
server kind runs once per session and every test isolates itself in calendars
with unique names instead. ``CALDAV_SERVERS`` (comma list) picks the kinds, so
a quick local run can use one server while CI covers them all.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers import (
    OPTIONAL_SERVER_KINDS,
    SERVER_KINDS,
    CalDAVServer,
    RadicaleServer,
    make_server,
)

__all__ = ["FreshCalendars", "caldav_server", "fresh_calendars", "selected_server_kinds"]

_ENV_VAR = "CALDAV_SERVERS"
SERVER_FIXTURES = {"caldav_server", "radicale"}  # every server fixture depends on one of these


def selected_server_kinds() -> list[str]:
    """Server kinds named in ``CALDAV_SERVERS``, defaulting to all of them."""
    raw = os.environ.get(_ENV_VAR, "").strip()
    if not raw:
        return list(SERVER_KINDS)
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    known = SERVER_KINDS + OPTIONAL_SERVER_KINDS
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        raise pytest.UsageError(
            f"{_ENV_VAR} names unknown server kinds {unknown}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(kinds))


class FreshCalendars:
    """Makes uniquely named calendars on one server, so tests never share state."""

    def __init__(self, server: CalDAVServer) -> None:
        """Bind to the session's server."""
        self.server = server
        self.created: list[str] = []

    def new(self, slug_prefix: str = "test", displayname: str | None = None) -> str:
        """Create ``<prefix>-<random>`` on the server and return its URL."""
        prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", slug_prefix).strip("-.") or "test"
        slug = f"{prefix}-{uuid.uuid4().hex[:12]}"
        url = self.server.create_calendar(slug, displayname if displayname is not None else slug)
        self.created.append(url)
        return url


@pytest.fixture(scope="session", params=selected_server_kinds())
def caldav_server(request: pytest.FixtureRequest) -> Iterator[CalDAVServer]:
    """A running server of each selected kind, shared by the whole session."""
    server = make_server(request.param)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_calendars(caldav_server: CalDAVServer) -> FreshCalendars:
    """A factory for calendars private to the calling test."""
    return FreshCalendars(caldav_server)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server as integration, so ``-m 'not integration'`` works."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def radicale() -> Iterator[RadicaleServer]:
    """One Radicale for tests whose subject is not the server (daemon, admin, secrets)."""
    server = RadicaleServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def calendars(radicale: RadicaleServer) -> FreshCalendars:
    """Fresh calendars on that Radicale."""
    return FreshCalendars(radicale)
