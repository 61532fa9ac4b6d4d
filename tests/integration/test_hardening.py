"""Start-up hardening: after the CLI entry has run, the process can write no core file."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sanitizer.service.hardening import is_dumpable

# Raise the soft core limit first, as a shell with `ulimit -c unlimited` would, then run the
# entry point and report what it left behind.
PROBE = textwrap.dedent("""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    from sanitizer.cli.main import main
    try:
        main(["--version"])
    except SystemExit:
        pass
    from sanitizer.service.hardening import is_dumpable
    print(resource.getrlimit(resource.RLIMIT_CORE), is_dumpable())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_the_entry_point_makes_the_process_non_dumpable() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split("\n")[-2] == "(0, 0) False", result.stdout


def test_a_fresh_interpreter_is_dumpable() -> None:
    """The probe above can fail: without the start-up a process is dumpable."""
    script = "from sanitizer.service.hardening import is_dumpable; print(is_dumpable())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    expected = "None" if is_dumpable() is None else "True"
    assert result.stdout.strip() == expected


def test_a_worker_asks_to_die_with_its_supervisor() -> None:
    script = ("import ctypes, signal; from sanitizer.service import hardening; "
              "hardening.die_with_parent(); sig = ctypes.c_int(0); "
              "ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0); "  # PR_GET_PDEATHSIG
              "print(sig.value == signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "True", done.stderr
