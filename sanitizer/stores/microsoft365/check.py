"""`check` for Microsoft 365 accounts and pairs: a token, then read-only Graph requests.

The account check asks the authority for an app token (credential, tenant and client id in one
request); the pair check finds the source calendar and reads one minute of it (ids only), and
finds the target calendar or says how to create it (no cycle does). Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sanitizer.core.policy import Policy
from sanitizer.errors import ADMIN, ExitCode, StoreError
from sanitizer.stores.account import Account
from sanitizer.stores.kind import AccountProbe, Probe
from sanitizer.stores.microsoft365.kind import Microsoft365Account, open_graph

FORBIDDEN_ADVICE = ("the app's role assignment does not reach this mailbox: check its "
                    "management scope (docs/microsoft365.md, section 2)")


def account_check(account: Account, secret: str, timeout: float,
                  sources: list[str]) -> tuple[Probe, AccountProbe | None]:
    """One token request, and the probe for the account's pairs if a token came. Its targets
    refuse to be any of `sources`."""
    assert isinstance(account, Microsoft365Account)
    graph = open_graph(account, secret, timeout, sources)
    try:
        graph.auth.token()
    except StoreError as exc:
        graph.close()
        return _token_probe(account, exc), None
    return Probe("ok", f"app token issued by {account.authority}{account.tenant_id} for "
                 f"client {account.client_id}"), GraphProbe(graph)


def _token_probe(account: Microsoft365Account, exc: StoreError) -> Probe:
    where = f"accounts.{account.name}"
    if exc.reason == "auth-rejected":
        return Probe("auth-rejected", f"the authority refused the app: check {where}.tenant_id, "
                f"{where}.client_id and the credential {account.client_credential!r} (expired "
                "secret or certificate?)", ExitCode.NOPERM)
    if exc.reason == "credential-unusable":
        return Probe("bad-credential", f"credential {account.client_credential!r} is neither a "
                "client secret nor a PEM with a private key and a certificate", ExitCode.CONFIG)
    if exc.reason == "tls-verification-failed":
        return Probe("tls-failed", f"{exc.url}: the authority's TLS certificate did not verify: "
                f"set {where}.ca_file to the CA that signed it, or check {where}.authority",
                ExitCode.UNAVAILABLE)
    if exc.reason == "token-request-refused":
        return Probe("token-refused", f"{exc.url}: the authority refused the token request "
                f"(not the credential): check {where}.tenant_id and {where}.authority",
                ExitCode.CONFIG)
    return Probe("unreachable", f"{exc.url}: {exc.reason}: check {where}.authority and that "
            "this host can reach it", ExitCode.UNAVAILABLE)


@dataclass
class GraphProbe:
    """`check` of a pair's calendars in Microsoft 365: read-only Graph requests."""

    graph: Any  # connect.GraphAccount

    @property
    def forbidden_advice(self) -> str:
        """A 403 here is the app's management scope."""
        return FORBIDDEN_ADVICE

    def source(self, pair: Policy, where: str, now: datetime) -> Probe | None:
        """See source_problem."""
        return source_problem(self.graph, pair, where, now)

    def target(self, pair: Policy, where: str, account: str) -> Probe:
        """See target_result."""
        return target_result(self.graph, pair, where)

    def compared_source(self, url: str) -> None:
        """Graph objects are built from Graph's fields: their UIDs are not compared."""
        return

    def compared_target(self, url: str) -> None:
        """The same for the target."""
        return

    def close(self) -> None:
        """Close the Graph client."""
        self.graph.close()


def source_problem(graph: Any, pair: Policy, where: str, now: datetime) -> Probe | None:
    """The source calendar exists, holds no phone entries, and one minute of it can be read
    (ids only)."""
    from sanitizer.stores.microsoft365.mailbox import (  # noqa: PLC0415
        find_calendar,
        holds_marks,
        user_url,
    )
    from sanitizer.stores.microsoft365.names import parse_calendar_url  # noqa: PLC0415

    user, name = parse_calendar_url(graph.client.settings.graph_url, pair.source_url)
    ident = find_calendar(graph.client, user, name)
    if ident is None:
        return Probe("source-missing", f"mailbox {user} not found or without a calendar named "
                f"{name!r}: check {where}.source", ExitCode.CONFIG)
    if holds_marks(graph.client, user, ident):
        return Probe("source-holds-phone-entries", f"the source {user}/{name} holds phone entries "
                "written by calendar-sanitizer: some pair's target is this work calendar; fix "
                "that pair's target", ExitCode.CONFIG)
    start = now.replace(microsecond=0)
    url = (user_url(graph.client.settings.graph_url, user) + f"calendars/{quote(ident, safe='')}/"
           f"calendarView?startDateTime={start:%Y-%m-%dT%H:%M:%SZ}&endDateTime="
           f"{start + timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}&$select=id&$top=1")
    graph.client.request("GET", url, user)
    return None


def target_result(graph: Any, pair: Policy, where: str) -> Probe:
    """The target calendar exists and is no source; a missing one is a problem: no cycle
    creates it."""
    from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415
    from sanitizer.stores.microsoft365.names import parse_calendar_url  # noqa: PLC0415

    user, name = parse_calendar_url(graph.client.settings.graph_url, pair.target_url)
    try:
        graph.target_for(pair.target_url).resolve()
    except StoreError as exc:
        if exc.reason == "target-is-a-source":
            return Probe("target-is-source", f"{where}.target {user}/{name} is the same "
                         "calendar as a pair's source: the sanitizer never writes a source; "
                         "give the pair a phone calendar of its own", ExitCode.CONFIG)
        if exc.status != 404:
            raise
        if find_calendar(graph.client, user, name) is not None:
            return Probe("target-name-taken", f"mailbox {user} has a calendar whose name differs "
                    f"from {name!r} only in case; Exchange cannot make a second one, and a "
                    f"target must be named exactly: fix {where}.target", ExitCode.CONFIG)
        return Probe("target-missing", f"no calendar {name!r} in mailbox {user}, and no "
                     f"cycle creates it: if {where}.target has a typo, fix it; if the name is "
                     f"right, run `{ADMIN} create-target {pair.name}`", ExitCode.CONFIG)
    return Probe("ok", "target calendar found (write permission shows on the first cycle; run "
                 "`preview` first)")
