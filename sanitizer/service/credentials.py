"""Passwords and the UID key: the only module that touches keyring or systemd credentials.

Under systemd (`$CREDENTIALS_DIRECTORY` set, from LoadCredential= or LoadCredentialEncrypted=) the
password of account NAME is the file `$CREDENTIALS_DIRECTORY/NAME`, read through a read-only keyring
backend defined here. Otherwise the keyring backend is pinned (the config's `keyring_backend`, or
keyring's own configuration), because auto-detection can pick a backend that prompts and hangs.
"""

from __future__ import annotations

import os
import re
import secrets as token
import sys
import tempfile
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
from keyring.compat.properties import classproperty

from sanitizer.errors import SecretError

SERVICE = "calendar-sanitizer"
UID_KEY = "uid-key"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
MASTER = "keyring-master"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SystemdCredentialsKeyring(keyring.backend.KeyringBackend):
    """Read-only passwords from systemd credentials: instant, no master password, nothing stored."""

    @classmethod
    def _directory(cls) -> Path | None:
        value = os.environ.get(CREDENTIALS_ENV)
        return Path(value) if value else None

    @classproperty
    def priority(cls) -> float:
        """Preferred whenever systemd handed us credentials; unusable otherwise."""
        if cls._directory() is None:
            raise RuntimeError(f"${CREDENTIALS_ENV} is not set")
        return 20.0

    def get_password(self, service: str, username: str) -> str | None:
        """The credential file named after the account, without its trailing newline."""
        directory = self._directory()
        if service != SERVICE or directory is None or not _SAFE_NAME.match(username):
            return None
        try:
            return (directory / username).read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise keyring.errors.KeyringError(f"credential {username!r} is unreadable") from exc

    def set_password(self, service: str, username: str, password: str) -> None:
        """Credentials are made with systemd-creds, not here."""
        raise keyring.errors.PasswordSetError(
            "systemd credentials are read-only; use systemd-creds encrypt")

    def delete_password(self, service: str, username: str) -> None:
        """Credentials are removed from the unit, not here."""
        raise keyring.errors.PasswordDeleteError("systemd credentials are read-only")


class CredentialsFirst(keyring.backend.KeyringBackend):
    """Look in systemd credentials first, then in the pinned backend; store in the pinned one."""

    priority = 0.0

    def __init__(self, pinned: keyring.backend.KeyringBackend) -> None:
        super().__init__()  # type: ignore[no-untyped-call] # keyring's base class
        self.credentials = SystemdCredentialsKeyring()  # type: ignore[no-untyped-call]
        self.pinned = pinned

    def get_password(self, service: str, username: str) -> str | None:
        """The credential file if there is one, else the pinned keyring's entry."""
        return (self.credentials.get_password(service, username)
                or self.pinned.get_password(service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        """Stored in the pinned keyring (credentials are read only)."""
        self.pinned.set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        """Removed from the pinned keyring."""
        self.pinned.delete_password(service, username)


CREDENTIALS_DIR = "/etc/calendar-sanitizer/credentials"


def encrypt_command(account: str) -> str:
    """The root command that makes the systemd credential an account's password comes from."""
    cred = f"{CREDENTIALS_DIR}/{account}.cred"
    return (f"`systemd-creds encrypt --name={account} - {cred}` (as root; then "
            f"`LoadCredentialEncrypted={account}:{cred}` in the unit, see docs/install.md)")


def writable_backend(pinned: str | None, account: str,
                     state_dir: Path) -> keyring.backend.KeyringBackend:
    """Where set-password may store: a pinned backend the service can read, never a guess.

    Auto-detection picks whatever the admin's own session offers, which is not what the service
    sees; a keyring file in the admin's home is out of the service's reach; and a master
    password must come from the credential `keyring-master`, not from a prompt.
    """
    if not pinned:
        where = ("systemd credentials are read only; make a new one instead:"
                 if os.environ.get(CREDENTIALS_ENV) else
                 "no keyring backend is pinned (service.keyring_backend); on a server give the "
                 "password as a systemd credential:")
        raise SecretError(f"account {account}", f"{where} {encrypt_command(account)}; or pin "
                          "keyrings.cryptfile as docs/keyring.md shows")
    backend = _load(pinned)
    if hasattr(type(backend), "file_path"):  # a file-backed keyring: checked before unlocking
        _refuse_private_file(Path(str(backend.file_path)),  # type: ignore[attr-defined]
                             account, state_dir)
    _unlock(backend, prompt=False)
    return CredentialsFirst(backend) if os.environ.get(CREDENTIALS_ENV) else backend


def _refuse_private_file(path: Path, account: str, state_dir: Path) -> None:
    """A keyring file in the home of whoever runs set-password (root, say) is unreadable to
    the service user; inside the state directory it is where the service looks."""
    home = Path.home()
    if path.is_relative_to(home) and not path.is_relative_to(state_dir):
        raise SecretError(f"account {account}", f"the keyring file would be {path}, in the home "
                          "of the user running this command, where the service cannot read "
                          f"it; run set-password as the service user with XDG_DATA_HOME="
                          f"{state_dir} (calendar-sanitizer-admin, docs/keyring.md)")


def select_backend(pinned: str | None, prompt: bool = True) -> keyring.backend.KeyringBackend:
    """Credentials under systemd, else the pinned backend, else keyring's configured one.

    With both, credentials are looked at first and the pinned backend is where set-password
    writes. A backend with a master password (keyrings.cryptfile) gets it from the credential
    `keyring-master`; without one it may prompt only on a terminal, never under a service.
    """
    under_systemd = bool(os.environ.get(CREDENTIALS_ENV))
    if not pinned:
        if under_systemd:
            return SystemdCredentialsKeyring()  # type: ignore[no-untyped-call] # keyring's base
        return keyring.get_keyring()
    backend = _load(pinned)
    if _file_missing(backend):
        backend = EmptyKeyring()  # type: ignore[no-untyped-call] # keyring's base class
    else:
        _unlock(backend, prompt)
    return CredentialsFirst(backend) if under_systemd else backend


class EmptyKeyring(keyring.backend.KeyringBackend):
    """A pinned file keyring whose file does not exist yet holds no password. Reading it this
    way writes nothing: unlocking a new encrypted file would create it in $HOME, and `check`,
    a dry run and every reader must leave no file behind. `set-password` creates it."""

    priority = 0.0

    def get_password(self, service: str, username: str) -> str | None:
        """Nothing is stored yet."""
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        """Readers never store."""
        raise keyring.errors.PasswordSetError("read only")

    def delete_password(self, service: str, username: str) -> None:
        """Nothing to delete."""
        raise keyring.errors.PasswordDeleteError("read only")


def _file_missing(backend: keyring.backend.KeyringBackend) -> bool:
    """A file-backed keyring (keyrings.cryptfile) whose file is not there."""
    if not hasattr(type(backend), "file_path"):
        return False
    try:
        return not Path(str(backend.file_path)).exists()  # type: ignore[attr-defined]
    except OSError:
        return False


def _load(pinned: str) -> keyring.backend.KeyringBackend:
    """The pinned backend, still locked."""
    try:
        from keyring.core import load_keyring  # noqa: PLC0415

        backend: keyring.backend.KeyringBackend = load_keyring(pinned)
    except Exception:  # noqa: BLE001 - keyring raises many kinds of import errors
        raise SecretError("service.keyring_backend",
                          f"cannot load keyring backend {pinned!r}") from None
    return backend


def backend_name(backend: keyring.backend.KeyringBackend) -> str:
    """The class name of the backend that stores passwords, for messages."""
    return type(backend.pinned if isinstance(backend, CredentialsFirst) else backend).__name__


def _unlock(backend: keyring.backend.KeyringBackend, prompt: bool = True) -> None:
    """Give an encrypted backend its master password from the credential `keyring-master`."""
    if not isinstance(getattr(type(backend), "keyring_key", None), property):
        return  # (looking at the instance's attribute would unlock it, with a prompt)
    directory = os.environ.get(CREDENTIALS_ENV)
    master = Path(directory) / MASTER if directory else None
    if master is not None and master.is_file():
        try:
            backend.keyring_key = master.read_text(  # type: ignore[attr-defined] # cryptfile
                encoding="utf-8").rstrip("\r\n")
        except (ValueError, OSError):
            raise SecretError("service.keyring_backend",
                              f"the credential {MASTER!r} does not unlock the keyring") from None
    elif not prompt or sys.stdin is None or not sys.stdin.isatty():
        raise SecretError("service.keyring_backend",
                          f"the backend needs its master password: add the credential {MASTER!r}"
                          " (see docs/keyring.md)")


def password(backend: keyring.backend.KeyringBackend, account: str) -> str:
    """The account's password, or a SecretError that says how to store it."""
    try:
        value = backend.get_password(SERVICE, account)
    except Exception:  # noqa: BLE001 - backends raise anything, messages may hold paths
        raise SecretError(f"account {account}", "the keyring could not be read") from None
    if not value:
        hint = (f"no credential file {account!r} in ${CREDENTIALS_ENV}"
                if os.environ.get(CREDENTIALS_ENV)
                else f"no password stored; give it as a systemd credential: "
                f"{encrypt_command(account)}; or, with a pinned keyring, run "
                f"`calendar-sanitizer set-password {account}`")
        raise SecretError(f"account {account}", hint)
    return value


def store_password(backend: keyring.backend.KeyringBackend, account: str, value: str) -> None:
    """Store a password in the pinned keyring, and check that it was kept."""
    name = backend_name(backend)
    try:
        backend.set_password(SERVICE, account, value)
        kept = backend.get_password(SERVICE, account) == value
    except keyring.errors.PasswordSetError as exc:
        raise SecretError(f"account {account}", str(exc)) from None
    except (keyring.errors.KeyringError, ValueError, OSError):
        raise SecretError(f"account {account}", f"the keyring backend {name} could not store "
                          "it; give the password as a systemd credential instead: "
                          f"{encrypt_command(account)}") from None
    if not kept:
        raise SecretError(f"account {account}", f"the keyring backend {name} did not keep it; "
                          "pin a real backend with service.keyring_backend")


MIN_KEY_BYTES = 32


def uid_key(state_dir: Path) -> bytes:
    """The per-installation HMAC key: credential `uid-key`, else a 0600 file made on first use.

    The file appears whole or not at all (written aside, then linked into place), so a crash
    while making it can never leave an empty key behind.
    """
    found = existing_uid_key(state_dir)
    if found is not None:
        return found
    path = state_dir / UID_KEY
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=state_dir, prefix=".uid-key-")
    except OSError as exc:
        raise SecretError(str(state_dir), f"cannot create the UID key ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)  # fails if another process made the key first: use theirs
    except FileExistsError:
        pass
    finally:
        Path(temp).unlink(missing_ok=True)
    return _strong(path.read_bytes(), f"UID key {path}")


def existing_uid_key(state_dir: Path) -> bytes | None:
    """The UID key if there is one (credential or file), else None; never makes one.

    A key shorter than 32 bytes is refused wherever it comes from (SecretError, exit 78): with a
    guessable key, anyone who knows the work calendar's UIDs could link phone entries to events.
    """
    directory = os.environ.get(CREDENTIALS_ENV)
    if directory and (Path(directory) / UID_KEY).is_file():
        try:
            data = (Path(directory) / UID_KEY).read_bytes()
        except OSError as exc:
            raise SecretError(f"credential {UID_KEY}", f"unreadable ({exc.strerror})") from None
        return _strong(data, f"credential {UID_KEY}")
    path = state_dir / UID_KEY
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretError(f"UID key {path}", f"unreadable ({exc.strerror})") from None
    return _strong(data, f"UID key {path}")


def throwaway_uid_key() -> bytes:
    """A key for a run that must not create one (a dry run): its UIDs are not the real ones."""
    return token.token_hex(32).encode("ascii")


def _strong(data: bytes, what: str) -> bytes:
    """The key material, or SecretError naming where a too short one came from."""
    key = data.strip()
    if len(key) < MIN_KEY_BYTES:
        hint = ("the UID key is too short; restore it from backup" if what.startswith("UID key")
                else f"must hold at least {MIN_KEY_BYTES} bytes of key material "
                     "(e.g. `openssl rand -hex 32`)")
        raise SecretError(what, hint)
    return key
