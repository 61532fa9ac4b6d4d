"""`check` for Microsoft 365 accounts and pairs: a token, then read-only Graph requests.

The account check asks the authority for an app token (credential, tenant and client id in one
request); the pair check finds the source calendar and reads one minute of it (ids only), and
finds the target calendar or says how to create it (no cycle does). Nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sanitizer.errors import ADMIN, ExitCode, StoreError
from sanitizer.service.config import Account, Pair
from sanitizer.service.connections import open_graph

FORBIDDEN_ADVICE = ("the app's role assignment does not reach this mailbox: check its "
                    "management scope (docs/microsoft365.md, section 2)")


def account_check(account: Account, secret: str, timeout: float,
                  sources: list[str]) -> tuple[Any, Any]:
    """(Finding fields, the GraphAccount if usable): one token request. Its targets refuse to
    be any of `sources`."""
    item = f"account {account.name}"
    graph = open_graph(account, secret, timeout, sources)
    try:
        graph.auth.token()
    except StoreError as exc:
        graph.close()
        return _token_finding(item, account, exc), None
    return (item, "ok", f"app token issued by {account.authority}{account.tenant_id} for "
            f"client {account.client_id}", ExitCode.OK), graph


def _token_finding(item: str, account: Account,
                   exc: StoreError) -> tuple[str, str, str, ExitCode]:
    where = f"accounts.{account.name}"
    if exc.reason == "auth-rejected":
        return (item, "auth-rejected", f"the authority refused the app: check {where}.tenant_id, "
                f"{where}.client_id and the credential {account.client_credential!r} (expired "
                "secret or certificate?)", ExitCode.NOPERM)
    if exc.reason == "credential-unusable":
        return (item, "bad-credential", f"credential {account.client_credential!r} is neither a "
                "client secret nor a PEM with a private key and a certificate", ExitCode.CONFIG)
    if exc.reason == "tls-verification-failed":
        return (item, "tls-failed", f"{exc.url}: the authority's TLS certificate did not verify: "
                f"set {where}.ca_file to the CA that signed it, or check {where}.authority",
                ExitCode.UNAVAILABLE)
    if exc.reason == "token-request-refused":
        return (item, "token-refused", f"{exc.url}: the authority refused the token request "
                f"(not the credential): check {where}.tenant_id and {where}.authority",
                ExitCode.CONFIG)
    return (item, "unreachable", f"{exc.url}: {exc.reason}: check {where}.authority and that "
            "this host can reach it", ExitCode.UNAVAILABLE)


def source_problem(graph: Any, pair: Pair, where: str) -> tuple[str, str, ExitCode] | None:
    """The source calendar exists, holds no phone entries, and one minute of it can be read
    (ids only)."""
    from sanitizer.stores.microsoft365.mailbox import (  # noqa: PLC0415
        find_calendar,
        holds_marks,
        user_url,
    )
    from sanitizer.stores.microsoft365.names import parse_calendar_url  # noqa: PLC0415

    user, name = parse_calendar_url(pair.source_account.url, pair.source_url)
    ident = find_calendar(graph.client, user, name)
    if ident is None:
        return ("source-missing", f"mailbox {user} not found or without a calendar named "
                f"{name!r}: check {where}.source", ExitCode.CONFIG)
    if holds_marks(graph.client, user, ident):
        return ("source-holds-phone-entries", f"the source {user}/{name} holds phone entries "
                "written by calendar-sanitizer: some pair's target is this work calendar; fix "
                "that pair's target", ExitCode.CONFIG)
    start = datetime.now(UTC).replace(microsecond=0)
    url = (user_url(pair.source_account.url, user) + f"calendars/{quote(ident, safe='')}/"
           f"calendarView?startDateTime={start:%Y-%m-%dT%H:%M:%SZ}&endDateTime="
           f"{start + timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}&$select=id&$top=1")
    graph.client.request("GET", url, user)
    return None


def target_result(graph: Any, pair: Pair, where: str) -> tuple[str, str, ExitCode]:
    """The target calendar exists and is no source; a missing one is a problem: no cycle
    creates it."""
    from sanitizer.stores.microsoft365.mailbox import find_calendar  # noqa: PLC0415
    from sanitizer.stores.microsoft365.names import parse_calendar_url  # noqa: PLC0415

    user, name = parse_calendar_url(pair.target_account.url, pair.target_url)
    try:
        graph.target_for(pair.target_url).resolve()
    except StoreError as exc:
        if exc.reason == "target-is-a-source":
            return ("target-is-source", f"{where}.target {user}/{name} is the same calendar as "
                    "a pair's source: the sanitizer never writes a source; give the pair a "
                    "phone calendar of its own", ExitCode.CONFIG)
        if exc.status != 404:
            raise
        if find_calendar(graph.client, user, name) is not None:
            return ("target-name-taken", f"mailbox {user} has a calendar whose name differs "
                    f"from {name!r} only in case; Exchange cannot make a second one, and a "
                    f"target must be named exactly: fix {where}.target", ExitCode.CONFIG)
        return ("target-missing", f"no calendar {name!r} in mailbox {user}, and no cycle creates "
                f"it: if {where}.target has a typo, fix it; if the name is right, run "
                f"`{ADMIN} create-target {pair.name}`", ExitCode.CONFIG)
    return ("ok", "target calendar found (write permission shows on the first cycle; run "
            "`preview` first)", ExitCode.OK)
