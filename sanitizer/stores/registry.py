"""The kinds of account, one line each: the only list of them in the program.

Everything above `stores/` finds an account's kind here (`kind_of`) and never compares kind names.
A kind registered from outside (a plug-in, or a test) is used exactly like these.
"""

from __future__ import annotations

from sanitizer.stores.account import Account
from sanitizer.stores.caldav.kind import CalDAVKind
from sanitizer.stores.google.kind import GoogleKind
from sanitizer.stores.kind import AccountKind
from sanitizer.stores.microsoft365.kind import Microsoft365Kind

DEFAULT = "caldav"  # an account without `kind`
KINDS: dict[str, AccountKind] = {}


def register(kind: AccountKind) -> None:
    """Make a kind of account usable in `[accounts.NAME] kind = "..."`."""
    KINDS[kind.name] = kind


def kind_of(account: Account) -> AccountKind:
    """The kind an account was read by."""
    return KINDS[account.kind]


register(CalDAVKind())
register(GoogleKind())
register(Microsoft365Kind())
