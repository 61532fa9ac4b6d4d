"""The CalDAV kind of account: a user name, a password in the keyring, one server.

What the rest of the program needs to know about a CalDAV account: its config keys, its
connection (one transport for every calendar of the account, connection.py), what `check` asks
the server (one PROPFIND per account, one ETag-only calendar-query and one PROPFIND per pair) and
what `discover` prints. The HTTP stack is imported only when an account connects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from sanitizer.errors import ExitCode, UsageError
from sanitizer.stores.account import Account, AccountFields
from sanitizer.stores.kind import AccountKind, AccountProbe, Probe
from sanitizer.stores.retry import Backoff

if TYPE_CHECKING:
    from sanitizer.stores.caldav.connection import DavConnection
    from sanitizer.stores.caldav.http import Credentials, Transport

TLS_OFF = "tls-unverified"  # a problem, though the pairs are still checked over that account


@dataclass(frozen=True, kw_only=True)
class CalDAVAccount(Account):
    """A CalDAV user; the password is stored under the account's name."""

    username: str
    kind: ClassVar[str] = "caldav"

    @property
    def login(self) -> str:
        """The user name sent with the password."""
        return self.username


class CalDAVKind(AccountKind):
    """`kind = "caldav"` (the default): `url`, `username`, `verify_tls`, `ca_file`."""

    name = "caldav"
    preload: ClassVar[tuple[str, ...]] = ("sanitizer.stores.caldav.store",
                                          "sanitizer.stores.caldav.connection")

    def read(self, fields: AccountFields) -> Account | None:
        """A CalDAV login: its server and user (the password is in the keyring)."""
        username = fields.text("username", required=True) or ""
        fields.known({"url", "verify_tls", "ca_file", "username"})
        url = fields.url("url", required=True)
        verify, ca_file = fields.tls()
        return CalDAVAccount(fields.name, url, verify, ca_file, username=username)

    def connect(self, account: Account, secret: str, *, timeout: float,
                retry: Backoff | None = None, bases: Iterable[str] = (),
                sources: Iterable[str] = ()) -> DavConnection:
        """One transport; requests go below the account URL and `bases` only."""
        from sanitizer.stores.caldav.connection import DavConnection  # noqa: PLC0415
        from sanitizer.stores.caldav.http import Transport  # noqa: PLC0415

        return DavConnection(Transport(self.credentials(account, secret, timeout, bases),
                                       retry))

    @staticmethod
    def credentials(account: Account, password: str, timeout: float,
                    bases: Iterable[str] = ()) -> Credentials:
        """Client settings; TLS is verified unless the admin turned it off."""
        from sanitizer.stores.caldav.http import Credentials  # noqa: PLC0415

        return Credentials(account.url, account.login, password, account.verify, timeout,
                           tuple(sorted(set(bases))))

    def probe(self, account: Account, secret: str, *, timeout: float, bases: Iterable[str],
              sources: Iterable[str]) -> tuple[Probe, AccountProbe | None]:
        """PROPFIND the account URL: reachability, TLS and the password in one request."""
        connection = self.connect(account, secret, timeout=timeout, retry=Backoff(attempts=1),
                                  bases=bases)
        try:
            found = self.first_request(account, connection.transport)
        except BaseException:
            connection.close()
            raise
        if found.code is ExitCode.OK or found.result == TLS_OFF:
            return found, self.checker(connection.transport)
        connection.close()
        return found, None

    def first_request(self, account: Account, transport: Transport) -> Probe:
        """One PROPFIND of the account URL."""
        from sanitizer.stores.caldav.connection import first_request  # noqa: PLC0415

        return first_request(account, transport)

    def checker(self, transport: Transport) -> AccountProbe:
        """What checks this account's pairs."""
        from sanitizer.stores.caldav.connection import DavProbe  # noqa: PLC0415

        return DavProbe(transport)

    def discover(self, account: Account, secret: Callable[[], str], *, timeout: float,
                 user: str | None) -> str:
        """current-user-principal, then calendar-home-set, as vdirsyncer does."""
        if user is not None:
            raise UsageError(f"--user is for Microsoft 365 accounts; accounts.{account.name} "
                             f"is a {self.name} account, whose login names its calendars")
        from sanitizer.stores.caldav.connection import render  # noqa: PLC0415
        from sanitizer.stores.caldav.discovery import discover  # noqa: PLC0415

        connection = self.connect(account, secret(), timeout=timeout, retry=Backoff(attempts=1))
        try:
            found = discover(connection.transport, account.url)
        finally:
            connection.close()
        return render(account, found)


