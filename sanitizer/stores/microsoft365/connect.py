"""One Graph connection per account (token source + bounded client), and the stores on it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sanitizer.stores.microsoft365.auth import AppLogin, GraphAuth
from sanitizer.stores.microsoft365.graph_http import GraphClient, GraphSettings
from sanitizer.stores.microsoft365.names import parse_calendar_url
from sanitizer.stores.microsoft365.source import GraphSource
from sanitizer.stores.microsoft365.target import GraphTarget


@dataclass
class GraphAccount:
    """What every pair of one Microsoft 365 account shares."""

    auth: GraphAuth
    client: GraphClient
    sources: tuple[tuple[str, str], ...] = ()  # every configured source: never a target

    def target_for(self, url: str) -> GraphTarget:
        """The target store for a pair's `target` URL."""
        return target_for(self, url)

    def close(self) -> None:
        """Close both connection pools."""
        self.client.close()
        self.auth.close()


def open_account(login: AppLogin, graph_url: str, sources: Iterable[str] = ()) -> GraphAccount:
    """A token source and a Graph client for one app registration (nothing is sent yet);
    `sources` are the configured sources' URLs, which its targets refuse to be."""
    auth = GraphAuth(login)
    settings = GraphSettings(graph_url, timeout=login.timeout, verify=login.verify)
    return GraphAccount(auth, GraphClient(settings, auth.token), source_names(graph_url, sources))


def source_names(graph_url: str, urls: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(user, calendar name) of the URLs that name calendars on this Graph."""
    names = []
    for url in urls:
        try:
            names.append(parse_calendar_url(graph_url, url))
        except ValueError:
            continue
    return tuple(sorted(set(names)))


def source_for(account: GraphAccount, url: str, *, read_subject: bool) -> GraphSource:
    """The source store for a pair's `source` URL (see names.calendar_url)."""
    user, name = parse_calendar_url(account.client.settings.graph_url, url)
    return GraphSource(account.client, user, name, read_subject=read_subject)


def target_for(account: GraphAccount, url: str) -> GraphTarget:
    """The target store for a pair's `target` URL."""
    user, name = parse_calendar_url(account.client.settings.graph_url, url)
    return GraphTarget(account.client, user, name, account.sources)
