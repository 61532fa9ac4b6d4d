"""Fixtures of the contract suite: every test runs once per store kind.

`backend` is session-scoped and parametrised over the kinds, so pytest runs each kind's tests
together and starts each kind's servers once; `store_pair` gives every test fresh calendars on
it. Kinds that start a server are marked `integration`, so `make unit` runs the memory store's
share only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.backends import KINDS, Backend, StorePair, make_backend
from tests.support.servers import CalDAVServer

_PARAMS = [pytest.param(kind, id=kind,
                        marks=() if kind == "memory" else (pytest.mark.integration,))
           for kind in KINDS]


@pytest.fixture(scope="session", params=_PARAMS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """One kind of store's backend, started once for the session."""
    def radicale() -> CalDAVServer:
        server: CalDAVServer = request.getfixturevalue("radicale")
        return server

    started = make_backend(request.param, radicale)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def store_pair(backend: Backend) -> Iterator[StorePair]:
    """A fresh target and a fresh, fillable source on the backend."""
    pair = backend.pair()
    try:
        yield pair
    finally:
        pair.close()
