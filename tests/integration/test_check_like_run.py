"""`check` refuses whatever `run` refuses, and neither `check` nor a dry run writes anywhere:
not the state directory, not a keyring file in $HOME."""

from __future__ import annotations

import pytest

from tests.support.harness import put, vevent

pytestmark = pytest.mark.integration
NOW = "2030-03-04T09:00:00+00:00"
CRYPTFILE = "keyrings.cryptfile.cryptfile.CryptFileKeyring"


@pytest.fixture
def pair(calendars, make_setup):
    server = calendars.server
    work, phone = calendars.new("work"), calendars.new("phone")
    put(server, work + "a.ics", vevent("a", "20300304T130000Z", "20300304T140000Z", "Jane Doe"))
    setup = make_setup(server, [("advocate", work, phone)])
    setup.config_path.chmod(0o600)
    return server, work, phone, setup


def test_check_fails_where_run_would_for_a_metrics_file_without_its_library(pair,
                                                                            tmp_path) -> None:
    _, _, _, setup = pair
    stub = tmp_path / "stub" / "prometheus_client"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('not installed')\n")
    setup.config_path.write_text(setup.config_path.read_text().replace(
        "[service]\n", f'[service]\nmetrics_file = "{tmp_path}/m.prom"\n'))
    setup.env["PYTHONPATH"] = str(tmp_path / "stub")
    assert setup.run_process("sync", "--now", NOW).code == 78
    checked = setup.run_process("check")
    assert checked.code == 78, checked.output  # before: "all good"
    assert "calendar-sanitizer[metrics]" in checked.stdout and "all good" not in checked.stdout


@pytest.mark.parametrize("pinned", [False, True])
def test_check_and_a_dry_run_write_nothing_in_home_or_the_state_directory(pair, tmp_path,
                                                                          pinned) -> None:
    _, _, _, setup = pair
    home = tmp_path / "home"
    home.mkdir()
    setup.env.update({"HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share"),
                      "XDG_CONFIG_HOME": str(home / ".config"),
                      "XDG_CACHE_HOME": str(home / ".cache")})
    if pinned:
        setup.config_path.write_text(setup.config_path.read_text().replace(
            "[service]\n", f'[service]\nkeyring_backend = "{CRYPTFILE}"\n'))
        (setup.credentials / "keyring-master").write_text("correct horse\n")
    for command in (("check",), ("sync", "--dry-run", "--now", NOW), ("preview", "--now", NOW)):
        result = setup.run_process(*command)
        assert result.code == 0, (command, result.output)
        assert sorted(p.relative_to(home) for p in home.rglob("*")) == [], command
        assert not setup.state_dir.exists(), command
