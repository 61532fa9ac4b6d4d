"""Passwords on a headless server: systemd credentials, the UID key, and a pinned keyring backend
(set-password --stdin), through the library and through the CLI against a real Radicale."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
from pathlib import Path

import keyring.backend
import keyring.errors
import pytest

from sanitizer.cli.main import main
from sanitizer.errors import SecretError
from sanitizer.service import credentials
from tests.support.harness import Result, Setup
from tests.support.server_fixtures import FreshCalendars
from tests.support.servers import RadicaleServer

TEST_KEYRING_ENV = "CSAN_TEST_KEYRING_FILE"


class FileKeyring(keyring.backend.KeyringBackend):
    """Test only: a JSON file named by $CSAN_TEST_KEYRING_FILE; not viable without it, so
    keyring's auto-detection never picks it up in other tests."""

    @classmethod
    def _file(cls) -> Path:
        value = os.environ.get(TEST_KEYRING_ENV)
        if not value:
            raise RuntimeError(f"${TEST_KEYRING_ENV} is not set")
        return Path(value)

    @keyring.backend.properties.classproperty
    def priority(cls) -> float:
        cls._file()
        return 0.5

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self._file().read_text())
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self._file().write_text(json.dumps(data))
        self._file().chmod(0o600)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("not found")
        self._file().write_text(json.dumps(data))


PINNED = f"{__name__}.FileKeyring"


# SystemdCredentialsKeyring -------------------------------------------------------------------

@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "creds"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv(credentials.CREDENTIALS_ENV, str(directory))
    return directory


def test_credentials_backend_reads_files(creds: Path) -> None:
    (creds / "agency").write_text("s3cret\n")
    backend = credentials.select_backend(None)
    assert isinstance(backend, credentials.SystemdCredentialsKeyring)
    assert backend.get_password(credentials.SERVICE, "agency") == "s3cret"
    assert credentials.password(backend, "agency") == "s3cret"
    assert backend.get_password("other-service", "agency") is None
    assert backend.get_password(credentials.SERVICE, "missing") is None
    assert backend.get_password(credentials.SERVICE, "../agency") is None  # no path tricks
    assert credentials.SystemdCredentialsKeyring.priority == 20.0


def test_credentials_come_first_and_a_pinned_backend_is_where_passwords_go(creds: Path) -> None:
    (creds / "agency").write_text("from-credential\n")
    backend = credentials.select_backend("keyring.backends.null.Keyring")
    assert isinstance(backend, credentials.CredentialsFirst)
    assert credentials.password(backend, "agency") == "from-credential"
    with pytest.raises(credentials.SecretError, match="did not keep it"):
        credentials.store_password(backend, "agency", "new")  # the null backend keeps nothing


def test_credentials_backend_is_read_only(creds: Path) -> None:
    (creds / "agency").write_text("s3cret")
    backend = credentials.SystemdCredentialsKeyring()
    with pytest.raises(keyring.errors.PasswordSetError):
        backend.set_password(credentials.SERVICE, "agency", "new")
    with pytest.raises(keyring.errors.PasswordDeleteError):
        backend.delete_password(credentials.SERVICE, "agency")
    assert (creds / "agency").read_text() == "s3cret"
    with pytest.raises(SecretError, match="systemd credentials are read-only"):
        credentials.store_password(backend, "agency", "new")


def test_missing_credential_names_the_account(creds: Path) -> None:
    backend = credentials.SystemdCredentialsKeyring()
    with pytest.raises(SecretError) as raised:
        credentials.password(backend, "agency")
    assert str(raised.value) == ("account agency: no credential file 'agency' in "
                                 "$CREDENTIALS_DIRECTORY")


def test_credentials_backend_not_viable_outside_systemd(monkeypatch) -> None:
    monkeypatch.delenv(credentials.CREDENTIALS_ENV, raising=False)
    with pytest.raises(RuntimeError):
        _ = credentials.SystemdCredentialsKeyring.priority


# the UID key ---------------------------------------------------------------------------------

def test_uid_key_is_made_once_private_and_stable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(credentials.CREDENTIALS_ENV, raising=False)
    state = tmp_path / "state"
    first = credentials.uid_key(state)
    assert len(first) == 64
    assert stat.S_IMODE((state / credentials.UID_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert credentials.uid_key(state) == first


def test_uid_key_credential_wins(tmp_path: Path, creds: Path) -> None:
    state = tmp_path / "state"
    on_disk = credentials.uid_key(state)  # no credential yet: a file
    (creds / credentials.UID_KEY).write_text("k" * 64 + "\n")
    assert credentials.uid_key(state) == b"k" * 64
    assert (state / credentials.UID_KEY).read_bytes().strip() == on_disk  # left alone


def test_damaged_uid_key_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(credentials.CREDENTIALS_ENV, raising=False)
    state = tmp_path / "state"
    state.mkdir()
    (state / credentials.UID_KEY).write_text("short\n")
    with pytest.raises(SecretError, match="restore it from backup"):
        credentials.uid_key(state)


# through the CLI, against Radicale ----------------------------------------------------------

@pytest.fixture
def setup(radicale: RadicaleServer, make_setup) -> Setup:
    work = FreshCalendars(radicale).new("work")
    made = make_setup(radicale, [("p", work, work.replace("/work", "/phone"))])
    made.config_path.chmod(0o600)
    return made


def run_without_credentials(setup: Setup, *args: str, stdin: str = "",
                            env: dict[str, str] | None = None) -> Result:
    """The CLI in this process with no $CREDENTIALS_DIRECTORY: the pinned keyring is used."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.pop(credentials.CREDENTIALS_ENV, None)
    os.environ.update({"CALENDAR_SANITIZER_CONFIG": str(setup.config_path), **(env or {})})
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved)
    return Result(code, out.getvalue(), err.getvalue())


def pin(setup: Setup, backend: str) -> None:
    text = setup.config_path.read_text()
    setup.config_path.write_text(text.replace("[service]\n",
                                              f'[service]\nkeyring_backend = "{backend}"\n'))


def test_cli_reads_the_password_from_the_credential_file(setup: Setup) -> None:
    result = setup.run_process("check")
    assert result.code == 0, result.output
    assert "password accepted" in result.stdout


def test_cli_missing_credential_is_78_with_the_fix(setup: Setup) -> None:
    (setup.credentials / "main").unlink()
    for command in ("check", "run"):
        result = setup.run_process(command, timeout=60)
        assert result.code == 78, (command, result.output)
        text = result.stdout if command == "check" else result.stderr
        line = next(line for line in text.splitlines() if "account main" in line)
        assert "no credential file 'main'" in line
        assert "systemd-creds encrypt --name=main" in line
        assert "Traceback" not in result.output


def test_set_password_stdin_with_a_pinned_backend(setup: Setup, tmp_path: Path,
                                                  radicale: RadicaleServer) -> None:
    pin(setup, PINNED)
    env = {TEST_KEYRING_ENV: str(tmp_path / "keyring.json")}
    before = run_without_credentials(setup, "check", env=env)
    assert before.code == 78
    assert "set-password main" in before.stdout
    stored = run_without_credentials(setup, "set-password", "main", "--stdin",
                                     stdin=radicale.password + "\n", env=env)
    assert stored.code == 0, stored.output
    assert stored.stdout.strip() == "stored the password of account main in FileKeyring"
    assert radicale.password not in stored.output
    saved = json.loads((tmp_path / "keyring.json").read_text())
    assert saved == {"calendar-sanitizer/main": radicale.password}  # no trailing newline
    after = run_without_credentials(setup, "check", env=env)
    assert after.code == 0, after.output


def test_set_password_refuses_an_empty_password(setup: Setup, tmp_path: Path) -> None:
    pin(setup, PINNED)
    env = {TEST_KEYRING_ENV: str(tmp_path / "keyring.json")}
    result = run_without_credentials(setup, "set-password", "main", "--stdin", stdin="\n",
                                     env=env)
    assert result.code == 78 and "empty password" in result.stderr
    assert not (tmp_path / "keyring.json").exists()


def test_set_password_unknown_account_is_64(setup: Setup, tmp_path: Path) -> None:
    pin(setup, PINNED)
    result = run_without_credentials(setup, "set-password", "nobody", "--stdin", stdin="x\n",
                                     env={TEST_KEYRING_ENV: str(tmp_path / "k.json")})
    assert result.code == 64


def test_failing_and_unloadable_backends_are_config_errors(setup: Setup) -> None:
    pin(setup, "keyring.backends.fail.Keyring")
    checked = run_without_credentials(setup, "check")
    assert checked.code == 78
    assert "the keyring could not be read" in checked.stdout
    stored = run_without_credentials(setup, "set-password", "main", "--stdin", stdin="pw\n")
    assert stored.code != 0
    assert len(stored.stderr.strip().splitlines()) == 1 and "Traceback" not in stored.stderr
    assert "pw" not in stored.stdout

    setup.config_path.write_text(setup.config_path.read_text().replace(
        "keyring.backends.fail.Keyring", "no.such.Backend"))
    broken = run_without_credentials(setup, "check")
    assert broken.code == 78
    assert "cannot load keyring backend 'no.such.Backend'" in broken.stdout


def test_set_password_on_a_failing_backend_is_78(setup: Setup) -> None:
    pin(setup, "keyring.backends.fail.Keyring")
    stored = run_without_credentials(setup, "set-password", "main", "--stdin", stdin="pw\n")
    assert stored.code == 78


def test_set_password_on_a_backend_that_drops_it_fails(setup: Setup) -> None:
    pin(setup, "keyring.backends.null.Keyring")
    stored = run_without_credentials(setup, "set-password", "main", "--stdin", stdin="pw\n")
    assert stored.code == 78


def test_cryptfile_backend_unlocked_by_a_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    setup: Setup) -> None:
    """The writable store for admins: its master password comes from the credential
    keyring-master, never from a prompt; a wrong or missing one is a one-line exit 78."""
    pytest.importorskip("keyrings.cryptfile")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pin(setup, "keyrings.cryptfile.cryptfile.CryptFileKeyring")
    (setup.credentials / "main").unlink()
    (setup.credentials / "keyring-master").write_text("correct horse\n")
    stored = setup.run_process("set-password", "main", "--stdin", stdin="pw-in-file\n")
    assert stored.code == 0 and "CryptFileKeyring" in stored.stdout, stored.output
    keyring_file = tmp_path / "data" / "python_keyring" / "cryptfile_pass.cfg"
    assert keyring_file.exists() and b"pw-in-file" not in keyring_file.read_bytes()
    monkeypatch.setenv(credentials.CREDENTIALS_ENV, str(setup.credentials))
    backend = credentials.select_backend("keyrings.cryptfile.cryptfile.CryptFileKeyring")
    assert credentials.password(backend, "main") == "pw-in-file"
    (setup.credentials / "keyring-master").write_text("wrong\n")
    wrong = setup.run_process("sync", "--dry-run")
    assert wrong.code == 78 and "does not unlock the keyring" in wrong.stderr
    (setup.credentials / "keyring-master").unlink()
    missing = setup.run_process("sync", "--dry-run")
    assert missing.code == 78 and "needs its master password" in missing.stderr
    assert "Traceback" not in wrong.output + missing.output
