"""The Google Workspace kind of account: CalDAV with tokens a service account mints.

`kind = "google"`: no password; the account acts as the Workspace user `impersonate` with the
service account key stored under `service_account_key`. Everything else is the CalDAV kind's, with
Google's differences (service_account.GOOGLE).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from sanitizer.errors import ExitCode, SecretError, StoreError
from sanitizer.stores.account import NAME, Account, AccountFields, check_url
from sanitizer.stores.caldav.kind import CalDAVKind
from sanitizer.stores.kind import AccountProbe, Probe
from sanitizer.stores.retry import Backoff

if TYPE_CHECKING:
    from sanitizer.stores.caldav.connection import DavConnection
    from sanitizer.stores.caldav.http import Transport

CALDAV_BASE_URL = "https://apidata.googleusercontent.com/caldav/v2/"
EXTRA = "pip install 'calendar-sanitizer[google]'"

_EMAIL = re.compile(r"^[^@\s/]{1,64}@[A-Za-z0-9.-]{1,253}$")


@dataclass(frozen=True, kw_only=True)
class GoogleAccount(Account):
    """A Workspace user reached through a service account's domain-wide delegation."""

    service_account_key: str
    impersonate: str
    kind: ClassVar[str] = "google"

    @property
    def secret_name(self) -> str:
        """The key is stored under its own credential name, which accounts may share."""
        return self.service_account_key

    @property
    def secret_label(self) -> str:
        """How a message names the key."""
        return f"service account key {self.service_account_key}"

    @property
    def login(self) -> str:
        """The user the tokens act for."""
        return self.impersonate


class GoogleKind(CalDAVKind):
    """`service_account_key`, `impersonate`; `url` defaults to Google's CalDAV endpoint."""

    name = "google"
    preload: ClassVar[tuple[str, ...]] = (*CalDAVKind.preload,
                                          "sanitizer.stores.google.service_account")
    hands_off_tokens = True
    secret_file = True

    def read(self, fields: AccountFields) -> Account | None:
        """The key's credential name and the user it acts as; needs the optional extra."""
        key = fields.text("service_account_key", required=True) or ""
        if key and not NAME.match(key):
            fields.problem("service_account_key",
                           "credential names use letters, digits, '_', '.', '-' (max 64)")
        user = fields.text("impersonate", required=True) or ""
        if user and not _EMAIL.match(user):
            fields.problem("impersonate", "expected the Workspace user's email address")
        if not google_auth_installed():
            fields.problem("kind", f"google accounts need the extra: {EXTRA}")
        fields.known({"url", "verify_tls", "ca_file", "service_account_key", "impersonate"})
        url = fields.url("url", CALDAV_BASE_URL)
        verify, ca_file = fields.tls()
        return GoogleAccount(fields.name, url, verify, ca_file, service_account_key=key,
                             impersonate=user)

    def connect(self, account: Account, secret: str, *, timeout: float,
                retry: Backoff | None = None, bases: Iterable[str] = (),
                sources: Iterable[str] = ()) -> DavConnection:
        """The secret is the service account key, which mints tokens for the user it
        impersonates; SecretError if the key is unusable."""
        from sanitizer.stores.caldav.connection import DavConnection  # noqa: PLC0415
        from sanitizer.stores.caldav.http import Credentials, Transport  # noqa: PLC0415
        from sanitizer.stores.google import service_account as google  # noqa: PLC0415

        assert isinstance(account, GoogleAccount)
        what = account.secret_label
        try:
            key = google.parse_key(secret)
            if problem := check_url(key.token_uri):
                raise SecretError(what, f"token_uri {problem}")
            tokens = google.ServiceAccountTokens(key, account.impersonate, verify=account.verify,
                                                 timeout=timeout)
        except SecretError as exc:
            raise SecretError(what, exc.hint) from None
        except ValueError as exc:
            raise SecretError(what, str(exc)) from None
        bearer = Credentials(account.url, account.login, "", account.verify, timeout,
                             tuple(sorted(set(bases))), bearer=tokens)
        return DavConnection(Transport(bearer, retry, differences=google.GOOGLE))

    def first_request(self, account: Account, transport: Transport) -> Probe:
        """An OAuth account has no page of its own to PROPFIND: mint a token, which proves the
        key, the delegation and the scopes; the pairs then show what the user may read and
        write."""
        assert transport.credentials.bearer is not None
        try:
            transport.credentials.bearer.authorization()
        except StoreError as exc:
            if exc.status == 401:
                return Probe("token-refused", f"{exc}: check that the service account's "
                             "client ID has domain-wide delegation for the calendar scope and "
                             f"that accounts.{account.name}.impersonate is a user of the domain",
                             ExitCode.NOPERM)
            raise
        return Probe("ok", f"token issued for {account.login}")

    def checker(self, transport: Transport) -> AccountProbe:
        """The CalDAV checks, without the UID comparison of contents (which reads whole
        calendars: a cost Google's quota counts)."""
        from sanitizer.stores.caldav.connection import DavProbe  # noqa: PLC0415

        return DavProbe(transport, compares=False)


def google_auth_installed() -> bool:
    """Whether the optional extra is installed (looked up, not imported: config stays fast)."""
    try:
        return importlib.util.find_spec("google.oauth2") is not None
    except (ImportError, ValueError):
        return False
