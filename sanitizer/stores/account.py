"""What every kind of account has, and how a kind reads its own keys from the config file.

An account is a tagged union: one frozen dataclass per kind (caldav/kind.py, google/kind.py,
microsoft365/kind.py), each a subclass of `Account` with its own fields. The config reader
(service/config.py) reads what all accounts share and hands the rest of the table to the kind,
through `AccountFields`, which reports every problem with its key path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # account and credential names


@dataclass(frozen=True)
class Account:
    """A login to a calendar service; its secret lives in the keyring or a systemd credential,
    under `secret_name`."""

    name: str
    url: str
    verify_tls: bool = True
    ca_file: Path | None = None
    kind: ClassVar[str] = ""

    @property
    def secret_name(self) -> str:
        """The keyring or systemd credential name that holds this account's secret."""
        return self.name

    @property
    def secret_label(self) -> str:
        """How a message names the secret (never its value)."""
        return f"account {self.secret_name}"

    @property
    def login(self) -> str:
        """Who the account acts as, where it names one (part of what a retry would send)."""
        return ""

    @property
    def verify(self) -> bool | str:
        """TLS verification: the account's CA bundle, else whether to verify at all."""
        return str(self.ca_file) if self.ca_file is not None else self.verify_tls


class TableReader(Protocol):
    """The config reader's checked access to a TOML table (service/config.py implements it)."""

    def get(self, table: Mapping[str, Any], where: str, key: str, kind: type[T],
            default: T | None = None, *, required: bool = False) -> T | None:
        """The value at `key` if it has the type, else `default` and a problem reported."""
        ...

    def problem(self, where: str, message: str) -> None:
        """Report one problem at a key path."""
        ...

    def known_keys(self, table: Mapping[str, Any], where: str, keys: set[str]) -> None:
        """Report every key of the table that is not one of `keys`."""
        ...


@dataclass
class AccountFields:
    """One `[accounts.NAME]` table as a kind reads it: typed values, problems with key paths."""

    reader: TableReader
    table: Mapping[str, Any]
    where: str  # "accounts.NAME"
    name: str

    def problem(self, key: str, message: str) -> None:
        """A problem with one key of this account."""
        self.reader.problem(f"{self.where}.{key}", message)

    def known(self, keys: set[str]) -> None:
        """The keys this kind takes (with `kind`, which every account may have)."""
        self.reader.known_keys(self.table, self.where, keys | {"kind"})

    def text(self, key: str, default: str | None = None, *, required: bool = False,
             pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        """A string, checked against `pattern` if given ("not a valid WHAT")."""
        value = self.reader.get(self.table, self.where, key, str, default, required=required)
        if value and pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"not a valid {what or key.replace('_', ' ')}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """true or false."""
        return bool(self.reader.get(self.table, self.where, key, bool, default))

    def absolute_path(self, key: str) -> Path | None:
        """A path that must be absolute (a CA bundle, for instance), or None."""
        text = self.text(key)
        if text is not None and not Path(text).is_absolute():
            self.problem(key, "must be an absolute path")
            return None
        return Path(text) if text else None

    def url(self, key: str, default: str = "", *, required: bool = False) -> str:
        """A server URL, checked (see check_url) and ending in '/'; "" when missing."""
        url = self.text(key, required=required) or default
        if url and (problem := check_url(url)):
            self.problem(key, problem)
        return with_slash(url) if url else ""

    def tls(self) -> tuple[bool, Path | None]:
        """verify_tls and ca_file, which every kind of account takes."""
        return self.flag("verify_tls", True), self.absolute_path("ca_file")


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and the loopback addresses, the only hosts plain HTTP may reach."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str | None:
    """A problem with a server URL, or None. Plain HTTP is allowed to loopback only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not contain a user or password (passwords belong in the keyring)"
    if parts.query or parts.fragment:
        return "must not contain a query or fragment"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "plain http is refused except to loopback; use https"
    return None


def with_slash(url: str) -> str:
    """A collection URL ends in '/'."""
    return url if url.endswith("/") else url + "/"
