"""The fork server is started once per process: a second pool (the next `sync` in a process
that runs several, as the tests and the admin tools do) reuses it, and each worker it forks
finds the command line and the HTTP protocol modules loaded already."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from sanitizer.service import pool, runtime, supervise
from sanitizer.stores.registry import KINDS
from tests.unit.test_scale import config_of


def _report_modules(conn: Connection) -> None:
    """A worker that answers which of the preloaded modules it had to import itself."""
    conn.send(sorted(name for name in pool.PRELOAD if name not in sys.modules))
    conn.close()


def _fork_server_pid() -> int | None:
    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)


def test_one_fork_server_serves_every_pool_of_a_process() -> None:
    first = pool.Pool(kinds=["caldav"])
    context = first._context
    assert context.get_start_method() == "forkserver"  # as the daemon's pool
    ours, theirs = context.Pipe(duplex=False)
    worker = context.Process(target=_report_modules, args=(theirs,), daemon=True)
    worker.start()
    theirs.close()
    assert ours.recv() == []  # nothing to import again in the worker
    worker.join()
    server = _fork_server_pid()
    first.close()
    second = pool.Pool()
    second.warm_up()
    assert _fork_server_pid() == server is not None
    second.close()


def test_the_configured_kinds_stores_are_loaded_by_the_fork_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    context = pool.multiprocessing.get_context("forkserver")
    monkeypatch.setattr(context, "set_forkserver_preload", asked.append)
    pool.Pool(kinds=["microsoft365", "caldav", "microsoft365"])
    assert asked[-1][: len(pool.PRELOAD)] == pool.PRELOAD
    assert asked[-1][len(pool.PRELOAD):] == [*KINDS["caldav"].preload,
                                             *KINDS["microsoft365"].preload, pool.FREEZE]


class _Stop(Exception):
    pass


def test_sync_of_many_pairs_uses_the_fork_server(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    asked: list[int | None] = []

    def fake_pool(fork_below: int | None = None, kinds: object = ()) -> None:
        asked.append(fork_below)
        raise _Stop

    monkeypatch.setattr(supervise, "Pool", fake_pool)
    for count in (1, supervise.FORK_MAX_PAIRS, supervise.FORK_MAX_PAIRS + 1, 1000):
        config = config_of(tmp_path, count)
        with pytest.raises(_Stop):
            supervise.run_all(runtime.Runtime(config, b"k" * 32), config.pairs, datetime.now(UTC))
    few, many = asked[:2], asked[2:]
    assert all(isinstance(limit, int) for limit in few)  # may fork itself
    assert many == [None, None]  # copying a command that holds 1,000 pairs per worker costs more


def test_a_sync_that_forks_itself_imports_the_kinds_modules_once_before_the_fork() -> None:
    """Imported in the supervisor, they are shared by the pair's worker and the clean-up's,
    instead of imported in each; no HTTP stack comes with them, so the fork stays safe."""
    import subprocess  # noqa: PLC0415

    code = ("import sys; from sanitizer.service import pool; "
            "p = pool.Pool(fork_below=1 << 40, kinds=['caldav', 'google']); "
            "print(p._context.get_start_method(), "
            "'sanitizer.stores.caldav.connection' in sys.modules, "
            "sorted(pool.FORK_UNSAFE & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["fork", "True", "[]"], out.stdout + out.stderr


def test_what_a_worker_inherits_is_frozen_before_the_fork() -> None:
    """A collection in a worker must not walk (and so copy) every object of its parent: in a
    `sync` that forks itself and in the fork server, gc.freeze() runs before the first fork."""
    import subprocess  # noqa: PLC0415

    code = ("import gc; from sanitizer.service import pool; "
            "before = gc.get_freeze_count(); pool.Pool(fork_below=1 << 40, kinds=['caldav']); "
            "print(before == 0, gc.get_freeze_count() > 10000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr
    frozen = subprocess.run([sys.executable, "-c", "import gc, sanitizer.service.frozen; "
                             "print(gc.get_freeze_count() > 1000)"], capture_output=True,
                            text=True, check=True)
    assert frozen.stdout.strip() == "True"

