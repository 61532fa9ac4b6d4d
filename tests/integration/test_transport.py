"""The transport reuses its connections whatever threads come and go (the daemon's pair threads,
each cycle's writers), so a long-running daemon does not grow threads, sockets or memory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sanitizer.stores.caldav.store import Credentials, Transport


@pytest.mark.servers("radicale")
def test_threads_that_come_and_go_reuse_one_connection(caldav_server) -> None:  # type: ignore[no-untyped-def]
    transport = Transport(Credentials(caldav_server.url, caldav_server.username,
                                      caldav_server.password))
    for _ in range(10):  # like a pair thread per cycle
        worker = threading.Thread(target=transport.request,
                                  args=("PROPFIND", caldav_server.url), kwargs={
                                      "headers": {"Depth": "0"}})
        worker.start()
        worker.join()
    assert transport.clients == 1
    for _ in range(5):  # like a pool of writers per cycle
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: transport.request("PROPFIND", caldav_server.url,
                                                      headers={"Depth": "0"}), range(8)))
    assert transport.clients <= 4
    assert transport.requests["PROPFIND"] == 50
    transport.close()
