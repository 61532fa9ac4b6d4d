"""The Microsoft 365 kind of account: an app registration reading and writing mailboxes' calendars
through Microsoft Graph.

`kind = "microsoft365"`: `tenant_id`, `client_id`, `client_credential` (the name its secret or
PEM is stored under), `graph_url`, `authority`. A pair names calendars as `user@domain/Name`.
msal is imported only when an account of this kind connects.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from sanitizer.stores.account import NAME, Account, AccountFields
from sanitizer.stores.base import SourceCalendar, TargetCalendar
from sanitizer.stores.kind import (
    AccountKind,
    AccountProbe,
    Missing,
    Probe,
    create_if_missing,
)
from sanitizer.stores.microsoft365 import names
from sanitizer.stores.retry import Backoff

MSAL_MISSING = ("Microsoft 365 accounts need msal; install the extra: "
                "pip install 'calendar-sanitizer[microsoft365]'")


@dataclass(frozen=True, kw_only=True)
class Microsoft365Account(Account):
    """An app registration in one tenant; `url` is the Graph URL."""

    tenant_id: str
    client_id: str
    client_credential: str
    authority: str = names.AUTHORITY
    kind: ClassVar[str] = "microsoft365"

    @property
    def secret_name(self) -> str:
        """The client secret or certificate is stored under its own credential name."""
        return self.client_credential


@dataclass
class GraphConnection:
    """A Microsoft 365 tenant through Microsoft Graph."""

    graph: Any  # connect.GraphAccount

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

    def tokens(self) -> Any:
        """The app token source, handed from worker to worker."""
        return self.graph.auth

    def missing(self, url: str, shown: int) -> Missing:
        """Mailbox calendars are not listed here (`discover --user` does)."""
        return Missing(None, None)

    def create_calendar(self, url: str) -> bool:
        """Make the calendar in the phone's mailbox if it is missing."""
        return create_if_missing(self.target(url))

    def close(self) -> None:
        """Close the Graph client."""
        self.graph.close()


class Microsoft365Kind(AccountKind):
    """Microsoft Graph with an app registration (docs/microsoft365.md)."""

    name = "microsoft365"
    preload: ClassVar[tuple[str, ...]] = ("sanitizer.stores.microsoft365.connect", "msal",
                                          "requests")
    hands_off_tokens = True
    secret_document = True  # a PEM: all of standard input

    def read(self, fields: AccountFields) -> Account | None:
        """The app registration's ids, its credential's name and the two service URLs."""
        fields.known({"tenant_id", "client_id", "client_credential", "graph_url", "authority",
                      "verify_tls", "ca_file"})
        if importlib.util.find_spec("msal") is None:
            fields.problem("kind", MSAL_MISSING)
        ids = {key: fields.text(key, required=True, pattern=pattern) or ""
               for key, pattern in (("tenant_id", names.TENANT), ("client_id", names.CLIENT_ID),
                                    ("client_credential", NAME))}
        graph_url = fields.url("graph_url", names.GRAPH_URL)
        authority = fields.url("authority", names.AUTHORITY)
        verify, ca_file = fields.tls()
        return Microsoft365Account(fields.name, graph_url, verify, ca_file, authority=authority,
                                   **ids)

    def calendar_url(self, account: Account, text: str) -> str:
        """`user@domain/Calendar name` as the account's Graph URL of that calendar."""
        return names.calendar_url(account.url, *names.split_calendar(text))

    def connect(self, account: Account, secret: str, *, timeout: float,
                retry: Backoff | None = None, bases: Iterable[str] = (),
                sources: Iterable[str] = ()) -> GraphConnection:
        """A token source and a Graph client; its targets refuse to be any of `sources`."""
        return GraphConnection(open_graph(account, secret, timeout, sources))

    def probe(self, account: Account, secret: str, *, timeout: float, bases: Iterable[str],
              sources: Iterable[str]) -> tuple[Probe, AccountProbe | None]:
        """One token request: credential, tenant and client id at once."""
        from sanitizer.stores.microsoft365.check import account_check  # noqa: PLC0415

        return account_check(account, secret, timeout, list(sources))

    def discover(self, account: Account, secret: Callable[[], str], *, timeout: float,
                 user: str | None) -> str:
        """The calendars of the mailbox `user` names (app-only access has no "me")."""
        from sanitizer.stores.microsoft365.discover import discover_mailbox  # noqa: PLC0415

        return discover_mailbox(account, secret, timeout, user)


def open_graph(account: Account, secret: str, timeout: float,
               sources: Iterable[str] = ()) -> Any:
    """A Microsoft 365 account's Graph connection (msal is imported only here); its targets
    refuse to be any of `sources`."""
    from sanitizer.stores.microsoft365.auth import AppLogin  # noqa: PLC0415
    from sanitizer.stores.microsoft365.connect import open_account  # noqa: PLC0415

    assert isinstance(account, Microsoft365Account)
    login = AppLogin(account.tenant_id, account.client_id, secret, account.authority,
                     timeout, account.verify)
    return open_account(login, account.url, sources)
