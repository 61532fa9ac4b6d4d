"""An account and its secret -> a connection that hands out stores.

The one place that knows the kinds of account: CalDAV (a password), Google (CalDAV with tokens
minted from a service account key) and Microsoft 365 (Graph, with an app registration). Everything
above it asks a connection for a source or a target and never looks at the kind again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from keyring.backend import KeyringBackend

from sanitizer.errors import SecretError
from sanitizer.service import credentials
from sanitizer.service.config import Account, check_url
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.caldav.store import (
    Backoff,
    CalDAVSource,
    CalDAVTarget,
    Credentials,
    Requester,
    Transport,
)


class Connection(Protocol):
    """One account's connection; its stores share its connection pool and its secret."""

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """The work calendar at `url`, read only; no request past `until` (monotonic)."""
        ...

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """The phone calendar at `url`; no request past `until` (monotonic)."""
        ...

    def close(self) -> None:
        """Close every socket."""
        ...


@dataclass
class DavConnection:
    """A CalDAV server (Google's included): one transport for every calendar of the account."""

    transport: Transport

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """CalDAV objects carry every field; the core reads only what the rules need."""
        return CalDAVSource(self._within(until), url)

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """A phone calendar on this server."""
        return CalDAVTarget(self._within(until), url)

    def _within(self, until: float | None) -> Requester:
        return self.transport if until is None else self.transport.within_budget(until)

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()


@dataclass
class GraphConnection:
    """A Microsoft 365 tenant through Microsoft Graph (msal is imported only when one is used)."""

    graph: Any  # stores.microsoft365.connect.GraphAccount

    def source(self, url: str, *, read_titles: bool,
               until: float | None = None) -> SourceCalendar:
        """A mailbox calendar; the subject is read only if a rule needs it. (The Graph client
        bounds each request itself; `until` is not used.)"""
        from sanitizer.stores.microsoft365.connect import source_for  # noqa: PLC0415

        return source_for(self.graph, url, read_subject=read_titles)

    def target(self, url: str, *, until: float | None = None) -> TargetCalendar:
        """A calendar in the phone's mailbox."""
        from sanitizer.stores.microsoft365.connect import target_for  # noqa: PLC0415

        return target_for(self.graph, url)

    def close(self) -> None:
        """Close the Graph client."""
        self.graph.close()


def read_secret(account: Account, backend: KeyringBackend) -> str:
    """The account's secret (password, service account key or app credential); SecretError."""
    if account.kind == "google":
        name = account.service_account_key or ""
        try:
            return credentials.password(backend, name)
        except SecretError as exc:
            raise SecretError(f"service account key {name}", exc.hint) from None
    return credentials.password(backend, account.secret_name)


def connect(account: Account, secret: str, timeout: float, retry: Backoff | None = None,
            bases: Iterable[str] = (), sources: Iterable[str] = ()) -> Connection:
    """The account's connection (nothing is sent yet); SecretError if the secret is unusable.
    Requests go only below the account URL and below `bases` (its calendars' URLs); a
    Microsoft 365 target is never one of `sources` (every pair's source URL)."""
    if account.kind == "microsoft365":
        return GraphConnection(open_graph(account, secret, timeout, sources))
    return DavConnection(dav_transport(account, secret, timeout, retry, bases))


def open_connection(account: Account, backend: KeyringBackend, timeout: float,
                    retry: Backoff | None = None, bases: Iterable[str] = ()) -> Connection:
    """The account's connection, its secret read from the keyring now."""
    return connect(account, read_secret(account, backend), timeout, retry, bases)


def credentials_for(account: Account, password: str, timeout: float,
                    bases: Iterable[str] = ()) -> Credentials:
    """Client settings for a CalDAV account; TLS is verified unless the admin turned it off.
    Requests may go below the account URL and below `bases`, nowhere else."""
    verify: bool | str = account.verify_tls
    if account.ca_file is not None:
        verify = str(account.ca_file)
    return Credentials(account.url, account.username, password, verify, timeout,
                       tuple(sorted(set(bases))))


def transport_for(account: Account, backend: KeyringBackend, timeout: float,
                  retry: Backoff | None = None, bases: Iterable[str] = ()) -> Transport:
    """A CalDAV or Google account's transport, its secret read from the keyring now."""
    return dav_transport(account, read_secret(account, backend), timeout, retry, bases)


def dav_transport(account: Account, secret: str, timeout: float,
                  retry: Backoff | None = None, bases: Iterable[str] = ()) -> Transport:
    """A CalDAV account's transport; a google account's secret is the service account key,
    which mints tokens for the user it impersonates. SecretError if the key is unusable."""
    if account.kind != "google":
        return Transport(credentials_for(account, secret, timeout, bases), retry)
    from sanitizer.stores.google import service_account as google  # noqa: PLC0415

    what = f"service account key {account.service_account_key or ''}"
    verify: bool | str = str(account.ca_file) if account.ca_file else account.verify_tls
    try:
        key = google.parse_key(secret)
        if problem := check_url(key.token_uri):
            raise SecretError(what, f"token_uri {problem}")
        tokens = google.ServiceAccountTokens(key, account.impersonate or "", verify=verify,
                                             timeout=timeout)
    except SecretError as exc:
        raise SecretError(what, exc.hint) from None
    except ValueError as exc:
        raise SecretError(what, str(exc)) from None
    bearer = Credentials(account.url, account.username, "", verify, timeout,
                         tuple(sorted(set(bases))), bearer=tokens)
    return Transport(bearer, retry, differences=google.GOOGLE)


def open_graph(account: Account, secret: str, timeout: float,
               sources: Iterable[str] = ()) -> Any:
    """A Microsoft 365 account's Graph connection (msal is imported only here); its targets
    refuse to be any of `sources`."""
    from sanitizer.stores.microsoft365.auth import AppLogin  # noqa: PLC0415
    from sanitizer.stores.microsoft365.connect import open_account  # noqa: PLC0415

    verify: bool | str = str(account.ca_file) if account.ca_file else account.verify_tls
    login = AppLogin(account.tenant_id, account.client_id, secret, account.authority,
                     timeout, verify)
    return open_account(login, account.url, sources)
