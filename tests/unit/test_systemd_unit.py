"""The unit files: exposure score (systemd-analyze security) and syntax (systemd-analyze verify).

Both run offline on the files in systemd/; they are skipped where systemd-analyze is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SERVICES = ("calendar-sanitizer.service", "calendar-sanitizer-sync.service")
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def settings(name: str) -> dict[str, list[str]]:
    """Key -> every value it is given, from the [Service] section and the others alike."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def exposure(path: Path) -> float:
    result = subprocess.run([str(ANALYZE), "security", "--offline=yes", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_exposure_is_at_most_2(name: str) -> None:
    score = exposure(UNITS / name)
    assert score <= MAX_EXPOSURE, f"{name}: exposure {score} > {MAX_EXPOSURE}"


@needs_analyze
def test_units_verify(tmp_path: Path) -> None:
    """`verify` insists that ExecStart= exists; the venv is not installed here, so point it at
    /bin/true in a copy and verify everything else."""
    for name in (*SERVICES, "calendar-sanitizer-sync.timer"):
        text = (UNITS / name).read_text().replace(
            "/opt/calendar-sanitizer/venv/bin/calendar-sanitizer", "/bin/true")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [str(ANALYZE), "verify", *(str(tmp_path / n) for n in (*SERVICES,
                                                                 "calendar-sanitizer-sync.timer"))],
        capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 and "Failed to" in result.stderr and "bus" in result.stderr:
        pytest.skip("systemd-analyze verify needs a running systemd here")
    assert result.returncode == 0, result.stderr


def test_service_essentials() -> None:
    unit = settings("calendar-sanitizer.service")
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == ["/opt/calendar-sanitizer/venv/bin/calendar-sanitizer "
                                 "--config /etc/calendar-sanitizer/config.toml run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"]
    assert set(unit["RestartPreventExitStatus"][0].split()) == {"64", "77", "78"}
    assert "WatchdogSec" in unit
    assert unit["User"] == ["calendar-sanitizer"] and "DynamicUser" not in unit
    assert any(v.startswith("agency:/etc/calendar-sanitizer/credentials/")
               for v in unit["LoadCredentialEncrypted"])


@pytest.mark.parametrize("name", SERVICES)
def test_hardening_is_the_same_in_both_services(name: str) -> None:
    unit = settings(name)
    expected = {
        "StateDirectory": "calendar-sanitizer", "StateDirectoryMode": "0700", "UMask": "0077",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "PrivateUsers": "yes",
        "MemoryDenyWriteExecute": "yes", "SocketBindDeny": "any",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures": "native", "LimitCORE": "0",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], (name, key, unit.get(key))
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert "IPAddressAllow" not in unit  # the CalDAV server can be anywhere


def test_timer_runs_the_sync_service() -> None:
    timer = settings("calendar-sanitizer-sync.timer")
    assert "OnUnitActiveSec" in timer
    assert timer["WantedBy"] == ["timers.target"]
    sync = settings("calendar-sanitizer-sync.service")
    assert sync["Type"] == ["oneshot"] and sync["ExecStart"][0].endswith(" sync")
