"""Pytest plugin: real CalDAV servers, started once per session, and fresh calendars per test.

Starting a server costs a fraction of a second but tests are many, so each
server kind runs once per session and every test isolates itself in calendars
with unique names instead. ``CALDAV_SERVERS`` (comma list) picks the kinds, so
a quick local run can use one server while CI covers them all.

A test that applies to some servers only says so with ``@pytest.mark.servers(TRAIT, ...)``:
it is parametrised, at collection time, with the selected kinds that have every trait named
(a kind's name is one of its traits; see KIND_TRAITS), so no test starts only to skip itself.
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

__all__ = ["KIND_TRAITS", "FreshCalendars", "caldav_server", "fresh_calendars", "kinds_for",
           "selected_server_kinds"]

_ENV_VAR = "CALDAV_SERVERS"
SERVER_FIXTURES = {"caldav_server", "radicale"}  # every server fixture depends on one of these
KIND_TRAITS: dict[str, frozenset[str]] = {
    "radicale": frozenset({"radicale", "plain-http", "enforces-auth"}),
    "xandikos": frozenset({"xandikos", "plain-http"}),  # plain Xandikos accepts any password
    "xandikos-tls": frozenset({"xandikos-tls", "tls", "enforces-auth"}),
    "google": frozenset({"google", "plain-http", "enforces-auth"}),
}
"""What each server kind is, for ``@pytest.mark.servers``: fixed facts of how the tests start
them (servers.py), so a test's servers are known before any server starts."""


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


def kinds_for(traits: tuple[str, ...]) -> list[str]:
    """The selected server kinds that have every one of `traits`."""
    unknown = set(traits) - set().union(*KIND_TRAITS.values())
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.servers: unknown traits {sorted(unknown)}")
    return [kind for kind in selected_server_kinds() if set(traits) <= KIND_TRAITS[kind]]


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (pytest runs with --strict-markers)."""
    config.addinivalue_line(
        "markers", "servers(*traits): run only on the selected server kinds with these traits")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give each test that uses `caldav_server` exactly the server kinds it applies to.

    A module with a `caldav_server` fixture of its own (test_google_suites) keeps it.
    """
    if "caldav_server" not in metafunc.fixturenames or hasattr(metafunc.module,
                                                                "caldav_server"):
        return
    traits = tuple(t for mark in metafunc.definition.iter_markers("servers") for t in mark.args)
    metafunc.parametrize("caldav_server", kinds_for(traits), indirect=True, scope="session")


@pytest.fixture(scope="session")
def caldav_server(request: pytest.FixtureRequest) -> Iterator[CalDAVServer]:
    """A running server of each selected kind, shared by the whole session."""
    server = make_server(request.param)
    server.start()
    traits = KIND_TRAITS[server.name]
    if ("plain-http" in traits) != (server.ca_file is None) or (
            "enforces-auth" in traits) != server.enforces_auth:
        server.stop()
        raise pytest.UsageError(f"KIND_TRAITS[{server.name!r}] does not describe that server")
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
