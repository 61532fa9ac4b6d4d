"""`discover ACCOUNT --user MAILBOX` for a Microsoft 365 account: that mailbox's calendars.

App-only access has no "me", so the mailbox is named on the command line. Prints calendar names
(the mailbox owner's, cleaned for the terminal) and Graph's `canEdit`; never an id, never an event.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

from sanitizer.errors import ADMIN, ExitCode, SanitizerError, SecretError, StoreError, UsageError
from sanitizer.stores.account import Account
from sanitizer.stores.microsoft365.kind import Microsoft365Account, open_graph
from sanitizer.stores.microsoft365.mailbox import list_calendars
from sanitizer.stores.microsoft365.names import mailbox, split_calendar

MAX_SHOWN = 80


class Unreachable(SanitizerError):
    """Graph or the authority could not be reached, or answered with a fault (exit 69)."""

    exit_code = ExitCode.UNAVAILABLE


def discover_mailbox(account: Account, secret: Callable[[], str], timeout: float,
                     user: str | None) -> str:
    """The mailbox's calendars as a table and lines to paste; errors as one line each."""
    assert isinstance(account, Microsoft365Account)
    name = account.name
    if user is None:
        raise UsageError(f"accounts.{name} is a Microsoft 365 account: name the mailbox "
                         "with --user MAILBOX (app-only access has no \"me\")")
    try:
        user = mailbox(user)
    except ValueError as exc:
        raise UsageError(f"--user: {exc}") from None
    graph = open_graph(account, secret(), timeout)
    try:
        found = list_calendars(graph.client, user)
    except StoreError as exc:
        raise _explained(exc, name, account.client_credential, user) from None
    finally:
        graph.close()
    return render(name, user, [(c.name, c.can_edit) for c in found])


def _explained(exc: StoreError, name: str, credential: str, user: str) -> SanitizerError:
    """One line that says what to check; the exit code says what kind of problem it is."""
    where = f"accounts.{name}"
    if exc.reason == "credential-unusable":
        return SecretError(f"credential {credential!r}", "neither a client secret nor a PEM "
                           "with a private key and a certificate")
    if exc.status == 401:
        return StoreError(operation=exc.operation, url=exc.url, reason=exc.reason, status=401,
                          hint=f"check {where}.tenant_id, {where}.client_id and the credential "
                          f"{credential!r} (expired secret or certificate?)")
    if exc.status == 403:
        return StoreError(operation=exc.operation, url=exc.url, reason=exc.reason, status=403,
                          hint=f"the app's role assignment does not reach mailbox {user} "
                          "(docs/microsoft365.md, section 2)")
    if exc.status == 404:
        return UsageError(f"--user: no mailbox {user} in the tenant of {where} (or it "
                          "has no Exchange Online mailbox)")
    return Unreachable(f"{exc}: check {where}.graph_url, {where}.authority and that this host "
                       "can reach them")


def render(name: str, user: str, calendars: list[tuple[str, bool | None]]) -> str:
    """A table, then lines to paste: `source =` for each calendar, `target =` for each that
    Graph does not call read-only."""
    lines = [f"account {name}: mailbox {user}: {len(calendars)} calendar(s)"]
    if not calendars:
        return "\n".join([*lines, "no calendars; a target calendar is created on the first "
                          "sync"])
    shown = [(_shown(calendar), _access(can_edit)) for calendar, can_edit in calendars]
    width = max(len("NAME"), *(len(text) for text, _ in shown))
    lines.append(f"{'NAME':<{width}}  ACCESS (Graph's canEdit)")
    lines += [f"{text:<{width}}  {access}" for text, access in shown]
    lines += ["", "Paste into a [[pairs]] block: the advocate's work calendar as source, a "
              "calendar in the phone's own mailbox as target (run discover for that mailbox, "
              f"or write a new name and run `{ADMIN} create-target PAIR`).", ""]
    for calendar, can_edit in calendars:
        lines += paste_lines(user, calendar, can_edit)
    return "\n".join(lines)


def paste_lines(user: str, calendar: str, can_edit: bool | None) -> list[str]:
    """The config lines for one calendar, or a comment if a pair cannot name it."""
    try:
        split_calendar(f"{user}/{calendar}")
        calendar.encode("utf-8")  # a lone surrogate has no TOML escape
    except (ValueError, UnicodeEncodeError):
        return [f"# {_shown(calendar)}: not usable in a pair (empty, too long or control "
                "characters); rename it in Outlook"]
    value = _toml_string(f"{user}/{calendar}")
    note = f"# {_shown(calendar)}: {_access(can_edit)}"
    keys = ("source",) if can_edit is False else ("source", "target")
    return [f"{key} = {value}   {note}" for key in keys]


def _access(can_edit: bool | None) -> str:
    return {True: "read-write", False: "read-only", None: "unknown"}[can_edit]


def _shown(text: str) -> str:
    """A name for the terminal: no control, format or unassigned characters, cut short."""
    kept = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C")).strip()
    return (kept[:MAX_SHOWN] + "...") if len(kept) > MAX_SHOWN else kept or "(no name)"


def _toml_string(text: str) -> str:
    """A TOML basic string with the exact name; anything a terminal could act on is escaped."""
    return '"' + "".join(_escaped(ch) for ch in json.dumps(text, ensure_ascii=False)[1:-1]) + '"'


def _escaped(ch: str) -> str:
    if not unicodedata.category(ch).startswith("C"):
        return ch
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
